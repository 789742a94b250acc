// ESM and CJS entry points expose the same functions and one PixstoreError class.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createRequire } from 'node:module'
import * as esmBackend from 'pixstore-native/backend'
import * as esmShared from 'pixstore-native/shared'
import * as esmTypes from 'pixstore-native/types'

const require = createRequire(import.meta.url)
const backendExports = [
  'initPixstoreBackend', 'getImageRecord', 'saveImage', 'saveImageFromFile', 'updateImage',
  'updateImageFromFile', 'deleteImage', 'imageExists', 'customEndpointHelper', 'closePixstoreBackend', 'getImageRecordAsync',
  'getPixstoreStats', 'getPixstoreMetrics', 'setPixstoreRequestLogger',
]
const backendConstants = ['PIXSTORE_METRICS_CONTENT_TYPE']
const synchronous = ['getImageRecord', 'getPixstoreStats', 'getPixstoreMetrics', 'setPixstoreRequestLogger']

test('ESM and CJS backends are the same functions', () => {
  const cjsBackend = require('pixstore-native/backend')
  assert.deepEqual(Object.keys(esmBackend).sort(), [...backendExports, ...backendConstants].sort())
  for (const name of backendExports) {
    assert.equal(typeof esmBackend[name], 'function', name)
    assert.equal(esmBackend[name], cjsBackend[name], name)
  }
  assert.equal(esmBackend.PIXSTORE_METRICS_CONTENT_TYPE, 'text/plain; version=0.0.4; charset=utf-8')
  assert.equal(cjsBackend.PIXSTORE_METRICS_CONTENT_TYPE, esmBackend.PIXSTORE_METRICS_CONTENT_TYPE)
})

test('getImageRecord and the stats calls are synchronous and the rest return promises', async () => {
  const { initPixstoreBackend, closePixstoreBackend, PIXSTORE_METRICS_CONTENT_TYPE, ...calls } = esmBackend
  for (const name of synchronous) assert.equal(esmBackend[name].constructor.name, 'Function', name)
  for (const [name, fn] of Object.entries(calls)) {
    if (synchronous.includes(name)) continue
    assert.equal(fn.constructor.name, 'AsyncFunction', name)
  }
  assert.equal(initPixstoreBackend.constructor.name, 'Function')
  assert.equal(closePixstoreBackend.constructor.name, 'AsyncFunction')
})

test('one PixstoreError class for ESM and CJS', () => {
  const cjsShared = require('pixstore-native/shared')
  assert.equal(esmShared.PixstoreError, cjsShared.PixstoreError)
  assert.equal(esmShared.getLastPixstoreError, cjsShared.getLastPixstoreError)
  assert.equal(esmShared.setCustomErrorHandler, cjsShared.setCustomErrorHandler)
  const err = new esmShared.PixstoreError('boom')
  assert.equal(err.name, 'PixstoreError')
  assert.ok(err instanceof Error)
  assert.ok(err instanceof cjsShared.PixstoreError)
})

test('types entry carries WirePayloadState like pixstore', () => {
  assert.equal(esmTypes.WirePayloadState.Updated, 1)
  assert.equal(esmTypes.WirePayloadState[6], 'InternalError')
  assert.equal(require('pixstore-native/types').WirePayloadState, esmTypes.WirePayloadState)
})

test('a CommonJS program can require the package', () => {
  const program = `
    const { saveImage, getImageRecord } = require('pixstore-native/backend')
    const { PixstoreError } = require('pixstore-native/shared')
    process.stdout.write(typeof saveImage + typeof getImageRecord + typeof PixstoreError)
  `
  const out = execFileSync(process.execPath, ['-e', program], { cwd: new URL('.', import.meta.url) })
  assert.equal(out.toString(), 'functionfunctionfunction')
})

test('a process with the default endpoint running still exits on its own', () => {
  const program = `
    const { initPixstoreBackend } = require('pixstore-native/backend')
    const { mkdtempSync } = require('node:fs')
    const dir = mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'pxn-exit-'))
    initPixstoreBackend({ imageRootDir: dir + '/img', databasePath: dir + '/db.sqlite', defaultEndpointListenHost: '127.0.0.1', defaultEndpointListenPort: ${20000 + Math.floor(Math.random() * 20000)} })
    require('node:fs').rmSync(dir, { recursive: true, force: true })
  `
  execFileSync(process.execPath, ['-e', program], { timeout: 20_000 })
})
