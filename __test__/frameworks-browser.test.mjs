// pixstore/frontend (npm, unmodified) in headless Chromium fetching images
// through the framework glue in each real framework: a custom fetcher with a
// bearer token that authorize checks (allowed: the image renders, cache
// revalidation included; refused: the frontend sees the 403), and the default
// fetcher pointed at a framework's route. The page is on another origin, so
// the browser enforces CORS on every answer, the 403 included.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as backend from 'pixstore-native/backend'
import { tempDir, fixturesDir, sha256 } from './helpers.mjs'
import { browserAvailability, launchBrowser, servePage } from './browser/harness.mjs'
import { start } from './frameworks/servers.mjs'

const availability = browserAvailability()
const dir = tempDir()
const store = {
  imageRootDir: join(dir.path, 'images'),
  databasePath: join(dir.path, 'store.sqlite'),
  defaultEndpointEnabled: false,
  errorHandlingMode: 'throw',
}
const images = [
  ['tiny.png', 'image/png'],
  ['medium.webp', 'image/webp'],
  ['200k.jpg', 'image/jpg'],
].map(([name, type]) => ({ name, type, bytes: readFileSync(join(fixturesDir, name)) }))

let pageServer
let browser
let page
const granted = new Set()

before(async () => {
  if (availability.skip) return
  backend.initPixstoreBackend(store)
  pageServer = await servePage(new URL('./browser/page-entry.mjs', import.meta.url).pathname)
  browser = await launchBrowser()
  page = await browser.context.newPage()
  await page.goto(pageServer.origin)
})

after(async () => {
  await browser?.close()
  await pageServer?.close()
  await backend.closePixstoreBackend()
  dir.remove()
})

const digest = (record) => page.evaluate((r) => window.pixstoreTest.imageDigest(r), record)
const frontendConfig = (extra = {}) => ({ frontendDbName: `pixstore-${Math.random().toString(36).slice(2)}`, ...extra })

/** The app's rule: a bearer token grants the images listed for it. */
const authorize = (req, imageId) => granted.has(`${req.headers.authorization} ${imageId}`)

async function startFramework(name, options) {
  const server = await start(name, options, { nest: { ...options, backend: store } })
  return {
    ...server,
    async close() {
      await server.close()
      backend.initPixstoreBackend(store) // a Nest app closes the backend with itself
    },
  }
}

for (const name of ['express', 'fastify', 'nest-express', 'nest-fastify']) {
  test(`${name}: pixstore/frontend renders images through the route when authorize allows, and sees the 403 when not`, availability, async () => {
    const server = await startFramework(name, { authorize, accessControlAllowOrigin: pageServer.origin })
    try {
      const custom = { url: `${server.base}/pixstore-image`, token: 'let-me-in' }
      await page.evaluate(([config, c]) => window.pixstoreTest.init(config, c), [frontendConfig(), custom])
      for (const image of images) {
        const record = await backend.saveImage(image.bytes, 'gallery')
        granted.add(`Bearer let-me-in ${record.id}`)
        assert.deepEqual(await digest(record), { hash: sha256(image.bytes), type: image.type }, image.name)
      }
      // A stale record of an image updated since: the route answers Updated with the newest image.
      const record = await backend.saveImage(images[0].bytes)
      granted.add(`Bearer let-me-in ${record.id}`)
      await backend.updateImage(record.id, images[1].bytes)
      assert.deepEqual(await digest(record), { hash: sha256(images[1].bytes), type: images[1].type })

      // Refused: a token that does not grant this image. The browser can read the status.
      const refused = await backend.saveImage(images[2].bytes)
      assert.deepEqual(await digest(refused), { error: 'Error: custom endpoint answered 403' })
    } finally {
      await server.close()
    }
  })
}

for (const name of ['express', 'fastify']) {
  test(`${name}: the frontend's default fetcher works against the route as against the default endpoint`, availability, async () => {
    const server = await startFramework(name, { accessControlAllowOrigin: pageServer.origin })
    try {
      const { hostname, port } = new URL(server.base)
      const config = frontendConfig({ defaultEndpointConnectHost: hostname, defaultEndpointConnectPort: Number(port), defaultEndpointRoute: '/pixstore-image' })
      await page.evaluate((c) => window.pixstoreTest.init(c), config)
      const record = await backend.saveImage(images[1].bytes)
      assert.deepEqual(await digest(record), { hash: sha256(images[1].bytes), type: images[1].type })
    } finally {
      await server.close()
    }
  })
}

test('express: with the default fetcher, a 403 from authorize is the frontend error pixstore gives for a refused fetch', availability, async () => {
  const server = await startFramework('express', { authorize: () => false })
  try {
    const { hostname, port } = new URL(server.base)
    await page.evaluate((c) => window.pixstoreTest.init(c), frontendConfig({ defaultEndpointConnectHost: hostname, defaultEndpointConnectPort: Number(port), defaultEndpointRoute: '/pixstore-image' }))
    const record = await backend.saveImage(images[0].bytes)
    assert.deepEqual(await digest(record), { error: 'PixstoreError: Failed to fetch image: 403 Forbidden' })
  } finally {
    await server.close()
  }
})
