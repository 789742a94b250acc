// Before initPixstoreBackend, every call reports that init is missing (in a
// process of its own: the backend is process-wide state).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import * as backend from 'pixstore-native/backend'
import { PixstoreError, getLastPixstoreError } from 'pixstore-native/shared'
import { makePng } from './helpers.mjs'

test('before init every call fails with a PixstoreError naming initPixstoreBackend', async () => {
  const original = console.warn
  const warnings = []
  console.warn = (...args) => warnings.push(args)
  try {
    const calls = [
      () => backend.getImageRecord('abc'),
      () => backend.saveImage(makePng()),
      () => backend.saveImageFromFile('x.png'),
      () => backend.updateImage('abc', makePng()),
      () => backend.updateImageFromFile('abc', 'x.png'),
      () => backend.deleteImage('abc'),
      () => backend.imageExists('abc'),
      () => backend.customEndpointHelper('abc', 1, 'proof'),
    ]
    for (const call of calls) {
      assert.equal(await call(), null, 'hybrid mode (the default) returns null')
      assert.ok(getLastPixstoreError() instanceof PixstoreError)
      assert.match(getLastPixstoreError().message, /call initPixstoreBackend\(\) first/)
    }
    assert.equal(warnings.length, calls.length)
  } finally {
    console.warn = original
  }
  await backend.closePixstoreBackend() // closing what was never opened is fine
})
