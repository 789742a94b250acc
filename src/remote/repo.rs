//! The metadata repository of a remote store: pixstore's `image_records`
//! table, the intents of unfinished writes and the garbage (objects waiting
//! for their grace period to end). Objects are named by `(id, tag)`: the id
//! and the base64 GCM tag of the write, as in the record's meta.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use crate::crypto::ImageMeta;
use crate::error::Result;
use crate::store::{Listed, StoredRecord};

/// A write to commit.
pub struct Commit<'a> {
  /// The intent logged by [`Repo::begin_write`].
  pub intent: i64,
  /// The image id.
  pub id: &'a str,
  /// A new id (the record must not exist) or an update (it must).
  pub new: bool,
  /// The meta of the uploaded object.
  pub meta: &'a ImageMeta,
  /// How long the replaced object stays (readers in flight).
  pub grace: Duration,
}

/// Records, intents and garbage of a remote store.
pub trait Repo: Send + Sync + 'static {
  /// The record of `id` as this instance knows it, without waiting on the
  /// network: PostgreSQL answers from its in-process replica.
  fn cached_record(&self, id: &str) -> Result<Option<StoredRecord>>;

  /// The record of `id`, asked of the database.
  fn fetch_record(&self, id: &str) -> impl Future<Output = Result<Option<StoredRecord>>> + Send;

  /// Logs that an object `(id, tag)` is about to be uploaded; returns the intent.
  fn begin_write(&self, id: &str, tag: &str) -> impl Future<Output = Result<i64>> + Send;

  /// In one transaction: drops the intent (an error if the sweeper already
  /// took it), creates or replaces the record with a token above the
  /// previous one and the database's clock, and makes the replaced object
  /// garbage due after the grace period. `Image not found` for an update of
  /// a record that is gone.
  fn commit_write(&self, commit: Commit<'_>) -> impl Future<Output = Result<StoredRecord>> + Send;

  /// Drops an intent whose object was not uploaded (or is to be removed);
  /// false when it was gone already (committed, or taken by the sweeper).
  fn abandon_write(&self, intent: i64) -> impl Future<Output = Result<bool>> + Send;

  /// Deletes the record of `id` and makes its object garbage due after
  /// `grace`; true if there was a record.
  fn delete_record(&self, id: &str, grace: Duration) -> impl Future<Output = Result<bool>> + Send;

  /// Adds garbage due after `grace`.
  fn add_garbage(&self, id: &str, tag: &str, grace: Duration) -> impl Future<Output = Result<()>> + Send;

  /// Takes (removes and returns) up to `limit` objects whose removal is due:
  /// garbage past its due time and intents older than `grace` (a write that
  /// old is abandoned: its commit will fail). Each row is taken by one caller.
  fn take_due(&self, grace: Duration, limit: i64) -> impl Future<Output = Result<Vec<(String, String)>>> + Send;

  /// Which of `objects` a record, an intent or a garbage row names.
  fn named(&self, objects: &[(String, String)]) -> impl Future<Output = Result<HashSet<(String, String)>>> + Send;

  /// The number of records.
  fn count(&self) -> impl Future<Output = Result<u64>> + Send;

  /// Intents older than `grace` (abandoned writes), as `(id, tag)`, without taking them.
  fn expired_intents(&self, grace: Duration) -> impl Future<Output = Result<Vec<(String, String)>>> + Send;

  /// Records in id order after `after`, at most `limit` (to walk a store without loading it).
  fn records_after(&self, after: &str, limit: i64) -> impl Future<Output = Result<Vec<Listed>>> + Send;

  /// In one transaction: drops `intent` (an error if the sweeper took it),
  /// and creates or replaces a record as given (a migration) unless the store
  /// already has this token of the id or a newer one; the replaced object
  /// becomes garbage. Returns whether the record was written.
  fn put_record(
    &self,
    intent: i64,
    record: &StoredRecord,
    grace: Duration,
  ) -> impl Future<Output = Result<bool>> + Send;

  /// Rewraps the stored key of `id` under the first master key (or stores
  /// it plain with `unwrap`), compare-and-set on the stored meta; false when
  /// there was nothing to do.
  fn rekey_record(&self, id: &str, unwrap: bool) -> impl Future<Output = Result<bool>> + Send;

  /// Lets the database drop what it keeps of replaced rows (after a rekey).
  fn compact(&self) -> impl Future<Output = Result<()>> + Send;

  /// Releases connections and background tasks.
  fn close(&self) -> impl Future<Output = ()> + Send;
}
