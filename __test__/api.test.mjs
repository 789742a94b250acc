// The pixstore/backend API: every export, every error mode, bad input that
// must change nothing, re-initialization and closing. Runs against the local
// store, and against PostgreSQL + S3 with PIXSTORE_TEST_STORE=remote (see
// support/store-under-test.mjs); the few checks of the local layout say so.
import { test, before, after, beforeEach } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as backend from 'pixstore-native/backend'
import { PixstoreError, getLastPixstoreError, setCustomErrorHandler } from 'pixstore-native/shared'
import { tempDir, makePng, listFiles, fixturesDir, decodeWirePayload, openPayload } from './helpers.mjs'
import { storeUnderTest, remote } from './support/store-under-test.mjs'

const localOnly = remote && 'checks the local store layout'
const dir = tempDir()
const store = await storeUnderTest(dir.path)
const root = store.config.imageRootDir
const databasePath = store.config.databasePath
const png = makePng(2, 2, 7)
const jpeg = readFileSync(join(fixturesDir, '200k.jpg'))
const baseConfig = {
  ...store.config,
  defaultEndpointEnabled: false,
  errorHandlingMode: 'throw',
  statelessKeyWindowLength: 20000,
  imageFormats: ['png', 'webp', 'jpg', 'jpeg'],
  maxImageBytes: 50 * 1024 * 1024,
}

const rows = () => store.rows()

/** Snapshot of every stored image and every row. */
const snapshot = () => ({ blobs: store.blobs(), rows: rows() })

/** Captures console.warn calls while `fn` runs. */
async function capturingWarnings(fn) {
  const original = console.warn
  const warnings = []
  console.warn = (...args) => warnings.push(args)
  try {
    return { result: await fn(), warnings }
  } finally {
    console.warn = original
  }
}

before(() => backend.initPixstoreBackend(baseConfig))
after(async () => {
  await backend.closePixstoreBackend()
  await store.stop()
  dir.remove()
})
beforeEach(() => backend.initPixstoreBackend({ errorHandlingMode: 'throw' }))

test('saveImage stores the encrypted image and a pixstore row', async () => {
  const record = await backend.saveImage(png, ' My Dir! ')
  assert.match(record.id, /^mydir:[0-9a-z]{16}$/)
  assert.deepEqual(Object.keys(record).sort(), ['id', 'meta', 'statelessProof', 'token'])
  assert.deepEqual(Object.keys(record.meta), ['key', 'iv', 'tag'])
  assert.ok(Math.abs(record.token - Date.now()) < 5000)
  assert.equal(Buffer.from(record.meta.key, 'base64').length, 32)
  assert.equal(Buffer.from(record.meta.iv, 'base64').length, 12)
  assert.equal(Buffer.from(record.meta.tag, 'base64').length, 16)
  const ciphertext = store.ciphertextOf(record)
  assert.equal(ciphertext.length, png.length + 1, 'format byte + image, without the tag')
  assert.notDeepEqual(ciphertext.subarray(1), png)
  const row = rows().find((r) => r.id === record.id)
  assert.equal(row.token, record.token)
  assert.equal(row.meta, JSON.stringify(record.meta))
  assert.deepEqual(backend.getImageRecord(record.id), record)
  const { bytes, formatByte } = await openPayload(await backend.customEndpointHelper(record.id, undefined, record.statelessProof), record)
  assert.equal(formatByte, 1)
  assert.deepEqual(bytes, png)
})

test('a Uint8Array works like a Buffer, and ids without dir have no prefix (a file at the pixstore path)', { skip: localOnly }, async () => {
  const record = await backend.saveImage(new Uint8Array(png))
  assert.match(record.id, /^[0-9a-z]{16}$/)
  statSync(join(root, `${record.id}.pixstore-image`))
})

test('saveImageFromFile, updateImage, updateImageFromFile, imageExists, deleteImage', async () => {
  const jpegPath = join(fixturesDir, '200k.jpg')
  const saved = await backend.saveImageFromFile(jpegPath, 'photos')
  const first = await openPayload(await backend.customEndpointHelper(saved.id, undefined, saved.statelessProof), saved)
  assert.equal(first.formatByte, 3, "JPEG is detected as 'jpg', the third format")
  assert.deepEqual(first.bytes, jpeg)

  const updated = await backend.updateImage(saved.id, png)
  assert.equal(updated.id, saved.id)
  assert.ok(updated.token > saved.token)
  assert.notEqual(updated.meta.key, saved.meta.key)
  const second = await backend.updateImageFromFile(saved.id, jpegPath)
  assert.ok(second.token > updated.token)
  assert.deepEqual(backend.getImageRecord(saved.id), second)

  assert.equal(await backend.imageExists(saved.id), true)
  assert.equal(await backend.deleteImage(saved.id), true)
  assert.equal(await backend.imageExists(saved.id), false)
  assert.equal(await backend.deleteImage(saved.id), false)
  assert.equal(backend.getImageRecord(saved.id), null)
  assert.equal(await backend.imageExists('neverexisted'), false)
  if (!remote) {
    // A file without a record exists too, as in pixstore (answered after a look at the disk).
    writeFileSync(join(dir.path, 'images', 'fileonly.pixstore-image'), 'x')
    assert.equal(await backend.imageExists('fileonly'), true)
  }
})

test('updateImage of an unknown id is a PixstoreError with the reference message', async () => {
  const before = snapshot()
  await assert.rejects(backend.updateImage('unknownid', png), (err) => err instanceof PixstoreError && err.message === 'Image not found: unknownid')
  await assert.rejects(backend.updateImageFromFile('unknownid', join(fixturesDir, 'tiny.png')), { message: 'Image not found: unknownid' })
  assert.deepEqual(snapshot(), before)
})

const textFile = join(dir.path, 'notes.txt')
const gifFile = join(dir.path, 'anim.gif')
writeFileSync(textFile, 'hello, not an image')
writeFileSync(gifFile, Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1'))

const badImages = [
  ['a string', 'not a buffer', /Invalid image file/],
  ['a number', 42, /Invalid image file/],
  ['null', null, /Invalid image file/],
  ['a plain object', { length: 3 }, /Invalid image file/],
  ['an empty buffer', Buffer.alloc(0), /^Invalid image file$/],
  ['text bytes', Buffer.from('hello world, plain text'), /^Invalid image file$/],
  ['a GIF (not in imageFormats)', readFileSync(gifFile), /^Invalid image file$/],
]

for (const [name, input, message] of badImages) {
  test(`saveImage and updateImage refuse ${name} and change nothing`, async () => {
    const existing = await backend.saveImage(png)
    const before = snapshot()
    await assert.rejects(backend.saveImage(input), (err) => err instanceof PixstoreError && message.test(err.message))
    await assert.rejects(backend.updateImage(existing.id, input), (err) => err instanceof PixstoreError && message.test(err.message))
    assert.deepEqual(snapshot(), before)
    if (!remote) assert.deepEqual(listFiles(join(root, '.pixstore-tmp')).filter((f) => f.endsWith('.tmp')), [])
  })
}

const badPaths = [
  ['a text file', textFile, /^Invalid image file$/],
  ['a GIF file', gifFile, /^Invalid image file$/],
  ['a missing path', join(dir.path, 'missing.png'), /^Image file not found: /],
  ['a directory', fixturesDir, /^Not a file: /],
  ['a non-string path', 17, /Invalid file path/],
]

for (const [name, input, message] of badPaths) {
  test(`saveImageFromFile and updateImageFromFile refuse ${name} and change nothing`, async () => {
    const existing = await backend.saveImage(png)
    const before = snapshot()
    await assert.rejects(backend.saveImageFromFile(input), (err) => err instanceof PixstoreError && message.test(err.message))
    await assert.rejects(backend.updateImageFromFile(existing.id, input), (err) => err instanceof PixstoreError && message.test(err.message))
    assert.deepEqual(snapshot(), before)
  })
}

// Ids pixstore could never have generated behave like ids that do not exist
// (SPEC, deliberate differences): lookups give null/false, updates "Image not
// found" — and nothing reaches the disk or the database.
const impossibleIds = [
  '../escape', '..', 'a/b', 'a\\b', 'nul\0byte', 'a:b:c', 'UPPER', '', 'x'.repeat(10_000),
  'backend-image-service:does-not-exist', '/etc/passwd', 'dir:../../x', 'a b', 'é', 'dir:',
]

for (const id of impossibleIds) {
  test(`the impossible id ${JSON.stringify(id.slice(0, 40))} is simply absent, and nothing is touched`, async () => {
    const before = snapshot()
    assert.equal(backend.getImageRecord(id), null)
    assert.equal(await backend.imageExists(id), false)
    assert.equal(await backend.deleteImage(id), false)
    await assert.rejects(backend.updateImage(id, png), (err) => err instanceof PixstoreError && err.message === `Image not found: ${id}`)
    await assert.rejects(backend.updateImageFromFile(id, join(fixturesDir, 'tiny.png')), { message: `Image not found: ${id}` })
    // Like pixstore, the file is checked before the record.
    await assert.rejects(backend.updateImageFromFile(id, textFile), { message: 'Invalid image file' })
    assert.deepEqual(snapshot(), before)
  })
}

test('an id that is not a string is absent, as any id that could not have been generated', async () => {
  const before = snapshot()
  for (const id of [42, null, undefined, {}, ['abc']]) {
    assert.equal(backend.getImageRecord(id), null)
    assert.equal(await backend.getImageRecordAsync(id), null)
    assert.equal(await backend.imageExists(id), false)
    assert.equal(await backend.deleteImage(id), false)
    await assert.rejects(backend.updateImage(id, png), (err) => err instanceof PixstoreError && err.message === `Image not found: ${String(id)}`)
  }
  assert.deepEqual(snapshot(), before)
})

test('like pixstore, updateImage of an unknown id is `Image not found` whatever the buffer; of a known id, a bad buffer is `Invalid image file`', async () => {
  await assert.rejects(backend.updateImage('zzzzzzzzzzzz', null), { message: 'Image not found: zzzzzzzzzzzz' })
  const record = await backend.saveImage(png)
  await assert.rejects(backend.updateImage(record.id, null), (err) => err instanceof PixstoreError && /^Invalid image file/.test(err.message))
})

test('an ArrayBuffer is an image too (pixstore takes one), and a Buffer or file: URL a path', async () => {
  const copy = new Uint8Array(png).buffer
  const fromArrayBuffer = await backend.saveImage(copy)
  assert.deepEqual((await openPayload(await backend.customEndpointHelper(fromArrayBuffer.id, undefined, fromArrayBuffer.statelessProof), fromArrayBuffer)).bytes, png)
  const file = join(fixturesDir, 'tiny.png')
  for (const path of [Buffer.from(file), new URL(`file://${file}`)]) {
    const record = await backend.saveImageFromFile(path)
    assert.deepEqual((await openPayload(await backend.customEndpointHelper(record.id, undefined, record.statelessProof), record)).bytes, readFileSync(file))
    assert.ok(await backend.updateImageFromFile(record.id, path))
  }
  const zero = await backend.saveImage(png, 0)
  assert.doesNotMatch(zero.id, /:/, 'a falsy dir adds no prefix, as in pixstore')
})

test('a dir that would make an over-long id is refused', async () => {
  await assert.rejects(backend.saveImage(png, 'd'.repeat(500)), PixstoreError)
})

test('without maxImageBytes there is no size limit, as in pixstore: a 51 MiB image is stored', () => {
  const where = mkdtempSync(join(tmpdir(), 'pixstore-native-large-'))
  try {
    const script = `
      const backend = await import('pixstore-native/backend')
      backend.initPixstoreBackend({ imageRootDir: ${JSON.stringify(join(where, 'images'))}, databasePath: ${JSON.stringify(join(where, 'store.sqlite'))}, defaultEndpointEnabled: false, errorHandlingMode: 'throw' })
      const large = Buffer.alloc(51 * 1024 * 1024)
      large.set(${JSON.stringify([...png.subarray(0, 33)])})
      const record = await backend.saveImage(large)
      process.stdout.write(String(record.id.length > 0))
      await backend.closePixstoreBackend()`
    assert.equal(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: new URL('.', import.meta.url), encoding: 'utf8' }), 'true')
  } finally {
    rmSync(where, { recursive: true, force: true })
  }
})

test('maxImageBytes refuses larger images before encrypting them', async () => {
  backend.initPixstoreBackend({ maxImageBytes: png.length - 1 })
  try {
    const before = snapshot()
    await assert.rejects(backend.saveImage(png), (err) => err instanceof PixstoreError && /too large/.test(err.message))
    await assert.rejects(backend.saveImageFromFile(join(fixturesDir, '200k.jpg')), /too large/)
    assert.deepEqual(snapshot(), before)
  } finally {
    backend.initPixstoreBackend({ maxImageBytes: baseConfig.maxImageBytes })
  }
})

test('customEndpointHelper answers every wire state', async () => {
  const record = await backend.saveImage(png)
  const state = async (...args) => decodeWirePayload(await backend.customEndpointHelper(...args)).state
  assert.equal(await state(undefined, undefined, record.statelessProof), 3) // MissingID
  assert.equal(await state('', record.token, record.statelessProof), 3)
  assert.equal(await state(record.id, record.token, undefined), 4) // MissingProof
  assert.equal(await state(record.id, record.token, ''), 4)
  assert.equal(await state(record.id, record.token, 'AAAAAAAAAAA='), 5) // InvalidProof
  assert.equal(await state('../etc/passwd', record.token, record.statelessProof), 5)
  assert.equal(await state('ghostid', undefined, record.statelessProof), 5, 'a proof is bound to its id')

  const success = await backend.customEndpointHelper(record.id, record.token, record.statelessProof)
  assert.ok(success instanceof Uint8Array)
  const opened = await openPayload(success, record)
  assert.equal(opened.state, 0)
  assert.deepEqual(opened.bytes, png)
  const updated = await openPayload(await backend.customEndpointHelper(record.id, record.token - 1, record.statelessProof), record)
  assert.equal(updated.state, 1)
  assert.equal(updated.token, record.token)
  assert.deepEqual(updated.bytes, png)
  const untokened = await openPayload(await backend.customEndpointHelper(record.id, undefined, record.statelessProof), record)
  assert.equal(untokened.state, 1)

  await backend.deleteImage(record.id)
  assert.equal(await state(record.id, record.token, record.statelessProof), 2) // NotFound
})

test('customEndpointHelper is refused while the default endpoint runs', async () => {
  const { freePort } = await import('./helpers.mjs')
  backend.initPixstoreBackend({ defaultEndpointEnabled: true, defaultEndpointListenHost: '127.0.0.1', defaultEndpointListenPort: await freePort() })
  try {
    await assert.rejects(backend.customEndpointHelper('abc', 1, 'proof'), (err) =>
      err instanceof PixstoreError &&
      err.message === 'Pixstore custom endpoint mode is not active. Please disable the default endpoint before using customEndpointHelper().')
  } finally {
    backend.initPixstoreBackend({ defaultEndpointEnabled: false })
  }
  const record = await backend.saveImage(png)
  assert.equal(decodeWirePayload(await backend.customEndpointHelper(record.id, record.token, record.statelessProof)).state, 0)
})

test("error mode 'hybrid': PixstoreError → console.warn + null + getLastPixstoreError; other errors throw", async () => {
  backend.initPixstoreBackend({ errorHandlingMode: 'hybrid' })
  const { result, warnings } = await capturingWarnings(() => backend.updateImage('hybridmissing', png))
  assert.equal(result, null)
  assert.equal(warnings.length, 1)
  assert.ok(warnings[0][0] instanceof PixstoreError)
  assert.equal(getLastPixstoreError().message, 'Image not found: hybridmissing')
  const sync = await capturingWarnings(() => backend.getImageRecord(17))
  assert.equal(sync.result, null)
  assert.equal(sync.warnings.length, 0, 'an id that is not a string is simply absent')

  // An internal failure: reading /proc/self/mem from its start fails with EIO.
  await assert.rejects(backend.saveImageFromFile('/proc/self/mem'), (err) => !(err instanceof PixstoreError) && err.code === 'PIXSTORE_INTERNAL')
  assert.equal(getLastPixstoreError().message, 'Image not found: hybridmissing', 'only PixstoreErrors are remembered')
})

test("error mode 'warn' logs every error and returns null", async () => {
  backend.initPixstoreBackend({ errorHandlingMode: 'warn' })
  const pixstoreError = await capturingWarnings(() => backend.updateImage('warnmissing', png))
  assert.equal(pixstoreError.result, null)
  assert.equal(pixstoreError.warnings.length, 1)
  const internal = await capturingWarnings(() => backend.saveImageFromFile('/proc/self/mem'))
  assert.equal(internal.result, null)
  assert.equal(internal.warnings[0][0].code, 'PIXSTORE_INTERNAL')
})

test("error mode 'silent' returns null without a word", async () => {
  backend.initPixstoreBackend({ errorHandlingMode: 'silent' })
  const { result, warnings } = await capturingWarnings(() => backend.updateImage('silentmissing', png))
  assert.equal(result, null)
  assert.equal(warnings.length, 0)
  assert.equal((await capturingWarnings(() => backend.getImageRecord(17))).result, null)
})

/** Runs `check` while the backend is closed (a synchronous call then fails with a PixstoreError), then reopens it. */
async function whileClosed(check) {
  await backend.closePixstoreBackend()
  try {
    check()
  } finally {
    backend.initPixstoreBackend(baseConfig)
  }
}

test("error mode 'custom' hands errors to the handler, and throws without one", async () => {
  backend.initPixstoreBackend({ errorHandlingMode: 'custom' })
  const seen = []
  setCustomErrorHandler((err) => seen.push(err))
  try {
    assert.equal(await backend.updateImage('custommissing', png), null)
    await whileClosed(() => assert.equal(backend.getImageRecord('abc'), null))
    backend.initPixstoreBackend({ errorHandlingMode: 'custom' })
    assert.equal(seen.length, 2)
    assert.ok(seen.every((err) => err instanceof PixstoreError))
  } finally {
    setCustomErrorHandler(null)
  }
  await assert.rejects(backend.updateImage('custommissing', png), { message: 'Custom error handler is not set' })
  await whileClosed(() => assert.throws(() => backend.getImageRecord('abc'), { message: 'Custom error handler is not set' }))
})

test("error mode 'throw' throws PixstoreErrors", async () => {
  await assert.rejects(backend.updateImage('a/b', png), PixstoreError)
  await whileClosed(() => assert.throws(() => backend.getImageRecord('abc'), PixstoreError))
})

const PORT_MESSAGE = (key) => `${key} must be an integer between 1 and 65535`
const WINDOW_MESSAGE = 'statelessKeyWindowLength must be a positive integer (milliseconds) or -1 for non-expiring proof'
const badConfigs = [
  [{ defaultEndpointListenPort: 0 }, PORT_MESSAGE('defaultEndpointListenPort')],
  [{ defaultEndpointListenPort: 70000 }, PORT_MESSAGE('defaultEndpointListenPort')],
  [{ defaultEndpointListenPort: 3000.5 }, PORT_MESSAGE('defaultEndpointListenPort')],
  [{ defaultEndpointConnectPort: 0 }, PORT_MESSAGE('defaultEndpointConnectPort')],
  [{ statelessKeyWindowLength: 0 }, WINDOW_MESSAGE],
  [{ statelessKeyWindowLength: -5 }, WINDOW_MESSAGE],
  [{ imageRootDir: '   ' }, 'imageRootDir cannot be empty'],
  [{ imageRootDir: '\uFEFF\u00A0' }, 'imageRootDir cannot be empty'],
  [{ imageStoreName: ' ' }, 'imageStoreName cannot be empty'],
  [{ frontendImageCacheLimit: 10 }, 'frontendCleanupBatch must be smaller than frontendImageCacheLimit'],
  [{ frontendImageCacheLimit: 100, frontendCleanupBatch: 100 }, 'frontendCleanupBatch must be smaller than frontendImageCacheLimit'],
  [{ imageFormats: [] }, /imageFormats must be a non-empty array/],
  [{ imageFormats: ['png', 'exe'] }, /imageFormats must be a non-empty array/],
  [{ errorHandlingMode: 'loud' }, /errorHandlingMode must be one of/],
  [{ maxImageBytes: -1 }, 'maxImageBytes must be a positive integer'],
  [{ durability: 'maybe' }, "durability must be 'process' or 'fsync'"],
  [{ defaultEndpointRoute: 'no-slash' }, /defaultEndpointRoute must start with/],
]

// Every key with every kind of wrong value gets its own message (the
// reference's where it has one), never a conversion error.
const messageOf = {
  imageFormats: /^imageFormats must be a non-empty array/,
  imageRootDir: /^imageRootDir (must be a string|cannot be empty)$/,
  imageStoreName: /^imageStoreName (must be a string|cannot be empty)$/,
  databasePath: /^databasePath (must be a string|cannot be empty)$/,
  statelessKeyWindowLength: WINDOW_MESSAGE,
  defaultEndpointEnabled: 'defaultEndpointEnabled must be a boolean',
  defaultEndpointListenHost: /^defaultEndpointListenHost (must be a string|cannot be empty)$/,
  defaultEndpointListenPort: PORT_MESSAGE('defaultEndpointListenPort'),
  defaultEndpointConnectPort: PORT_MESSAGE('defaultEndpointConnectPort'),
  defaultEndpointRoute: /^defaultEndpointRoute (must be a string|must start with '\/')/,
  accessControlAllowOrigin: /^accessControlAllowOrigin (must be a string|must be a non-empty header value)$/,
  errorHandlingMode: /^errorHandlingMode must be one of hybrid, throw, warn, silent, custom$/,
  maxImageBytes: 'maxImageBytes must be a positive integer',
  durability: "durability must be 'process' or 'fsync'",
}
const wrongValues = [['NaN', NaN], ['Infinity', Infinity], ['-Infinity', -Infinity], ['null', null], ['an object', { a: 1 }],
  ['an array', [1]], ['a function', () => 1], ['a symbol', Symbol('s')], ['a bigint', 10n], ['true', true]]
for (const [key, message] of Object.entries(messageOf)) {
  const numeric = ['statelessKeyWindowLength', 'defaultEndpointListenPort', 'defaultEndpointConnectPort', 'maxImageBytes'].includes(key)
  const stringy = numeric ? [['a numeric string', '3001']] : [['a number', 3001]]
  const boolean = key === 'defaultEndpointEnabled'
  for (const [name, value] of [...wrongValues, ...stringy, ...(boolean ? [['a string', 'true']] : [])]) {
    if (boolean && value === true) continue
    if (key === 'imageFormats' && name === 'an array') continue // [1] is refused below with the same message
    badConfigs.push([{ [key]: value }, message, `${key}: ${name}`])
  }
}
badConfigs.push([{ imageFormats: [1] }, messageOf.imageFormats], [{ imageFormats: [NaN] }, messageOf.imageFormats])

for (const [config, message, name = JSON.stringify(config)] of badConfigs) {
  test(`initPixstoreBackend(${name}) throws a plain Error with its message and changes nothing`, async () => {
    assert.throws(() => backend.initPixstoreBackend({ databasePath: join(dir.path, 'other.sqlite'), ...config }), (err) =>
      !(err instanceof PixstoreError) && (typeof message === 'string' ? err.message === message : message.test(err.message)))
    // Still the old store and the old mode ('throw').
    const record = await backend.saveImage(png)
    assert.ok(rows().some((r) => r.id === record.id))
    await assert.rejects(backend.updateImage('a/b', png), PixstoreError)
  })
}

test('initPixstoreBackend refuses a non-object config', () => {
  assert.throws(() => backend.initPixstoreBackend('nope'), /configuration object/)
})

test('re-init with another databasePath switches stores, and back', { skip: localOnly }, async () => {
  const record = await backend.saveImage(png)
  const otherDir = tempDir()
  try {
    backend.initPixstoreBackend({ databasePath: join(otherDir.path, 'b.sqlite'), imageRootDir: join(otherDir.path, 'img') })
    assert.equal(backend.getImageRecord(record.id), null)
    const other = await backend.saveImage(png)
    assert.ok(listFiles(join(otherDir.path, 'img')).includes(`${other.id}.pixstore-image`))
    backend.initPixstoreBackend({ databasePath, imageRootDir: root })
    assert.deepEqual(backend.getImageRecord(record.id).meta, record.meta)
  } finally {
    backend.initPixstoreBackend({ databasePath, imageRootDir: root })
    otherDir.remove()
  }
})

test('closePixstoreBackend closes; calls then fail until init again', async () => {
  await backend.closePixstoreBackend()
  await assert.rejects(backend.saveImage(png), (err) => err instanceof PixstoreError && /initPixstoreBackend/.test(err.message))
  assert.throws(() => backend.getImageRecord('abc'), /initPixstoreBackend/)
  backend.initPixstoreBackend(baseConfig)
  assert.ok(await backend.saveImage(png))
})
