//! Stateless proofs of access, valid for the current and the previous window
//! and compared in constant time. Two constructions, both 8 bytes in standard
//! base64 (the frontend sends a proof back as an opaque header):
//!
//! - [`Proofs::Salted`], pixstore's: `sha256(id ++ salt ++ window)` with 32
//!   random bytes per process, so a proof only validates in the process that
//!   made it (SPEC "Stateless proof").
//! - [`Proofs::Keyed`], with `proofKeys`: HMAC-SHA256 (RFC 2104) of the id and
//!   the window under secrets every process and host shares; made with the
//!   first key and accepted under any listed one, so keys rotate as `[new,
//!   old]` then `[new]` (SPEC "Several processes and hosts").

use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::hmac;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::crypto::random_bytes;

/// Bytes of the hash kept in a proof.
const PROOF_LENGTH: usize = 8;

/// Shortest accepted proof key, in characters.
pub const MIN_PROOF_KEY_LENGTH: usize = 32;

/// Prefix of every HMAC input, so these MACs can never be confused with
/// another use of the same secret; the id and window follow, separated by a
/// NUL byte (which no id contains).
const HMAC_CONTEXT: &[u8] = b"pixstore-native proof v1\0";

/// The per-process salt; never stored or exported.
fn salt() -> &'static [u8; 32] {
  static SALT: OnceLock<[u8; 32]> = OnceLock::new();
  SALT.get_or_init(|| random_bytes::<32>().expect("the OS random generator is available"))
}

/// How proofs are made and checked.
#[derive(Debug, Clone)]
pub enum Proofs {
  /// pixstore's construction with this process's salt.
  Salted,
  /// HMAC-SHA256 under shared keys; the first one makes proofs.
  Keyed(Vec<hmac::Key>),
}

impl Proofs {
  /// Keyed proofs for `keys` (validated by the configuration), or pixstore's
  /// salted ones when there are none.
  pub fn new(keys: &[Secret]) -> Proofs {
    if keys.is_empty() {
      return Proofs::Salted;
    }
    Proofs::Keyed(
      keys
        .iter()
        .map(|key| hmac::Key::new(hmac::HMAC_SHA256, key.expose().as_bytes()))
        .collect(),
    )
  }

  /// The proof handed out for `id` at `now_ms`.
  pub fn current(&self, id: &str, now_ms: u64, window_length: f64) -> String {
    let window = window_of(now_ms, window_length);
    match self {
      Proofs::Salted => salted(id, window),
      Proofs::Keyed(keys) => keyed(&keys[0], id, window),
    }
  }

  /// Whether `proof` is a proof for `id` of the current or the previous
  /// window (under any key), compared in constant time.
  pub fn verify(&self, id: &str, proof: &str, now_ms: u64, window_length: f64) -> bool {
    let window = window_of(now_ms, window_length);
    let windows = [window, window.map(|w| w - 1)];
    let matches = |expected: String| -> bool { expected.as_bytes().ct_eq(proof.as_bytes()).into() };
    match self {
      Proofs::Salted => windows.iter().fold(false, |found, w| found | matches(salted(id, *w))),
      Proofs::Keyed(keys) => keys.iter().fold(false, |found, key| {
        windows
          .iter()
          .fold(found, |found, w| found | matches(keyed(key, id, *w)))
      }),
    }
  }
}

/// The window of `now_ms`, or `None` when proofs never expire (`window_length == -1`).
fn window_of(now_ms: u64, window_length: f64) -> Option<i64> {
  (window_length != -1.0).then(|| (now_ms as f64 / window_length).floor() as i64)
}

fn salted(id: &str, window: Option<i64>) -> String {
  let mut hash = Sha256::new();
  hash.update(id.as_bytes());
  hash.update(salt());
  // pixstore treats a window of 0 (the first window after 1970) as "no window".
  if let Some(window) = window.filter(|w| *w != 0) {
    hash.update(window.to_string().as_bytes());
  }
  BASE64.encode(&hash.finalize()[..PROOF_LENGTH])
}

fn keyed(key: &hmac::Key, id: &str, window: Option<i64>) -> String {
  let mut context = hmac::Context::with_key(key);
  context.update(HMAC_CONTEXT);
  context.update(id.as_bytes());
  context.update(b"\0");
  match window {
    Some(window) => context.update(window.to_string().as_bytes()),
    None => context.update(b"never"),
  }
  BASE64.encode(&context.sign().as_ref()[..PROOF_LENGTH])
}

#[cfg(test)]
mod tests {
  use super::*;

  const A: &str = "first shared proof key, 32+ characters";
  const B: &str = "second shared proof key, 32+ characters";

  fn keyed_with(keys: &[&str]) -> Proofs {
    Proofs::new(&keys.iter().map(|key| Secret::new(*key)).collect::<Vec<_>>())
  }

  #[test]
  fn proofs_are_valid_for_two_windows_then_expire() {
    for proofs in [Proofs::Salted, keyed_with(&[A])] {
      let proof = proofs.current("abc", 1_000_000, 1000.0);
      assert_eq!(BASE64.decode(&proof).unwrap().len(), 8);
      assert!(proofs.verify("abc", &proof, 1_000_999, 1000.0));
      assert!(proofs.verify("abc", &proof, 1_001_500, 1000.0));
      assert!(!proofs.verify("abc", &proof, 1_002_000, 1000.0));
      assert!(!proofs.verify("abd", &proof, 1_000_000, 1000.0));
      assert!(!proofs.verify("abc", "", 1_000_000, 1000.0));
    }
  }

  #[test]
  fn never_expiring_proofs_ignore_time() {
    for proofs in [Proofs::Salted, keyed_with(&[A])] {
      let proof = proofs.current("abc", 5, -1.0);
      assert!(proofs.verify("abc", &proof, u64::MAX / 2, -1.0));
    }
  }

  #[test]
  fn matches_the_reference_construction() {
    let mut hash = Sha256::new();
    hash.update(b"dir:abc");
    hash.update(salt());
    hash.update(b"1234");
    let expected = BASE64.encode(&hash.finalize()[..8]);
    assert_eq!(Proofs::Salted.current("dir:abc", 1234 * 20000 + 5, 20000.0), expected);
  }

  #[test]
  fn keyed_proofs_are_hmac_sha256_of_the_id_and_window() {
    let key = hmac::Key::new(hmac::HMAC_SHA256, A.as_bytes());
    let tag = hmac::sign(&key, b"pixstore-native proof v1\0dir:abc\x001234");
    assert_eq!(
      keyed_with(&[A]).current("dir:abc", 1234 * 20000, 20000.0),
      BASE64.encode(&tag.as_ref()[..8])
    );
    // The same length and alphabet as pixstore's proofs.
    assert_eq!(
      keyed_with(&[A]).current("x", 1, -1.0).len(),
      Proofs::Salted.current("x", 1, -1.0).len()
    );
    // An id and a window never read as another id without one.
    assert_ne!(
      keyed_with(&[A]).current("a:1", 0, -1.0),
      keyed_with(&[A]).current("a", 1, 1.0)
    );
  }

  #[test]
  fn keys_rotate_new_then_old() {
    let now = 10_000_000;
    let old = keyed_with(&[A]).current("id", now, 20000.0);
    let rotating = keyed_with(&[B, A]);
    let new = rotating.current("id", now, 20000.0);
    assert_ne!(old, new, "the first key makes proofs");
    assert!(
      rotating.verify("id", &old, now, 20000.0),
      "[new, old] accepts old proofs"
    );
    assert!(rotating.verify("id", &new, now, 20000.0));
    assert!(
      !keyed_with(&[A]).verify("id", &new, now, 20000.0),
      "[old] rejects new proofs"
    );
    assert!(
      keyed_with(&[B]).verify("id", &new, now, 20000.0),
      "[new] accepts new proofs"
    );
    assert!(
      !keyed_with(&[B]).verify("id", &old, now, 20000.0),
      "[new] rejects old proofs"
    );
    assert!(!Proofs::Salted.verify("id", &new, now, 20000.0));
    assert!(!keyed_with(&[A]).verify("id", &Proofs::Salted.current("id", now, 20000.0), now, 20000.0));
  }
}
