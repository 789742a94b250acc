//! Remote stores, for apps that outgrow one machine: records in PostgreSQL
//! (pixstore's table, plus an in-process replica so `getImageRecord` stays
//! synchronous) or SQLite, and encrypted bytes as objects in S3-compatible
//! storage or a folder (see [`blobs`]). Every guarantee of the local store
//! holds (SPEC "Several processes and hosts"):
//!
//! - **No torn image.** Objects are never overwritten: each write uploads a
//!   new object (named by its GCM tag) before the row naming it commits; a
//!   reader reads the row, then the object it names, and reads the row again
//!   if that object is already gone.
//! - **Crash safety.** An intent row is committed before the upload and
//!   removed in the transaction that commits the record. Superseded and
//!   deleted objects become garbage rows, due after `orphanGracePeriodMs`
//!   (readers in flight finish first); every instance's sweeper takes due
//!   garbage and expired intents (atomically, so one instance handles each)
//!   and removes their objects; a full sweep removes any object no row names.
//! - **Tokens strictly increase** per id across hosts: the database computes
//!   `greatest(now, token + 1)` in the committing transaction.

pub mod blobs;
pub mod postgres;
pub mod repo;
pub mod sqlite;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use tokio::runtime::Handle;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::backend::{Backend, BoxFuture, ImageCheck, Problem, ProblemKind};
use crate::cache::ImageCache;
use crate::crypto::belongs_to;
use crate::error::{Error, Result};
use crate::id;
use crate::store::{blocking, encryption_parallelism, ImageRules, Listed, PlainImage, StoredRecord, SMALL_IMAGE_BYTES};
use crate::wire::{self, WireState};
use blobs::Blobs;
use repo::{Commit, Repo};

/// How often the sweeper looks for due garbage and expired intents, at most.
const SWEEP_INTERVAL: Duration = Duration::from_secs(30);
/// How often a full sweep (every object against the rows) runs.
const FULL_SWEEP_INTERVAL: Duration = Duration::from_secs(6 * 3600);
/// Rows the sweeper takes at once.
const SWEEP_BATCH: i64 = 200;
/// Calls a store can have in flight; `close` waits for all of them.
const MAX_IN_FLIGHT: u32 = 1 << 20;

/// Installs ring as rustls's crypto provider for the process (once), for
/// TLS to PostgreSQL and S3 without aws-lc.
pub fn install_tls_provider() {
  static INSTALLED: OnceLock<()> = OnceLock::new();
  INSTALLED.get_or_init(|| {
    let _ = rustls::crypto::ring::default_provider().install_default();
  });
}

/// A store whose records are in `R` and whose bytes are objects in `blobs`.
pub struct RemoteStore<R: Repo> {
  repo: R,
  blobs: Blobs,
  grace: Duration,
  /// Large images encrypted at once (as in the local store).
  encryption_slots: Arc<Semaphore>,
  /// One permit per call in flight; `close` takes them all.
  in_flight: Arc<Semaphore>,
  sweeper: Mutex<Option<JoinHandle<()>>>,
  runtime: Handle,
  cache: ImageCache,
}

impl<R: Repo> RemoteStore<R> {
  /// A store on `repo` and `blobs`, whose sweeper runs on `runtime` every
  /// `min(grace, 30 s)` when `sweep` (not for a store only read, such as the
  /// source of a migration).
  pub fn start(
    repo: R,
    blobs: Blobs,
    grace: Duration,
    cache_bytes: u64,
    runtime: &Handle,
    sweep: bool,
  ) -> Arc<RemoteStore<R>> {
    let store = Arc::new(RemoteStore {
      repo,
      blobs,
      grace,
      encryption_slots: Arc::new(Semaphore::new(encryption_parallelism())),
      in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT as usize)),
      sweeper: Mutex::new(None),
      runtime: runtime.clone(),
      cache: ImageCache::new(cache_bytes),
    });
    if !sweep {
      return store;
    }
    let weak = Arc::downgrade(&store);
    let interval = grace.min(SWEEP_INTERVAL).max(Duration::from_millis(50));
    let sweeper = runtime.spawn(async move {
      let mut last_full_sweep: Option<tokio::time::Instant> = None;
      loop {
        tokio::time::sleep(interval).await;
        let Some(store) = weak.upgrade() else { return };
        let _ = store.sweep_due().await;
        if last_full_sweep.is_none_or(|at| at.elapsed() >= FULL_SWEEP_INTERVAL) {
          last_full_sweep = Some(tokio::time::Instant::now());
          let _ = store.sweep_all().await;
        }
      }
    });
    *store.sweeper.lock().expect("a new mutex") = Some(sweeper);
    store
  }

  /// The metadata repository.
  pub fn repo(&self) -> &R {
    &self.repo
  }

  /// The objects.
  pub fn blobs(&self) -> &Blobs {
    &self.blobs
  }

  fn enter(&self) -> Result<OwnedSemaphorePermit> {
    Arc::clone(&self.in_flight)
      .try_acquire_owned()
      .map_err(|_| Error::not_initialized())
  }

  /// Encrypts (off the JS thread, large images one slot at a time), uploads
  /// a new object, and commits the record that names it.
  async fn write(&self, id: String, new: bool, image: PlainImage, rules: ImageRules) -> Result<StoredRecord> {
    let slot = match image.bytes().len() <= SMALL_IMAGE_BYTES {
      true => None,
      false => Some(
        Arc::clone(&self.encryption_slots)
          .acquire_owned()
          .await
          .map_err(|_| Error::not_initialized())?,
      ),
    };
    let (ciphertext, meta) = blocking(move || image.seal(&rules)).await?;
    drop(slot);
    let key = self.blobs.key(&id, &meta.tag)?;
    let intent = self.repo.begin_write(&id, &meta.tag).await?;
    if let Err(err) = self.blobs.put(&key, ciphertext.into_bytes()).await {
      // Nothing names the object: forget the intent (or leave it to the sweeper).
      let _ = self.blobs.delete(&key).await;
      let _ = self.repo.abandon_write(intent).await;
      return Err(err);
    }
    let commit = Commit {
      intent,
      id: &id,
      new,
      meta: &meta,
      grace: self.grace,
    };
    match self.repo.commit_write(commit).await {
      Ok(record) => Ok(record),
      Err(err) => {
        // The commit may have failed before or after the database applied
        // it (a lost connection): only a refused commit (the intent is still
        // there, or was swept) allows removing the object. Otherwise the
        // sweeper decides once the intent expires.
        if err.kind == crate::error::ErrorKind::Pixstore || matches!(self.repo.abandon_write(intent).await, Ok(true)) {
          let _ = self.blobs.delete(&key).await;
        }
        Err(err)
      }
    }
  }

  /// A consistent (record, ciphertext) pair: the row, then the object it
  /// names; an object already gone means the row changed, so read it again
  /// from the database. `None` when there is no record.
  async fn read(&self, id: &str, client_token: Option<f64>) -> Result<Option<(StoredRecord, bytes::Bytes)>> {
    // The replica first; the database when it has nothing, or when the
    // client holds a token the replica has not seen yet (a write elsewhere).
    let mut record = self.repo.cached_record(id)?;
    let stale = |record: &Option<StoredRecord>| match (record, client_token) {
      (None, _) => true,
      (Some(record), Some(token)) => (record.token as f64) < token,
      _ => false,
    };
    if stale(&record) {
      record = self.repo.fetch_record(id).await?;
    }
    for _ in 0..5 {
      let Some(current) = record else { return Ok(None) };
      if let Some(ciphertext) = self.cache.get(id, &current.meta.tag) {
        return Ok(Some((current, ciphertext)));
      }
      let key = self.blobs.key(id, &current.meta.tag)?;
      if let Some(ciphertext) = self.blobs.get(&key).await? {
        let kept = ciphertext.clone();
        self.cache.insert(id, &current.meta.tag, || kept, ciphertext.len());
        return Ok(Some((current, ciphertext)));
      }
      record = self.repo.fetch_record(id).await?;
    }
    Err(Error::internal(format!("no consistent version of {id} could be read")))
  }

  /// Removes the objects of due garbage and expired intents (each taken by one instance).
  pub async fn sweep_due(&self) -> Result<usize> {
    let mut removed = 0;
    loop {
      let due = self.repo.take_due(self.grace, SWEEP_BATCH).await?;
      for (id, tag) in &due {
        let key = self.blobs.key(id, tag)?;
        if self.blobs.delete(&key).await.is_err() {
          // Back in the queue; the full sweep would find it anyway.
          let _ = self.repo.add_garbage(id, tag, Duration::ZERO).await;
        } else {
          removed += 1;
        }
      }
      if (due.len() as i64) < SWEEP_BATCH {
        return Ok(removed);
      }
    }
  }

  /// Removes every object older than the grace period that no record,
  /// intent or garbage row names (leftovers of crashes between steps).
  pub async fn sweep_all(&self) -> Result<usize> {
    let cutoff = SystemTime::now() - self.grace;
    let mut candidates = Vec::new();
    self
      .blobs
      .list(|object| {
        if object.last_modified < cutoff {
          candidates.push((object.id, object.tag));
        }
        Ok(())
      })
      .await?;
    let mut removed = 0;
    for chunk in candidates.chunks(500) {
      let named: HashSet<(String, String)> = self.repo.named(chunk).await?;
      for object in chunk.iter().filter(|object| !named.contains(*object)) {
        self.blobs.delete(&self.blobs.key(&object.0, &object.1)?).await?;
        removed += 1;
      }
    }
    Ok(removed)
  }

  /// Stops the sweeper, waits for calls in flight and closes the repository.
  pub async fn shut_down(&self) {
    if let Some(sweeper) = self.sweeper.lock().ok().and_then(|mut sweeper| sweeper.take()) {
      sweeper.abort();
    }
    if let Ok(all) = self.in_flight.acquire_many(MAX_IN_FLIGHT).await {
      all.forget();
      self.in_flight.close();
    }
    self.repo.close().await;
  }
}

impl<R: Repo> Backend for RemoteStore<R> {
  fn record(&self, id: &str) -> Result<Option<StoredRecord>> {
    self.repo.cached_record(id)
  }

  fn fetch_record(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<Option<StoredRecord>>> {
    Box::pin(async move {
      let _permit = self.enter()?;
      self.repo.fetch_record(&id).await
    })
  }

  fn load_file(self: Arc<Self>, path: PathBuf, rules: ImageRules) -> BoxFuture<'static, Result<PlainImage>> {
    Box::pin(async move { blocking(move || PlainImage::read_file(&path, &rules)).await })
  }

  fn save(
    self: Arc<Self>,
    image: PlainImage,
    prefix: Option<String>,
    rules: ImageRules,
  ) -> BoxFuture<'static, Result<StoredRecord>> {
    Box::pin(async move {
      let _permit = self.enter()?;
      let id = id::generate(prefix.as_deref(), crate::store::now_ms())?;
      self.write(id, true, image, rules).await
    })
  }

  fn update(
    self: Arc<Self>,
    id: String,
    image: PlainImage,
    rules: ImageRules,
  ) -> BoxFuture<'static, Result<StoredRecord>> {
    Box::pin(async move {
      let _permit = self.enter()?;
      // Like pixstore, a missing record is reported before the image is looked at.
      if self.repo.fetch_record(&id).await?.is_none() {
        return Err(Error::not_found(&id));
      }
      self.write(id, false, image, rules).await
    })
  }

  fn delete(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<bool>> {
    Box::pin(async move {
      let _permit = self.enter()?;
      self.repo.delete_record(&id, self.grace).await
    })
  }

  fn exists(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<bool>> {
    Box::pin(async move {
      let _permit = self.enter()?;
      Ok(self.repo.fetch_record(&id).await?.is_some())
    })
  }

  fn wire_payload(self: Arc<Self>, id: String, client_token: Option<f64>) -> BoxFuture<'static, Vec<u8>> {
    Box::pin(async move {
      let Ok(_permit) = self.enter() else {
        return wire::state_only(WireState::InternalError);
      };
      match self.read(&id, client_token).await {
        Ok(None) => wire::state_only(WireState::NotFound),
        Ok(Some((record, ciphertext))) => match record.meta.decode() {
          Ok(sealed) => {
            let current = client_token == Some(record.token as f64);
            let mut payload =
              wire::image_header((!current).then_some((record.token as u64, &sealed)), ciphertext.len());
            payload.extend_from_slice(&ciphertext);
            payload
          }
          Err(_) => wire::state_only(WireState::InternalError),
        },
        Err(_) => wire::state_only(WireState::InternalError),
      }
    })
  }

  fn image_path(&self, record: &StoredRecord) -> String {
    self.blobs.key(&record.id, &record.meta.tag).unwrap_or_default()
  }

  fn count(self: Arc<Self>) -> BoxFuture<'static, Result<u64>> {
    Box::pin(async move { self.repo.count().await })
  }

  fn records_after(self: Arc<Self>, after: String, limit: usize) -> BoxFuture<'static, Result<Vec<Listed>>> {
    Box::pin(async move { self.repo.records_after(&after, limit as i64).await })
  }

  fn read_image(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<Option<crate::backend::StoredImage>>> {
    Box::pin(async move {
      let _permit = self.enter()?;
      let image = self.read(&id, None).await?;
      Ok(image.map(|(record, ciphertext)| (record, ciphertext.to_vec())))
    })
  }

  fn check_image(self: Arc<Self>, record: StoredRecord) -> BoxFuture<'static, Result<ImageCheck>> {
    Box::pin(async move {
      let _permit = self.enter()?;
      let found = match self.blobs.get(&self.blobs.key(&record.id, &record.meta.tag)?).await? {
        Some(bytes) if authenticates(&record, &bytes) => return Ok(ImageCheck::Sound(bytes.len() as u64)),
        Some(_) => ImageCheck::Corrupt,
        None => ImageCheck::Missing,
      };
      match self.repo.fetch_record(&record.id).await? {
        Some(current) if current == record => Ok(found),
        _ => Ok(ImageCheck::Changed),
      }
    })
  }

  fn peek_image(self: Arc<Self>, record: StoredRecord) -> BoxFuture<'static, Result<crate::backend::Peek>> {
    Box::pin(async move {
      let peeked = self.blobs.peek(&self.blobs.key(&record.id, &record.meta.tag)?).await?;
      Ok(peeked.map_or(crate::backend::Peek::Missing, |(size, first)| {
        crate::backend::Peek::Found(size, first)
      }))
    })
  }

  fn import(
    self: Arc<Self>,
    id: String,
    image: PlainImage,
    rules: ImageRules,
  ) -> BoxFuture<'static, Result<Option<StoredRecord>>> {
    Box::pin(async move {
      let _permit = self.enter()?;
      if self.repo.fetch_record(&id).await?.is_some() {
        return Ok(None);
      }
      match self.write(id.clone(), true, image, rules).await {
        Ok(record) => Ok(Some(record)),
        // Another import of the same id won the race.
        Err(_) if self.repo.fetch_record(&id).await?.is_some() => Ok(None),
        Err(err) => Err(err),
      }
    })
  }

  fn put_image(self: Arc<Self>, record: StoredRecord, ciphertext: Vec<u8>) -> BoxFuture<'static, Result<bool>> {
    Box::pin(async move {
      let _permit = self.enter()?;
      if self
        .repo
        .fetch_record(&record.id)
        .await?
        .is_some_and(|current| current.token >= record.token)
      {
        return Ok(false);
      }
      let key = self.blobs.key(&record.id, &record.meta.tag)?;
      let intent = self.repo.begin_write(&record.id, &record.meta.tag).await?;
      if let Err(err) = self.blobs.put(&key, ciphertext.into()).await {
        let _ = self.blobs.delete(&key).await;
        let _ = self.repo.abandon_write(intent).await;
        return Err(err);
      }
      let written = self.repo.put_record(intent, &record, self.grace).await?;
      let current_tag = self
        .repo
        .fetch_record(&record.id)
        .await?
        .map(|current| current.meta.tag);
      if !written && current_tag != Some(record.meta.tag) {
        self.blobs.delete(&key).await?;
      }
      Ok(written)
    })
  }

  fn rekey_record(self: Arc<Self>, id: String, unwrap: bool) -> BoxFuture<'static, Result<bool>> {
    Box::pin(async move {
      let _permit = self.enter()?;
      self.repo.rekey_record(&id, unwrap).await
    })
  }

  fn compact(self: Arc<Self>) -> BoxFuture<'static, Result<()>> {
    Box::pin(async move { self.repo.compact().await })
  }

  fn audit(self: Arc<Self>, repair: bool) -> BoxFuture<'static, Result<Vec<Problem>>> {
    Box::pin(async move {
      let _permit = self.enter()?;
      let mut problems: Vec<Problem> = self
        .repo
        .expired_intents(self.grace)
        .await?
        .into_iter()
        .map(|(id, tag)| Problem {
          kind: ProblemKind::UnfinishedWrite,
          path: self.blobs.key(&id, &tag).ok(),
          id: Some(id),
          repaired: false,
        })
        .collect();
      if repair && !problems.is_empty() {
        self.sweep_due().await?;
        problems.iter_mut().for_each(|problem| problem.repaired = true);
      }
      let cutoff = SystemTime::now() - self.grace;
      let mut candidates = Vec::new();
      self
        .blobs
        .list(|object| {
          if object.last_modified < cutoff {
            candidates.push((object.id, object.tag));
          }
          Ok(())
        })
        .await?;
      for chunk in candidates.chunks(500) {
        let named = self.repo.named(chunk).await?;
        for (id, tag) in chunk.iter().filter(|object| !named.contains(*object)) {
          let key = self.blobs.key(id, tag)?;
          let repaired = repair && self.blobs.delete(&key).await.is_ok();
          problems.push(Problem {
            kind: ProblemKind::OrphanFile,
            id: Some(id.clone()),
            path: Some(key),
            repaired,
          });
        }
      }
      Ok(problems)
    })
  }

  fn read_only(&self) -> Option<&str> {
    None
  }

  fn close(self: Arc<Self>) -> BoxFuture<'static, ()> {
    Box::pin(async move { self.shut_down().await })
  }

  fn close_blocking(&self) {
    if let Some(sweeper) = self.sweeper.lock().ok().and_then(|mut sweeper| sweeper.take()) {
      sweeper.abort();
    }
    // Calls in flight hold the store alive through their own Arc and finish
    // (or fail) on the runtime; new calls are refused from now on.
    self.in_flight.close();
    let runtime = self.runtime.clone();
    let _ = std::thread::scope(|scope| {
      scope
        .spawn(|| runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), self.repo.close()).await }))
        .join()
    });
  }
}

/// Whether `ciphertext` is the object of `record` (its GCM tag verifies).
pub fn authenticates(record: &StoredRecord, ciphertext: &[u8]) -> bool {
  belongs_to(ciphertext, &record.meta)
}
