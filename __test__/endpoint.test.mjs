// The default endpoint: HTTP semantics of SPEC.md (routes, CORS, states,
// query strings), HEAD, Cache-Control and nosniff, the health and metrics
// routes, reconfiguration, graceful shutdown, and hostile input over raw TCP,
// each followed by a normal request that must still be served.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { join } from 'node:path'
import { rmSync } from 'node:fs'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import * as backend from 'pixstore-native/backend'
import { tempDir, freePort, makePng, openPayload, fetchPayload, decodeWirePayload } from './helpers.mjs'

const dir = tempDir()
const png = makePng(4, 4, 3)
let port
let base
let record

before(async () => {
  port = await freePort()
  base = `http://127.0.0.1:${port}/pixstore-image`
  backend.initPixstoreBackend({
    imageRootDir: join(dir.path, 'images'),
    databasePath: join(dir.path, 'store.sqlite'),
    defaultEndpointListenHost: '127.0.0.1',
    defaultEndpointListenPort: port,
    statelessKeyWindowLength: 20000,
    errorHandlingMode: 'throw',
  })
  record = await backend.saveImage(png, 'gallery')
})
after(async () => {
  await backend.closePixstoreBackend()
  dir.remove()
})

/** Sends raw bytes, returns everything the server answered until it closed or went quiet. */
function raw(bytes, { quietMs = 300, port: target = port } = {}) {
  return new Promise((resolve, reject) => {
    const socket = connect(target, '127.0.0.1')
    const chunks = []
    let timer
    const finish = () => {
      clearTimeout(timer)
      socket.destroy()
      resolve(Buffer.concat(chunks).toString('latin1'))
    }
    const arm = () => {
      clearTimeout(timer)
      timer = setTimeout(finish, quietMs)
    }
    socket.on('connect', () => {
      socket.write(bytes)
      arm()
    })
    socket.on('data', (chunk) => {
      chunks.push(chunk)
      arm()
    })
    socket.on('end', finish)
    socket.on('error', (err) => (chunks.length ? finish() : reject(err)))
  })
}

const statusOf = (text) => Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1])

async function stillServes() {
  const { response, payload } = await fetchPayload(base, record)
  assert.equal(response.status, 200)
  assert.deepEqual((await openPayload(payload, record)).bytes, png)
}

test('GET of an image: 200, octet-stream, Content-Length, CORS headers, decryptable payload', async () => {
  const { response, payload } = await fetchPayload(base, record, { token: null })
  assert.equal(response.status, 200)
  assert.equal(response.headers.get('content-type'), 'application/octet-stream')
  assert.equal(Number(response.headers.get('content-length')), payload.length)
  assert.equal(response.headers.get('access-control-allow-origin'), '*')
  assert.equal(response.headers.get('access-control-allow-methods'), 'GET,OPTIONS')
  assert.equal(response.headers.get('access-control-allow-headers'), 'Content-Type, Authorization, x-pixstore-proof, x-pixstore-token')
  const opened = await openPayload(payload, record)
  assert.equal(opened.state, 1)
  assert.equal(opened.token, record.token)
  assert.deepEqual(opened.bytes, png)
})

test('token handling: matching → Success, stale or unparsable → Updated', async () => {
  assert.equal((await openPayload((await fetchPayload(base, record)).payload, record)).state, 0)
  assert.equal((await openPayload((await fetchPayload(base, record, { token: record.token - 1 })).payload, record)).state, 1)
  assert.equal((await openPayload((await fetchPayload(base, record, { token: 'abc' })).payload, record)).state, 1)
})

test('proof handling and unknown ids answer 200 with the state byte', async () => {
  const state = async (options, target = record) => {
    const { response, payload } = await fetchPayload(base, target, options)
    assert.equal(response.status, 200)
    assert.equal(payload.length, 1)
    return decodeWirePayload(payload).state
  }
  assert.equal(await state({ proof: '' }), 4)
  assert.equal(await state({ proof: 'AAAAAAAAAAA=' }), 5)
  const other = await backend.saveImage(png)
  assert.equal(await state({ proof: other.statelessProof }), 5, "another image's proof is invalid")
  await backend.deleteImage(other.id)
  assert.equal(await state({}, other), 2)
})

test('the query string is ignored', async () => {
  const response = await fetch(`${base}/${encodeURIComponent(record.id)}?cache=bust&x=%zz`, { headers: { 'x-pixstore-proof': record.statelessProof } })
  assert.equal(response.status, 200)
  assert.deepEqual((await openPayload(new Uint8Array(await response.arrayBuffer()), record)).bytes, png)
})

test('served images are kept by version (imageCacheBytes): an update or delete is seen at once; 0 turns it off', async () => {
  const first = await backend.saveImage(png)
  const fileOf = (id) => join(dir.path, 'images', `${id}.pixstore-image`)
  await fetchPayload(base, first)
  const updated = await backend.updateImage(first.id, makePng(5, 5, 9))
  let opened = await openPayload((await fetchPayload(base, first)).payload, updated)
  assert.equal(opened.state, 1, 'the old token is stale after an update')
  assert.deepEqual(opened.bytes, makePng(5, 5, 9))
  // The served version is kept: it is answered even when its file vanishes.
  await fetchPayload(base, updated)
  rmSync(fileOf(first.id))
  opened = await openPayload((await fetchPayload(base, updated, { token: null })).payload, updated)
  assert.deepEqual(opened.bytes, makePng(5, 5, 9))
  const reinit = (imageCacheBytes) =>
    backend.initPixstoreBackend({ imageRootDir: join(dir.path, 'images'), databasePath: join(dir.path, 'store.sqlite'), imageCacheBytes })
  reinit(0)
  try {
    assert.equal(decodeWirePayload((await fetchPayload(base, updated)).payload).state, 6, 'no cache: the missing file is an internal error')
  } finally {
    reinit(64 * 1024 * 1024)
  }
  await backend.deleteImage(first.id)
  assert.equal(decodeWirePayload((await fetchPayload(base, updated)).payload).state, 2, 'a deleted image is not served from memory')
  for (const bad of [-1, 1.5, NaN, Infinity, '1024', null]) {
    assert.throws(() => reinit(bad), /imageCacheBytes must be an integer of at least 0/, String(bad))
  }
})

test('routes: OPTIONS 204, missing id 400, other methods and paths 404', async () => {
  const options = await fetch(`${base}/anything`, { method: 'OPTIONS' })
  assert.equal(options.status, 204)
  assert.equal(options.headers.get('access-control-allow-origin'), '*')
  for (const path of ['', '/']) {
    const response = await fetch(base + path)
    assert.equal(response.status, 400)
    assert.equal(response.headers.get('content-type'), 'text/plain')
    assert.equal(await response.text(), 'Missing image id')
  }
  for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
    const response = await fetch(`${base}/${record.id}`, { method })
    assert.equal(response.status, 404, method)
    assert.equal(await response.text(), 'Not found')
    assert.equal(response.headers.get('access-control-allow-origin'), '*')
  }
  for (const path of ['/', '/other', '/pixstore-imagex/abc']) {
    assert.equal((await fetch(`http://127.0.0.1:${port}${path}`)).status, 404, path)
  }
})

const EXTRA = ['cache-control', 'x-content-type-options']
const COMPARED = ['content-type', 'content-length', 'access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers', ...EXTRA]

test('HEAD answers like GET (status and headers, Content-Length included) without a body', async () => {
  const proof = { 'x-pixstore-proof': record.statelessProof }
  const requests = [
    { path: `/pixstore-image/${encodeURIComponent(record.id)}`, headers: { ...proof, 'x-pixstore-token': String(record.token) } },
    { path: `/pixstore-image/${encodeURIComponent(record.id)}`, headers: proof },
    { path: '/pixstore-image/' },
    { path: '/pixstore-image/%zz' },
    { path: '/pixstore-image/a..b' },
    { path: '/elsewhere' },
  ]
  for (const { path, headers } of requests) {
    const get = await fetch(`http://127.0.0.1:${port}${path}`, { headers })
    const getBody = Buffer.from(await get.arrayBuffer())
    const head = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'HEAD', headers })
    assert.equal(head.status, get.status, path)
    assert.equal((await head.arrayBuffer()).byteLength, 0, path)
    for (const name of COMPARED) assert.equal(head.headers.get(name), get.headers.get(name), `${path} ${name}`)
    assert.equal(Number(head.headers.get('content-length')), getBody.length, path)
  }
})

test('every answer with a body carries Cache-Control: no-store and nosniff; a preflight does not', async () => {
  const answers = [
    (await fetchPayload(base, record)).response,
    await fetch(`${base}/`),
    await fetch(`${base}/%zz`),
    await fetch(`${base}/${record.id}`, { method: 'POST' }),
    await fetch(`http://127.0.0.1:${port}/elsewhere`),
  ]
  for (const response of answers) {
    assert.equal(response.headers.get('cache-control'), 'no-store', response.url)
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff', response.url)
  }
  const preflight = await fetch(`${base}/${record.id}`, { method: 'OPTIONS' })
  assert.equal(preflight.status, 204)
  assert.equal(preflight.headers.get('cache-control'), null)
})

test('the health route is off by default, answers 200 ok to GET and HEAD once set, and goes away with null', async () => {
  assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 404)
  backend.initPixstoreBackend({ defaultEndpointHealthRoute: '/healthz' })
  try {
    const get = await fetch(`http://127.0.0.1:${port}/healthz?probe=lb`)
    assert.equal(get.status, 200)
    assert.equal(get.headers.get('content-type'), 'text/plain')
    assert.equal(get.headers.get('cache-control'), 'no-store')
    assert.equal(await get.text(), 'ok')
    const head = await fetch(`http://127.0.0.1:${port}/healthz`, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal(head.headers.get('content-length'), '2')
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`, { method: 'POST' })).status, 404)
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz/x`)).status, 404)
    await stillServes()
  } finally {
    backend.initPixstoreBackend({ defaultEndpointHealthRoute: null })
  }
  assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 404)
})

test('health and metrics routes that are not paths, or would hide image ids, are refused and change nothing', async () => {
  const refused = [
    [{ defaultEndpointHealthRoute: 'healthz' }, /defaultEndpointHealthRoute must be a path starting with '\/'/],
    [{ defaultEndpointMetricsRoute: '/metrics?x' }, /defaultEndpointMetricsRoute must be a path/],
    [{ defaultEndpointHealthRoute: 42 }, /defaultEndpointHealthRoute must be a path/],
    [{ defaultEndpointHealthRoute: '/pixstore-image' }, /must not be defaultEndpointRoute/],
    [{ defaultEndpointMetricsRoute: '/pixstore-image/metrics' }, /must not be defaultEndpointRoute/],
    [{ defaultEndpointHealthRoute: '/x', defaultEndpointMetricsRoute: '/x' }, /must differ/],
  ]
  for (const [config, message] of refused) {
    assert.throws(() => backend.initPixstoreBackend(config), message, JSON.stringify(config))
    assert.throws(() => backend.initPixstoreBackend(config), (error) => error.constructor === Error)
  }
  backend.initPixstoreBackend({ defaultEndpointMetricsRoute: '/metrics' })
  try {
    assert.throws(() => backend.initPixstoreBackend({ defaultEndpointRoute: '/metrics' }), /must not be defaultEndpointRoute/)
    await stillServes()
  } finally {
    backend.initPixstoreBackend({ defaultEndpointMetricsRoute: null })
  }
  assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 404)
})

test('the metrics route serves the Prometheus text format (GET and HEAD) once set', async () => {
  assert.equal((await fetch(`http://127.0.0.1:${port}/metrics`)).status, 404, 'off by default')
  backend.initPixstoreBackend({ defaultEndpointMetricsRoute: '/metrics' })
  try {
    await stillServes()
    const response = await fetch(`http://127.0.0.1:${port}/metrics`)
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('content-type'), backend.PIXSTORE_METRICS_CONTENT_TYPE)
    assert.equal(response.headers.get('cache-control'), 'no-store')
    const text = await response.text()
    const families = new Map(parsePrometheusTextFormat(text).map((family) => [family.name, family]))
    assert.equal(families.get('pixstore_backend_open').metrics[0].value, '1')
    assert.ok(Number(families.get('pixstore_saves_total').metrics[0].value) >= 1)
    const success = families.get('pixstore_served_total').metrics.find((metric) => metric.labels.state === 'Success')
    assert.ok(Number(success.value) >= 1)
    assert.equal(families.get('pixstore_serve_duration_seconds').type, 'HISTOGRAM')
    const head = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'HEAD' })
    assert.equal(head.status, 200)
    assert.equal((await head.arrayBuffer()).byteLength, 0)
    assert.ok(Number(head.headers.get('content-length')) > 1000)
  } finally {
    backend.initPixstoreBackend({ defaultEndpointMetricsRoute: null })
  }
})

test('re-init changes origin and route live, and moves or stops the endpoint', async () => {
  backend.initPixstoreBackend({ accessControlAllowOrigin: 'https://app.example', defaultEndpointRoute: '/img' })
  try {
    const response = await fetch(`http://127.0.0.1:${port}/img/${encodeURIComponent(record.id)}`, { headers: { 'x-pixstore-proof': record.statelessProof } })
    assert.equal(response.status, 200)
    assert.equal(response.headers.get('access-control-allow-origin'), 'https://app.example')
    assert.equal((await fetch(`${base}/${record.id}`)).status, 404)
  } finally {
    backend.initPixstoreBackend({ accessControlAllowOrigin: '*', defaultEndpointRoute: '/pixstore-image' })
  }
  backend.initPixstoreBackend({ defaultEndpointEnabled: false })
  await assert.rejects(fetch(`${base}/${record.id}`))
  const moved = await freePort()
  backend.initPixstoreBackend({ defaultEndpointEnabled: true, defaultEndpointListenPort: moved })
  try {
    const { response } = await fetchPayload(`http://127.0.0.1:${moved}/pixstore-image`, record)
    assert.equal(response.status, 200)
    await assert.rejects(fetch(`${base}/${record.id}`))
  } finally {
    backend.initPixstoreBackend({ defaultEndpointListenPort: port })
  }
  await stillServes()
})

test('a port already in use makes init throw and changes nothing', async () => {
  const { createServer } = await import('node:net')
  const blocker = createServer()
  const busy = await freePort()
  await new Promise((resolve) => blocker.listen(busy, '127.0.0.1', resolve))
  try {
    assert.throws(() => backend.initPixstoreBackend({ defaultEndpointListenPort: busy }), /cannot listen/)
    await stillServes()
  } finally {
    blocker.close()
  }
})

const hostile = [
  ['malformed percent-encoding', (id) => `GET /pixstore-image/%E0%A4%A HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['a lone percent sign', () => `GET /pixstore-image/abc% HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['invalid UTF-8 escapes', () => `GET /pixstore-image/%C0%AF HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['a .. id', () => `GET /pixstore-image/.. HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['an encoded traversal', () => `GET /pixstore-image/..%2F..%2Fetc%2Fpasswd HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['a raw slash in the id', () => `GET /pixstore-image/a/b HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['a backslash', () => `GET /pixstore-image/a%5Cb HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['a NUL byte', () => `GET /pixstore-image/abc%00 HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['several colons', () => `GET /pixstore-image/a%3Ab%3Ac HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['a 10 kB id', () => `GET /pixstore-image/${'a'.repeat(10_000)} HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['a 1 MB header section', () => `GET /pixstore-image/abc HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(1024 * 1024)}\r\n\r\n`],
  ['an unknown method', () => `BREW /pixstore-image/abc HTTP/1.1\r\nHost: x\r\n\r\n`],
  ['HTTP/1.0 without Host', () => `GET /nowhere HTTP/1.0\r\n\r\n`],
  ['garbage instead of a request line', () => `\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n`],
]

for (const [name, build] of hostile) {
  test(`hostile input: ${name} gets a 4xx and the server keeps serving`, async () => {
    const answer = await raw(build(record.id))
    const status = statusOf(answer)
    assert.ok(status >= 400 && status < 500, `expected a 4xx, got ${JSON.stringify(answer.slice(0, 80))}`)
    await stillServes()
  })
}

test('hostile input through the API side: the same ids never reach the disk', async () => {
  for (const id of ['..', 'a/b', 'a\\b', 'abc\0', 'a:b:c', 'a'.repeat(10_000)]) {
    const { response } = await fetchPayload(base, { ...record, id })
    assert.ok(response.status >= 400 && response.status < 500, JSON.stringify(id.slice(0, 20)))
  }
  await stillServes()
})

test('pipelined requests are answered in order', async () => {
  const path = `/pixstore-image/${encodeURIComponent(record.id)}`
  const request = (token) => `GET ${path} HTTP/1.1\r\nHost: x\r\nx-pixstore-proof: ${record.statelessProof}\r\nx-pixstore-token: ${token}\r\n\r\n`
  const answer = await raw(request(record.token) + request(0) + `GET /pixstore-image/ HTTP/1.1\r\nHost: x\r\n\r\n`)
  const statuses = [...answer.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => Number(m[1]))
  assert.deepEqual(statuses, [200, 200, 400])
})

test('a client that stops mid-request is cut off by the header timeout; others are served meanwhile', async () => {
  const started = Date.now()
  const slow = raw('GET /pixstore-image/abc HTTP/1.1\r\nHost: x\r\nX-Slow:', { quietMs: 15_000 })
  await stillServes()
  const answer = await slow
  const waited = Date.now() - started
  assert.ok(waited < 14_000, `the connection was closed by the server after ${waited} ms`)
  assert.ok(answer === '' || statusOf(answer) === 408, JSON.stringify(answer.slice(0, 60)))
})

test('thousands of concurrent connections are all answered', async () => {
  const count = 2000
  const path = `/pixstore-image/${encodeURIComponent(record.id)}`
  const request = `GET ${path} HTTP/1.1\r\nHost: x\r\nx-pixstore-proof: ${record.statelessProof}\r\nx-pixstore-token: ${record.token}\r\nConnection: close\r\n\r\n`
  const answers = await Promise.all(Array.from({ length: count }, () => raw(request, { quietMs: 10_000 })))
  assert.equal(answers.filter((answer) => statusOf(answer) === 200).length, count)
  await stillServes()
})

test('closePixstoreBackend ends keep-alive connections too', async () => {
  const socket = connect(port, '127.0.0.1')
  await new Promise((resolve) => socket.on('connect', resolve))
  const closed = new Promise((resolve) => socket.on('close', resolve))
  socket.write(`GET /pixstore-image/ HTTP/1.1\r\nHost: x\r\n\r\n`)
  await new Promise((resolve) => socket.once('data', resolve))
  await backend.closePixstoreBackend()
  await closed
  await assert.rejects(fetch(`${base}/${record.id}`))
})
