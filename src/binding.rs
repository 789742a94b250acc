//! The napi surface: converts JS arguments, runs the service off the JS
//! thread for async calls, and turns core errors into JS errors tagged with
//! their kind (`PIXSTORE_ERROR`, `PIXSTORE_CONFIG`, `PIXSTORE_INTERNAL`); the
//! hand-written JS layer maps those to classes.

use std::sync::{Arc, LazyLock};

use napi::bindgen_prelude::{within_runtime_if_available, Buffer, Uint8Array};
use napi_derive::napi;
use serde_json::Value;

use crate::error::{Error, ErrorKind};
use crate::service::{ImageRecord, Pixstore};
use crate::store::ImageSource;

static PIXSTORE: LazyLock<Arc<Pixstore>> = LazyLock::new(Default::default);

/// The code the JS layer reads off an error message's `[CODE] ` prefix.
/// (napi-rs only carries its own `Status` as `error.code` out of exported
/// functions, so the kind travels in the message and the JS layer strips it.)
fn code_of(kind: ErrorKind) -> &'static str {
  match kind {
    ErrorKind::Pixstore => "PIXSTORE_ERROR",
    ErrorKind::Config => "PIXSTORE_CONFIG",
    ErrorKind::Internal => "PIXSTORE_INTERNAL",
  }
}

fn to_js(err: Error) -> napi::Error {
  napi::Error::from_reason(format!("[{}] {}", code_of(err.kind), err.message))
}

/// Decryption meta of an image (standard base64).
#[napi(object, js_name = "ImageDecryptionMeta")]
pub struct JsImageMeta {
  /// AES-256 key.
  pub key: String,
  /// GCM IV.
  pub iv: String,
  /// GCM tag.
  pub tag: String,
}

/// An image record, as `getImageRecord` and the write calls return it.
#[napi(object, js_name = "ImageRecord")]
pub struct JsImageRecord {
  /// The image id.
  pub id: String,
  /// Version token (`Date.now()` of the last write, strictly increasing).
  pub token: f64,
  /// Decryption meta.
  pub meta: JsImageMeta,
  /// Proof of access for the endpoint.
  pub stateless_proof: String,
}

impl From<ImageRecord> for JsImageRecord {
  fn from(record: ImageRecord) -> Self {
    JsImageRecord {
      id: record.id,
      token: record.token as f64,
      meta: JsImageMeta {
        key: record.meta.key,
        iv: record.meta.iv,
        tag: record.meta.tag,
      },
      stateless_proof: record.stateless_proof,
    }
  }
}

/// Applies a configuration (merged over the current one); see `PixstoreBackendConfig`.
#[napi]
pub fn init_pixstore_backend(config: Value) -> napi::Result<()> {
  let Value::Object(overrides) = config else {
    return Err(to_js(Error::config("the configuration must be an object")));
  };
  let cwd = std::env::current_dir().map_err(|err| to_js(err.into()))?;
  let runtime = within_runtime_if_available(tokio::runtime::Handle::current);
  PIXSTORE.init(&overrides, &runtime, &cwd).map_err(to_js)
}

/// Stops the endpoint and closes the store.
#[napi]
pub async fn close_pixstore_backend() {
  PIXSTORE.close().await
}

/// The record of an image, or null (synchronous).
#[napi]
pub fn get_image_record(id: String) -> napi::Result<Option<JsImageRecord>> {
  PIXSTORE
    .image_record(&id)
    .map(|record| record.map(Into::into))
    .map_err(to_js)
}

/// Encrypts and stores a new image.
#[napi]
pub async fn save_image(buffer: Uint8Array, dir: Option<String>) -> napi::Result<JsImageRecord> {
  PIXSTORE
    .save_image(ImageSource::Bytes(Box::new(buffer)), dir)
    .await
    .map(Into::into)
    .map_err(to_js)
}

/// Reads, encrypts and stores a new image from a file.
#[napi]
pub async fn save_image_from_file(file_path: String, dir: Option<String>) -> napi::Result<JsImageRecord> {
  PIXSTORE
    .save_image(ImageSource::File(file_path.into()), dir)
    .await
    .map(Into::into)
    .map_err(to_js)
}

/// Replaces an existing image.
#[napi]
pub async fn update_image(id: String, buffer: Uint8Array) -> napi::Result<JsImageRecord> {
  PIXSTORE
    .update_image(id, ImageSource::Bytes(Box::new(buffer)))
    .await
    .map(Into::into)
    .map_err(to_js)
}

/// Replaces an existing image with a file's content.
#[napi]
pub async fn update_image_from_file(id: String, file_path: String) -> napi::Result<JsImageRecord> {
  PIXSTORE
    .update_image(id, ImageSource::File(file_path.into()))
    .await
    .map(Into::into)
    .map_err(to_js)
}

/// Deletes an image; true if its file or record existed.
#[napi]
pub async fn delete_image(id: String) -> napi::Result<bool> {
  PIXSTORE.delete_image(id).await.map_err(to_js)
}

/// Whether an image's file or record exists.
#[napi]
pub async fn image_exists(id: String) -> napi::Result<bool> {
  PIXSTORE.image_exists(id).await.map_err(to_js)
}

/// The wire payload for a custom endpoint.
#[napi]
pub async fn custom_endpoint_helper(
  image_id: Option<String>,
  client_token: Option<f64>,
  stateless_proof: Option<String>,
) -> napi::Result<Buffer> {
  PIXSTORE
    .custom_endpoint_payload(image_id, client_token, stateless_proof)
    .await
    .map(Buffer::from)
    .map_err(to_js)
}
