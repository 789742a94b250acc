'use strict'
// The image route of the framework glue (pixstore-native/express, /fastify,
// /nestjs), framework-neutral: it answers like the default endpoint (routes,
// status codes, texts, CORS) around customEndpointHelper, plus an authorize
// hook. Each adapter only reads its request and writes the answer given here.

const { performance } = require('node:perf_hooks')
const { customEndpointHelper } = require('../backend.js')
const { WirePayloadState } = require('../types.js')
const { requestLogEnabled, emitRequestLog } = require('./request-log.js')

const DEFAULT_ROUTE = '/pixstore-image'
const ALLOW_METHODS = 'GET,OPTIONS'
const ALLOW_HEADERS = 'Content-Type, Authorization, x-pixstore-proof, x-pixstore-token'

// The ids the generator can produce, as the default endpoint checks them
// (src/id.rs `is_valid`; __test__/frameworks.test.mjs compares the two).
// An id pixstore could have generated and stored: a prefix of at most 255 bytes
// (a folder name) and a key of at most 240 (`<key>.pixstore-image` is a file
// name of at most 255), as src/id.rs checks it.
const VALID_ID = /^(?:([a-z0-9_-]*):)?([a-z0-9]+)$/
const isValidId = (id) => {
  const parts = VALID_ID.exec(id)
  return parts !== null && (parts[1] ?? '').length <= 255 && parts[2].length <= 240
}

/**
 * Validates the options every adapter takes and fills in the defaults:
 * `route` ('/pixstore-image'), `accessControlAllowOrigin` ('*') and
 * `authorize` (none: every request is allowed).
 */
function routeOptions(options = {}) {
  if (options === null || typeof options !== 'object') {
    throw new TypeError('pixstore-native: the options must be an object')
  }
  const { route = DEFAULT_ROUTE, accessControlAllowOrigin = '*', authorize } = options
  if (typeof route !== 'string' || !route.startsWith('/') || route.endsWith('/') || /[?#*:]/.test(route)) {
    throw new TypeError(`pixstore-native: route must be a path like '/pixstore-image' (got ${JSON.stringify(route)})`)
  }
  if (typeof accessControlAllowOrigin !== 'string' || !/^[\t\x20-\x7e]+$/.test(accessControlAllowOrigin)) {
    throw new TypeError('pixstore-native: accessControlAllowOrigin must be a non-empty header value')
  }
  if (authorize !== undefined && typeof authorize !== 'function') {
    throw new TypeError('pixstore-native: authorize must be a function (req, imageId) => boolean | Promise<boolean>')
  }
  return { route, accessControlAllowOrigin, authorize }
}

/** The headers on every answer of the route (set before anything can fail). */
function corsHeaders({ accessControlAllowOrigin }) {
  return {
    'access-control-allow-origin': accessControlAllowOrigin,
    'access-control-allow-methods': ALLOW_METHODS,
    'access-control-allow-headers': ALLOW_HEADERS,
  }
}

/**
 * The part of `pathname` below `route`: '' for the route itself, '/…' below
 * it, null for any other path (not ours: the framework goes on).
 */
function pathBelowRoute(route, pathname) {
  if (pathname === route) return ''
  if (pathname.startsWith(route + '/')) return pathname.slice(route.length)
  return null
}

/** The path of a request target, without its query string. */
function pathnameOf(url) {
  const query = url.indexOf('?')
  return query === -1 ? url : url.slice(0, query)
}

/** `decodeURIComponent`, or null where it throws. */
function decodeId(text) {
  try {
    return decodeURIComponent(text)
  } catch {
    return null
  }
}

/** A token header as the frontend sends it (`String(record.token)`); undefined if it is not a number. */
function parseToken(text) {
  if (typeof text !== 'string' || text.trim() === '') return undefined
  const token = Number(text)
  return Number.isFinite(token) ? token : undefined
}

const firstValue = (value) => (Array.isArray(value) ? value[0] : value)

const EXTRA_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }

function text(status, message) {
  const body = Buffer.from(message)
  return {
    status,
    headers: { 'content-type': 'text/plain', 'content-length': String(body.length), ...EXTRA_HEADERS },
    body,
  }
}

/**
 * The answer to one request of the image route, as `{ status, headers, body }`
 * (`body` a Buffer or null; the CORS headers are the adapter's, set first).
 * `request` is `{ method, path, header(name), req, source }` with `path` the raw
 * (still percent-encoded) part below the route (null: not below it, 404),
 * `req` the framework's request, handed to `authorize`, and `source` the
 * adapter's name for the request log. Rejects when `authorize` throws or, in
 * the error handling modes that throw, when customEndpointHelper does: the
 * adapter passes that to the framework's error handling.
 *
 * Every request of every adapter passes here, so this is where the request
 * log (setPixstoreRequestLogger) gets the glue's requests, rejections included.
 */
async function answer(options, request) {
  if (!requestLogEnabled()) return respond(options, request, {})
  const started = performance.now()
  const seen = { imageId: null }
  const entry = (status, state, bytes) => ({
    source: request.source,
    method: request.method,
    route: request.path === null ? null : options.route,
    imageId: seen.imageId,
    state,
    status,
    bytes,
    durationMs: performance.now() - started,
    remoteAddress: (request.req?.raw ?? request.req)?.socket?.remoteAddress ?? null,
  })
  let result
  try {
    result = await respond(options, request, seen)
  } catch (error) {
    // The framework's error handling answers; 500 unless it decides otherwise.
    emitRequestLog({ ...entry(500, null, 0), error })
    throw error
  }
  const { status, body } = result
  const state = status === 200 && body?.length ? (WirePayloadState[body[0]] ?? null) : null
  const sent = request.method !== 'HEAD' && body ? body.length : 0
  emitRequestLog(entry(status, state, sent))
  return result
}

/** `answer` without the request log; `seen.imageId` gets the decoded id once it is known valid. */
async function respond(options, { method, path, header, req }, seen) {
  if (method === 'OPTIONS') return { status: 204, headers: {}, body: null }
  if ((method !== 'GET' && method !== 'HEAD') || path === null) return text(404, 'Not found')
  if (path === '' || path === '/') return text(400, 'Missing image id')
  const id = decodeId(path.slice(1))
  if (id === null) return text(400, 'Malformed percent-encoding in image id')
  if (!isValidId(id)) return text(400, 'Invalid image id')
  seen.imageId = id

  if (options.authorize && (await options.authorize(req, id)) !== true) return text(403, 'Forbidden')

  const proof = firstValue(header('x-pixstore-proof')) || undefined
  const token = parseToken(firstValue(header('x-pixstore-token')))
  const payload = await customEndpointHelper(id, token, proof)
  // null: the error handling mode already reported a failure (not initialized,
  // the default endpoint still running, …); the client gets a plain 500.
  if (payload === null) return text(500, 'Pixstore backend unavailable')
  const body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength)
  return {
    status: 200,
    headers: { 'content-type': 'application/octet-stream', 'content-length': String(body.length), ...EXTRA_HEADERS },
    body,
  }
}

module.exports = { routeOptions, corsHeaders, pathBelowRoute, pathnameOf, answer }
