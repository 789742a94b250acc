// One benchmark measurement of one library, in a process of its own:
// `node worker.mjs <library> <measure> <dir> <fixturesDir> <scale>`; prints a JSON result.
import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createDecipheriv } from 'node:crypto'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { openLibrary } from './libraries.mjs'

const [library, measure, dir, fixturesDir, scaleText] = process.argv.slice(2)
if (!library || !measure || !dir || !fixturesDir || !scaleText) throw new Error('usage: worker.mjs <library> <measure> <dir> <fixturesDir> <scale>')
const scale = Number(scaleText)
const fixture = (name) => readFileSync(join(fixturesDir, name))
const images = { tiny: fixture('tiny.png'), '200k': fixture('200k.jpg'), '5m': fixture('5m.jpg') }
const durability = measure.endsWith('-fsync') ? 'fsync' : 'process'
const lib = await openLibrary(library, dir, { durability })

/** Runs `count` calls of `op`, `inFlight` at a time; returns operations per second. */
async function throughput(count, inFlight, op) {
  let next = 0
  const started = performance.now()
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (next < count) await op(next++)
  }))
  return count / ((performance.now() - started) / 1000)
}

async function savedIds(count, image) {
  const ids = []
  for (let i = 0; i < count; i++) ids.push((await lib.saveImage(image)).id)
  return ids
}

const measures = {
  'save-tiny-seq': () => throughput(300 * scale, 1, () => lib.saveImage(images.tiny)),
  'save-tiny-32': () => throughput(2000 * scale, 32, () => lib.saveImage(images.tiny)),
  'save-tiny-32-fsync': () => throughput(2000 * scale, 32, () => lib.saveImage(images.tiny)),
  'save-200k-seq': () => throughput(100 * scale, 1, () => lib.saveImage(images['200k'])),
  'save-200k-32': () => throughput(400 * scale, 32, () => lib.saveImage(images['200k'])),
  'save-5m-seq': () => throughput(10 * scale, 1, () => lib.saveImage(images['5m'])),
  'save-5m-20': () => throughput(64 * scale, 20, () => lib.saveImage(images['5m'])),
  'save-5m-32': () => throughput(64 * scale, 32, () => lib.saveImage(images['5m'])),
  'update-tiny-seq': async () => {
    const [id] = await savedIds(1, images.tiny)
    return throughput(300 * scale, 1, () => lib.updateImage(id, images.tiny))
  },
  'update-tiny-32': async () => {
    // 32 ids, each updated by one caller at a time (concurrent updates of one
    // id can tear an image in pixstore).
    const ids = await savedIds(32, images.tiny)
    let round = 0
    return throughput(2000 * scale, 32, () => lib.updateImage(ids[round++ % 32], images.tiny))
  },
  'get-record-hit': async () => {
    const ids = await savedIds(100, images.tiny)
    return throughput(200_000 * scale, 1, (i) => lib.getImageRecord(ids[i % 100]))
  },
  'get-record-miss': () => throughput(200_000 * scale, 1, (i) => lib.getImageRecord(`missing${i % 100}`)),
  'image-exists': async () => {
    const ids = await savedIds(100, images.tiny)
    return throughput(20_000 * scale, 1, (i) => lib.imageExists(ids[i % 100]))
  },
  'image-exists-32': async () => {
    const ids = await savedIds(100, images.tiny)
    return throughput(40_000 * scale, 32, (i) => lib.imageExists(ids[i % 100]))
  },
  'delete': async () => {
    const ids = await savedIds(300 * scale, images.tiny)
    return throughput(ids.length, 1, (i) => lib.deleteImage(ids[i]))
  },
  'event-loop-5m-20': async () => {
    const histogram = monitorEventLoopDelay({ resolution: 1 })
    histogram.enable()
    // Saves for a fixed time (so the first burst of 20 copies, at most a few
    // samples, does not decide the p99), 20 in flight, each call copying its 5 MB on this thread.
    const until = performance.now() + Math.max(1000, 3000 * scale)
    await Promise.all(Array.from({ length: 20 }, async () => {
      while (performance.now() < until) await lib.saveImage(images['5m'])
    }))
    histogram.disable()
    const ms = (ns) => ns / 1e6
    return { p50: ms(histogram.percentile(50)), p99: ms(histogram.percentile(99)), max: ms(histogram.max) }
  },
  'rss-100x5m-32': async () => {
    await throughput(100, 32, () => lib.saveImage(images['5m']))
    return process.memoryUsage().rss / 2 ** 20
  },
  // How long until another process's replica (a second JS environment, with
  // its own backend and LISTEN connection) sees a write: milliseconds, p50/p99/max.
  'replica-lag': async () => {
    const { Worker } = await import('node:worker_threads')
    const watcher = new Worker(new URL('./replica-watcher.mjs', import.meta.url), { workerData: { dir } })
    await new Promise((resolve) => watcher.once('message', resolve))
    const [id] = await savedIds(1, images.tiny)
    const lags = []
    for (let n = 0; n < 100; n++) {
      const record = await lib.updateImage(id, images.tiny)
      const started = performance.now()
      watcher.postMessage({ id, token: record.token })
      await new Promise((resolve) => watcher.once('message', resolve))
      lags.push(performance.now() - started)
    }
    await watcher.terminate()
    lags.sort((a, b) => a - b)
    return { p50: lags[50], p99: lags[98], max: lags[99] }
  },
  // Images verified per second (each read and authenticated under its key).
  // The limit reads the same files and decrypts them with Node's AES-GCM.
  'verify-200k': async () => {
    const ids = await savedIds(400 * scale, images['200k'])
    if (library === 'limit') {
      // The limit's own files are plain: read them and decrypt a same-sized
      // ciphertext with a fixed key each time (the work verify does).
      const key = Buffer.alloc(32, 1)
      const iv = Buffer.alloc(12, 2)
      return throughput(ids.length, 16, async (i) => {
        const bytes = await readFile(join(dir, 'files', `${ids[i]}.img`))
        const decipher = createDecipheriv('aes-256-gcm', key, iv)
        decipher.update(bytes)
        return bytes.length
      })
    }
    const { verifyStore } = await import('pixstore-native/admin')
    await lib.closePixstoreBackend()
    const started = performance.now()
    const report = await verifyStore({ imageRootDir: join(dir, 'images'), databasePath: join(dir, 'store.sqlite') })
    if (report.problems.length || report.records !== ids.length) throw new Error(`verify found ${JSON.stringify(report)}`)
    return report.records / ((performance.now() - started) / 1000)
  },
}

const value = await measures[measure]()
if (lib.closePixstoreBackend) await lib.closePixstoreBackend()
process.stdout.write(JSON.stringify({ value }) + '\n')
process.exit(0)
