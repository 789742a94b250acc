//! The image store: encrypted files under the image root (at pixstore's
//! paths) and their records in SQLite (pixstore's table), kept consistent
//! under concurrency and crashes.
//!
//! Writes encrypt into a temporary file off the JS thread, then go to the
//! writer thread (see [`writer`]), which renames files into place and commits
//! records in one SQLite write transaction, batching concurrent writes.
//! Readers never take a lock: they read the record, the file and the record
//! again, and accept the pair only when nothing changed in between (or the
//! file's GCM tag proves it belongs to the record).

mod db;
mod files;
mod recovery;
mod writer;

use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::config::Durability;
use crate::crypto::{belongs_to, random_bytes, seal_in_place, ImageMeta};
use crate::error::{Error, Result};
use crate::id;
use crate::sniff::detect_format;
use crate::wire::{self, WireState};
use files::OwnerLock;
use writer::{Job, WriteJob, WriteTarget};

pub use files::{now_ms, TEMP_DIR_NAME};

/// How many times a reader retries before asking for recovery, and in all.
const READ_ATTEMPTS_BEFORE_RECOVERY: u32 = 40;
const READ_ATTEMPTS: u32 = 60;

/// A committed image record (without its proof).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
  /// The image id.
  pub id: String,
  /// Version token: `Date.now()` of the write, strictly increasing per id.
  pub token: i64,
  /// Decryption meta.
  pub meta: ImageMeta,
}

/// Where a store keeps its data and how durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
  /// Folder of the image files (absolute).
  pub root: PathBuf,
  /// SQLite database file (absolute).
  pub database: PathBuf,
  /// Durability of writes.
  pub durability: Durability,
}

/// Which images a write accepts.
#[derive(Debug, Clone)]
pub struct ImageRules {
  /// Allowed formats; format byte = 1-based index.
  pub formats: Vec<String>,
  /// Largest accepted image in bytes.
  pub max_bytes: u64,
}

/// Image bytes to store: borrowed from the caller, or a file to read.
pub enum ImageSource {
  /// Bytes in memory (a JS Buffer, moved in without a copy).
  Bytes(Box<dyn AsRef<[u8]> + Send>),
  /// A file path.
  File(PathBuf),
}

/// What the writer thread needs besides its connection.
#[derive(Debug, Clone)]
pub struct WriterContext {
  root: PathBuf,
  temp_dir: PathBuf,
  owner: String,
  sync: bool,
}

/// An open store instance.
pub struct Store {
  location: StoreLocation,
  ctx: WriterContext,
  record_reader: Mutex<Connection>,
  readers: Mutex<Vec<Connection>>,
  jobs: Mutex<Option<mpsc::Sender<Job>>>,
  writer: Mutex<Option<JoinHandle<()>>>,
  temp_counter: AtomicU64,
  /// Limits the encryption and writing of large images to all cores but one,
  /// so the JS thread keeps a core (measured: event-loop p99 under 5 ms during
  /// 20 concurrent 5 MB saves on 2 cores) and few large plaintext copies are alive.
  encryption_slots: Arc<Semaphore>,
  _owner_lock: OwnerLock,
}

fn hex(bytes: &[u8]) -> String {
  bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
  /// Opens (creating if needed) the store at `location`, settles what crashed
  /// instances left behind, and starts its writer thread.
  pub fn open(location: StoreLocation) -> Result<Arc<Store>> {
    let temp_dir = location.root.join(TEMP_DIR_NAME);
    fs::create_dir_all(&temp_dir)?;
    if let Some(parent) = location.database.parent() {
      fs::create_dir_all(parent)?;
    }
    let owner = hex(&random_bytes::<8>()?);
    let owner_lock = OwnerLock::acquire(&temp_dir, &owner)?;
    let ctx = WriterContext {
      root: location.root.clone(),
      temp_dir,
      owner,
      sync: location.durability == Durability::Fsync,
    };
    let mut write_conn = db::open(&location.database, location.durability)?;
    db::create_schema(&write_conn)?;
    recovery::recover(&mut write_conn, &ctx, false)?;
    let record_reader = db::open(&location.database, location.durability)?;
    let (sender, receiver) = mpsc::channel();
    let writer_ctx = ctx.clone();
    let writer = std::thread::Builder::new()
      .name("pixstore-writer".into())
      .spawn(move || writer::run(write_conn, writer_ctx, receiver))?;
    Ok(Arc::new(Store {
      location,
      ctx,
      record_reader: Mutex::new(record_reader),
      readers: Mutex::new(Vec::new()),
      jobs: Mutex::new(Some(sender)),
      writer: Mutex::new(Some(writer)),
      temp_counter: AtomicU64::new(0),
      encryption_slots: Arc::new(Semaphore::new(encryption_parallelism())),
      _owner_lock: owner_lock,
    }))
  }

  /// Where this store lives.
  pub fn location(&self) -> &StoreLocation {
    &self.location
  }

  /// The committed record of `id` (a valid id), read on a connection of its
  /// own so it never waits behind writers or other readers.
  pub fn record(&self, id: &str) -> Result<Option<StoredRecord>> {
    let conn = self
      .record_reader
      .lock()
      .map_err(|_| Error::internal("record reader poisoned"))?;
    let Some((token, meta)) = db::record(&conn, id)? else {
      return Ok(None);
    };
    Ok(Some(StoredRecord {
      id: id.to_string(),
      token,
      meta: serde_json::from_str(&meta)?,
    }))
  }

  /// Runs `f` on a pooled read connection.
  fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    let pooled = self
      .readers
      .lock()
      .map_err(|_| Error::internal("reader pool poisoned"))?
      .pop();
    let conn = match pooled {
      Some(conn) => conn,
      None => db::open(&self.location.database, self.location.durability)?,
    };
    let result = f(&conn);
    if let Ok(mut pool) = self.readers.lock() {
      pool.push(conn);
    }
    result
  }

  fn submit(&self, job: Job) -> Result<()> {
    let jobs = self.jobs.lock().map_err(|_| Error::internal("job queue poisoned"))?;
    let sender = jobs.as_ref().ok_or_else(Error::not_initialized)?;
    sender.send(job).map_err(|_| Error::not_initialized())
  }

  /// Encrypts an image into a new temporary file (blocking; run off the JS
  /// thread). `slot`, if any, is released once the file is written.
  fn encrypt_to_temp(
    &self,
    source: Plaintext,
    rules: &ImageRules,
    slot: Option<OwnedSemaphorePermit>,
  ) -> Result<(String, ImageMeta)> {
    let mut plaintext = match source {
      Plaintext::Loaded(plaintext) => plaintext,
      Plaintext::Source(ImageSource::Bytes(bytes)) => {
        let bytes = (*bytes).as_ref();
        check_size(bytes.len() as u64, rules)?;
        let mut plaintext = Vec::with_capacity(bytes.len() + 1);
        plaintext.push(0);
        plaintext.extend_from_slice(bytes);
        plaintext
      }
      Plaintext::Source(ImageSource::File(path)) => read_image_file(&path, rules)?,
    };
    plaintext[0] = format_byte(&plaintext[1..], rules)?;
    let sealed = seal_in_place(&mut plaintext)?;
    let temp_name = format!(
      "{}-{}.tmp",
      self.ctx.owner,
      self.temp_counter.fetch_add(1, Ordering::Relaxed)
    );
    files::write_new(&self.ctx.temp_dir.join(&temp_name), &plaintext, self.ctx.sync)?;
    drop(slot);
    Ok((temp_name, ImageMeta::from(&sealed)))
  }

  async fn write(self: &Arc<Self>, target: WriteTarget, source: Plaintext, rules: ImageRules) -> Result<StoredRecord> {
    let slot = match source.is_small() {
      true => None,
      false => Some(
        Arc::clone(&self.encryption_slots)
          .acquire_owned()
          .await
          .map_err(|_| Error::not_initialized())?,
      ),
    };
    let store = Arc::clone(self);
    let (temp_name, meta) = blocking(move || store.encrypt_to_temp(source, &rules, slot)).await?;
    let (reply, response) = oneshot::channel();
    let job = Job::Write(WriteJob {
      target,
      temp_name: temp_name.clone(),
      meta,
      reply,
    });
    if let Err(err) = self.submit(job) {
      let _ = files::remove_if_exists(&self.ctx.temp_dir.join(temp_name));
      return Err(err);
    }
    response
      .await
      .map_err(|_| Error::internal("the store closed before the write finished"))?
  }

  /// Stores a new image under a generated id with an optional (cleaned) prefix.
  pub async fn save(
    self: &Arc<Self>,
    source: ImageSource,
    prefix: Option<String>,
    rules: ImageRules,
  ) -> Result<StoredRecord> {
    self
      .write(WriteTarget::New { prefix }, Plaintext::Source(source), rules)
      .await
  }

  /// Replaces the image of an existing (valid) id.
  pub async fn update(self: &Arc<Self>, id: String, source: ImageSource, rules: ImageRules) -> Result<StoredRecord> {
    let source = match source {
      // Like pixstore, a bad file is reported before a missing record.
      ImageSource::File(path) => {
        let file_rules = rules.clone();
        Plaintext::Loaded(
          blocking(move || {
            let plaintext = read_image_file(&path, &file_rules)?;
            format_byte(&plaintext[1..], &file_rules)?;
            Ok(plaintext)
          })
          .await?,
        )
      }
      bytes => Plaintext::Source(bytes),
    };
    // A short read: done in place rather than on the blocking pool.
    if !self.with_reader(|conn| Ok(db::record_token(conn, &id)?.is_some()))? {
      return Err(Error::not_found(&id));
    }
    self.write(WriteTarget::Existing { id }, source, rules).await
  }

  /// Deletes the file and the record of a (valid) id; true if either existed.
  pub async fn delete(self: &Arc<Self>, id: String) -> Result<bool> {
    let (reply, response) = oneshot::channel();
    self.submit(Job::Delete { id, reply })?;
    response
      .await
      .map_err(|_| Error::internal("the store closed before the delete finished"))?
  }

  /// Whether a (valid) id has a record or a file.
  /// (A short read, done in place rather than on the blocking pool.)
  pub async fn exists(self: &Arc<Self>, id: String) -> Result<bool> {
    if self.with_reader(|conn| Ok(db::record_token(conn, &id)?.is_some()))? {
      return Ok(true);
    }
    Ok(id::file_path(&self.ctx.root, &id).exists())
  }

  /// The wire payload of a (valid) id for a client holding `client_token`:
  /// `Success`, `Updated` or `NotFound`, or `InternalError` on any failure.
  /// The first attempt runs in place (a page-cache read in the common case);
  /// only when a write gets in its way do the retries move to the blocking pool.
  pub async fn wire_payload(self: &Arc<Self>, id: String, client_token: Option<f64>) -> Vec<u8> {
    let payload = match self.read_payload_once(&id, client_token, false) {
      Ok(Some(payload)) => Ok(payload),
      Ok(None) => {
        let store = Arc::clone(self);
        blocking(move || store.read_payload(&id, client_token)).await
      }
      Err(err) => Err(err),
    };
    payload.unwrap_or_else(|_| wire::state_only(WireState::InternalError))
  }

  /// Reads a record and its file as one consistent pair, retrying while writes
  /// get in the way and settling dead instances' intents if they persist (blocking).
  fn read_payload(&self, id: &str, client_token: Option<f64>) -> Result<Vec<u8>> {
    for attempt in 0..READ_ATTEMPTS {
      if attempt == READ_ATTEMPTS_BEFORE_RECOVERY {
        self.recover_now()?;
      }
      if let Some(payload) = self.read_payload_once(id, client_token, true)? {
        return Ok(payload);
      }
      backoff(attempt);
    }
    Err(Error::internal(format!("no consistent version of {id} could be read")))
  }

  /// One attempt at a consistent (record, file) pair: the record, the file and
  /// the record again; `None` when a write got in the way. With `check_tag`, a
  /// pair that changed is still accepted when the file's GCM tag proves it
  /// belongs to the record.
  fn read_payload_once(&self, id: &str, client_token: Option<f64>, check_tag: bool) -> Result<Option<Vec<u8>>> {
    let before = self.with_reader(|conn| db::id_state(conn, id))?;
    let Some((token, meta_json)) = &before.record else {
      return Ok(Some(wire::state_only(WireState::NotFound)));
    };
    let meta: ImageMeta = serde_json::from_str(meta_json)?;
    let sealed = meta.decode()?;
    let mut file = match File::open(id::file_path(&self.ctx.root, id)) {
      Ok(file) => file,
      Err(err) if err.kind() == ErrorKind::NotFound && before.intents == 0 => {
        return Err(Error::internal(format!("the file of {id} is missing")));
      }
      Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
      Err(err) => return Err(err.into()),
    };
    let current = client_token == Some(*token as f64);
    let length = file.metadata()?.len() as usize;
    let mut payload = wire::image_header((!current).then_some((*token as u64, &sealed)), length);
    let header_length = payload.len();
    file.read_to_end(&mut payload)?;
    let after = self.with_reader(|conn| db::id_state(conn, id))?;
    let consistent =
      (after == before && before.intents == 0) || (check_tag && belongs_to(&payload[header_length..], &meta));
    Ok(consistent.then_some(payload))
  }

  /// Asks the writer to settle intents of dead store instances, and waits (blocking).
  fn recover_now(&self) -> Result<()> {
    let (reply, response) = oneshot::channel();
    self.submit(Job::Recover { reply })?;
    response
      .blocking_recv()
      .map_err(|_| Error::internal("the store closed during recovery"))?
  }

  /// Finishes queued writes, stops the writer thread and refuses further writes.
  pub async fn close(self: &Arc<Self>) {
    let sender = self.jobs.lock().ok().and_then(|mut jobs| jobs.take());
    drop(sender);
    let writer = self.writer.lock().ok().and_then(|mut writer| writer.take());
    if let Some(writer) = writer {
      let _ = blocking(move || writer.join().map_err(|_| Error::internal("writer panicked"))).await;
    }
  }
}

/// The plaintext of a write: still to be loaded, or loaded with its format-byte slot.
enum Plaintext {
  Source(ImageSource),
  Loaded(Vec<u8>),
}

/// Images up to this size are encrypted without waiting for a slot.
const SMALL_IMAGE_BYTES: usize = 1024 * 1024;

impl Plaintext {
  /// Whether this is a small in-memory image (files count as large: their size is not known yet).
  fn is_small(&self) -> bool {
    match self {
      Plaintext::Loaded(plaintext) => plaintext.len() <= SMALL_IMAGE_BYTES,
      Plaintext::Source(ImageSource::Bytes(bytes)) => (**bytes).as_ref().len() <= SMALL_IMAGE_BYTES,
      Plaintext::Source(ImageSource::File(_)) => false,
    }
  }
}

/// The format byte of `image` under `rules`, or `Invalid image file`.
fn format_byte(image: &[u8], rules: &ImageRules) -> Result<u8> {
  detect_format(image)
    .and_then(|format| rules.formats.iter().position(|f| f == format))
    .map(|index| index as u8 + 1)
    .ok_or_else(Error::invalid_image)
}

/// How many writes are encrypted at once: every core but one (at least one).
fn encryption_parallelism() -> usize {
  std::thread::available_parallelism().map_or(1, |cores| cores.get().saturating_sub(1).max(1))
}

fn backoff(attempt: u32) {
  std::thread::sleep(Duration::from_micros(50 * u64::from(attempt + 1).min(40)));
}

fn check_size(length: u64, rules: &ImageRules) -> Result<()> {
  if length > rules.max_bytes {
    return Err(Error::pixstore(format!(
      "Image is too large: {length} bytes (maxImageBytes is {})",
      rules.max_bytes
    )));
  }
  Ok(())
}

/// Reads an image file into a buffer that starts with one free byte (for the
/// format byte), refusing missing paths, folders and files over the limit.
fn read_image_file(path: &Path, rules: &ImageRules) -> Result<Vec<u8>> {
  let shown = path.display();
  let metadata = match fs::metadata(path) {
    Ok(metadata) => metadata,
    Err(err) if err.kind() == ErrorKind::NotFound => {
      return Err(Error::pixstore(format!("Image file not found: {shown}")));
    }
    Err(err) => return Err(err.into()),
  };
  if !metadata.is_file() {
    return Err(Error::pixstore(format!("Not a file: {shown}")));
  }
  check_size(metadata.len(), rules)?;
  let mut plaintext = Vec::with_capacity(metadata.len() as usize + 1);
  plaintext.push(0);
  File::open(path)?
    .take(rules.max_bytes + 1)
    .read_to_end(&mut plaintext)?;
  check_size(plaintext.len() as u64 - 1, rules)?;
  Ok(plaintext)
}

/// Runs blocking work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
  tokio::task::spawn_blocking(work)
    .await
    .map_err(|err| Error::internal(format!("worker failed: {err}")))?
}

#[cfg(test)]
mod tests;
