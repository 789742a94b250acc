// pixstore/frontend (npm, unmodified) in headless Chromium against
// pixstore-native: images of every format and several sizes through the
// default endpoint and through an Express custom endpoint, cache
// revalidation, expired proofs, deleted images, and CORS as a browser enforces it.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import express from 'express'
import * as backend from 'pixstore-native/backend'
import { tempDir, freePort, makePng, fixturesDir, sha256 } from './helpers.mjs'
import { browserAvailability, launchBrowser, servePage } from './browser/harness.mjs'

const availability = browserAvailability()
const dir = tempDir()
const images = [
  ['tiny.png', 'image/png'],
  ['tiny.webp', 'image/webp'],
  ['tiny.jpg', 'image/jpg'],
  ['medium.png', 'image/png'],
  ['medium.webp', 'image/webp'],
  ['200k.jpg', 'image/jpg'],
  ['large.jpg', 'image/jpg'],
].map(([name, type]) => ({ name, type, bytes: readFileSync(join(fixturesDir, name)) }))
images.push({ name: 'generated 4 MB png', type: 'image/png', bytes: makePng(1200, 1150, 99) })

let endpointPort
let page
let pageServer
let browser
const apiRequests = []
const wireStates = []
/** The state byte of the last image response the page received. */
const lastWireState = async () => (await Promise.all(wireStates)).at(-1)

/** Frontend config for the default endpoint; each test gets its own IndexedDB name unless told. */
const frontendConfig = (extra = {}) => ({
  defaultEndpointConnectHost: '127.0.0.1',
  defaultEndpointConnectPort: endpointPort,
  defaultEndpointRoute: '/pixstore-image',
  frontendDbName: `pixstore-${Math.random().toString(36).slice(2)}`,
  ...extra,
})

async function digest(record, target = page) {
  return target.evaluate((r) => window.pixstoreTest.imageDigest(r), record)
}

async function openPage(context) {
  const newPage = await context.newPage()
  newPage.on('request', (request) => request.url().includes(`:${endpointPort}/`) && apiRequests.push(request.url()))
  newPage.on('response', (response) => {
    if (response.url().includes(`:${endpointPort}/pixstore-image/`) && response.request().method() === 'GET') {
      wireStates.push(response.body().then((body) => body[0]))
    }
  })
  await newPage.goto(pageServer.origin)
  return newPage
}

before(async () => {
  if (availability.skip) return
  endpointPort = await freePort()
  backend.initPixstoreBackend({
    imageRootDir: join(dir.path, 'images'),
    databasePath: join(dir.path, 'store.sqlite'),
    defaultEndpointListenHost: '127.0.0.1',
    defaultEndpointListenPort: endpointPort,
    statelessKeyWindowLength: 20000,
    errorHandlingMode: 'throw',
  })
  pageServer = await servePage(new URL('./browser/page-entry.mjs', import.meta.url).pathname)
  browser = await launchBrowser()
  page = await openPage(browser.context)
})

after(async () => {
  await browser?.close()
  await pageServer?.close()
  await backend.closePixstoreBackend()
  dir.remove()
})

test('PNG, WebP and JPEG from 1 px to 4 MB decrypt to the original bytes (default endpoint)', availability, async () => {
  await page.evaluate((config) => window.pixstoreTest.init(config), frontendConfig())
  for (const image of images) {
    const record = await backend.saveImage(image.bytes)
    const result = await digest(record)
    assert.deepEqual(result, { hash: sha256(image.bytes), type: image.type }, image.name)
  }
})

test('cache: a second getImage is served from IndexedDB; updates and fresh profiles revalidate', availability, async () => {
  await page.evaluate((config) => window.pixstoreTest.init(config), frontendConfig())
  const [first, second] = [images[3].bytes, images[5].bytes]
  const record = await backend.saveImage(first)

  apiRequests.length = 0
  wireStates.length = 0
  assert.equal((await digest(record)).hash, sha256(first))
  assert.equal(apiRequests.length, 1)
  assert.equal((await digest(record)).hash, sha256(first))
  assert.equal(apiRequests.length, 1, 'the second getImage did not hit the endpoint')

  // The app hands out the record of an update; the image changes once more
  // before the browser fetches it: the server answers Updated with the newest image.
  const stale = await backend.updateImage(record.id, images[0].bytes)
  await backend.updateImage(record.id, second)
  assert.equal((await digest(stale)).hash, sha256(second))
  assert.equal(await lastWireState(), 1, 'state Updated')
  assert.equal(apiRequests.length, 2)
  // A current record after an update: fetched once (state Success), then cached.
  const third = await backend.updateImage(record.id, first)
  assert.equal((await digest(third)).hash, sha256(first))
  assert.equal(await lastWireState(), 0, 'state Success')
  assert.equal((await digest(third)).hash, sha256(first))
  assert.equal(apiRequests.length, 3)

  const fresh = await launchBrowser()
  try {
    const freshPage = await openPage(fresh.context)
    await freshPage.evaluate((config) => window.pixstoreTest.init(config), frontendConfig())
    const current = backend.getImageRecord(record.id)
    assert.equal((await digest(current, freshPage)).hash, sha256(first))
    assert.equal(await lastWireState(), 0, 'state Success for a current record in an empty cache')
  } finally {
    await fresh.close()
  }
})

test('an expired proof and a deleted image surface as frontend errors, not hangs', availability, async () => {
  await page.evaluate((config) => window.pixstoreTest.init(config), frontendConfig())
  backend.initPixstoreBackend({ statelessKeyWindowLength: 300 })
  try {
    const record = await backend.saveImage(images[0].bytes)
    await new Promise((resolve) => setTimeout(resolve, 700)) // two windows later
    assert.match((await digest(record)).error, /InvalidProof/)
  } finally {
    backend.initPixstoreBackend({ statelessKeyWindowLength: 20000 })
  }
  const record = await backend.saveImage(images[0].bytes)
  await backend.deleteImage(record.id)
  assert.match((await digest(record)).error, /NotFound/)
})

test('CORS: the page origin allowed works, another origin is blocked by the browser', availability, async () => {
  await page.evaluate((config) => window.pixstoreTest.init(config), frontendConfig())
  const image = images[1].bytes
  try {
    backend.initPixstoreBackend({ accessControlAllowOrigin: pageServer.origin })
    assert.equal((await digest(await backend.saveImage(image))).hash, sha256(image))
    backend.initPixstoreBackend({ accessControlAllowOrigin: 'http://elsewhere.example' })
    const blocked = await digest(await backend.saveImage(image))
    assert.match(blocked.error, /Failed to fetch/)
  } finally {
    backend.initPixstoreBackend({ accessControlAllowOrigin: '*' })
  }
})

test('an Express custom endpoint that authorizes and calls customEndpointHelper serves every image', availability, async () => {
  backend.initPixstoreBackend({ defaultEndpointEnabled: false })
  const app = express()
  app.use((req, res, next) => {
    res.set({ 'Access-Control-Allow-Origin': pageServer.origin, 'Access-Control-Allow-Headers': 'authorization, x-pixstore-proof, x-pixstore-token' })
    next()
  })
  app.options('/images/:id', (req, res) => res.sendStatus(204))
  app.get('/images/:id', async (req, res) => {
    if (req.get('authorization') !== 'Bearer let-me-in') return res.sendStatus(401)
    const token = req.get('x-pixstore-token')
    const payload = await backend.customEndpointHelper(req.params.id, token ? Number(token) : undefined, req.get('x-pixstore-proof'))
    res.type('application/octet-stream').send(Buffer.from(payload))
  })
  const server = await new Promise((resolve) => { const s = app.listen(0, '127.0.0.1', () => resolve(s)) })
  try {
    const url = `http://127.0.0.1:${server.address().port}/images`
    await page.evaluate(([config, custom]) => window.pixstoreTest.init(config, custom), [frontendConfig(), { url, token: 'let-me-in' }])
    for (const image of images) {
      const record = await backend.saveImage(image.bytes)
      assert.deepEqual(await digest(record), { hash: sha256(image.bytes), type: image.type }, image.name)
    }
    await page.evaluate(([config, custom]) => window.pixstoreTest.init(config, custom), [frontendConfig(), { url, token: 'wrong' }])
    assert.match((await digest(await backend.saveImage(images[0].bytes))).error, /401/)
  } finally {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    backend.initPixstoreBackend({ defaultEndpointEnabled: true })
  }
})
