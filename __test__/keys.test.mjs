// Keys at rest (SPEC "Keys at rest"): with masterKeys the per-image keys are
// stored wrapped, so the database holds none of them and a copy of the store
// without the master key decrypts nothing; keys rotate [new, old] → rekey →
// [new]; rekey wraps a plain store and --unwrap makes it pixstore's again;
// pixstore/frontend still decrypts.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import * as backend from 'pixstore-native/backend'
import { tempDir, makePng, openPayload, sha256, freePort } from './helpers.mjs'
import { browserAvailability, launchBrowser, servePage } from './browser/harness.mjs'

const cli = new URL('../bin/pixstore-native.js', import.meta.url).pathname
const dir = tempDir()
after(async () => {
  await backend.closePixstoreBackend()
  dir.remove()
})

const keyA = randomBytes(32).toString('base64')
const keyB = randomBytes(32).toString('base64')
const store = (name, masterKeys) => ({
  imageRootDir: join(dir.path, name, 'images'),
  databasePath: join(dir.path, name, 'store.sqlite'),
  defaultEndpointEnabled: false,
  errorHandlingMode: 'throw',
  statelessKeyWindowLength: -1,
  masterKeys,
})

/** Every file of a store's database (the file, its WAL and shared memory), concatenated. */
function databaseBytes(name) {
  const base = join(dir.path, name, 'store.sqlite')
  return Buffer.concat(['', '-wal', '-shm'].filter((suffix) => existsSync(base + suffix)).map((suffix) => readFileSync(base + suffix)))
}

/** Whether any of the keys, as base64 or as raw bytes, is in `haystack`. */
function containsAnyKey(haystack, records) {
  return records.some(({ meta }) => haystack.includes(Buffer.from(meta.key)) || haystack.includes(Buffer.from(meta.key, 'base64')))
}

async function served(record) {
  const payload = await backend.customEndpointHelper(record.id, undefined, record.statelessProof)
  return sha256((await openPayload(payload, record)).bytes)
}

/** Writes a config to a file of its own; returns its path. */
function configFile(config) {
  const file = join(dir.path, `config-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(file, JSON.stringify(config))
  return file
}

/** Runs `pixstore-native --json <args>`; `config` (when given) as `--config`. */
function command(config, ...args) {
  const store = config ? ['--config', configFile(config)] : []
  const run = spawnSync(process.execPath, [cli, ...store, '--json', ...args], { encoding: 'utf8' })
  return { status: run.status, report: run.stdout ? JSON.parse(run.stdout) : null, stderr: run.stderr }
}

const rekey = (config, ...args) => command(config, 'rekey', ...args)

test('with masterKeys the database holds none of the image keys, and a copy without the master key decrypts nothing', async () => {
  const proofKeys = ['a proof key for this test only, long enough']
  backend.initPixstoreBackend({ ...store('wrapped', [keyA]), proofKeys })
  const records = []
  for (let n = 0; n < 20; n++) records.push(await backend.saveImage(makePng(4, 4, n), n % 2 ? 'dir' : undefined))
  records.push(await backend.updateImage(records[0].id, makePng(5, 5, 99)))
  for (const [n, record] of records.slice(0, 20).entries()) {
    assert.equal(await served(backend.getImageRecord(record.id)), sha256(n === 0 ? makePng(5, 5, 99) : makePng(4, 4, n)))
  }
  assert.ok(containsAnyKey(Buffer.concat(records.map((r) => Buffer.from(r.meta.key, 'base64'))), records), 'the scan finds keys where they are')
  await backend.closePixstoreBackend()
  const stored = databaseBytes('wrapped')
  assert.ok(stored.length > 0)
  assert.equal(containsAnyKey(stored, records), false, 'no key in the database file, its WAL or its shared memory')

  // A copy of the store, opened without the master key or with another one.
  cpSync(join(dir.path, 'wrapped'), join(dir.path, 'copy'), { recursive: true })
  for (const masterKeys of [null, [keyB]]) {
    backend.initPixstoreBackend({ ...store('copy', masterKeys), proofKeys })
    const last = records.at(-1)
    assert.throws(() => backend.getImageRecord(last.id), (err) => err.code === 'PIXSTORE_INTERNAL' && /wrapped under master key [0-9a-f]{8}, which is not in masterKeys/.test(err.message))
    // Even with a valid proof, the payload is InternalError: never bytes with a wrong key.
    const payload = await backend.customEndpointHelper(last.id, undefined, last.statelessProof)
    assert.deepEqual([...payload], [6])
    await backend.closePixstoreBackend()
  }
})

test('keys rotate: [A] → [B, A] → rekey → [B]; a store with only A can no longer read what B wraps', async () => {
  backend.initPixstoreBackend(store('rotate', [keyA]))
  const records = []
  for (let n = 0; n < 12; n++) records.push(await backend.saveImage(makePng(3, 3, n)))
  backend.initPixstoreBackend({ masterKeys: [keyB, keyA] })
  for (const [n, record] of records.entries()) assert.equal(await served(record), sha256(makePng(3, 3, n)), 'old keys still unwrap')
  const fresh = await backend.saveImage(makePng(3, 3, 50))
  await backend.closePixstoreBackend()

  const rotated = rekey(store('rotate', [keyB, keyA]))
  assert.equal(rotated.status, 0, rotated.stderr + JSON.stringify(rotated.report))
  assert.deepEqual(rotated.report, { rekeyed: 12, skipped: 1, failed: [], interrupted: false })
  const again = rekey(store('rotate', [keyB, keyA]))
  assert.deepEqual(again.report, { rekeyed: 0, skipped: 13, failed: [], interrupted: false }, 'resumable: nothing twice')

  backend.initPixstoreBackend(store('rotate', [keyB]))
  for (const [n, record] of [...records, fresh].entries()) {
    assert.equal(await served(backend.getImageRecord(record.id)), sha256(makePng(3, 3, n < 12 ? n : 50)))
  }
  await backend.closePixstoreBackend()
  backend.initPixstoreBackend(store('rotate', [keyA]))
  assert.throws(() => backend.getImageRecord(records[0].id), /not in masterKeys/)
  await backend.closePixstoreBackend()
})

test('records that cannot be read (a key under a master key not listed, meta that is not JSON) are reported one by one: verify, stats, export, migrate and rekey go on with the rest', async () => {
  backend.initPixstoreBackend(store('mixed', [keyA]))
  const underA = await backend.saveImage(makePng(3, 3, 1))
  backend.initPixstoreBackend({ masterKeys: [keyB] })
  const underB = []
  for (let n = 2; n < 6; n++) underB.push(await backend.saveImage(makePng(3, 3, n), 'pets'))
  await backend.closePixstoreBackend()
  const damaged = underB[0].id
  execFileSync(process.execPath, ['-e', `
    const Database = require('better-sqlite3')
    const db = new Database(${JSON.stringify(join(dir.path, 'mixed', 'store.sqlite'))})
    db.prepare("UPDATE image_records SET meta = 'not json' WHERE id = ?").run(${JSON.stringify(damaged)})
    db.close()
  `], { cwd: new URL('.', import.meta.url) })
  const config = store('mixed', [keyB])
  const unreadable = [underA.id, damaged].sort()
  const readable = underB.slice(1).map((record) => record.id).sort()

  const verify = command(config, 'verify')
  assert.equal(verify.status, 1)
  assert.equal(verify.report.records, 5)
  assert.deepEqual(verify.report.problems.map((problem) => [problem.kind, problem.id]).sort(), unreadable.map((id) => ['unreadable-record', id]))
  assert.match(verify.report.problems.find((problem) => problem.id === underA.id).reason, /not in masterKeys/)

  const stats = command(config, 'stats')
  assert.equal(stats.report.images, 5)
  assert.deepEqual(stats.report.formats, { png: 3, unreadable: 2 })

  const exported = command(config, 'export', join(dir.path, 'mixed-out'))
  assert.equal(exported.status, 1)
  assert.deepEqual(exported.report.exported.map((item) => item.id).sort(), readable)
  assert.deepEqual(exported.report.failed.map((item) => item.id).sort(), unreadable)

  const migrated = command(null, 'migrate', '--from', configFile(config), '--to', configFile(store('mixed-copy', [keyB])))
  assert.equal(migrated.status, 1)
  assert.equal(migrated.report.migrated, 3)
  assert.deepEqual(migrated.report.failed.map((item) => item.id).sort(), unreadable)

  const rekeyed = rekey(config)
  assert.equal(rekeyed.status, 1)
  assert.deepEqual([rekeyed.report.rekeyed, rekeyed.report.skipped], [0, 3])
  assert.deepEqual(rekeyed.report.failed.map((item) => item.id).sort(), unreadable)
})

test('rekey wraps a store pixstore 3.2.1 wrote, and --unwrap makes it readable by pixstore again', async () => {
  const config = store('plain', null)
  mkdirSync(join(dir.path, 'plain'), { recursive: true })
  const written = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', `
    const pixstore = await import('pixstore/backend/index.js')
    const { makePng } = await import(${JSON.stringify(new URL('./helpers.mjs', import.meta.url).pathname)})
    pixstore.initPixstoreBackend(${JSON.stringify({ imageRootDir: config.imageRootDir, databasePath: config.databasePath, defaultEndpointEnabled: false, errorHandlingMode: 'throw' })})
    const records = []
    for (let n = 0; n < 10; n++) records.push(await pixstore.saveImage(makePng(4, 4, n)))
    process.stdout.write(JSON.stringify(records))
    process.exit(0)
  `], { cwd: new URL('.', import.meta.url), encoding: 'utf8' }))
  assert.equal(containsAnyKey(databaseBytes('plain'), written), true, 'pixstore stores the keys plain')

  const wrapped = rekey(store('plain', [keyA]))
  assert.equal(wrapped.status, 0, wrapped.stderr)
  assert.equal(wrapped.report.rekeyed, 10)
  assert.equal(containsAnyKey(databaseBytes('plain'), written), false, 'after rekey no plain key is left, not even in free pages or the WAL')
  backend.initPixstoreBackend(store('plain', [keyA]))
  for (const [n, record] of written.entries()) assert.equal(await served(backend.getImageRecord(record.id)), sha256(makePng(4, 4, n)))
  await backend.closePixstoreBackend()

  const unwrapped = rekey(store('plain', [keyA]), '--unwrap')
  assert.equal(unwrapped.status, 0, unwrapped.stderr)
  assert.equal(unwrapped.report.rekeyed, 10)
  const readBack = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', `
    const pixstore = await import('pixstore/backend/index.js')
    pixstore.initPixstoreBackend(${JSON.stringify({ imageRootDir: config.imageRootDir, databasePath: config.databasePath, defaultEndpointEnabled: false, errorHandlingMode: 'throw' })})
    process.stdout.write(JSON.stringify(${JSON.stringify(written.map((r) => r.id))}.map((id) => pixstore.getImageRecord(id).meta)))
    process.exit(0)
  `], { cwd: new URL('.', import.meta.url), encoding: 'utf8' }))
  assert.deepEqual(readBack, written.map((record) => record.meta), 'pixstore reads its plain keys again')

  assert.equal(rekey(store('plain', null)).status, 2, 'rekey without masterKeys (and without --unwrap) is bad usage')
})

test('pixstore/frontend in Chromium decrypts images of a store with masterKeys', browserAvailability(), async () => {
  const port = await freePort()
  backend.initPixstoreBackend({ ...store('browser', [keyA]), defaultEndpointEnabled: true, defaultEndpointListenHost: '127.0.0.1', defaultEndpointListenPort: port })
  const image = makePng(30, 20, 5)
  const saved = await backend.saveImage(image)
  const page = await servePage(new URL('./browser/page-entry.mjs', import.meta.url).pathname)
  const browser = await launchBrowser()
  try {
    const tab = await browser.context.newPage()
    await tab.goto(page.origin)
    await tab.evaluate((config) => window.pixstoreTest.init(config), {
      defaultEndpointConnectHost: '127.0.0.1', defaultEndpointConnectPort: port, defaultEndpointRoute: '/pixstore-image', frontendDbName: 'keys-test',
    })
    assert.deepEqual(await tab.evaluate((record) => window.pixstoreTest.imageDigest(record), saved), { hash: sha256(image), type: 'image/png' })
  } finally {
    await browser.close()
    await page.close()
    await backend.closePixstoreBackend()
  }
})
