'use strict'
// The error side of the JS layer: the PixstoreError class, the error handling
// modes of pixstore (hybrid, throw, warn, silent, custom), and the mapping of
// native errors (tagged `[CODE] message` by the binding) to JS errors.

/** An expected failure of a Pixstore call (bad input, not found, not initialized…). */
class PixstoreError extends Error {
  constructor(message, options) {
    super(message, options)
    this.name = 'PixstoreError'
  }
}

const state = {
  mode: 'hybrid',
  customErrorHandler: undefined,
  lastPixstoreError: null,
}

const NATIVE_TAG = /^\[(PIXSTORE_ERROR|PIXSTORE_CONFIG|PIXSTORE_INTERNAL)\] ([\s\S]*)$/

/**
 * Turns an error thrown by the addon into the error the user sees. The addon's
 * errors belong to Node's own realm, which is not the caller's under Jest
 * (each test file runs in a vm context), so they are recognised by their
 * message, never by `instanceof`; the errors returned are of this module's realm.
 */
function fromNative(error) {
  const text = error !== null && typeof error === 'object' ? error.message : undefined
  const match = typeof text === 'string' ? NATIVE_TAG.exec(text) : null
  if (!match) return error
  const [, code, message] = match
  if (code === 'PIXSTORE_ERROR') return new PixstoreError(message)
  if (code === 'PIXSTORE_CONFIG') return new Error(message)
  const internal = new Error(message)
  internal.code = code
  return internal
}

/** Applies the current error handling mode to an error; returns null or throws. */
function handleCatch(error) {
  const mode = state.mode
  if (mode === 'hybrid') {
    if (!(error instanceof PixstoreError)) throw error
    state.lastPixstoreError = error
    console.warn(error)
    return null
  }
  if (mode === 'warn') {
    console.warn(error)
    return null
  }
  if (mode === 'silent') return null
  if (mode === 'custom') {
    if (!state.customErrorHandler) throw new Error('Custom error handler is not set')
    state.customErrorHandler(error)
    return null
  }
  throw error
}

/** Runs a synchronous native call under the error handling mode. */
function handleSync(call) {
  try {
    return call()
  } catch (error) {
    return handleCatch(fromNative(error))
  }
}

/** Runs an asynchronous native call under the error handling mode. */
async function handleAsync(call) {
  try {
    return await call()
  } catch (error) {
    return handleCatch(fromNative(error))
  }
}

/** Sets the handler that receives errors in 'custom' mode (undefined removes it). */
function setCustomErrorHandler(handler) {
  if (handler !== undefined && handler !== null && typeof handler !== 'function') {
    throw new TypeError('setCustomErrorHandler expects a function, or undefined or null to remove it')
  }
  state.customErrorHandler = handler ?? undefined
}

/** The last PixstoreError handled in 'hybrid' mode, or null. */
function getLastPixstoreError() {
  return state.lastPixstoreError
}

/** Switches the error handling mode (validated by the addon first). */
function setErrorHandlingMode(mode) {
  state.mode = mode
}

module.exports = {
  PixstoreError,
  fromNative,
  handleSync,
  handleAsync,
  setCustomErrorHandler,
  getLastPixstoreError,
  setErrorHandlingMode,
}
