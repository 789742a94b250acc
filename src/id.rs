//! Image ids: generation (`<base36 ms><8 random base36 chars>`, optionally
//! `<dir>:`-prefixed), validation, and the only mapping from ids to file
//! paths. An id that could not have been generated is refused here, so no id
//! can name a path outside the image root.

use std::path::{Path, PathBuf};

use crate::crypto::random_bytes;
use crate::error::{Error, Result};

/// Extension of every image file, as in pixstore.
pub const IMAGE_EXTENSION: &str = ".pixstore-image";

/// Longest prefix, in bytes: it names a folder, and file systems allow names
/// of 255 bytes; pixstore writes any prefix up to that (and fails beyond it).
pub const MAX_PREFIX_LENGTH: usize = 255;

/// Longest key, in bytes: `<key>.pixstore-image` is a file name of at most 255 bytes.
pub const MAX_KEY_LENGTH: usize = 255 - IMAGE_EXTENSION.len();

/// Longest accepted id, in bytes: every id pixstore can store is valid.
pub const MAX_ID_LENGTH: usize = MAX_PREFIX_LENGTH + 1 + MAX_KEY_LENGTH;

const BASE36: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `n` in base 36, like JavaScript's `n.toString(36)`.
pub fn to_base36(mut n: u64) -> String {
  let mut digits = Vec::new();
  loop {
    digits.push(BASE36[(n % 36) as usize]);
    n /= 36;
    if n == 0 {
      break;
    }
  }
  digits.reverse();
  String::from_utf8(digits).expect("base36 digits are ASCII")
}

/// `count` random base-36 characters from the OS CSPRNG.
fn random_base36(count: usize) -> Result<String> {
  let mut out = String::with_capacity(count);
  while out.len() < count {
    for byte in random_bytes::<16>()? {
      // 252 = 7 * 36: rejecting larger bytes keeps every digit equally likely.
      if byte < 252 && out.len() < count {
        out.push(BASE36[(byte % 36) as usize] as char);
      }
    }
  }
  Ok(out)
}

/// The `dir` argument as pixstore cleans it: trimmed, lower-cased, only `[a-z0-9_-]` kept.
pub fn clean_dir(dir: &str) -> String {
  dir
    .trim()
    .to_lowercase()
    .chars()
    .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
    .collect()
}

/// The id prefix for the `dir` argument of a save: `None` without a dir (an
/// empty `dir` counts as none, as in pixstore where only a truthy `dir` adds a
/// prefix), else the cleaned dir. Refuses a dir that would make ids too long.
pub fn prefix_for(dir: Option<&str>) -> Result<Option<String>> {
  let Some(dir) = dir.filter(|dir| !dir.is_empty()) else {
    return Ok(None);
  };
  let prefix = clean_dir(dir);
  if prefix.len() > MAX_PREFIX_LENGTH {
    return Err(Error::pixstore(format!(
      "Invalid dir: at most {MAX_PREFIX_LENGTH} characters are kept (it names a folder)"
    )));
  }
  Ok(Some(prefix))
}

/// A new id for the time `now_ms` under an (already cleaned) `prefix`.
pub fn generate(prefix: Option<&str>, now_ms: u64) -> Result<String> {
  let key = format!("{}{}", to_base36(now_ms), random_base36(8)?);
  Ok(match prefix {
    Some(prefix) => format!("{prefix}:{key}"),
    None => key,
  })
}

/// The id an imported file gets: pixstore's shape (`<base36 time><8 base36
/// chars>`), with the time of the file and the 8 characters drawn from a
/// digest (of its path within the imported folder and its content) instead of
/// at random, so importing the same file again names the same id (and finds
/// it already there).
pub fn for_content(prefix: Option<&str>, time_ms: u64, digest: &[u8]) -> String {
  let tail: String = digest
    .iter()
    .take(8)
    .map(|byte| BASE36[(*byte % 36) as usize] as char)
    .collect();
  let key = format!("{}{tail}", to_base36(time_ms));
  match prefix {
    Some(prefix) => format!("{prefix}:{key}"),
    None => key,
  }
}

fn is_key_char(c: u8) -> bool {
  c.is_ascii_lowercase() || c.is_ascii_digit()
}

fn is_dir_char(c: u8) -> bool {
  is_key_char(c) || c == b'_' || c == b'-'
}

/// Whether `id` is one pixstore could have generated and stored: an optional
/// `[a-z0-9_-]*:` prefix of at most [`MAX_PREFIX_LENGTH`] bytes and a non-empty
/// `[a-z0-9]` key of at most [`MAX_KEY_LENGTH`].
pub fn is_valid(id: &str) -> bool {
  if id.is_empty() || id.len() > MAX_ID_LENGTH {
    return false;
  }
  let (prefix, key) = match id.split_once(':') {
    Some((prefix, key)) => (prefix, key),
    None => ("", id),
  };
  !key.is_empty()
    && key.len() <= MAX_KEY_LENGTH
    && prefix.len() <= MAX_PREFIX_LENGTH
    && key.bytes().all(is_key_char)
    && prefix.bytes().all(is_dir_char)
}

/// `Ok` for a valid id, else the PixstoreError that refuses it.
pub fn validate(id: &str) -> Result<()> {
  if is_valid(id) {
    return Ok(());
  }
  let shown: String = id.chars().take(64).flat_map(char::escape_default).collect();
  Err(Error::pixstore(format!("Invalid image id: \"{shown}\"")))
}

/// The file of a (valid) id: `<root>/<prefix>/<key>.pixstore-image` for
/// `prefix:key`, else `<root>/<id>.pixstore-image`, exactly as pixstore maps it.
pub fn file_path(root: &Path, id: &str) -> PathBuf {
  debug_assert!(is_valid(id));
  match id.split_once(':') {
    Some((prefix, key)) if !prefix.is_empty() => root.join(prefix).join(format!("{key}{IMAGE_EXTENSION}")),
    _ => root.join(format!("{id}{IMAGE_EXTENSION}")),
  }
}

#[cfg(test)]
mod tests {
  use super::*;
  use proptest::prelude::*;

  #[test]
  fn base36_matches_javascript() {
    assert_eq!(to_base36(0), "0");
    assert_eq!(to_base36(35), "z");
    assert_eq!(to_base36(36), "10");
    assert_eq!(to_base36(1_700_000_000_000), "loyw3v28");
  }

  #[test]
  fn generated_ids_have_the_pixstore_shape() {
    let id = generate(None, 1_700_000_000_000).unwrap();
    assert_eq!(id.len(), 16);
    assert!(id.starts_with("loyw3v28"));
    let prefix = prefix_for(Some("  My Students!/.. ")).unwrap();
    let id = generate(prefix.as_deref(), 1_700_000_000_000).unwrap();
    assert!(id.starts_with("mystudents:loyw3v28"), "{id}");
    assert!(is_valid(&id));
    assert_eq!(prefix_for(Some("")).unwrap(), None);
    assert_eq!(prefix_for(Some("  ")).unwrap().as_deref(), Some(""));
    assert!(prefix_for(Some(&"x".repeat(256))).is_err());
    let longest = generate(prefix_for(Some(&"x".repeat(255))).unwrap().as_deref(), u64::MAX).unwrap();
    assert!(is_valid(&longest), "pixstore stores a dir of 255 characters: so do we");
    assert!(is_valid(&"a".repeat(MAX_KEY_LENGTH)));
    assert!(!is_valid(&"a".repeat(MAX_KEY_LENGTH + 1)), "a file name over 255 bytes");
    assert!(
      !is_valid(&format!("{}:abc", "a".repeat(256))),
      "a folder name over 255 bytes"
    );
  }

  #[test]
  fn content_ids_have_the_pixstore_shape_and_repeat_for_the_same_content() {
    let id = for_content(Some("photos"), 1_700_000_000_000, &[0, 35, 36, 255, 7, 8, 9, 10, 11]);
    assert_eq!(id, "photos:loyw3v280z03789a");
    assert!(is_valid(&id));
    assert_eq!(for_content(None, 5, &[1; 8]), "511111111");
  }

  #[test]
  fn refuses_ids_that_could_not_have_been_generated() {
    for id in [
      "",
      "..",
      "../x",
      "a/b",
      "a\\b",
      "a\0b",
      "a:b:c",
      "a:",
      "A",
      "a.b",
      "a:..",
      &"a".repeat(MAX_KEY_LENGTH + 1),
    ] {
      assert!(!is_valid(id), "{id:?} should be invalid");
    }
    for id in ["abc", "dir:abc", "my_dir-2:abc", ":abc"] {
      assert!(is_valid(id), "{id:?} should be valid");
    }
  }

  #[test]
  fn maps_ids_to_pixstore_paths() {
    let root = Path::new("/store");
    assert_eq!(file_path(root, "abc"), Path::new("/store/abc.pixstore-image"));
    assert_eq!(file_path(root, "dir:abc"), Path::new("/store/dir/abc.pixstore-image"));
    assert_eq!(file_path(root, ":abc"), Path::new("/store/:abc.pixstore-image"));
  }

  proptest! {
    #[test]
    fn valid_ids_never_leave_the_root(id in "\\PC{0,40}") {
      if is_valid(&id) {
        let path = file_path(Path::new("/store"), &id);
        prop_assert!(path.starts_with("/store"));
        prop_assert!(path.components().all(|c| matches!(c, std::path::Component::RootDir | std::path::Component::Normal(_))));
      }
    }
  }
}
