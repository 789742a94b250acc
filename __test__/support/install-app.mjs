// A fresh app that installs pixstore-native from packed tarballs the way a
// user does (`npm install`), and the checks run against it: the consumers in
// __test__/install/ and the Express example of the README. Used by
// __test__/install.test.mjs (native) and scripts/qemu-smoke.mjs (arm64 under qemu).
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { copyFileSync, readFileSync, readdirSync, realpathSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { gunzipSync } from 'node:zlib'
import { freePort, openPayload, sha256 } from '../helpers.mjs'

const repo = fileURLToPath(new URL('../../', import.meta.url))
export const consumersDir = fileURLToPath(new URL('../install/', import.meta.url))

/** npm as a command (npm.cmd through a shell on Windows). */
export const npm = (args, options) =>
  process.platform === 'win32' ? spawnSync('npm.cmd', args, { ...options, shell: true }) : spawnSync('npm', args, options)

/** The files of an npm tarball (`package/...` → bytes), read without a `tar` command. */
export function readTarball(file) {
  const data = gunzipSync(readFileSync(file))
  const files = new Map()
  for (let offset = 0; offset + 512 <= data.length && data[offset] !== 0; ) {
    const field = (start, length) => data.subarray(offset + start, offset + start + length).toString('latin1').replace(/\0.*$/s, '')
    const size = parseInt(field(124, 12).trim() || '0', 8)
    const type = field(156, 1) || '0'
    const name = [field(345, 155), field(0, 100)].filter(Boolean).join('/')
    if (type === '0') files.set(name, data.subarray(offset + 512, offset + 512 + size))
    offset += 512 + Math.ceil(size / 512) * 512
  }
  return files
}

/** The environment without what `npm test` / `npm run` put there for its own scripts. */
export function cleanEnv(extra = {}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith('npm_')))
  return { ...env, ...extra }
}

/** `name@version` of a package as the repository installed it (so npm's cache has it). */
export function pinned(name) {
  return `${name}@${JSON.parse(readFileSync(join(repo, 'node_modules', name, 'package.json'), 'utf8')).version}`
}

/**
 * Writes a new app into `dir` and runs `npm install` of `specs` (tarball paths
 * and registry packages) in it; `flags` go to npm (`--cpu=arm64`, …).
 * `overrides` (name → tarball) stand in for the registry: the platform
 * packages are not published, so the main package's optionalDependencies
 * resolve to these tarballs, and npm picks the one for the platform.
 * Returns the seconds it took.
 */
export function installApp(dir, specs, flags = [], overrides = {}) {
  const manifest = { name: 'install-test-app', version: '1.0.0', private: true }
  if (Object.keys(overrides).length) manifest.overrides = Object.fromEntries(Object.entries(overrides).map(([name, file]) => [name, `file:${file}`]))
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  const start = Date.now()
  const result = npm(['install', '--no-audit', '--no-fund', '--prefer-offline', ...flags, ...specs], {
    cwd: dir,
    env: cleanEnv(),
    encoding: 'utf8',
    timeout: 300_000,
  })
  assert.equal(result.status, 0, `npm install failed:\n${result.stdout}\n${result.stderr}`)
  return (Date.now() - start) / 1000
}

/** Every `<main>-<platform>-<version>.tgz` of `dist` as name → path, for `installApp`'s overrides. */
export function platformTarballs(dist, name, version) {
  const suffix = `-${version}.tgz`
  return Object.fromEntries(
    readdirSync(dist)
      .filter((file) => file.startsWith(`${name}-`) && file.endsWith(suffix) && file !== `${name}${suffix}`)
      .map((file) => [file.slice(0, -suffix.length), join(dist, file)]),
  )
}

/** The pixstore-native packages npm put into the app's node_modules. */
export function installedPackages(dir, name) {
  return readdirSync(join(dir, 'node_modules')).filter((entry) => entry === name || entry.startsWith(`${name}-`)).sort()
}

/** Copies the consumers (and their tsconfig) into the app. */
export function copyConsumers(dir) {
  for (const name of readdirSync(consumersDir)) copyFileSync(join(consumersDir, name), join(dir, name))
}

/**
 * Runs a consumer (`node` is the command that starts Node: an array) in the
 * app with a fresh data folder, a free port and `image`; returns its JSON line.
 */
export async function runConsumer(node, dir, script, platformPackage, dataDir, image, timeout = 60_000) {
  const port = await freePort()
  const [command, ...args] = node
  const result = spawnSync(command, [...args, script, platformPackage, dataDir, String(port), image], {
    cwd: dir,
    env: cleanEnv(),
    encoding: 'utf8',
    timeout,
  })
  assert.equal(result.status, 0, `${script} failed (${result.status ?? result.signal}):\n${result.stdout}\n${result.stderr}`)
  return JSON.parse(result.stdout.trim().split('\n').at(-1))
}

/**
 * What every consumer must have seen: the binding loaded from the installed
 * platform package (byte for byte the packed one), the record read back, the
 * endpoint's payload decrypting to the image, and bad input refused with a
 * PixstoreError.
 */
export async function checkConsumer(output, { dir, platformPackage, binary, image }) {
  assert.equal(realpathSync(output.binding), realpathSync(join(dir, 'node_modules', platformPackage, readPlatformMain(dir, platformPackage))))
  assert.equal(sha256(readFileSync(output.binding)), sha256(binary), 'the installed .node is the packed one')
  assert.deepEqual(output.reread, output.record)
  assert.equal(output.status, 200)
  const opened = await openPayload(Buffer.from(output.payload, 'base64'), output.record)
  assert.equal(opened.state, 0)
  assert.equal(sha256(opened.bytes), sha256(readFileSync(image)), 'the served image decrypts to the saved one')
  assert.deepEqual(output.refused, { isPixstoreError: true, message: 'Invalid image file' })
}

function readPlatformMain(dir, platformPackage) {
  return JSON.parse(readFileSync(join(dir, 'node_modules', platformPackage, 'package.json'), 'utf8')).main
}

/** The Express example of the README's "Migrating from pixstore" section, as written there. */
export function readmeExpressExample() {
  const readme = readFileSync(join(repo, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Migrating from pixstore'))
  const block = section.match(/```js\n(\/\/ server\.mjs\n[\s\S]*?)```/)
  assert.ok(block, 'README: no ```js block starting with "// server.mjs" under "Migrating from pixstore"')
  return block[1]
}

/**
 * Writes the README's Express example into the app as server.mjs, starts it
 * with `node` on a free port and uses it like a client: upload an image, read
 * its record, fetch and decrypt the payload, upload a non-image (400).
 */
export async function checkExpressExample(node, dir, image, startTimeout = 30_000) {
  writeFileSync(join(dir, 'server.mjs'), readmeExpressExample())
  const port = await freePort()
  const [command, ...args] = node
  const server = spawn(command, [...args, 'server.mjs'], { cwd: dir, env: cleanEnv({ PORT: String(port) }), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  server.stdout.on('data', (chunk) => (output += chunk))
  server.stderr.on('data', (chunk) => (output += chunk))
  const exited = new Promise((resolve) => server.once('exit', resolve))
  try {
    const started = Date.now()
    while (!output.includes(`listening on http://localhost:${port}`)) {
      if (server.exitCode !== null || Date.now() - started > startTimeout) assert.fail(`server.mjs did not start:\n${output}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    const base = `http://127.0.0.1:${port}`
    const bytes = readFileSync(image)
    const created = await fetch(`${base}/images`, { method: 'POST', body: bytes, headers: { 'content-type': 'image/png' } })
    assert.equal(created.status, 201)
    const record = await created.json()
    const read = await fetch(`${base}/images/${encodeURIComponent(record.id)}`)
    assert.deepEqual(await read.json(), record)
    assert.equal((await fetch(`${base}/images/${encodeURIComponent('missing:abc')}`)).status, 404)
    const served = await fetch(`${base}/pixstore-image/${encodeURIComponent(record.id)}`, {
      headers: { 'x-pixstore-proof': record.statelessProof, 'x-pixstore-token': String(record.token) },
    })
    assert.equal(served.status, 200)
    const opened = await openPayload(new Uint8Array(await served.arrayBuffer()), record)
    assert.equal(sha256(opened.bytes), sha256(bytes))
    const refused = await fetch(`${base}/images`, { method: 'POST', body: 'not an image' })
    assert.equal(refused.status, 400)
    assert.deepEqual(await refused.json(), { error: 'Invalid image file' })
  } finally {
    server.kill()
    await exited
  }
  return output
}
