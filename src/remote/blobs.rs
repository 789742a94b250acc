//! Encrypted image bytes as objects: in an S3-compatible bucket, or in a
//! folder when only the records move to PostgreSQL. The ciphertext is the
//! same as in a local file (format byte + image, encrypted, without the tag).
//!
//! Objects are never overwritten: each write gets a new key,
//! `<prefix><id with ':' as '='>/<GCM tag in hex>`, so the record's meta names
//! its object (the tag is in it) and no reader can get the bytes of one write
//! with the key of another.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use crate::config::ObjectStoreConfig;
use crate::crypto::TAG_LENGTH;
use crate::error::{Error, Result};

/// How long one object request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Where a remote store keeps its objects.
#[derive(Clone)]
pub struct Blobs {
  store: Arc<dyn ObjectStore>,
  prefix: String,
  /// Shown in errors: `s3://bucket/prefix` or the folder.
  name: String,
  /// Added to a failed probe's error: where credentials were looked for.
  hint: &'static str,
}

/// An object found by [`Blobs::list`].
#[derive(Debug, Clone)]
pub struct ListedObject {
  /// The image id it belongs to.
  pub id: String,
  /// Its GCM tag (base64, as in the record's meta).
  pub tag: String,
  /// Its key.
  pub key: String,
  /// When it was written.
  pub last_modified: SystemTime,
  /// Its size in bytes.
  pub size: u64,
}

fn object_error(name: &str, err: object_store::Error) -> Error {
  Error::internal(format!("object storage error ({name}): {err}"))
}

impl Blobs {
  /// A bucket of S3-compatible storage. Options not given fall back to the
  /// standard `AWS_*` environment variables; a custom endpoint is requested path-style.
  pub fn s3(config: &ObjectStoreConfig) -> Result<Blobs> {
    crate::remote::install_tls_provider();
    let mut builder = AmazonS3Builder::from_env()
      .with_bucket_name(&config.bucket)
      .with_virtual_hosted_style_request(false)
      .with_retry(object_store::RetryConfig {
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
        ..Default::default()
      })
      .with_client_options(
        object_store::ClientOptions::new()
          .with_timeout(REQUEST_TIMEOUT)
          .with_connect_timeout(Duration::from_secs(10)),
      );
    let region = config
      .region
      .clone()
      .or_else(|| std::env::var("AWS_REGION").ok())
      .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
      .unwrap_or_else(|| "us-east-1".into());
    builder = builder.with_region(region);
    if let Some(endpoint) = &config.endpoint {
      builder = builder.with_endpoint(endpoint);
    }
    if let Some(key) = &config.access_key_id {
      builder = builder.with_access_key_id(key.expose());
    }
    if let Some(secret) = &config.secret_access_key {
      builder = builder.with_secret_access_key(secret.expose());
    }
    if let Some(token) = &config.session_token {
      builder = builder.with_token(token.expose());
    }
    if config.allow_http {
      builder = builder.with_allow_http(true);
    }
    let name = format!("s3://{}/{}", config.bucket, config.prefix);
    let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
    // Refused by the HTTP client with only "builder error": say what to set.
    let endpoint = env("AWS_ENDPOINT_URL_S3")
      .or_else(|| config.endpoint.clone())
      .or_else(|| env("AWS_ENDPOINT_URL"))
      .or_else(|| env("AWS_ENDPOINT"));
    let http_allowed =
      config.allow_http || env("AWS_ALLOW_HTTP").is_some_and(|value| value.eq_ignore_ascii_case("true"));
    if let Some(endpoint) = endpoint.filter(|endpoint| endpoint.starts_with("http://") && !http_allowed) {
      return Err(Error::config(format!(
        "Cannot use the object store {name}: its endpoint {endpoint} is plain HTTP; set objectStore.allowHttp: true (or AWS_ALLOW_HTTP=true) to allow it"
      )));
    }
    let hint = match config.access_key_id.is_some() || env("AWS_ACCESS_KEY_ID").is_some() {
      true => "",
      false => " (no objectStore.accessKeyId and no AWS_ACCESS_KEY_ID: credentials were looked for in the AWS web identity, container and instance metadata sources)",
    };
    let store = builder
      .build()
      .map_err(|err| Error::config(format!("Cannot use the object store {name}: {err}")))?;
    Ok(Blobs {
      store: Arc::new(store),
      prefix: config.prefix.clone(),
      name,
      hint,
    })
  }

  /// A folder of the local file system (created if missing).
  pub fn folder(root: &Path) -> Result<Blobs> {
    std::fs::create_dir_all(root)
      .map_err(|err| Error::config(format!("Cannot use the folder {}: {err}", root.display())))?;
    let store = LocalFileSystem::new_with_prefix(root)
      .map_err(|err| Error::config(format!("Cannot use the folder {}: {err}", root.display())))?;
    Ok(Blobs {
      store: Arc::new(store),
      prefix: String::new(),
      name: root.display().to_string(),
      hint: "",
    })
  }

  /// Where the objects are, for messages.
  pub fn name(&self) -> &str {
    &self.name
  }

  /// The key of the object of `id` whose GCM tag is `tag` (base64).
  pub fn key(&self, id: &str, tag: &str) -> Result<String> {
    use base64::Engine;
    let tag = base64::engine::general_purpose::STANDARD
      .decode(tag)
      .ok()
      .filter(|tag| tag.len() == TAG_LENGTH)
      .ok_or_else(|| Error::internal(format!("corrupt image meta of {id}: bad tag")))?;
    let hex: String = tag.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!("{}{}/{hex}", self.prefix, id.replace(':', "=")))
  }

  /// The id and tag (base64) an object key names, if it is one of ours.
  pub fn parse(&self, key: &str) -> Option<(String, String)> {
    use base64::Engine;
    let (id, hex) = key.strip_prefix(&self.prefix)?.rsplit_once('/')?;
    if hex.len() != TAG_LENGTH * 2 || id.contains('/') {
      return None;
    }
    let tag: Vec<u8> = (0..TAG_LENGTH)
      .map(|at| u8::from_str_radix(hex.get(at * 2..at * 2 + 2)?, 16).ok())
      .collect::<Option<_>>()?;
    let id = id.replace('=', ":");
    crate::id::is_valid(&id).then(|| (id, base64::engine::general_purpose::STANDARD.encode(tag)))
  }

  /// Uploads a new object.
  pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
    self
      .store
      .put(&ObjectPath::from(key), PutPayload::from(bytes))
      .await
      .map_err(|err| object_error(&self.name, err))?;
    Ok(())
  }

  /// An object's bytes, or `None` if it does not exist.
  pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
    match self.store.get(&ObjectPath::from(key)).await {
      Ok(result) => Ok(Some(result.bytes().await.map_err(|err| object_error(&self.name, err))?)),
      Err(object_store::Error::NotFound { .. }) => Ok(None),
      Err(err) => Err(object_error(&self.name, err)),
    }
  }

  /// An object's size and first byte, reading only that byte; `None` if it does not exist.
  pub async fn peek(&self, key: &str) -> Result<Option<(u64, u8)>> {
    let options = object_store::GetOptions {
      range: Some(object_store::GetRange::Bounded(0..1)),
      ..Default::default()
    };
    match self.store.get_opts(&ObjectPath::from(key), options).await {
      Ok(result) => {
        let size = result.meta.size;
        let bytes = result.bytes().await.map_err(|err| object_error(&self.name, err))?;
        Ok(Some((size, bytes.first().copied().unwrap_or(0))))
      }
      Err(object_store::Error::NotFound { .. }) => Ok(None),
      Err(err) => Err(object_error(&self.name, err)),
    }
  }

  /// Whether an object exists.
  pub async fn exists(&self, key: &str) -> Result<bool> {
    match self.store.head(&ObjectPath::from(key)).await {
      Ok(_) => Ok(true),
      Err(object_store::Error::NotFound { .. }) => Ok(false),
      Err(err) => Err(object_error(&self.name, err)),
    }
  }

  /// Removes an object; one that is already gone is fine.
  pub async fn delete(&self, key: &str) -> Result<()> {
    match self.store.delete(&ObjectPath::from(key)).await {
      Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
      Err(err) => Err(object_error(&self.name, err)),
    }
  }

  /// Every object under the prefix that has the shape of ours, page by page
  /// through `visit` (the listing is streamed, never held whole).
  pub async fn list(&self, mut visit: impl FnMut(ListedObject) -> Result<()>) -> Result<()> {
    let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.trim_end_matches('/')));
    let mut listing = self.store.list(prefix.as_ref());
    while let Some(object) = listing.next().await {
      let object = object.map_err(|err| object_error(&self.name, err))?;
      let key = object.location.to_string();
      if let Some((id, tag)) = self.parse(&key) {
        visit(ListedObject {
          id,
          tag,
          key,
          last_modified: object.last_modified.into(),
          size: object.size,
        })?;
      }
    }
    Ok(())
  }

  /// Checks that the bucket exists and the credentials may write, read and
  /// delete, with a small object of its own; a clear error otherwise.
  pub async fn probe(&self) -> Result<()> {
    let key = format!(
      "{}.pixstore-native-probe-{}",
      self.prefix,
      crate::id::to_base36(crate::store::now_ms())
    );
    let checked = async {
      self.put(&key, Bytes::from_static(b"probe")).await?;
      let read = self.get(&key).await?;
      self.delete(&key).await?;
      match read.as_deref() {
        Some(b"probe") => Ok(()),
        _ => Err(Error::internal("an object written could not be read back")),
      }
    };
    match tokio::time::timeout(Duration::from_secs(60), checked).await {
      Ok(result) => result,
      Err(_) => Err(Error::internal("no answer within 60 s")),
    }
    .map_err(|err| Error::config(format!("Cannot use the object store {}: {err}{}", self.name, self.hint)))
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn keys_name_the_id_and_tag_and_parse_back() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::folder(dir.path()).unwrap();
    let tag = "AAECAwQFBgcICQoLDA0ODw==";
    let key = blobs.key("dir:abc", tag).unwrap();
    assert_eq!(key, "dir=abc/000102030405060708090a0b0c0d0e0f");
    assert_eq!(blobs.parse(&key), Some(("dir:abc".to_string(), tag.to_string())));
    assert_eq!(blobs.parse("abc/000102"), None);
    assert_eq!(blobs.parse("a/b/000102030405060708090a0b0c0d0e0f"), None);
    assert!(blobs.key("abc", "short").is_err());
  }

  #[tokio::test]
  async fn a_folder_stores_reads_lists_and_deletes_objects() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = Blobs::folder(dir.path()).unwrap();
    let key = blobs.key("abc", "AAECAwQFBgcICQoLDA0ODw==").unwrap();
    blobs.put(&key, Bytes::from_static(b"ciphertext")).await.unwrap();
    assert_eq!(blobs.get(&key).await.unwrap().as_deref(), Some(&b"ciphertext"[..]));
    let mut listed = Vec::new();
    blobs
      .list(|object| {
        listed.push((object.id, object.size));
        Ok(())
      })
      .await
      .unwrap();
    assert_eq!(listed, [("abc".to_string(), 10)]);
    blobs.delete(&key).await.unwrap();
    blobs.delete(&key).await.unwrap();
    assert_eq!(blobs.get(&key).await.unwrap(), None);
    blobs.probe().await.unwrap();
  }
}
