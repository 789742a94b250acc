//! Records in PostgreSQL (`databaseUrl`): pixstore's table `image_records(id
//! text primary key, token bigint not null, meta text not null)` plus our
//! intents and garbage, through a `deadpool-postgres` pool; TLS (rustls on
//! ring) when the URL's `sslmode` asks for it.
//!
//! `getImageRecord` is synchronous, so it cannot wait on the network: it
//! answers from an in-process replica of the records, loaded at open and kept
//! current by `LISTEN/NOTIFY` (every commit notifies the id it changed; the
//! listener fetches that row). This instance's own writes update the replica
//! when they commit (read-your-own-writes); another instance's writes arrive
//! after a notification round trip (measured in BENCHMARKS.md). After a lost
//! connection the listener reconnects and reloads everything.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres::{AsyncMessage, NoTls, Socket};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::repo::{Commit, Repo};
use crate::crypto::ImageMeta;
use crate::error::{Error, Result};
use crate::keys::Keyring;
use crate::store::{Listed, StoredRecord};

/// The channel every commit notifies, with the id as payload.
const CHANNEL: &str = "pixstore_native_records";
/// Serializes schema creation among instances starting together.
const SCHEMA_LOCK: i64 = 0x7069_7873_746f_7265; // "pixstore"
/// Rows per page when loading the replica.
const LOAD_PAGE: i64 = 10_000;
/// `Date.now()` as the database sees it.
const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

type Row = (String, i64, String);

/// An error with the chain of its causes (tokio-postgres and deadpool keep
/// the useful part, such as "connection refused", in the source).
fn with_causes(err: &dyn std::error::Error) -> String {
  let mut text = err.to_string();
  let mut source = err.source();
  while let Some(cause) = source {
    let cause_text = cause.to_string();
    if !text.contains(&cause_text) {
      text = format!("{text}: {cause_text}");
    }
    source = cause.source();
  }
  text
}

fn db_error(err: impl std::error::Error) -> Error {
  Error::internal(format!("database error: {}", with_causes(&err)))
}

/// A record from its row, with its key unwrapped (`masterKeys`).
/// A row of `id, token, meta` for the replica: its meta unwrapped, or why not.
fn replica_row(keyring: &Keyring, row: &tokio_postgres::Row) -> (String, (i64, Result<ImageMeta>)) {
  let (id, token, meta_json): Row = (row.get(0), row.get(1), row.get(2));
  let meta = serde_json::from_str(&meta_json)
    .map_err(Error::from)
    .and_then(|stored| keyring.unwrap(&id, &stored));
  (id, (token, meta))
}

fn to_record(keyring: &Keyring, (id, token, meta): Row) -> Result<StoredRecord> {
  let meta = keyring.unwrap(&id, &serde_json::from_str(&meta)?)?;
  Ok(StoredRecord { id, token, meta })
}

/// The tag of a record's meta JSON (which names its object).
fn tag_of(meta_json: &str) -> Result<String> {
  Ok(serde_json::from_str::<ImageMeta>(meta_json)?.tag)
}

/// How the connections are made: plain, or TLS verified against the system's
/// roots (plus `sslrootcert`).
#[derive(Clone)]
enum Tls {
  Plain,
  Rustls(MakeRustlsConnect),
}

/// Splits our TLS parameters off a `postgres://` URL: `sslmode=require`,
/// `verify-ca` or `verify-full` means TLS with a verified certificate (libpq
/// does not verify under `require`; we do), anything else plain;
/// `sslrootcert=<file>` adds trusted roots. Returns the URL tokio-postgres
/// parses and the TLS to use.
fn parse_url(url: &str) -> Result<(tokio_postgres::Config, Tls)> {
  let invalid =
    |err: &dyn std::fmt::Display| Error::config(format!("databaseUrl is not a valid PostgreSQL URL: {err}"));
  let (base, query) = url.split_once('?').unwrap_or((url, ""));
  let mut kept = Vec::new();
  let (mut tls, mut root_cert) = (false, None);
  for pair in query.split('&').filter(|pair| !pair.is_empty()) {
    match pair.split_once('=').unwrap_or((pair, "")) {
      ("sslmode", mode) => tls = matches!(mode, "require" | "verify-ca" | "verify-full"),
      ("sslrootcert", path) => {
        root_cert = Some(
          percent_encoding::percent_decode_str(path)
            .decode_utf8_lossy()
            .into_owned(),
        )
      }
      _ => kept.push(pair),
    }
  }
  kept.push(if tls { "sslmode=require" } else { "sslmode=disable" });
  let url = format!("{base}?{}", kept.join("&"));
  let mut config: tokio_postgres::Config = url.parse().map_err(|err| invalid(&err))?;
  config.connect_timeout(Duration::from_secs(10));
  config.application_name("pixstore-native");
  if !tls {
    return Ok((config, Tls::Plain));
  }
  super::install_tls_provider();
  let mut roots = rustls::RootCertStore::empty();
  roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
  if let Some(path) = root_cert {
    use rustls::pki_types::pem::PemObject;
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(&path)
      .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
      .map_err(|err| Error::config(format!("databaseUrl sslrootcert {path} cannot be read: {err}")))?;
    roots.add_parsable_certificates(certs);
  }
  let client = rustls::ClientConfig::builder()
    .with_root_certificates(roots)
    .with_no_client_auth();
  Ok((config, Tls::Rustls(MakeRustlsConnect::new(client))))
}

/// Where the host and database are, for messages (never the password).
fn describe(config: &tokio_postgres::Config) -> String {
  let host = config
    .get_hosts()
    .first()
    .map(|host| match host {
      tokio_postgres::config::Host::Tcp(name) => name.clone(),
      #[cfg(unix)]
      tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
    })
    .unwrap_or_default();
  let port = config.get_ports().first().copied().unwrap_or(5432);
  format!("{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

/// The records as this instance last saw them.
#[derive(Default)]
struct Replica {
  /// Each record's token and meta, or why its meta cannot be read (not JSON,
  /// a key under a master key not in `masterKeys`): one such row fails the
  /// reads of its own id, as in the local store, not the replica as a whole.
  records: RwLock<HashMap<String, (i64, Result<ImageMeta>)>>,
}

impl Replica {
  fn get(&self, id: &str) -> Result<Option<StoredRecord>> {
    let Ok(records) = self.records.read() else {
      return Ok(None);
    };
    records
      .get(id)
      .map(|(token, meta)| {
        Ok(StoredRecord {
          id: id.to_string(),
          token: *token,
          meta: meta.clone()?,
        })
      })
      .transpose()
  }

  /// Applies a row as read (see [`Replica::upsert`]), readable or not.
  fn upsert_row(&self, id: String, token: i64, meta: Result<ImageMeta>) {
    if let Ok(mut records) = self.records.write() {
      if records.get(&id).is_none_or(|(known, _)| *known < token) {
        records.insert(id, (token, meta));
      }
    }
  }

  /// Applies a record as read at some moment: kept only if newer than what
  /// is known (a slower reader never moves a record back).
  fn upsert(&self, record: &StoredRecord) {
    self.upsert_row(record.id.clone(), record.token, Ok(record.meta.clone()));
  }

  fn remove(&self, id: &str) {
    if let Ok(mut records) = self.records.write() {
      records.remove(id);
    }
  }
}

/// The PostgreSQL repository of a remote store.
pub struct PgRepo {
  pool: Pool,
  keyring: Keyring,
  replica: Arc<Replica>,
  listener: Mutex<Option<JoinHandle<()>>>,
}

impl PgRepo {
  /// Connects (a clear error if the database cannot be reached, or refuses
  /// the credentials), creates the tables if missing, and loads the replica.
  pub async fn connect(url: &str, pool_size: usize, keyring: Keyring) -> Result<PgRepo> {
    let (config, tls) = parse_url(url)?;
    let place = describe(&config);
    let manager_config = ManagerConfig {
      recycling_method: RecyclingMethod::Fast,
    };
    let manager = match &tls {
      Tls::Plain => Manager::from_config(config.clone(), NoTls, manager_config),
      Tls::Rustls(tls) => Manager::from_config(config.clone(), tls.clone(), manager_config),
    };
    let pool = Pool::builder(manager)
      .max_size(pool_size)
      .runtime(Runtime::Tokio1)
      .wait_timeout(Some(Duration::from_secs(30)))
      .create_timeout(Some(Duration::from_secs(10)))
      .recycle_timeout(Some(Duration::from_secs(5)))
      .build()
      .map_err(|err| Error::config(format!("Cannot use the PostgreSQL database {place}: {err}")))?;
    let unreachable =
      |err: &dyn std::fmt::Display| Error::config(format!("Cannot use the PostgreSQL database {place}: {err}"));
    let client = pool.get().await.map_err(|err| unreachable(&with_causes(&err)))?;
    create_schema(&client)
      .await
      .map_err(|err| unreachable(&with_causes(&err)))?;
    drop(client);
    let replica = Arc::new(Replica::default());
    let (ready, loaded) = oneshot::channel();
    let listener = tokio::spawn(listen(config, tls, keyring.clone(), Arc::clone(&replica), ready));
    match tokio::time::timeout(Duration::from_secs(120), loaded).await {
      Ok(Ok(Ok(()))) => {}
      Ok(Ok(Err(err))) => {
        listener.abort();
        return Err(unreachable(&err));
      }
      _ => {
        listener.abort();
        return Err(unreachable(&"the records could not be loaded within 120 s"));
      }
    }
    Ok(PgRepo {
      pool,
      keyring,
      replica,
      listener: Mutex::new(Some(listener)),
    })
  }

  async fn client(&self) -> Result<deadpool_postgres::Object> {
    self.pool.get().await.map_err(db_error)
  }

  /// Rows of the given ids, as a map of token and meta (or why it cannot be read).
  async fn fetch_many(
    client: &tokio_postgres::Client,
    keyring: &Keyring,
    ids: &[String],
  ) -> Result<HashMap<String, (i64, Result<ImageMeta>)>> {
    let rows = client
      .query("SELECT id, token, meta FROM image_records WHERE id = ANY($1)", &[&ids])
      .await
      .map_err(db_error)?;
    Ok(rows.into_iter().map(|row| replica_row(keyring, &row)).collect())
  }
}

async fn create_schema(client: &tokio_postgres::Client) -> std::result::Result<(), tokio_postgres::Error> {
  client
    .batch_execute(&format!(
      "BEGIN;
       SELECT pg_advisory_xact_lock({SCHEMA_LOCK});
       CREATE TABLE IF NOT EXISTS image_records (
         id text PRIMARY KEY,
         token bigint NOT NULL,
         meta text NOT NULL
       );
       CREATE TABLE IF NOT EXISTS pixstore_native_object_intents (
         seq bigserial PRIMARY KEY,
         id text NOT NULL,
         tag text NOT NULL,
         created_at timestamptz NOT NULL DEFAULT clock_timestamp()
       );
       CREATE INDEX IF NOT EXISTS pixstore_native_object_intents_by_age ON pixstore_native_object_intents (created_at);
       CREATE TABLE IF NOT EXISTS pixstore_native_garbage (
         id text NOT NULL,
         tag text NOT NULL,
         due_at timestamptz NOT NULL,
         PRIMARY KEY (id, tag)
       );
       CREATE INDEX IF NOT EXISTS pixstore_native_garbage_by_due ON pixstore_native_garbage (due_at);
       COMMIT;"
    ))
    .await
}

/// Keeps the replica current: connects, listens, loads every record, then
/// applies notifications; reconnects (and reloads) after a lost connection.
/// Reports the outcome of the first load through `ready`.
async fn listen(
  config: tokio_postgres::Config,
  tls: Tls,
  keyring: Keyring,
  replica: Arc<Replica>,
  ready: oneshot::Sender<Result<()>>,
) {
  let mut ready = Some(ready);
  let mut backoff = Duration::from_millis(100);
  loop {
    let outcome = match &tls {
      Tls::Plain => session(&config, NoTls, &keyring, &replica, &mut ready).await,
      Tls::Rustls(tls) => session(&config, tls.clone(), &keyring, &replica, &mut ready).await,
    };
    if let (Err(err), Some(first)) = (outcome, ready.take()) {
      let _ = first.send(Err(err));
      return;
    }
    tokio::time::sleep(backoff).await;
    backoff = (backoff * 2).min(Duration::from_secs(5));
  }
}

async fn session<T>(
  config: &tokio_postgres::Config,
  tls: T,
  keyring: &Keyring,
  replica: &Replica,
  ready: &mut Option<oneshot::Sender<Result<()>>>,
) -> Result<()>
where
  T: MakeTlsConnect<Socket> + Send,
  T::Stream: Send + 'static,
  T::TlsConnect: Send,
  <T::TlsConnect as TlsConnect<Socket>>::Future: Send,
{
  let (client, mut connection) = config.connect(tls).await.map_err(db_error)?;
  let (notes, mut notifications) = mpsc::unbounded_channel::<Option<String>>();
  let driver = tokio::spawn(async move {
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(message) = messages.next().await {
      match message {
        Ok(AsyncMessage::Notification(note)) => {
          if notes.send(Some(note.payload().to_string())).is_err() {
            return;
          }
        }
        Ok(_) => {}
        Err(_) => break,
      }
    }
    let _ = notes.send(None);
  });
  let result = async {
    client
      .batch_execute(&format!("LISTEN {CHANNEL}"))
      .await
      .map_err(db_error)?;
    // Load after LISTEN: a change during the load is notified and applied after it.
    let mut loaded = HashMap::new();
    let mut after = String::new();
    loop {
      let rows = client
        .query(
          "SELECT id, token, meta FROM image_records WHERE id > $1 ORDER BY id LIMIT $2",
          &[&after, &LOAD_PAGE],
        )
        .await
        .map_err(db_error)?;
      let count = rows.len() as i64;
      for row in rows {
        let (id, entry) = replica_row(keyring, &row);
        after.clone_from(&id);
        loaded.insert(id, entry);
      }
      if count < LOAD_PAGE {
        break;
      }
    }
    if let Ok(mut records) = replica.records.write() {
      *records = loaded;
    }
    if let Some(ready) = ready.take() {
      let _ = ready.send(Ok(()));
    }
    while let Some(note) = notifications.recv().await {
      let Some(first) = note else { break };
      let mut ids = vec![first];
      while let Ok(Some(id)) = notifications.try_recv() {
        ids.push(id);
      }
      ids.sort();
      ids.dedup();
      let mut found = PgRepo::fetch_many(&client, keyring, &ids).await?;
      for id in ids {
        match found.remove(&id) {
          Some((token, meta)) => replica.upsert_row(id, token, meta),
          None => replica.remove(&id),
        }
      }
    }
    Err(Error::internal("the notification connection closed"))
  }
  .await;
  driver.abort();
  result
}

impl Repo for PgRepo {
  fn cached_record(&self, id: &str) -> Result<Option<StoredRecord>> {
    self.replica.get(id)
  }

  async fn fetch_record(&self, id: &str) -> Result<Option<StoredRecord>> {
    let client = self.client().await?;
    let statement = client
      .prepare_cached("SELECT id, token, meta FROM image_records WHERE id = $1")
      .await
      .map_err(db_error)?;
    let row = client.query_opt(&statement, &[&id]).await.map_err(db_error)?;
    let record = row
      .map(|row| to_record(&self.keyring, (row.get(0), row.get(1), row.get(2))))
      .transpose()?;
    match &record {
      Some(record) => self.replica.upsert(record),
      None => self.replica.remove(id),
    }
    Ok(record)
  }

  async fn begin_write(&self, id: &str, tag: &str) -> Result<i64> {
    let client = self.client().await?;
    let statement = client
      .prepare_cached("INSERT INTO pixstore_native_object_intents (id, tag) VALUES ($1, $2) RETURNING seq")
      .await
      .map_err(db_error)?;
    Ok(
      client
        .query_one(&statement, &[&id, &tag])
        .await
        .map_err(db_error)?
        .get(0),
    )
  }

  async fn commit_write(&self, commit: Commit<'_>) -> Result<StoredRecord> {
    let mut client = self.client().await?;
    let meta_json = serde_json::to_string(&self.keyring.wrap(commit.id, commit.meta)?)?;
    let tx = client.transaction().await.map_err(db_error)?;
    let intent = tx
      .execute(
        "DELETE FROM pixstore_native_object_intents WHERE seq = $1",
        &[&commit.intent],
      )
      .await
      .map_err(db_error)?;
    if intent == 0 {
      return Err(Error::internal(
        "the write took longer than orphanGracePeriodMs and was abandoned",
      ));
    }
    let previous = tx
      .query_opt("SELECT meta FROM image_records WHERE id = $1 FOR UPDATE", &[&commit.id])
      .await
      .map_err(db_error)?
      .map(|row| row.get::<_, String>(0));
    match (&previous, commit.new) {
      (None, false) => {
        drop(tx);
        let _ = self.abandon_write(commit.intent).await;
        return Err(Error::not_found(commit.id));
      }
      (Some(_), true) => return Err(Error::internal(format!("the new id {} is taken", commit.id))),
      _ => {}
    }
    let token: i64 = tx
      .query_one(
        &format!(
          "INSERT INTO image_records (id, token, meta) VALUES ($1, {NOW_MS}, $2)
           ON CONFLICT (id) DO UPDATE SET token = greatest(excluded.token, image_records.token + 1), meta = excluded.meta
           RETURNING token"
        ),
        &[&commit.id, &meta_json],
      )
      .await
      .map_err(db_error)?
      .get(0);
    if let Some(previous) = &previous {
      add_garbage_in(&tx, commit.id, &tag_of(previous)?, commit.grace).await?;
    }
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &commit.id])
      .await
      .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    let record = StoredRecord {
      id: commit.id.to_string(),
      token,
      meta: commit.meta.clone(),
    };
    self.replica.upsert(&record);
    Ok(record)
  }

  async fn abandon_write(&self, intent: i64) -> Result<bool> {
    let client = self.client().await?;
    let removed = client
      .execute("DELETE FROM pixstore_native_object_intents WHERE seq = $1", &[&intent])
      .await
      .map_err(db_error)?;
    Ok(removed > 0)
  }

  async fn delete_record(&self, id: &str, grace: Duration) -> Result<bool> {
    let mut client = self.client().await?;
    let tx = client.transaction().await.map_err(db_error)?;
    let removed = tx
      .query_opt("DELETE FROM image_records WHERE id = $1 RETURNING meta", &[&id])
      .await
      .map_err(db_error)?
      .map(|row| row.get::<_, String>(0));
    if let Some(meta) = &removed {
      add_garbage_in(&tx, id, &tag_of(meta)?, grace).await?;
      tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &id])
        .await
        .map_err(db_error)?;
    }
    tx.commit().await.map_err(db_error)?;
    self.replica.remove(id);
    Ok(removed.is_some())
  }

  async fn add_garbage(&self, id: &str, tag: &str, grace: Duration) -> Result<()> {
    let client = self.client().await?;
    add_garbage_in(&client, id, tag, grace).await
  }

  async fn take_due(&self, grace: Duration, limit: i64) -> Result<Vec<(String, String)>> {
    let client = self.client().await?;
    let grace_ms = grace.as_millis() as f64;
    let rows = client
      .query(
        "WITH due AS (
           DELETE FROM pixstore_native_garbage WHERE (id, tag) IN (
             SELECT id, tag FROM pixstore_native_garbage WHERE due_at <= clock_timestamp()
             ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id, tag
         ), expired AS (
           DELETE FROM pixstore_native_object_intents WHERE seq IN (
             SELECT seq FROM pixstore_native_object_intents
             WHERE created_at <= clock_timestamp() - $2 * interval '1 millisecond'
             ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
           RETURNING id, tag
         )
         SELECT id, tag FROM due UNION ALL SELECT id, tag FROM expired",
        &[&limit, &grace_ms],
      )
      .await
      .map_err(db_error)?;
    Ok(rows.into_iter().map(|row| (row.get(0), row.get(1))).collect())
  }

  async fn named(&self, objects: &[(String, String)]) -> Result<HashSet<(String, String)>> {
    let client = self.client().await?;
    let ids: Vec<&str> = objects.iter().map(|(id, _)| id.as_str()).collect();
    let tags: Vec<&str> = objects.iter().map(|(_, tag)| tag.as_str()).collect();
    let rows = client
      .query(
        "SELECT o.id, o.tag FROM unnest($1::text[], $2::text[]) AS o(id, tag)
         WHERE EXISTS (SELECT 1 FROM image_records r WHERE r.id = o.id AND r.meta::json->>'tag' = o.tag)
            OR EXISTS (SELECT 1 FROM pixstore_native_object_intents i WHERE i.id = o.id AND i.tag = o.tag)
            OR EXISTS (SELECT 1 FROM pixstore_native_garbage g WHERE g.id = o.id AND g.tag = o.tag)",
        &[&ids, &tags],
      )
      .await
      .map_err(db_error)?;
    Ok(rows.into_iter().map(|row| (row.get(0), row.get(1))).collect())
  }

  async fn count(&self) -> Result<u64> {
    let client = self.client().await?;
    let count: i64 = client
      .query_one("SELECT count(*) FROM image_records", &[])
      .await
      .map_err(db_error)?
      .get(0);
    Ok(count as u64)
  }

  async fn expired_intents(&self, grace: Duration) -> Result<Vec<(String, String)>> {
    let client = self.client().await?;
    let grace_ms = grace.as_millis() as f64;
    let rows = client
      .query(
        "SELECT id, tag FROM pixstore_native_object_intents
         WHERE created_at <= clock_timestamp() - $1 * interval '1 millisecond' ORDER BY seq",
        &[&grace_ms],
      )
      .await
      .map_err(db_error)?;
    Ok(rows.into_iter().map(|row| (row.get(0), row.get(1))).collect())
  }

  async fn records_after(&self, after: &str, limit: i64) -> Result<Vec<Listed>> {
    let client = self.client().await?;
    let rows = client
      .query(
        "SELECT id, token, meta FROM image_records WHERE id > $1 ORDER BY id LIMIT $2",
        &[&after, &limit],
      )
      .await
      .map_err(db_error)?;
    rows
      .into_iter()
      .map(|row| Ok(StoredRecord::listed(&self.keyring, row.get(0), row.get(1), row.get(2))))
      .collect()
  }

  async fn put_record(&self, intent: i64, record: &StoredRecord, grace: Duration) -> Result<bool> {
    let mut client = self.client().await?;
    let meta_json = serde_json::to_string(&self.keyring.wrap(&record.id, &record.meta)?)?;
    let tx = client.transaction().await.map_err(db_error)?;
    let intent = tx
      .execute("DELETE FROM pixstore_native_object_intents WHERE seq = $1", &[&intent])
      .await
      .map_err(db_error)?;
    if intent == 0 {
      return Err(Error::internal(
        "the write took longer than orphanGracePeriodMs and was abandoned",
      ));
    }
    let previous = tx
      .query_opt(
        "SELECT token, meta FROM image_records WHERE id = $1 FOR UPDATE",
        &[&record.id],
      )
      .await
      .map_err(db_error)?
      .map(|row| (row.get::<_, i64>(0), row.get::<_, String>(1)));
    if previous.as_ref().is_some_and(|(token, _)| *token >= record.token) {
      tx.commit().await.map_err(db_error)?;
      return Ok(false);
    }
    tx.execute(
      "INSERT INTO image_records (id, token, meta) VALUES ($1, $2, $3)
       ON CONFLICT (id) DO UPDATE SET token = excluded.token, meta = excluded.meta",
      &[&record.id, &record.token, &meta_json],
    )
    .await
    .map_err(db_error)?;
    if let Some((_, meta)) = &previous {
      let tag = tag_of(meta)?;
      if tag != record.meta.tag {
        add_garbage_in(&tx, &record.id, &tag, grace).await?;
      }
    }
    tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &record.id])
      .await
      .map_err(db_error)?;
    tx.commit().await.map_err(db_error)?;
    self.replica.upsert(record);
    Ok(true)
  }

  async fn rekey_record(&self, id: &str, unwrap: bool) -> Result<bool> {
    let client = self.client().await?;
    let Some(row) = client
      .query_opt("SELECT meta FROM image_records WHERE id = $1", &[&id])
      .await
      .map_err(db_error)?
    else {
      return Ok(false);
    };
    let stored_json: String = row.get(0);
    let Some(wanted) = self.keyring.rekeyed(id, &stored_json, unwrap)? else {
      return Ok(false);
    };
    let changed = client
      .execute(
        "WITH changed AS (UPDATE image_records SET meta = $2 WHERE id = $1 AND meta = $3 RETURNING id)
         SELECT pg_notify($4, id) FROM changed",
        &[&id, &wanted, &stored_json, &CHANNEL],
      )
      .await
      .map_err(db_error)?;
    Ok(changed > 0)
  }

  async fn compact(&self) -> Result<()> {
    let client = self.client().await?;
    client.batch_execute("VACUUM image_records").await.map_err(db_error)
  }

  async fn close(&self) {
    if let Some(listener) = self.listener.lock().ok().and_then(|mut listener| listener.take()) {
      listener.abort();
    }
    self.pool.close();
  }
}

async fn add_garbage_in<C: deadpool_postgres::GenericClient>(
  client: &C,
  id: &str,
  tag: &str,
  grace: Duration,
) -> Result<()> {
  let grace_ms = grace.as_millis() as f64;
  client
    .execute(
      "INSERT INTO pixstore_native_garbage (id, tag, due_at)
       VALUES ($1, $2, clock_timestamp() + $3 * interval '1 millisecond')
       ON CONFLICT (id, tag) DO NOTHING",
      &[&id, &tag, &grace_ms],
    )
    .await
    .map_err(db_error)?;
  Ok(())
}
