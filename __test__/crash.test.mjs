// Crash injection: a child process writes at random and is killed with
// SIGKILL at a random moment, many times over one store. After each kill a
// fresh init (this process) must find every acknowledged write, every record
// decrypting with its file, no file without a record, and no temporary files.
// PIXSTORE_CRASH_ROUNDS sets the number of rounds (default 50).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFileSync, existsSync } from 'node:fs'
import { join } from 'node:path'
import * as backend from 'pixstore-native/backend'
import { tempDir, listFiles, openPayload, sha256, decodeWirePayload } from './helpers.mjs'

const rounds = Number(process.env.PIXSTORE_CRASH_ROUNDS || 50)
const worker = new URL('./support/crash-worker.mjs', import.meta.url).pathname

/** Deterministic delays: a seeded xorshift. */
let seed = 0x5eed
const random = () => {
  seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0
  return seed / 2 ** 32
}

function runAndKill(storeDir, ackPath, round, durability, slotIds) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [worker, storeDir, ackPath, String(round * 7919 + 1), durability], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, PIXSTORE_SLOT_IDS: JSON.stringify(slotIds) },
    })
    let killed = false
    child.stdout.once('data', () => {
      setTimeout(() => {
        killed = true
        child.kill('SIGKILL')
      }, 20 + Math.floor(random() * 250))
    })
    child.on('exit', (code, signal) => (killed && signal === 'SIGKILL' ? resolve() : reject(new Error(`worker exited early: ${code} ${signal}`))))
  })
}

/**
 * The last acknowledged operation of every id, with the operations begun on
 * it after that (unacknowledged: each may or may not have happened).
 */
function lastAcks(ackPath) {
  if (!existsSync(ackPath)) return new Map()
  const last = new Map()
  for (const line of readFileSync(ackPath, 'utf8').split('\n')) {
    if (!line) continue
    const entry = JSON.parse(line)
    if (entry.begin) last.get(entry.id)?.pending.push(entry.op)
    else last.set(entry.id, { ...entry, pending: [] })
  }
  return last
}

async function checkStore(storeDir, ackPath, durability) {
  backend.initPixstoreBackend({
    imageRootDir: join(storeDir, 'images'),
    databasePath: join(storeDir, 'store.sqlite'),
    defaultEndpointEnabled: false,
    errorHandlingMode: 'throw',
    statelessKeyWindowLength: -1,
    durability,
  })
  try {
    const acks = lastAcks(ackPath)
    for (const [id, entry] of acks) {
      const record = backend.getImageRecord(id)
      if (record === null && entry.pending.includes('delete')) continue // an unacknowledged delete went through
      if (entry.op === 'delete') {
        assert.equal(record, null, `acknowledged delete of ${id} is lost`)
        assert.equal(await backend.imageExists(id), false, `deleted ${id} still exists`)
        continue
      }
      assert.ok(record, `acknowledged ${entry.op} of ${id} is lost`)
      assert.ok(record.token >= entry.token, `${id} went back to an older token`)
      const opened = await openPayload(await backend.customEndpointHelper(id, undefined, record.statelessProof), record)
      if (record.token === entry.token) assert.equal(sha256(opened.bytes), entry.hash, `${id} holds another image than acknowledged`)
      else assert.ok(entry.pending.includes('update'), `${id} changed without an update being begun`)
    }
    // Every file has a record, and every record decrypts with its file.
    const files = listFiles(join(storeDir, 'images'))
    assert.deepEqual(files.filter((f) => f.startsWith('.pixstore-tmp/') && f.endsWith('.tmp')), [], 'temporary files were left')
    for (const file of files.filter((f) => !f.startsWith('.pixstore-tmp/'))) {
      const id = file.replace('.pixstore-image', '').replace('/', ':')
      const record = backend.getImageRecord(id)
      assert.ok(record, `file ${file} has no record (imageExists would report it)`)
      const payload = await backend.customEndpointHelper(id, undefined, record.statelessProof)
      assert.equal(decodeWirePayload(payload).state, 1, `${id} cannot be served`)
      await openPayload(payload, record)
    }
    return [...acks.keys()].filter((id) => backend.getImageRecord(id) !== null)
  } finally {
    await backend.closePixstoreBackend()
  }
}

for (const durability of ['process', 'fsync']) {
  const count = durability === 'process' ? rounds : Math.max(5, Math.floor(rounds / 5))
  test(`${count} SIGKILLs during random writes (durability '${durability}') lose and tear nothing`, { timeout: 600_000 }, async () => {
    const dir = tempDir()
    after(() => dir.remove())
    const ackPath = join(dir.path, 'acks.log')
    let live = []
    for (let round = 0; round < count; round++) {
      await runAndKill(dir.path, ackPath, round, durability, live.slice(0, 6))
      live = await checkStore(dir.path, ackPath, durability)
    }
    assert.ok(lastAcks(ackPath).size > count, 'the workers acknowledged writes before being killed')
  })
}
