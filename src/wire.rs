//! The pixstore wire payload: the first byte is the state; `Success` carries
//! the ciphertext, `Updated` the token (u64 LE), key, IV, tag and ciphertext;
//! every other state is the single state byte.

use crate::crypto::{Sealed, IV_LENGTH, KEY_LENGTH, TAG_LENGTH};

/// The state byte of a wire payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum WireState {
  /// The client's token is current: ciphertext only.
  Success = 0,
  /// The client's token is stale or absent: new token, meta and ciphertext.
  Updated = 1,
  /// No such image.
  NotFound = 2,
  /// The request named no image id.
  MissingId = 3,
  /// The request carried no proof.
  MissingProof = 4,
  /// The proof is wrong or expired.
  InvalidProof = 5,
  /// An unexpected failure while building the payload.
  InternalError = 6,
}

impl WireState {
  /// Every state, in the order of their bytes.
  pub const ALL: [WireState; 7] = [
    WireState::Success,
    WireState::Updated,
    WireState::NotFound,
    WireState::MissingId,
    WireState::MissingProof,
    WireState::InvalidProof,
    WireState::InternalError,
  ];

  /// The state a payload starts with, if its first byte is one.
  pub fn of_payload(payload: &[u8]) -> Option<WireState> {
    payload
      .first()
      .and_then(|byte| Self::ALL.get(usize::from(*byte)).copied())
  }

  /// The state's name in pixstore's `WirePayloadState` enum.
  pub fn name(self) -> &'static str {
    match self {
      WireState::Success => "Success",
      WireState::Updated => "Updated",
      WireState::NotFound => "NotFound",
      WireState::MissingId => "MissingID",
      WireState::MissingProof => "MissingProof",
      WireState::InvalidProof => "InvalidProof",
      WireState::InternalError => "InternalError",
    }
  }
}

/// Length of the `Updated` header: state, token, key, IV, tag.
pub const UPDATED_HEADER_LENGTH: usize = 1 + 8 + KEY_LENGTH + IV_LENGTH + TAG_LENGTH;

/// A payload that is only its state byte.
pub fn state_only(state: WireState) -> Vec<u8> {
  vec![state as u8]
}

/// The header of an image payload with room for `ciphertext_length` more bytes:
/// `Success` when `update` is `None`, else `Updated` with its token and key material.
/// The caller appends the ciphertext.
pub fn image_header(update: Option<(u64, &Sealed)>, ciphertext_length: usize) -> Vec<u8> {
  let Some((token, sealed)) = update else {
    let mut payload = Vec::with_capacity(1 + ciphertext_length);
    payload.push(WireState::Success as u8);
    return payload;
  };
  let mut payload = Vec::with_capacity(UPDATED_HEADER_LENGTH + ciphertext_length);
  payload.push(WireState::Updated as u8);
  payload.extend_from_slice(&token.to_le_bytes());
  payload.extend_from_slice(&sealed.key);
  payload.extend_from_slice(&sealed.iv);
  payload.extend_from_slice(&sealed.tag);
  payload
}

#[cfg(test)]
mod tests {
  use super::*;
  use proptest::prelude::*;

  /// Decodes like pixstore's `decodeWirePayload`: (state, token/meta, ciphertext).
  fn decode(data: &[u8]) -> (u8, Option<(u64, Sealed)>, &[u8]) {
    let state = data[0];
    if data.len() == 1 || state != 1 {
      return (state, None, &data[1..]);
    }
    let token = u64::from_le_bytes(data[1..9].try_into().unwrap());
    let sealed = Sealed {
      key: data[9..41].try_into().unwrap(),
      iv: data[41..53].try_into().unwrap(),
      tag: data[53..69].try_into().unwrap(),
    };
    (state, Some((token, sealed)), &data[69..])
  }

  #[test]
  fn states_are_listed_in_byte_order() {
    for (byte, state) in WireState::ALL.iter().enumerate() {
      assert_eq!(*state as usize, byte);
      assert_eq!(WireState::of_payload(&[byte as u8, 9]), Some(*state));
    }
    assert_eq!(WireState::of_payload(&[7]), None);
    assert_eq!(WireState::of_payload(&[]), None);
    assert_eq!(WireState::MissingId.name(), "MissingID");
  }

  #[test]
  fn status_payloads_are_one_byte() {
    assert_eq!(state_only(WireState::NotFound), [2]);
    assert_eq!(state_only(WireState::InternalError), [6]);
  }

  proptest! {
    #[test]
    fn image_payloads_decode_to_what_was_encoded(
      token in any::<u64>(),
      key in any::<[u8; 32]>(),
      iv in any::<[u8; 12]>(),
      tag in any::<[u8; 16]>(),
      ciphertext in proptest::collection::vec(any::<u8>(), 0..200),
      updated in any::<bool>(),
    ) {
      let sealed = Sealed { key, iv, tag };
      let mut payload = image_header(updated.then_some((token, &sealed)), ciphertext.len());
      payload.extend_from_slice(&ciphertext);
      let (state, update, body) = decode(&payload);
      if updated {
        prop_assert_eq!(state, 1);
        prop_assert_eq!(update, Some((token, sealed)));
        prop_assert_eq!(payload.len(), UPDATED_HEADER_LENGTH + ciphertext.len());
      } else {
        prop_assert_eq!(state, 0);
      }
      if !ciphertext.is_empty() || updated {
        prop_assert_eq!(body, &ciphertext[..]);
      }
    }
  }
}
