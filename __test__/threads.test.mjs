// worker_threads (SPEC "Input memory and threads"): each JS environment has
// its own backend, as pixstore's module state is per environment. Init and
// close in one never touch another; an environment that ends — with its
// endpoint running, writes in flight, or both — is closed cleanly and every
// other one keeps working; two environments may open the same store.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { Worker } from 'node:worker_threads'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import * as backend from 'pixstore-native/backend'
import { tempDir, freePort, makePng, openPayload, fetchPayload } from './helpers.mjs'

const workerUrl = new URL('./support/thread-worker.mjs', import.meta.url)
const dir = tempDir()
const store = (name, extra = {}) => ({
  imageRootDir: join(dir.path, name, 'images'),
  databasePath: join(dir.path, name, 'store.sqlite'),
  defaultEndpointEnabled: false,
  errorHandlingMode: 'throw',
  statelessKeyWindowLength: -1,
  ...extra,
})

/** A worker thread running backend calls (see support/thread-worker.mjs). */
class Thread {
  constructor() {
    this.worker = new Worker(workerUrl)
    this.seq = 0
    this.pending = new Map()
    this.exited = new Promise((resolve) => this.worker.once('exit', resolve))
    this.ready = new Promise((resolve, reject) => {
      this.worker.once('error', reject)
      this.worker.on('message', (message) => {
        if (message.ready) return resolve()
        const { resolve: settle, reject: fail } = this.pending.get(message.seq)
        this.pending.delete(message.seq)
        if (message.error) fail(Object.assign(new Error(message.error.message), { name: message.error.name }))
        else settle(message.value)
      })
    })
  }

  async call(call, ...args) {
    await this.ready
    const seq = this.seq++
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject })
      this.worker.postMessage({ seq, call, args })
    })
  }
}

const tempFiles = (name) => readdirSync(join(dir.path, name, 'images', '.pixstore-tmp'))

after(async () => {
  await backend.closePixstoreBackend()
  dir.remove()
})

test('each thread has its own backend: init, writes and close in one never reach another', async () => {
  backend.initPixstoreBackend(store('main'))
  const a = new Thread()
  const b = new Thread()
  try {
    await a.call('initPixstoreBackend', store('a'))
    // B has not called init: it is not initialized, whatever the others did
    // (the default 'hybrid' mode answers null and remembers the error).
    assert.equal(await b.call('saveTestImage', 1), null)
    assert.match((await b.call('getLastPixstoreError'))?.message ?? '', /call initPixstoreBackend\(\) first/)
    await b.call('initPixstoreBackend', store('b'))

    const inA = await a.call('saveTestImage', 2)
    const inB = await b.call('saveTestImage', 3)
    const inMain = await backend.saveImage(makePng(4, 4, 4))
    assert.equal(await b.call('getImageRecord', inA.id), null, "A's image is not in B's store")
    assert.equal(backend.getImageRecord(inA.id), null, "nor in the main thread's")
    assert.equal(await a.call('getImageRecord', inB.id), null)
    assert.equal(await a.call('getImageRecord', inMain.id), null)
    assert.equal((await b.call('getImageRecord', inB.id)).token, inB.token)

    await a.call('closePixstoreBackend')
    await assert.rejects(a.call('getImageRecord', inA.id), /call initPixstoreBackend\(\) first/)
    assert.ok(await b.call('saveTestImage', 5), "B still works after A's close")
    assert.ok(await backend.saveImage(makePng(4, 4, 6)), 'so does the main thread')
    // Re-init in B with another error mode does not change A's or the main thread's mode.
    await b.call('initPixstoreBackend', { errorHandlingMode: 'silent' })
    assert.equal(await b.call('updateImage', 'missingid', Array.from(makePng())), null)
    await assert.rejects(backend.updateImage('missingid', makePng()), /Image not found/)
  } finally {
    await Promise.all([a.worker.terminate(), b.worker.terminate()])
  }
})

test('two threads may open the same store, as two processes may', async () => {
  backend.initPixstoreBackend(store('shared'))
  const worker = new Thread()
  try {
    await worker.call('initPixstoreBackend', store('shared'))
    const saved = await worker.call('saveTestImage', 10, 'shared')
    assert.equal(backend.getImageRecord(saved.id).token, saved.token)
    const updated = await backend.updateImage(saved.id, makePng(5, 5, 11))
    const seen = await worker.call('getImageRecord', saved.id)
    assert.equal(seen.token, updated.token)
    const payload = Uint8Array.from(await worker.call('customEndpointHelper', saved.id, undefined, seen.statelessProof))
    assert.deepEqual((await openPayload(payload, seen)).bytes, makePng(5, 5, 11))
    await worker.call('closePixstoreBackend')
    assert.ok(await backend.saveImage(makePng(4, 4, 12)), 'closing the other instance of the store changes nothing here')
  } finally {
    await worker.worker.terminate()
  }
})

for (const ending of ['process.exit() in the worker', 'worker.terminate()']) {
  test(`a thread that ends by ${ending} with its endpoint running and writes in flight is closed cleanly`, async () => {
    backend.initPixstoreBackend(store('main'))
    const port = await freePort()
    const config = store(`ending-${ending.length}`, { defaultEndpointEnabled: true, defaultEndpointListenHost: '127.0.0.1', defaultEndpointListenPort: port })
    const first = new Thread()
    await first.call('initPixstoreBackend', config)
    const acknowledged = []
    for (let n = 0; n < 5; n++) acknowledged.push(await first.call('saveTestImage', 100 + n))
    if (ending === 'worker.terminate()') {
      for (let n = 0; n < 30; n++) first.call('saveTestImage', 200 + n).catch(() => {})
      await first.worker.terminate()
    } else {
      first.call('exitWithWritesInFlight', 30).catch(() => {})
    }
    await first.exited
    // Its writer finished, its lock and temporary files are gone.
    assert.deepEqual(tempFiles(`ending-${ending.length}`), [])
    // The main thread never noticed.
    assert.ok(await backend.saveImage(makePng(4, 4, 300)))

    // A new thread takes the same config and port: the port was released.
    const second = new Thread()
    try {
      await second.call('initPixstoreBackend', config)
      for (const record of acknowledged) {
        const current = await second.call('getImageRecord', record.id)
        assert.equal(current.token, record.token, 'every acknowledged write is there')
        const { response, payload } = await fetchPayload(`http://127.0.0.1:${port}/pixstore-image`, current, { token: null })
        assert.equal(response.status, 200)
        await openPayload(payload, current)
      }
    } finally {
      await second.call('closePixstoreBackend')
      await second.worker.terminate()
    }
  })
}
