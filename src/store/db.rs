//! The SQLite side of the store: connections (WAL, busy timeout), the
//! pixstore table `image_records`, our intent table, and the statements on
//! them. Every statement is cached on its connection.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction};

use crate::config::Durability;
use crate::error::{Error, Result};

/// How long a connection waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(15);

/// The database a store's connections open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
  /// A SQLite file (absolute path).
  File(PathBuf),
  /// An in-memory database shared by this store's connections only: SQLite's
  /// `memdb` VFS under a name no other store uses (`databasePath: ':memory:'`).
  Memory(String),
}

impl Database {
  /// The file, for a database on disk.
  pub fn file(&self) -> Option<&std::path::Path> {
    match self {
      Database::File(path) => Some(path),
      Database::Memory(_) => None,
    }
  }
}

/// Opens a connection with the pragmas every connection of the store uses;
/// `read_only` for a store whose disk refuses writes.
pub fn open(database: &Database, durability: Durability, read_only: bool) -> Result<Connection> {
  let access = match read_only {
    true => OpenFlags::SQLITE_OPEN_READ_ONLY,
    false => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
  };
  let flags = access | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
  let conn = match database {
    Database::File(path) if read_only => open_read_only(path, flags)?,
    // A path is given as a URI-less file name: a `file:` or `?` in it stays literal.
    Database::File(path) => Connection::open_with_flags(path, flags - OpenFlags::SQLITE_OPEN_URI)?,
    Database::Memory(name) => Connection::open_with_flags(format!("file:/{name}?vfs=memdb"), flags)?,
  };
  conn.busy_timeout(BUSY_TIMEOUT)?;
  let synchronous = match durability {
    Durability::Process => "NORMAL",
    Durability::Fsync => "FULL",
  };
  conn.pragma_update(None, "synchronous", synchronous)?;
  conn.set_prepared_statement_cache_capacity(32);
  if read_only && !has_table(&conn, INTENTS_TABLE)? {
    // A store pixstore wrote has no intent table, and a read-only disk cannot
    // get one: an empty one of this connection's own stands in for it.
    conn.execute_batch(&format!("CREATE TEMP TABLE {INTENTS_TABLE} ({INTENT_COLUMNS})"))?;
  }
  Ok(conn)
}

/// A read-only connection to a database file. A WAL database closed cleanly
/// has no `-shm` file, and SQLite cannot create one on a read-only file
/// system; there, and only when no WAL content is waiting (nothing can
/// change the file), it is opened `immutable` instead, which needs none.
fn open_read_only(path: &std::path::Path, flags: OpenFlags) -> Result<Connection> {
  // Opening is lazy: the first read tells whether the file can be read.
  let plain = Connection::open_with_flags(path, flags - OpenFlags::SQLITE_OPEN_URI).and_then(|conn| {
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))?;
    Ok(conn)
  });
  let err = match plain {
    Ok(conn) => return Ok(conn),
    Err(err) => err,
  };
  let mut wal = path.as_os_str().to_owned();
  wal.push("-wal");
  let wal_empty = std::fs::metadata(&wal).map_or(true, |metadata| metadata.len() == 0);
  if !(wal_empty && file_system_is_read_only(path)) {
    return Err(err.into());
  }
  const URI_RESERVED: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS.add(b'%').add(b'?').add(b'#');
  let encoded = percent_encoding::utf8_percent_encode(&path.to_string_lossy(), URI_RESERVED).to_string();
  Ok(Connection::open_with_flags(
    format!("file:{encoded}?immutable=1"),
    flags,
  )?)
}

/// Whether the file system holding `path` is mounted read-only.
fn file_system_is_read_only(path: &std::path::Path) -> bool {
  #[cfg(unix)]
  {
    use std::os::unix::ffi::OsStrExt;
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
      return false;
    };
    // SAFETY: `path` is NUL-terminated and `stats` is a valid out-pointer.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    let result = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    result == 0 && stats.f_flag & libc::ST_RDONLY != 0
  }
  #[cfg(not(unix))]
  {
    let _ = path;
    false
  }
}

const INTENTS_TABLE: &str = "pixstore_native_intents";
const INTENT_COLUMNS: &str =
  "seq INTEGER PRIMARY KEY, id TEXT NOT NULL, owner TEXT NOT NULL, temp_name TEXT, meta TEXT";

fn has_table(conn: &Connection, name: &str) -> Result<bool> {
  let mut statement = conn.prepare_cached("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1")?;
  Ok(statement.exists([name])?)
}

/// Switches a database file to WAL (an in-memory one has no WAL) and creates
/// the tables: pixstore's exactly, plus ours. Writes nothing when they exist.
/// Any number of processes may run this on one database at the same time:
/// every step waits for the others' locks instead of failing with "database
/// is locked" (measured before: 1 to 4 failures in 60 rounds of 8 processes
/// opening a fresh store at the same instant).
pub fn create_schema(conn: &Connection, database: &Database) -> Result<()> {
  if matches!(database, Database::File(_)) {
    switch_to_wal(conn)?;
  }
  if has_table(conn, "image_records")? && has_table(conn, INTENTS_TABLE)? {
    return Ok(());
  }
  // BEGIN IMMEDIATE takes the write lock through the busy handler; a
  // statement that read first and then wanted to write could get SQLITE_BUSY
  // at once (SQLite's deadlock avoidance does not wait).
  conn.execute_batch(&format!(
    "BEGIN IMMEDIATE;
     CREATE TABLE IF NOT EXISTS image_records (
       id TEXT PRIMARY KEY,
       token INTEGER NOT NULL,
       meta TEXT NOT NULL
     );
     CREATE TABLE IF NOT EXISTS {INTENTS_TABLE} ({INTENT_COLUMNS});
     CREATE INDEX IF NOT EXISTS pixstore_native_intents_by_id ON {INTENTS_TABLE}(id);
     COMMIT;"
  ))?;
  Ok(())
}

/// `PRAGMA journal_mode=WAL`, retried while another process holds the lock
/// it needs: SQLite answers this pragma's lock conflicts with SQLITE_BUSY at
/// once rather than through the busy handler. An existing WAL database is
/// left as it is (no lock needed).
pub(crate) fn switch_to_wal(conn: &Connection) -> Result<()> {
  let deadline = Instant::now() + BUSY_TIMEOUT;
  let mut attempt: u64 = 0;
  loop {
    let current: String = conn.pragma_query_value(None, "journal_mode", |row| row.get(0))?;
    if current.eq_ignore_ascii_case("wal") {
      return Ok(());
    }
    match conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0)) {
      Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
      Ok(mode) => {
        return Err(Error::internal(format!(
          "could not switch the database to WAL (got {mode})"
        )))
      }
      Err(err) if err.sqlite_error_code() == Some(ErrorCode::DatabaseBusy) && Instant::now() < deadline => {
        attempt += 1;
        std::thread::sleep(Duration::from_millis(1 + (attempt * 7) % 20));
      }
      Err(err) => return Err(err.into()),
    }
  }
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
pub fn upsert_record(tx: &Connection, id: &str, token: i64, meta_json: &str) -> Result<()> {
  let mut statement = tx.prepare_cached(
    "INSERT INTO image_records (id, token, meta) VALUES (?1, ?2, ?3)
     ON CONFLICT(id) DO UPDATE SET token = excluded.token, meta = excluded.meta",
  )?;
  statement.execute(params![id, token, meta_json])?;
  Ok(())
}

/// Deletes the record of `id`; true if there was one.
pub fn delete_record(tx: &Connection, id: &str) -> Result<bool> {
  let mut statement = tx.prepare_cached("DELETE FROM image_records WHERE id = ?1")?;
  Ok(statement.execute([id])? > 0)
}

/// Logs an intent: a write when `meta_json` is given (`temp_name` holds the
/// encrypted file), else a delete (`temp_name` is where the file is moved
/// until the delete commits). Returns its sequence number.
pub fn insert_intent(tx: &Transaction, id: &str, owner: &str, temp_name: &str, meta_json: Option<&str>) -> Result<i64> {
  let mut statement =
    tx.prepare_cached("INSERT INTO pixstore_native_intents (id, owner, temp_name, meta) VALUES (?1, ?2, ?3, ?4)")?;
  statement.execute(params![id, owner, temp_name, meta_json])?;
  Ok(tx.last_insert_rowid())
}

/// Removes a finished intent.
pub fn delete_intent(conn: &Connection, seq: i64) -> Result<()> {
  let mut statement = conn.prepare_cached("DELETE FROM pixstore_native_intents WHERE seq = ?1")?;
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
  /// Temporary file of a write, or where a delete moves the file (`None` for
  /// a delete logged by pixstore-native 0.1, which removed the file in place).
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
