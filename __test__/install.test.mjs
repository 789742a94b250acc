// The release as a user gets it: pack the main package and this machine's
// platform package (the .node `npm ci` built, no rebuild) with the release
// script, `npm install` both into a fresh app outside the repository, and run
// an ESM, a CommonJS and a TypeScript (nodenext) consumer and the README's
// Express example against them.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { fixturesDir, tempDir } from './helpers.mjs'
import {
  checkConsumer,
  checkExpressExample,
  cleanEnv,
  copyConsumers,
  installApp,
  installedPackages,
  pinned,
  platformTarballs,
  readTarball,
  runConsumer,
} from './support/install-app.mjs'
import { TARGETS, nativeTarget, packRelease } from '../scripts/pack-release.mjs'

const repo = fileURLToPath(new URL('../', import.meta.url))
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'))
const target = nativeTarget()
const platformPackage = `${pkg.name}-${TARGETS[target].platform}`
const builtBinary = join(repo, `${pkg.napi.binaryName}.${TARGETS[target].platform}.node`)
const image = join(fixturesDir, 'tiny.png')
const node = [process.execPath]

let work, dist, app, report
const tarball = (name) => join(dist, `${name}-${pkg.version}.tgz`)
const listTarball = (file) => [...readTarball(file).keys()]
const readFromTarball = (file, path) => readTarball(file).get(`package/${path}`)

before(() => {
  assert.ok(existsSync(builtBinary), `${builtBinary} is missing: run \`npm run build\``)
  work = tempDir('pixstore-native-install-')
  dist = join(work.path, 'dist')
  app = join(work.path, 'app')
  mkdirSync(app)
  report = packRelease({ targets: 'native', from: repo, out: dist })
  // Only the main package is installed by name, as `npm install pixstore-native`
  // does; npm takes the platform package through its optionalDependencies.
  const overrides = platformTarballs(dist, pkg.name, pkg.version)
  const seconds = installApp(app, [tarball(pkg.name), pinned('express'), pinned('typescript'), pinned('@types/node')], [], overrides)
  console.log(`# npm install of the tarballs into a fresh app: ${seconds.toFixed(1)} s`)
  copyConsumers(app)
})

after(() => work?.remove())

test('the main tarball has the JS layer and optional dependencies on every platform package, no binary', () => {
  const files = listTarball(tarball(pkg.name))
  assert.ok(!files.some((file) => file.endsWith('.node')), files.join('\n'))
  for (const file of ['index.js', 'backend.js', 'backend.mjs', 'backend.d.ts', 'shared.js', 'types.d.ts', 'lib/errors.js']) {
    assert.ok(files.includes(`package/${file}`), `missing ${file}`)
  }
  const manifest = JSON.parse(readFromTarball(tarball(pkg.name), 'package.json'))
  assert.deepEqual(
    manifest.optionalDependencies,
    Object.fromEntries(pkg.napi.targets.map((triple) => [`${pkg.name}-${TARGETS[triple].platform}`, pkg.version])),
  )
  assert.equal(Object.keys(manifest.optionalDependencies).length, 7)
  assert.equal(manifest.scripts, undefined, 'no prepare script (it builds Rust) in the published package')
  assert.equal(manifest.devDependencies, undefined)
  assert.deepEqual(manifest.exports, pkg.exports)
})

test('the platform tarball holds the built binary and says where it runs', () => {
  const manifest = JSON.parse(readFromTarball(tarball(platformPackage), 'package.json'))
  assert.equal(manifest.name, platformPackage)
  assert.equal(manifest.version, pkg.version)
  assert.deepEqual(listTarball(tarball(platformPackage)).sort(), ['package/README.md', `package/${manifest.main}`, 'package/package.json'].sort())
  assert.deepEqual(readFromTarball(tarball(platformPackage), manifest.main), readFileSync(builtBinary))
  assert.deepEqual(manifest.os, [process.platform])
  assert.deepEqual(manifest.cpu, [process.arch])
  if (process.platform === 'linux') assert.deepEqual(manifest.libc, [target.endsWith('musl') ? 'musl' : 'glibc'])
  assert.deepEqual(report.packages.map((p) => p.file).sort(), [`${pkg.name}-${pkg.version}.tgz`, `${platformPackage}-${pkg.version}.tgz`].sort())
})

test('npm installs the platform package through the optional dependencies, and no other', () => {
  assert.deepEqual(installedPackages(app, pkg.name), [pkg.name, platformPackage])
  const lock = JSON.parse(readFileSync(join(app, 'package-lock.json'), 'utf8'))
  assert.equal(lock.packages[`node_modules/${platformPackage}`].optional, true)
})

const consumer = (script) => async () => {
  const data = join(app, `data-${script}`)
  const output = await runConsumer(node, app, script, platformPackage, data, image)
  await checkConsumer(output, { dir: app, platformPackage, binary: readFileSync(builtBinary), image })
}

test('an ESM consumer saves, reads and serves an image', consumer('esm-consumer.mjs'))

test('a CommonJS consumer saves, reads and serves an image', consumer('cjs-consumer.cjs'))

test('a TypeScript consumer compiles under nodenext against the installed typings and runs', async () => {
  const tsc = spawnSync(process.execPath, [join(app, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
    cwd: app,
    env: cleanEnv(),
    encoding: 'utf8',
  })
  assert.equal(tsc.status, 0, tsc.stdout + tsc.stderr)
  await consumer('build/ts-consumer.mjs')()
})

test('the Express example of the README runs as written', async () => {
  await checkExpressExample(node, app, image)
})
