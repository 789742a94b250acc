// Peak memory of the `pixstore-native` command on stores of growing size
// (SPEC "Operating the store": bounded memory on 100,000 images). Fills local
// stores of tiny PNGs with the addon, then runs each command in a child
// process and reads its peak resident set (VmHWM, /proc) when it exits.
// `npm run bench:scale [-- 10000 100000]`; prints a Markdown table for
// BENCHMARKS.md ("Operating 100,000 images"). Uses the built addon as is.
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const here = new URL('.', import.meta.url).pathname
const root = join(here, '..')
const cli = join(root, 'bin/pixstore-native.js')
const sizes = process.argv.slice(2).map(Number).filter((n) => n > 0)
if (sizes.length === 0) sizes.push(10_000, 100_000)
const work = mkdtempSync(join(tmpdir(), 'pixstore-native-scale-'))

/** Runs `node args…`; resolves with its peak RSS in MiB and wall time in s (stdout discarded). */
function measure(args) {
  // A wrapper reads the child's own VmHWM from /proc just before it exits.
  const wrapper = `
    const { readFileSync } = require('node:fs')
    process.on('exit', () => {
      const peak = /VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]
      require('node:fs').writeSync(2, '\\nPEAK ' + peak + '\\n')
    })
    process.argv.splice(1, 0, ${JSON.stringify(cli)})
    require(${JSON.stringify(cli)})`
  const started = process.hrtime.bigint()
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', wrapper, '--', ...args], { stdio: ['ignore', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.on('data', (chunk) => (stderr += chunk))
    child.on('exit', (code) => {
      const peak = /PEAK (\d+)/.exec(stderr)
      if (!peak || code > 1) return reject(new Error(`${args.join(' ')} exited ${code}: ${stderr}`))
      resolve({ mib: Number(peak[1]) / 1024, seconds: Number(process.hrtime.bigint() - started) / 1e9 })
    })
  })
}

/** A local store of `count` tiny PNGs in 16 prefixes, written 32 at a time. */
async function fill(dir, count) {
  const script = `
    const backend = await import(${JSON.stringify(join(root, 'backend.mjs'))})
    const { readFileSync } = await import('node:fs')
    backend.initPixstoreBackend({ imageRootDir: ${JSON.stringify(join(dir, 'images'))}, databasePath: ${JSON.stringify(join(dir, 'store.sqlite'))}, defaultEndpointEnabled: false, errorHandlingMode: 'throw' })
    const png = readFileSync(${JSON.stringify(join(root, '__test__/fixtures/tiny.png'))})
    let next = 0
    await Promise.all(Array.from({ length: 32 }, async () => { while (next++ < ${count}) await backend.saveImage(png, 'p' + (next % 16)) }))
    await backend.closePixstoreBackend()`
  await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: 'inherit' })
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`fill exited ${code}`))))
  })
}

const rows = []
try {
  for (const count of sizes) {
    const dir = join(work, String(count))
    mkdirSync(dir)
    await fill(dir, count)
    const store = join(dir, 'store.json')
    writeFileSync(store, JSON.stringify({ databasePath: join(dir, 'store.sqlite'), imageRootDir: join(dir, 'images') }))
    const copy = join(dir, 'copy.json')
    writeFileSync(copy, JSON.stringify({ databasePath: join(dir, 'copy', 'store.sqlite'), imageRootDir: join(dir, 'copy', 'images') }))
    const row = { count }
    row.verify = await measure(['--config', store, '--json', 'verify'])
    row.stats = await measure(['--config', store, '--json', 'stats'])
    row.migrate = await measure(['--json', 'migrate', '--from', store, '--to', copy])
    row.export = await measure(['--config', store, '--json', 'export', join(dir, 'exported')])
    row.import = await measure(['--config', copy, '--json', 'import', join(dir, 'exported'), '--dir', 'again'])
    rows.push(row)
    rmSync(dir, { recursive: true, force: true })
    process.stderr.write(`${count} images measured\n`)
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}

const commands = ['verify', 'stats', 'migrate', 'export', 'import']
const cell = (m) => `${m.mib.toFixed(0)} MiB, ${m.seconds.toFixed(1)} s`
console.log(`| images | ${commands.join(' | ')} |`)
console.log(`| ---: | ${commands.map(() => '---').join(' | ')} |`)
for (const row of rows) console.log(`| ${row.count.toLocaleString('en')} | ${commands.map((c) => cell(row[c])).join(' | ')} |`)
console.log(`\n(peak RSS of the command's process, and its wall time; ${new Date().toISOString().slice(0, 16)} UTC, Node ${process.version})`)
