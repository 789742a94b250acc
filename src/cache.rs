//! Encrypted images recently served, kept in memory by `(id, GCM tag)` so
//! the endpoint answers a hot image with one record read and no file or
//! object read (`imageCacheBytes`). An entry can never be stale: a write
//! gives an image a new tag, so the pair a record names is immutable; entries
//! of replaced versions are simply no longer asked for and age out. Bounded
//! by bytes (least recently used first, through `quick_cache`).

use bytes::Bytes;
use quick_cache::sync::Cache;
use quick_cache::Weighter;

/// Default for `imageCacheBytes`: 64 MiB.
pub const DEFAULT_IMAGE_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// The largest share of the cache one image may take.
const LARGEST_ENTRY_SHARE: u64 = 8;

/// What an entry costs beyond its key and image bytes: the two heap
/// allocations with their headers, the `String` and `Bytes` handles and the
/// cache's slot. Measured here (x86-64 glibc): 222 bytes of anonymous memory
/// per entry for 113 bytes of key and image, over 400,000 entries. Without it
/// a cache of tiny images held twice the memory `imageCacheBytes` allows.
const ENTRY_OVERHEAD: u64 = 112;

#[derive(Clone)]
struct ByteWeighter;

impl Weighter<String, Bytes> for ByteWeighter {
  fn weight(&self, key: &String, value: &Bytes) -> u64 {
    (key.len() + value.len()) as u64 + ENTRY_OVERHEAD
  }
}

/// The cache of one store; empty (and free) with a capacity of 0.
pub struct ImageCache {
  entries: Option<Cache<String, Bytes, ByteWeighter>>,
  largest: usize,
}

fn key(id: &str, tag: &str) -> String {
  let mut key = String::with_capacity(id.len() + tag.len() + 1);
  key.push_str(id);
  key.push('\0');
  key.push_str(tag);
  key
}

impl ImageCache {
  /// A cache of at most `capacity` bytes.
  pub fn new(capacity: u64) -> ImageCache {
    let entries = (capacity > 0).then(|| {
      // quick_cache sizes its tables by an estimate of the number of entries.
      let estimated = (capacity / 16_384).clamp(16, 1 << 20) as usize;
      Cache::with_weighter(estimated, capacity, ByteWeighter)
    });
    ImageCache {
      entries,
      largest: (capacity / LARGEST_ENTRY_SHARE) as usize,
    }
  }

  /// The ciphertext of the version of `id` whose tag is `tag`, if kept.
  pub fn get(&self, id: &str, tag: &str) -> Option<Bytes> {
    self.entries.as_ref()?.get(&key(id, tag))
  }

  /// Keeps a ciphertext that was read consistently with its record (images
  /// larger than an eighth of the cache are not kept).
  pub fn insert(&self, id: &str, tag: &str, ciphertext: impl FnOnce() -> Bytes, length: usize) {
    if let Some(entries) = &self.entries {
      if length <= self.largest {
        entries.insert(key(id, tag), ciphertext());
      }
    }
  }
}

#[cfg(test)]
mod tests {
  use super::*;

  #[test]
  fn keeps_versions_by_tag_within_its_capacity() {
    let cache = ImageCache::new(64 * 1024);
    cache.insert("a", "t1", || Bytes::from_static(b"one"), 3);
    assert_eq!(cache.get("a", "t1").as_deref(), Some(&b"one"[..]));
    assert_eq!(cache.get("a", "t2"), None, "another version is another entry");
    cache.insert("big", "t", || Bytes::from(vec![0; 9000]), 9000);
    assert_eq!(
      cache.get("big", "t"),
      None,
      "more than an eighth of the cache is not kept"
    );
    for n in 0..200 {
      cache.insert(&format!("id{n}"), "t", || Bytes::from(vec![0; 1000]), 1000);
    }
    let kept = (0..200).filter(|n| cache.get(&format!("id{n}"), "t").is_some()).count();
    assert!(kept < 70, "bounded by bytes: {kept} entries of 1000 bytes in 64 KiB");
    let tiny = ImageCache::new(64 * 1024);
    for n in 0..2000 {
      tiny.insert(&format!("id{n}"), "t", || Bytes::from_static(b"x"), 1);
    }
    let kept = (0..2000).filter(|n| tiny.get(&format!("id{n}"), "t").is_some()).count();
    assert!(
      kept * 112 <= 64 * 1024,
      "what an entry costs beyond its bytes counts: {kept} tiny entries in 64 KiB"
    );
    let off = ImageCache::new(0);
    off.insert("a", "t", || Bytes::from_static(b"x"), 1);
    assert_eq!(off.get("a", "t"), None);
  }
}
