//! Buffers holding one whole image. Up to [`MAPPED_FROM_BYTES`] a `Vec`;
//! from there a private anonymous mapping of its own. A freed mapping is kept
//! for the next image of about its size while fewer than [`KEPT_BYTES`] are
//! kept; beyond that it is unmapped, and its memory goes back to the system.
//!
//! Why: glibc serves a large `malloc` with its own mapping only until the
//! first such block is freed; it then raises its threshold to that size (up to
//! 32 MiB), and later multi-megabyte images come from arenas that rarely shrink.
//! Measured on the benchmark machine (`rss-100x5m-32` in BENCHMARKS.md): the
//! process RSS after 100 saves of a 5 MB image, 32 at a time, stayed at
//! 100–166 MiB with `Vec`s and fell to 59 MiB with mappings unmapped at once.
//! Unmapping every one made each copy fault its pages in again on the JS
//! thread (event-loop p99 during 5 MB saves: 12–13 ms, against 2–8 ms when
//! memory is reused); the kept ones bound that.

use std::io::{self, Read};
use std::ops::{Deref, DerefMut};
use std::sync::Mutex;

use bytes::Bytes;
use memmap2::MmapMut;

/// Buffers of at least this many bytes are mapped.
pub const MAPPED_FROM_BYTES: usize = 1024 * 1024;

/// Most bytes of freed mappings kept for reuse, per process.
pub const KEPT_BYTES: usize = 32 * 1024 * 1024;

/// Freed mappings, for the next images of about their size.
static KEPT: Mutex<Vec<MmapMut>> = Mutex::new(Vec::new());

/// A mapping of at least `length` bytes: a kept one of up to a quarter more,
/// or a new one.
fn mapping(length: usize) -> io::Result<Mapping> {
  let mut kept = KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
  let fits = kept
    .iter()
    .position(|map| map.len() >= length && map.len() - length <= length / 4);
  let map = match fits {
    Some(index) => kept.swap_remove(index),
    None => {
      drop(kept);
      MmapMut::map_anon(length)?
    }
  };
  Ok(Mapping(Some(map)))
}

/// A mapping that is kept for reuse, if there is room, when dropped.
struct Mapping(Option<MmapMut>);

impl Drop for Mapping {
  fn drop(&mut self) {
    let Some(map) = self.0.take() else { return };
    let mut kept = KEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let total: usize = kept.iter().map(|map| map.len()).sum();
    if total + map.len() <= KEPT_BYTES {
      kept.push(map);
    } else {
      drop(kept);
      drop(map);
    }
  }
}

impl AsRef<[u8]> for Mapping {
  fn as_ref(&self) -> &[u8] {
    self.0.as_deref().unwrap_or_default()
  }
}

impl Mapping {
  fn slice(&mut self) -> &mut [u8] {
    self.0.as_deref_mut().unwrap_or_default()
  }
}

/// The bytes of one image (plain or encrypted), behind `Deref<Target = [u8]>`.
pub struct ImageBuffer {
  storage: Storage,
  length: usize,
}

enum Storage {
  Heap(Vec<u8>),
  Mapped(Mapping),
}

impl ImageBuffer {
  /// `prefix` followed by a copy of `bytes`.
  pub fn with_prefix(prefix: u8, bytes: &[u8]) -> io::Result<ImageBuffer> {
    let length = bytes.len() + 1;
    if length < MAPPED_FROM_BYTES {
      let mut vec = Vec::with_capacity(length);
      vec.push(prefix);
      vec.extend_from_slice(bytes);
      return Ok(ImageBuffer::from(vec));
    }
    let mut map = mapping(length)?;
    let target = &mut map.slice()[..length];
    target[0] = prefix;
    target[1..].copy_from_slice(bytes);
    Ok(ImageBuffer {
      storage: Storage::Mapped(map),
      length,
    })
  }

  /// `prefix` followed by everything `reader` gives, for a reader expected to
  /// give about `expected` bytes (a file's size; it may have changed since).
  pub fn read_with_prefix(prefix: u8, reader: &mut impl Read, expected: usize) -> io::Result<ImageBuffer> {
    let length = expected + 1;
    if length < MAPPED_FROM_BYTES {
      let mut vec = Vec::with_capacity(length);
      vec.push(prefix);
      reader.read_to_end(&mut vec)?;
      return Ok(ImageBuffer::from(vec));
    }
    let mut map = mapping(length)?;
    let target = &mut map.slice()[..length];
    target[0] = prefix;
    let mut filled = 1;
    while filled < length {
      match reader.read(&mut target[filled..]) {
        Ok(0) => break,
        Ok(read) => filled += read,
        Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
        Err(err) => return Err(err),
      }
    }
    let mut rest = Vec::new();
    if filled == length {
      reader.read_to_end(&mut rest)?;
    }
    if rest.is_empty() {
      return Ok(ImageBuffer {
        storage: Storage::Mapped(map),
        length: filled,
      });
    }
    // It grew while being read: everything into one buffer of the new size.
    let mut whole = Vec::with_capacity(length + rest.len());
    whole.extend_from_slice(target);
    whole.extend_from_slice(&rest);
    drop(map);
    ImageBuffer::with_prefix(whole[0], &whole[1..])
  }

  /// The bytes, shared without a copy (a mapped buffer stays mapped until the
  /// last `Bytes` of it is dropped).
  pub fn into_bytes(self) -> Bytes {
    match self.storage {
      Storage::Heap(vec) => Bytes::from(vec),
      Storage::Mapped(map) => Bytes::from_owner(map).slice(..self.length),
    }
  }

  /// Whether the bytes live in a mapping of their own.
  pub fn is_mapped(&self) -> bool {
    matches!(self.storage, Storage::Mapped(_))
  }
}

impl From<Vec<u8>> for ImageBuffer {
  fn from(vec: Vec<u8>) -> ImageBuffer {
    ImageBuffer {
      length: vec.len(),
      storage: Storage::Heap(vec),
    }
  }
}

impl Deref for ImageBuffer {
  type Target = [u8];

  fn deref(&self) -> &[u8] {
    match &self.storage {
      Storage::Heap(vec) => vec,
      Storage::Mapped(map) => &map.as_ref()[..self.length],
    }
  }
}

impl DerefMut for ImageBuffer {
  fn deref_mut(&mut self) -> &mut [u8] {
    match &mut self.storage {
      Storage::Heap(vec) => vec,
      Storage::Mapped(map) => &mut map.slice()[..self.length],
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  fn pattern(length: usize) -> Vec<u8> {
    (0..length).map(|i| (i % 251) as u8).collect()
  }

  #[test]
  fn small_images_stay_on_the_heap_and_large_ones_are_mapped() {
    for (length, mapped) in [
      (0, false),
      (MAPPED_FROM_BYTES - 2, false),
      (MAPPED_FROM_BYTES - 1, true),
      (3 << 20, true),
    ] {
      let bytes = pattern(length);
      let buffer = ImageBuffer::with_prefix(7, &bytes).unwrap();
      assert_eq!(buffer.is_mapped(), mapped, "{length}");
      assert_eq!(buffer[0], 7);
      assert_eq!(&buffer[1..], &bytes[..]);
      let shared = buffer.into_bytes();
      assert_eq!(shared.len(), length + 1);
      assert_eq!(&shared[1..], &bytes[..]);
    }
  }

  #[test]
  fn reads_whatever_the_reader_gives_whether_shorter_longer_or_as_expected() {
    let expected = 2 << 20;
    for actual in [0, 10, expected - 1, expected, expected + 1, expected + 70_000] {
      let bytes = pattern(actual);
      let buffer = ImageBuffer::read_with_prefix(0, &mut &bytes[..], expected).unwrap();
      assert_eq!(buffer.len(), actual + 1, "{actual}");
      assert_eq!(&buffer[1..], &bytes[..], "{actual}");
    }
    let small = pattern(100);
    let buffer = ImageBuffer::read_with_prefix(1, &mut &small[..], 10).unwrap();
    assert!(!buffer.is_mapped());
    assert_eq!(&buffer[1..], &small[..]);
  }

  #[test]
  fn a_freed_mapping_serves_the_next_image_of_about_its_size() {
    // Sizes no other test uses (the kept mappings are shared by the process).
    let length = (7 << 20) + 123;
    let first = ImageBuffer::with_prefix(1, &pattern(length)).unwrap();
    let address = first.as_ptr();
    drop(first);
    let shorter = pattern(length - 1000);
    let second = ImageBuffer::read_with_prefix(2, &mut &shorter[..], length - 1000).unwrap();
    assert_eq!(second.as_ptr(), address, "kept and reused");
    assert_eq!(
      second.len(),
      shorter.len() + 1,
      "only what was read, not the old bytes after it"
    );
    assert_eq!(&second[1..], &shorter[..]);
    drop(second);
    let much_smaller = ImageBuffer::with_prefix(3, &pattern(5 << 20)).unwrap();
    assert_ne!(
      much_smaller.as_ptr(),
      address,
      "a mapping far larger than needed is not taken"
    );
    let shared = ImageBuffer::with_prefix(4, &pattern(length)).unwrap().into_bytes();
    assert_eq!(shared.as_ptr(), address, "shared bytes come from the kept mapping too");
    assert_eq!(&shared[1..], &pattern(length)[..]);
  }

  #[test]
  fn writes_through_deref_mut_land_in_the_bytes() {
    let mut buffer = ImageBuffer::with_prefix(0, &pattern(MAPPED_FROM_BYTES)).unwrap();
    buffer[5] = 200;
    let length = buffer.len();
    buffer[length - 1] = 201;
    let shared = buffer.into_bytes();
    assert_eq!((shared[5], shared[length - 1]), (200, 201));
  }
}
