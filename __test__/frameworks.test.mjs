// The framework glue (pixstore-native/express, /fastify, /nestjs) over HTTP,
// in the real frameworks from npm (Express 5 and 4, Fastify 5, Nest 12 on
// Express and on Fastify): every answer compared with the default endpoint's
// (HEAD and Cache-Control/nosniff included) and so is every request log
// entry, authorize, errors and a null from the helper, mounting and options,
// loading without the other frameworks, and the Nest module's lifecycle. The
// browser side is in frameworks-browser.test.mjs.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { Injectable, Module } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import Fastify from 'fastify'
import * as backend from 'pixstore-native/backend'
import { PixstoreError } from 'pixstore-native/shared'
import { pixstoreRouter } from 'pixstore-native/express'
import pixstorePlugin from 'pixstore-native/fastify'
import { PixstoreModule } from 'pixstore-native/nestjs'
import { tempDir, freePort, makePng, openPayload, sha256 } from './helpers.mjs'
import { FRAMEWORKS, start } from './frameworks/servers.mjs'

const dir = tempDir()
const store = {
  imageRootDir: join(dir.path, 'images'),
  databasePath: join(dir.path, 'store.sqlite'),
  statelessKeyWindowLength: 20000,
  errorHandlingMode: 'throw',
}
const image = makePng(3, 2, 7)
const dirImage = makePng(1, 1, 3)
let record // a plain id
let dirRecord // an id with a dir prefix
let deleted // a record whose image was deleted (its proof is still valid)
let requests
const expected = new Map()
const expectedLog = new Map()

const CORS = ['access-control-allow-origin', 'access-control-allow-methods', 'access-control-allow-headers']
const EXTRA = ['cache-control', 'x-content-type-options']

/** What the tests compare of a response: status, CORS and the extra headers, type, length and body. */
async function snapshot(response) {
  const body = Buffer.from(await response.arrayBuffer())
  const headers = Object.fromEntries([...CORS, ...EXTRA].map((name) => [name, response.headers.get(name)]))
  headers['content-type'] = response.headers.get('content-type')
  if (response.status !== 204) headers['content-length'] = response.headers.get('content-length')
  return { status: response.status, headers, body: body.toString('hex') }
}

const send = (base, { method = 'GET', path, headers = {} }) => fetch(`${base}${path}`, { method, headers })

/** What the tests compare of a request log entry: all but who answered, when, and for whom. */
const logged = ({ source, durationMs, remoteAddress, ...rest }) => rest

/** Collects request log entries while `run` runs; waits for `count` of them (the endpoint's arrive in batches). */
async function collectLog(run) {
  const entries = []
  backend.setPixstoreRequestLogger((entry) => entries.push(entry))
  try {
    await run(entries)
  } finally {
    backend.setPixstoreRequestLogger(undefined)
  }
  return entries
}

async function waitFor(check, what) {
  const deadline = Date.now() + 5000
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/** The request matrix: every status code and wire state the default endpoint gives. */
function requestMatrix() {
  const id = encodeURIComponent(record.id)
  const current = { 'x-pixstore-proof': record.statelessProof, 'x-pixstore-token': String(record.token) }
  return [
    { name: 'Success', path: `/pixstore-image/${id}`, headers: current },
    { name: 'Success, query string ignored', path: `/pixstore-image/${id}?token=1&x=%zz`, headers: current },
    { name: 'Updated (stale token)', path: `/pixstore-image/${id}`, headers: { ...current, 'x-pixstore-token': '1' } },
    { name: 'Updated (no token)', path: `/pixstore-image/${id}`, headers: { 'x-pixstore-proof': record.statelessProof } },
    { name: 'Updated (token not a number)', path: `/pixstore-image/${id}`, headers: { ...current, 'x-pixstore-token': 'abc' } },
    { name: 'token with spaces reads like Number()', path: `/pixstore-image/${id}`, headers: { ...current, 'x-pixstore-token': ` ${record.token} ` } },
    { name: 'MissingProof', path: `/pixstore-image/${id}`, headers: { 'x-pixstore-token': String(record.token) } },
    { name: 'InvalidProof', path: `/pixstore-image/${id}`, headers: { ...current, 'x-pixstore-proof': 'AAAAAAAAAAA=' } },
    { name: 'InvalidProof (proof of another id)', path: `/pixstore-image/${id}`, headers: { 'x-pixstore-proof': dirRecord.statelessProof } },
    { name: 'NotFound (deleted image)', path: `/pixstore-image/${encodeURIComponent(deleted.id)}`, headers: { 'x-pixstore-proof': deleted.statelessProof } },
    { name: 'prefixed id, encoded', path: `/pixstore-image/${encodeURIComponent(dirRecord.id)}`, headers: { 'x-pixstore-proof': dirRecord.statelessProof } },
    { name: 'prefixed id, ":" not encoded', path: `/pixstore-image/${dirRecord.id}`, headers: { 'x-pixstore-proof': dirRecord.statelessProof } },
    { name: 'id with an encoded letter', path: `/pixstore-image/${id.replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16)}`)}`, headers: current },
    { name: 'route alone', path: '/pixstore-image' },
    { name: 'route with a slash', path: '/pixstore-image/' },
    { name: 'malformed percent-encoding', path: '/pixstore-image/%zz', skip: ['fastify', 'nest-fastify'] },
    { name: 'invalid UTF-8 escape', path: '/pixstore-image/%C0%AF', skip: ['fastify', 'nest-fastify'] },
    { name: 'two segments', path: '/pixstore-image/abc/def' },
    { name: 'upper case', path: '/pixstore-image/ABC' },
    { name: 'dots', path: '/pixstore-image/a..b' },
    { name: 'encoded slash', path: '/pixstore-image/..%2F..%2Fetc' },
    { name: 'two colons', path: '/pixstore-image/a:b:c' },
    { name: 'NUL', path: '/pixstore-image/abc%00' },
    { name: 'id of 240 characters', path: `/pixstore-image/${'a'.repeat(240)}`, headers: current },
    { name: 'id of 241 characters', path: `/pixstore-image/${'a'.repeat(241)}` },
    { name: 'OPTIONS preflight', method: 'OPTIONS', path: `/pixstore-image/${id}` },
    { name: 'POST', method: 'POST', path: `/pixstore-image/${id}` },
    { name: 'DELETE', method: 'DELETE', path: `/pixstore-image/${id}` },
    { name: 'HEAD Success', method: 'HEAD', path: `/pixstore-image/${id}`, headers: current },
    { name: 'HEAD Updated', method: 'HEAD', path: `/pixstore-image/${id}`, headers: { 'x-pixstore-proof': record.statelessProof } },
    { name: 'HEAD InvalidProof', method: 'HEAD', path: `/pixstore-image/${id}`, headers: { 'x-pixstore-proof': 'AAAAAAAAAAA=' } },
    { name: 'HEAD route alone', method: 'HEAD', path: '/pixstore-image' },
    { name: 'HEAD invalid id', method: 'HEAD', path: '/pixstore-image/a..b' },
  ]
}

before(async () => {
  const port = await freePort()
  backend.initPixstoreBackend({ ...store, defaultEndpointListenHost: '127.0.0.1', defaultEndpointListenPort: port })
  record = await backend.saveImage(image)
  dirRecord = await backend.saveImage(dirImage, 'Gallery Dir')
  deleted = await backend.saveImage(makePng(1, 1, 4))
  await backend.deleteImage(deleted.id)
  requests = requestMatrix()
  await collectLog(async (entries) => {
    for (const request of requests) {
      expected.set(request.name, await snapshot(await send(`http://127.0.0.1:${port}`, request)))
      await waitFor(() => entries.length === expectedLog.size + 1, `the log entry of ${request.name}`)
      expectedLog.set(request.name, entries.at(-1))
    }
  })
  backend.initPixstoreBackend({ defaultEndpointEnabled: false })
})

after(async () => {
  await backend.closePixstoreBackend()
  dir.remove()
})

/** Starts a framework; Nest apps get the test store (and close the backend when they close). */
async function startWith(name, options = {}, extra = {}) {
  return start(name, options, { ...extra, nest: { ...options, backend: store, ...extra.nest } })
}

async function stop(server) {
  await server.close()
  // A Nest app closes the backend with itself: open it again for the next test.
  backend.initPixstoreBackend({ ...store, defaultEndpointEnabled: false })
}

test('the default endpoint answers the matrix as documented (the reference for the frameworks)', async () => {
  const states = (name) => Buffer.from(expected.get(name).body, 'hex')[0]
  assert.equal(states('Success'), 0)
  assert.equal(states('Updated (stale token)'), 1)
  assert.equal(states('MissingProof'), 4)
  assert.equal(states('InvalidProof'), 5)
  assert.equal(states('NotFound (deleted image)'), 2)
  const statuses = Object.fromEntries([...expected].map(([name, { status }]) => [name, status]))
  assert.equal(statuses['route alone'], 400)
  assert.equal(statuses['malformed percent-encoding'], 400)
  assert.equal(statuses['two segments'], 400)
  assert.equal(statuses['OPTIONS preflight'], 204)
  assert.equal(statuses.POST, 404)
  const opened = await openPayload(Buffer.from(expected.get('Success').body, 'hex'), record)
  assert.equal(sha256(opened.bytes), sha256(image))
  assert.equal(statuses['HEAD Success'], 200)
  assert.equal(expected.get('HEAD Success').body, '')
  assert.equal(expected.get('HEAD Success').headers['content-length'], expected.get('Success').headers['content-length'])
  assert.equal(expected.get('Success').headers['cache-control'], 'no-store')
  assert.equal(expected.get('route alone').headers['x-content-type-options'], 'nosniff')
  assert.equal(expected.get('OPTIONS preflight').headers['cache-control'], null)
  assert.deepEqual(logged(expectedLog.get('Success')), {
    method: 'GET', route: '/pixstore-image', imageId: record.id, state: 'Success', status: 200, bytes: Buffer.from(expected.get('Success').body, 'hex').length,
  })
  assert.equal(expectedLog.get('HEAD Updated').state, 'Updated')
  assert.equal(expectedLog.get('HEAD Updated').bytes, 0)
  assert.equal(expectedLog.get('Success').source, 'endpoint')
})

for (const name of FRAMEWORKS) {
  test(`${name}: every answer and request log entry equals the default endpoint's (status, headers, bytes; route, id, state)`, async () => {
    const server = await startWith(name)
    try {
      await collectLog(async (entries) => {
        for (const request of requests) {
          if (request.skip?.includes(name)) continue
          assert.deepEqual(await snapshot(await send(server.base, request)), expected.get(request.name), request.name)
          const entry = entries.pop()
          assert.deepEqual(logged(entry), logged(expectedLog.get(request.name)), `log of ${request.name}`)
          assert.equal(entry.source, name.endsWith('fastify') ? 'fastify' : 'express')
          assert.equal(entry.remoteAddress.replace(/^::ffff:/, ''), '127.0.0.1')
          assert.ok(entry.durationMs >= 0)
          assert.equal(entries.length, 0)
        }
      })
    } finally {
      await stop(server)
    }
  })
}

test('fastify: malformed percent-encoding is refused by Fastify itself (400) before the plugin runs', async () => {
  const server = await startWith('fastify')
  try {
    const response = await send(server.base, { path: '/pixstore-image/%zz' })
    assert.equal(response.status, 400)
    assert.match(await response.text(), /FST_ERR_BAD_URL/)
  } finally {
    await stop(server)
  }
})

for (const name of FRAMEWORKS) {
  test(`${name}: payloads and errors carry no-store and nosniff; HEAD answers like GET without a body`, async () => {
    const server = await startWith(name)
    try {
      const headers = { 'x-pixstore-proof': record.statelessProof, 'x-pixstore-token': String(record.token) }
      const path = `/pixstore-image/${encodeURIComponent(record.id)}`
      for (const request of [{ path, headers }, { path: '/pixstore-image/' }]) {
        const get = await send(server.base, request)
        const getBody = Buffer.from(await get.arrayBuffer())
        assert.equal(get.headers.get('cache-control'), 'no-store')
        assert.equal(get.headers.get('x-content-type-options'), 'nosniff')
        const head = await send(server.base, { ...request, method: 'HEAD' })
        assert.equal(head.status, get.status)
        assert.equal((await head.arrayBuffer()).byteLength, 0)
        for (const header of [...CORS, 'content-type', 'content-length', 'cache-control', 'x-content-type-options']) {
          assert.equal(head.headers.get(header), get.headers.get(header), header)
        }
        assert.equal(Number(head.headers.get('content-length')), getBody.length)
      }
    } finally {
      await stop(server)
    }
  })
}

/** The framework's request as authorize sees it. */
const isFrameworkRequest = (name, req) =>
  name.endsWith('fastify') ? typeof req.routeOptions === 'object' && typeof req.raw === 'object' : typeof req.get === 'function' && req.app !== undefined

for (const name of FRAMEWORKS) {
  test(`${name}: authorize gets the framework's request and the decoded id; only true serves, refusals are a readable 403`, async () => {
    const calls = []
    const authorize = (req, imageId) => {
      calls.push({ frameworkRequest: isFrameworkRequest(name, req), imageId })
      const auth = req.headers.authorization
      if (auth === 'Bearer async-yes') return Promise.resolve(true)
      if (auth === 'Bearer undefined') return undefined
      if (auth === 'Bearer truthy') return 'yes'
      return auth === 'Bearer yes'
    }
    const server = await startWith(name, { authorize, accessControlAllowOrigin: 'http://app.example' })
    try {
      const path = `/pixstore-image/${encodeURIComponent(dirRecord.id)}`
      const proof = { 'x-pixstore-proof': dirRecord.statelessProof }
      for (const [auth, status] of [['yes', 200], ['async-yes', 200], ['no', 403], ['undefined', 403], ['truthy', 403]]) {
        const response = await send(server.base, { path, headers: { ...proof, authorization: `Bearer ${auth}` } })
        const body = Buffer.from(await response.arrayBuffer())
        assert.equal(response.status, status, auth)
        assert.equal(response.headers.get('access-control-allow-origin'), 'http://app.example', auth)
        if (status === 403) {
          assert.equal(response.headers.get('content-type'), 'text/plain')
          assert.equal(body.toString(), 'Forbidden')
        } else {
          assert.equal(sha256((await openPayload(body, dirRecord)).bytes), sha256(dirImage))
          assert.equal(body[0], 1, 'Updated: no token was sent')
        }
      }
      assert.deepEqual(calls.map((call) => call.imageId), Array(5).fill(dirRecord.id))
      assert.ok(calls.every((call) => call.frameworkRequest))
      // Never asked for a preflight, a missing or an invalid id.
      calls.length = 0
      assert.equal((await send(server.base, { method: 'OPTIONS', path })).status, 204)
      assert.equal((await send(server.base, { path: '/pixstore-image/' })).status, 400)
      assert.equal((await send(server.base, { path: '/pixstore-image/..%2Fx' })).status, 400)
      assert.deepEqual(calls, [])
    } finally {
      await stop(server)
    }
  })
}

for (const name of FRAMEWORKS) {
  test(`${name}: a throwing authorize and a throwing helper go to the framework's error handling, with CORS`, async () => {
    const authorize = (req, imageId) => {
      if (req.headers.authorization === 'Bearer crash') throw new Error(`authorize crashed on ${imageId}`)
      return true
    }
    const server = await startWith(name, { authorize })
    const port = await freePort()
    try {
      const path = `/pixstore-image/${encodeURIComponent(record.id)}`
      const [entry] = await collectLog(async () => {
        const crash = await send(server.base, { path, headers: { authorization: 'Bearer crash', 'x-pixstore-proof': record.statelessProof } })
        assert.equal(crash.status, 500)
        assert.equal(crash.headers.get('access-control-allow-origin'), '*')
      })
      assert.equal(entry.status, 500)
      assert.equal(entry.imageId, record.id)
      assert.equal(entry.state, null)
      assert.equal(entry.error.message, `authorize crashed on ${record.id}`)
      // The helper refuses while the default endpoint runs ('throw' mode: a PixstoreError).
      backend.initPixstoreBackend({ defaultEndpointEnabled: true, defaultEndpointListenHost: '127.0.0.1', defaultEndpointListenPort: port })
      const refused = await send(server.base, { path, headers: { 'x-pixstore-proof': record.statelessProof } })
      assert.equal(refused.status, 500)
      assert.equal(refused.headers.get('access-control-allow-origin'), '*')
      if (name.startsWith('nest')) {
        // Nest's exception filter answers: its usual JSON for an unknown error.
        assert.deepEqual(await refused.json(), { statusCode: 500, message: 'Internal server error' })
      } else {
        assert.equal(await refused.text(), `app error handler: ${server.errors[1].message}`)
        assert.deepEqual(server.errors.map((error) => error.message), [
          `authorize crashed on ${record.id}`,
          'Pixstore custom endpoint mode is not active. Please disable the default endpoint before using customEndpointHelper().',
        ])
        assert.ok(server.errors[1] instanceof PixstoreError)
      }
    } finally {
      backend.initPixstoreBackend({ defaultEndpointEnabled: false })
      await stop(server)
    }
  })
}

for (const name of FRAMEWORKS) {
  test(`${name}: a null from the helper (silent mode) is a 500 'Pixstore backend unavailable' with CORS`, async () => {
    const server = await startWith(name)
    const port = await freePort()
    try {
      backend.initPixstoreBackend({ errorHandlingMode: 'silent', defaultEndpointEnabled: true, defaultEndpointListenHost: '127.0.0.1', defaultEndpointListenPort: port })
      const response = await send(server.base, { path: `/pixstore-image/${encodeURIComponent(record.id)}`, headers: { 'x-pixstore-proof': record.statelessProof } })
      assert.equal(response.status, 500)
      assert.equal(response.headers.get('content-type'), 'text/plain')
      assert.equal(response.headers.get('access-control-allow-origin'), '*')
      assert.equal(await response.text(), 'Pixstore backend unavailable')
      assert.deepEqual(server.errors, [])
    } finally {
      backend.initPixstoreBackend({ errorHandlingMode: 'throw', defaultEndpointEnabled: false })
      await stop(server)
    }
  })
}

for (const name of ['express', 'express4', 'fastify']) {
  test(`${name}: a custom route under a mount path or prefix; other paths belong to the app`, async () => {
    const server = await startWith(name, { route: '/img' }, { mount: '/api' })
    try {
      const headers = { 'x-pixstore-proof': record.statelessProof, 'x-pixstore-token': String(record.token) }
      const ok = await send(server.base, { path: `/img/${encodeURIComponent(record.id)}`, headers })
      assert.equal(ok.status, 200)
      assert.equal(Buffer.from(await ok.arrayBuffer()).toString('hex'), expected.get('Success').body)
      assert.equal((await send(server.base, { path: '/img' })).status, 400)
      const origin = new URL(server.base).origin
      for (const path of ['/pixstore-image/abc', '/api/pixstore-image/abc', '/api/imgs/abc', '/api/img-x']) {
        const response = await fetch(`${origin}${path}`)
        assert.equal(response.status, 404, path)
        assert.equal(response.headers.get('access-control-allow-origin'), null, `${path} is not the route`)
      }
      assert.equal(await (await fetch(`${origin}/other`)).text(), 'other route')
    } finally {
      await stop(server)
    }
  })
}

test('options are checked when the route is created', async () => {
  for (const bad of [{ route: 'images' }, { route: '/images/' }, { route: '/img/:id' }, { authorize: true }, { accessControlAllowOrigin: '' }, { accessControlAllowOrigin: 'a\nb' }]) {
    assert.throws(() => pixstoreRouter(bad), TypeError, JSON.stringify(bad))
    await assert.rejects(Fastify().register(pixstorePlugin, bad).ready(), TypeError, JSON.stringify(bad))
    assert.throws(() => PixstoreModule.forRoot(bad), TypeError, JSON.stringify(bad))
  }
  assert.throws(() => PixstoreModule.forRoot({ backend: { defaultEndpointEnabled: true } }), /either through the Nest route or the default endpoint/)
  assert.doesNotThrow(() => PixstoreModule.forRoot({ route: false, backend: { defaultEndpointEnabled: true } }))
  assert.equal(pixstorePlugin[Symbol.for('plugin-meta')].name, 'pixstore-native')
})

test('each glue loads without the other frameworks installed; nestjs names what is missing', () => {
  // A child process in which no framework package can be resolved.
  const hide = `
    const Module = require('node:module')
    const resolve = Module._resolveFilename
    Module._resolveFilename = function (request, ...rest) {
      if (/^(express|express4|fastify|@nestjs\\/.*)$/.test(request)) throw Object.assign(new Error('Cannot find module ' + request), { code: 'MODULE_NOT_FOUND' })
      return resolve.call(this, request, ...rest)
    }
  `
  const program = `${hide}
    const { pixstoreRouter } = require('pixstore-native/express')
    const plugin = require('pixstore-native/fastify')
    let nest
    try { require('pixstore-native/nestjs') } catch (error) { nest = error.message }
    process.stdout.write(JSON.stringify([typeof pixstoreRouter({}), typeof plugin, nest]))
  `
  const out = JSON.parse(execFileSync(process.execPath, ['-e', program], { cwd: new URL('.', import.meta.url) }).toString())
  assert.deepEqual(out, ['function', 'function', 'Cannot find module @nestjs/common'])
})

test('ESM and CJS entries are the same functions and classes', async () => {
  const program = `
    require('reflect-metadata')
    const express = require('pixstore-native/express')
    const fastify = require('pixstore-native/fastify')
    const nest = require('pixstore-native/nestjs')
    Promise.all([import('pixstore-native/express'), import('pixstore-native/fastify'), import('pixstore-native/nestjs')]).then(([e, f, n]) => {
      process.stdout.write(JSON.stringify([
        e.pixstoreRouter === express.pixstoreRouter,
        f.default === fastify && f.pixstorePlugin === fastify && fastify.default === fastify && fastify.pixstorePlugin === fastify,
        n.PixstoreModule === nest.PixstoreModule,
      ]))
    })
  `
  // Nest 12 is ESM-only: CommonJS reaches it through require(esm), behind a flag on Node 20.
  const flags = Number(process.versions.node.split('.')[0]) < 22 ? ['--experimental-require-module', '--no-warnings'] : []
  const out = execFileSync(process.execPath, [...flags, '-e', program], { cwd: new URL('.', import.meta.url) }).toString()
  assert.deepEqual(JSON.parse(out), [true, true, true])
})

test('nest: the module inits the backend before other modules start and closes it on app.close()', async () => {
  await backend.closePixstoreBackend()
  const nestStore = { imageRootDir: join(dir.path, 'nest-images'), databasePath: join(dir.path, 'nest.sqlite'), errorHandlingMode: 'throw' }
  let seeded
  class Seeder {
    async onModuleInit() {
      seeded = await backend.saveImage(image, 'seed')
    }
  }
  Injectable()(Seeder)
  class SeedModule {}
  Module({ providers: [Seeder] })(SeedModule)
  class AppModule {}
  // SeedModule comes first: the global PixstoreModule's hook still runs before it.
  Module({ imports: [SeedModule, PixstoreModule.forRoot({ backend: nestStore })] })(AppModule)
  const app = await NestFactory.create(AppModule, { logger: false })
  try {
    await assert.rejects(backend.saveImage(image), /not initialized/, 'created, not yet initialized')
    await app.listen(0, '127.0.0.1')
    assert.match(seeded.id, /^seed:/)
    assert.ok(existsSync(nestStore.databasePath))
    const response = await fetch(`http://127.0.0.1:${app.getHttpServer().address().port}/pixstore-image/${seeded.id}`, { headers: { 'x-pixstore-proof': seeded.statelessProof } })
    assert.equal(sha256((await openPayload(Buffer.from(await response.arrayBuffer()), seeded)).bytes), sha256(image))
  } finally {
    await app.close()
  }
  await assert.rejects(backend.saveImage(image), /not initialized/, 'closed with the app')
  backend.initPixstoreBackend({ ...store, defaultEndpointEnabled: false })
})

test('nest: forRootAsync takes its configuration from injected providers; route: false keeps the default endpoint', async () => {
  const port = await freePort()
  class ConfigModule {}
  Module({ providers: [{ provide: 'STORE', useValue: store }], exports: ['STORE'] })(ConfigModule)
  class AppModule {}
  Module({
    imports: [PixstoreModule.forRootAsync({
      imports: [ConfigModule],
      inject: ['STORE'],
      useFactory: async (injected) => ({ route: false, backend: { ...injected, defaultEndpointEnabled: true, defaultEndpointListenHost: '127.0.0.1', defaultEndpointListenPort: port } }),
    })],
  })(AppModule)
  const app = await NestFactory.create(AppModule, { logger: false })
  await app.listen(0, '127.0.0.1')
  const path = `/pixstore-image/${encodeURIComponent(record.id)}`
  const headers = { 'x-pixstore-proof': record.statelessProof, 'x-pixstore-token': String(record.token) }
  try {
    const fromDefault = await fetch(`http://127.0.0.1:${port}${path}`, { headers })
    assert.equal(Buffer.from(await fromDefault.arrayBuffer()).toString('hex'), expected.get('Success').body)
    const fromNest = await fetch(`http://127.0.0.1:${app.getHttpServer().address().port}${path}`, { headers })
    assert.equal(fromNest.status, 404, 'no route in Nest')
  } finally {
    await app.close()
  }
  await assert.rejects(fetch(`http://127.0.0.1:${port}${path}`), /fetch failed/, 'the default endpoint stopped with the app')
  backend.initPixstoreBackend({ ...store, defaultEndpointEnabled: false })
})
