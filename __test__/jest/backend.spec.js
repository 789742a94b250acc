// pixstore-native under the real Jest, with Jest's defaults: this file runs in
// a vm context whose Error, Uint8Array and Object are not Node's. Every
// export and every error mode must behave as in plain Node: PixstoreErrors of
// this realm, messages without internal prefixes, buffers of either realm.
const { readFileSync, writeFileSync } = require('node:fs')
const { join } = require('node:path')
const backend = require('pixstore-native/backend')
const { PixstoreError, setCustomErrorHandler, getLastPixstoreError } = require('pixstore-native/shared')
const { WirePayloadState } = require('pixstore-native/types')
const { tempStore, png } = require('./support.js')

const store = tempStore({ errorHandlingMode: 'throw', statelessKeyWindowLength: -1 })
const image = png(7)

beforeAll(() => backend.initPixstoreBackend(store.config))
afterEach(() => {
  setCustomErrorHandler(undefined)
  backend.initPixstoreBackend({ errorHandlingMode: 'throw' })
  jest.restoreAllMocks()
})
afterAll(async () => {
  await backend.closePixstoreBackend()
  store.remove()
})

test('the realm of this file is not Node’s own (the case being tested)', () => {
  let nodeError
  try {
    readFileSync('/nonexistent/pixstore-native')
  } catch (err) {
    nodeError = err
  }
  expect(nodeError instanceof Error).toBe(false)
})

test('every export is there', () => {
  for (const name of ['initPixstoreBackend', 'closePixstoreBackend', 'getImageRecord', 'saveImage', 'saveImageFromFile',
    'updateImage', 'updateImageFromFile', 'deleteImage', 'imageExists', 'customEndpointHelper']) {
    expect(typeof backend[name]).toBe('function')
  }
  expect(WirePayloadState.InternalError).toBe(6)
  expect(new PixstoreError('x')).toBeInstanceOf(Error)
})

test('save, read, update, delete with a Buffer and with a Uint8Array of this realm', async () => {
  const saved = await backend.saveImage(image, 'jest')
  expect(saved.id).toMatch(/^jest:[0-9a-z]{16}$/)
  expect(backend.getImageRecord(saved.id)).toEqual(saved)
  const updated = await backend.updateImage(saved.id, new Uint8Array(png(8)))
  expect(updated.token).toBeGreaterThan(saved.token)
  expect(await backend.imageExists(saved.id)).toBe(true)
  const payload = await backend.customEndpointHelper(saved.id, updated.token, updated.statelessProof)
  expect(payload[0]).toBe(WirePayloadState.Success)
  expect(await backend.deleteImage(saved.id)).toBe(true)
  expect(await backend.imageExists(saved.id)).toBe(false)
  expect(backend.getImageRecord(saved.id)).toBeNull()
})

test('a Uint8Array from yet another realm is an image like any other', async () => {
  const foreign = require('node:vm').runInNewContext('new Uint8Array(length)', { length: image.length })
  foreign.set(image)
  expect(foreign instanceof Uint8Array).toBe(false)
  const saved = await backend.saveImage(foreign)
  expect((await backend.updateImage(saved.id, foreign)).id).toBe(saved.id)
})

test('saveImageFromFile and updateImageFromFile', async () => {
  const file = join(require('node:os').tmpdir(), `pixstore-native-jest-${process.pid}.png`)
  writeFileSync(file, png(9))
  try {
    const saved = await backend.saveImageFromFile(file)
    const updated = await backend.updateImageFromFile(saved.id, file)
    expect(updated.id).toBe(saved.id)
    expect(readFileSync(file)).toEqual(png(9))
  } finally {
    require('node:fs').rmSync(file)
  }
})

test("an id that cannot exist is absent, as pixstore's own suite expects", async () => {
  expect(backend.getImageRecord('backend-image-service:does-not-exist')).toBeNull()
  expect(await backend.imageExists('a/b')).toBe(false)
  expect(await backend.deleteImage('..')).toBe(false)
  await expect(backend.updateImage('a/b', image)).rejects.toThrow('Image not found: a/b')
})

test("'throw': PixstoreErrors of this realm, with the reference's messages", async () => {
  const error = await backend.updateImage('missingid', image).catch((err) => err)
  expect(error).toBeInstanceOf(PixstoreError)
  expect(error).toBeInstanceOf(Error)
  expect(error.name).toBe('PixstoreError')
  expect(error.message).toBe('Image not found: missingid')
  await expect(backend.saveImage(Buffer.from('not an image'))).rejects.toThrow(new PixstoreError('Invalid image file'))
  // An id that is not a string is absent, as in pixstore.
  expect(backend.getImageRecord(42)).toBeNull()
  await expect(backend.updateImage(42, image)).rejects.toThrow(new PixstoreError('Image not found: 42'))
})

test("'hybrid': a PixstoreError is warned, remembered and answered with null; other errors throw", async () => {
  backend.initPixstoreBackend({ errorHandlingMode: 'hybrid' })
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => {})
  expect(await backend.updateImage('missingid', image)).toBeNull()
  expect(warn).toHaveBeenCalledTimes(1)
  expect(warn.mock.calls[0][0]).toBeInstanceOf(PixstoreError)
  expect(getLastPixstoreError()).toBeInstanceOf(PixstoreError)
  expect(getLastPixstoreError().message).toBe('Image not found: missingid')
  expect(backend.getImageRecord(42)).toBeNull()
  // An internal failure (a file where the prefix folder should be) is thrown, as an Error of this realm.
  writeFileSync(join(store.config.imageRootDir, 'blocked'), 'a file')
  const internal = await backend.saveImage(image, 'blocked').catch((err) => err)
  expect(internal).toBeInstanceOf(Error)
  expect(internal).not.toBeInstanceOf(PixstoreError)
  expect(internal.code).toBe('PIXSTORE_INTERNAL')
  expect(internal.message).not.toMatch(/^\[/)
})

test("'warn' and 'silent' answer null", async () => {
  backend.initPixstoreBackend({ errorHandlingMode: 'warn' })
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => {})
  expect(await backend.updateImage('missingid', image)).toBeNull()
  expect(await backend.saveImage(image, 'blocked')).toBeNull()
  expect(warn).toHaveBeenCalledTimes(2)
  backend.initPixstoreBackend({ errorHandlingMode: 'silent' })
  expect(await backend.updateImage('missingid', image)).toBeNull()
  expect(warn).toHaveBeenCalledTimes(2)
})

test("'custom': the handler gets PixstoreErrors of this realm; without one, a plain Error", async () => {
  backend.initPixstoreBackend({ errorHandlingMode: 'custom' })
  const seen = []
  setCustomErrorHandler((err) => seen.push(err))
  expect(await backend.updateImage('missingid', image)).toBeNull()
  expect(await backend.updateImage(17, image)).toBeNull()
  expect(seen).toHaveLength(2)
  for (const err of seen) {
    expect(err).toBeInstanceOf(PixstoreError)
    expect(err).toBeInstanceOf(Error)
    expect(err.message).not.toMatch(/PIXSTORE/)
  }
  setCustomErrorHandler(undefined)
  await expect(backend.updateImage('missingid', image)).rejects.toThrow('Custom error handler is not set')
})

test('invalid config: a plain Error of this realm with the reference message, for every kind of wrong value', () => {
  for (const value of [NaN, Infinity, '20000', null, {}]) {
    let error
    try {
      backend.initPixstoreBackend({ statelessKeyWindowLength: value })
    } catch (err) {
      error = err
    }
    expect(error).toBeInstanceOf(Error)
    expect(error).not.toBeInstanceOf(PixstoreError)
    expect(error.message).toBe('statelessKeyWindowLength must be a positive integer (milliseconds) or -1 for non-expiring proof')
  }
  expect(() => backend.initPixstoreBackend({ defaultEndpointListenPort: NaN })).toThrow(
    new Error('defaultEndpointListenPort must be an integer between 1 and 65535'),
  )
})

test('the default endpoint serves from inside a Jest test', async () => {
  const { createServer } = require('node:net')
  const server = createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  backend.initPixstoreBackend({ defaultEndpointEnabled: true, defaultEndpointListenHost: '127.0.0.1', defaultEndpointListenPort: port })
  try {
    const saved = await backend.saveImage(image)
    const response = await fetch(`http://127.0.0.1:${port}/pixstore-image/${saved.id}`, {
      headers: { 'x-pixstore-proof': saved.statelessProof },
    })
    expect(response.status).toBe(200)
    expect(new Uint8Array(await response.arrayBuffer())[0]).toBe(WirePayloadState.Updated)
  } finally {
    backend.initPixstoreBackend({ defaultEndpointEnabled: false })
  }
})
