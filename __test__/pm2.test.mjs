// The real PM2 (npm `pm2`) in cluster mode: a short Express app with the
// default endpoint and proofKeys, two instances on one store and one port,
// both serving. PM2 runs with a PM2_HOME of its own and is killed afterwards:
// no daemon is left behind.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { readFileSync, existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { request } from 'node:http'
import { join } from 'node:path'
import { tempDir, freePort, makePng, openPayload } from './helpers.mjs'

const require = createRequire(import.meta.url)
const pm2Bin = join(require.resolve('pm2/package.json'), '..', 'bin', 'pm2')
const app = new URL('./support/pm2-app.cjs', import.meta.url).pathname

function get(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      const chunks = []
      res.on('data', (chunk) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.end()
  })
}

function post(port, path, body) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { 'content-type': 'application/octet-stream' } }, (res) => {
      const chunks = []
      res.on('data', (chunk) => chunks.push(chunk))
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

test('under PM2 cluster mode, two instances of an Express app both serve every image through the default endpoint', async () => {
  const dir = tempDir()
  const env = {
    ...process.env,
    PM2_HOME: join(dir.path, 'pm2'),
    STORE_DIR: join(dir.path, 'store'),
    PORT: String(await freePort()),
    PIXSTORE_PORT: String(await freePort()),
    PIXSTORE_PROOF_KEY: 'a proof key shared by both instances of the app',
  }
  const pm2 = (...args) => execFileSync(process.execPath, [pm2Bin, ...args], { env, encoding: 'utf8', cwd: dir.path })
  try {
    pm2('start', app, '-i', '2', '--name', 'pixstore-native-test', '--wait-ready', '--listen-timeout', '20000')
    const listing = JSON.parse(pm2('jlist'))
    assert.deepEqual(listing.map((p) => p.pm2_env.status), ['online', 'online'])

    const port = Number(env.PORT)
    const instances = new Set()
    const records = []
    for (let n = 0; n < 12; n++) {
      const saved = await post(port, '/images', makePng(4, 4, n))
      assert.equal(saved.status, 200, saved.body.toString())
      instances.add(saved.headers['x-instance'])
      const { id } = JSON.parse(saved.body)
      // Read the record (with its proof) from whichever instance PM2 picks.
      const fetched = await get(port, `/records/${encodeURIComponent(id)}`)
      instances.add(fetched.headers['x-instance'])
      records.push({ record: JSON.parse(fetched.body), seed: n })
    }
    assert.deepEqual([...instances].sort(), ['0', '1'], 'both instances answered')

    // The default endpoint runs in both instances on one port; with shared
    // proofKeys whichever instance gets a connection answers it.
    for (let round = 0; round < 4; round++) {
      for (const { record, seed } of records) {
        const { status, body } = await get(Number(env.PIXSTORE_PORT), `/pixstore-image/${encodeURIComponent(record.id)}`, { 'x-pixstore-proof': record.statelessProof })
        assert.equal(status, 200)
        assert.deepEqual((await openPayload(new Uint8Array(body), record)).bytes, makePng(4, 4, seed))
      }
    }
  } finally {
    const pidFile = join(env.PM2_HOME, 'pm2.pid')
    const daemon = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : null
    try {
      pm2('kill')
    } finally {
      if (daemon) {
        let alive = true
        for (let waited = 0; alive && waited < 5000; waited += 100) {
          try {
            process.kill(daemon, 0)
            await new Promise((resolve) => setTimeout(resolve, 100))
          } catch {
            alive = false
          }
        }
        if (alive) process.kill(daemon, 'SIGKILL')
        assert.equal(alive, false, 'the PM2 daemon is gone')
      }
      dir.remove()
    }
  }
})
