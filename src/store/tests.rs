use super::*;
use crate::crypto::{open, Sealed};
use rusqlite::params;

const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR tiny png body";

fn rules() -> ImageRules {
  ImageRules {
    formats: ["png", "webp", "jpg", "jpeg"].map(String::from).to_vec(),
    max_bytes: 1 << 20,
  }
}

fn location(dir: &Path) -> StoreLocation {
  StoreLocation {
    root: dir.join("images"),
    database: Database::File(dir.join("db.sqlite")),
    durability: Durability::Process,
    keyring: crate::keys::Keyring::default(),
    cache_bytes: crate::cache::DEFAULT_IMAGE_CACHE_BYTES,
  }
}

fn png(n: u32) -> PlainImage {
  let mut bytes = PNG.to_vec();
  bytes.extend_from_slice(&n.to_le_bytes());
  bytes_image(&bytes)
}

fn bytes_image(bytes: &[u8]) -> PlainImage {
  PlainImage::copy_of(bytes, u64::MAX).unwrap()
}

fn database(dir: &Path) -> Database {
  Database::File(dir.join("db.sqlite"))
}

/// Decrypts an image payload with its own meta (`Updated`) or `meta` (`Success`).
fn decrypt(payload: &[u8], meta: Option<&ImageMeta>) -> Option<(u64, Vec<u8>)> {
  match payload[0] {
    0 => open(&payload[1..], &meta?.decode().ok()?).map(|plain| (0, plain)),
    1 => {
      let sealed = Sealed {
        key: payload[9..41].try_into().ok()?,
        iv: payload[41..53].try_into().ok()?,
        tag: payload[53..69].try_into().ok()?,
      };
      let token = u64::from_le_bytes(payload[1..9].try_into().ok()?);
      open(&payload[69..], &sealed).map(|plain| (token, plain))
    }
    _ => None,
  }
}

fn temp_files(dir: &Path) -> Vec<String> {
  fs::read_dir(dir.join("images").join(TEMP_DIR_NAME))
    .unwrap()
    .map(|entry| entry.unwrap().file_name().into_string().unwrap())
    .filter(|name| name.ends_with(".tmp"))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn save_read_update_delete_round_trip() {
  let dir = tempfile::tempdir().unwrap();
  let store = Store::open(location(dir.path())).unwrap();
  let saved = store.save(png(1), Some("avatars".into()), rules()).await.unwrap();
  assert!(saved.id.starts_with("avatars:"));
  assert!(dir
    .path()
    .join("images/avatars")
    .join(format!("{}.pixstore-image", &saved.id[8..]))
    .exists());
  assert_eq!(store.record(&saved.id).unwrap().unwrap(), saved);

  let payload = store.wire_payload(saved.id.clone(), None).await;
  let (token, plain) = decrypt(&payload, None).unwrap();
  assert_eq!(token as i64, saved.token);
  assert_eq!(plain[0], 1, "png is the first format");
  assert_eq!(&plain[1..5], &PNG[..4]);
  let current = store.wire_payload(saved.id.clone(), Some(saved.token as f64)).await;
  assert_eq!(current[0], 0);
  assert!(decrypt(&current, Some(&saved.meta)).is_some());

  let updated = store.update(saved.id.clone(), png(2), rules()).await.unwrap();
  assert!(updated.token > saved.token);
  assert_ne!(updated.meta, saved.meta);

  assert!(store.exists(saved.id.clone()).await.unwrap());
  assert!(store.delete(saved.id.clone()).await.unwrap());
  assert!(!store.delete(saved.id.clone()).await.unwrap());
  assert!(!store.exists(saved.id.clone()).await.unwrap());
  assert_eq!(store.wire_payload(saved.id.clone(), None).await, [2]);
  assert!(temp_files(dir.path()).is_empty());
  store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_changes_nothing() {
  let dir = tempfile::tempdir().unwrap();
  let store = Store::open(location(dir.path())).unwrap();
  let text = bytes_image(b"just some text");
  assert_eq!(
    store.save(text, None, rules()).await.unwrap_err(),
    Error::invalid_image()
  );
  let gif = bytes_image(b"GIF89a....");
  assert_eq!(
    store.save(gif, None, rules()).await.unwrap_err(),
    Error::invalid_image()
  );
  let empty = bytes_image(b"");
  assert_eq!(
    store.save(empty, None, rules()).await.unwrap_err(),
    Error::invalid_image()
  );
  assert!(PlainImage::copy_of(PNG, 10)
    .err()
    .unwrap()
    .message
    .starts_with("Image is too large"));
  let missing = store
    .load_file(dir.path().join("nope.png"), &rules())
    .await
    .err()
    .unwrap();
  assert!(missing.message.starts_with("Image file not found"));
  let folder = store.load_file(dir.path().to_owned(), &rules()).await.err().unwrap();
  assert!(folder.message.starts_with("Not a file"));
  let text_file = dir.path().join("notes.txt");
  fs::write(&text_file, "not an image").unwrap();
  assert_eq!(
    store.load_file(text_file, &rules()).await.err().unwrap(),
    Error::invalid_image()
  );
  assert_eq!(
    store.update("nothere".into(), png(1), rules()).await.unwrap_err(),
    Error::not_found("nothere")
  );

  let conn = db::open(&database(dir.path()), Durability::Process, false).unwrap();
  let rows: i64 = conn
    .query_row("SELECT count(*) FROM image_records", [], |row| row.get(0))
    .unwrap();
  let intents: i64 = conn
    .query_row("SELECT count(*) FROM pixstore_native_intents", [], |row| row.get(0))
    .unwrap();
  assert_eq!((rows, intents), (0, 0));
  let images: Vec<_> = fs::read_dir(dir.path().join("images"))
    .unwrap()
    .map(|e| e.unwrap().file_name())
    .collect();
  assert_eq!(images, [TEMP_DIR_NAME]);
  assert!(temp_files(dir.path()).is_empty());
  store.close().await;
}

/// Concurrent updates of one id while readers read it: every payload
/// decrypts, and tokens come out distinct and increasing in commit order.
async fn hammer(writers: Vec<Arc<Store>>, readers: Vec<Arc<Store>>, id: String) {
  let mut tasks = Vec::new();
  for n in 0..32u32 {
    let store = Arc::clone(&writers[n as usize % writers.len()]);
    let id = id.clone();
    tasks.push(tokio::spawn(async move {
      store.update(id, png(n), rules()).await.unwrap().token
    }));
  }
  let mut reads = Vec::new();
  for n in 0..64usize {
    let store = Arc::clone(&readers[n % readers.len()]);
    let id = id.clone();
    reads.push(tokio::spawn(async move {
      let payload = store.wire_payload(id, None).await;
      assert!(
        decrypt(&payload, None).is_some(),
        "a read did not decrypt: state {}",
        payload[0]
      );
    }));
  }
  let mut tokens = Vec::new();
  for task in tasks {
    tokens.push(task.await.unwrap());
  }
  for read in reads {
    read.await.unwrap();
  }
  tokens.sort();
  tokens.dedup();
  assert_eq!(tokens.len(), 32, "tokens must be distinct");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_never_tear_an_image() {
  let dir = tempfile::tempdir().unwrap();
  let store = Store::open(location(dir.path())).unwrap();
  let id = store.save(png(0), None, rules()).await.unwrap().id;
  for _ in 0..5 {
    hammer(vec![Arc::clone(&store)], vec![Arc::clone(&store)], id.clone()).await;
  }
  store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_store_instances_on_one_store_never_tear_an_image() {
  let dir = tempfile::tempdir().unwrap();
  let first = Store::open(location(dir.path())).unwrap();
  let second = Store::open(location(dir.path())).unwrap();
  let id = first.save(png(0), None, rules()).await.unwrap().id;
  for _ in 0..5 {
    hammer(
      vec![Arc::clone(&first), Arc::clone(&second)],
      vec![Arc::clone(&second), Arc::clone(&first)],
      id.clone(),
    )
    .await;
  }
  first.close().await;
  second.close().await;
}

/// Writes an intent row and files as a crashed instance `dead` would leave them.
fn crashed_write(dir: &Path, id: &str, renamed: bool) -> ImageMeta {
  let mut plain = vec![1u8];
  plain.extend_from_slice(PNG);
  let sealed = seal_in_place(&mut plain).unwrap();
  let meta = ImageMeta::from(&sealed);
  let temp_name = format!("dead-{}.tmp", id);
  let target = if renamed {
    id::file_path(&dir.join("images"), id)
  } else {
    dir.join("images").join(TEMP_DIR_NAME).join(&temp_name)
  };
  fs::write(target, &plain).unwrap();
  let conn = db::open(&database(dir), Durability::Process, false).unwrap();
  conn
    .execute(
      "INSERT INTO pixstore_native_intents (id, owner, temp_name, meta) VALUES (?1, 'dead', ?2, ?3)",
      params![id, temp_name, serde_json::to_string(&meta).unwrap()],
    )
    .unwrap();
  meta
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_settles_what_a_crashed_instance_left() {
  let dir = tempfile::tempdir().unwrap();
  let store = Store::open(location(dir.path())).unwrap();
  let renamed = store.save(png(1), None, rules()).await.unwrap();
  let unrenamed = store.save(png(2), None, rules()).await.unwrap();
  let deleted = store.save(png(3), None, rules()).await.unwrap();
  let kept = store.save(png(4), None, rules()).await.unwrap();
  let moved = store.save(png(5), None, rules()).await.unwrap();
  store.close().await;
  drop(store);

  // Crash after the rename, before the commit: the file is the new write's.
  let new_meta = crashed_write(dir.path(), &renamed.id, true);
  // Crash before the rename: the temporary file is still there.
  crashed_write(dir.path(), &unrenamed.id, false);
  // Crash during a delete, after the file was removed: the delete is finished.
  fs::remove_file(id::file_path(&dir.path().join("images"), &deleted.id)).unwrap();
  let conn = db::open(&database(dir.path()), Durability::Process, false).unwrap();
  conn
    .execute(
      "INSERT INTO pixstore_native_intents (id, owner) VALUES (?1, 'dead')",
      [&deleted.id],
    )
    .unwrap();
  // Crash during a delete that had moved the file aside: rolled back, the image stays.
  fs::rename(
    id::file_path(&dir.path().join("images"), &moved.id),
    dir.path().join("images").join(TEMP_DIR_NAME).join("dead-moved.tmp"),
  )
  .unwrap();
  conn
    .execute(
      "INSERT INTO pixstore_native_intents (id, owner, temp_name) VALUES (?1, 'dead', 'dead-moved.tmp')",
      [&moved.id],
    )
    .unwrap();
  // Crash during a delete, before the file was removed: the image stays.
  conn
    .execute(
      "INSERT INTO pixstore_native_intents (id, owner) VALUES (?1, 'dead')",
      [&kept.id],
    )
    .unwrap();
  fs::write(
    dir.path().join("images").join(TEMP_DIR_NAME).join("dead-orphan.tmp"),
    b"x",
  )
  .unwrap();

  let store = Store::open(location(dir.path())).unwrap();
  let promoted = store.record(&renamed.id).unwrap().unwrap();
  assert_eq!(promoted.meta, new_meta);
  assert!(promoted.token > renamed.token);
  assert_eq!(store.record(&unrenamed.id).unwrap().unwrap(), unrenamed);
  assert!(store.record(&deleted.id).unwrap().is_none());
  assert!(!store.exists(deleted.id.clone()).await.unwrap());
  assert_eq!(store.record(&kept.id).unwrap().unwrap(), kept);
  assert_eq!(store.record(&moved.id).unwrap().unwrap(), moved);
  for record in [&renamed, &unrenamed, &kept, &moved] {
    assert!(decrypt(&store.wire_payload(record.id.clone(), None).await, None).is_some());
  }
  assert!(temp_files(dir.path()).is_empty());
  let intents: i64 = conn
    .query_row("SELECT count(*) FROM pixstore_native_intents", [], |row| row.get(0))
    .unwrap();
  assert_eq!(intents, 0);
  store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_settles_a_dead_instances_write_it_runs_into() {
  let dir = tempfile::tempdir().unwrap();
  let store = Store::open(location(dir.path())).unwrap();
  let saved = store.save(png(1), None, rules()).await.unwrap();
  // Another process crashed after renaming its update into place.
  let new_meta = crashed_write(dir.path(), &saved.id, true);
  let payload = store.wire_payload(saved.id.clone(), None).await;
  assert!(decrypt(&payload, None).is_some());
  assert_eq!(store.record(&saved.id).unwrap().unwrap().meta, new_meta);
  store.close().await;
}

#[test]
fn a_record_whose_meta_cannot_be_read_is_listed_with_its_id_and_why() {
  let keyring = crate::keys::Keyring::new(&[]).unwrap();
  let sealed = crate::crypto::seal_in_place(&mut [1u8, 2, 3]).unwrap();
  let good = serde_json::to_string(&ImageMeta::from(&sealed)).unwrap();
  assert_eq!(
    StoredRecord::listed(&keyring, "a".into(), 5, &good).map(|record| record.token),
    Ok(5)
  );
  for bad in ["not json", r#"{"key":"AAAA","iv":"AAAA","tag":"AAAA"}"#] {
    let listed = StoredRecord::listed(&keyring, "p:b".into(), 5, bad).unwrap_err();
    assert_eq!(listed.id, "p:b");
    assert!(!listed.reason.is_empty(), "{bad}: a reason");
  }
}
