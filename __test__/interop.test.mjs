// Data compatibility with pixstore@3.2.1 (npm), both ways: a store written by
// pixstore is served by pixstore-native, and a store written by
// pixstore-native is read and served by pixstore. Payloads are decoded with
// pixstore's own decoder and decrypted with Web Crypto like the frontend.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as native from 'pixstore-native/backend'
import { tempDir, makePng, fixturesDir, openPayload, loadPixstore, listFiles } from './helpers.mjs'

const pixstore = await loadPixstore()
const dir = tempDir()
after(async () => {
  await native.closePixstoreBackend()
  dir.remove()
})

const images = {
  png: makePng(3, 2, 11),
  webp: readFileSync(join(fixturesDir, 'medium.webp')),
  jpg: readFileSync(join(fixturesDir, '200k.jpg')),
}
const storeConfig = (name) => ({
  imageRootDir: join(dir.path, name, 'images'),
  databasePath: join(dir.path, name, 'store.sqlite'),
  defaultEndpointEnabled: false,
  statelessKeyWindowLength: 20000,
  errorHandlingMode: 'throw',
})

test('a store written by pixstore 3.2.1 is served by pixstore-native', async () => {
  const { mkdirSync } = await import('node:fs')
  mkdirSync(join(dir.path, 'written-by-pixstore'), { recursive: true })
  pixstore.initPixstoreBackend(storeConfig('written-by-pixstore'))
  const written = []
  for (const [format, bytes] of Object.entries(images)) {
    written.push({ format, bytes, record: await pixstore.saveImage(bytes, 'fromjs') })
  }
  const plain = await pixstore.saveImage(images.png)
  const replaced = await pixstore.updateImage(plain.id, images.jpg)
  written.push({ format: 'jpg', bytes: images.jpg, record: replaced })
  const gone = await pixstore.saveImage(images.png)
  await pixstore.deleteImage(gone.id)
  // The longest dir pixstore stores: 255 characters, a folder name's limit.
  written.push({ format: 'png', bytes: images.png, record: await pixstore.saveImage(images.png, 'd'.repeat(255)) })

  native.initPixstoreBackend(storeConfig('written-by-pixstore'))
  for (const { format, bytes, record } of written) {
    const ours = native.getImageRecord(record.id)
    assert.equal(ours.id, record.id)
    assert.equal(ours.token, record.token)
    assert.deepEqual(ours.meta, record.meta)
    for (const clientToken of [undefined, record.token]) {
      const opened = await openPayload(await native.customEndpointHelper(ours.id, clientToken, ours.statelessProof), record)
      assert.equal(opened.state, clientToken === undefined ? 1 : 0)
      assert.equal(opened.formatByte, ['png', 'webp', 'jpg', 'jpeg'].indexOf(format) + 1)
      assert.deepEqual(opened.bytes, bytes, `${format} decrypts to the original bytes`)
    }
    assert.equal(await native.imageExists(record.id), true)
  }
  assert.equal(native.getImageRecord(gone.id), null)
  assert.equal(await native.imageExists(gone.id), false)

  // And pixstore-native keeps writing into it.
  const updated = await native.updateImage(written[0].record.id, images.webp)
  assert.ok(updated.token > written[0].record.token)
  assert.deepEqual((await openPayload(await native.customEndpointHelper(updated.id, undefined, updated.statelessProof), updated)).bytes, images.webp)
  assert.deepEqual(pixstore.getImageRecord(updated.id).meta, updated.meta, 'pixstore sees the update')
})

test('a store written by pixstore-native is read and served by pixstore 3.2.1', async () => {
  native.initPixstoreBackend(storeConfig('written-by-native'))
  const written = []
  for (const [format, bytes] of Object.entries(images)) {
    written.push({ format, bytes, record: await native.saveImage(bytes, 'fromrust') })
  }
  const plain = await native.saveImage(images.png)
  written.push({ format: 'webp', bytes: images.webp, record: await native.updateImage(plain.id, images.webp) })
  await native.closePixstoreBackend()

  pixstore.initPixstoreBackend(storeConfig('written-by-native'))
  for (const { format, bytes, record } of written) {
    const theirs = pixstore.getImageRecord(record.id)
    assert.equal(theirs.token, record.token)
    assert.deepEqual(theirs.meta, record.meta)
    const payload = await pixstore.customEndpointHelper(record.id, undefined, theirs.statelessProof)
    const opened = await openPayload(payload, theirs)
    assert.equal(opened.state, 1)
    assert.deepEqual(opened.bytes, bytes, `${format} written by pixstore-native decrypts in pixstore`)
    assert.equal(await pixstore.imageExists(record.id), true)
  }
  // pixstore's own writes and deletes work on it too.
  const replaced = await pixstore.updateImage(written[0].record.id, images.jpg)
  assert.ok(replaced.token > written[0].record.token)
  assert.equal(await pixstore.deleteImage(written[1].record.id), true)

  native.initPixstoreBackend(storeConfig('written-by-native'))
  const ours = native.getImageRecord(replaced.id)
  assert.deepEqual(ours.meta, replaced.meta)
  assert.deepEqual((await openPayload(await native.customEndpointHelper(ours.id, undefined, ours.statelessProof), ours)).bytes, images.jpg)
  assert.equal(native.getImageRecord(written[1].record.id), null)
  const files = listFiles(join(dir.path, 'written-by-native', 'images')).filter((f) => !f.startsWith('.pixstore-tmp'))
  assert.equal(files.length, written.length - 1)
})
