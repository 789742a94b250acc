//! `PixstoreBackendConfig`: defaults, merging of user overrides, validation
//! (with the reference's messages where the reference validates), and the
//! format-byte mapping derived from `imageFormats`.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::proof::MIN_PROOF_KEY_LENGTH;

/// A configuration value exactly as JavaScript passed it: numbers stay `f64`
/// (`NaN` and `±Infinity` included, so they get the key's own message rather
/// than a conversion error), and values no key accepts (functions, symbols,
/// bigints, nesting too deep) are kept as [`ConfigValue::Other`] with their type.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
  /// `null`.
  Null,
  /// A boolean.
  Bool(bool),
  /// A number, possibly non-finite.
  Number(f64),
  /// A string.
  String(String),
  /// An array.
  Array(Vec<ConfigValue>),
  /// A plain object: its own enumerable keys in order.
  Object(Vec<(String, ConfigValue)>),
  /// Anything else, by its JavaScript type name.
  Other(&'static str),
}

impl ConfigValue {
  /// The string, if this is one.
  pub fn as_str(&self) -> Option<&str> {
    match self {
      ConfigValue::String(text) => Some(text),
      _ => None,
    }
  }

  /// The number, if this is one (possibly non-finite).
  pub fn as_f64(&self) -> Option<f64> {
    match self {
      ConfigValue::Number(number) => Some(*number),
      _ => None,
    }
  }

  /// The boolean, if this is one.
  pub fn as_bool(&self) -> Option<bool> {
    match self {
      ConfigValue::Bool(flag) => Some(*flag),
      _ => None,
    }
  }

  /// The items, if this is an array.
  pub fn as_array(&self) -> Option<&[ConfigValue]> {
    match self {
      ConfigValue::Array(items) => Some(items),
      _ => None,
    }
  }
}

/// JSON values (configuration files of the command-line tool, unit tests).
impl From<serde_json::Value> for ConfigValue {
  fn from(value: serde_json::Value) -> Self {
    use serde_json::Value;
    match value {
      Value::Null => ConfigValue::Null,
      Value::Bool(flag) => ConfigValue::Bool(flag),
      Value::Number(number) => ConfigValue::Number(number.as_f64().unwrap_or(f64::NAN)),
      Value::String(text) => ConfigValue::String(text),
      Value::Array(items) => ConfigValue::Array(items.into_iter().map(Into::into).collect()),
      Value::Object(entries) => ConfigValue::Object(entries.into_iter().map(|(k, v)| (k, v.into())).collect()),
    }
  }
}

/// Every format name the `ImageFormat` type of pixstore allows.
const KNOWN_FORMATS: &[&str] = &[
  "jpeg", "jpg", "png", "webp", "gif", "bmp", "tiff", "tif", "ico", "svg", "avif", "heif", "heic", "jfif", "pjpeg",
  "pjp", "apng", "raw", "emf", "wmf", "cur", "dds", "icns", "ras", "sgi", "tga", "xbm", "xpm",
];

/// The error handling modes of the JS layer.
const ERROR_HANDLING_MODES: &[&str] = &["hybrid", "throw", "warn", "silent", "custom"];

/// Default for `databasePoolSize`.
pub const DEFAULT_DATABASE_POOL_SIZE: usize = 10;

/// Default for `orphanGracePeriodMs`: one minute.
pub const DEFAULT_ORPHAN_GRACE_PERIOD_MS: u64 = 60_000;

/// Default for `maxImageBytes`: `Number.MAX_SAFE_INTEGER`, i.e. no limit, as
/// in pixstore (SPEC: an addition keeps pixstore compatibility when it is not
/// configured).
pub const DEFAULT_MAX_IMAGE_BYTES: u64 = (1 << 53) - 1;

/// How hard a write is pushed to disk before its promise resolves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
  /// Survives a crash of the process (the OS still holds the data): no fsync.
  Process,
  /// Survives power loss: fsync of file and folders, SQLite `synchronous=FULL`.
  Fsync,
}

/// A secret from the configuration: usable, never printed (`Debug` shows `[redacted]`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
  /// Wraps a secret.
  pub fn new(secret: impl Into<String>) -> Secret {
    Secret(secret.into())
  }

  /// The secret itself.
  pub fn expose(&self) -> &str {
    &self.0
  }
}

impl std::fmt::Debug for Secret {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.write_str("[redacted]")
  }
}

/// The backend configuration, always complete and valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
  /// Allowed formats; the format byte of a format is its 1-based index here.
  pub image_formats: Vec<String>,
  /// Folder holding the encrypted image files.
  pub image_root_dir: String,
  /// Path of the SQLite database.
  pub database_path: String,
  /// Proof window in milliseconds, or -1 for proofs that never expire.
  pub stateless_key_window_length: f64,
  /// Whether `initPixstoreBackend` starts the built-in HTTP endpoint.
  pub default_endpoint_enabled: bool,
  /// Address the endpoint listens on.
  pub default_endpoint_listen_host: String,
  /// Port the endpoint listens on.
  pub default_endpoint_listen_port: u16,
  /// Route prefix of the endpoint.
  pub default_endpoint_route: String,
  /// Path of the endpoint's health route (`defaultEndpointHealthRoute`); `None` for none.
  pub default_endpoint_health_route: Option<String>,
  /// Path of the endpoint's Prometheus metrics route (`defaultEndpointMetricsRoute`); `None` for none.
  pub default_endpoint_metrics_route: Option<String>,
  /// Value of the `Access-Control-Allow-Origin` header.
  pub access_control_allow_origin: String,
  /// Error handling mode of the JS layer (validated here, applied there).
  pub error_handling_mode: String,
  /// Largest accepted image, in bytes.
  pub max_image_bytes: u64,
  /// Durability of writes.
  pub durability: Durability,
  /// Shared secrets for keyed proofs (`proofKeys`); empty for pixstore's salted proofs.
  pub proof_keys: Vec<Secret>,
  /// Whether the endpoint's socket is bound with `SO_REUSEPORT`
  /// (`defaultEndpointReusePort`); `None` decides by the environment (see [`Config::reuse_port`]).
  pub default_endpoint_reuse_port: Option<bool>,
  /// Master keys wrapping the stored per-image keys (`masterKeys`, base64 of
  /// 32 bytes each); empty to store them as pixstore does.
  pub master_keys: Vec<Secret>,
  /// Bytes of served images kept in memory (`imageCacheBytes`); 0 for none.
  pub image_cache_bytes: u64,
  /// PostgreSQL URL for the records (`databaseUrl`); `None` keeps them in SQLite.
  pub database_url: Option<Secret>,
  /// Largest number of PostgreSQL connections of one backend (`databasePoolSize`).
  pub database_pool_size: usize,
  /// S3-compatible storage for the encrypted bytes (`objectStore`); `None` keeps them in `imageRootDir`.
  pub object_store: Option<ObjectStoreConfig>,
  /// How long superseded, deleted or abandoned objects of a remote store stay
  /// before any instance removes them, in ms (`orphanGracePeriodMs`).
  pub orphan_grace_period_ms: u64,
  /// The frontend keys the reference validates here too.
  frontend: FrontendLimits,
}

/// Where the encrypted bytes go in S3-compatible storage (`objectStore`).
/// Credentials not given here come from the standard `AWS_*` environment variables.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectStoreConfig {
  /// The bucket, from `url` (`s3://bucket[/prefix]`).
  pub bucket: String,
  /// The key prefix, from `url`: empty, or ending in `/`.
  pub prefix: String,
  /// A custom endpoint (MinIO, R2, SeaweedFS…), requested path-style.
  pub endpoint: Option<String>,
  /// The region (default: `AWS_REGION`, else `us-east-1`).
  pub region: Option<String>,
  /// Access key id.
  pub access_key_id: Option<Secret>,
  /// Secret access key.
  pub secret_access_key: Option<Secret>,
  /// Session token of temporary credentials.
  pub session_token: Option<Secret>,
  /// Whether a plain `http://` endpoint is allowed.
  pub allow_http: bool,
}

impl Default for Config {
  fn default() -> Self {
    Config {
      image_formats: ["png", "webp", "jpg", "jpeg"].map(String::from).to_vec(),
      image_root_dir: "pixstore-images".into(),
      database_path: "./.pixstore.sqlite".into(),
      stateless_key_window_length: 20000.0,
      default_endpoint_enabled: true,
      default_endpoint_listen_host: "0.0.0.0".into(),
      default_endpoint_listen_port: 3001,
      default_endpoint_route: "/pixstore-image".into(),
      default_endpoint_health_route: None,
      default_endpoint_metrics_route: None,
      access_control_allow_origin: "*".into(),
      error_handling_mode: "hybrid".into(),
      max_image_bytes: DEFAULT_MAX_IMAGE_BYTES,
      durability: Durability::Process,
      proof_keys: Vec::new(),
      default_endpoint_reuse_port: None,
      master_keys: Vec::new(),
      image_cache_bytes: crate::cache::DEFAULT_IMAGE_CACHE_BYTES,
      database_url: None,
      database_pool_size: DEFAULT_DATABASE_POOL_SIZE,
      object_store: None,
      orphan_grace_period_ms: DEFAULT_ORPHAN_GRACE_PERIOD_MS,
      frontend: FrontendLimits::default(),
    }
  }
}

fn string_value(key: &str, value: &ConfigValue) -> Result<String> {
  value
    .as_str()
    .map(String::from)
    .ok_or_else(|| Error::config(format!("{key} must be a string")))
}

/// Whether `c` is removed by JavaScript's `String.prototype.trim` (WhiteSpace
/// and LineTerminator of ECMA-262, which differ from Rust's `char::is_whitespace`).
fn is_js_whitespace(c: char) -> bool {
  matches!(
    c,
    '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
      ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{feff}'
  )
}

/// A string that is not blank after JavaScript's `trim()`: the reference's
/// `<key> cannot be empty` otherwise.
fn non_blank_string(key: &str, value: &ConfigValue) -> Result<String> {
  let text = string_value(key, value)?;
  if text.trim_matches(is_js_whitespace).is_empty() {
    return Err(Error::config(format!("{key} cannot be empty")));
  }
  Ok(text)
}

/// A port as the reference checks it: `Number.isInteger(port)` and 1..=65535.
fn port(key: &str, value: &ConfigValue) -> Result<u16> {
  value
    .as_f64()
    .filter(|p| p.fract() == 0.0 && (1.0..=65535.0).contains(p))
    .map(|p| p as u16)
    .ok_or_else(|| Error::config(format!("{key} must be an integer between 1 and 65535")))
}

/// An optional route of the endpoint: `null` for none, else a path like
/// `defaultEndpointRoute`'s (starting with `/`, without `?` or `#`).
fn optional_route(key: &str, value: &ConfigValue) -> Result<Option<String>> {
  match value {
    ConfigValue::Null => Ok(None),
    ConfigValue::String(path) if path.starts_with('/') && !path.contains(['?', '#']) => Ok(Some(path.clone())),
    _ => Err(Error::config(format!(
      "{key} must be a path starting with '/' without '?' or '#' (or null for none)"
    ))),
  }
}

/// Frontend keys of a shared pixstore config that the reference validates in
/// `initPixstoreBackend` too (its `validateConfig`); kept only for that check.
#[derive(Debug, Clone, PartialEq)]
struct FrontendLimits {
  image_cache_limit: ConfigValue,
  cleanup_batch: ConfigValue,
}

impl Default for FrontendLimits {
  fn default() -> Self {
    // The reference's documented (non-test) defaults.
    FrontendLimits {
      image_cache_limit: ConfigValue::Number(1000.0),
      cleanup_batch: ConfigValue::Number(50.0),
    }
  }
}

impl Config {
  /// Returns this config with `overrides` (the own keys of a JS object, values
  /// that are `undefined` already left out) merged over it, or the first
  /// validation error. Keys and messages follow the reference's
  /// `validateConfig` where it has one (`imageRootDir`, `imageStoreName`, the
  /// two ports, `statelessKeyWindowLength`, `frontendCleanupBatch` against
  /// `frontendImageCacheLimit`); other keys get messages of the same style.
  /// Unknown keys (frontend keys of a shared config) are ignored.
  pub fn merged(&self, overrides: &[(String, ConfigValue)]) -> Result<Config> {
    let mut next = self.clone();
    // `config.key ?? current`, as the reference reads these two.
    let lookup = |name: &str| {
      overrides
        .iter()
        .find(|(key, value)| key == name && *value != ConfigValue::Null)
        .map(|(_, value)| value)
    };
    // The reference checks the cleanup batch against the cache limit first.
    let limit = lookup("frontendImageCacheLimit").unwrap_or(&self.frontend.image_cache_limit);
    let batch = lookup("frontendCleanupBatch").unwrap_or(&self.frontend.cleanup_batch);
    if let (Some(limit), Some(batch)) = (limit.as_f64(), batch.as_f64()) {
      if batch >= limit {
        return Err(Error::config(
          "frontendCleanupBatch must be smaller than frontendImageCacheLimit",
        ));
      }
    }
    next.frontend.image_cache_limit = limit.clone();
    next.frontend.cleanup_batch = batch.clone();
    for (key, value) in overrides {
      match key.as_str() {
        "imageFormats" => next.image_formats = parse_formats(value)?,
        "imageRootDir" => next.image_root_dir = non_blank_string(key, value)?,
        "imageStoreName" => {
          non_blank_string(key, value)?;
        }
        "databasePath" => next.database_path = non_blank_string(key, value)?,
        "statelessKeyWindowLength" => {
          let window = value.as_f64().filter(|v| *v == -1.0 || (v.is_finite() && *v > 0.0));
          next.stateless_key_window_length = window.ok_or_else(|| {
            Error::config(
              "statelessKeyWindowLength must be a positive integer (milliseconds) or -1 for non-expiring proof",
            )
          })?;
        }
        "defaultEndpointEnabled" => {
          next.default_endpoint_enabled = value
            .as_bool()
            .ok_or_else(|| Error::config("defaultEndpointEnabled must be a boolean"))?;
        }
        "defaultEndpointListenHost" => next.default_endpoint_listen_host = non_blank_string(key, value)?,
        "defaultEndpointListenPort" => next.default_endpoint_listen_port = port(key, value)?,
        "defaultEndpointConnectPort" => {
          port(key, value)?;
        }
        "defaultEndpointRoute" => {
          let route = string_value(key, value)?;
          if !route.starts_with('/') || route.contains(['?', '#']) {
            return Err(Error::config(
              "defaultEndpointRoute must start with '/' and contain no '?' or '#'",
            ));
          }
          next.default_endpoint_route = route;
        }
        "defaultEndpointHealthRoute" => next.default_endpoint_health_route = optional_route(key, value)?,
        "defaultEndpointMetricsRoute" => next.default_endpoint_metrics_route = optional_route(key, value)?,
        "accessControlAllowOrigin" => {
          let origin = string_value(key, value)?;
          if origin.is_empty() || origin.chars().any(|c| c.is_control()) {
            return Err(Error::config(
              "accessControlAllowOrigin must be a non-empty header value",
            ));
          }
          next.access_control_allow_origin = origin;
        }
        "errorHandlingMode" => {
          let mode = value.as_str().filter(|mode| ERROR_HANDLING_MODES.contains(mode));
          next.error_handling_mode = mode
            .ok_or_else(|| {
              Error::config(format!(
                "errorHandlingMode must be one of {}",
                ERROR_HANDLING_MODES.join(", ")
              ))
            })?
            .to_string();
        }
        "maxImageBytes" => {
          let max = value
            .as_f64()
            .filter(|v| v.fract() == 0.0 && *v >= 1.0 && *v <= 2f64.powi(53));
          next.max_image_bytes = max.ok_or_else(|| Error::config("maxImageBytes must be a positive integer"))? as u64;
        }
        "proofKeys" => next.proof_keys = parse_proof_keys(value)?,
        "masterKeys" => next.master_keys = parse_master_keys(value)?,
        "imageCacheBytes" => {
          let bytes = value
            .as_f64()
            .filter(|v| v.fract() == 0.0 && *v >= 0.0 && *v <= 2f64.powi(53));
          next.image_cache_bytes = bytes.ok_or_else(|| {
            Error::config("imageCacheBytes must be an integer of at least 0 (bytes; 0 turns the cache off)")
          })? as u64;
        }
        "databaseUrl" => {
          next.database_url = match value {
            ConfigValue::Null => None,
            value => Some(Secret::new(parse_database_url(value)?)),
          }
        }
        "databasePoolSize" => {
          let size = value
            .as_f64()
            .filter(|v| v.fract() == 0.0 && (1.0..=1000.0).contains(v));
          next.database_pool_size =
            size.ok_or_else(|| Error::config("databasePoolSize must be an integer between 1 and 1000"))? as usize;
        }
        "objectStore" => {
          next.object_store = match value {
            ConfigValue::Null => None,
            value => Some(parse_object_store(value)?),
          }
        }
        "orphanGracePeriodMs" => {
          let grace = value
            .as_f64()
            .filter(|v| v.fract() == 0.0 && *v >= 1.0 && *v <= 2f64.powi(53));
          next.orphan_grace_period_ms =
            grace.ok_or_else(|| Error::config("orphanGracePeriodMs must be a positive integer (milliseconds)"))? as u64;
        }
        "defaultEndpointReusePort" => {
          next.default_endpoint_reuse_port = match value {
            ConfigValue::Null => None,
            value => Some(
              value
                .as_bool()
                .ok_or_else(|| Error::config("defaultEndpointReusePort must be a boolean (or null for automatic)"))?,
            ),
          }
        }
        "durability" => {
          next.durability = match value.as_str() {
            Some("process") => Durability::Process,
            Some("fsync") => Durability::Fsync,
            _ => return Err(Error::config("durability must be 'process' or 'fsync'")),
          }
        }
        _ => {}
      }
    }
    next.check_extra_routes()?;
    Ok(next)
  }

  /// The health and metrics routes must not shadow an image id (be the image
  /// route or a path below it) nor each other.
  fn check_extra_routes(&self) -> Result<()> {
    let route = &self.default_endpoint_route;
    let extra = [
      ("defaultEndpointHealthRoute", &self.default_endpoint_health_route),
      ("defaultEndpointMetricsRoute", &self.default_endpoint_metrics_route),
    ];
    for (key, path) in extra {
      let Some(path) = path else { continue };
      if path == route
        || path
          .strip_prefix(route.as_str())
          .is_some_and(|rest| rest.starts_with('/'))
      {
        return Err(Error::config(format!(
          "{key} ({path:?}) must not be defaultEndpointRoute ({route:?}) or a path below it"
        )));
      }
    }
    if let (Some(health), Some(metrics)) = (
      &self.default_endpoint_health_route,
      &self.default_endpoint_metrics_route,
    ) {
      if health == metrics {
        return Err(Error::config(
          "defaultEndpointHealthRoute and defaultEndpointMetricsRoute must differ",
        ));
      }
    }
    Ok(())
  }

  /// Whether the endpoint binds with `SO_REUSEPORT`: as configured, else
  /// when this process is one of several started alike (a `node:cluster`
  /// worker or a PM2 instance), whose siblings listen on the same port.
  pub fn reuse_port(&self, one_of_several_processes: bool) -> bool {
    self.default_endpoint_reuse_port.unwrap_or(one_of_several_processes)
  }

  /// `imageRootDir` resolved against `cwd`.
  pub fn image_root(&self, cwd: &Path) -> PathBuf {
    cwd.join(&self.image_root_dir)
  }

  /// `databasePath` resolved against `cwd`.
  pub fn database_file(&self, cwd: &Path) -> PathBuf {
    cwd.join(&self.database_path)
  }
}

/// `masterKeys`: `null` for none, else a non-empty array of base64 strings of 32 bytes.
fn parse_master_keys(value: &ConfigValue) -> Result<Vec<Secret>> {
  let shape = "masterKeys must be a non-empty array of base64 strings of 32 bytes each (e.g. from `openssl rand -base64 32`), or null";
  parse_secrets(value, "masterKeys", shape, |index, key| {
    crate::keys::decode_master_key(key)
      .map(|_| ())
      .map_err(|why| Error::config(format!("masterKeys[{index}] {why} (base64 of 32 bytes expected)")))
  })
}

/// A config key holding secrets: `null` for none, else a non-empty array of
/// strings (`shape` says so when it is not), each accepted by `check`.
fn parse_secrets(
  value: &ConfigValue,
  name: &str,
  shape: &str,
  check: impl Fn(usize, &str) -> Result<()>,
) -> Result<Vec<Secret>> {
  if *value == ConfigValue::Null {
    return Ok(Vec::new());
  }
  let items = value
    .as_array()
    .filter(|items| !items.is_empty())
    .ok_or_else(|| Error::config(shape))?;
  items
    .iter()
    .enumerate()
    .map(|(index, item)| {
      let key = item
        .as_str()
        .ok_or_else(|| Error::config(format!("{name}[{index}] must be a string")))?;
      check(index, key)?;
      Ok(Secret::new(key))
    })
    .collect()
}

/// `databaseUrl`: a `postgres://` or `postgresql://` URL.
fn parse_database_url(value: &ConfigValue) -> Result<String> {
  let url = value
    .as_str()
    .filter(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"))
    .ok_or_else(|| {
      Error::config(
        "databaseUrl must be a postgres:// URL, e.g. postgres://user:password@host:5432/database (or null for SQLite)",
      )
    })?;
  Ok(url.to_string())
}

/// `objectStore`: `{ url: 's3://bucket[/prefix]', endpoint?, region?, accessKeyId?, secretAccessKey?, sessionToken?, allowHttp? }`.
fn parse_object_store(value: &ConfigValue) -> Result<ObjectStoreConfig> {
  let ConfigValue::Object(entries) = value else {
    return Err(Error::config(
      "objectStore must be an object like { url: 's3://bucket/prefix' } (or null for the image folder)",
    ));
  };
  let field = |name: &str| entries.iter().find(|(key, _)| key == name).map(|(_, value)| value);
  let text = |name: &str| -> Result<Option<String>> {
    match field(name) {
      None | Some(ConfigValue::Null) => Ok(None),
      Some(value) => value
        .as_str()
        .filter(|text| !text.is_empty())
        .map(|text| Some(text.to_string()))
        .ok_or_else(|| Error::config(format!("objectStore.{name} must be a non-empty string"))),
    }
  };
  if let Some((unknown, _)) = entries.iter().find(|(key, _)| {
    ![
      "url",
      "endpoint",
      "region",
      "accessKeyId",
      "secretAccessKey",
      "sessionToken",
      "allowHttp",
    ]
    .contains(&key.as_str())
  }) {
    return Err(Error::config(format!(
      "objectStore.{unknown} is not an objectStore option"
    )));
  }
  let url = text("url")?.unwrap_or_default();
  let location = url
    .strip_prefix("s3://")
    .filter(|rest| !rest.is_empty() && !rest.starts_with('/'))
    .ok_or_else(|| Error::config("objectStore.url must be s3://bucket or s3://bucket/prefix"))?;
  let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
  let prefix = prefix.trim_matches('/');
  let endpoint = text("endpoint")?;
  if let Some(endpoint) = &endpoint {
    if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
      return Err(Error::config("objectStore.endpoint must be an http:// or https:// URL"));
    }
  }
  let allow_http = match field("allowHttp") {
    None | Some(ConfigValue::Null) => false,
    Some(value) => value
      .as_bool()
      .ok_or_else(|| Error::config("objectStore.allowHttp must be a boolean"))?,
  };
  Ok(ObjectStoreConfig {
    bucket: bucket.to_string(),
    prefix: if prefix.is_empty() {
      String::new()
    } else {
      format!("{prefix}/")
    },
    endpoint,
    region: text("region")?,
    access_key_id: text("accessKeyId")?.map(Secret::new),
    secret_access_key: text("secretAccessKey")?.map(Secret::new),
    session_token: text("sessionToken")?.map(Secret::new),
    allow_http,
  })
}

/// `proofKeys`: `null` for none (pixstore's proofs), else a non-empty array of
/// secrets of at least [`MIN_PROOF_KEY_LENGTH`] characters (JS string length).
fn parse_proof_keys(value: &ConfigValue) -> Result<Vec<Secret>> {
  let shape = format!(
    "proofKeys must be a non-empty array of secret strings of at least {MIN_PROOF_KEY_LENGTH} characters (or null for none)"
  );
  parse_secrets(value, "proofKeys", &shape, |index, key| {
    let length = key.encode_utf16().count();
    if length < MIN_PROOF_KEY_LENGTH {
      return Err(Error::config(format!(
        "proofKeys[{index}] must be at least {MIN_PROOF_KEY_LENGTH} characters long (it has {length})"
      )));
    }
    Ok(())
  })
}

fn parse_formats(value: &ConfigValue) -> Result<Vec<String>> {
  let invalid = || {
    Error::config(format!(
      "imageFormats must be a non-empty array of distinct image formats ({})",
      KNOWN_FORMATS.join(", ")
    ))
  };
  let items = value
    .as_array()
    .filter(|items| !items.is_empty() && items.len() < 256)
    .ok_or_else(invalid)?;
  let mut formats: Vec<String> = Vec::with_capacity(items.len());
  for item in items {
    let format = item
      .as_str()
      .filter(|f| KNOWN_FORMATS.contains(f))
      .ok_or_else(invalid)?;
    if formats.iter().any(|f| f == format) {
      return Err(invalid());
    }
    formats.push(format.to_string());
  }
  Ok(formats)
}

#[cfg(test)]
mod tests {
  use super::*;
  use base64::Engine;
  use serde_json::json;

  fn overrides(value: serde_json::Value) -> Vec<(String, ConfigValue)> {
    match ConfigValue::from(value) {
      ConfigValue::Object(entries) => entries,
      other => panic!("not an object: {other:?}"),
    }
  }

  fn merge(value: serde_json::Value) -> Result<Config> {
    Config::default().merged(&overrides(value))
  }

  #[test]
  fn defaults_match_the_documented_ones() {
    let config = Config::default();
    assert_eq!(config.image_formats, ["png", "webp", "jpg", "jpeg"]);
    assert_eq!(config.stateless_key_window_length, 20000.0);
    assert_eq!(config.default_endpoint_listen_port, 3001);
    assert_eq!(config.default_endpoint_listen_host, "0.0.0.0");
    assert_eq!(config.error_handling_mode, "hybrid");
  }

  #[test]
  fn secret_lists_say_which_item_is_wrong() {
    let message = |value| merge(value).unwrap_err().message;
    assert!(message(json!({ "masterKeys": [] })).starts_with("masterKeys must be a non-empty array"));
    assert_eq!(message(json!({ "masterKeys": [1] })), "masterKeys[0] must be a string");
    assert!(message(json!({ "masterKeys": ["AAAA"] })).ends_with("(base64 of 32 bytes expected)"));
    assert!(message(json!({ "proofKeys": "x" })).starts_with("proofKeys must be a non-empty array"));
    assert_eq!(
      message(json!({ "proofKeys": ["a".repeat(MIN_PROOF_KEY_LENGTH), 2] })),
      "proofKeys[1] must be a string"
    );
    assert!(message(json!({ "proofKeys": ["short"] })).starts_with("proofKeys[0] must be at least"));
    let keys =
      merge(json!({ "masterKeys": [base64::engine::general_purpose::STANDARD.encode([7u8; 32])], "proofKeys": null }))
        .unwrap();
    assert_eq!((keys.master_keys.len(), keys.proof_keys.len()), (1, 0));
  }

  #[test]
  fn rejects_out_of_range_values_with_reference_messages() {
    for port in [json!(0), json!(65536), json!(1.5), json!("3001")] {
      let err = merge(json!({ "defaultEndpointListenPort": port })).unwrap_err();
      assert_eq!(
        err.message,
        "defaultEndpointListenPort must be an integer between 1 and 65535"
      );
    }
    for window in [json!(0), json!(-2), json!("x")] {
      let err = merge(json!({ "statelessKeyWindowLength": window })).unwrap_err();
      assert!(err
        .message
        .starts_with("statelessKeyWindowLength must be a positive integer"));
    }
    assert_eq!(
      merge(json!({ "imageRootDir": "  " })).unwrap_err().message,
      "imageRootDir cannot be empty"
    );
    assert!(merge(json!({ "imageFormats": ["png", "png"] })).is_err());
    assert!(merge(json!({ "imageFormats": ["exe"] })).is_err());
    assert!(merge(json!({ "errorHandlingMode": "loud" })).is_err());
    assert!(merge(json!({ "maxImageBytes": 0 })).is_err());
    assert!(merge(json!({ "durability": "sometimes" })).is_err());
  }

  #[test]
  fn health_and_metrics_routes_are_paths_that_hide_no_image() {
    let config =
      merge(json!({ "defaultEndpointHealthRoute": "/healthz", "defaultEndpointMetricsRoute": "/metrics" })).unwrap();
    assert_eq!(config.default_endpoint_health_route.as_deref(), Some("/healthz"));
    assert_eq!(config.default_endpoint_metrics_route.as_deref(), Some("/metrics"));
    let off = config
      .merged(&overrides(json!({ "defaultEndpointHealthRoute": null })))
      .unwrap();
    assert_eq!(off.default_endpoint_health_route, None);
    assert_eq!(off.default_endpoint_metrics_route.as_deref(), Some("/metrics"));
    for bad in [json!("healthz"), json!("/h?x"), json!(""), json!(true), json!(1)] {
      let err = merge(json!({ "defaultEndpointHealthRoute": bad })).unwrap_err();
      assert!(
        err.message.starts_with("defaultEndpointHealthRoute must be a path"),
        "{}",
        err.message
      );
    }
    for shadowing in ["/pixstore-image", "/pixstore-image/health"] {
      let err = merge(json!({ "defaultEndpointMetricsRoute": shadowing })).unwrap_err();
      assert!(
        err.message.contains("must not be defaultEndpointRoute"),
        "{}",
        err.message
      );
    }
    assert!(merge(json!({ "defaultEndpointMetricsRoute": "/pixstore-images" })).is_ok());
    // Moving the image route over an existing health route is refused too.
    let err = config
      .merged(&overrides(json!({ "defaultEndpointRoute": "/healthz" })))
      .unwrap_err();
    assert!(err.message.starts_with("defaultEndpointHealthRoute"), "{}", err.message);
    assert!(merge(json!({ "defaultEndpointHealthRoute": "/x", "defaultEndpointMetricsRoute": "/x" })).is_err());
  }

  #[test]
  fn merges_over_the_current_config() {
    let first = merge(json!({ "statelessKeyWindowLength": -1, "imageFormats": ["gif", "png"] })).unwrap();
    let second = first
      .merged(&overrides(json!({ "errorHandlingMode": "throw" })))
      .unwrap();
    assert_eq!(second.stateless_key_window_length, -1.0);
    assert_eq!(second.image_formats, ["gif", "png"]);
    assert_eq!(second.error_handling_mode, "throw");
  }
}
