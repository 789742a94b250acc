// `npx pixstore-native migrate --from A.json --to B.json`: a store written by
// pixstore 3.2.1 goes local → PostgreSQL + S3 → local with every image byte
// for byte; the source is untouched; an interrupted run (Ctrl-C) resumes; the
// exit status and --json report are as SPEC "Operating the store" says.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import * as backend from 'pixstore-native/backend'
import { tempDir, makePng, openPayload, sha256, listFiles } from './helpers.mjs'
import { startPostgres, startSeaweed } from './support/services.mjs'

const cli = new URL('../bin/pixstore-native.js', import.meta.url).pathname
const dir = tempDir()
let pg
let s3

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

const local = (name) => ({ imageRootDir: join(dir.path, name, 'images'), databasePath: join(dir.path, name, 'store.sqlite'), databaseUrl: null, objectStore: null })
const remote = (prefix, database = 'pixstore') => ({
  databaseUrl: pg.url.replace(/\/pixstore$/, `/${database}`),
  objectStore: { url: `s3://${s3.bucket}/${prefix}`, endpoint: s3.endpoint, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, allowHttp: true },
})

function writeConfig(name, config) {
  const path = join(dir.path, `${name}.json`)
  writeFileSync(path, JSON.stringify(config))
  return path
}

function migrate(from, to, extra = []) {
  const run = spawnSync(process.execPath, [cli, '--json', 'migrate', '--from', from, '--to', to, ...extra], { encoding: 'utf8', timeout: 300_000 })
  return { status: run.status, report: run.stdout ? JSON.parse(run.stdout) : null, stderr: run.stderr }
}

/** Every image of a store, decrypted, by id (through the API, like the frontend would get it). */
async function contents(config) {
  backend.initPixstoreBackend({ ...config, defaultEndpointEnabled: false, errorHandlingMode: 'throw', statelessKeyWindowLength: -1 })
  const { storeStats } = await import('pixstore-native/admin')
  const images = new Map()
  const ids = []
  // Walk the ids through the admin export: it lists every record.
  const out = join(dir.path, `export-${Math.random().toString(36).slice(2)}`)
  const { exportStore } = await import('pixstore-native/admin')
  const report = await exportStore(config, out)
  assert.deepEqual(report.failed, [])
  for (const { id } of report.exported) ids.push(id)
  for (const id of ids) {
    const record = backend.getImageRecord(id)
    const { bytes } = await openPayload(await backend.customEndpointHelper(id, undefined, record.statelessProof), record)
    images.set(id, { hash: sha256(bytes), token: record.token, meta: record.meta })
  }
  assert.equal((await storeStats(config)).images, ids.length)
  await backend.closePixstoreBackend()
  return images
}

test('a store written by pixstore 3.2.1 migrates local → PostgreSQL + S3 → local, byte for byte, and the source is untouched', async () => {
  // 120 images written by the real pixstore 3.2.1 (in a child process), some under a dir.
  mkdirSync(join(dir.path, 'original'), { recursive: true })
  const written = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', `
    const pixstore = await import('pixstore/backend/index.js')
    const { makePng, sha256 } = await import(${JSON.stringify(new URL('./helpers.mjs', import.meta.url).pathname)})
    pixstore.initPixstoreBackend({ ...${JSON.stringify(local('original'))}, defaultEndpointEnabled: false, errorHandlingMode: 'throw' })
    const written = []
    for (let n = 0; n < 120; n++) {
      const record = await pixstore.saveImage(makePng(4, 4, n), n % 3 ? undefined : 'albums')
      written.push([record.id, { hash: sha256(makePng(4, 4, n)), token: record.token, meta: record.meta }])
    }
    process.stdout.write(JSON.stringify(written))
    process.exit(0)
  `], { cwd: new URL('.', import.meta.url), encoding: 'utf8' }))
  const original = new Map(written)
  const sourceFiles = () => listFiles(join(dir.path, 'original')).map((name) => [name, sha256(readFileSync(join(dir.path, 'original', name)))])
  const before = sourceFiles()

  const toRemote = migrate(writeConfig('original', local('original')), writeConfig('remote', remote('migrated/')))
  assert.equal(toRemote.status, 0, toRemote.stderr)
  assert.deepEqual(toRemote.report, { migrated: 120, skipped: 0, failed: [], interrupted: false })
  assert.deepEqual(sourceFiles(), before, 'the source is untouched')

  const back = migrate(writeConfig('remote', remote('migrated/')), writeConfig('back', local('back')))
  assert.equal(back.status, 0, back.stderr)
  assert.equal(back.report.migrated, 120)

  for (const copy of [await contents(remote('migrated/')), await contents(local('back'))]) {
    assert.equal(copy.size, 120)
    for (const [id, image] of original) assert.deepEqual(copy.get(id), image, `${id}: same bytes, token and key`)
  }
  // Running it again copies nothing: everything is there.
  const again = migrate(writeConfig('original', local('original')), writeConfig('remote', remote('migrated/')))
  assert.deepEqual(again.report, { migrated: 0, skipped: 120, failed: [], interrupted: false })
})

test('an interrupted migration (Ctrl-C) stops cleanly with status 130 and the next run finishes it', async () => {
  backend.initPixstoreBackend({ ...local('many'), defaultEndpointEnabled: false, errorHandlingMode: 'throw' })
  for (let n = 0; n < 400; n++) await backend.saveImage(makePng(8, 8, n))
  await backend.closePixstoreBackend()
  const from = writeConfig('many', local('many'))
  execFileSync('psql', [pg.url, '-c', 'CREATE DATABASE interrupted'], { stdio: 'ignore' })
  const to = writeConfig('many-remote', remote('interrupted/', 'interrupted'))
  const migratedSoFar = () => {
    try {
      return Number(execFileSync('psql', [remote('', 'interrupted').databaseUrl, '-AtX', '-c', 'SELECT count(*) FROM image_records'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }))
    } catch {
      return 0 // the destination's tables are not created yet
    }
  }
  const child = spawn(process.execPath, [cli, '--json', 'migrate', '--from', from, '--to', to], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk) => (stdout += chunk))
  child.stderr.on('data', (chunk) => (stderr += chunk))
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)))
  // Interrupt as soon as the destination has some records.
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 20))
    if (migratedSoFar() > 0 || child.exitCode !== null) break
  }
  child.kill('SIGINT')
  const status = await exited
  assert.ok(stdout, stderr)
  const first = JSON.parse(stdout)
  if (status === 130) {
    assert.equal(first.interrupted, true)
    assert.ok(first.migrated < 400)
  } else {
    assert.equal(status, 0, 'the run had finished before the interrupt arrived')
  }
  const second = migrate(from, to)
  assert.equal(second.status, 0, second.stderr)
  assert.equal(second.report.migrated + second.report.skipped, 400)
  assert.equal(second.report.migrated, 400 - first.migrated, 'nothing is copied twice')
})

test('bad usage exits 2; a source with a corrupt image exits 1 and names it', async () => {
  assert.equal(spawnSync(process.execPath, [cli, 'migrate', '--from', 'nope.json'], { encoding: 'utf8' }).status, 2)
  assert.equal(spawnSync(process.execPath, [cli, 'migrate', '--from', join(dir.path, 'missing.json'), '--to', join(dir.path, 'missing.json')], { encoding: 'utf8' }).status, 2)
  backend.initPixstoreBackend({ ...local('damaged'), defaultEndpointEnabled: false, errorHandlingMode: 'throw' })
  const good = await backend.saveImage(makePng(3, 3, 1))
  const bad = await backend.saveImage(makePng(3, 3, 2))
  await backend.closePixstoreBackend()
  const file = join(dir.path, 'damaged', 'images', `${bad.id}.pixstore-image`)
  const bytes = readFileSync(file)
  bytes[bytes.length - 1] ^= 0xff
  writeFileSync(file, bytes)
  const run = migrate(writeConfig('damaged', local('damaged')), writeConfig('damaged-copy', local('damaged-copy')))
  assert.equal(run.status, 1)
  assert.equal(run.report.migrated, 1)
  assert.deepEqual(run.report.failed.map((item) => item.id), [bad.id])
  assert.match(run.report.failed[0].reason, /does not authenticate/)
  assert.ok(good.id)
})
