'use strict'
// The request log hook: one logger per JS module instance, fed by the default
// endpoint (batches of entries from the addon) and by the framework glue
// (lib/image-route.js). A logger that throws or rejects never reaches the
// server: the error is printed with console.error.

const state = { logger: undefined }

function reportLoggerError(error) {
  console.error('pixstore-native: the request logger failed:', error)
}

/** Whether a logger is set (the glue builds entries only then). */
function requestLogEnabled() {
  return state.logger !== undefined
}

/** Hands one entry to the logger, if any; never throws. */
function emitRequestLog(entry) {
  const logger = state.logger
  if (logger === undefined) return
  try {
    const result = logger(entry)
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      result.then(undefined, reportLoggerError)
    }
  } catch (error) {
    reportLoggerError(error)
  }
}

/** The function the addon calls with the default endpoint's entries (it must not throw). */
function deliverEndpointEntries(entries) {
  for (const entry of entries) emitRequestLog(entry)
}

/** Sets the logger (undefined or null removes it); returns whether one is set now. */
function setRequestLogger(logger) {
  if (logger !== undefined && logger !== null && typeof logger !== 'function') {
    throw new TypeError('setPixstoreRequestLogger expects a function, or undefined to remove it')
  }
  state.logger = logger ?? undefined
  return state.logger !== undefined
}

module.exports = { requestLogEnabled, emitRequestLog, deliverEndpointEntries, setRequestLogger }
