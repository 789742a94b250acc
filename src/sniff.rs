//! Image format detection by magic bytes, with the semantics of the npm
//! `image-type@4` package (which runs `file-type@10` and keeps image results).
//!
//! The formats `file-type@10` checks first (jpg, png, gif, webp, flif, cr2,
//! tif, bmp, jxr, psd) are matched exactly as it does, in its order, so every
//! default format behaves identically. The later image formats (ico, cur, bpg,
//! jp2/jpx/jpm, heic, dcm) are matched by their signatures alone.

/// `(offset, signature)` pairs that must all match.
type Signature = &'static [(usize, &'static [u8])];

/// Image signatures in the order `file-type@10` checks them.
const SIGNATURES: &[(&str, Signature)] = &[
  ("jpg", &[(0, &[0xFF, 0xD8, 0xFF])]),
  ("png", &[(0, &[0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])]),
  ("gif", &[(0, b"GIF")]),
  ("webp", &[(8, b"WEBP")]),
  ("flif", &[(0, b"FLIF")]),
  ("cr2", &[(0, &[0x49, 0x49, 0x2A, 0x00]), (8, b"CR")]),
  ("cr2", &[(0, &[0x4D, 0x4D, 0x00, 0x2A]), (8, b"CR")]),
  ("tif", &[(0, &[0x49, 0x49, 0x2A, 0x00])]),
  ("tif", &[(0, &[0x4D, 0x4D, 0x00, 0x2A])]),
  ("bmp", &[(0, b"BM")]),
  ("jxr", &[(0, &[0x49, 0x49, 0xBC])]),
  ("psd", &[(0, b"8BPS")]),
  ("ico", &[(0, &[0x00, 0x00, 0x01, 0x00])]),
  ("cur", &[(0, &[0x00, 0x00, 0x02, 0x00])]),
  ("bpg", &[(0, &[0x42, 0x50, 0x47, 0xFB])]),
  ("jp2", &[(0, JPEG2000), (20, b"jp2 ")]),
  ("jpx", &[(0, JPEG2000), (20, b"jpx ")]),
  ("jpm", &[(0, JPEG2000), (20, b"jpm ")]),
  ("heic", &[(4, b"ftyp"), (8, b"mif1")]),
  ("heic", &[(4, b"ftyp"), (8, b"msf1")]),
  ("heic", &[(4, b"ftyp"), (8, b"heic")]),
  ("heic", &[(4, b"ftyp"), (8, b"heix")]),
  ("heic", &[(4, b"ftyp"), (8, b"hevc")]),
  ("heic", &[(4, b"ftyp"), (8, b"hevx")]),
  ("dcm", &[(128, b"DICM")]),
];

const JPEG2000: &[u8] = &[0x00, 0x00, 0x00, 0x0C, 0x6A, 0x50, 0x20, 0x20, 0x0D, 0x0A, 0x87, 0x0A];

fn matches(bytes: &[u8], signature: Signature) -> bool {
  signature
    .iter()
    .all(|(offset, magic)| bytes.get(*offset..offset + magic.len()) == Some(*magic))
}

/// The file extension `image-type@4` reports for `bytes` (`"jpg"` for JPEG),
/// or `None` when it reports no image.
pub fn detect_format(bytes: &[u8]) -> Option<&'static str> {
  if bytes.len() < 2 {
    return None;
  }
  SIGNATURES
    .iter()
    .find(|(_, signature)| matches(bytes, signature))
    .map(|(format, _)| *format)
}

#[cfg(test)]
mod tests {
  use super::*;
  use proptest::prelude::*;

  #[test]
  fn detects_the_default_formats() {
    assert_eq!(detect_format(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]), Some("jpg"));
    assert_eq!(detect_format(&[0xFF, 0xD8, 0xFF]), Some("jpg"));
    assert_eq!(detect_format(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("png"));
    assert_eq!(detect_format(b"RIFF\0\0\0\0WEBPVP8 "), Some("webp"));
    assert_eq!(detect_format(b"GIF89a"), Some("gif"));
    assert_eq!(detect_format(b"II*\0\0\0\0\0CR"), Some("cr2"));
    assert_eq!(detect_format(b"II*\0\0\0\0\0XX"), Some("tif"));
  }

  #[test]
  fn rejects_text_and_short_input() {
    assert_eq!(detect_format(b""), None);
    assert_eq!(detect_format(&[0xFF]), None);
    assert_eq!(detect_format(b"hello, this is not an image"), None);
    assert_eq!(detect_format(b"\x89PNG\r\n"), None);
  }

  proptest! {
    #[test]
    fn never_panics_and_only_reports_known_formats(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
      if let Some(format) = detect_format(&bytes) {
        prop_assert!(SIGNATURES.iter().any(|(f, _)| *f == format));
      }
    }

    #[test]
    fn anything_starting_with_the_jpeg_marker_is_jpg(tail in proptest::collection::vec(any::<u8>(), 0..64)) {
      let mut bytes = vec![0xFF, 0xD8, 0xFF];
      bytes.extend(tail);
      prop_assert_eq!(detect_format(&bytes), Some("jpg"));
    }
  }
}
