#!/usr/bin/env node
'use strict'
// The `pixstore-native` command (`npx pixstore-native …`): verify, import,
// export, stats, migrate and rekey a store, on the pixstore-native/admin API.
// Arguments by commander and the terminal progress bar by cli-progress
// (both well-kept npm packages), so the command stays a thin layer.
// Exit status: 0 all well, 1 problems found or items failed (130 when
// interrupted with Ctrl-C), 2 bad usage. `--json` prints one JSON document.

const { readFileSync } = require('node:fs')
const { Command, CommanderError, Option } = require('commander')
const cliProgress = require('cli-progress')
const admin = require('../admin.js')

const EXIT = { ok: 0, problems: 1, usage: 2, interrupted: 130 }

class UsageError extends Error {}

function readConfig(file) {
  let text
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    throw new UsageError(`cannot read the config file ${file}: ${error.message}`)
  }
  try {
    const config = JSON.parse(text)
    if (config === null || typeof config !== 'object' || Array.isArray(config)) throw new Error('not an object')
    return config
  } catch (error) {
    throw new UsageError(`the config file ${file} is not a JSON object: ${error.message}`)
  }
}

/** The store the global options name: `--config`, or the individual options over it. */
function storeConfig(options) {
  const config = options.config ? readConfig(options.config) : {}
  if (options.databasePath) config.databasePath = options.databasePath
  if (options.imageRootDir) config.imageRootDir = options.imageRootDir
  if (options.databaseUrl) config.databaseUrl = options.databaseUrl
  if (options.objectStoreUrl) config.objectStore = { ...(config.objectStore ?? {}), url: options.objectStoreUrl }
  // Credentials, endpoint and region of the object store come from AWS_* (see README).
  return config
}

/**
 * Progress on standard error (SPEC: count, rate and ETA on a terminal, plain lines otherwise),
 * with or without --json: the report alone goes to standard output.
 */
function progressReporter() {
  const started = Date.now()
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      { format: '{phase} [{bar}] {value}/{total} | {rate}/s | ETA {eta_formatted}', stream: process.stderr, hideCursor: true },
      cliProgress.Presets.shades_classic,
    )
    let phase = null
    return {
      update({ phase: current, done, total }) {
        const rate = Math.round(done / Math.max((Date.now() - started) / 1000, 0.001))
        if (phase !== current) {
          if (phase !== null) bar.stop()
          phase = current
          bar.start(total ?? done, done, { phase: current, rate })
        }
        if (total != null) bar.setTotal(total)
        bar.update(done, { phase: current, rate })
      },
      stop: () => phase !== null && bar.stop(),
    }
  }
  let last = 0
  return {
    update({ phase, done, total }) {
      if (Date.now() - last < 2000 && done !== total) return
      last = Date.now()
      const rate = Math.round(done / Math.max((Date.now() - started) / 1000, 0.001))
      process.stderr.write(`${phase}: ${done}${total != null ? `/${total}` : ''} (${rate}/s)\n`)
    },
    stop() {},
  }
}

/**
 * The text of `JSON.stringify(report, null, 2) + '\n'`, in pieces: one per item of the
 * report's lists (an export of 300,000 images lists 300,000), so that the whole text is
 * never one string in memory.
 */
function* jsonText(report) {
  const keys = Object.keys(report)
  yield '{\n'
  for (const [n, key] of keys.entries()) {
    const value = report[key]
    const end = n < keys.length - 1 ? ',\n' : '\n'
    if (Array.isArray(value) && value.length > 0) {
      yield `  ${JSON.stringify(key)}: [\n`
      for (const [i, item] of value.entries()) {
        yield `    ${JSON.stringify(item, null, 2).replaceAll('\n', '\n    ')}${i < value.length - 1 ? ',\n' : '\n'}`
      }
      yield `  ]${end}`
    } else {
      yield `  ${JSON.stringify(key)}: ${JSON.stringify(value, null, 2).replaceAll('\n', '\n  ')}${end}`
    }
  }
  yield '}\n'
}

/** Writes pieces of text to standard output in chunks of about 64 KiB. */
function writeOut(pieces) {
  let chunk = ''
  for (const piece of pieces) {
    chunk += piece
    if (chunk.length >= 65536) {
      process.stdout.write(chunk)
      chunk = ''
    }
  }
  if (chunk) process.stdout.write(chunk)
}

/** Runs an admin operation with progress and Ctrl-C; prints the report; sets the exit status. */
async function perform(globals, operation, { failed, summary }) {
  const controller = new AbortController()
  let interrupts = 0
  const onInterrupt = () => {
    interrupts++
    if (interrupts > 1) process.exit(EXIT.interrupted)
    process.stderr.write('\nStopping after the images in progress (Ctrl-C again to quit at once)…\n')
    controller.abort()
  }
  process.on('SIGINT', onInterrupt)
  const progress = progressReporter()
  let report
  try {
    report = await operation({ onProgress: (p) => progress.update(p), signal: controller.signal })
  } finally {
    progress.stop()
    process.off('SIGINT', onInterrupt)
  }
  if (globals.json) writeOut(jsonText(report))
  else writeOut(summary(report).map((line) => line + '\n'))
  if (report.interrupted) process.exitCode = EXIT.interrupted
  else process.exitCode = failed(report) ? EXIT.problems : EXIT.ok
}

function program() {
  const cli = new Command('pixstore-native')
  cli
    .description('Operate a pixstore / pixstore-native image store: verify, import, export, stats, migrate.')
    .option('--config <file>', 'a JSON PixstoreBackendConfig naming the store')
    .option('--database-path <path>', 'the SQLite database (local store)')
    .option('--image-root-dir <dir>', 'the image folder (local store)')
    .option('--database-url <url>', 'postgres:// URL of the records')
    .option('--object-store-url <url>', 's3://bucket[/prefix] of the images (credentials from AWS_*)')
    .option('--json', 'print one JSON document instead of text')
    .showHelpAfterError()
    .exitOverride()

  cli
    .command('verify')
    .description('check every image against its record; find orphans, temporary files and unfinished writes')
    .option('--repair', 'remove orphans and temporary files, settle unfinished writes (never a record)')
    .action(async (options) => {
      const globals = cli.opts()
      await perform(globals, (extra) => admin.verifyStore(storeConfig(globals), { ...extra, repair: options.repair }), {
        failed: (report) => report.problems.some((problem) => !problem.repaired),
        summary: (report) => [
          `${report.records} records, ${report.files} image files; ${report.problems.length} problem(s)${report.interrupted ? ' (interrupted)' : ''}`,
          ...report.problems.map((problem) =>
            [problem.kind, problem.id ?? '-', problem.path ?? '-', problem.repaired ? 'repaired' : (problem.reason ?? '')].join('\t').trimEnd()),
        ],
      })
    })

  cli
    .command('import')
    .description('store every image under a folder, recursively; non-images are skipped')
    .argument('<folder>', 'the folder to import')
    .option('--dir <prefix>', 'the dir (id prefix) of the imported images')
    .addOption(new Option('--concurrency <n>', 'images stored at once').argParser((value) => {
      const n = Number(value)
      if (!Number.isInteger(n) || n < 1 || n > 256) throw new UsageError('--concurrency must be an integer between 1 and 256')
      return n
    }))
    .action(async (folder, options) => {
      const globals = cli.opts()
      await perform(globals, (extra) => admin.importFolder(storeConfig(globals), folder, { ...extra, dir: options.dir, concurrency: options.concurrency }), {
        failed: (report) => report.skipped.some((item) => item.reason.startsWith('failed:')),
        summary: (report) => [
          `${report.imported.length} imported, ${report.skipped.length} skipped${report.interrupted ? ' (interrupted)' : ''}`,
          ...report.imported.map((item) => `imported\t${item.path}\t${item.id}`),
          ...report.skipped.map((item) => `skipped\t${item.path}\t${item.reason}`),
        ],
      })
    })

  cli
    .command('export')
    .description('decrypt every image into a folder, named after its id with its format\'s extension')
    .argument('<folder>', 'where to write the images')
    .action(async (folder) => {
      const globals = cli.opts()
      await perform(globals, (extra) => admin.exportStore(storeConfig(globals), folder, extra), {
        failed: (report) => report.failed.length > 0,
        summary: (report) => [
          `${report.exported.length} exported, ${report.failed.length} failed${report.interrupted ? ' (interrupted)' : ''}`,
          ...report.failed.map((item) => `failed\t${item.id}\t${item.reason}`),
        ],
      })
    })

  cli
    .command('stats')
    .description('count images, bytes, formats and prefixes')
    .action(async () => {
      const globals = cli.opts()
      await perform(globals, (extra) => admin.storeStats(storeConfig(globals), extra), {
        failed: () => false,
        summary: (report) => [
          `${report.images} images, ${report.bytes} bytes${report.interrupted ? ' (interrupted)' : ''}`,
          ...Object.entries(report.formats).map(([format, count]) => `format\t${format}\t${count}`),
          ...Object.entries(report.prefixes).map(([prefix, count]) => `prefix\t${prefix === '' ? '(none)' : prefix}\t${count}`),
        ],
      })
    })

  cli
    .command('migrate')
    .description('copy every record and image from one store to another, as they are (resumable)')
    .requiredOption('--from <file>', 'JSON config of the source store (only read)')
    .requiredOption('--to <file>', 'JSON config of the destination store')
    .action(async (options) => {
      const globals = cli.opts()
      await perform(globals, (extra) => admin.migrateStore(readConfig(options.from), readConfig(options.to), extra), {
        failed: (report) => report.failed.length > 0,
        summary: (report) => [
          `${report.migrated} migrated, ${report.skipped} already there, ${report.failed.length} failed${report.interrupted ? ' (interrupted)' : ''}`,
          ...report.failed.map((item) => `failed\t${item.id}\t${item.reason}`),
        ],
      })
    })

  cli
    .command('rekey')
    .description('rewrap every stored key under the first of masterKeys (from --config), or --unwrap them')
    .option('--unwrap', 'store the keys plain again (readable by pixstore 3.2.1)')
    .action(async (options) => {
      const globals = cli.opts()
      await perform(globals, (extra) => admin.rekeyStore(storeConfig(globals), { ...extra, unwrap: options.unwrap }), {
        failed: (report) => report.failed.length > 0,
        summary: (report) => [
          `${report.rekeyed} rekeyed, ${report.skipped} already done, ${report.failed.length} failed${report.interrupted ? ' (interrupted)' : ''}`,
          ...report.failed.map((item) => `failed\t${item.id}\t${item.reason}`),
        ],
      })
    })

  return cli
}

async function main(argv) {
  const cli = program()
  try {
    await cli.parseAsync(argv)
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version exit 0; every other commander error is bad usage.
      process.exitCode = error.exitCode === 0 ? EXIT.ok : EXIT.usage
      return
    }
    const usage = error instanceof UsageError || error instanceof TypeError || (error instanceof Error && error.code === undefined && error.name !== 'PixstoreError')
    process.stderr.write(`pixstore-native: ${error.message}\n`)
    process.exitCode = usage ? EXIT.usage : EXIT.problems
  }
}

main(process.argv)
