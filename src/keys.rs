//! Keys at rest (`masterKeys`): the per-image AES key in a record's meta is
//! stored wrapped under a master key, so a copy of the database and the
//! images (a backup, a stolen disk, a leaked snapshot) decrypts nothing
//! without the master key. The IV and the tag stay as they are (the tag
//! names remote objects); what JS and the wire payload see is unchanged.
//!
//! A wrapped key is `pxn1:<key id>:<base64(nonce ++ AES-256-GCM(key) ++ tag)>`:
//! AES-256-GCM under the master key with a fresh 96-bit nonce, the image id
//! as associated data (a wrapped key copied to another record does not
//! open), and the key id the first 4 bytes of SHA-256 of the master key in
//! hex, which says which key to unwrap with (SPEC "Keys at rest").

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use sha2::{Digest, Sha256};

use crate::config::Secret;
use crate::crypto::{random_bytes, ImageMeta, IV_LENGTH, KEY_LENGTH, TAG_LENGTH};
use crate::error::{Error, Result};

/// Marks a wrapped key, with the format's version.
const PREFIX: &str = "pxn1:";
/// Associated data before the id.
const AAD_CONTEXT: &[u8] = b"pixstore-native key v1\0";

/// The master keys of a store: the first wraps, any unwraps.
#[derive(Clone, Default)]
pub struct Keyring {
  keys: Vec<(String, std::sync::Arc<LessSafeKey>)>,
}

impl PartialEq for Keyring {
  fn eq(&self, other: &Self) -> bool {
    self.ids().eq(other.ids())
  }
}

impl Eq for Keyring {}

impl std::fmt::Debug for Keyring {
  fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    f.debug_list().entries(self.ids()).finish()
  }
}

/// The base64 master key's 32 bytes, or why not.
pub fn decode_master_key(text: &str) -> std::result::Result<[u8; KEY_LENGTH], String> {
  let bytes = BASE64.decode(text.trim()).map_err(|_| "is not base64".to_string())?;
  bytes
    .try_into()
    .map_err(|bytes: Vec<u8>| format!("is {} bytes, not 32", bytes.len()))
}

fn key_id(key: &[u8]) -> String {
  Sha256::digest(key)[..4]
    .iter()
    .map(|byte| format!("{byte:02x}"))
    .collect()
}

impl Keyring {
  /// The keyring of `masterKeys` (validated by the configuration: base64 of 32 bytes each).
  pub fn new(master_keys: &[Secret]) -> Result<Keyring> {
    let keys = master_keys
      .iter()
      .map(|secret| {
        let bytes = decode_master_key(secret.expose()).map_err(|why| Error::config(format!("a master key {why}")))?;
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &bytes).expect("a 32-byte key"));
        Ok((key_id(&bytes), std::sync::Arc::new(key)))
      })
      .collect::<Result<_>>()?;
    Ok(Keyring { keys })
  }

  /// Whether there are no master keys (keys are stored as pixstore stores them).
  pub fn is_empty(&self) -> bool {
    self.keys.is_empty()
  }

  /// The key ids, first (wrapping) one first.
  pub fn ids(&self) -> impl Iterator<Item = &str> {
    self.keys.iter().map(|(id, _)| id.as_str())
  }

  /// The meta as stored for `id`: the key wrapped under the first master key
  /// (unchanged without master keys).
  pub fn wrap(&self, id: &str, meta: &ImageMeta) -> Result<ImageMeta> {
    let Some((key_id, master)) = self.keys.first() else {
      return Ok(meta.clone());
    };
    let plain = BASE64
      .decode(&meta.key)
      .ok()
      .filter(|key| key.len() == KEY_LENGTH)
      .ok_or_else(|| Error::internal(format!("the key of {id} is not a plain AES-256 key")))?;
    let nonce = random_bytes::<IV_LENGTH>()?;
    let mut sealed = plain;
    master
      .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), aad(id), &mut sealed)
      .map_err(|_| Error::internal("wrapping a key failed"))?;
    let mut wrapped = nonce.to_vec();
    wrapped.extend_from_slice(&sealed);
    Ok(ImageMeta {
      key: format!("{PREFIX}{key_id}:{}", BASE64.encode(wrapped)),
      ..meta.clone()
    })
  }

  /// The meta with the plain key, from its stored form: a wrapped key is
  /// unwrapped with the master key it names; a plain one is returned as is.
  /// A wrapped key whose master key is not listed, or that does not open, is
  /// an error that says so (never a wrong key).
  pub fn unwrap(&self, id: &str, stored: &ImageMeta) -> Result<ImageMeta> {
    let Some(rest) = stored.key.strip_prefix(PREFIX) else {
      return Ok(stored.clone());
    };
    let (wanted, wrapped) = rest
      .split_once(':')
      .ok_or_else(|| Error::internal(format!("corrupt wrapped key of {id}")))?;
    let Some((_, master)) = self.keys.iter().find(|(key_id, _)| key_id == wanted) else {
      return Err(Error::internal(format!(
        "the key of {id} is wrapped under master key {wanted}, which is not in masterKeys"
      )));
    };
    let mut bytes = BASE64
      .decode(wrapped)
      .ok()
      .filter(|bytes| bytes.len() == IV_LENGTH + KEY_LENGTH + TAG_LENGTH)
      .ok_or_else(|| Error::internal(format!("corrupt wrapped key of {id}")))?;
    let nonce: [u8; IV_LENGTH] = bytes[..IV_LENGTH].try_into().expect("12 bytes");
    let plain = master
      .open_in_place(Nonce::assume_unique_for_key(nonce), aad(id), &mut bytes[IV_LENGTH..])
      .map_err(|_| {
        Error::internal(format!(
          "the wrapped key of {id} does not open under master key {wanted}"
        ))
      })?;
    Ok(ImageMeta {
      key: BASE64.encode(plain),
      ..stored.clone()
    })
  }

  /// Whether `stored` is wrapped under the first master key (or, without
  /// master keys, plain): nothing for `rekey` to do.
  pub fn is_current(&self, stored: &ImageMeta) -> bool {
    match self.keys.first() {
      None => !stored.key.starts_with(PREFIX),
      Some((key_id, _)) => stored
        .key
        .strip_prefix(PREFIX)
        .is_some_and(|rest| rest.starts_with(&format!("{key_id}:"))),
    }
  }
}

impl Keyring {
  /// What the stored meta JSON `stored_json` of `id` becomes after a rekey:
  /// wrapped under the first master key, or plain with `unwrap`; `None` when
  /// it is so already.
  pub fn rekeyed(&self, id: &str, stored_json: &str, unwrap: bool) -> Result<Option<String>> {
    let stored: ImageMeta = serde_json::from_str(stored_json)?;
    let plain = self.unwrap(id, &stored)?;
    let wanted = match unwrap {
      true if plain == stored => return Ok(None),
      true => plain,
      false if self.is_current(&stored) => return Ok(None),
      false => self.wrap(id, &plain)?,
    };
    Ok(Some(serde_json::to_string(&wanted)?))
  }
}

fn aad(id: &str) -> Aad<Vec<u8>> {
  let mut data = AAD_CONTEXT.to_vec();
  data.extend_from_slice(id.as_bytes());
  Aad::from(data)
}

#[cfg(test)]
mod tests {
  use super::*;
  use crate::crypto::seal_in_place;

  fn ring_of(keys: &[[u8; 32]]) -> Keyring {
    Keyring::new(
      &keys
        .iter()
        .map(|key| Secret::new(BASE64.encode(key)))
        .collect::<Vec<_>>(),
    )
    .unwrap()
  }

  fn meta() -> ImageMeta {
    ImageMeta::from(&seal_in_place(&mut [1u8, 2, 3]).unwrap())
  }

  #[test]
  fn keys_wrap_and_unwrap_under_any_listed_master_key() {
    let (old, new) = (ring_of(&[[1; 32]]), ring_of(&[[2; 32], [1; 32]]));
    let plain = meta();
    let wrapped = old.wrap("dir:abc", &plain).unwrap();
    assert!(wrapped.key.starts_with("pxn1:"));
    assert!(!wrapped.key.contains(&plain.key));
    assert_eq!((&wrapped.iv, &wrapped.tag), (&plain.iv, &plain.tag));
    assert_eq!(old.unwrap("dir:abc", &wrapped).unwrap(), plain);
    assert_eq!(
      new.unwrap("dir:abc", &wrapped).unwrap(),
      plain,
      "an old key still unwraps"
    );
    assert!(!new.is_current(&wrapped) && old.is_current(&wrapped));
    assert!(new.is_current(&new.wrap("dir:abc", &plain).unwrap()));
    // Plain keys pass through; without master keys, a wrapped key is a clear error.
    assert_eq!(new.unwrap("x", &plain).unwrap(), plain);
    let missing = Keyring::default().unwrap("dir:abc", &wrapped).unwrap_err();
    assert!(
      missing.message.contains("which is not in masterKeys"),
      "{}",
      missing.message
    );
    let wrong = ring_of(&[[3; 32]]).unwrap("dir:abc", &wrapped).unwrap_err();
    assert!(wrong.message.contains("not in masterKeys"));
    // Bound to its id: another record's wrapped key does not open here.
    assert!(old
      .unwrap("dir:other", &wrapped)
      .unwrap_err()
      .message
      .contains("does not open"));
    // Each wrapping uses a fresh nonce.
    assert_ne!(old.wrap("a", &plain).unwrap().key, old.wrap("a", &plain).unwrap().key);
  }

  #[test]
  fn master_keys_must_be_base64_of_32_bytes() {
    assert_eq!(decode_master_key(&BASE64.encode([7u8; 32])), Ok([7u8; 32]));
    assert_eq!(decode_master_key("not base64!"), Err("is not base64".into()));
    assert_eq!(
      decode_master_key(&BASE64.encode([7u8; 16])),
      Err("is 16 bytes, not 32".into())
    );
  }
}
