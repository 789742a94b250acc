// Benchmarks pixstore 3.2.1 and pixstore-native side by side in one run and
// writes BENCHMARKS.md and benchmark/ratios.svg. `npm run bench -- --quick`
// runs a reduced version. It rebuilds the addon in release mode first. Needs wrk (apt-get install wrk) and, once, Python 3
// with network access to PyPI (Pillow, in a venv under benchmark/.work) to make
// the 5 MB JPEG.
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, rmSync, copyFileSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:net'
import { LIBRARIES } from './libraries.mjs'

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

function runWorker(library, measure, rep) {
  const dir = join(runs, `${measure}-${library}-${rep}`)
  const out = execFileSync(process.execPath, [join(here, 'worker.mjs'), library, measure, dir, fixtures, String(scale)], {
    cwd: root,
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

async function runWrk(library, fixture, match, rep) {
  const dir = join(runs, `wrk-${library}-${fixture}-${match}-${rep}`)
  mkdirSync(dir, { recursive: true })
  const port = await freePort()
  const server = spawn(process.execPath, [join(here, 'server.mjs'), library, dir, String(port), join(fixtures, fixture), '200'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  try {
    await new Promise((resolve, reject) => {
      server.stdout.on('data', (chunk) => chunk.toString().includes('ready') && resolve())
      server.on('exit', (code) => reject(new Error(`${library} server exited with ${code}`)))
    })
    const requests = JSON.parse(readFileSync(join(dir, 'requests.json'), 'utf8'))
    const lua = 'return {' + requests.map((r) => `{path=${JSON.stringify(r.path)},proof=${JSON.stringify(r.proof)},token=${JSON.stringify(String(r.token))}}`).join(',') + '}'
    writeFileSync(join(dir, 'requests.lua'), lua)
    const out = execFileSync('wrk', ['-t1', '-c50', `-d${wrkSeconds}s`, '--latency', '-s', join(here, 'wrk.lua'), `http://127.0.0.1:${port}`, '--', join(dir, 'requests.lua'), match ? '1' : '0']).toString()
    const [, count, bytes, p50, p99, bad] = /RESULT (\d+) (\d+) ([\d.]+) ([\d.]+) (\d+)/.exec(out)
    if (Number(bad) > 0) throw new Error(`${library}: ${bad} responses were not 200; refusing to report\n${out}`)
    return { rps: Number(count) / wrkSeconds, p50: Number(p50) / 1000, p99: Number(p99) / 1000, mbps: Number(bytes) / wrkSeconds / 2 ** 20 }
  } finally {
    server.kill('SIGKILL')
  }
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
const stats = (values) => ({ min: Math.min(...values), median: median(values), max: Math.max(...values) })

// target: { kind: 'min-ratio' | 'max-ratio' | 'max-native', value }
const MEASURES = [
  { id: 'save-tiny-32', name: 'saveImage tiny, 32 concurrent', unit: 'ops/s', target: { kind: 'min-ratio', value: 100 } },
  { id: 'save-tiny-32-fsync', name: "saveImage tiny, 32 concurrent, durability 'fsync'", unit: 'ops/s', target: { kind: 'min-ratio', value: 100 } },
  { id: 'save-tiny-seq', name: 'saveImage tiny, sequential', unit: 'ops/s', target: { kind: 'min-ratio', value: 20 } },
  { id: 'save-200k-seq', name: 'saveImage 200 KB, sequential', unit: 'ops/s' },
  { id: 'save-200k-32', name: 'saveImage 200 KB, 32 concurrent', unit: 'ops/s' },
  { id: 'save-5m-seq', name: 'saveImage 5 MB, sequential', unit: 'ops/s' },
  { id: 'save-5m-32', name: 'saveImage 5 MB, 32 concurrent', unit: 'ops/s', target: { kind: 'min-ratio', value: 3 } },
  { id: 'update-tiny-seq', name: 'updateImage tiny, sequential', unit: 'ops/s', target: { kind: 'min-ratio', value: 20 } },
  { id: 'update-tiny-32', name: 'updateImage tiny, 32 concurrent (32 ids)', unit: 'ops/s' },
  { id: 'get-record-hit', name: 'getImageRecord (sync), hit', unit: 'ops/s', target: { kind: 'min-ratio', value: 2 } },
  { id: 'get-record-miss', name: 'getImageRecord (sync), miss', unit: 'ops/s', target: { kind: 'min-ratio', value: 2 } },
  { id: 'image-exists', name: 'imageExists', unit: 'ops/s' },
  { id: 'delete', name: 'deleteImage, sequential', unit: 'ops/s' },
]

const ENDPOINT_MEASURES = [
  { fixture: 'tiny.png', match: true, name: 'endpoint tiny, matching token', rpsTarget: 5, p99Target: 0.2 },
  { fixture: 'tiny.png', match: false, name: 'endpoint tiny, no token', rpsTarget: 5, p99Target: 0.2 },
  { fixture: '200k.jpg', match: true, name: 'endpoint 200 KB, matching token', rpsTarget: 3 },
  { fixture: '200k.jpg', match: false, name: 'endpoint 200 KB, no token', rpsTarget: 3 },
]

const fmt = (n) => (n >= 100 ? Math.round(n).toLocaleString('en-US') : n >= 10 ? n.toFixed(1) : n.toFixed(2))
const cell = (s) => `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`

function check(target, ratio, nativeMedian) {
  if (!target) return { text: '—', met: '' }
  if (target.kind === 'min-ratio') return { text: `≥ ${target.value}×`, met: ratio >= target.value ? 'yes' : 'no' }
  if (target.kind === 'max-ratio') return { text: `≤ ${target.value}×`, met: ratio <= target.value ? 'yes' : 'no' }
  return { text: `≤ ${target.value} (absolute)`, met: nativeMedian <= target.value ? 'yes' : 'no' }
}

async function main() {
  if (spawnSync('wrk', ['-v']).error) {
    throw new Error('wrk is not installed: apt-get install wrk (Debian package), then run the benchmark again')
  }
  // Always measure the release build (npm run build:debug leaves a debug addon in place).
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' })
  ensureFixtures()
  rmSync(runs, { recursive: true, force: true })
  machine().forEach((line) => console.log(line))
  const startedLoad = loadavg()
  const rows = []
  for (const measure of MEASURES) {
    const values = { pixstore: [], 'pixstore-native': [] }
    for (let rep = 0; rep < repetitions; rep++) {
      for (const library of rep % 2 ? [...LIBRARIES].reverse() : LIBRARIES) values[library].push(runWorker(library, measure.id, rep))
    }
    const [theirs, ours] = LIBRARIES.map((library) => stats(values[library]))
    const ratio = ours.median / theirs.median
    rows.push({ name: measure.name, unit: measure.unit, theirs, ours, ratio, ...check(measure.target, ratio, ours.median) })
    console.log(`${measure.name}: pixstore ${cell(theirs)}, pixstore-native ${cell(ours)} ${measure.unit}, ratio ${fmt(ratio)}`)
  }
  for (const [id, name, unit, key, target] of [
    ['event-loop-5m-20', 'event-loop delay p99 during 20 × 5 MB saves', 'ms', 'p99', { kind: 'max-native', value: 5 }],
    ['event-loop-5m-20', 'event-loop delay max during 20 × 5 MB saves', 'ms', 'max'],
    ['rss-100x5m-32', 'RSS after 100 × 5 MB saves, 32 in flight', 'MiB', null, { kind: 'max-ratio', value: 0.5 }],
  ]) {
    const values = { pixstore: [], 'pixstore-native': [] }
    for (let rep = 0; rep < repetitions; rep++) {
      for (const library of LIBRARIES) {
        const value = runWorker(library, id, rep)
        values[library].push(key ? value[key] : value)
      }
    }
    const [theirs, ours] = LIBRARIES.map((library) => stats(values[library]))
    const ratio = ours.median / theirs.median
    rows.push({ name, unit, theirs, ours, ratio, ...check(target, ratio, ours.median) })
    console.log(`${name}: pixstore ${cell(theirs)}, pixstore-native ${cell(ours)} ${unit}`)
  }
  for (const measure of ENDPOINT_MEASURES) {
    const runs = { pixstore: [], 'pixstore-native': [] }
    for (let rep = 0; rep < wrkRepetitions; rep++) {
      for (const library of LIBRARIES) runs[library].push(await runWrk(library, measure.fixture, measure.match, rep))
    }
    for (const [key, unit, target] of [
      ['rps', 'req/s', { kind: 'min-ratio', value: measure.rpsTarget }],
      ['p50', 'ms', null],
      ['p99', 'ms', measure.p99Target ? { kind: 'max-ratio', value: measure.p99Target } : null],
      ['mbps', 'MiB/s', null],
    ]) {
      const [theirs, ours] = LIBRARIES.map((library) => stats(runs[library].map((run) => run[key])))
      const ratio = ours.median / theirs.median
      rows.push({ name: `${measure.name}: ${key === 'rps' ? 'req/s' : key === 'mbps' ? 'throughput' : key}`, unit, theirs, ours, ratio, ...check(target, ratio, ours.median) })
    }
    const last = rows.slice(-4)
    console.log(`${measure.name}: ${last.map((r) => `${r.name.split(': ')[1]} ${fmt(r.theirs.median)} → ${fmt(r.ours.median)}`).join(', ')}`)
  }
  writeReport(rows, startedLoad)
  rmSync(runs, { recursive: true, force: true })
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

function writeReport(rows, startedLoad) {
  const mode = quick ? `quick (${repetitions} repetitions, ${scale}× operation counts, ${wrkRepetitions} wrk run of ${wrkSeconds} s)` : `full (${repetitions} repetitions, ${wrkRepetitions} wrk runs of ${wrkSeconds} s)`
  const table = [
    '| measure | unit | pixstore 3.2.1 median (min–max) | pixstore-native median (min–max) | ratio (native / pixstore) | target | met? |',
    '| --- | --- | --- | --- | --- | --- | --- |',
    ...rows.map((r) => `| ${r.name} | ${r.unit} | ${cell(r.theirs)} | ${cell(r.ours)} | ${fmt(r.ratio)} | ${r.text} | ${r.met} |`),
  ].join('\n')
  const generated = `<!-- generated by npm run bench: do not edit between these markers -->\n${[
    `Run: ${new Date().toISOString()}, ${mode}. Load average at start: ${startedLoad.map((l) => l.toFixed(2)).join(' ')}.`,
    '',
    ...machine().map((line) => `- ${line}`),
    '',
    table,
    '',
    '![ratios](benchmark/ratios.svg)',
  ].join('\n')}\n<!-- end of generated part -->`
  const path = join(root, 'BENCHMARKS.md')
  const previous = existsSync(path) ? readFileSync(path, 'utf8') : '# Benchmarks\n\n<!-- generated by npm run bench -->\n<!-- end of generated part -->\n'
  const updated = previous.replace(/<!-- generated by npm run bench[\s\S]*<!-- end of generated part -->/, generated)
  writeFileSync(path, updated)
  writeFileSync(join(here, 'ratios.svg'), chart(rows))
  console.log(`wrote ${path} and benchmark/ratios.svg`)
}

/** A horizontal bar chart of the ratios on a log scale (1× in the middle). */
function chart(rows) {
  const width = 900
  const barHeight = 18
  const left = 360
  const height = 40 + rows.length * (barHeight + 6)
  const center = left + (width - left - 20) / 2
  const span = (width - left - 20) / 2
  const x = (ratio) => center + (Math.max(-3, Math.min(3, Math.log10(ratio))) / 3) * span
  const bars = rows.map((r, i) => {
    const y = 30 + i * (barHeight + 6)
    const end = x(r.ratio)
    const color = r.met === 'no' ? '#d9534f' : r.met === 'yes' ? '#2e7d32' : '#607d8b'
    return `<text x="${left - 8}" y="${y + 13}" text-anchor="end" font-size="12">${r.name.replace(/&/g, '&amp;')}</text>` +
      `<rect x="${Math.min(center, end)}" y="${y}" width="${Math.abs(end - center)}" height="${barHeight}" fill="${color}"/>` +
      `<text x="${end + (end >= center ? 4 : -4)}" y="${y + 13}" font-size="11" text-anchor="${end >= center ? 'start' : 'end'}">${fmt(r.ratio)}×</text>`
  })
  const ticks = [0.001, 0.01, 0.1, 1, 10, 100, 1000].map((t) => `<line x1="${x(t)}" y1="22" x2="${x(t)}" y2="${height - 8}" stroke="#ccc"/><text x="${x(t)}" y="16" font-size="10" text-anchor="middle">${t}×</text>`)
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">` +
    `<rect width="100%" height="100%" fill="white"/>${ticks.join('')}${bars.join('')}</svg>\n`
}

await main()
