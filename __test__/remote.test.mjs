// Records in PostgreSQL, bytes in S3-compatible storage (SPEC "Several
// processes and hosts"), with real servers: PostgreSQL and SeaweedFS's S3
// server, started here on free loopback ports and stopped afterwards. Two
// instances (Node processes) share one database, one bucket and proofKeys.
// (The API, error-mode and concurrency suites run against the same servers
// in remote-suites.test.mjs.)
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { fork } from 'node:child_process'
import { join } from 'node:path'
import * as backend from 'pixstore-native/backend'
import { tempDir, freePort, makePng, openPayload, decodeWirePayload, fetchPayload, sha256 } from './helpers.mjs'
import { startPostgres, startSeaweed, pgRows, pgValue, s3Keys, objectKey } from './support/services.mjs'
import { browserAvailability, launchBrowser, servePage } from './browser/harness.mjs'

const dir = tempDir()
const PROOF_KEY = 'the proof key every instance of this test shares'
let pg
let s3
const prefix = 'remote-test/'
const grace = 400

const remoteConfig = (extra = {}) => ({
  imageRootDir: join(dir.path, 'unused-images'),
  databaseUrl: pg.url,
  objectStore: { url: `s3://${s3.bucket}/${prefix}`, endpoint: s3.endpoint, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, allowHttp: true },
  orphanGracePeriodMs: grace,
  proofKeys: [PROOF_KEY],
  statelessKeyWindowLength: -1,
  errorHandlingMode: 'throw',
  defaultEndpointListenHost: '127.0.0.1',
  ...extra,
})

before(async () => {
  pg = await startPostgres()
  s3 = await startSeaweed()
})
after(async () => {
  await backend.closePixstoreBackend()
  pg?.stop()
  await s3?.stop()
  dir.remove()
})

/** A forked instance (support/cluster-worker.mjs) with an RPC. */
class Instance {
  constructor() {
    this.child = fork(new URL('./support/cluster-worker.mjs', import.meta.url).pathname, { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
    this.seq = 0
    this.pending = new Map()
    this.acks = []
    this.ready = new Promise((resolve) => {
      this.child.on('message', (message) => {
        if (message.ready) return resolve()
        if (message.ack) return this.acks.push(message.ack)
        const { resolve: settle, reject } = this.pending.get(message.seq)
        this.pending.delete(message.seq)
        if (message.error !== undefined) reject(new Error(message.error))
        else settle(message.value)
      })
    })
    this.exited = new Promise((resolve) => this.child.once('exit', resolve))
  }

  async call(call, ...args) {
    await this.ready
    const seq = this.seq++
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject })
      this.child.send({ seq, call, args })
    })
  }

  async kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL')
    await this.exited
  }
}

async function eventually(check, what, timeout = 10_000) {
  const started = Date.now()
  for (;;) {
    const value = await check()
    if (value) return Date.now() - started
    if (Date.now() - started > timeout) assert.fail(`${what} within ${timeout} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Every record's object exists, and (after the sweeps) no other object does. */
function objectsMatchRows() {
  const expected = pgRows(pg.url).map((row) => objectKey(prefix, { id: row.id, meta: JSON.parse(row.meta) })).sort()
  const present = s3Keys(s3, prefix)
  return { expected, present, missing: expected.filter((key) => !present.includes(key)) }
}

test('init refuses an unreachable database, a missing bucket and wrong credentials, and changes nothing', async () => {
  backend.initPixstoreBackend(remoteConfig({ defaultEndpointEnabled: false }))
  const kept = await backend.saveImage(makePng(2, 2, 1))
  const closedPort = await freePort()
  for (const [config, message] of [
    [{ databaseUrl: `postgres://postgres@127.0.0.1:${closedPort}/pixstore` }, /^Cannot use the PostgreSQL database 127\.0\.0\.1:\d+\/pixstore: /],
    [{ databaseUrl: pg.url.replace(/\/pixstore$/, '/missing') }, /^Cannot use the PostgreSQL database .*missing/],
    [{ objectStore: { ...remoteConfig().objectStore, url: 's3://no-such-bucket' } }, /^Cannot use the object store s3:\/\/no-such-bucket\//],
    [{ objectStore: { ...remoteConfig().objectStore, secretAccessKey: 'wrong' } }, /^Cannot use the object store s3:\/\/pixstore\/remote-test\//],
    [{ databaseUrl: 'mysql://nope' }, /^databaseUrl must be a postgres:\/\/ URL/],
    [{ objectStore: { url: 'http://bucket' } }, /^objectStore.url must be s3:\/\/bucket/],
    [{ objectStore: { url: 's3://b', colour: 'red' } }, /^objectStore.colour is not an objectStore option$/],
    [{ objectStore: { ...remoteConfig().objectStore, allowHttp: false } }, /is plain HTTP; set objectStore.allowHttp: true/],
  ]) {
    const started = Date.now()
    assert.throws(() => backend.initPixstoreBackend(config), (err) => !(err.name === 'PixstoreError') && message.test(err.message))
    assert.ok(Date.now() - started < 30_000, 'a clear error in time')
  }
  assert.equal(backend.getImageRecord(kept.id).token, kept.token, 'the open store is still the one in use')
  assert.ok(await backend.saveImage(makePng(2, 2, 2)))
  await backend.closePixstoreBackend()
})

test('a row this instance cannot read (meta not JSON) fails the reads of its id only: the replica loads, and follows other changes after it', async () => {
  backend.initPixstoreBackend(remoteConfig({ defaultEndpointEnabled: false }))
  const bad = await backend.saveImage(makePng(2, 2, 30))
  const good = await backend.saveImage(makePng(2, 2, 31))
  await backend.closePixstoreBackend()
  pgValue(pg.url, `UPDATE image_records SET meta = 'not json' WHERE id = '${bad.id}'`)
  backend.initPixstoreBackend(remoteConfig({ defaultEndpointEnabled: false }))
  try {
    assert.throws(() => backend.getImageRecord(bad.id), (err) => err.code === 'PIXSTORE_INTERNAL' && /corrupt image meta/.test(err.message))
    assert.equal(backend.getImageRecord(good.id).token, good.token)
    // Another writer changes the bad row, then a good one, each with its notification.
    const notify = (sql) => pgValue(pg.url, `WITH changed AS (${sql} RETURNING id) SELECT pg_notify('pixstore_native_records', id) FROM changed`)
    notify(`UPDATE image_records SET token = token + 1 WHERE id = '${bad.id}'`)
    notify(`UPDATE image_records SET token = token + 1000 WHERE id = '${good.id}'`)
    await eventually(() => backend.getImageRecord(good.id)?.token === good.token + 1000, 'the replica follows the good row')
    assert.throws(() => backend.getImageRecord(bad.id), (err) => err.code === 'PIXSTORE_INTERNAL' && /corrupt image meta/.test(err.message))
  } finally {
    await backend.closePixstoreBackend()
    pgValue(pg.url, `DELETE FROM image_records WHERE id = '${bad.id}'`)
  }
})

test('two instances on one database and bucket: saved on A, served by B; updates and deletes seen across; old objects swept', async () => {
  const [portA, portB] = [await freePort(), await freePort()]
  const a = new Instance()
  const b = new Instance()
  try {
    await a.call('init', remoteConfig({ defaultEndpointListenPort: portA }))
    await b.call('init', remoteConfig({ defaultEndpointListenPort: portB }))
    const saved = await a.call('save', 1)
    // B's replica learns of A's write through LISTEN/NOTIFY.
    const lag = await eventually(async () => (await b.call('record', saved.id))?.token === saved.token, "B's replica sees A's save")
    const seenByB = await b.call('record', saved.id)
    for (const [port, record] of [[portB, saved], [portA, seenByB], [portB, seenByB]]) {
      const { response, payload } = await fetchPayload(`http://127.0.0.1:${port}/pixstore-image`, record, { token: null })
      assert.equal(response.status, 200)
      assert.deepEqual((await openPayload(payload, record)).bytes, makePng(3, 3, 1))
    }
    assert.ok(lag < 5000, `replica lag ${lag} ms`)

    // Concurrent updates from both instances with reads through both endpoints.
    let reading = true
    let reads = 0
    const readers = [portA, portB].map(async (port) => {
      while (reading) {
        const { payload } = await fetchPayload(`http://127.0.0.1:${port}/pixstore-image`, saved, { token: null })
        await openPayload(payload, saved) // throws unless the pair decrypts
        reads++
      }
    })
    const updates = await Promise.all(Array.from({ length: 40 }, (_, n) => (n % 2 ? a : b).call('update', saved.id, 100 + n)))
    reading = false
    await Promise.all(readers)
    const tokens = updates.map((record) => record.token)
    assert.equal(new Set(tokens).size, 40, 'tokens are distinct across instances')
    assert.ok(reads > 10, `${reads} reads`)
    const last = updates.reduce((newest, record) => (record.token > newest.token ? record : newest))
    await eventually(async () => (await a.call('record', saved.id)).token === last.token && (await b.call('record', saved.id)).token === last.token, 'both replicas see the last update')

    // Superseded objects are removed after the grace period: one object per record remains.
    await eventually(() => {
      const { expected, present } = objectsMatchRows()
      return present.length === expected.length && expected.every((key) => present.includes(key))
    }, 'superseded objects are swept')

    // A delete on B is seen by A.
    assert.equal(await b.call('remove', saved.id), true)
    assert.equal(await a.call('exists', saved.id), false)
    assert.equal(await a.call('recordAsync', saved.id), null)
    await eventually(async () => (await a.call('record', saved.id)) === null, "A's replica drops the deleted record")
    const { payload } = await fetchPayload(`http://127.0.0.1:${portA}/pixstore-image`, saved, { token: null })
    assert.equal(decodeWirePayload(payload).state, 2)
    await eventually(() => objectsMatchRows().present.length === objectsMatchRows().expected.length, "the deleted image's object is swept")
  } finally {
    await Promise.all([a.kill(), b.kill()])
  }
})

test('an instance killed mid-write loses no acknowledged write, leaves no row without its object, and its orphans disappear', async () => {
  const writer = new Instance()
  const reader = new Instance()
  try {
    await writer.call('init', remoteConfig({ defaultEndpointEnabled: false }))
    await reader.call('init', remoteConfig({ defaultEndpointEnabled: false }))
    const ids = []
    for (let n = 0; n < 4; n++) ids.push((await writer.call('save', 500 + n)).id)
    writer.call('writeForever', ids, 10_000).catch(() => {})
    await eventually(() => writer.acks.length >= 30, 'writes are acknowledged')
    await writer.kill()
    const latest = new Map()
    for (const ack of writer.acks) if (!latest.has(ack.id) || latest.get(ack.id).token < ack.token) latest.set(ack.id, ack)
    for (const ack of latest.values()) {
      const record = await reader.call('recordAsync', ack.id)
      assert.ok(record && record.token >= ack.token, `the acknowledged write ${ack.id}@${ack.token} is there`)
      const opened = await openPayload(Uint8Array.from(await reader.call('payload', ack.id, undefined, record.statelessProof)), record)
      if (opened.token === ack.token) assert.deepEqual(opened.bytes, makePng(3, 3, ack.seed))
    }
    assert.deepEqual(objectsMatchRows().missing, [], 'no row lacks its object')
    // Abandoned uploads and superseded objects go after the grace period, without anyone's help.
    await eventually(() => {
      const { expected, present } = objectsMatchRows()
      return present.length === expected.length && Number(pgValue(pg.url, 'SELECT count(*) FROM pixstore_native_object_intents')) === 0
    }, 'orphans disappear', 20_000)
  } finally {
    await Promise.all([writer.kill(), reader.kill()])
  }
})

test('pixstore/frontend in Chromium gets an image saved on one instance from the other', browserAvailability(), async () => {
  const port = await freePort()
  const server = new Instance()
  let browser
  let page
  try {
    backend.initPixstoreBackend(remoteConfig({ defaultEndpointEnabled: false }))
    const image = makePng(40, 30, 77)
    const saved = await backend.saveImage(image)
    await server.call('init', remoteConfig({ defaultEndpointListenPort: port }))
    page = await servePage(new URL('./browser/page-entry.mjs', import.meta.url).pathname)
    browser = await launchBrowser()
    const tab = await browser.context.newPage()
    await tab.goto(page.origin)
    await tab.evaluate((config) => window.pixstoreTest.init(config), {
      defaultEndpointConnectHost: '127.0.0.1', defaultEndpointConnectPort: port, defaultEndpointRoute: '/pixstore-image', frontendDbName: 'remote-test',
    })
    const result = await tab.evaluate((record) => window.pixstoreTest.imageDigest(record), saved)
    assert.deepEqual(result, { hash: sha256(image), type: 'image/png' })
  } finally {
    await browser?.close()
    await page?.close()
    await server.kill()
    await backend.closePixstoreBackend()
  }
})

test('an outage of the database or the bucket: calls fail clearly meanwhile and work again by themselves after', async () => {
  backend.initPixstoreBackend(remoteConfig({ defaultEndpointEnabled: false, errorHandlingMode: 'throw' }))
  const saved = await backend.saveImage(makePng(5, 5, 1))
  for (const [service, message] of [[pg, /database error/], [s3, /object storage error/]]) {
    await service.pause()
    await assert.rejects(backend.updateImage(saved.id, makePng(5, 5, 2)), (err) => err.code === 'PIXSTORE_INTERNAL' && message.test(err.message))
    // The replica still answers getImageRecord during the outage.
    assert.equal(backend.getImageRecord(saved.id).id, saved.id)
    await service.resume()
    let updated
    await eventually(async () => {
      updated = await backend.updateImage(saved.id, makePng(5, 5, 3)).catch(() => null)
      return updated
    }, 'writes work again', 20_000)
    const payload = await backend.customEndpointHelper(saved.id, undefined, updated.statelessProof)
    assert.deepEqual((await openPayload(payload, updated)).bytes, makePng(5, 5, 3))
  }
  assert.deepEqual(objectsMatchRows().missing, [], 'nothing was corrupted: every row has its object')
  await backend.closePixstoreBackend()
})

test('masterKeys on PostgreSQL + S3: the rows hold wrapped keys only, and images are served as before', async () => {
  const masterKeys = [Buffer.alloc(32, 7).toString('base64')]
  backend.initPixstoreBackend(remoteConfig({ defaultEndpointEnabled: false, masterKeys }))
  const saved = await backend.saveImage(makePng(6, 6, 6))
  const rows = pgRows(pg.url).filter((row) => row.id === saved.id)
  assert.equal(rows.length, 1)
  const stored = JSON.parse(rows[0].meta)
  assert.match(stored.key, /^pxn1:[0-9a-f]{8}:/)
  assert.notEqual(stored.key, saved.meta.key)
  assert.equal(stored.tag, saved.meta.tag)
  const payload = await backend.customEndpointHelper(saved.id, undefined, saved.statelessProof)
  assert.deepEqual((await openPayload(payload, saved)).bytes, makePng(6, 6, 6))
  assert.deepEqual((await backend.getImageRecordAsync(saved.id)).meta, saved.meta)
  await backend.closePixstoreBackend()
})
