//! The boundary between the service and where images live: the local store
//! (SQLite file + image folder, pixstore's layout) or a remote one (records in
//! PostgreSQL or SQLite, encrypted bytes in S3-compatible storage or a
//! folder). The service holds one `Arc<dyn Backend>` and knows nothing else
//! of either.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::Result;
use crate::store::{ImageRules, Listed, PlainImage, StoredRecord};

/// What `verify` found wrong with one thing in a store (SPEC "Operating the store").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
  /// What is wrong.
  pub kind: ProblemKind,
  /// The image id it concerns, when there is one.
  pub id: Option<String>,
  /// The file or object key it concerns, when there is one.
  pub path: Option<String>,
  /// Whether `--repair` fixed it.
  pub repaired: bool,
}

/// The kinds of [`Problem`], named as in the `--json` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
  /// A record whose image file or object is gone.
  MissingFile,
  /// An image that does not authenticate under its record's key (GCM tag).
  CorruptFile,
  /// An image file or object that no record names.
  OrphanFile,
  /// A leftover temporary file of a dead writer.
  TempFile,
  /// A write or delete a dead writer did not finish.
  UnfinishedWrite,
}

impl ProblemKind {
  /// The name used in reports.
  pub fn name(self) -> &'static str {
    match self {
      ProblemKind::MissingFile => "missing-file",
      ProblemKind::CorruptFile => "corrupt-file",
      ProblemKind::OrphanFile => "orphan-file",
      ProblemKind::TempFile => "temp-file",
      ProblemKind::UnfinishedWrite => "unfinished-write",
    }
  }
}

/// A record's stored image, as `stats` peeks at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peek {
  /// Its stored size in bytes and first ciphertext byte.
  Found(u64, u8),
  /// Gone.
  Missing,
  /// There, but it cannot be read (a folder in its place, a failing disk):
  /// why. Only a local file; a remote store's read error fails the operation
  /// (an outage is not a fault of one image).
  Unreadable(String),
}

/// A record's stored image, as checked by `verify`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageCheck {
  /// Present and authentic; its stored size in bytes.
  Sound(u64),
  /// Gone.
  Missing,
  /// Present, but it does not authenticate under the record's key.
  Corrupt,
  /// Present, but it cannot be read (a local file: a folder in its place, a
  /// failing disk): why.
  Unreadable(String),
  /// The record changed or went away during the check (a live store): nothing to report.
  Changed,
}

/// A boxed future, so [`Backend`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A record with its stored image (the ciphertext, without the tag).
pub type StoredImage = (StoredRecord, Vec<u8>);

/// Records and image bytes, and the operations of the pixstore API on them.
/// Ids given to it are valid (see [`crate::id::is_valid`]).
pub trait Backend: Send + Sync + 'static {
  /// The record of `id`, without waiting on the network (synchronous
  /// `getImageRecord`): a local read, or the in-process replica of a remote
  /// database.
  fn record(&self, id: &str) -> Result<Option<StoredRecord>>;

  /// The record of `id` as the database has it now (`getImageRecordAsync`).
  fn fetch_record(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<Option<StoredRecord>>>;

  /// Reads an image file for a `…FromFile` call (refusing missing paths,
  /// folders, images over the limit and non-images).
  fn load_file(self: Arc<Self>, path: PathBuf, rules: ImageRules) -> BoxFuture<'static, Result<PlainImage>>;

  /// Stores a new image under a generated id with an optional prefix.
  fn save(
    self: Arc<Self>,
    image: PlainImage,
    prefix: Option<String>,
    rules: ImageRules,
  ) -> BoxFuture<'static, Result<StoredRecord>>;

  /// Replaces the image of an existing id (`Image not found` without a record).
  fn update(
    self: Arc<Self>,
    id: String,
    image: PlainImage,
    rules: ImageRules,
  ) -> BoxFuture<'static, Result<StoredRecord>>;

  /// Deletes an image; true if its record or bytes existed.
  fn delete(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<bool>>;

  /// Whether an image's record or bytes exist.
  fn exists(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<bool>>;

  /// `Some(true)` when a record of `id` is found as cheaply as by
  /// [`Backend::record`] (no file, object or network access), so
  /// `imageExists` can answer without leaving the JS thread; `None` when
  /// only [`Backend::exists`] can tell. The default always says `None`.
  fn exists_by_record(&self, _id: &str) -> Result<Option<bool>> {
    Ok(None)
  }

  /// The wire payload of `id` for a client holding `client_token`:
  /// `Success`, `Updated`, `NotFound`, or `InternalError` on any failure.
  fn wire_payload(self: Arc<Self>, id: String, client_token: Option<f64>) -> BoxFuture<'static, Vec<u8>>;

  /// Where a record's image is stored, for reports: a file path or an object key.
  fn image_path(&self, record: &StoredRecord) -> String;

  /// The number of records.
  fn count(self: Arc<Self>) -> BoxFuture<'static, Result<u64>>;

  /// Records in id order after `after`, at most `limit` (to walk a store
  /// without holding it in memory); a record whose meta cannot be read is
  /// listed as [`Unreadable`](crate::store::Unreadable), not an error.
  fn records_after(self: Arc<Self>, after: String, limit: usize) -> BoxFuture<'static, Result<Vec<Listed>>>;

  /// A consistent record and its stored image (ciphertext without the tag).
  fn read_image(self: Arc<Self>, id: String) -> BoxFuture<'static, Result<Option<StoredImage>>>;

  /// Whether a record's stored image is there and authentic.
  fn check_image(self: Arc<Self>, record: StoredRecord) -> BoxFuture<'static, Result<ImageCheck>>;

  /// A record's stored image size and first ciphertext byte (the encrypted
  /// format byte), without reading the rest.
  fn peek_image(self: Arc<Self>, record: StoredRecord) -> BoxFuture<'static, Result<Peek>>;

  /// Stores an image under a given id unless a record of it exists (`None` then).
  fn import(
    self: Arc<Self>,
    id: String,
    image: PlainImage,
    rules: ImageRules,
  ) -> BoxFuture<'static, Result<Option<StoredRecord>>>;

  /// Stores an encrypted image with its record as given (a migration) unless
  /// the store has this token of the id or a newer one; true if written.
  fn put_image(self: Arc<Self>, record: StoredRecord, ciphertext: Vec<u8>) -> BoxFuture<'static, Result<bool>>;

  /// Rewraps the key stored in the record of `id` under the first master key
  /// (or, with `unwrap`, stores it plain), without touching the image; false
  /// when there was nothing to do (already so, or the record is gone).
  fn rekey_record(self: Arc<Self>, id: String, unwrap: bool) -> BoxFuture<'static, Result<bool>>;

  /// Lets the database drop what it keeps of replaced rows, after a rekey
  /// (SQLite: checkpoint and empty the WAL; PostgreSQL: `VACUUM image_records`).
  fn compact(self: Arc<Self>) -> BoxFuture<'static, Result<()>>;

  /// Finds what records alone do not show — orphan files or objects,
  /// temporary files, unfinished writes of dead writers — and, with
  /// `repair`, removes or settles them (never a record, never the only copy
  /// of a readable image).
  fn audit(self: Arc<Self>, repair: bool) -> BoxFuture<'static, Result<Vec<Problem>>>;

  /// Why this backend cannot write, if it opened read-only.
  fn read_only(&self) -> Option<&str>;

  /// Jobs waiting for a writer thread (the local store's); 0 where writes
  /// run concurrently without one (remote stores).
  fn writer_queue_depth(&self) -> usize {
    0
  }

  /// Finishes queued writes and releases everything; further calls fail.
  fn close(self: Arc<Self>) -> BoxFuture<'static, ()>;

  /// [`Backend::close`] for a caller that may block (an environment's cleanup hook).
  fn close_blocking(&self);
}
