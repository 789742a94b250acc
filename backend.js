'use strict'
// pixstore-native/backend: the pixstore/backend API on top of the native addon.
// Argument checks and error handling modes live here; the work happens in Rust.

const { isUint8Array, isAnyArrayBuffer } = require('node:util').types
const { fileURLToPath } = require('node:url')
const cluster = require('node:cluster')
const native = require('./index.js')
const { PixstoreError, fromNative, handleSync, handleAsync, setErrorHandlingMode } = require('./lib/errors.js')
const { setRequestLogger, deliverEndpointEntries } = require('./lib/request-log.js')

// Checks here must hold for values from any realm: under Jest every test file
// runs in a vm context whose Uint8Array, Error and Object are not Node's, so
// `instanceof` is never used on what callers pass in.

// An id that is not a string could not have been generated: like any such id
// (SPEC "Deliberate differences"), it is one that does not exist — lookups give
// null or false, updateImage gives `Image not found: <id>` — and never reaches
// the addon.
const isId = (id) => typeof id === 'string'

/** A Buffer or any Uint8Array, or an ArrayBuffer / SharedArrayBuffer (viewed whole), as pixstore takes. */
function asImage(buffer) {
  if (isUint8Array(buffer)) return buffer
  if (isAnyArrayBuffer(buffer)) return new Uint8Array(buffer)
  return null
}

function requireImage(buffer) {
  const image = asImage(buffer)
  if (image === null) throw new PixstoreError('Invalid image file: expected a Buffer, Uint8Array or ArrayBuffer')
  return image
}

/** A path as Node's fs takes it: a string, a Buffer (its bytes as UTF-8) or a file: URL. */
function requirePath(filePath) {
  let path = filePath
  if (isUint8Array(filePath)) path = Buffer.from(filePath.buffer, filePath.byteOffset, filePath.byteLength).toString()
  else if (filePath !== null && typeof filePath === 'object' && typeof filePath.href === 'string' && filePath.protocol === 'file:') {
    path = fileURLToPath(filePath.href)
  }
  if (typeof path !== 'string' || path === '') {
    throw new PixstoreError('Invalid file path: expected a non-empty string, Buffer or file: URL')
  }
  return path
}

/** pixstore prefixes the id only for a truthy `dir`. */
function optionalDir(dir) {
  if (!dir) return undefined
  if (typeof dir !== 'string') throw new PixstoreError('Invalid dir: expected a string')
  return dir
}

/**
 * Whether this process is one of several started alike, which share the
 * default endpoint's port and need shared proofs: a node:cluster worker (PM2's
 * cluster mode forks through node:cluster) or a PM2 instance (NODE_APP_INSTANCE).
 */
function oneOfSeveralProcesses() {
  return cluster.isWorker || process.env.NODE_APP_INSTANCE !== undefined
}

// Whether this instance of the module has initialized the backend. A fresh
// instance (a new Jest test file, jest.resetModules) starts from the defaults,
// as a fresh copy of pixstore's module would, even though the native backend
// of this thread may still hold an earlier instance's configuration.
let initialized = false

/**
 * Validates and applies the configuration (merged over the current one), opens
 * the store and starts, stops or moves the default endpoint. Throws a plain
 * Error on invalid config and then changes nothing.
 */
function initPixstoreBackend(config = {}) {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new Error('initPixstoreBackend expects a configuration object')
  }
  let applied
  try {
    applied = native.initPixstoreBackend(config, !initialized, oneOfSeveralProcesses())
  } catch (error) {
    throw fromNative(error)
  }
  initialized = true
  setErrorHandlingMode(applied.errorHandlingMode)
  for (const warning of applied.warnings) console.warn(warning)
}

/** Stops the default endpoint (letting open requests finish) and closes the store. */
async function closePixstoreBackend() {
  await native.closePixstoreBackend()
}

/** The image record (with a fresh stateless proof), or null if there is none. Synchronous. */
function getImageRecord(id) {
  return handleSync(() => (isId(id) ? native.getImageRecord(id) : null))
}

/**
 * The image record as the database has it now (with a fresh proof), or null. For
 * a store in PostgreSQL this asks the database rather than the in-process replica
 * that getImageRecord answers from.
 */
async function getImageRecordAsync(id) {
  return handleAsync(async () => (isId(id) ? native.getImageRecordAsync(id) : null))
}

/** Encrypts and stores a new image; `dir` prefixes its id. */
async function saveImage(buffer, dir) {
  return handleAsync(async () => native.saveImage(requireImage(buffer), optionalDir(dir)))
}

/** Reads an image file, encrypts and stores it as a new image. */
async function saveImageFromFile(filePath, dir) {
  return handleAsync(async () => native.saveImageFromFile(requirePath(filePath), optionalDir(dir)))
}

/** Replaces the image of an existing id. */
async function updateImage(id, buffer) {
  return handleAsync(async () => {
    // pixstore looks the record up first: an unknown id is `Image not found` whatever the buffer.
    if (!isId(id) || (asImage(buffer) === null && (await native.getImageRecordAsync(id)) === null)) {
      throw new PixstoreError(`Image not found: ${String(id)}`)
    }
    return native.updateImage(id, requireImage(buffer))
  })
}

/** Replaces the image of an existing id with a file's content. */
async function updateImageFromFile(id, filePath) {
  return handleAsync(async () => {
    const path = requirePath(filePath)
    if (!isId(id)) throw new PixstoreError(`Image not found: ${String(id)}`)
    return native.updateImageFromFile(id, path)
  })
}

/** Deletes an image; true if its file or its record was deleted. */
async function deleteImage(id) {
  return handleAsync(async () => (isId(id) ? native.deleteImage(id) : false))
}

/** Whether the image's file or record exists. */
async function imageExists(id) {
  return handleAsync(async () => (isId(id) ? native.imageExists(id) : false))
}

/**
 * The encoded wire payload for a custom endpoint. Refused (PixstoreError) while
 * the default endpoint runs.
 */
async function customEndpointHelper(imageId, clientToken, statelessProof) {
  return handleAsync(async () =>
    native.customEndpointHelper(
      imageId ? String(imageId) : undefined,
      typeof clientToken === 'number' ? clientToken : undefined,
      statelessProof ? String(statelessProof) : undefined,
    ),
  )
}

/**
 * The numbers of this environment's backend: writes, served payloads by wire
 * state, bytes, duration histograms (seconds), the default endpoint's open
 * connections and responses. Synchronous; never fails (zeros before init).
 */
function getPixstoreStats() {
  return native.getPixstoreStats()
}

/** The Content-Type of getPixstoreMetrics()'s text (prom-client's `register.contentType`). */
const PIXSTORE_METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

/** getPixstoreStats() in Prometheus' text exposition format, for a /metrics route of your own. */
function getPixstoreMetrics() {
  return native.getPixstoreMetrics()
}

/**
 * Sets the function called once per request answered by the default endpoint
 * or the framework glue (undefined or null removes it). It runs on the JS
 * thread after the response is ready, never delays one, and may be async; what
 * it throws or rejects with is printed with console.error.
 */
function setPixstoreRequestLogger(logger) {
  const enabled = setRequestLogger(logger)
  native.setRequestLogListener(enabled ? deliverEndpointEntries : null)
}

exports.initPixstoreBackend = initPixstoreBackend
exports.closePixstoreBackend = closePixstoreBackend
exports.getImageRecord = getImageRecord
exports.getImageRecordAsync = getImageRecordAsync
exports.saveImage = saveImage
exports.saveImageFromFile = saveImageFromFile
exports.updateImage = updateImage
exports.updateImageFromFile = updateImageFromFile
exports.deleteImage = deleteImage
exports.imageExists = imageExists
exports.customEndpointHelper = customEndpointHelper
exports.getPixstoreStats = getPixstoreStats
exports.getPixstoreMetrics = getPixstoreMetrics
exports.PIXSTORE_METRICS_CONTENT_TYPE = PIXSTORE_METRICS_CONTENT_TYPE
exports.setPixstoreRequestLogger = setPixstoreRequestLogger
