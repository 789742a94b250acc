// ESM entry of pixstore-native/shared: the same PixstoreError class as the CJS entry.
import shared from './shared.js'

export const { PixstoreError, setCustomErrorHandler, getLastPixstoreError } = shared
