//! The SQLite side of the store: connections (WAL, busy timeout), the
//! pixstore table `image_records`, our intent table, and the statements on
//! them. Every statement is cached on its connection.

use std::path::Path;
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Transaction};

use crate::config::Durability;
use crate::error::Result;

/// How long a connection waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// Opens a connection with the pragmas every connection of the store uses.
pub fn open(path: &Path, durability: Durability) -> Result<Connection> {
  let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
  let conn = Connection::open_with_flags(path, flags)?;
  conn.busy_timeout(BUSY_TIMEOUT)?;
  let synchronous = match durability {
    Durability::Process => "NORMAL",
    Durability::Fsync => "FULL",
  };
  conn.pragma_update(None, "synchronous", synchronous)?;
  conn.set_prepared_statement_cache_capacity(32);
  Ok(conn)
}

/// Switches the database to WAL and creates the tables (pixstore's exactly, plus ours).
pub fn create_schema(conn: &Connection) -> Result<()> {
  let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
  if !mode.eq_ignore_ascii_case("wal") {
    return Err(crate::error::Error::internal(format!(
      "could not switch the database to WAL (got {mode})"
    )));
  }
  conn.execute_batch(
    "CREATE TABLE IF NOT EXISTS image_records (
       id TEXT PRIMARY KEY,
       token INTEGER NOT NULL,
       meta TEXT NOT NULL
     );
     CREATE TABLE IF NOT EXISTS pixstore_native_intents (
       seq INTEGER PRIMARY KEY,
       id TEXT NOT NULL,
       owner TEXT NOT NULL,
       temp_name TEXT,
       meta TEXT
     );
     CREATE INDEX IF NOT EXISTS pixstore_native_intents_by_id ON pixstore_native_intents(id);",
  )?;
  Ok(())
}

/// What the database says about one id at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdState {
  /// `(token, meta JSON)` of the committed record, if any.
  pub record: Option<(i64, String)>,
  /// Number of unfinished writes or deletes of this id.
  pub intents: i64,
}

/// The record and the number of intents of `id`, read in one statement.
pub fn id_state(conn: &Connection, id: &str) -> Result<IdState> {
  let mut statement = conn.prepare_cached(
    "SELECT r.token, r.meta, (SELECT count(*) FROM pixstore_native_intents WHERE id = ?1)
     FROM (SELECT 1) LEFT JOIN image_records r ON r.id = ?1",
  )?;
  Ok(statement.query_row([id], |row| {
    let token: Option<i64> = row.get(0)?;
    let meta: Option<String> = row.get(1)?;
    Ok(IdState {
      record: token.zip(meta),
      intents: row.get(2)?,
    })
  })?)
}

/// `(token, meta JSON)` of the record of `id`.
pub fn record(conn: &Connection, id: &str) -> Result<Option<(i64, String)>> {
  let mut statement = conn.prepare_cached("SELECT token, meta FROM image_records WHERE id = ?1")?;
  Ok(
    statement
      .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
      .optional()?,
  )
}

/// The token of the record of `id`.
pub fn record_token(conn: &Connection, id: &str) -> Result<Option<i64>> {
  let mut statement = conn.prepare_cached("SELECT token FROM image_records WHERE id = ?1")?;
  Ok(statement.query_row([id], |row| row.get(0)).optional()?)
}

/// Whether `id` has a record or an unfinished intent (an id in use).
pub fn id_taken(conn: &Connection, id: &str) -> Result<bool> {
  let state = id_state(conn, id)?;
  Ok(state.record.is_some() || state.intents > 0)
}

/// Inserts or replaces the record of `id`.
pub fn upsert_record(tx: &Transaction, id: &str, token: i64, meta_json: &str) -> Result<()> {
  let mut statement = tx.prepare_cached(
    "INSERT INTO image_records (id, token, meta) VALUES (?1, ?2, ?3)
     ON CONFLICT(id) DO UPDATE SET token = excluded.token, meta = excluded.meta",
  )?;
  statement.execute(params![id, token, meta_json])?;
  Ok(())
}

/// Deletes the record of `id`; true if there was one.
pub fn delete_record(tx: &Transaction, id: &str) -> Result<bool> {
  let mut statement = tx.prepare_cached("DELETE FROM image_records WHERE id = ?1")?;
  Ok(statement.execute([id])? > 0)
}

/// Logs an intent (a write when `temp_name`/`meta` are given, else a delete); returns its sequence number.
pub fn insert_intent(
  tx: &Transaction,
  id: &str,
  owner: &str,
  temp_name: Option<&str>,
  meta_json: Option<&str>,
) -> Result<i64> {
  let mut statement =
    tx.prepare_cached("INSERT INTO pixstore_native_intents (id, owner, temp_name, meta) VALUES (?1, ?2, ?3, ?4)")?;
  statement.execute(params![id, owner, temp_name, meta_json])?;
  Ok(tx.last_insert_rowid())
}

/// Removes a finished intent.
pub fn delete_intent(tx: &Transaction, seq: i64) -> Result<()> {
  let mut statement = tx.prepare_cached("DELETE FROM pixstore_native_intents WHERE seq = ?1")?;
  statement.execute([seq])?;
  Ok(())
}

/// An unfinished write or delete, as logged.
#[derive(Debug, Clone)]
pub struct Intent {
  /// Sequence number (log order).
  pub seq: i64,
  /// The image id.
  pub id: String,
  /// The store instance that logged it.
  pub owner: String,
  /// Temporary file of a write; `None` for a delete.
  pub temp_name: Option<String>,
  /// Meta JSON of a write; `None` for a delete.
  pub meta: Option<String>,
}

/// Every intent, in log order.
pub fn intents(conn: &Connection) -> Result<Vec<Intent>> {
  let mut statement =
    conn.prepare_cached("SELECT seq, id, owner, temp_name, meta FROM pixstore_native_intents ORDER BY seq")?;
  let rows = statement.query_map([], |row| {
    Ok(Intent {
      seq: row.get(0)?,
      id: row.get(1)?,
      owner: row.get(2)?,
      temp_name: row.get(3)?,
      meta: row.get(4)?,
    })
  })?;
  Ok(rows.collect::<rusqlite::Result<_>>()?)
}
