// Operating a store with the `pixstore-native` command (SPEC "Operating the
// store"): verify finds planted faults in a store pixstore 3.2.1 wrote and
// --repair removes only what is safe; import, export and stats; progress on a
// terminal and not in a pipe; exit statuses.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn, spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tempDir, makePng, fixturesDir, sha256 } from './helpers.mjs'

const cli = new URL('../bin/pixstore-native.js', import.meta.url).pathname
const dir = tempDir()
after(() => dir.remove())

const storeOf = (name) => ({ imageRootDir: join(dir.path, name, 'images'), databasePath: join(dir.path, name, 'store.sqlite') })

function run(config, ...args) {
  const file = join(dir.path, `config-${Math.random().toString(36).slice(2)}.json`)
  writeFileSync(file, JSON.stringify(config))
  const result = spawnSync(process.execPath, [cli, '--config', file, '--json', ...args], { encoding: 'utf8', timeout: 120_000 })
  rmSync(file)
  const report = result.stdout ? JSON.parse(result.stdout) : null
  // The report is printed in pieces; the text is still exactly JSON.stringify's, indented by 2.
  if (report !== null) assert.equal(result.stdout, JSON.stringify(report, null, 2) + '\n')
  return { status: result.status, report, stderr: result.stderr }
}

/** Records of a local store, read in a child process (another SQLite library must not open it in ours). */
function sqlite(databasePath, sql) {
  return JSON.parse(execFileSync(process.execPath, ['-e', `
    const Database = require('better-sqlite3')
    const db = new Database(${JSON.stringify(databasePath)}, { readonly: true })
    let rows = []
    try { rows = db.prepare(${JSON.stringify(sql)}).all() } catch {}
    process.stdout.write(JSON.stringify(rows))
  `], { cwd: new URL('.', import.meta.url), encoding: 'utf8' }))
}

/** Saves images with the real pixstore 3.2.1 in a child process; returns their records. */
function pixstoreWrites(config, images) {
  mkdirSync(join(config.imageRootDir, '..'), { recursive: true })
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', `
    const pixstore = await import('pixstore/backend/index.js')
    pixstore.initPixstoreBackend({ ...${JSON.stringify(config)}, defaultEndpointEnabled: false, errorHandlingMode: 'throw' })
    const records = []
    for (const [bytes, dir] of ${JSON.stringify(images.map(([bytes, prefix]) => [[...bytes], prefix]))}) {
      records.push(await pixstore.saveImage(Buffer.from(bytes), dir ?? undefined))
    }
    process.stdout.write(JSON.stringify(records))
    process.exit(0)
  `], { cwd: new URL('.', import.meta.url), encoding: 'utf8' }))
}

const fileOf = (config, id) => {
  const [prefix, key] = id.includes(':') ? id.split(':') : ['', id]
  return join(config.imageRootDir, prefix, `${key}.pixstore-image`)
}

test('verify finds every planted fault in a store pixstore 3.2.1 wrote, and --repair removes only what is safe', async () => {
  const config = storeOf('faulty')
  const records = pixstoreWrites(config, Array.from({ length: 8 }, (_, n) => [makePng(3, 3, n), n % 2 ? 'pets' : null]))
  const [gone, flipped, , donor] = records
  const clean = run(config, 'verify')
  assert.equal(clean.status, 0, clean.stderr)
  assert.deepEqual(clean.report, { records: 8, files: 8, problems: [], interrupted: false })

  // A record whose file is gone; a file with a flipped byte; a file with no record (an hour old).
  rmSync(fileOf(config, gone.id))
  const bytes = readFileSync(fileOf(config, flipped.id))
  bytes[5] ^= 0x01
  writeFileSync(fileOf(config, flipped.id), bytes)
  const orphan = join(config.imageRootDir, 'zzorphan0000001.pixstore-image')
  copyFileSync(fileOf(config, donor.id), orphan)
  const hourAgo = new Date(Date.now() - 3600_000)
  utimesSync(orphan, hourAgo, hourAgo)
  // An interrupted write from a killed process: pixstore-native writers killed until one leaves an intent
  // (with 'fsync', each write holds its intent through the fsyncs: kills hit one more often; attempts
  // are bounded by time, not count, as a loaded machine stretches every delay).
  const worker = new URL('./support/crash-worker.mjs', import.meta.url).pathname
  let unfinished = []
  const deadline = Date.now() + 60_000
  for (let attempt = 0; Date.now() < deadline && unfinished.length === 0; attempt++) {
    const child = spawn(process.execPath, [worker, join(dir.path, 'faulty'), join(dir.path, 'acks.log'), String(attempt + 1), 'fsync'], { stdio: ['ignore', 'pipe', 'ignore'] })
    await new Promise((resolve) => child.stdout.once('data', resolve))
    await new Promise((resolve) => setTimeout(resolve, 20 + Math.random() * 200))
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))
    unfinished = sqlite(config.databasePath, 'SELECT id FROM pixstore_native_intents')
  }
  assert.ok(unfinished.length > 0, 'a killed writer left an unfinished write')
  // Leftover temporary files of a dead writer.
  const temp = join(config.imageRootDir, '.pixstore-tmp', 'deadbeefdeadbeef-7.tmp')
  writeFileSync(temp, 'half an image')
  const recordsBefore = sqlite(config.databasePath, 'SELECT id FROM image_records ORDER BY id').map((row) => row.id)

  const found = run(config, 'verify')
  assert.equal(found.status, 1, 'problems found')
  const kinds = (kind) => found.report.problems.filter((problem) => problem.kind === kind)
  // An image whose write was interrupted can also be missing (a delete had moved its file
  // aside) or not match its record (an update had swapped its file in): recovery settles it.
  const interrupted = new Set(unfinished.map((row) => row.id))
  const settled = (problems) => problems.map((problem) => problem.id).filter((id) => !interrupted.has(id))
  assert.deepEqual(settled(kinds('missing-file')), [gone.id])
  assert.deepEqual(settled(kinds('corrupt-file')), [flipped.id])
  assert.deepEqual(kinds('orphan-file').map((problem) => problem.path), [orphan])
  assert.ok(kinds('temp-file').some((problem) => problem.path === temp))
  assert.deepEqual(kinds('unfinished-write').map((problem) => problem.id).sort(), unfinished.map((row) => row.id).sort())
  assert.ok(found.report.problems.every((problem) => problem.repaired === false))
  assert.ok(existsSync(orphan) && existsSync(temp), 'verify alone changes nothing')

  const repaired = run(config, 'verify', '--repair')
  assert.equal(repaired.status, 1, 'the missing and the corrupt image cannot be repaired')
  for (const problem of repaired.report.problems) {
    const safe = ['orphan-file', 'temp-file', 'unfinished-write'].includes(problem.kind)
    assert.equal(problem.repaired, safe, `${problem.kind} ${problem.id ?? problem.path}`)
  }
  assert.equal(existsSync(orphan), false)
  assert.equal(existsSync(temp), false)
  assert.ok(existsSync(fileOf(config, flipped.id)), 'the only copy of an image is never deleted')
  const recordsAfter = sqlite(config.databasePath, 'SELECT id FROM image_records ORDER BY id').map((row) => row.id)
  for (const id of recordsBefore) assert.ok(recordsAfter.includes(id), `the record ${id} is kept`)
  assert.deepEqual(sqlite(config.databasePath, 'SELECT id FROM pixstore_native_intents'), [])

  const after = run(config, 'verify')
  assert.deepEqual(after.report.problems.map((problem) => problem.kind).sort(), ['corrupt-file', 'missing-file'])
})

test('import a folder of images, non-images and nested folders; a second run imports nothing twice; export gives the originals back; stats count', () => {
  const source = join(dir.path, 'photos')
  mkdirSync(join(source, 'trip', 'day1'), { recursive: true })
  const files = {
    'a.png': makePng(5, 5, 1),
    'trip/b.jpg': readFileSync(join(fixturesDir, '200k.jpg')),
    'trip/day1/c.webp': readFileSync(join(fixturesDir, 'medium.webp')),
    'trip/day1/d.png': makePng(40, 30, 2),
  }
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(source, name), bytes)
  writeFileSync(join(source, 'notes.txt'), 'not an image')
  writeFileSync(join(source, 'trip', 'anim.gif'), Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1'))
  const config = storeOf('imported')

  const first = run(config, 'import', source, '--dir', 'Holiday', '--concurrency', '3')
  assert.equal(first.status, 0, first.stderr)
  assert.deepEqual(first.report.imported.map((item) => item.path).sort(), Object.keys(files).map((name) => join(source, name)).sort())
  assert.ok(first.report.imported.every((item) => /^holiday:[0-9a-z]{16}$/.test(item.id)))
  assert.deepEqual(first.report.skipped, [
    { path: join(source, 'notes.txt'), reason: 'not an image' },
    { path: join(source, 'trip', 'anim.gif'), reason: 'gif is not one of imageFormats' },
  ].sort((a, b) => a.path.localeCompare(b.path)))

  const second = run(config, 'import', source, '--dir', 'Holiday')
  assert.equal(second.status, 0)
  assert.deepEqual(second.report.imported, [])
  const ids = Object.fromEntries(first.report.imported.map((item) => [item.path, item.id]))
  for (const item of second.report.skipped.filter((item) => item.reason.startsWith('already'))) {
    assert.equal(item.reason, `already imported as ${ids[item.path]}`)
  }
  assert.equal(second.report.skipped.length, 6)

  const out = join(dir.path, 'exported')
  const exported = run(config, 'export', out)
  assert.equal(exported.status, 0)
  assert.deepEqual(exported.report.failed, [])
  const byId = Object.fromEntries(exported.report.exported.map((item) => [item.id, item.path]))
  for (const [name, bytes] of Object.entries(files)) {
    const path = byId[ids[join(source, name)]]
    const extension = { png: 'png', jpg: 'jpg', webp: 'webp' }[name.split('.').pop()]
    assert.ok(path.endsWith(`.${extension}`) && path.startsWith(join(out, 'holiday')), path)
    assert.equal(sha256(readFileSync(path)), sha256(bytes), `${name} comes back byte for byte`)
  }

  const stats = run(config, 'stats')
  assert.equal(stats.status, 0)
  assert.deepEqual(stats.report, {
    images: 4,
    bytes: Object.values(files).reduce((sum, bytes) => sum + bytes.length, 0),
    formats: { jpg: 1, png: 2, webp: 1 },
    prefixes: { holiday: 4 },
    interrupted: false,
  })
})

test('import: files of the same bytes and time are each an image of their own; a re-run of the same folder still imports nothing twice', () => {
  const source = join(dir.path, 'placeholders')
  mkdirSync(join(source, 'team'), { recursive: true })
  const placeholder = makePng(3, 3, 9)
  const names = ['alice.png', 'bob.png', 'team/alice.png']
  const time = new Date('2024-05-01T12:00:00Z')
  for (const name of names) {
    writeFileSync(join(source, name), placeholder)
    utimesSync(join(source, name), time, time)
  }
  const config = storeOf('copies')
  const first = run(config, 'import', source)
  assert.equal(first.status, 0, first.stderr)
  assert.deepEqual(first.report.skipped, [])
  assert.equal(first.report.imported.length, 3)
  assert.equal(new Set(first.report.imported.map((item) => item.id)).size, 3, 'three files, three ids')
  const second = run(config, 'import', source)
  assert.deepEqual(second.report.imported, [])
  assert.deepEqual(second.report.skipped.map((item) => item.reason).sort(), first.report.imported.map((item) => `already imported as ${item.id}`).sort())
  assert.equal(run(config, 'stats').report.images, 3)
})

test('progress: a bar with count, rate and ETA on a terminal, plain lines in a pipe, on standard error with --json too', () => {
  const config = storeOf('imported')
  const file = join(dir.path, 'progress.json')
  writeFileSync(file, JSON.stringify(config))
  // `script` runs the command on a pseudo-terminal.
  const onTerminal = execFileSync('script', ['-qec', `${process.execPath} ${cli} --config ${file} verify`, '/dev/null'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '100' } })
  assert.match(onTerminal, /records \[[█░]+\] \d+\/\d+ \| \d+\/s \| ETA/)
  const piped = spawnSync(process.execPath, [cli, '--config', file, 'verify'], { encoding: 'utf8' })
  assert.doesNotMatch(piped.stderr, /[█░]/)
  assert.match(piped.stderr, /^records: \d+\/\d+ \(\d+\/s\)$/m)
  const json = spawnSync(process.execPath, [cli, '--config', file, '--json', 'verify'], { encoding: 'utf8' })
  assert.match(json.stderr, /^records: \d+\/\d+ \(\d+\/s\)$/m)
  assert.equal(JSON.parse(json.stdout).records, 4)
  const report = join(dir.path, 'progress-report.json')
  const jsonOnTerminal = execFileSync('script', ['-qec', `${process.execPath} ${cli} --config ${file} --json verify > ${report}`, '/dev/null'], { encoding: 'utf8', env: { ...process.env, COLUMNS: '100' } })
  assert.match(jsonOnTerminal, /records \[[█░]+\] \d+\/\d+/)
  assert.equal(JSON.parse(readFileSync(report, 'utf8')).records, 4)
})

test('exit status 2 for bad usage, with a message', () => {
  for (const args of [['verify', '--bogus'], ['frobnicate'], ['import'], ['--config', join(dir.path, 'nope.json'), 'stats'], ['import', dir.path, '--concurrency', '0']]) {
    const result = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' })
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`)
    assert.ok(result.stderr.length > 0)
  }
  writeFileSync(join(dir.path, 'bad.json'), JSON.stringify({ imageFormats: ['exe'] }))
  const invalid = spawnSync(process.execPath, [cli, '--config', join(dir.path, 'bad.json'), 'stats'], { encoding: 'utf8' })
  assert.equal(invalid.status, 2)
  assert.match(invalid.stderr, /imageFormats must be/)
  assert.equal(readdirSync(dir.path).includes('undefined'), false)
})

test('paths that cannot be used are bad usage (exit 2) naming the path, before any store is opened', () => {
  const config = storeOf('paths')
  const aFile = join(dir.path, 'a-file.png')
  writeFileSync(aFile, makePng(2, 2, 1))
  const cases = [
    [['import', join(dir.path, 'no-such-folder')], /no-such-folder does not exist/],
    [['import', aFile], /a-file\.png is not a folder/],
    [['export', aFile], /a-file\.png is not a folder/],
  ]
  for (const [args, message] of cases) {
    const result = run(config, ...args)
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`)
    assert.match(result.stderr, message)
  }
  assert.equal(existsSync(join(dir.path, 'paths')), false, 'no store was created')
})

test('import lists what it passes over: links to folders (not followed), FIFOs, device links, broken links', () => {
  const source = join(dir.path, 'special-files')
  mkdirSync(join(source, 'sub'), { recursive: true })
  writeFileSync(join(source, 'real.png'), makePng(4, 4, 3))
  symlinkSync(join(source, 'real.png'), join(source, 'link.png'))
  symlinkSync(source, join(source, 'sub', 'loop'))
  symlinkSync('/dev/zero', join(source, 'zero.png'))
  symlinkSync(join(source, 'gone.png'), join(source, 'broken.png'))
  execFileSync('mkfifo', [join(source, 'pipe.png')])
  const result = run(storeOf('specials'), 'import', source)
  assert.equal(result.status, 0, result.stderr)
  assert.deepEqual(result.report.imported.map((item) => item.path).sort(), [join(source, 'link.png'), join(source, 'real.png')])
  const reasons = Object.fromEntries(result.report.skipped.map((item) => [item.path.slice(source.length + 1), item.reason]))
  assert.equal(reasons['sub/loop'], 'link to a folder, not followed')
  assert.equal(reasons['zero.png'], 'not a regular file')
  assert.equal(reasons['pipe.png'], 'not a regular file')
  assert.match(reasons['broken.png'], /^broken link/)
  assert.equal(Object.keys(reasons).length, 4)
})

test('migrate refuses a destination that shares the source\'s image folder (or one inside it) or its database', () => {
  const source = storeOf('shared-src')
  run(source, 'import', join(fixturesDir))
  const file = (config) => {
    const path = join(dir.path, `migrate-${Math.random().toString(36).slice(2)}.json`)
    writeFileSync(path, JSON.stringify(config))
    return path
  }
  const destinations = [
    [{ ...source, databasePath: join(dir.path, 'shared-dst.sqlite') }, /keeps its images where the source does/],
    [{ ...source, databasePath: join(dir.path, 'shared-dst2.sqlite'), imageRootDir: join(source.imageRootDir, 'inner') }, /keeps its images where the source does/],
    [{ ...source, imageRootDir: join(dir.path, 'shared-dst-images', '..', 'shared-src', 'images') }, /keeps its images where the source does/],
    [{ ...source, imageRootDir: join(dir.path, 'shared-dst-images') }, /keeps its records where the source does/],
  ]
  for (const [destination, message] of destinations) {
    const result = spawnSync(process.execPath, [cli, '--json', 'migrate', '--from', file(source), '--to', file(destination)], { encoding: 'utf8' })
    assert.equal(result.status, 2, result.stderr)
    assert.match(result.stderr, message)
  }
  assert.equal(existsSync(join(dir.path, 'shared-dst.sqlite')), false)
  const fine = spawnSync(process.execPath, [cli, '--json', 'migrate', '--from', file(source), '--to', file(storeOf('shared-dst'))], { encoding: 'utf8' })
  assert.equal(fine.status, 0, fine.stderr)
  assert.ok(JSON.parse(fine.stdout).migrated > 0)
})

test('an image file that cannot be read (a folder in its place) is one problem: verify, stats and export go on with the rest', () => {
  const config = storeOf('unreadable-file')
  const [blocked, fine] = pixstoreWrites(config, [[makePng(3, 3, 1), null], [makePng(3, 3, 2), null]])
  rmSync(fileOf(config, blocked.id))
  mkdirSync(fileOf(config, blocked.id))
  const verify = run(config, 'verify')
  assert.equal(verify.status, 1)
  assert.equal(verify.report.records, 2)
  assert.deepEqual(verify.report.problems.map((problem) => [problem.kind, problem.id]), [['corrupt-file', blocked.id]])
  assert.match(verify.report.problems[0].reason, /cannot be read/)
  assert.deepEqual(run(config, 'stats').report.formats, { png: 1, unreadable: 1 })
  const exported = run(config, 'export', join(dir.path, 'unreadable-out'))
  assert.equal(exported.status, 1)
  assert.deepEqual(exported.report.exported.map((item) => item.id), [fine.id])
  assert.deepEqual(exported.report.failed.map((item) => item.id), [blocked.id])
})
