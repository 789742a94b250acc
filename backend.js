'use strict'
// pixstore-native/backend: the pixstore/backend API on top of the native addon.
// Argument checks and error handling modes live here; the work happens in Rust.

const { isUint8Array } = require('node:util').types
const cluster = require('node:cluster')
const native = require('./index.js')
const { PixstoreError, fromNative, handleSync, handleAsync, setErrorHandlingMode } = require('./lib/errors.js')
const { setRequestLogger, deliverEndpointEntries } = require('./lib/request-log.js')

// Checks here must hold for values from any realm: under Jest every test file
// runs in a vm context whose Uint8Array, Error and Object are not Node's, so
// `instanceof` is never used on what callers pass in.

function requireId(id) {
  if (typeof id !== 'string') throw new PixstoreError('Invalid image id: expected a string')
  return id
}

function requireImage(buffer) {
  if (!isUint8Array(buffer)) {
    throw new PixstoreError('Invalid image file: expected a Buffer or Uint8Array')
  }
  return buffer
}

function requirePath(filePath) {
  if (typeof filePath !== 'string' || filePath === '') {
    throw new PixstoreError('Invalid file path: expected a non-empty string')
  }
  return filePath
}

function optionalDir(dir) {
  if (dir === undefined || dir === null) return undefined
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
  return handleSync(() => native.getImageRecord(requireId(id)))
}

/**
 * The image record as the database has it now (with a fresh proof), or null. For
 * a store in PostgreSQL this asks the database rather than the in-process replica
 * that getImageRecord answers from.
 */
async function getImageRecordAsync(id) {
  return handleAsync(async () => native.getImageRecordAsync(requireId(id)))
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
  return handleAsync(async () => native.updateImage(requireId(id), requireImage(buffer)))
}

/** Replaces the image of an existing id with a file's content. */
async function updateImageFromFile(id, filePath) {
  return handleAsync(async () => native.updateImageFromFile(requireId(id), requirePath(filePath)))
}

/** Deletes an image; true if its file or its record was deleted. */
async function deleteImage(id) {
  return handleAsync(async () => native.deleteImage(requireId(id)))
}

/** Whether the image's file or record exists. */
async function imageExists(id) {
  return handleAsync(async () => native.imageExists(requireId(id)))
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
