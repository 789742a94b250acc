// ESM entry of pixstore-native/express: the same function as the CJS entry.
import express from './express.js'

export const { pixstoreRouter } = express
