//! The napi surface: gives each JS environment (the main thread, each
//! `worker_thread`) a backend of its own, converts JS arguments (copying
//! image bytes out of JS memory before the call returns), runs the service
//! off the JS thread for async calls, and turns core errors into JS errors
//! tagged with their kind (`PIXSTORE_ERROR`, `PIXSTORE_CONFIG`,
//! `PIXSTORE_INTERNAL`); the hand-written JS layer maps those to classes.

use std::collections::{BTreeMap, HashMap};
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use napi::bindgen_prelude::{
  within_runtime_if_available, Buffer, FromNapiValue, Function, PromiseRaw, TypeName, ValidateNapiValue,
};
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::{sys, Env, Status, ValueType};
use napi_derive::napi;

mod settle;

use settle::Settler;

use crate::admin;
use crate::config::ConfigValue;
use crate::error::{Error, ErrorKind};
use crate::request_log::RequestLog;
use crate::service::{open_for_admin, ImageRecord, Pixstore, Surroundings};
use crate::stats::{HistogramSnapshot, StatsSnapshot, ENDPOINT_STATUSES};
use crate::store::{blocking, ImageRules};
use crate::wire::WireState;

/// The code the JS layer reads off an error message's `[CODE] ` prefix.
/// (napi-rs only carries its own `Status` as `error.code` out of exported
/// functions, so the kind travels in the message and the JS layer strips it.)
fn code_of(kind: ErrorKind) -> &'static str {
  match kind {
    ErrorKind::Pixstore => "PIXSTORE_ERROR",
    ErrorKind::Config => "PIXSTORE_CONFIG",
    ErrorKind::Internal => "PIXSTORE_INTERNAL",
  }
}

fn to_js(err: Error) -> napi::Error {
  napi::Error::from_reason(format!("[{}] {}", code_of(err.kind), err.message))
}

/// What one JS environment has: its backend and the settler of its promises.
struct EnvState {
  backend: Arc<Pixstore>,
  settler: Settler,
}

/// The state of the calling JS environment, created on first use. pixstore
/// keeps its state in module variables, which every environment has its own
/// copy of; so does this, through napi instance data, and the environment's
/// cleanup hook closes it when the environment ends (a worker exiting, with
/// its endpoint running or writes in flight), leaving every other one as it is.
fn state(env: &Env) -> napi::Result<&'static EnvState> {
  if let Some(state) = env.get_instance_data::<EnvState>()? {
    return Ok(state);
  }
  let backend = Arc::new(Pixstore::default());
  let settler = Settler::new(env)?;
  env.set_instance_data(
    EnvState {
      backend: Arc::clone(&backend),
      settler,
    },
    (),
    |_| {},
  )?;
  env.add_env_cleanup_hook(backend, |backend| backend.close_blocking())?;
  Ok(env.get_instance_data::<EnvState>()?.expect("just set"))
}

fn backend(env: &Env) -> napi::Result<Arc<Pixstore>> {
  Ok(Arc::clone(&state(env)?.backend))
}

/// Runs `future` off the JS thread; a promise of its outcome.
fn spawn<'env, T, F>(env: &'env Env, future: F) -> napi::Result<PromiseRaw<'env, T>>
where
  T: napi::bindgen_prelude::ToNapiValue + Send + 'static,
  F: std::future::Future<Output = napi::Result<T>> + Send + 'static,
{
  state(env)?.settler.spawn(env, future)
}

/// Decryption meta of an image (standard base64).
#[napi(object, js_name = "ImageDecryptionMeta")]
pub struct JsImageMeta {
  /// AES-256 key.
  pub key: String,
  /// GCM IV.
  pub iv: String,
  /// GCM tag.
  pub tag: String,
}

/// An image record, as `getImageRecord` and the write calls return it.
#[napi(object, js_name = "ImageRecord")]
pub struct JsImageRecord {
  /// The image id.
  pub id: String,
  /// Version token (`Date.now()` of the last write, strictly increasing).
  pub token: f64,
  /// Decryption meta.
  pub meta: JsImageMeta,
  /// Proof of access for the endpoint.
  pub stateless_proof: String,
}

impl From<ImageRecord> for JsImageRecord {
  fn from(record: ImageRecord) -> Self {
    JsImageRecord {
      id: record.id,
      token: record.token as f64,
      meta: JsImageMeta {
        key: record.meta.key,
        iv: record.meta.iv,
        tag: record.meta.tag,
      },
      stateless_proof: record.stateless_proof,
    }
  }
}

/// The own enumerable keys of a configuration object and their values, read
/// without a detour through JSON (which cannot carry `NaN` or `Infinity`).
pub struct JsConfig(Vec<(String, ConfigValue)>);

/// How deep a configuration value may nest (`objectStore` is one level).
const MAX_CONFIG_DEPTH: u32 = 8;

/// Reads any JS value as a [`ConfigValue`]; `None` for `undefined` (an absent key).
///
/// # Safety
/// `env` and `value` must be valid for the current callback.
unsafe fn config_value(env: sys::napi_env, value: sys::napi_value, depth: u32) -> napi::Result<Option<ConfigValue>> {
  let kind = napi::type_of!(env, value)?;
  Ok(Some(match kind {
    ValueType::Undefined => return Ok(None),
    ValueType::Null => ConfigValue::Null,
    ValueType::Boolean => ConfigValue::Bool(bool::from_napi_value(env, value)?),
    ValueType::Number => ConfigValue::Number(f64::from_napi_value(env, value)?),
    ValueType::String => ConfigValue::String(String::from_napi_value(env, value)?),
    ValueType::Object if depth > 0 => {
      let mut is_array = false;
      napi::check_status!(sys::napi_is_array(env, value, &mut is_array))?;
      if is_array {
        let mut length = 0;
        napi::check_status!(sys::napi_get_array_length(env, value, &mut length))?;
        let mut items = Vec::with_capacity(length as usize);
        for index in 0..length {
          let mut item = ptr::null_mut();
          napi::check_status!(sys::napi_get_element(env, value, index, &mut item))?;
          items.push(config_value(env, item, depth - 1)?.unwrap_or(ConfigValue::Other("undefined")));
        }
        ConfigValue::Array(items)
      } else {
        ConfigValue::Object(config_entries(env, value, depth - 1)?)
      }
    }
    ValueType::Object => ConfigValue::Other("object"),
    ValueType::Function => ConfigValue::Other("function"),
    ValueType::Symbol => ConfigValue::Other("symbol"),
    ValueType::BigInt => ConfigValue::Other("bigint"),
    _ => ConfigValue::Other("external"),
  }))
}

/// The own enumerable string keys of `object` with their values; keys whose value is `undefined` are left out.
///
/// # Safety
/// `env` and `object` must be valid for the current callback, `object` an object.
unsafe fn config_entries(
  env: sys::napi_env,
  object: sys::napi_value,
  depth: u32,
) -> napi::Result<Vec<(String, ConfigValue)>> {
  let mut keys = ptr::null_mut();
  napi::check_status!(sys::napi_get_all_property_names(
    env,
    object,
    sys::KeyCollectionMode::own_only,
    sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
    sys::KeyConversion::numbers_to_strings,
    &mut keys,
  ))?;
  let mut count = 0;
  napi::check_status!(sys::napi_get_array_length(env, keys, &mut count))?;
  let mut entries = Vec::with_capacity(count as usize);
  for index in 0..count {
    let mut key = ptr::null_mut();
    napi::check_status!(sys::napi_get_element(env, keys, index, &mut key))?;
    let mut value = ptr::null_mut();
    napi::check_status!(sys::napi_get_property(env, object, key, &mut value))?;
    if let Some(value) = config_value(env, value, depth)? {
      entries.push((String::from_napi_value(env, key)?, value));
    }
  }
  Ok(entries)
}

impl FromNapiValue for JsConfig {
  unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
    Ok(JsConfig(config_entries(env, value, MAX_CONFIG_DEPTH)?))
  }
}

impl TypeName for JsConfig {
  fn type_name() -> &'static str {
    "PixstoreBackendConfig"
  }

  fn value_type() -> ValueType {
    ValueType::Object
  }
}

impl ValidateNapiValue for JsConfig {}

/// What `initPixstoreBackend` applied, for the JS layer.
#[napi(object)]
pub struct InitOutcome {
  /// The error handling mode now in effect.
  pub error_handling_mode: String,
  /// Warnings for `console.warn` (a store that opened read-only).
  pub warnings: Vec<String>,
}

/// Applies a configuration merged over the current one, or over the defaults
/// when `fromDefaults` (the first init of a JS module instance).
/// `oneOfSeveralProcesses`: this process is a node:cluster worker or a PM2 instance.
#[napi(ts_args_type = "config: Record<string, unknown>, fromDefaults: boolean, oneOfSeveralProcesses: boolean")]
pub fn init_pixstore_backend(
  env: &Env,
  config: JsConfig,
  from_defaults: bool,
  one_of_several_processes: bool,
) -> napi::Result<InitOutcome> {
  let cwd = std::env::current_dir().map_err(|err| to_js(err.into()))?;
  let runtime = within_runtime_if_available(tokio::runtime::Handle::current);
  let surroundings = Surroundings {
    cwd,
    one_of_several_processes,
  };
  let applied = backend(env)?
    .init(&config.0, from_defaults, &runtime, &surroundings)
    .map_err(to_js)?;
  Ok(InitOutcome {
    error_handling_mode: applied.config.error_handling_mode.clone(),
    warnings: applied.warnings,
  })
}

/// Stops the endpoint and closes the store.
#[napi(ts_return_type = "Promise<void>")]
pub fn close_pixstore_backend(env: &Env) -> napi::Result<PromiseRaw<'_, ()>> {
  let backend = backend(env)?;
  spawn(env, async move {
    backend.close().await;
    Ok(())
  })
}

/// The record of an image, or null (synchronous).
#[napi]
pub fn get_image_record(env: &Env, id: String) -> napi::Result<Option<JsImageRecord>> {
  backend(env)?
    .image_record(&id)
    .map(|record| record.map(Into::into))
    .map_err(to_js)
}

/// The record of an image as the database has it now, or null.
#[napi(ts_return_type = "Promise<ImageRecord | null>")]
pub fn get_image_record_async(env: &Env, id: String) -> napi::Result<PromiseRaw<'_, Option<JsImageRecord>>> {
  let backend = backend(env)?;
  spawn(env, async move {
    let record = backend.fetch_image_record(id).await;
    record.map(|record| record.map(Into::into)).map_err(to_js)
  })
}

/// Encrypts and stores a new image. The bytes are copied before this returns.
#[napi(ts_return_type = "Promise<ImageRecord>")]
pub fn save_image<'env>(
  env: &'env Env,
  buffer: &[u8],
  dir: Option<String>,
) -> napi::Result<PromiseRaw<'env, JsImageRecord>> {
  let backend = backend(env)?;
  let image = backend.copy_image(buffer);
  spawn(env, async move {
    let record = backend.save_image(image, dir).await;
    record.map(Into::into).map_err(to_js)
  })
}

/// Reads, encrypts and stores a new image from a file.
#[napi(ts_return_type = "Promise<ImageRecord>")]
pub fn save_image_from_file(
  env: &Env,
  file_path: String,
  dir: Option<String>,
) -> napi::Result<PromiseRaw<'_, JsImageRecord>> {
  let backend = backend(env)?;
  spawn(env, async move {
    let record = backend.save_image_from_file(file_path.into(), dir).await;
    record.map(Into::into).map_err(to_js)
  })
}

/// Replaces an existing image. The bytes are copied before this returns.
#[napi(ts_return_type = "Promise<ImageRecord>")]
pub fn update_image<'env>(env: &'env Env, id: String, buffer: &[u8]) -> napi::Result<PromiseRaw<'env, JsImageRecord>> {
  let backend = backend(env)?;
  let image = backend.copy_image(buffer);
  spawn(env, async move {
    let record = backend.update_image(id, image).await;
    record.map(Into::into).map_err(to_js)
  })
}

/// Replaces an existing image with a file's content.
#[napi(ts_return_type = "Promise<ImageRecord>")]
pub fn update_image_from_file(env: &Env, id: String, file_path: String) -> napi::Result<PromiseRaw<'_, JsImageRecord>> {
  let backend = backend(env)?;
  spawn(env, async move {
    let record = backend.update_image_from_file(id, file_path.into()).await;
    record.map(Into::into).map_err(to_js)
  })
}

/// Deletes an image; true if its file or record existed.
#[napi(ts_return_type = "Promise<boolean>")]
pub fn delete_image(env: &Env, id: String) -> napi::Result<PromiseRaw<'_, bool>> {
  let backend = backend(env)?;
  spawn(env, async move { backend.delete_image(id).await.map_err(to_js) })
}

/// Whether an image's file or record exists.
#[napi(ts_return_type = "Promise<boolean>")]
pub fn image_exists(env: &Env, id: String) -> napi::Result<PromiseRaw<'_, bool>> {
  let backend = backend(env)?;
  // A found record answers at once (a point read, as getImageRecord makes on this thread).
  match backend.image_exists_by_record(&id) {
    Ok(Some(exists)) => return state(env)?.settler.settled(env, Ok(exists)),
    Ok(None) => {}
    Err(err) => return state(env)?.settler.settled(env, Err(to_js(err))),
  }
  spawn(env, async move { backend.image_exists(id).await.map_err(to_js) })
}

/// The wire payload for a custom endpoint.
#[napi(ts_return_type = "Promise<Buffer>")]
pub fn custom_endpoint_helper(
  env: &Env,
  image_id: Option<String>,
  client_token: Option<f64>,
  stateless_proof: Option<String>,
) -> napi::Result<PromiseRaw<'_, Buffer>> {
  let backend = backend(env)?;
  spawn(env, async move {
    let payload = backend
      .custom_endpoint_payload(image_id, client_token, stateless_proof)
      .await;
    payload.map(Buffer::from).map_err(to_js)
  })
}

/// Progress of an admin operation, for its `onProgress` callback.
#[napi(object)]
pub struct AdminProgress {
  /// What it is doing: `records`, `files` or `audit`.
  pub phase: String,
  /// Items done.
  pub done: f64,
  /// Items in all, when known.
  pub total: Option<f64>,
}

type ProgressCallback = ThreadsafeFunction<AdminProgress, (), AdminProgress, Status, false>;

/// Cancellation flags of running admin operations, by the run id JS chose.
fn admin_runs() -> &'static Mutex<HashMap<u32, Arc<AtomicBool>>> {
  static RUNS: OnceLock<Mutex<HashMap<u32, Arc<AtomicBool>>>> = OnceLock::new();
  RUNS.get_or_init(Default::default)
}

/// The value of option `name`.
fn option<'a>(options: &'a [(String, ConfigValue)], name: &str) -> Option<&'a ConfigValue> {
  options.iter().find(|(key, _)| key == name).map(|(_, value)| value)
}

/// Runs an operator's tool (`verify`, `stats`, `export`, `import`, `migrate`)
/// on the stores `configs` name, off the JS thread; resolves with its report
/// as JSON text (SPEC "Operating the store"), which `admin.js` parses (a report
/// of 100,000 exported images as a `serde_json::Value` took ~70 MB more at
/// peak). `adminCancel(runId)` stops it cleanly.
#[napi(
  ts_args_type = "command: string, configs: Array<Record<string, unknown>>, options: Record<string, unknown>, runId: number, onProgress: (progress: AdminProgress) => void",
  ts_return_type = "Promise<string>"
)]
pub fn admin_run(
  env: &Env,
  command: String,
  configs: Vec<JsConfig>,
  options: JsConfig,
  run_id: u32,
  on_progress: ProgressCallback,
) -> napi::Result<PromiseRaw<'_, String>> {
  let cwd = std::env::current_dir().map_err(|err| to_js(err.into()))?;
  let runtime = within_runtime_if_available(tokio::runtime::Handle::current);
  let cancelled = Arc::new(AtomicBool::new(false));
  if let Ok(mut runs) = admin_runs().lock() {
    runs.insert(run_id, Arc::clone(&cancelled));
  }
  let on_progress = Arc::new(on_progress);
  let control = admin::Control::new(cancelled, move |progress| {
    let progress = AdminProgress {
      phase: progress.phase.to_string(),
      done: progress.done as f64,
      total: progress.total.map(|total| total as f64),
    };
    on_progress.call(progress, ThreadsafeFunctionCallMode::NonBlocking);
  });
  let options = options.0;
  let configs: Vec<Vec<(String, ConfigValue)>> = configs.into_iter().map(|config| config.0).collect();
  spawn(env, async move {
    let report = run_admin(&command, configs, &options, &cwd, &runtime, &control).await;
    if let Ok(mut runs) = admin_runs().lock() {
      runs.remove(&run_id);
    }
    report.map_err(to_js)
  })
}

/// Asks a running admin operation to stop after the items in progress.
#[napi]
pub fn admin_cancel(run_id: u32) {
  if let Some(cancelled) = admin_runs().lock().ok().and_then(|runs| runs.get(&run_id).cloned()) {
    cancelled.store(true, Ordering::Relaxed);
  }
}

async fn run_admin(
  command: &str,
  configs: Vec<Vec<(String, ConfigValue)>>,
  options: &[(String, ConfigValue)],
  cwd: &std::path::Path,
  runtime: &tokio::runtime::Handle,
  control: &admin::Control,
) -> crate::error::Result<String> {
  let writable = match command {
    "verify" => option(options, "repair")
      .and_then(ConfigValue::as_bool)
      .unwrap_or(false),
    "import" | "rekey" => true,
    _ => false,
  };
  let open = |config: Vec<(String, ConfigValue)>, writable: bool| {
    let (cwd, runtime) = (cwd.to_owned(), runtime.clone());
    async move { blocking(move || open_for_admin(&config, &cwd, &runtime, writable)).await }
  };
  if let [from, to] = configs.as_slice() {
    crate::service::check_migration(from, to, cwd)?;
  }
  let mut configs = configs.into_iter();
  let Some(first) = configs.next() else {
    return Err(Error::config("no store configuration given"));
  };
  let folder = || {
    option(options, "folder")
      .and_then(ConfigValue::as_str)
      .map(std::path::PathBuf::from)
      .map(|folder| cwd.join(folder))
      .ok_or_else(|| Error::config("a folder is needed"))
  };
  let unwrap = option(options, "unwrap")
    .and_then(ConfigValue::as_bool)
    .unwrap_or(false);
  let (backend, config) = open(first, writable).await?;
  let report = async {
    Ok(match command {
      "verify" => serde_json::to_string(&admin::verify(Arc::clone(&backend), writable, control).await?)?,
      "stats" => serde_json::to_string(&admin::stats(Arc::clone(&backend), &config.image_formats, control).await?)?,
      "export" => {
        serde_json::to_string(&admin::export(Arc::clone(&backend), &folder()?, &config.image_formats, control).await?)?
      }
      "import" => {
        let prefix = option(options, "dir").and_then(ConfigValue::as_str).map(String::from);
        let concurrency = option(options, "concurrency")
          .and_then(ConfigValue::as_f64)
          .filter(|n| n.fract() == 0.0 && (1.0..=256.0).contains(n))
          .unwrap_or(8.0) as usize;
        let rules = ImageRules {
          formats: config.image_formats.clone(),
          max_bytes: config.max_image_bytes,
        };
        serde_json::to_string(
          &admin::import(Arc::clone(&backend), &folder()?, prefix, concurrency, rules, control).await?,
        )?
      }
      "migrate" => {
        let destination = configs
          .next()
          .ok_or_else(|| Error::config("migrate needs the destination's configuration"))?;
        let (to, _) = open(destination, true).await?;
        let report = admin::migrate(Arc::clone(&backend), Arc::clone(&to), control).await;
        to.close().await;
        serde_json::to_string(&report?)?
      }
      "rekey" if !unwrap && config.master_keys.is_empty() => {
        return Err(Error::config("rekey needs masterKeys in the configuration (or unwrap)"));
      }
      "rekey" => serde_json::to_string(&admin::rekey(Arc::clone(&backend), unwrap, control).await?)?,
      other => return Err(Error::config(format!("unknown admin command {other:?}"))),
    })
  }
  .await;
  backend.close().await;
  report
}

/// Counts by write operation.
#[napi(object)]
pub struct PixstoreWriteCounts {
  /// `saveImage`, `saveImageFromFile`.
  pub save: f64,
  /// `updateImage`, `updateImageFromFile`.
  pub update: f64,
  /// `deleteImage`.
  pub delete: f64,
}

/// One bucket of a histogram: observations less than or equal to `le` seconds.
#[napi(object)]
pub struct PixstoreHistogramBucket {
  /// Upper bound in seconds (`Infinity` for the last bucket).
  pub le: f64,
  /// Observations up to `le` (cumulative, as in Prometheus).
  pub count: f64,
}

/// A duration histogram, in seconds.
#[napi(object)]
pub struct PixstoreHistogram {
  /// Cumulative buckets by upper bound.
  pub buckets: Vec<PixstoreHistogramBucket>,
  /// Sum of the observations, in seconds.
  pub sum: f64,
  /// Number of observations.
  pub count: f64,
}

impl From<&HistogramSnapshot> for PixstoreHistogram {
  fn from(snapshot: &HistogramSnapshot) -> Self {
    PixstoreHistogram {
      buckets: snapshot
        .buckets
        .iter()
        .map(|(le, count)| PixstoreHistogramBucket {
          le: *le,
          count: *count as f64,
        })
        .collect(),
      sum: snapshot.sum_seconds,
      count: snapshot.count as f64,
    }
  }
}

/// Durations of successful writes by operation.
#[napi(object)]
pub struct PixstoreWriteDurations {
  /// Saves.
  pub save: PixstoreHistogram,
  /// Updates.
  pub update: PixstoreHistogram,
  /// Deletes.
  pub delete: PixstoreHistogram,
}

/// The default endpoint's numbers.
#[napi(object)]
pub struct PixstoreEndpointStats {
  /// Open TCP connections.
  pub open_connections: f64,
  /// Responses by HTTP status code.
  #[napi(ts_type = "Record<'200' | '204' | '400' | '404' | '503', number>")]
  pub responses: BTreeMap<String, f64>,
}

/// The numbers of this environment's backend (`getPixstoreStats`).
#[napi(object)]
pub struct PixstoreStats {
  /// Whether the backend is initialized and not closed.
  pub backend_open: bool,
  /// Images stored by saves.
  pub saves: f64,
  /// Images replaced by updates.
  pub updates: f64,
  /// Deletes that completed.
  pub deletes: f64,
  /// Writes that failed, by operation.
  pub write_failures: PixstoreWriteCounts,
  /// Writes started and not finished.
  pub writes_in_flight: f64,
  /// Jobs waiting for the local store's writer thread (0 for remote stores).
  pub writer_queue_depth: f64,
  /// Image bytes stored by successful saves and updates.
  pub received_bytes: f64,
  /// Wire payloads built, by wire state name.
  #[napi(
    ts_type = "Record<'Success' | 'Updated' | 'NotFound' | 'MissingID' | 'MissingProof' | 'InvalidProof' | 'InternalError', number>"
  )]
  pub served: BTreeMap<String, f64>,
  /// Bytes of the wire payloads built.
  pub served_bytes: f64,
  /// Durations of successful writes.
  pub write_duration: PixstoreWriteDurations,
  /// Durations of payload builds.
  pub serve_duration: PixstoreHistogram,
  /// The default endpoint.
  pub endpoint: PixstoreEndpointStats,
  /// Request log entries dropped because the logger fell behind.
  pub request_log_dropped: f64,
}

impl From<StatsSnapshot> for PixstoreStats {
  fn from(snapshot: StatsSnapshot) -> Self {
    let counts = |values: [u64; 3]| PixstoreWriteCounts {
      save: values[0] as f64,
      update: values[1] as f64,
      delete: values[2] as f64,
    };
    let [save, update, delete] = &snapshot.write_duration;
    PixstoreStats {
      backend_open: snapshot.backend_open,
      saves: snapshot.writes[0] as f64,
      updates: snapshot.writes[1] as f64,
      deletes: snapshot.writes[2] as f64,
      write_failures: counts(snapshot.write_failures),
      writes_in_flight: snapshot.writes_in_flight as f64,
      writer_queue_depth: snapshot.writer_queue_depth as f64,
      received_bytes: snapshot.received_bytes as f64,
      served: WireState::ALL
        .iter()
        .map(|state| (state.name().to_string(), snapshot.served[*state as usize] as f64))
        .collect(),
      served_bytes: snapshot.served_bytes as f64,
      write_duration: PixstoreWriteDurations {
        save: save.into(),
        update: update.into(),
        delete: delete.into(),
      },
      serve_duration: (&snapshot.serve_duration).into(),
      endpoint: PixstoreEndpointStats {
        open_connections: snapshot.open_connections as f64,
        responses: ENDPOINT_STATUSES
          .iter()
          .zip(snapshot.endpoint_responses)
          .map(|(status, count)| (status.to_string(), count as f64))
          .collect(),
      },
      request_log_dropped: snapshot.request_log_dropped as f64,
    }
  }
}

/// The numbers of this environment's backend: counters, gauges, histograms.
/// Never fails (zeros before the first init).
#[napi]
pub fn get_pixstore_stats(env: &Env) -> napi::Result<PixstoreStats> {
  Ok(backend(env)?.stats_snapshot().into())
}

/// The same numbers in Prometheus' text exposition format 0.0.4.
#[napi]
pub fn get_pixstore_metrics(env: &Env) -> napi::Result<String> {
  Ok(backend(env)?.stats_snapshot().prometheus())
}

/// One request the default endpoint answered, for the request log.
#[napi(object, use_nullable = true)]
pub struct PixstoreRequestLog {
  /// Who answered: `'endpoint'` (the default endpoint).
  pub source: String,
  /// The request method.
  pub method: String,
  /// The route of ours the path matched (image, health or metrics route), or null.
  pub route: Option<String>,
  /// The image id asked for (percent-decoded, a valid id), or null.
  pub image_id: Option<String>,
  /// The wire state of the payload served (`WirePayloadState` name), or null.
  pub state: Option<String>,
  /// The HTTP status.
  pub status: u32,
  /// Body bytes sent (0 for HEAD and 204).
  pub bytes: f64,
  /// From the request's arrival to its response being ready, in milliseconds.
  pub duration_ms: f64,
  /// The client's IP address.
  pub remote_address: Option<String>,
}

impl From<RequestLog> for PixstoreRequestLog {
  fn from(entry: RequestLog) -> Self {
    PixstoreRequestLog {
      source: "endpoint".to_string(),
      method: entry.method,
      route: entry.route,
      image_id: entry.image_id,
      state: entry.state.map(|state| state.name().to_string()),
      status: u32::from(entry.status),
      bytes: entry.bytes as f64,
      duration_ms: entry.duration.as_secs_f64() * 1000.0,
      remote_address: entry.remote_address.map(|address| address.ip().to_string()),
    }
  }
}

/// A weak threadsafe function (it does not keep Node alive) that receives
/// the queued entries, taken on the JS thread when it runs.
type RequestLogCallback = ThreadsafeFunction<(), (), Vec<PixstoreRequestLog>, Status, false, true>;

/// Sets (or with null removes) the function that receives the default
/// endpoint's request log, in batches, on the JS thread. It must not throw
/// (the JS layer wraps the user's logger): a throw here is an uncaught exception.
#[napi(ts_args_type = "listener: ((entries: PixstoreRequestLog[]) => void) | null | undefined")]
pub fn set_request_log_listener(
  env: &Env,
  listener: Option<Function<Vec<PixstoreRequestLog>, ()>>,
) -> napi::Result<()> {
  let backend = backend(env)?;
  let Some(listener) = listener else {
    backend.request_log().set_listener(None);
    return Ok(());
  };
  let owner = Arc::downgrade(&backend);
  let callback: RequestLogCallback = listener
    .build_threadsafe_function::<()>()
    .weak::<true>()
    .build_callback(move |_| {
      let entries = owner.upgrade().map(|backend| backend.request_log().take());
      Ok(entries.unwrap_or_default().into_iter().map(Into::into).collect())
    })?;
  backend.request_log().set_listener(Some(Arc::new(move || {
    callback.call((), ThreadsafeFunctionCallMode::NonBlocking) == Status::Ok
  })));
  Ok(())
}
