#!/usr/bin/env node
// Writes every tarball a release publishes into dist/: one per platform
// package (npm/<platform>/ with its .node) and the main package, whose
// package.json gains `optionalDependencies` on all of them at the same
// version (what `napi pre-publish` adds before `npm publish`).
//
//   npm run pack:release                      build every target this machine can build, then pack
//   node scripts/pack-release.mjs --targets native --from .
//                                             pack the host's .node that `npm ci` built (no build)
//   node scripts/pack-release.mjs --from artifacts --require-all
//                                             the release workflow: pack the .node files its
//                                             build jobs uploaded, fail if one is missing
//
// The main package's package.json is the repository's without `scripts` and
// `devDependencies`, plus `optionalDependencies`.
// Options: --targets all|native|<triple,...>  --from DIR (take <binary>.<platform>.node from DIR
// or DIR/*/ instead of building)  --artifacts DIR (keep the built .node files there; default: a
// temporary folder)  --out DIR (default dist)  --require-all.
// Builds run one at a time under `nice -n 19`; the repository's files are not modified
// (packages are staged in a temporary folder).
import { execFileSync, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))
const binaryName = pkg.napi.binaryName

const APPLE_FRAMEWORKS =
  "links Apple's Security, CoreFoundation and SystemConfiguration frameworks, and zig has no Apple SDK here (xcrun not found); built on macOS runners by .github/workflows/release.yml"

/**
 * Every release target: its npm platform suffix, the header a correct binary
 * has, and how it is built: natively on its own OS (`nativeOn`), or with zig
 * (`zig`: the target cargo-zigbuild gets) from any host. Linux builds always
 * go through zig: musl from a glibc host, and glibc with a 2.17 floor (a
 * binary linked against this machine's glibc 2.36 asks for 2.34 and does not
 * load on Debian 11, Ubuntu 20.04, RHEL 8 or Amazon Linux 2).
 */
export const TARGETS = {
  'x86_64-unknown-linux-gnu': { platform: 'linux-x64-gnu', header: 'elf-x86_64', zig: 'x86_64-unknown-linux-gnu.2.17' },
  'x86_64-unknown-linux-musl': { platform: 'linux-x64-musl', header: 'elf-x86_64', zig: 'x86_64-unknown-linux-musl' },
  'aarch64-unknown-linux-gnu': { platform: 'linux-arm64-gnu', header: 'elf-aarch64', zig: 'aarch64-unknown-linux-gnu.2.17' },
  'aarch64-unknown-linux-musl': { platform: 'linux-arm64-musl', header: 'elf-aarch64', zig: 'aarch64-unknown-linux-musl' },
  // Without a deployment target zig marks the binary "macOS 15.0 or later" and older macOS refuse it.
  // Not cross-built: the addon links Apple's Security, CoreFoundation and
  // SystemConfiguration frameworks (the system's root certificates for TLS to
  // PostgreSQL and S3, through rustls-native-certs and reqwest; whoami through
  // tokio-postgres), and zig has no Apple SDK to link them against here.
  'x86_64-apple-darwin': { platform: 'darwin-x64', header: 'macho-x86_64', nativeOn: 'darwin', elsewhere: APPLE_FRAMEWORKS, env: { MACOSX_DEPLOYMENT_TARGET: '10.13' } },
  'aarch64-apple-darwin': { platform: 'darwin-arm64', header: 'macho-arm64', nativeOn: 'darwin', elsewhere: APPLE_FRAMEWORKS, env: { MACOSX_DEPLOYMENT_TARGET: '11.0' } },
  'x86_64-pc-windows-msvc': {
    platform: 'win32-x64-msvc',
    header: 'pe-x86_64',
    nativeOn: 'win32',
    elsewhere:
      'needs the MSVC CRT and Windows SDK libraries: cargo-xwin downloads them from Microsoft, which this machine cannot reach; built on windows-latest by .github/workflows/release.yml',
  },
}

/** The `napi build` arguments for `triple` on this machine, or null if it cannot be built here. */
function buildArgs(triple) {
  const target = TARGETS[triple]
  if (target.nativeOn === process.platform) return ['--target', triple]
  if (target.zig) return ['-x', '--target', target.zig]
  return null
}

/** The target of the machine running this script, as napi names it. */
export function nativeTarget() {
  const arch = { x64: 'x86_64', arm64: 'aarch64' }[process.arch]
  if (process.platform === 'linux') {
    const musl = !process.report.getReport().header.glibcVersionRuntime
    return `${arch}-unknown-linux-${musl ? 'musl' : 'gnu'}`
  }
  if (process.platform === 'darwin') return `${arch}-apple-darwin`
  if (process.platform === 'win32') return `${arch}-pc-windows-msvc`
  throw new Error(`no release target for ${process.platform}-${process.arch}`)
}

/** What kind of binary `bytes` is: 'elf-x86_64', 'macho-arm64', 'pe-x86_64', … */
export function binaryKind(bytes) {
  if (bytes.readUInt32BE(0) === 0x7f454c46) {
    const machine = bytes.readUInt16LE(18)
    return { 0x3e: 'elf-x86_64', 0xb7: 'elf-aarch64' }[machine] ?? `elf-machine-${machine}`
  }
  if (bytes.readUInt32LE(0) === 0xfeedfacf) {
    const cpu = bytes.readUInt32LE(4)
    return { 0x01000007: 'macho-x86_64', 0x0100000c: 'macho-arm64' }[cpu] ?? `macho-cpu-${cpu}`
  }
  if (bytes.readUInt16LE(0) === 0x5a4d) {
    const pe = bytes.readUInt32LE(0x3c)
    return { 0x8664: 'pe-x86_64', 0xaa64: 'pe-arm64' }[bytes.readUInt16LE(pe + 4)] ?? 'pe-other'
  }
  return 'unknown'
}

const seconds = (start) => Math.round((Date.now() - start) / 1000)
const kB = (bytes) => `${(bytes / 1024).toFixed(0)} kB`
const MiB = (bytes) => `${(bytes / 1048576).toFixed(2)} MiB`

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', ...options })
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed (${result.status ?? result.signal})`)
}

/** zig + cargo-zigbuild in .release-tools/ (PyPI) if a build needs them, and the Rust targets (rustup). */
function ensureBuildTools(triples) {
  const venv = join(root, '.release-tools')
  const bin = join(venv, 'bin')
  if (triples.some((triple) => buildArgs(triple)[0] === '-x') && !existsSync(join(bin, 'cargo-zigbuild'))) {
    console.log('setting up .release-tools/ (ziglang and cargo-zigbuild from PyPI)')
    run('python3', ['-m', 'venv', venv])
    run(join(bin, 'pip'), ['install', '-q', 'ziglang==0.17.1', 'cargo-zigbuild==0.24.1'])
  }
  const installed = execFileSync('rustup', ['target', 'list', '--installed'], { encoding: 'utf8' }).split('\n')
  const missing = triples.filter((triple) => !installed.includes(triple))
  if (missing.length) run('rustup', ['target', 'add', ...missing])
  return [bin, process.env.PATH].join(process.platform === 'win32' ? ';' : ':')
}

/** Builds `triple` into `outDir` with the napi CLI, niced; returns the seconds it took. */
function build(triple, outDir, path) {
  const start = Date.now()
  const napi = join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
  const args = [napi, 'build', '--platform', '--release', '--no-js', '-o', outDir, ...buildArgs(triple)]
  const options = { cwd: root, env: { ...process.env, ...TARGETS[triple].env, PATH: path } }
  if (process.platform === 'win32') run(process.execPath, args, options)
  else run('nice', ['-n', '19', process.execPath, ...args], options)
  return seconds(start)
}

/** `<binary>.<platform>.node` in `dir` or one folder below (how CI downloads artifacts). */
function findArtifact(dir, platform) {
  const name = `${binaryName}.${platform}.node`
  if (existsSync(join(dir, name))) return join(dir, name)
  for (const sub of readdirSync(dir)) {
    const candidate = join(dir, sub, name)
    if (statSync(join(dir, sub)).isDirectory() && existsSync(candidate)) return candidate
  }
  return null
}

/** Runs npm (npm.cmd through a shell on Windows) and parses its `--json` output. */
function npmJson(args, cwd) {
  const windows = process.platform === 'win32'
  return JSON.parse(execFileSync(windows ? 'npm.cmd' : 'npm', args, { cwd, encoding: 'utf8', shell: windows }))
}

/** `npm pack` of `dir` into `out`; returns npm's report (filename, size, unpackedSize, files). */
function npmPack(dir, out) {
  return npmJson(['pack', '--ignore-scripts', '--json', '--pack-destination', out], dir)[0]
}

/** The newest glibc symbol version an ELF binary asks for (readelf from binutils). */
function glibcFloor(file) {
  const result = spawnSync('readelf', ['-V', '--wide', file], { encoding: 'utf8' })
  if (result.status !== 0) return 'readelf not available'
  const versions = [...new Set(result.stdout.match(/GLIBC_[0-9.]+/g) ?? [])]
  versions.sort((a, b) => a.localeCompare(b, undefined, { numeric: true }))
  return versions.at(-1) ?? 'none'
}

export function packRelease({ targets = 'all', from = null, out = 'dist', artifacts = null } = {}) {
  const triples = targets === 'all' ? pkg.napi.targets : targets === 'native' ? [nativeTarget()] : targets.split(',')
  for (const triple of triples) {
    if (!TARGETS[triple] || !pkg.napi.targets.includes(triple)) throw new Error(`unknown target ${triple}`)
  }
  const loaderVersions = new Set(readFileSync(join(root, 'index.js'), 'utf8').match(/expected [0-9][^ ]* but/g))
  if (loaderVersions.size !== 1 || ![...loaderVersions][0].includes(` ${pkg.version} `)) {
    throw new Error(`index.js checks for version ${[...loaderVersions]} but package.json is ${pkg.version}: run \`npm run build\` to regenerate it`)
  }
  const outDir = resolve(root, out)
  mkdirSync(outDir, { recursive: true })
  for (const name of readdirSync(outDir)) if (name.endsWith('.tgz') || name === 'release.json') rmSync(join(outDir, name))
  const stage = mkdtempSync(join(tmpdir(), 'pixstore-native-pack-'))
  const report = { version: pkg.version, packages: [], notBuilt: [] }
  try {
    let artifactsDir = from && resolve(root, from)
    let path = process.env.PATH
    if (!from) {
      const buildable = triples.filter(buildArgs)
      if (buildable.length) path = ensureBuildTools(buildable)
      artifactsDir = artifacts ? resolve(root, artifacts) : join(stage, 'artifacts')
    }
    for (const triple of triples) {
      const { platform, header, elsewhere } = TARGETS[triple]
      let buildSeconds = null
      if (!from) {
        if (!buildArgs(triple)) {
          report.notBuilt.push({ target: triple, why: elsewhere })
          continue
        }
        console.log(`\n=== building ${triple} ===`)
        buildSeconds = build(triple, artifactsDir, path)
      }
      const artifact = findArtifact(artifactsDir, platform)
      if (!artifact) {
        report.notBuilt.push({ target: triple, why: `no ${binaryName}.${platform}.node in ${artifactsDir}` })
        continue
      }
      const kind = binaryKind(readFileSync(artifact))
      if (kind !== header) throw new Error(`${artifact} is ${kind}, expected ${header} for ${triple}`)
      const npmDir = join(root, 'npm', platform)
      const platformPkg = JSON.parse(readFileSync(join(npmDir, 'package.json'), 'utf8'))
      if (platformPkg.version !== pkg.version) throw new Error(`npm/${platform} is version ${platformPkg.version}, package.json ${pkg.version}: run \`npx napi version\``)
      const dir = join(stage, platform)
      mkdirSync(dir)
      for (const name of readdirSync(npmDir)) copyFileSync(join(npmDir, name), join(dir, name))
      copyFileSync(artifact, join(dir, platformPkg.main))
      const packed = npmPack(dir, outDir)
      if (!packed.files.some((file) => file.path === platformPkg.main)) throw new Error(`${packed.filename} lacks ${platformPkg.main}`)
      report.packages.push({
        target: triple,
        file: packed.filename,
        packed: packed.size,
        unpacked: packed.unpackedSize,
        binary: statSync(artifact).size,
        buildSeconds,
        ...(triple.includes('-linux-gnu') && { glibc: glibcFloor(artifact) }),
      })
    }

    // The main package: the files `npm pack` of the repository takes, and its
    // package.json with the optional dependencies a release publishes, without
    // what only the repository uses (npm 11 flags a dependency's `prepare`
    // script, ours builds Rust, and devDependencies are never installed).
    const listing = npmJson(['pack', '--dry-run', '--ignore-scripts', '--json'], root)[0]
    const main = join(stage, 'main')
    for (const { path: file } of listing.files) {
      if (file.endsWith('.node')) throw new Error(`the main package would ship ${file}: remove it from "files"`)
      mkdirSync(dirname(join(main, file)), { recursive: true })
      copyFileSync(join(root, file), join(main, file))
    }
    const optionalDependencies = Object.fromEntries(pkg.napi.targets.map((triple) => [`${pkg.name}-${TARGETS[triple].platform}`, pkg.version]))
    const { scripts, devDependencies, ...published } = pkg
    writeFileSync(join(main, 'package.json'), `${JSON.stringify({ ...published, optionalDependencies }, null, 2)}\n`)
    const packed = npmPack(main, outDir)
    report.packages.unshift({ target: 'main', file: packed.filename, packed: packed.size, unpacked: packed.unpackedSize })
  } finally {
    rmSync(stage, { recursive: true, force: true })
  }
  writeFileSync(join(outDir, 'release.json'), `${JSON.stringify(report, null, 2)}\n`)
  return report
}

function printReport(report, outDir) {
  console.log(`\n${outDir}/ (version ${report.version}):`)
  for (const p of report.packages) {
    const extra = [p.binary && `.node ${MiB(p.binary)}`, p.glibc && `needs ${p.glibc}`, p.buildSeconds != null && `built in ${p.buildSeconds} s`].filter(Boolean)
    console.log(`  ${p.file.padEnd(46)} packed ${kB(p.packed).padStart(8)}  unpacked ${kB(p.unpacked).padStart(8)}  ${extra.join(', ')}`)
  }
  for (const { target, why } of report.notBuilt) console.log(`  not built: ${target}: ${why}`)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      targets: { type: 'string', default: 'all' },
      from: { type: 'string' },
      out: { type: 'string', default: 'dist' },
      artifacts: { type: 'string' },
      'require-all': { type: 'boolean', default: false },
    },
  })
  const start = Date.now()
  const report = packRelease({ targets: values.targets, from: values.from ?? null, out: values.out, artifacts: values.artifacts ?? null })
  printReport(report, values.out)
  console.log(`done in ${seconds(start)} s`)
  if (values['require-all'] && report.notBuilt.length) {
    console.error('--require-all: a release needs every target')
    process.exit(1)
  }
}
