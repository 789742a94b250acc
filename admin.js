'use strict'
// pixstore-native/admin: the operator's tools as an API for programs — the
// same operations the `pixstore-native` command runs (bin/pixstore-native.js).
// Each opens the store(s) its configuration names, apart from any backend the
// app runs, does its work off the JS thread and resolves with its report.

const { statSync } = require('node:fs')
const { resolve } = require('node:path')
const native = require('./index.js')
const { fromNative } = require('./lib/errors.js')

let nextRun = 1

function requireConfig(config, what = 'config') {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new TypeError(`${what} must be a PixstoreBackendConfig object`)
  }
  return config
}

function requireFolder(folder) {
  if (typeof folder !== 'string' || folder === '') throw new TypeError('folder must be a non-empty string')
  return folder
}

/**
 * Checked before any store is opened (so nothing is created for a bad path): the folder to
 * import must be a folder; the one to export into a folder or nothing yet (then created).
 */
function checkFolder(folder, { mustExist }) {
  let stats
  try {
    stats = statSync(folder)
  } catch (error) {
    if (error.code === 'ENOENT' && !mustExist) return folder
    throw new Error(`${resolve(folder)} ${error.code === 'ENOENT' ? 'does not exist' : `cannot be read (${error.code})`}`)
  }
  if (!stats.isDirectory()) throw new Error(`${resolve(folder)} is not a folder`)
  return folder
}

async function run(command, configs, options = {}) {
  const { onProgress, signal, ...rest } = options
  if (onProgress !== undefined && typeof onProgress !== 'function') throw new TypeError('onProgress must be a function')
  if (signal?.aborted) throw signal.reason ?? new Error('aborted')
  const runId = nextRun++
  const cancel = () => native.adminCancel(runId)
  signal?.addEventListener('abort', cancel, { once: true })
  try {
    const report = await native.adminRun(command, configs, rest, runId, (progress) => {
      try {
        onProgress?.(progress)
      } catch {
        // A failing progress callback must not stop the operation.
      }
    })
    return JSON.parse(report)
  } catch (error) {
    throw fromNative(error)
  } finally {
    signal?.removeEventListener('abort', cancel)
  }
}

/**
 * Checks that every record has its image and that the image authenticates
 * under the record's key, then looks for orphan files, temporary files and
 * unfinished writes; `repair` removes or settles those (never a record).
 */
async function verifyStore(config, { repair = false, ...options } = {}) {
  return run('verify', [requireConfig(config)], { ...options, repair: Boolean(repair) })
}

/** Counts images, their bytes, formats and id prefixes. */
async function storeStats(config, options = {}) {
  return run('stats', [requireConfig(config)], options)
}

/** Decrypts every image into `folder`, as `<id>.<ext>` (`<dir>/<key>.<ext>` for prefixed ids). */
async function exportStore(config, folder, options = {}) {
  const target = checkFolder(requireFolder(folder), { mustExist: false })
  return run('export', [requireConfig(config)], { ...options, folder: target })
}

/** Stores every image under `folder` (recursively); non-images are skipped with the reason. */
async function importFolder(config, folder, { dir, concurrency, ...options } = {}) {
  if (dir !== undefined && typeof dir !== 'string') throw new TypeError('dir must be a string')
  if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency >= 1 && concurrency <= 256)) {
    throw new TypeError('concurrency must be an integer between 1 and 256')
  }
  const source = checkFolder(requireFolder(folder), { mustExist: true })
  return run('import', [requireConfig(config)], { ...options, folder: source, dir, concurrency })
}

/** Copies every record and image from one store to another, as they are; the source is only read. */
async function migrateStore(from, to, options = {}) {
  return run('migrate', [requireConfig(from, 'from'), requireConfig(to, 'to')], options)
}

/**
 * Rewraps the key stored in every record under the config's first master key
 * (`masterKeys`), or with `unwrap` stores them all plain again; no image is
 * rewritten; resumable.
 */
async function rekeyStore(config, { unwrap = false, ...options } = {}) {
  return run('rekey', [requireConfig(config)], { ...options, unwrap: Boolean(unwrap) })
}

exports.verifyStore = verifyStore
exports.rekeyStore = rekeyStore
exports.storeStats = storeStats
exports.exportStore = exportStore
exports.importFolder = importFolder
exports.migrateStore = migrateStore
