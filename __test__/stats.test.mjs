// getPixstoreStats(), getPixstoreMetrics() and the request log: the numbers
// move as saves, updates, deletes and requests happen (exact deltas), the
// gauges return to zero, the Prometheus exposition parses and says what the
// stats say, and the request log sees every request of the default endpoint.
// The tests run in order, on one backend of their own.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import parsePrometheusTextFormat from 'parse-prometheus-text-format'
import * as backend from 'pixstore-native/backend'
import { tempDir, freePort, makePng, fixturesDir, fetchPayload } from './helpers.mjs'

const dir = tempDir()
let port
let base
const store = () => ({
  imageRootDir: join(dir.path, 'images'),
  databasePath: join(dir.path, 'store.sqlite'),
  defaultEndpointListenHost: '127.0.0.1',
  defaultEndpointListenPort: port,
  errorHandlingMode: 'throw',
  maxImageBytes: 1024 * 1024,
})

after(async () => {
  backend.setPixstoreRequestLogger(undefined)
  await backend.closePixstoreBackend()
  dir.remove()
})

const STATES = ['Success', 'Updated', 'NotFound', 'MissingID', 'MissingProof', 'InvalidProof', 'InternalError']
const stats = () => backend.getPixstoreStats()

/** `after - before` for every number of two stats objects (nested), for exact assertions. */
function delta(after, before) {
  if (typeof after === 'number') return after - before
  if (Array.isArray(after)) return after.map((item, index) => delta(item, before[index]))
  if (after !== null && typeof after === 'object') {
    return Object.fromEntries(Object.entries(after).map(([key, value]) => [key, delta(value, before[key])]))
  }
  return after
}

/** Waits until `check()` is true (polling), or fails with `what`. */
async function eventually(check, what, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

test('before init: every number is zero, the backend is not open, and the exposition says so', () => {
  const before = stats()
  assert.equal(before.backendOpen, false)
  for (const name of ['saves', 'updates', 'deletes', 'writesInFlight', 'writerQueueDepth', 'receivedBytes', 'servedBytes', 'requestLogDropped']) {
    assert.equal(before[name], 0, name)
  }
  assert.deepEqual(before.writeFailures, { save: 0, update: 0, delete: 0 })
  assert.deepEqual(Object.keys(before.served), [...STATES].sort())
  assert.ok(Object.values(before.served).every((count) => count === 0))
  assert.deepEqual(before.endpoint, { openConnections: 0, responses: { 200: 0, 204: 0, 400: 0, 404: 0, 503: 0 } })
  for (const histogram of [before.serveDuration, before.writeDuration.save, before.writeDuration.update, before.writeDuration.delete]) {
    assert.equal(histogram.count, 0)
    assert.equal(histogram.sum, 0)
    assert.equal(histogram.buckets.length, 17)
    assert.deepEqual(histogram.buckets.at(-1), { le: Infinity, count: 0 })
    assert.equal(histogram.buckets[0].le, 0.0001)
    assert.equal(histogram.buckets[15].le, 10)
  }
  assert.match(backend.getPixstoreMetrics(), /^pixstore_backend_open 0$/m)
})

test('init opens the backend; the counters outlive close and re-init', async () => {
  port = await freePort()
  base = `http://127.0.0.1:${port}/pixstore-image`
  backend.initPixstoreBackend(store())
  assert.equal(stats().backendOpen, true)
  await backend.saveImage(makePng(1, 1, 1))
  await backend.closePixstoreBackend()
  const closed = stats()
  assert.equal(closed.backendOpen, false)
  assert.equal(closed.saves, 1)
  backend.initPixstoreBackend(store())
  assert.equal(stats().saves, 1)
  assert.equal(stats().backendOpen, true)
})

test('saves, updates and deletes are counted with their bytes and durations; failures apart', async () => {
  const first = makePng(4, 4, 1)
  const second = makePng(5, 3, 2)
  const fixture = readFileSync(join(fixturesDir, 'tiny.png'))
  const before = stats()
  const record = await backend.saveImage(first, 'stats')
  await backend.saveImageFromFile(join(fixturesDir, 'tiny.png'))
  await backend.updateImage(record.id, second)
  await backend.updateImageFromFile(record.id, join(fixturesDir, 'tiny.png'))
  assert.equal(await backend.deleteImage(record.id), true)
  assert.equal(await backend.deleteImage('nothing0here'), false)
  assert.equal(await backend.deleteImage('../not-an-id'), false)
  // Failures: not an image, too large (refused before it is copied), a missing file, no such record.
  await assert.rejects(backend.saveImage(Buffer.from('not an image')), /Invalid image file/)
  await assert.rejects(backend.saveImage(Buffer.alloc(2 * 1024 * 1024)), /too large/)
  await assert.rejects(backend.saveImageFromFile(join(dir.path, 'missing.png')), /not found/)
  await assert.rejects(backend.updateImage('nothing0here', first), /Image not found/)
  // Refused by the JS layer before the backend sees the call: not counted.
  await assert.rejects(backend.saveImage('not a buffer'), /expected a Buffer/)
  const moved = delta(stats(), before)
  assert.equal(moved.saves, 2)
  assert.equal(moved.updates, 2)
  assert.equal(moved.deletes, 3)
  assert.deepEqual(moved.writeFailures, { save: 3, update: 1, delete: 0 })
  assert.equal(moved.receivedBytes, first.length + fixture.length + second.length + fixture.length)
  assert.equal(moved.writeDuration.save.count, 2)
  assert.equal(moved.writeDuration.update.count, 2)
  assert.equal(moved.writeDuration.delete.count, 3)
  assert.ok(moved.writeDuration.save.sum > 0)
  const after = stats()
  assert.equal(after.writesInFlight, 0)
  assert.equal(after.writerQueueDepth, 0)
  for (const histogram of Object.values(after.writeDuration)) {
    const counts = histogram.buckets.map((bucket) => bucket.count)
    assert.deepEqual(counts, [...counts].sort((a, b) => a - b), 'cumulative buckets')
    assert.equal(counts.at(-1), histogram.count)
  }
  // Nothing was served meanwhile.
  assert.equal(moved.servedBytes, 0)
  assert.equal(moved.serveDuration.count, 0)
})

test('payloads are counted by wire state with their bytes, from the endpoint and from customEndpointHelper', async () => {
  const record = await backend.saveImage(makePng(6, 6, 3))
  const gone = await backend.saveImage(makePng(1, 1, 4))
  await backend.deleteImage(gone.id)
  const before = stats()
  let bytes = 0
  const requests = [
    [{}, record], // Success
    [{ token: 1 }, record], // Updated
    [{ token: null }, record], // Updated
    [{}, gone], // NotFound
    [{ proof: '' }, record], // MissingProof
    [{ proof: 'AAAAAAAAAAA=' }, record], // InvalidProof
  ]
  for (const [options, target] of requests) {
    const { response, payload } = await fetchPayload(base, target, options)
    assert.equal(response.status, 200)
    bytes += payload.length
  }
  // HEAD builds the payload too (for its Content-Length).
  const head = await fetch(`${base}/${encodeURIComponent(record.id)}`, { method: 'HEAD', headers: { 'x-pixstore-proof': record.statelessProof } })
  bytes += Number(head.headers.get('content-length'))
  // Answers that are not payloads are not served payloads.
  assert.equal((await fetch(`${base}/`)).status, 400)
  assert.equal((await fetch(`${base}/UPPER`)).status, 400)

  backend.initPixstoreBackend({ defaultEndpointEnabled: false })
  try {
    for (const [id, proof] of [[record.id, record.statelessProof], ['', 'x'], [record.id, '']]) {
      bytes += (await backend.customEndpointHelper(id, record.token, proof)).length
    }
  } finally {
    backend.initPixstoreBackend({ defaultEndpointEnabled: true })
  }
  const moved = delta(stats(), before)
  assert.deepEqual(moved.served, { Success: 2, Updated: 3, NotFound: 1, MissingID: 1, MissingProof: 2, InvalidProof: 1, InternalError: 0 })
  assert.equal(moved.servedBytes, bytes)
  assert.equal(moved.serveDuration.count, 10)
  assert.ok(moved.serveDuration.sum > 0)
})

test('the endpoint counts its responses by status and its open connections', async () => {
  const before = stats()
  assert.equal((await fetch(`${base}/x`, { method: 'OPTIONS' })).status, 204)
  assert.equal((await fetch(`${base}/`)).status, 400)
  assert.equal((await fetch(`http://127.0.0.1:${port}/nowhere`)).status, 404)
  assert.equal((await fetch(`${base}/x`, { method: 'PUT' })).status, 404)
  backend.initPixstoreBackend({ defaultEndpointHealthRoute: '/healthz' })
  try {
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200)
  } finally {
    backend.initPixstoreBackend({ defaultEndpointHealthRoute: null })
  }
  const moved = delta(stats(), before)
  assert.deepEqual(moved.endpoint.responses, { 200: 1, 204: 1, 400: 1, 404: 2, 503: 0 })

  // Keep-alive connections that have been answered once stay open until the client closes them.
  const open = stats().endpoint.openConnections
  const sockets = await Promise.all(Array.from({ length: 5 }, async () => {
    const socket = connect(port, '127.0.0.1')
    await new Promise((resolve) => socket.on('connect', resolve))
    socket.write('GET /pixstore-image/ HTTP/1.1\r\nHost: x\r\n\r\n')
    await new Promise((resolve) => socket.once('data', resolve))
    return socket
  }))
  await eventually(() => stats().endpoint.openConnections === open + 5, 'five open connections')
  for (const socket of sockets) socket.destroy()
  await eventually(() => stats().endpoint.openConnections === open, 'the connections to close')
})

test('writes in flight and the writer queue rise during a burst of saves and return to zero', async () => {
  backend.initPixstoreBackend({ durability: 'fsync' })
  try {
    const images = Array.from({ length: 100 }, (_, index) => makePng(2, 2, index + 10))
    let maxInFlight = 0
    let maxQueue = 0
    // A sample needs to fall while jobs wait for the writer: a few bursts make it certain enough.
    for (let burst = 0; burst < 8 && maxQueue === 0; burst++) {
      let running = true
      const sampler = (async () => {
        while (running) {
          const now = stats()
          maxInFlight = Math.max(maxInFlight, now.writesInFlight)
          maxQueue = Math.max(maxQueue, now.writerQueueDepth)
          await new Promise((resolve) => setImmediate(resolve))
        }
      })()
      await Promise.all(images.map((image) => backend.saveImage(image)))
      running = false
      await sampler
    }
    assert.ok(maxInFlight > 1, `writes in flight seen: ${maxInFlight}`)
    assert.ok(maxQueue > 0, `writer queue depth seen: ${maxQueue}`)
    assert.ok(maxQueue <= 100)
    const now = stats()
    assert.equal(now.writesInFlight, 0)
    assert.equal(now.writerQueueDepth, 0)
  } finally {
    backend.initPixstoreBackend({ durability: 'process' })
  }
})

/** The families of a Prometheus text, by name (parse-prometheus-text-format, prom2json's shape). */
function families(text) {
  return new Map(parsePrometheusTextFormat(text).map((family) => [family.name, family]))
}

test('the Prometheus exposition parses, follows the naming conventions and says what getPixstoreStats says', async () => {
  backend.initPixstoreBackend({ defaultEndpointMetricsRoute: '/metrics' })
  try {
    const now = stats()
    const text = backend.getPixstoreMetrics()
    const fromRoute = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
    // The route is the same text, a request later (which the route's own 200 moves).
    assert.equal(fromRoute.replace(/^pixstore_endpoint_responses_total\{code="200"\} \d+$/m, ''), text.replace(/^pixstore_endpoint_responses_total\{code="200"\} \d+$/m, ''))

    // Text format rules the parser is lenient about: one HELP and TYPE per family, before its samples.
    const announced = []
    for (const line of text.trimEnd().split('\n')) {
      const type = /^# TYPE (\S+) (counter|gauge|histogram)$/.exec(line)
      if (type) announced.push(type[1])
      else if (!line.startsWith('# HELP ')) {
        const sample = /^([a-z_]+)(\{[a-z]+="[^"]*"(?:,[a-z]+="[^"]*")*\})? (\S+)$/.exec(line)
        assert.ok(sample, line)
        assert.ok(Number.isFinite(Number(sample[3])), line)
        assert.ok(sample[1].startsWith(announced.at(-1)), `${line} follows # TYPE ${announced.at(-1)}`)
      }
    }
    assert.equal(new Set(announced).size, announced.length)

    const parsed = families(text)
    assert.deepEqual([...parsed.keys()], announced)
    for (const [name, family] of parsed) {
      assert.match(name, /^pixstore_[a-z_]+$/)
      assert.ok(family.help.length > 10, name)
      if (family.type === 'COUNTER') assert.match(name, /_total$/)
      if (family.type === 'HISTOGRAM') assert.match(name, /_seconds$/)
      if (family.type === 'GAUGE') assert.doesNotMatch(name, /_total$/)
    }
    const value = (name, labels = {}) => {
      const metric = parsed.get(name).metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
      return Number(metric.value)
    }
    assert.equal(value('pixstore_backend_open'), 1)
    assert.equal(value('pixstore_saves_total'), now.saves)
    assert.equal(value('pixstore_updates_total'), now.updates)
    assert.equal(value('pixstore_deletes_total'), now.deletes)
    for (const operation of ['save', 'update', 'delete']) {
      assert.equal(value('pixstore_write_failures_total', { operation }), now.writeFailures[operation])
    }
    assert.equal(value('pixstore_writes_in_flight'), now.writesInFlight)
    assert.equal(value('pixstore_writer_queue_depth'), now.writerQueueDepth)
    assert.equal(value('pixstore_received_bytes_total'), now.receivedBytes)
    assert.equal(value('pixstore_served_bytes_total'), now.servedBytes)
    for (const state of STATES) assert.equal(value('pixstore_served_total', { state }), now.served[state], state)
    for (const code of ['200', '204', '400', '404', '503']) {
      assert.equal(value('pixstore_endpoint_responses_total', { code }), now.endpoint.responses[code], code)
    }
    assert.equal(value('pixstore_endpoint_open_connections'), now.endpoint.openConnections)
    assert.equal(value('pixstore_request_log_dropped_total'), now.requestLogDropped)

    // parse-prometheus-text-format merges the series of a labelled histogram into one and
    // drops their _sum and _count (prom2json's shape has no labels there): each operation's
    // series are parsed alone, without the label.
    const writeHistogram = (operation) => {
      const label = `operation="${operation}"`
      const lines = text.split('\n').filter((line) => line.startsWith('# TYPE pixstore_write_duration_seconds ') || line.includes(label))
      const series = lines.filter((line) => line.startsWith('pixstore_write_duration_seconds'))
      assert.equal(series.length, 19, `17 buckets, a sum and a count for ${operation}`)
      const unlabelled = lines.map((line) => line.replace(`{${label},`, '{').replace(`{${label}}`, ''))
      return families(unlabelled.join('\n') + '\n').get('pixstore_write_duration_seconds').metrics[0]
    }
    const histograms = [
      [parsed.get('pixstore_serve_duration_seconds').metrics[0], now.serveDuration],
      ...['save', 'update', 'delete'].map((operation) => [writeHistogram(operation), now.writeDuration[operation]]),
    ]
    for (const [metric, histogram] of histograms) {
      assert.equal(Number(metric.count), histogram.count)
      assert.ok(Math.abs(Number(metric.sum) - histogram.sum) < 1e-9)
      // (An object: integer-like keys such as "1" come first; order by bound.)
      const buckets = Object.entries(metric.buckets)
        .map(([le, count]) => [le === '+Inf' ? Infinity : Number(le), Number(count)])
        .sort(([a], [b]) => a - b)
      assert.deepEqual(buckets, histogram.buckets.map(({ le, count }) => [le, count]))
    }
    assert.ok(now.serveDuration.count > 0 && now.writeDuration.save.count > 0, 'the histograms hold observations')
  } finally {
    backend.initPixstoreBackend({ defaultEndpointMetricsRoute: null })
  }
})

test('the request log gets every request of the default endpoint with its outcome', async () => {
  const record = await backend.saveImage(makePng(3, 3, 9), 'logged')
  const entries = []
  backend.setPixstoreRequestLogger((entry) => entries.push(entry))
  backend.initPixstoreBackend({ defaultEndpointHealthRoute: '/healthz' })
  try {
    const { payload } = await fetchPayload(base, record)
    await fetch(`${base}/${encodeURIComponent(record.id)}`, { method: 'HEAD', headers: { 'x-pixstore-proof': 'AAAAAAAAAAA=' } })
    await fetch(`${base}/`)
    await fetch(`http://127.0.0.1:${port}/nowhere`)
    await fetch(`${base}/x`, { method: 'OPTIONS' })
    await fetch(`http://127.0.0.1:${port}/healthz`)
    await eventually(() => entries.length === 6, 'six entries')
    const expected = [
      { method: 'GET', route: '/pixstore-image', imageId: record.id, state: 'Success', status: 200, bytes: payload.length },
      { method: 'HEAD', route: '/pixstore-image', imageId: record.id, state: 'InvalidProof', status: 200, bytes: 0 },
      { method: 'GET', route: '/pixstore-image', imageId: null, state: null, status: 400, bytes: 'Missing image id'.length },
      { method: 'GET', route: null, imageId: null, state: null, status: 404, bytes: 'Not found'.length },
      { method: 'OPTIONS', route: '/pixstore-image', imageId: null, state: null, status: 204, bytes: 0 },
      { method: 'GET', route: '/healthz', imageId: null, state: null, status: 200, bytes: 2 },
    ]
    for (const [index, entry] of entries.entries()) {
      const { source, durationMs, remoteAddress, ...rest } = entry
      assert.deepEqual(rest, expected[index], `entry ${index}`)
      assert.equal(source, 'endpoint')
      assert.equal(remoteAddress, '127.0.0.1')
      assert.ok(typeof durationMs === 'number' && durationMs >= 0 && durationMs < 5000, `durationMs ${durationMs}`)
    }
  } finally {
    backend.setPixstoreRequestLogger(undefined)
    backend.initPixstoreBackend({ defaultEndpointHealthRoute: null })
  }
  await fetch(`${base}/`)
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.equal(entries.length, 6, 'nothing is logged once the logger is removed')
  assert.throws(() => backend.setPixstoreRequestLogger('console.log'), TypeError)
})

test('a logger that throws or rejects is reported with console.error; the endpoint keeps serving', async (t) => {
  const reported = []
  t.mock.method(console, 'error', (...args) => reported.push(args))
  let calls = 0
  backend.setPixstoreRequestLogger(() => {
    calls++
    throw new Error('logger crashed')
  })
  try {
    await fetch(`${base}/`)
    await eventually(() => reported.length === 1, 'the throw to be reported')
    assert.match(String(reported[0][1]), /logger crashed/)
    backend.setPixstoreRequestLogger(async () => {
      calls++
      throw new Error('async logger crashed')
    })
    await fetch(`${base}/`)
    await eventually(() => reported.length === 2, 'the rejection to be reported')
    assert.match(String(reported[1][1]), /async logger crashed/)
    assert.equal(calls, 2)
    assert.equal((await fetch(`${base}/`)).status, 400)
  } finally {
    backend.setPixstoreRequestLogger(undefined)
  }
})

test('a process with a request logger and the default endpoint running still exits on its own', async () => {
  const childPort = await freePort()
  const program = `
    const { initPixstoreBackend, setPixstoreRequestLogger } = require('pixstore-native/backend')
    const { mkdtempSync, rmSync } = require('node:fs')
    const path = require('node:path')
    const dir = mkdtempSync(path.join(require('node:os').tmpdir(), 'pxn-log-exit-'))
    setPixstoreRequestLogger((entry) => process.stdout.write(entry.method + ' ' + entry.status))
    initPixstoreBackend({ imageRootDir: dir + '/img', databasePath: dir + '/db.sqlite', defaultEndpointListenHost: '127.0.0.1', defaultEndpointListenPort: ${childPort} })
    fetch('http://127.0.0.1:${childPort}/pixstore-image/').then((response) => response.text()).then(() => {
      setTimeout(() => rmSync(dir, { recursive: true, force: true }), 100)
    })
  `
  const out = execFileSync(process.execPath, ['-e', program], { timeout: 20_000, cwd: new URL('.', import.meta.url) })
  assert.equal(out.toString(), 'GET 400')
})
