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
use crate::store::{ImageRules, PlainImage, StoredRecord};

/// A boxed future, so [`Backend`] can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

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

  /// The wire payload of `id` for a client holding `client_token`:
  /// `Success`, `Updated`, `NotFound`, or `InternalError` on any failure.
  fn wire_payload(self: Arc<Self>, id: String, client_token: Option<f64>) -> BoxFuture<'static, Vec<u8>>;

  /// Why this backend cannot write, if it opened read-only.
  fn read_only(&self) -> Option<&str>;

  /// Finishes queued writes and releases everything; further calls fail.
  fn close(self: Arc<Self>) -> BoxFuture<'static, ()>;

  /// [`Backend::close`] for a caller that may block (an environment's cleanup hook).
  fn close_blocking(&self);
}
