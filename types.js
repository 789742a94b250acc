'use strict'
// pixstore-native/types: the TypeScript types of pixstore, plus the one runtime
// value among them, the WirePayloadState enum (state byte of a wire payload).

exports.WirePayloadState = Object.freeze({
  Success: 0,
  Updated: 1,
  NotFound: 2,
  MissingID: 3,
  MissingProof: 4,
  InvalidProof: 5,
  InternalError: 6,
  0: 'Success',
  1: 'Updated',
  2: 'NotFound',
  3: 'MissingID',
  4: 'MissingProof',
  5: 'InvalidProof',
  6: 'InternalError',
})
