//! AES-256-GCM with `ring`: sealing a buffer in place with a fresh key and IV
//! from the OS CSPRNG, checking that a ciphertext belongs to a key/IV/tag, and
//! the base64 image meta stored in records.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// AES-256 key length.
pub const KEY_LENGTH: usize = 32;
/// GCM IV length.
pub const IV_LENGTH: usize = 12;
/// GCM tag length.
pub const TAG_LENGTH: usize = 16;

/// `N` bytes from the OS CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N]> {
  let mut bytes = [0u8; N];
  SystemRandom::new()
    .fill(&mut bytes)
    .map_err(|_| Error::internal("the OS random generator failed"))?;
  Ok(bytes)
}

/// The raw key, IV and tag of one encrypted image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
  /// AES-256 key.
  pub key: [u8; KEY_LENGTH],
  /// GCM IV.
  pub iv: [u8; IV_LENGTH],
  /// GCM authentication tag.
  pub tag: [u8; TAG_LENGTH],
}

/// The decryption meta of a record, as pixstore stores it: standard base64 with padding.
/// Field order matters: it is serialized as pixstore's `JSON.stringify(meta)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageMeta {
  /// Base64 key.
  pub key: String,
  /// Base64 IV.
  pub iv: String,
  /// Base64 tag.
  pub tag: String,
}

impl From<&Sealed> for ImageMeta {
  fn from(sealed: &Sealed) -> Self {
    ImageMeta {
      key: BASE64.encode(sealed.key),
      iv: BASE64.encode(sealed.iv),
      tag: BASE64.encode(sealed.tag),
    }
  }
}

fn decode_exact<const N: usize>(text: &str, what: &str) -> Result<[u8; N]> {
  let bytes = BASE64
    .decode(text)
    .map_err(|_| Error::internal(format!("corrupt image meta: bad {what}")))?;
  bytes
    .try_into()
    .map_err(|_| Error::internal(format!("corrupt image meta: {what} has the wrong length")))
}

impl ImageMeta {
  /// The raw key, IV and tag, or an internal error for a corrupt record.
  pub fn decode(&self) -> Result<Sealed> {
    Ok(Sealed {
      key: decode_exact(&self.key, "key")?,
      iv: decode_exact(&self.iv, "iv")?,
      tag: decode_exact(&self.tag, "tag")?,
    })
  }
}

fn cipher(key: &[u8; KEY_LENGTH]) -> LessSafeKey {
  LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key is valid for AES-256"))
}

/// Encrypts `buffer` in place under a fresh random key and IV.
pub fn seal_in_place(buffer: &mut [u8]) -> Result<Sealed> {
  let key = random_bytes::<KEY_LENGTH>()?;
  let iv = random_bytes::<IV_LENGTH>()?;
  let tag = cipher(&key)
    .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::empty(), buffer)
    .map_err(|_| Error::internal("encryption failed"))?;
  Ok(Sealed {
    key,
    iv,
    tag: tag.as_ref().try_into().expect("GCM tags are 16 bytes"),
  })
}

/// Decrypts `ciphertext` (without its tag); `None` if it does not authenticate.
pub fn open(ciphertext: &[u8], sealed: &Sealed) -> Option<Vec<u8>> {
  let mut buffer = Vec::with_capacity(ciphertext.len() + TAG_LENGTH);
  buffer.extend_from_slice(ciphertext);
  buffer.extend_from_slice(&sealed.tag);
  let length = cipher(&sealed.key)
    .open_in_place(Nonce::assume_unique_for_key(sealed.iv), Aad::empty(), &mut buffer)
    .ok()?
    .len();
  buffer.truncate(length);
  Some(buffer)
}

/// The first plaintext byte of an image (its format byte) from the first
/// ciphertext byte, without decrypting the rest: AES-GCM encrypts the first
/// block with the keystream `AES_K(IV ++ 00000002)` (NIST SP 800-38D, a 96-bit
/// IV), one AES block computed here through ring's QUIC header protection
/// (which is exactly one AES block encryption). Nothing is authenticated:
/// for statistics, not for serving.
pub fn peek_first_byte(first_ciphertext_byte: u8, meta: &ImageMeta) -> Result<u8> {
  use ring::aead::quic::{HeaderProtectionKey, AES_256};
  let sealed = meta.decode()?;
  let mut counter_block = [0u8; 16];
  counter_block[..IV_LENGTH].copy_from_slice(&sealed.iv);
  counter_block[15] = 2;
  let mask = HeaderProtectionKey::new(&AES_256, &sealed.key)
    .and_then(|key| key.new_mask(&counter_block))
    .map_err(|_| Error::internal("AES failed"))?;
  Ok(first_ciphertext_byte ^ mask[0])
}

/// Whether `ciphertext` was produced under `meta` (its GCM tag verifies).
pub fn belongs_to(ciphertext: &[u8], meta: &ImageMeta) -> bool {
  meta
    .decode()
    .ok()
    .and_then(|sealed| open(ciphertext, &sealed))
    .is_some()
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn seal_then_open_round_trips_and_keys_differ() {
    let plain = b"\x01hello image".to_vec();
    let mut first = plain.clone();
    let sealed = seal_in_place(&mut first).unwrap();
    assert_ne!(first, plain);
    assert_eq!(open(&first, &sealed).unwrap(), plain);
    let mut second = plain.clone();
    let other = seal_in_place(&mut second).unwrap();
    assert_ne!(sealed.key, other.key);
    assert_ne!(sealed.iv, other.iv);
    assert!(open(&first, &other).is_none());
  }

  #[test]
  fn the_first_byte_is_read_without_decrypting_the_rest() {
    for first in [1u8, 4, 200] {
      let mut buffer = vec![first, 9, 9, 9];
      let meta = ImageMeta::from(&seal_in_place(&mut buffer).unwrap());
      assert_eq!(peek_first_byte(buffer[0], &meta).unwrap(), first);
    }
  }

  #[test]
  fn meta_round_trips_through_base64_with_padding() {
    let mut buffer = vec![7u8; 10];
    let sealed = seal_in_place(&mut buffer).unwrap();
    let meta = ImageMeta::from(&sealed);
    assert_eq!(meta.iv.len(), 16);
    assert!(meta.tag.ends_with("=="));
    assert_eq!(meta.decode().unwrap(), sealed);
    assert!(belongs_to(&buffer, &meta));
    assert_eq!(
      serde_json::to_string(&meta).unwrap(),
      format!(r#"{{"key":"{}","iv":"{}","tag":"{}"}}"#, meta.key, meta.iv, meta.tag)
    );
  }
}
