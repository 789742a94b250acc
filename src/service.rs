//! The backend as one object: configuration, the open store and the default
//! endpoint, and the operations of the pixstore API on top of them (id
//! validation, proofs, wire payloads). No napi types: the binding calls this.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::runtime::Handle;

use crate::backend::Backend;
use crate::config::ObjectStoreConfig;
use crate::config::{Config, ConfigValue};
use crate::crypto::{random_bytes, ImageMeta};
use crate::endpoint::{Endpoint, Handler, Listen, Routing};
use crate::error::{Error, Result};
use crate::id;
use crate::keys::Keyring;
use crate::proof::Proofs;
use crate::remote::blobs::Blobs;
use crate::remote::postgres::PgRepo;
use crate::remote::sqlite::SqliteRepo;
use crate::remote::RemoteStore;
use crate::request_log::RequestLogQueue;
use crate::stats::{Gauges, Operation, Stats, StatsSnapshot};
use crate::store::{Database, ImageRules, PlainImage, Store, StoreLocation, StoredRecord};
use crate::wire::{self, WireState};

/// An image record as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
  /// The image id.
  pub id: String,
  /// Version token.
  pub token: i64,
  /// Decryption meta.
  pub meta: ImageMeta,
  /// Proof of access for the current window.
  pub stateless_proof: String,
}

/// What init needs to know of the process it runs in.
pub struct Surroundings {
  /// The working directory relative paths resolve against.
  pub cwd: PathBuf,
  /// Whether this process is one of several started alike (a `node:cluster`
  /// worker or a PM2 instance): the endpoint then shares its port
  /// (`SO_REUSEPORT`), and proofs must be shared (`proofKeys`).
  pub one_of_several_processes: bool,
}

/// What an init applied.
pub struct Applied {
  /// The configuration now in effect.
  pub config: Config,
  /// Warnings for the user.
  pub warnings: Vec<String>,
}

/// Where a backend keeps records and bytes: what decides, on re-init,
/// whether the open one can be kept.
#[derive(Debug, Clone, PartialEq)]
pub enum BackendLocation {
  /// The local store (SQLite file or memory + image folder, pixstore's layout).
  Local(StoreLocation),
  /// A remote store.
  Remote(Box<RemoteLocation>),
}

/// Where a remote store keeps records and bytes, and how it treats them.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteLocation {
  /// PostgreSQL URL, or `None` for the SQLite file.
  pub database_url: Option<String>,
  /// The SQLite file when there is no URL.
  pub database_file: PathBuf,
  /// The bucket, or `None` for the image folder.
  pub objects: Option<ObjectStoreConfig>,
  /// The image folder when there is no bucket.
  pub image_root: PathBuf,
  /// `databasePoolSize`.
  pub pool_size: usize,
  /// `orphanGracePeriodMs`.
  pub grace_ms: u64,
  /// `durability` (of the SQLite file).
  pub durability: crate::config::Durability,
  /// `masterKeys`.
  pub keyring: Keyring,
  /// `imageCacheBytes`.
  pub cache_bytes: u64,
}

/// The configuration and store in use (replaced as a whole on re-init).
pub struct Active {
  /// The effective configuration.
  pub config: Config,
  /// Where the open backend keeps its data.
  pub location: BackendLocation,
  /// The open backend.
  pub store: Arc<dyn Backend>,
  /// How proofs are made and checked (from `proofKeys`).
  pub proofs: Proofs,
}

/// The pixstore backend: what `initPixstoreBackend` sets up.
#[derive(Default)]
pub struct Pixstore {
  active: RwLock<Option<Arc<Active>>>,
  config: Mutex<Config>,
  endpoint: Mutex<Option<Endpoint>>,
  lifecycle: Mutex<()>,
  stats: Stats,
}

fn hex(bytes: &[u8]) -> String {
  bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn poisoned() -> Error {
  Error::internal("pixstore state lock poisoned")
}

impl Pixstore {
  /// Merges `overrides` over the current configuration and applies it: opens
  /// the store if its location changed (or it is in memory, or it opened
  /// read-only: every init retries), and starts, stops or moves the endpoint.
  /// An invalid configuration, or a store or port that cannot be opened,
  /// returns an error and changes nothing. `from_defaults` merges over the
  /// defaults instead of the current configuration. Returns the configuration
  /// applied and warnings for the user (a store that opened read-only).
  pub fn init(
    self: &Arc<Self>,
    overrides: &[(String, ConfigValue)],
    from_defaults: bool,
    runtime: &Handle,
    surroundings: &Surroundings,
  ) -> Result<Applied> {
    let cwd = surroundings.cwd.as_path();
    let _lifecycle = self.lifecycle.lock().map_err(|_| poisoned())?;
    let base = match from_defaults {
      true => Config::default(),
      false => self.config.lock().map_err(|_| poisoned())?.clone(),
    };
    let config = base.merged(overrides)?;
    let location = backend_location(&config, cwd)?;
    let current = self.active.read().map_err(|_| poisoned())?.clone();
    let store = match &current {
      Some(active) if active.location == location && active.store.read_only().is_none() => Arc::clone(&active.store),
      _ => open_backend(&location, runtime, true)?,
    };
    let mut warnings: Vec<String> = store
      .read_only()
      .map(|reason| {
        format!(
          "pixstore-native: the store opened read-only ({reason}): existing images are served, writes fail until initPixstoreBackend() is called again once the disk accepts writes"
        )
      })
      .into_iter()
      .collect();
    warnings.extend(unshared_proofs_warning(&config, surroundings));
    self.apply_endpoint(&config, surroundings, runtime)?;
    *self.active.write().map_err(|_| poisoned())? = Some(Arc::new(Active {
      config: config.clone(),
      location,
      store: Arc::clone(&store),
      proofs: Proofs::new(&config.proof_keys),
    }));
    *self.config.lock().map_err(|_| poisoned())? = config.clone();
    if let Some(previous) = current.filter(|previous| !Arc::ptr_eq(&previous.store, &store)) {
      runtime.spawn(Arc::clone(&previous.store).close());
    }
    Ok(Applied { config, warnings })
  }

  /// Starts, stops or moves the endpoint to match `config`.
  fn apply_endpoint(self: &Arc<Self>, config: &Config, surroundings: &Surroundings, runtime: &Handle) -> Result<()> {
    let mut endpoint = self.endpoint.lock().map_err(|_| poisoned())?;
    if !config.default_endpoint_enabled {
      if let Some(running) = endpoint.take() {
        drop(running.stop());
      }
      return Ok(());
    }
    let listen = Listen {
      host: config.default_endpoint_listen_host.clone(),
      port: config.default_endpoint_listen_port,
      reuse_port: config.reuse_port(surroundings.one_of_several_processes),
    };
    if endpoint.as_ref().is_some_and(|running| *running.listen() == listen) {
      return Ok(());
    }
    // Bind the new address while the old endpoint still runs, so a failure
    // changes nothing; only when the old one holds the port, stop it first.
    let started = match Endpoint::start(runtime, &listen, Arc::clone(self)) {
      Ok(started) => started,
      Err(err) => {
        let Some(running) = endpoint.take_if(|running| running.address().port() == listen.port) else {
          return Err(err);
        };
        let previous = running.listen().clone();
        drop(running.stop());
        match Endpoint::start(runtime, &listen, Arc::clone(self)) {
          Ok(started) => started,
          Err(err) => {
            *endpoint = Endpoint::start(runtime, &previous, Arc::clone(self)).ok();
            return Err(err);
          }
        }
      }
    };
    if let Some(previous) = endpoint.replace(started) {
      drop(previous.stop());
    }
    Ok(())
  }

  /// Stops the endpoint (waiting for open connections to finish) and closes the store.
  pub async fn close(&self) {
    let (endpoint, active) = {
      let Ok(_lifecycle) = self.lifecycle.lock() else { return };
      let endpoint = self.endpoint.lock().ok().and_then(|mut endpoint| endpoint.take());
      let active = self.active.write().ok().and_then(|mut active| active.take());
      (endpoint, active)
    };
    if let Some(endpoint) = endpoint {
      if let Ok(draining) = tokio::task::spawn_blocking(move || endpoint.stop()).await {
        let _ = draining.await;
      }
    }
    if let Some(active) = active {
      Arc::clone(&active.store).close().await;
    }
  }

  /// Closes everything at once, blocking: for the cleanup hook of a JS
  /// environment that is going away (a worker thread ending). The listening
  /// socket is closed before this returns, so the port is free again; open
  /// connections are answered "closed"; queued writes are committed.
  pub fn close_blocking(&self) {
    let Ok(_lifecycle) = self.lifecycle.lock() else { return };
    if let Some(endpoint) = self.endpoint.lock().ok().and_then(|mut endpoint| endpoint.take()) {
      drop(endpoint.stop());
    }
    if let Some(active) = self.active.write().ok().and_then(|mut active| active.take()) {
      active.store.close_blocking();
    }
  }

  /// The active configuration and store, or the not-initialized error.
  pub fn active(&self) -> Result<Arc<Active>> {
    self
      .active
      .read()
      .map_err(|_| poisoned())?
      .clone()
      .ok_or_else(Error::not_initialized)
  }

  fn with_proof(active: &Active, record: StoredRecord) -> ImageRecord {
    let stateless_proof = active.proofs.current(
      &record.id,
      crate::store::now_ms(),
      active.config.stateless_key_window_length,
    );
    ImageRecord {
      id: record.id,
      token: record.token,
      meta: record.meta,
      stateless_proof,
    }
  }

  fn rules(active: &Active) -> ImageRules {
    ImageRules {
      formats: active.config.image_formats.clone(),
      max_bytes: active.config.max_image_bytes,
    }
  }

  /// `getImageRecord`: the record with a fresh proof, or `None` (also for an
  /// id that could not have been generated, which never reaches the store).
  pub fn image_record(&self, id: &str) -> Result<Option<ImageRecord>> {
    let active = self.active()?;
    if !id::is_valid(id) {
      return Ok(None);
    }
    Ok(active.store.record(id)?.map(|record| Self::with_proof(&active, record)))
  }

  /// `getImageRecordAsync`: the record as the database has it now (for a
  /// remote store, not the replica), or `None`.
  pub async fn fetch_image_record(&self, id: String) -> Result<Option<ImageRecord>> {
    let active = self.active()?;
    if !id::is_valid(&id) {
      return Ok(None);
    }
    let record = Arc::clone(&active.store).fetch_record(id).await?;
    Ok(record.map(|record| Self::with_proof(&active, record)))
  }

  /// Copies image bytes out of the caller's memory for `saveImage` /
  /// `updateImage`; refuses an image over `maxImageBytes` before copying.
  pub fn copy_image(&self, image: &[u8]) -> Result<PlainImage> {
    PlainImage::copy_of(image, self.active()?.config.max_image_bytes)
  }

  /// `saveImage`, with the image as [`Pixstore::copy_image`] gave it (a
  /// refusal there counts as a failed save).
  pub async fn save_image(&self, image: Result<PlainImage>, dir: Option<String>) -> Result<ImageRecord> {
    let mut tracker = self.stats.write(Operation::Save);
    let image = image?;
    let active = self.active()?;
    let prefix = id::prefix_for(dir.as_deref())?;
    let bytes = image.bytes().len() as u64;
    let record = Arc::clone(&active.store)
      .save(image, prefix, Self::rules(&active))
      .await?;
    tracker.succeeded(bytes);
    Ok(Self::with_proof(&active, record))
  }

  /// `saveImageFromFile`.
  pub async fn save_image_from_file(&self, path: PathBuf, dir: Option<String>) -> Result<ImageRecord> {
    let mut tracker = self.stats.write(Operation::Save);
    let active = self.active()?;
    let prefix = id::prefix_for(dir.as_deref())?;
    let rules = Self::rules(&active);
    let image = Arc::clone(&active.store).load_file(path, rules.clone()).await?;
    let bytes = image.bytes().len() as u64;
    let record = Arc::clone(&active.store).save(image, prefix, rules).await?;
    tracker.succeeded(bytes);
    Ok(Self::with_proof(&active, record))
  }

  /// `updateImage`: `Image not found: <id>` without a record (also for an id
  /// that could not have been generated, which never reaches the store).
  pub async fn update_image(&self, id: String, image: Result<PlainImage>) -> Result<ImageRecord> {
    let mut tracker = self.stats.write(Operation::Update);
    let image = image?;
    let bytes = image.bytes().len() as u64;
    let record = self.replace_image(id, image).await?;
    tracker.succeeded(bytes);
    Ok(record)
  }

  async fn replace_image(&self, id: String, image: PlainImage) -> Result<ImageRecord> {
    let active = self.active()?;
    if !id::is_valid(&id) {
      return Err(Error::not_found(&id));
    }
    let record = Arc::clone(&active.store)
      .update(id, image, Self::rules(&active))
      .await?;
    Ok(Self::with_proof(&active, record))
  }

  /// `updateImageFromFile`: like pixstore, a bad file is reported before a missing record.
  pub async fn update_image_from_file(&self, id: String, path: PathBuf) -> Result<ImageRecord> {
    let mut tracker = self.stats.write(Operation::Update);
    let active = self.active()?;
    let image = Arc::clone(&active.store).load_file(path, Self::rules(&active)).await?;
    let bytes = image.bytes().len() as u64;
    let record = self.replace_image(id, image).await?;
    tracker.succeeded(bytes);
    Ok(record)
  }

  /// `deleteImage`: false for an id that could not have been generated.
  pub async fn delete_image(&self, id: String) -> Result<bool> {
    let mut tracker = self.stats.write(Operation::Delete);
    let active = self.active()?;
    if !id::is_valid(&id) {
      tracker.succeeded(0);
      return Ok(false);
    }
    let deleted = Arc::clone(&active.store).delete(id).await?;
    tracker.succeeded(0);
    Ok(deleted)
  }

  /// `imageExists` answered on the calling thread when a record is found as
  /// cheaply as `getImageRecord` finds it (or the id could not have been
  /// generated: false); `None` when [`Pixstore::image_exists`] must look
  /// further (a file without a record, or a remote store).
  pub fn image_exists_by_record(&self, id: &str) -> Result<Option<bool>> {
    let active = self.active()?;
    if !id::is_valid(id) {
      return Ok(Some(false));
    }
    active.store.exists_by_record(id)
  }

  /// `imageExists`: false for an id that could not have been generated.
  pub async fn image_exists(&self, id: String) -> Result<bool> {
    let active = self.active()?;
    if !id::is_valid(&id) {
      return Ok(false);
    }
    Arc::clone(&active.store).exists(id).await
  }

  /// `customEndpointHelper`: the payload, refused while the default endpoint runs.
  pub async fn custom_endpoint_payload(
    &self,
    id: Option<String>,
    client_token: Option<f64>,
    proof: Option<String>,
  ) -> Result<Vec<u8>> {
    self.active()?;
    if self.endpoint.lock().map_err(|_| poisoned())?.is_some() {
      return Err(Error::pixstore(
        "Pixstore custom endpoint mode is not active. Please disable the default endpoint before using customEndpointHelper().",
      ));
    }
    Ok(self.payload(id, client_token, proof).await)
  }

  /// The wire payload for a request (see [`Pixstore::build_payload`]),
  /// counted in the stats.
  pub async fn payload(&self, id: Option<String>, client_token: Option<f64>, proof: Option<String>) -> Vec<u8> {
    let started = std::time::Instant::now();
    let payload = self.build_payload(id, client_token, proof).await;
    self.stats.served(&payload, started.elapsed());
    payload
  }

  /// The wire payload for a request: checks id, proof, then reads the image.
  /// Never fails: unexpected errors become `InternalError`. An id that could
  /// not have been generated cannot carry a valid proof and gets `InvalidProof`
  /// without touching the disk.
  async fn build_payload(&self, id: Option<String>, client_token: Option<f64>, proof: Option<String>) -> Vec<u8> {
    let Some(id) = id.filter(|id| !id.is_empty()) else {
      return wire::state_only(WireState::MissingId);
    };
    let Some(proof) = proof.filter(|proof| !proof.is_empty()) else {
      return wire::state_only(WireState::MissingProof);
    };
    let Ok(active) = self.active() else {
      return wire::state_only(WireState::InternalError);
    };
    let window = active.config.stateless_key_window_length;
    if !id::is_valid(&id) || !active.proofs.verify(&id, &proof, crate::store::now_ms(), window) {
      return wire::state_only(WireState::InvalidProof);
    }
    Arc::clone(&active.store).wire_payload(id, client_token).await
  }
}

impl Pixstore {
  /// The stats of this backend now (`getPixstoreStats`).
  pub fn stats_snapshot(&self) -> StatsSnapshot {
    let active = self.active.read().ok().and_then(|active| active.clone());
    self.stats.snapshot(Gauges {
      backend_open: active.is_some(),
      writer_queue_depth: active.map_or(0, |active| active.store.writer_queue_depth() as u64),
    })
  }

  /// The request log queue of the default endpoint (its listener is set by the binding).
  pub fn request_log(&self) -> &RequestLogQueue {
    &self.stats.request_log
  }
}

impl Handler for Pixstore {
  fn routing(&self) -> Option<Routing> {
    let active = self.active().ok()?;
    let config = &active.config;
    Some(Routing {
      route: config.default_endpoint_route.clone(),
      origin: config.access_control_allow_origin.clone(),
      health_route: config.default_endpoint_health_route.clone(),
      metrics_route: config.default_endpoint_metrics_route.clone(),
    })
  }

  async fn payload(&self, id: String, client_token: Option<f64>, proof: Option<String>) -> Vec<u8> {
    Pixstore::payload(self, Some(id), client_token, proof).await
  }

  fn stats(&self) -> &Stats {
    &self.stats
  }

  fn metrics(&self) -> String {
    self.stats_snapshot().prometheus()
  }
}

/// The warning, once per process, that proofs will not validate across
/// processes: it runs as one of several (node:cluster, PM2), or shares a
/// PostgreSQL database with other instances, without `proofKeys`.
fn unshared_proofs_warning(config: &Config, surroundings: &Surroundings) -> Option<String> {
  static WARNED: AtomicBool = AtomicBool::new(false);
  let shared = surroundings.one_of_several_processes || config.database_url.is_some();
  if !config.proof_keys.is_empty() || !shared || WARNED.swap(true, Ordering::Relaxed) {
    return None;
  }
  let what = match surroundings.one_of_several_processes {
    true => "this process is one of several (a node:cluster worker or a PM2 instance)",
    false => "the records are in PostgreSQL, shared with other instances,",
  };
  Some(format!(
    "pixstore-native: {what} but proofKeys is not set, so a proof made by one process is InvalidProof in the others. Set proofKeys to secrets every process shares, e.g. initPixstoreBackend({{ proofKeys: [process.env.PIXSTORE_PROOF_KEY] }}) with a key from `openssl rand -base64 32`."
  ))
}

/// Where `config` keeps its data (a new in-memory database each time for
/// `':memory:'`, as better-sqlite3 gives pixstore on every init).
fn backend_location(config: &Config, cwd: &Path) -> Result<BackendLocation> {
  if config.database_url.is_none() && config.object_store.is_none() {
    let database = match config.database_path.as_str() {
      ":memory:" => Database::Memory(format!("pixstore-native-{}", hex(&random_bytes::<8>()?))),
      _ => Database::File(config.database_file(cwd)),
    };
    return Ok(BackendLocation::Local(StoreLocation {
      root: config.image_root(cwd),
      database,
      durability: config.durability,
      keyring: Keyring::new(&config.master_keys)?,
      cache_bytes: config.image_cache_bytes,
    }));
  }
  if config.database_url.is_none() && config.database_path == ":memory:" {
    return Err(Error::config(
      "databasePath ':memory:' cannot hold the records of an objectStore (they would outlive the database); use a file or databaseUrl",
    ));
  }
  Ok(BackendLocation::Remote(Box::new(RemoteLocation {
    database_url: config.database_url.as_ref().map(|url| url.expose().to_string()),
    database_file: config.database_file(cwd),
    objects: config.object_store.clone(),
    image_root: config.image_root(cwd),
    pool_size: config.database_pool_size,
    grace_ms: config.orphan_grace_period_ms,
    durability: config.durability,
    keyring: Keyring::new(&config.master_keys)?,
    cache_bytes: config.image_cache_bytes,
  })))
}

/// Refuses a migration whose destination shares its source's images (the same
/// folder or bucket prefix, or one inside the other) or records (the same
/// SQLite file or database URL): a delete, a repair or a sweep in one store
/// would then remove images the other names, maybe their only copy.
pub fn check_migration(from: &[(String, ConfigValue)], to: &[(String, ConfigValue)], cwd: &Path) -> Result<()> {
  let (from, to) = (Config::default().merged(from)?, Config::default().merged(to)?);
  let images = |config: &Config| match &config.object_store {
    Some(objects) => format!(
      "s3://{}/{}/{}",
      objects.endpoint.as_deref().unwrap_or("aws"),
      objects.bucket,
      objects.prefix
    ),
    None => format!("{}/", comparable_path(&config.image_root(cwd)).display()),
  };
  let records = |config: &Config| match &config.database_url {
    Some(url) => url.expose().to_string(),
    None => comparable_path(&config.database_file(cwd)).display().to_string(),
  };
  let (a, b) = (images(&from), images(&to));
  if a.starts_with(&b) || b.starts_with(&a) {
    return Err(Error::config(format!(
      "migrate: the destination keeps its images where the source does ({b} and {a}); give it a folder or bucket prefix of its own"
    )));
  }
  if records(&from) == records(&to) {
    return Err(Error::config(
      "migrate: the destination keeps its records where the source does; give it a database of its own",
    ));
  }
  Ok(())
}

/// `path` made comparable: `.` and `..` removed as written, then its existing
/// part resolved (symbolic links), the rest appended.
fn comparable_path(path: &Path) -> PathBuf {
  use std::path::Component;
  let mut lexical = PathBuf::new();
  for part in path.components() {
    match part {
      Component::CurDir => {}
      Component::ParentDir => {
        lexical.pop();
      }
      other => lexical.push(other),
    }
  }
  let path = lexical.as_path();
  let mut existing = path.to_path_buf();
  let mut rest = Vec::new();
  loop {
    if let Ok(resolved) = existing.canonicalize() {
      return rest.iter().rev().fold(resolved, |path, part| path.join(part));
    }
    match (existing.file_name().map(ToOwned::to_owned), existing.parent()) {
      (Some(name), Some(parent)) => {
        rest.push(name);
        existing = parent.to_path_buf();
      }
      _ => return path.to_path_buf(),
    }
  }
}

/// Opens the store a configuration names for the operator's tools
/// (`pixstore-native/admin`), apart from any backend serving the app:
/// `writable` for operations that change it (repair, import, a migration's
/// destination); otherwise nothing in it is changed (a local store opens
/// read-only, a remote one without its sweeper). Returns the configuration too.
pub fn open_for_admin(
  overrides: &[(String, ConfigValue)],
  cwd: &Path,
  runtime: &Handle,
  writable: bool,
) -> Result<(Arc<dyn Backend>, Config)> {
  let mut config = Config::default().merged(overrides)?;
  if config.database_path == ":memory:" && config.database_url.is_none() {
    return Err(Error::config("databasePath ':memory:' has no store to operate on"));
  }
  // An operation reads each image once: keeping them would only grow memory
  // with the store (at 100,000 images, migrate's RSS grew by 30 MiB).
  config.image_cache_bytes = 0;
  let location = backend_location(&config, cwd)?;
  let backend: Arc<dyn Backend> = match (&location, writable) {
    (BackendLocation::Local(location), false) => Store::open_read_only(location.clone())?,
    _ => open_backend(&location, runtime, writable)?,
  };
  Ok((backend, config))
}

/// Opens the backend at `location`; a clear config error when it cannot be
/// reached (database, bucket, credentials), and then nothing has changed.
/// `maintain`: a remote store runs its sweeper.
fn open_backend(location: &BackendLocation, runtime: &Handle, maintain: bool) -> Result<Arc<dyn Backend>> {
  let cannot = |err: Error| match err.kind {
    crate::error::ErrorKind::Config => err,
    _ => Error::config(format!("Cannot open the Pixstore store: {err}")),
  };
  match location {
    BackendLocation::Local(location) => Ok(Store::open(location.clone()).map_err(|err| match err.kind {
      crate::error::ErrorKind::Config => err,
      // Which paths: an I/O error alone ("Not a directory") does not say.
      _ => Error::config(format!(
        "Cannot open the Pixstore store (imageRootDir {}, databasePath {}): {err}",
        location.root.display(),
        location.database.file().map_or(":memory:".into(), |file| file.display().to_string()),
      )),
    })?),
    BackendLocation::Remote(remote) => {
      let blobs = match &remote.objects {
        Some(objects) => Blobs::s3(objects)?,
        None => Blobs::folder(&remote.image_root).map_err(cannot)?,
      };
      let grace = std::time::Duration::from_millis(remote.grace_ms);
      let probe = blobs.clone();
      block_on(runtime, async move { probe.probe().await })?;
      Ok(match &remote.database_url {
        Some(url) => {
          let (url, pool_size, keyring) = (url.clone(), remote.pool_size, remote.keyring.clone());
          let repo = block_on(runtime, async move { PgRepo::connect(&url, pool_size, keyring).await })?;
          RemoteStore::start(repo, blobs, grace, remote.cache_bytes, runtime, maintain)
        }
        None => {
          let repo =
            SqliteRepo::open(&remote.database_file, remote.durability, remote.keyring.clone()).map_err(cannot)?;
          RemoteStore::start(repo, blobs, grace, remote.cache_bytes, runtime, maintain)
        }
      })
    }
  }
}

/// Runs `future` on `runtime` and waits for it (init is synchronous, as in
/// pixstore), from a thread of its own so it works inside a runtime context too.
fn block_on<T: Send>(runtime: &Handle, future: impl std::future::Future<Output = T> + Send) -> T {
  std::thread::scope(|scope| {
    scope
      .spawn(|| runtime.block_on(future))
      .join()
      .expect("a blocked-on future does not panic")
  })
}

#[cfg(test)]
mod tests {
  use super::*;

  fn local(images: &str, database: &str) -> Vec<(String, ConfigValue)> {
    vec![
      ("imageRootDir".into(), ConfigValue::String(images.into())),
      ("databasePath".into(), ConfigValue::String(database.into())),
    ]
  }

  #[test]
  fn a_migration_to_a_store_sharing_images_or_records_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    let from = local("images", "a.sqlite");
    let refused = |to: Vec<(String, ConfigValue)>| check_migration(&from, &to, cwd).is_err();
    assert!(refused(local("images", "b.sqlite")), "the same folder");
    assert!(refused(local("images/inner", "b.sqlite")), "a folder inside");
    assert!(refused(local(".", "b.sqlite")), "a folder around");
    assert!(
      refused(local("other/../images", "b.sqlite")),
      "the same folder, spelt otherwise"
    );
    assert!(refused(local("other", "a.sqlite")), "the same database");
    assert!(
      !refused(local("images2", "b.sqlite")),
      "a sibling whose name starts alike"
    );
    assert!(!refused(local("other", "b.sqlite")));
  }
}
