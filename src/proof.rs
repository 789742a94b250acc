//! Stateless proofs of access: `base64(sha256(id ++ salt ++ window)[0..8])`
//! with a per-process random salt, valid for the current and previous window,
//! compared in constant time.

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::crypto::random_bytes;

/// Bytes of the hash kept in a proof.
const PROOF_LENGTH: usize = 8;

/// The per-process salt; never stored or exported.
fn salt() -> &'static [u8; 32] {
  static SALT: OnceLock<[u8; 32]> = OnceLock::new();
  SALT.get_or_init(|| random_bytes::<32>().expect("the OS random generator is available"))
}

/// The window of `now_ms`, or `None` when proofs never expire (`window_length == -1`).
fn window_of(now_ms: u64, window_length: f64) -> Option<i64> {
  (window_length != -1.0).then(|| (now_ms as f64 / window_length).floor() as i64)
}

fn proof_for(id: &str, window: Option<i64>) -> String {
  let mut hash = Sha256::new();
  hash.update(id.as_bytes());
  hash.update(salt());
  // pixstore treats a window of 0 (the first window after 1970) as "no window".
  if let Some(window) = window.filter(|w| *w != 0) {
    hash.update(window.to_string().as_bytes());
  }
  BASE64.encode(&hash.finalize()[..PROOF_LENGTH])
}

/// The proof handed out for `id` at `now_ms`.
pub fn current_proof(id: &str, now_ms: u64, window_length: f64) -> String {
  proof_for(id, window_of(now_ms, window_length))
}

/// Whether `proof` is the current or the previous window's proof for `id`.
pub fn verify(id: &str, proof: &str, now_ms: u64, window_length: f64) -> bool {
  let window = window_of(now_ms, window_length);
  let current = proof_for(id, window);
  let previous = proof_for(id, window.map(|w| w - 1));
  let matches_current: bool = current.as_bytes().ct_eq(proof.as_bytes()).into();
  let matches_previous: bool = previous.as_bytes().ct_eq(proof.as_bytes()).into();
  matches_current | matches_previous
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn proofs_are_valid_for_two_windows_then_expire() {
    let proof = current_proof("abc", 1_000_000, 1000.0);
    assert_eq!(BASE64.decode(&proof).unwrap().len(), 8);
    assert!(verify("abc", &proof, 1_000_999, 1000.0));
    assert!(verify("abc", &proof, 1_001_500, 1000.0));
    assert!(!verify("abc", &proof, 1_002_000, 1000.0));
    assert!(!verify("abd", &proof, 1_000_000, 1000.0));
    assert!(!verify("abc", "", 1_000_000, 1000.0));
  }

  #[test]
  fn never_expiring_proofs_ignore_time() {
    let proof = current_proof("abc", 5, -1.0);
    assert!(verify("abc", &proof, u64::MAX / 2, -1.0));
  }

  #[test]
  fn matches_the_reference_construction() {
    let mut hash = Sha256::new();
    hash.update(b"dir:abc");
    hash.update(salt());
    hash.update(b"1234");
    let expected = BASE64.encode(&hash.finalize()[..8]);
    assert_eq!(current_proof("dir:abc", 1234 * 20000 + 5, 20000.0), expected);
  }
}
