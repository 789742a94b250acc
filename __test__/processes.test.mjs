// Several processes on one store (SPEC "Several processes and hosts"): any
// number open it at the same instant; under node:cluster every worker runs
// the default endpoint on one port and, with proofKeys, answers any worker's
// proofs; tokens strictly increase across processes; a worker killed mid-write
// loses no acknowledged write; keys rotate. (PM2: pm2.test.mjs.)
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import cluster from 'node:cluster'
import { spawn } from 'node:child_process'
import { request } from 'node:http'
import { join } from 'node:path'
import * as backend from 'pixstore-native/backend'
import { tempDir, freePort, makePng, openPayload, decodeWirePayload } from './helpers.mjs'

const dir = tempDir()
after(async () => {
  await backend.closePixstoreBackend()
  dir.remove()
})

const KEY_A = 'proof key A: shared by every process of the app'
const KEY_B = 'proof key B: the one that replaces key A later'

test('8 processes opening one fresh store at the same instant all open it and write (20 rounds)', async () => {
  const child = new URL('./support/open-child.mjs', import.meta.url).pathname
  const failures = []
  for (let round = 0; round < 20; round++) {
    const storeDir = join(dir.path, `open-${round}`)
    const startAt = Date.now() + 700
    const outputs = await Promise.all(Array.from({ length: 8 }, () => new Promise((resolve) => {
      const process_ = spawn(process.execPath, [child, storeDir, String(startAt)])
      let output = ''
      process_.stdout.on('data', (chunk) => (output += chunk))
      process_.stderr.on('data', (chunk) => (output += chunk))
      process_.on('exit', () => resolve(output))
    })))
    for (const output of outputs) if (!output.startsWith('{"id"')) failures.push(`round ${round}: ${output}`)
  }
  assert.deepEqual(failures, [])
})

/** GET through a new connection each time, so Linux spreads them over the workers. */
function fetchFresh(port, record) {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1', port, agent: false, path: `/pixstore-image/${encodeURIComponent(record.id)}`,
      headers: { 'x-pixstore-proof': record.statelessProof },
    }, (res) => {
      const chunks = []
      res.on('data', (chunk) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode, payload: new Uint8Array(Buffer.concat(chunks)) }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** The workers of a cluster running support/cluster-worker.mjs, with an RPC per worker. */
class Workers {
  constructor(count) {
    cluster.setupPrimary({ exec: new URL('./support/cluster-worker.mjs', import.meta.url).pathname, silent: true })
    this.seq = 0
    this.pending = new Map()
    this.acks = []
    this.stderr = []
    this.list = []
    for (let n = 0; n < count; n++) this.add()
  }

  add() {
    const worker = cluster.fork()
    worker.process.stderr.on('data', (chunk) => this.stderr.push(chunk.toString()))
    worker.ready = new Promise((resolve) => {
      worker.on('message', (message) => {
        if (message.ready) return resolve()
        if (message.ack) return this.acks.push(message.ack)
        const { resolve: settle, reject } = this.pending.get(message.seq)
        this.pending.delete(message.seq)
        if (message.error !== undefined) reject(new Error(message.error))
        else settle(message.value)
      })
    })
    this.list.push(worker)
    return worker
  }

  async call(worker, call, ...args) {
    await worker.ready
    const seq = this.seq++
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject })
      worker.send({ seq, call, args })
    })
  }

  all(call, ...args) {
    return Promise.all(this.list.map((worker) => this.call(worker, call, ...args)))
  }

  async stop() {
    await Promise.all(this.list.filter((worker) => !worker.isDead()).map((worker) => new Promise((resolve) => {
      worker.once('exit', resolve)
      worker.kill('SIGKILL')
    })))
  }
}

test('node:cluster, 4 workers on one port and one store: any worker answers any worker\'s proof, tokens increase, a killed worker loses nothing', async () => {
  const port = await freePort()
  const config = {
    imageRootDir: join(dir.path, 'cluster', 'images'),
    databasePath: join(dir.path, 'cluster', 'store.sqlite'),
    defaultEndpointListenHost: '127.0.0.1',
    defaultEndpointListenPort: port,
    statelessKeyWindowLength: -1,
    errorHandlingMode: 'throw',
  }
  const workers = new Workers(4)
  try {
    // Without proofKeys (pixstore's per-process proofs): every worker starts
    // on the shared port, warns once, and another worker's proofs fail.
    await workers.all('init', config)
    const saved = await Promise.all(workers.list.map((worker, n) => workers.call(worker, 'save', n)))
    const unshared = await Promise.all(Array.from({ length: 40 }, (_, n) => fetchFresh(port, saved[n % 4])))
    const states = unshared.map(({ payload }) => decodeWirePayload(payload).state)
    assert.ok(states.includes(5), `some requests reached a worker whose proofs differ (states ${states})`)
    assert.equal(workers.stderr.join('').match(/proofKeys is not set/g)?.length, 4, 'one warning per worker')

    // With proofKeys: 200 requests with proofs issued by mixed workers all decrypt.
    await workers.all('init', { proofKeys: [KEY_A] })
    const records = await Promise.all(Array.from({ length: 20 }, (_, n) => workers.call(workers.list[n % 4], 'record', saved[n % 4].id)))
    const answers = await Promise.all(Array.from({ length: 200 }, (_, n) => fetchFresh(port, records[n % 20])))
    for (const [n, { status, payload }] of answers.entries()) {
      assert.equal(status, 200)
      const opened = await openPayload(payload, records[n % 20])
      assert.deepEqual(opened.bytes, makePng(3, 3, n % 20 % 4))
    }

    // Concurrent updates of one id from every worker while the primary reads
    // through the port: every read decrypts, and tokens strictly increase.
    const id = saved[0].id
    const proofRecord = records[0]
    let reading = true
    let lastToken = 0
    let reads = 0
    const reader = (async () => {
      while (reading) {
        const { payload } = await fetchFresh(port, proofRecord)
        const opened = await openPayload(payload, proofRecord)
        assert.ok(opened.token >= lastToken, 'a later read never sees an older version')
        lastToken = opened.token
        reads++
      }
    })()
    const updates = []
    // Rounds of 20 concurrent updates (5 per worker) until enough reads ran alongside.
    for (let round = 0; round < 4 || (reads < 30 && round < 100); round++) {
      updates.push(...(await Promise.all(Array.from({ length: 20 }, (_, n) => workers.call(workers.list[n % 4], 'update', id, 1000 + round * 20 + n)))))
    }
    reading = false
    await reader
    const tokens = updates.map((record) => record.token)
    assert.equal(new Set(tokens).size, tokens.length, 'no two writes of one id share a token')
    assert.ok(reads >= 30, `${reads} reads ran during the updates`)

    // SIGKILL of a worker mid-write: the others keep serving, its replacement
    // recovers the store, and no acknowledged write is lost.
    const ids = saved.map((record) => record.id)
    for (const [n, worker] of workers.list.entries()) workers.call(worker, 'writeForever', ids, 10_000 * (n + 1)).catch(() => {})
    await new Promise((resolve) => setTimeout(resolve, 400))
    const victim = workers.list[1]
    await new Promise((resolve) => {
      victim.once('exit', resolve)
      victim.process.kill('SIGKILL')
    })
    const survivors = workers.list.filter((worker) => worker !== victim)
    for (const [n, record] of records.slice(0, 8).entries()) {
      const { status, payload } = await fetchFresh(port, records[n])
      assert.equal(status, 200, `served while a worker is dead (${record.id})`)
      assert.equal(decodeWirePayload(payload).state, 1)
    }
    const replacement = workers.add()
    await workers.call(replacement, 'init', { ...config, proofKeys: [KEY_A] })
    await Promise.all(survivors.map((worker) => new Promise((resolve) => {
      worker.once('exit', resolve)
      worker.process.kill('SIGKILL')
    })))
    const latest = new Map()
    for (const ack of workers.acks) if (!latest.has(ack.id) || latest.get(ack.id).token < ack.token) latest.set(ack.id, ack)
    assert.ok(latest.size >= 4 && workers.acks.length > 20, `${workers.acks.length} writes were acknowledged`)
    for (const ack of latest.values()) {
      const record = await workers.call(replacement, 'record', ack.id)
      assert.ok(record && record.token >= ack.token, `the acknowledged write ${ack.id}@${ack.token} is there`)
      const { payload } = await fetchFresh(port, record)
      const opened = await openPayload(payload, record)
      // A killed worker's unfinished write may be completed meanwhile (a newer version): compare what was served.
      if (opened.token === ack.token) assert.deepEqual(opened.bytes, makePng(3, 3, ack.seed))
    }
  } finally {
    await workers.stop()
  }
})

test('proofKeys rotate: [A] → [B, A] → [B], made with the first key, accepted under any listed key', async () => {
  backend.initPixstoreBackend({
    imageRootDir: join(dir.path, 'rotation', 'images'),
    databasePath: join(dir.path, 'rotation', 'store.sqlite'),
    defaultEndpointEnabled: false,
    statelessKeyWindowLength: -1,
    errorHandlingMode: 'throw',
    proofKeys: [KEY_A],
  })
  const { id } = await backend.saveImage(makePng(2, 2, 1))
  const state = async (proof) => decodeWirePayload(await backend.customEndpointHelper(id, undefined, proof)).state
  const underA = backend.getImageRecord(id).statelessProof
  backend.initPixstoreBackend({ proofKeys: [KEY_B, KEY_A] })
  const underB = backend.getImageRecord(id).statelessProof
  assert.notEqual(underB, underA, 'the first key makes proofs')
  assert.equal(underB.length, underA.length)
  assert.deepEqual([await state(underA), await state(underB)], [1, 1], '[B, A] accepts both')
  backend.initPixstoreBackend({ proofKeys: [KEY_B] })
  assert.deepEqual([await state(underA), await state(underB)], [5, 1], '[B] refuses A')
  backend.initPixstoreBackend({ proofKeys: [KEY_A] })
  assert.deepEqual([await state(underA), await state(underB)], [1, 5], '[A] refuses B')
  backend.initPixstoreBackend({ proofKeys: null })
  assert.deepEqual([await state(underA), await state(underB)], [5, 5], "pixstore's own proofs know no key")
  const salted = backend.getImageRecord(id).statelessProof
  assert.equal(await state(salted), 1)
})

test('proofKeys are validated with clear messages', () => {
  for (const [value, message] of [
    [[], /^proofKeys must be a non-empty array of secret strings of at least 32 characters/],
    ['a single string', /^proofKeys must be a non-empty array/],
    [[''], /^proofKeys\[0\] must be at least 32 characters long \(it has 0\)$/],
    [[KEY_A, 'short'], /^proofKeys\[1\] must be at least 32 characters long \(it has 5\)$/],
    [[KEY_A, 42], /^proofKeys\[1\] must be a string$/],
    [[NaN], /^proofKeys\[0\] must be a string$/],
  ]) {
    assert.throws(() => backend.initPixstoreBackend({ proofKeys: value }), { message })
  }
})
