//! Records in SQLite with the bytes in S3-compatible storage (`objectStore`
//! without `databaseUrl`): the same table as the local store, plus the
//! remote store's intents and garbage. SQLite is on this host, so
//! `getImageRecord` reads it directly and no replica is needed; several
//! processes on the host share it as they share a local store.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::repo::{Commit, Repo};
use crate::config::Durability;
use crate::crypto::ImageMeta;
use crate::error::{Error, Result};
use crate::keys::Keyring;
use crate::store::db::{self, Database};
use crate::store::{blocking, now_ms, Listed, StoredRecord};

/// The SQLite repository of a remote store.
pub struct SqliteRepo {
  writer: Arc<Mutex<Connection>>,
  reader: Mutex<Connection>,
  keyring: Keyring,
}

fn poisoned() -> Error {
  Error::internal("database connection poisoned")
}

/// The record of `id`, its key unwrapped (`masterKeys`).
fn record_of(conn: &Connection, keyring: &Keyring, id: &str) -> Result<Option<StoredRecord>> {
  let mut statement = conn.prepare_cached("SELECT token, meta FROM image_records WHERE id = ?1")?;
  let row = statement
    .query_row([id], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?)))
    .optional()?;
  row
    .map(|(token, meta)| {
      Ok(StoredRecord {
        id: id.to_string(),
        token,
        meta: keyring.unwrap(id, &serde_json::from_str(&meta)?)?,
      })
    })
    .transpose()
}

fn tag_of(meta_json: &str) -> Result<String> {
  Ok(serde_json::from_str::<ImageMeta>(meta_json)?.tag)
}

fn add_garbage_in(conn: &Connection, id: &str, tag: &str, grace: Duration) -> Result<()> {
  conn.execute(
    "INSERT OR IGNORE INTO pixstore_native_garbage (id, tag, due_at) VALUES (?1, ?2, ?3)",
    params![id, tag, (now_ms() + grace.as_millis() as u64) as i64],
  )?;
  Ok(())
}

impl SqliteRepo {
  /// Opens (creating if needed) the database file and its tables.
  pub fn open(path: &Path, durability: Durability, keyring: Keyring) -> Result<SqliteRepo> {
    if let Some(parent) = path.parent() {
      std::fs::create_dir_all(parent)?;
    }
    let database = Database::File(path.to_owned());
    let writer = db::open(&database, durability, false)?;
    db::switch_to_wal(&writer)?;
    writer.execute_batch(
      "BEGIN IMMEDIATE;
       CREATE TABLE IF NOT EXISTS image_records (
         id TEXT PRIMARY KEY,
         token INTEGER NOT NULL,
         meta TEXT NOT NULL
       );
       CREATE TABLE IF NOT EXISTS pixstore_native_object_intents (
         seq INTEGER PRIMARY KEY,
         id TEXT NOT NULL,
         tag TEXT NOT NULL,
         created_at INTEGER NOT NULL
       );
       CREATE TABLE IF NOT EXISTS pixstore_native_garbage (
         id TEXT NOT NULL,
         tag TEXT NOT NULL,
         due_at INTEGER NOT NULL,
         PRIMARY KEY (id, tag)
       );
       COMMIT;",
    )?;
    let reader = db::open(&database, durability, false)?;
    Ok(SqliteRepo {
      writer: Arc::new(Mutex::new(writer)),
      reader: Mutex::new(reader),
      keyring,
    })
  }

  /// Runs `work` on the write connection, on the blocking pool.
  async fn with_writer<T: Send + 'static>(
    &self,
    work: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
  ) -> Result<T> {
    let writer = Arc::clone(&self.writer);
    blocking(move || work(&mut *writer.lock().map_err(|_| poisoned())?)).await
  }
}

impl Repo for SqliteRepo {
  fn cached_record(&self, id: &str) -> Result<Option<StoredRecord>> {
    let reader = self.reader.lock().map_err(|_| poisoned())?;
    record_of(&reader, &self.keyring, id)
  }

  async fn fetch_record(&self, id: &str) -> Result<Option<StoredRecord>> {
    let (id, keyring) = (id.to_string(), self.keyring.clone());
    self.with_writer(move |conn| record_of(conn, &keyring, &id)).await
  }

  async fn begin_write(&self, id: &str, tag: &str) -> Result<i64> {
    let (id, tag) = (id.to_string(), tag.to_string());
    self
      .with_writer(move |conn| {
        conn.execute(
          "INSERT INTO pixstore_native_object_intents (id, tag, created_at) VALUES (?1, ?2, ?3)",
          params![id, tag, now_ms() as i64],
        )?;
        Ok(conn.last_insert_rowid())
      })
      .await
  }

  async fn commit_write(&self, commit: Commit<'_>) -> Result<StoredRecord> {
    let (intent, id, new, meta, grace) = (
      commit.intent,
      commit.id.to_string(),
      commit.new,
      commit.meta.clone(),
      commit.grace,
    );
    let (keyring, stored) = (
      self.keyring.clone(),
      serde_json::to_string(&self.keyring.wrap(commit.id, commit.meta)?)?,
    );
    self
      .with_writer(move |conn| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if tx.execute("DELETE FROM pixstore_native_object_intents WHERE seq = ?1", [intent])? == 0 {
          return Err(Error::internal(
            "the write took longer than orphanGracePeriodMs and was abandoned",
          ));
        }
        let previous = record_of(&tx, &keyring, &id)?;
        match (&previous, new) {
          (None, false) => {
            // The intent goes with the refused write.
            tx.commit()?;
            return Err(Error::not_found(&id));
          }
          (Some(_), true) => return Err(Error::internal(format!("the new id {id} is taken"))),
          _ => {}
        }
        let token = crate::store::next_token(previous.as_ref().map(|record| record.token), now_ms());
        db::upsert_record(&tx, &id, token, &stored)?;
        if let Some(previous) = &previous {
          add_garbage_in(&tx, &id, &previous.meta.tag, grace)?;
        }
        tx.commit()?;
        Ok(StoredRecord { id, token, meta })
      })
      .await
  }

  async fn abandon_write(&self, intent: i64) -> Result<bool> {
    self
      .with_writer(move |conn| {
        Ok(conn.execute("DELETE FROM pixstore_native_object_intents WHERE seq = ?1", [intent])? > 0)
      })
      .await
  }

  async fn delete_record(&self, id: &str, grace: Duration) -> Result<bool> {
    let id = id.to_string();
    self
      .with_writer(move |conn| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let previous: Option<String> = tx
          .query_row("DELETE FROM image_records WHERE id = ?1 RETURNING meta", [&id], |row| {
            row.get(0)
          })
          .optional()?;
        if let Some(meta) = &previous {
          add_garbage_in(&tx, &id, &tag_of(meta)?, grace)?;
        }
        tx.commit()?;
        Ok(previous.is_some())
      })
      .await
  }

  async fn add_garbage(&self, id: &str, tag: &str, grace: Duration) -> Result<()> {
    let (id, tag) = (id.to_string(), tag.to_string());
    self
      .with_writer(move |conn| add_garbage_in(conn, &id, &tag, grace))
      .await
  }

  async fn take_due(&self, grace: Duration, limit: i64) -> Result<Vec<(String, String)>> {
    self
      .with_writer(move |conn| {
        let now = now_ms() as i64;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut taken: Vec<(String, String)> = Vec::new();
        {
          let mut due = tx.prepare(
            "DELETE FROM pixstore_native_garbage WHERE rowid IN (
               SELECT rowid FROM pixstore_native_garbage WHERE due_at <= ?1 ORDER BY due_at LIMIT ?2)
             RETURNING id, tag",
          )?;
          let rows = due.query_map(params![now, limit], |row| Ok((row.get(0)?, row.get(1)?)))?;
          taken.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
          let mut expired = tx.prepare(
            "DELETE FROM pixstore_native_object_intents WHERE seq IN (
               SELECT seq FROM pixstore_native_object_intents WHERE created_at <= ?1 ORDER BY seq LIMIT ?2)
             RETURNING id, tag",
          )?;
          let rows = expired.query_map(params![now - grace.as_millis() as i64, limit], |row| {
            Ok((row.get(0)?, row.get(1)?))
          })?;
          taken.extend(rows.collect::<rusqlite::Result<Vec<_>>>()?);
        }
        tx.commit()?;
        Ok(taken)
      })
      .await
  }

  async fn named(&self, objects: &[(String, String)]) -> Result<HashSet<(String, String)>> {
    let objects = objects.to_vec();
    self
      .with_writer(move |conn| {
        let mut named = HashSet::new();
        let mut record = conn.prepare_cached("SELECT meta FROM image_records WHERE id = ?1")?;
        let mut other = conn.prepare_cached(
          "SELECT EXISTS (SELECT 1 FROM pixstore_native_object_intents WHERE id = ?1 AND tag = ?2)
               OR EXISTS (SELECT 1 FROM pixstore_native_garbage WHERE id = ?1 AND tag = ?2)",
        )?;
        for (id, tag) in objects {
          let meta: Option<String> = record.query_row([&id], |row| row.get(0)).optional()?;
          let by_record = meta.is_some_and(|meta| tag_of(&meta).is_ok_and(|current| current == tag));
          if by_record || other.query_row([&id, &tag], |row| row.get::<_, bool>(0))? {
            named.insert((id, tag));
          }
        }
        Ok(named)
      })
      .await
  }

  async fn count(&self) -> Result<u64> {
    self
      .with_writer(|conn| {
        Ok(conn.query_row("SELECT count(*) FROM image_records", [], |row| row.get::<_, i64>(0))? as u64)
      })
      .await
  }

  async fn expired_intents(&self, grace: Duration) -> Result<Vec<(String, String)>> {
    self
      .with_writer(move |conn| {
        let cutoff = now_ms() as i64 - grace.as_millis() as i64;
        let mut statement = conn
          .prepare_cached("SELECT id, tag FROM pixstore_native_object_intents WHERE created_at <= ?1 ORDER BY seq")?;
        let rows = statement.query_map([cutoff], |row| Ok((row.get(0)?, row.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
      })
      .await
  }

  async fn records_after(&self, after: &str, limit: i64) -> Result<Vec<Listed>> {
    let (after, keyring) = (after.to_string(), self.keyring.clone());
    self
      .with_writer(move |conn| {
        let mut statement =
          conn.prepare_cached("SELECT id, token, meta FROM image_records WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let rows = statement.query_map(params![after, limit], |row| {
          Ok((
            row.get::<_, String>(0)?,
            row.get::<_, i64>(1)?,
            row.get::<_, String>(2)?,
          ))
        })?;
        rows
          .map(|row| {
            let (id, token, meta) = row?;
            Ok(StoredRecord::listed(&keyring, id, token, &meta))
          })
          .collect()
      })
      .await
  }

  async fn put_record(&self, intent: i64, record: &StoredRecord, grace: Duration) -> Result<bool> {
    let record = record.clone();
    let (keyring, stored) = (
      self.keyring.clone(),
      serde_json::to_string(&self.keyring.wrap(&record.id, &record.meta)?)?,
    );
    self
      .with_writer(move |conn| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if tx.execute("DELETE FROM pixstore_native_object_intents WHERE seq = ?1", [intent])? == 0 {
          return Err(Error::internal(
            "the write took longer than orphanGracePeriodMs and was abandoned",
          ));
        }
        let previous = record_of(&tx, &keyring, &record.id)?;
        if previous.as_ref().is_some_and(|previous| previous.token >= record.token) {
          tx.commit()?;
          return Ok(false);
        }
        db::upsert_record(&tx, &record.id, record.token, &stored)?;
        if let Some(previous) = previous.filter(|previous| previous.meta.tag != record.meta.tag) {
          add_garbage_in(&tx, &record.id, &previous.meta.tag, grace)?;
        }
        tx.commit()?;
        Ok(true)
      })
      .await
  }

  async fn rekey_record(&self, id: &str, unwrap: bool) -> Result<bool> {
    let (id, keyring) = (id.to_string(), self.keyring.clone());
    self
      .with_writer(move |conn| {
        let stored: Option<String> = conn
          .query_row("SELECT meta FROM image_records WHERE id = ?1", [&id], |row| row.get(0))
          .optional()?;
        let Some(stored) = stored else { return Ok(false) };
        let Some(wanted) = keyring.rekeyed(&id, &stored, unwrap)? else {
          return Ok(false);
        };
        conn.pragma_update(None, "secure_delete", true)?;
        let changed = conn.execute(
          "UPDATE image_records SET meta = ?1 WHERE id = ?2 AND meta = ?3",
          params![wanted, id, stored],
        )?;
        Ok(changed > 0)
      })
      .await
  }

  async fn compact(&self) -> Result<()> {
    self
      .with_writer(|conn| {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
      })
      .await
  }

  async fn close(&self) {}
}
