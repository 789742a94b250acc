// A worker thread of threads.test.mjs: runs backend calls it receives as
// messages `{ seq, call, args }` and answers `{ seq, value }` or `{ seq, error }`.
// `call: 'exitWithWritesInFlight'` starts `args[0]` saves and ends the thread
// with process.exit() before they settle.
import { parentPort } from 'node:worker_threads'
import * as backend from 'pixstore-native/backend'
import { getLastPixstoreError } from 'pixstore-native/shared'
import { makePng } from '../helpers.mjs'

const calls = {
  ...backend,
  getLastPixstoreError: () => {
    const error = getLastPixstoreError()
    return error && { name: error.name, message: error.message }
  },
  saveTestImage: (seed, dir) => backend.saveImage(makePng(4, 4, seed), dir),
  updateImage: (id, bytes) => backend.updateImage(id, Uint8Array.from(bytes)),
  exitWithWritesInFlight: (count) => {
    for (let n = 0; n < count; n++) backend.saveImage(makePng(64, 64, n)).catch(() => {})
    process.exit(0)
  },
}

parentPort.on('message', async ({ seq, call, args }) => {
  try {
    const value = await calls[call](...args)
    parentPort.postMessage({ seq, value: value instanceof Uint8Array ? Array.from(value) : value })
  } catch (error) {
    parentPort.postMessage({ seq, error: { name: error.name, message: error.message } })
  }
})
parentPort.postMessage({ ready: true })
