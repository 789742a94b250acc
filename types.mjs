// ESM entry of pixstore-native/types.
import types from './types.js'

export const { WirePayloadState } = types
