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

mod admin;
pub(crate) mod db;
mod files;
mod guard;
mod recovery;
mod writer;

use std::fs::{self, File};
use std::io::{ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

use crate::backend::BoxFuture;
use crate::buffer::ImageBuffer;
use crate::cache::ImageCache;
use crate::config::Durability;
use crate::crypto::{belongs_to, random_bytes, seal_in_place, ImageMeta};
use crate::error::{Error, Result};
use crate::id;
use crate::keys::Keyring;
use crate::sniff::detect_format;
use crate::wire::{self, WireState};
use files::OwnerLock;
use guard::ForeignSqliteGuard;
use writer::{Job, WriteJob, WriteTarget};

pub use db::Database;
pub use files::{now_ms, TEMP_DIR_NAME};
pub use recovery::next_token;

/// How many times a reader retries before asking for recovery, and in all.
const READ_ATTEMPTS_BEFORE_RECOVERY: u32 = 40;
const READ_ATTEMPTS: u32 = 60;

/// Idle read connections kept for reuse; more are opened under load and closed after.
const IDLE_READERS: usize = 8;

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

/// A record as a walk over the store lists it: readable, or why not (its meta
/// is not JSON, or its key is wrapped under a master key not in `masterKeys`),
/// so that one bad row is reported by the operator's commands instead of
/// stopping them for the whole store.
pub type Listed = std::result::Result<StoredRecord, Unreadable>;

/// A record whose meta cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
  /// The image id.
  pub id: String,
  /// Why (the decoding or unwrapping error).
  pub reason: String,
}

impl StoredRecord {
  /// A row as listed: its stored meta JSON parsed, its key unwrapped and
  /// its fields decoded (base64 of the right lengths).
  pub fn listed(keyring: &crate::keys::Keyring, id: String, token: i64, meta_json: &str) -> Listed {
    let meta = serde_json::from_str(meta_json)
      .map_err(crate::error::Error::from)
      .and_then(|stored| keyring.unwrap(&id, &stored))
      .and_then(|meta: ImageMeta| meta.decode().map(|_| meta));
    match meta {
      Ok(meta) => Ok(StoredRecord { id, token, meta }),
      Err(err) => Err(Unreadable {
        id,
        reason: err.message,
      }),
    }
  }
}

/// Where a store keeps its data and how durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreLocation {
  /// Folder of the image files (absolute).
  pub root: PathBuf,
  /// The SQLite database.
  pub database: Database,
  /// Durability of writes.
  pub durability: Durability,
  /// Master keys wrapping the keys stored in records (`masterKeys`).
  pub keyring: Keyring,
  /// Bytes of served images kept in memory (`imageCacheBytes`).
  pub cache_bytes: u64,
}

/// Which images a write accepts.
#[derive(Debug, Clone)]
pub struct ImageRules {
  /// Allowed formats; format byte = 1-based index.
  pub formats: Vec<String>,
  /// Largest accepted image in bytes.
  pub max_bytes: u64,
}

/// An image to store, owned by the store: copied out of the caller's memory
/// when the call was made, or read from a file. It sits behind one free byte
/// that becomes the format byte, and is encrypted in place.
pub struct PlainImage {
  /// The format byte (0 until sealed), then the image.
  buffer: ImageBuffer,
}

impl PlainImage {
  /// Copies `image` now, so the caller may change, detach or free its memory
  /// as soon as this returns (SPEC "Input memory and threads"). An image over
  /// `max_bytes` is refused before anything is copied.
  pub fn copy_of(image: &[u8], max_bytes: u64) -> Result<PlainImage> {
    check_size(image.len() as u64, max_bytes)?;
    Ok(PlainImage {
      buffer: ImageBuffer::with_prefix(0, image)?,
    })
  }

  /// Reads an image file (blocking), refusing missing paths, folders, files
  /// over the limit and, like pixstore's `diskToBuffer`, files that are not
  /// an image in `rules`.
  pub fn read_file(path: &Path, rules: &ImageRules) -> Result<PlainImage> {
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
    check_size(metadata.len(), rules.max_bytes)?;
    let limit = rules.max_bytes.saturating_add(1);
    let expected = metadata.len().min(limit) as usize;
    let buffer = ImageBuffer::read_with_prefix(0, &mut File::open(path)?.take(limit), expected)?;
    check_size(buffer.len() as u64 - 1, rules.max_bytes)?;
    let image = PlainImage { buffer };
    format_byte(image.bytes(), rules)?;
    Ok(image)
  }

  /// The image bytes.
  pub fn bytes(&self) -> &[u8] {
    &self.buffer[1..]
  }

  /// Encrypts `[format byte] ++ image` in place under a fresh key and IV
  /// (blocking: run off the JS thread); `Invalid image file` when the image
  /// is not one of `rules`' formats. Returns the ciphertext (without its tag) and the meta.
  pub fn seal(self, rules: &ImageRules) -> Result<(ImageBuffer, ImageMeta)> {
    let mut buffer = self.buffer;
    buffer[0] = format_byte(&buffer[1..], rules)?;
    let sealed = seal_in_place(&mut buffer)?;
    Ok((buffer, ImageMeta::from(&sealed)))
  }
}

/// What the writer thread needs besides its connection.
#[derive(Debug, Clone)]
pub struct WriterContext {
  /// Jobs sent to the writer and not yet taken into a batch.
  queued: Arc<AtomicUsize>,
  root: PathBuf,
  temp_dir: PathBuf,
  owner: String,
  sync: bool,
  temp_counter: Arc<AtomicU64>,
  keyring: Keyring,
}

impl WriterContext {
  /// A new name in the temporary folder, `<owner>-<n>.tmp`.
  fn temp_name(&self) -> String {
    format!(
      "{}-{}.tmp",
      self.owner,
      self.temp_counter.fetch_add(1, Ordering::Relaxed)
    )
  }
}

/// The writer side of a store that can write.
struct Writer {
  jobs: Mutex<Option<mpsc::Sender<Job>>>,
  thread: Mutex<Option<JoinHandle<()>>>,
  _owner_lock: OwnerLock,
}

/// An open store instance.
pub struct Store {
  location: StoreLocation,
  ctx: WriterContext,
  /// `None` when the disk refused writes at open (read-only, full, no
  /// permission): existing images are served and every write fails with this reason.
  writer: std::result::Result<Writer, String>,
  record_reader: Mutex<Connection>,
  readers: Mutex<Vec<Connection>>,
  /// Limits the encryption and writing of large images to all cores but one,
  /// so the JS thread keeps a core (measured: event-loop p99 under 5 ms during
  /// 20 concurrent 5 MB saves on 2 cores) and few large plaintext copies are alive.
  encryption_slots: Arc<Semaphore>,
  guard: Mutex<Option<ForeignSqliteGuard>>,
  cache: ImageCache,
}

fn hex(bytes: &[u8]) -> String {
  bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether an open failed only because the disk refuses writes (read-only
/// file system, no space, no permission), so the store can still be served read-only.
fn refuses_writes(err: &Error) -> bool {
  err.writes_refused
}

impl Store {
  /// Opens (creating if needed) the store at `location`, settles what crashed
  /// instances left behind, and starts its writer thread.
  ///
  /// On a disk that refuses writes (read-only, full, no permission) an
  /// existing store opens read-only instead (see [`Store::read_only`]); a
  /// recovery that cannot write yet is retried by the writer until it
  /// succeeds, so opening never waits for free space.
  pub fn open(location: StoreLocation) -> Result<Arc<Store>> {
    Self::open_with(location, true)
  }

  /// Opens an existing store for reading only: nothing on disk is changed
  /// (no recovery, no lock file, no switch to WAL), so a store pixstore 3.2.1
  /// or another process is using can be read as it is (`verify`, `migrate`'s source).
  pub fn open_read_only(location: StoreLocation) -> Result<Arc<Store>> {
    if location.database.file().is_some_and(|file| !file.exists()) {
      return Err(Error::config(format!(
        "There is no store at {}",
        location.database.file().expect("a file").display()
      )));
    }
    Self::open_with(location, false)
  }

  fn open_with(location: StoreLocation, writable: bool) -> Result<Arc<Store>> {
    let owner = hex(&random_bytes::<8>()?);
    let ctx = WriterContext {
      queued: Arc::new(AtomicUsize::new(0)),
      root: location.root.clone(),
      temp_dir: location.root.join(TEMP_DIR_NAME),
      owner,
      sync: location.durability == Durability::Fsync,
      temp_counter: Arc::new(AtomicU64::new(0)),
      keyring: location.keyring.clone(),
    };
    let opened = match writable {
      true => Self::open_writer(&location, &ctx),
      false => Err(Error::internal("opened for reading only")),
    };
    let (writer, record_reader) = match opened {
      Ok((writer, record_reader)) => (Ok(writer), record_reader),
      Err(err) if (!writable || refuses_writes(&err)) && location.database.file().is_some_and(Path::exists) => {
        let record_reader = db::open(&location.database, location.durability, true)?;
        db::record(&record_reader, "")?; // the store is readable
        (Err(err.message), record_reader)
      }
      Err(err) => return Err(err),
    };
    let guard = writer
      .is_ok()
      .then(|| location.database.file().map(ForeignSqliteGuard::acquire))
      .flatten();
    Ok(Arc::new(Store {
      ctx,
      writer,
      record_reader: Mutex::new(record_reader),
      readers: Mutex::new(Vec::new()),
      encryption_slots: Arc::new(Semaphore::new(encryption_parallelism())),
      guard: Mutex::new(guard),
      cache: ImageCache::new(location.cache_bytes),
      location,
    }))
  }

  /// Creates what a writable store needs, runs the recovery (or leaves it
  /// owed) and starts the writer thread; returns it with the record reader.
  fn open_writer(location: &StoreLocation, ctx: &WriterContext) -> Result<(Writer, Connection)> {
    fs::create_dir_all(&ctx.temp_dir)?;
    if let Some(parent) = location.database.file().and_then(Path::parent) {
      fs::create_dir_all(parent)?;
    }
    let owner_lock = OwnerLock::acquire(&ctx.temp_dir, &ctx.owner)?;
    let mut write_conn = db::open(&location.database, location.durability, false)?;
    db::create_schema(&write_conn, &location.database)?;
    let recovery_owed = recovery::recover(&mut write_conn, ctx).is_err();
    let record_reader = db::open(&location.database, location.durability, false)?;
    let (sender, receiver) = mpsc::channel();
    let writer_ctx = ctx.clone();
    let thread = std::thread::Builder::new()
      .name("pixstore-writer".into())
      .spawn(move || writer::run(write_conn, writer_ctx, receiver, recovery_owed))?;
    let writer = Writer {
      jobs: Mutex::new(Some(sender)),
      thread: Mutex::new(Some(thread)),
      _owner_lock: owner_lock,
    };
    Ok((writer, record_reader))
  }

  /// Why this store cannot write, if it opened read-only.
  pub fn read_only(&self) -> Option<&str> {
    self.writer.as_ref().err().map(String::as_str)
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
      meta: self.ctx.keyring.unwrap(id, &serde_json::from_str(&meta)?)?,
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
      None => db::open(&self.location.database, self.location.durability, self.writer.is_err())?,
    };
    let result = f(&conn);
    if let Ok(mut pool) = self.readers.lock() {
      if pool.len() < IDLE_READERS {
        pool.push(conn);
      }
    }
    result
  }

  fn submit(&self, job: Job) -> Result<()> {
    let writer = self
      .writer
      .as_ref()
      .map_err(|reason| Error::internal(format!("The Pixstore store is read-only: {reason}")))?;
    let jobs = writer.jobs.lock().map_err(|_| Error::internal("job queue poisoned"))?;
    let sender = jobs.as_ref().ok_or_else(Error::not_initialized)?;
    self.ctx.queued.fetch_add(1, Ordering::Relaxed);
    sender.send(job).map_err(|_| {
      self.ctx.queued.fetch_sub(1, Ordering::Relaxed);
      Error::not_initialized()
    })
  }

  /// Reads an image file on the blocking pool (see [`PlainImage::read_file`]).
  pub async fn load_file(&self, path: PathBuf, rules: &ImageRules) -> Result<PlainImage> {
    let rules = rules.clone();
    blocking(move || PlainImage::read_file(&path, &rules)).await
  }

  /// Encrypts an image into a new temporary file (blocking; run off the JS
  /// thread). `slot`, if any, is released once the file is written.
  fn encrypt_to_temp(
    &self,
    image: PlainImage,
    rules: &ImageRules,
    slot: Option<OwnedSemaphorePermit>,
  ) -> Result<(String, ImageMeta)> {
    let (ciphertext, meta) = image.seal(rules)?;
    let temp_name = self.ctx.temp_name();
    files::write_new(&self.ctx.temp_dir.join(&temp_name), &ciphertext, self.ctx.sync)?;
    drop(ciphertext);
    drop(slot);
    Ok((temp_name, meta))
  }

  async fn write(
    self: &Arc<Self>,
    target: WriteTarget,
    image: PlainImage,
    rules: ImageRules,
  ) -> Result<Option<StoredRecord>> {
    if let Err(reason) = &self.writer {
      return Err(Error::internal(format!("The Pixstore store is read-only: {reason}")));
    }
    let slot = match image.bytes().len() <= SMALL_IMAGE_BYTES {
      true => None,
      false => Some(
        Arc::clone(&self.encryption_slots)
          .acquire_owned()
          .await
          .map_err(|_| Error::not_initialized())?,
      ),
    };
    // A tiny image is encrypted and written here (tens of microseconds, less
    // than two hand-offs to the blocking pool and back); others there.
    let (temp_name, meta) = match image.bytes().len() <= INLINE_IMAGE_BYTES {
      true => self.encrypt_to_temp(image, &rules, slot)?,
      false => {
        let store = Arc::clone(self);
        blocking(move || store.encrypt_to_temp(image, &rules, slot)).await?
      }
    };
    self.commit_temp(target, temp_name, meta).await
  }

  /// Hands a written temporary file to the writer and waits for its commit.
  async fn commit_temp(&self, target: WriteTarget, temp_name: String, meta: ImageMeta) -> Result<Option<StoredRecord>> {
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
    image: PlainImage,
    prefix: Option<String>,
    rules: ImageRules,
  ) -> Result<StoredRecord> {
    let record = self.write(WriteTarget::New { prefix }, image, rules).await?;
    record.ok_or_else(|| Error::internal("a new image was not written"))
  }

  /// Stores an image under a given (valid) id unless a record of it exists: `None` then.
  pub async fn import(
    self: &Arc<Self>,
    id: String,
    image: PlainImage,
    rules: ImageRules,
  ) -> Result<Option<StoredRecord>> {
    self.write(WriteTarget::Given { id, token: None }, image, rules).await
  }

  /// Stores an already encrypted image with its record as given (a
  /// migration), unless the store has a record of the id with this token or
  /// a newer one: false then.
  pub async fn put_image(self: &Arc<Self>, record: StoredRecord, ciphertext: Vec<u8>) -> Result<bool> {
    if let Err(reason) = &self.writer {
      return Err(Error::internal(format!("The Pixstore store is read-only: {reason}")));
    }
    let temp_name = self.ctx.temp_name();
    let (path, sync) = (self.ctx.temp_dir.join(&temp_name), self.ctx.sync);
    blocking(move || files::write_new(&path, &ciphertext, sync)).await?;
    let target = WriteTarget::Given {
      id: record.id,
      token: Some(record.token),
    };
    Ok(self.commit_temp(target, temp_name, record.meta).await?.is_some())
  }

  /// Replaces the image of an existing (valid) id: `Image not found` without a record.
  pub async fn update(self: &Arc<Self>, id: String, image: PlainImage, rules: ImageRules) -> Result<StoredRecord> {
    // A short read: done in place rather than on the blocking pool.
    if !self.with_reader(|conn| Ok(db::record_token(conn, &id)?.is_some()))? {
      return Err(Error::not_found(&id));
    }
    let record = self.write(WriteTarget::Existing { id }, image, rules).await?;
    record.ok_or_else(|| Error::internal("an update was not written"))
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
    let meta = self.ctx.keyring.unwrap(id, &serde_json::from_str(meta_json)?)?;
    let sealed = meta.decode()?;
    let current = client_token == Some(*token as f64);
    // A kept copy of this version: consistent with the record by its tag, whatever a writer does now.
    if let Some(ciphertext) = self.cache.get(id, &meta.tag) {
      let mut payload = wire::image_header((!current).then_some((*token as u64, &sealed)), ciphertext.len());
      payload.extend_from_slice(&ciphertext);
      return Ok(Some(payload));
    }
    let mut file = match File::open(id::file_path(&self.ctx.root, id)) {
      Ok(file) => file,
      Err(err) if err.kind() == ErrorKind::NotFound && before.intents == 0 => {
        return Err(Error::internal(format!("the file of {id} is missing")));
      }
      Err(err) if err.kind() == ErrorKind::NotFound => return Ok(None),
      Err(err) => return Err(err.into()),
    };
    let length = file.metadata()?.len() as usize;
    let mut payload = wire::image_header((!current).then_some((*token as u64, &sealed)), length);
    let header_length = payload.len();
    file.read_to_end(&mut payload)?;
    let after = self.with_reader(|conn| db::id_state(conn, id))?;
    let consistent =
      (after == before && before.intents == 0) || (check_tag && belongs_to(&payload[header_length..], &meta));
    if consistent {
      let ciphertext = &payload[header_length..];
      self.cache.insert(
        id,
        &meta.tag,
        || bytes::Bytes::copy_from_slice(ciphertext),
        ciphertext.len(),
      );
    }
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

  /// Finishes queued writes, stops the writer thread and refuses further
  /// writes; releases the guard (so the last connection to close can
  /// checkpoint and remove the WAL, as SQLite does) and removes this
  /// instance's temporary files.
  pub async fn close(self: &Arc<Self>) {
    if let Some(thread) = self.stop_writer() {
      let _ = blocking(move || thread.join().map_err(|_| Error::internal("writer panicked"))).await;
      self.after_writer_stopped();
    }
  }

  /// [`Store::close`] for a caller that may block (an environment's cleanup hook).
  pub fn close_blocking(&self) {
    if let Some(thread) = self.stop_writer() {
      let _ = thread.join();
      self.after_writer_stopped();
    }
  }

  /// Closes the job queue; returns the writer thread to join, the first time.
  fn stop_writer(&self) -> Option<JoinHandle<()>> {
    let writer = self.writer.as_ref().ok()?;
    drop(writer.jobs.lock().ok()?.take());
    writer.thread.lock().ok()?.take()
  }

  fn after_writer_stopped(&self) {
    let _released = self.guard.lock().ok().and_then(|mut guard| guard.take());
    if let Ok(mut readers) = self.readers.lock() {
      readers.clear();
    }
    let _ = files::remove_owner_files(&self.ctx.temp_dir, &self.ctx.owner);
  }
}

/// Images up to this size are encrypted and written to their temporary file
/// on the calling runtime thread instead of the blocking pool.
const INLINE_IMAGE_BYTES: usize = 16 * 1024;

/// Images up to this size are encrypted without waiting for a slot.
pub(crate) const SMALL_IMAGE_BYTES: usize = 1024 * 1024;

/// The format byte of `image` under `rules`, or `Invalid image file`.
fn format_byte(image: &[u8], rules: &ImageRules) -> Result<u8> {
  detect_format(image)
    .and_then(|format| rules.formats.iter().position(|f| f == format))
    .map(|index| index as u8 + 1)
    .ok_or_else(Error::invalid_image)
}

/// How many writes are encrypted at once: every core but one (at least one).
pub(crate) fn encryption_parallelism() -> usize {
  std::thread::available_parallelism().map_or(1, |cores| cores.get().saturating_sub(1).max(1))
}

fn backoff(attempt: u32) {
  std::thread::sleep(Duration::from_micros(50 * u64::from(attempt + 1).min(40)));
}

fn check_size(length: u64, max_bytes: u64) -> Result<()> {
  if length > max_bytes {
    return Err(Error::pixstore(format!(
      "Image is too large: {length} bytes (maxImageBytes is {max_bytes})"
    )));
  }
  Ok(())
}

/// Runs blocking work on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
  tokio::task::spawn_blocking(work)
    .await
    .map_err(|err| Error::internal(format!("worker failed: {err}")))?
}

#[cfg(test)]
mod tests;

impl crate::backend::Backend for Store {
  fn record(&self, id: &str) -> Result<Option<StoredRecord>> {
    Store::record(self, id)
  }

  fn fetch_record(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<Option<StoredRecord>>> {
    Box::pin(async move { blocking(move || Store::record(&self, &id)).await })
  }

  fn load_file(self: Arc<Self>, path: PathBuf, rules: ImageRules) -> BoxFuture<'static, Result<PlainImage>> {
    Box::pin(async move { Store::load_file(&self, path, &rules).await })
  }

  fn save(
    self: Arc<Self>,
    image: PlainImage,
    prefix: Option<String>,
    rules: ImageRules,
  ) -> BoxFuture<'static, Result<StoredRecord>> {
    Box::pin(async move { Store::save(&self, image, prefix, rules).await })
  }

  fn update(
    self: Arc<Self>,
    id: String,
    image: PlainImage,
    rules: ImageRules,
  ) -> BoxFuture<'static, Result<StoredRecord>> {
    Box::pin(async move { Store::update(&self, id, image, rules).await })
  }

  fn delete(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<bool>> {
    Box::pin(async move { Store::delete(&self, id).await })
  }

  fn exists(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<bool>> {
    Box::pin(async move { Store::exists(&self, id).await })
  }

  fn exists_by_record(&self, id: &str) -> Result<Option<bool>> {
    let found = self.with_reader(|conn| Ok(db::record_token(conn, id)?.is_some()))?;
    Ok(found.then_some(true))
  }

  fn wire_payload(self: Arc<Self>, id: String, client_token: Option<f64>) -> BoxFuture<'static, Vec<u8>> {
    Box::pin(async move { Store::wire_payload(&self, id, client_token).await })
  }

  fn image_path(&self, record: &StoredRecord) -> String {
    id::file_path(&self.ctx.root, &record.id).display().to_string()
  }

  fn count(self: Arc<Self>) -> BoxFuture<'static, Result<u64>> {
    Box::pin(async move { blocking(move || Store::count(&self)).await })
  }

  fn records_after(self: Arc<Self>, after: String, limit: usize) -> BoxFuture<'static, Result<Vec<Listed>>> {
    Box::pin(async move { blocking(move || Store::records_after(&self, &after, limit)).await })
  }

  fn read_image(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<Option<crate::backend::StoredImage>>> {
    Box::pin(async move { blocking(move || Store::read_image(&self, &id)).await })
  }

  fn check_image(self: Arc<Self>, record: StoredRecord) -> BoxFuture<'static, Result<crate::backend::ImageCheck>> {
    Box::pin(async move { blocking(move || Store::check_image(&self, &record)).await })
  }

  fn peek_image(self: Arc<Self>, record: StoredRecord) -> BoxFuture<'static, Result<crate::backend::Peek>> {
    Box::pin(async move { blocking(move || Store::peek_image(&self, &record)).await })
  }

  fn import(
    self: Arc<Self>,
    id: String,
    image: PlainImage,
    rules: ImageRules,
  ) -> BoxFuture<'static, Result<Option<StoredRecord>>> {
    Box::pin(async move { Store::import(&self, id, image, rules).await })
  }

  fn put_image(self: Arc<Self>, record: StoredRecord, ciphertext: Vec<u8>) -> BoxFuture<'static, Result<bool>> {
    Box::pin(async move { Store::put_image(&self, record, ciphertext).await })
  }

  fn rekey_record(self: Arc<Self>, id: String, unwrap: bool) -> BoxFuture<'static, Result<bool>> {
    Box::pin(async move { blocking(move || Store::rekey_record(&self, &id, unwrap)).await })
  }

  fn compact(self: Arc<Self>) -> BoxFuture<'static, Result<()>> {
    Box::pin(async move { blocking(move || Store::checkpoint(&self)).await })
  }

  fn audit(self: Arc<Self>, repair: bool) -> BoxFuture<'static, Result<Vec<crate::backend::Problem>>> {
    Box::pin(async move { blocking(move || Store::audit(&self, repair)).await })
  }

  fn read_only(&self) -> Option<&str> {
    Store::read_only(self)
  }

  fn writer_queue_depth(&self) -> usize {
    self.ctx.queued.load(Ordering::Relaxed)
  }

  fn close(self: Arc<Self>) -> BoxFuture<'static, ()> {
    Box::pin(async move { Store::close(&self).await })
  }

  fn close_blocking(&self) {
    Store::close_blocking(self)
  }
}
