//! The backend as one object: configuration, the open store and the default
//! endpoint, and the operations of the pixstore API on top of them (id
//! validation, proofs, wire payloads). No napi types: the binding calls this.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use tokio::runtime::Handle;

use crate::config::{Config, ConfigValue};
use crate::crypto::{random_bytes, ImageMeta};
use crate::endpoint::{Endpoint, Handler, Listen};
use crate::error::{Error, Result};
use crate::id;
use crate::proof::Proofs;
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

/// The configuration and store in use (replaced as a whole on re-init).
pub struct Active {
  /// The effective configuration.
  pub config: Config,
  /// The open store.
  pub store: Arc<Store>,
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
    let database = match config.database_path.as_str() {
      // As better-sqlite3 (pixstore) reads it: a new, empty database on every init.
      ":memory:" => Database::Memory(format!("pixstore-native-{}", hex(&random_bytes::<8>()?))),
      _ => Database::File(config.database_file(cwd)),
    };
    let location = StoreLocation {
      root: config.image_root(cwd),
      database,
      durability: config.durability,
    };
    let current = self.active.read().map_err(|_| poisoned())?.clone();
    let store = match &current {
      Some(active) if *active.store.location() == location && active.store.read_only().is_none() => {
        Arc::clone(&active.store)
      }
      _ => Store::open(location).map_err(|err| Error::config(format!("Cannot open the Pixstore store: {err}")))?,
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
      store: Arc::clone(&store),
      proofs: Proofs::new(&config.proof_keys),
    }));
    *self.config.lock().map_err(|_| poisoned())? = config.clone();
    if let Some(previous) = current.filter(|previous| !Arc::ptr_eq(&previous.store, &store)) {
      runtime.spawn(async move { previous.store.close().await });
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
      active.store.close().await;
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

  /// Copies image bytes out of the caller's memory for `saveImage` /
  /// `updateImage`; refuses an image over `maxImageBytes` before copying.
  pub fn copy_image(&self, image: &[u8]) -> Result<PlainImage> {
    PlainImage::copy_of(image, self.active()?.config.max_image_bytes)
  }

  /// `saveImage`.
  pub async fn save_image(&self, image: PlainImage, dir: Option<String>) -> Result<ImageRecord> {
    let active = self.active()?;
    let prefix = id::prefix_for(dir.as_deref())?;
    let record = active.store.save(image, prefix, Self::rules(&active)).await?;
    Ok(Self::with_proof(&active, record))
  }

  /// `saveImageFromFile`.
  pub async fn save_image_from_file(&self, path: PathBuf, dir: Option<String>) -> Result<ImageRecord> {
    let active = self.active()?;
    let prefix = id::prefix_for(dir.as_deref())?;
    let rules = Self::rules(&active);
    let image = active.store.load_file(path, &rules).await?;
    let record = active.store.save(image, prefix, rules).await?;
    Ok(Self::with_proof(&active, record))
  }

  /// `updateImage`: `Image not found: <id>` without a record (also for an id
  /// that could not have been generated, which never reaches the store).
  pub async fn update_image(&self, id: String, image: PlainImage) -> Result<ImageRecord> {
    let active = self.active()?;
    if !id::is_valid(&id) {
      return Err(Error::not_found(&id));
    }
    let record = active.store.update(id, image, Self::rules(&active)).await?;
    Ok(Self::with_proof(&active, record))
  }

  /// `updateImageFromFile`: like pixstore, a bad file is reported before a missing record.
  pub async fn update_image_from_file(&self, id: String, path: PathBuf) -> Result<ImageRecord> {
    let active = self.active()?;
    let image = active.store.load_file(path, &Self::rules(&active)).await?;
    self.update_image(id, image).await
  }

  /// `deleteImage`: false for an id that could not have been generated.
  pub async fn delete_image(&self, id: String) -> Result<bool> {
    let active = self.active()?;
    if !id::is_valid(&id) {
      return Ok(false);
    }
    active.store.delete(id).await
  }

  /// `imageExists`: false for an id that could not have been generated.
  pub async fn image_exists(&self, id: String) -> Result<bool> {
    let active = self.active()?;
    if !id::is_valid(&id) {
      return Ok(false);
    }
    active.store.exists(id).await
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

  /// The wire payload for a request: checks id, proof, then reads the image.
  /// Never fails: unexpected errors become `InternalError`. An id that could
  /// not have been generated cannot carry a valid proof and gets `InvalidProof`
  /// without touching the disk.
  pub async fn payload(&self, id: Option<String>, client_token: Option<f64>, proof: Option<String>) -> Vec<u8> {
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
    active.store.wire_payload(id, client_token).await
  }
}

impl Handler for Pixstore {
  fn routing(&self) -> Option<(String, String)> {
    let active = self.active().ok()?;
    Some((
      active.config.default_endpoint_route.clone(),
      active.config.access_control_allow_origin.clone(),
    ))
  }

  async fn payload(&self, id: String, client_token: Option<f64>, proof: Option<String>) -> Vec<u8> {
    Pixstore::payload(self, Some(id), client_token, proof).await
  }
}

/// The warning, once per process, that proofs will not validate across the
/// processes of a cluster: it runs as one of several (node:cluster, PM2)
/// without `proofKeys`.
fn unshared_proofs_warning(config: &Config, surroundings: &Surroundings) -> Option<String> {
  static WARNED: AtomicBool = AtomicBool::new(false);
  if !config.proof_keys.is_empty() || !surroundings.one_of_several_processes || WARNED.swap(true, Ordering::Relaxed) {
    return None;
  }
  Some(
    "pixstore-native: this process is one of several (a node:cluster worker or a PM2 instance) but proofKeys is not set, so a proof made by one process is InvalidProof in the others. Set proofKeys to secrets every process shares, e.g. initPixstoreBackend({ proofKeys: [process.env.PIXSTORE_PROOF_KEY] }) with a key from `openssl rand -base64 32`."
      .to_string(),
  )
}
