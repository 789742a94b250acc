// The database path and other SQLite users: `databasePath: ':memory:'` is an
// in-memory database as in pixstore (no file, empty on every init, every
// feature working); a second copy of SQLite in the same process
// (better-sqlite3) opening, reading and closing the store loses nothing.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readdirSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import * as backend from 'pixstore-native/backend'
import { tempDir, makePng, listFiles } from './helpers.mjs'

const dir = tempDir()
after(async () => {
  await backend.closePixstoreBackend()
  dir.remove()
})

test("databasePath ':memory:' writes no database file, starts empty on every init, and everything works", () => {
  const cwd = join(dir.path, 'memory')
  const program = `
    import assert from 'node:assert/strict'
    import * as backend from '${new URL('../backend.mjs', import.meta.url).pathname}'
    import { makePng, openPayload, fetchPayload, freePort } from '${new URL('./helpers.mjs', import.meta.url).pathname}'
    const port = await freePort()
    const config = { databasePath: ':memory:', imageRootDir: 'images', errorHandlingMode: 'throw',
      defaultEndpointListenHost: '127.0.0.1', defaultEndpointListenPort: port }
    backend.initPixstoreBackend(config)
    const saved = await backend.saveImage(makePng(3, 3, 1), 'mem')
    assert.equal(backend.getImageRecord(saved.id).token, saved.token)
    const updated = await backend.updateImage(saved.id, makePng(4, 4, 2))
    assert.ok(updated.token > saved.token)
    assert.equal(await backend.imageExists(saved.id), true)
    const { response, payload } = await fetchPayload('http://127.0.0.1:' + port + '/pixstore-image', updated, { token: null })
    assert.equal(response.status, 200)
    assert.deepEqual((await openPayload(payload, updated)).bytes, makePng(4, 4, 2))
    const other = await backend.saveImage(makePng(5, 5, 3))
    assert.equal(await backend.deleteImage(other.id), true)
    assert.equal(backend.getImageRecord(other.id), null)
    // As in pixstore (a new better-sqlite3 ':memory:' database per init), every init starts empty.
    backend.initPixstoreBackend({ errorHandlingMode: 'throw' })
    assert.equal(backend.getImageRecord(saved.id), null)
    const again = await backend.saveImage(makePng(6, 6, 4))
    assert.ok(backend.getImageRecord(again.id))
    await backend.closePixstoreBackend()
    process.stdout.write('ok')
  `
  mkdirSync(cwd)
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', program], { cwd, encoding: 'utf8', timeout: 60_000 })
  assert.equal(out, 'ok')
  // No database file anywhere: only the image folder (images, temporary folder).
  assert.deepEqual(readdirSync(cwd), ['images'])
  assert.ok(listFiles(join(cwd, 'images')).every((name) => name.endsWith('.pixstore-image')), listFiles(join(cwd, 'images')).join())
})

test('better-sqlite3 in the same process opening, reading and closing the store loses no write', async () => {
  const databasePath = join(dir.path, 'shared', 'store.sqlite')
  backend.initPixstoreBackend({ databasePath, imageRootDir: join(dir.path, 'shared', 'images'), defaultEndpointEnabled: false, errorHandlingMode: 'throw' })
  const first = await backend.saveImage(makePng(2, 2, 1))
  for (const readonly of [false, true]) {
    const other = new Database(databasePath, { readonly })
    assert.equal(other.prepare('SELECT count(*) AS n FROM image_records').get().n >= 1, true)
    other.close()
  }
  // Writes after the other library closed its connection.
  const updated = await backend.updateImage(first.id, makePng(3, 3, 2))
  const second = await backend.saveImage(makePng(4, 4, 3))
  assert.equal(backend.getImageRecord(first.id).token, updated.token, 'not a stale record')
  await backend.closePixstoreBackend()
  // Another process reads the file: every write reached it.
  const seen = JSON.parse(execFileSync(process.execPath, ['-e', `
    const Database = require('better-sqlite3')
    const db = new Database(${JSON.stringify(databasePath)}, { readonly: true })
    process.stdout.write(JSON.stringify(db.prepare('SELECT id, token FROM image_records').all()))
  `], { cwd: new URL('.', import.meta.url) }))
  const tokens = Object.fromEntries(seen.map((row) => [row.id, row.token]))
  assert.equal(tokens[first.id], updated.token)
  assert.equal(tokens[second.id], second.token)
})
