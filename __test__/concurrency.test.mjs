// Concurrency: 32 concurrent updates of one id with concurrent reads, in one
// process and in two processes sharing one store: every read decrypts, and
// tokens strictly increase. Runs against the local store, and against
// PostgreSQL + S3 with PIXSTORE_TEST_STORE=remote.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import * as backend from 'pixstore-native/backend'
import { tempDir, makePng } from './helpers.mjs'
import { storeUnderTest } from './support/store-under-test.mjs'

const dir = tempDir()
const store = await storeUnderTest(dir.path)
const config = {
  ...store.config,
  defaultEndpointEnabled: false,
  errorHandlingMode: 'throw',
  statelessKeyWindowLength: -1,
  proofKeys: ['a proof key both processes of this test share'],
}
let hammer
before(async () => {
  backend.initPixstoreBackend(config)
  ;({ hammer } = await import('./support/hammer-worker.mjs'))
})
after(async () => {
  await backend.closePixstoreBackend()
  await store.stop()
  dir.remove()
})

test('32 concurrent updates of one id with concurrent reads: every read decrypts (40 trials)', async () => {
  const { id } = await backend.saveImage(makePng())
  assert.equal(await hammer(id, 40, 0), 40 * 32)
})

test('tokens of concurrent writes to one id are distinct and increase in commit order', async () => {
  const { id, token } = await backend.saveImage(makePng())
  const records = await Promise.all(Array.from({ length: 64 }, (_, n) => backend.updateImage(id, makePng(2, 2, n))))
  const tokens = records.map((record) => record.token)
  assert.equal(new Set(tokens).size, 64)
  assert.ok(tokens.every((t) => t > token))
  assert.equal(backend.getImageRecord(id).token, Math.max(...tokens))
})

test('two processes hammering one store: every read in both decrypts', async () => {
  const { id } = await backend.saveImage(makePng())
  const worker = new URL('./support/hammer-worker.mjs', import.meta.url).pathname
  const [child, ours] = await Promise.all([
    promisify(execFile)(process.execPath, [worker, JSON.stringify(config), id, '20']),
    hammer(id, 20, 500_000),
  ])
  assert.equal(Number(child.stdout.trim()), 20 * 32)
  assert.equal(ours, 20 * 32)
})
