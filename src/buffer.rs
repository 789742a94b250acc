//! Buffers holding one whole image. Up to [`MAPPED_FROM_BYTES`] a `Vec`;
//! from there a private anonymous mapping of its own, unmapped when dropped,
//! so its memory goes back to the system at once.
//!
//! Why: glibc serves a large `malloc` with its own mapping only until the
//! first such block is freed; it then raises its threshold to that size (up to
//! 32 MiB), and later multi-megabyte images come from arenas that rarely shrink.
//! Measured on the benchmark machine (`rss-100x5m-32` in BENCHMARKS.md): the
//! process RSS after 100 saves of a 5 MB image, 32 at a time, stayed at
//! 100–166 MiB with `Vec`s and fell to 59 MiB with a fixed threshold.

use std::io::{self, Read};
use std::ops::{Deref, DerefMut};

use bytes::Bytes;
use memmap2::MmapMut;

/// Buffers of at least this many bytes are mapped.
pub const MAPPED_FROM_BYTES: usize = 1024 * 1024;

/// The bytes of one image (plain or encrypted), behind `Deref<Target = [u8]>`.
pub struct ImageBuffer {
  storage: Storage,
  length: usize,
}

enum Storage {
  Heap(Vec<u8>),
  Mapped(MmapMut),
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
    let mut map = MmapMut::map_anon(length)?;
    map[0] = prefix;
    map[1..].copy_from_slice(bytes);
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
    let mut map = MmapMut::map_anon(length)?;
    map[0] = prefix;
    let mut filled = 1;
    while filled < length {
      match reader.read(&mut map[filled..]) {
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
    whole.extend_from_slice(&map);
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
      Storage::Mapped(map) => &map[..self.length],
    }
  }
}

impl DerefMut for ImageBuffer {
  fn deref_mut(&mut self) -> &mut [u8] {
    match &mut self.storage {
      Storage::Heap(vec) => vec,
      Storage::Mapped(map) => &mut map[..self.length],
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
  fn writes_through_deref_mut_land_in_the_bytes() {
    let mut buffer = ImageBuffer::with_prefix(0, &pattern(MAPPED_FROM_BYTES)).unwrap();
    buffer[5] = 200;
    let length = buffer.len();
    buffer[length - 1] = 201;
    let shared = buffer.into_bytes();
    assert_eq!((shared[5], shared[length - 1]), (200, 201));
  }
}
