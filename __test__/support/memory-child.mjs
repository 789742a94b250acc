// Child process of memory.test.mjs (run with --expose-gc): after each call to
// saveImage/updateImage the caller does something to the buffer it passed —
// overwrites, detaches, transfers, shrinks or drops it — while other large
// saves are in flight. Prints one JSON line: for every scenario, whether the
// stored image is exactly the bytes the buffer held at call time.
import { MessageChannel } from 'node:worker_threads'
import * as backend from 'pixstore-native/backend'
import { makePng, sha256, openPayload, scriptArgs } from '../helpers.mjs'

const [storeDir, rounds] = scriptArgs('storeDir', 'rounds')
backend.initPixstoreBackend({
  imageRootDir: `${storeDir}/images`,
  databasePath: `${storeDir}/store.sqlite`,
  defaultEndpointEnabled: false,
  errorHandlingMode: 'throw',
  statelessKeyWindowLength: -1,
})

const MiB = 1024 * 1024
/** A valid PNG signature and header followed by `size` bytes of a seeded pattern. */
function bigPng(size, seed) {
  const head = makePng(1, 1, seed)
  const bytes = new Uint8Array(size)
  bytes.set(head.subarray(0, 33))
  for (let i = 33; i < size; i += 509) bytes[i] = (i * 31 + seed) & 0xff
  return bytes
}

const gcAndChurn = async () => {
  for (let i = 0; i < 3; i++) {
    globalThis.gc()
    await new Promise((resolve) => setImmediate(resolve))
  }
  // Fresh allocations that would reuse freed memory.
  for (let i = 0; i < 3; i++) new Uint8Array(40 * MiB).fill(0xee)
}

/** What the caller does right after the call returns, keyed by scenario name. */
const scenarios = {
  overwrite: { size: MiB, after: (u) => u.fill(0) },
  'overwrite small': { size: 600, after: (u) => u.fill(0) },
  'overwrite pooled Buffer': {
    size: 300,
    make: (u) => Buffer.from(u), // small Buffers live in Node's shared pool slab
    after: (u) => Buffer.from(u.buffer, 0, u.buffer.byteLength).fill(7),
  },
  'detach with structuredClone transfer, then GC': {
    size: 40 * MiB,
    after: async (u) => {
      structuredClone(u.buffer, { transfer: [u.buffer] })
      await gcAndChurn()
    },
  },
  'transfer through postMessage, then GC': {
    size: 8 * MiB,
    after: async (u) => {
      const { port1, port2 } = new MessageChannel()
      port1.postMessage(u.buffer, [u.buffer])
      port1.close()
      port2.close()
      await gcAndChurn()
    },
  },
  'shrink a resizable ArrayBuffer': {
    size: 4 * MiB,
    make: (u) => {
      const buffer = new ArrayBuffer(u.length, { maxByteLength: u.length })
      const view = new Uint8Array(buffer) // length-tracking view
      view.set(u)
      return view
    },
    after: async (u) => {
      u.buffer.resize(8)
      await gcAndChurn()
    },
  },
  'drop the only reference, then GC': { size: 16 * MiB, drop: true, after: gcAndChurn },
  'a view with an offset into a larger buffer': {
    size: 2 * MiB,
    make: (u) => {
      const backing = new Uint8Array(u.length + 4096)
      backing.set(u, 1000)
      return backing.subarray(1000, 1000 + u.length)
    },
    after: (u) => new Uint8Array(u.buffer).fill(1),
  },
}

const results = []
let seed = 1
for (let round = 0; round < Number(rounds); round++) {
  for (const [name, scenario] of Object.entries(scenarios)) {
    for (const call of ['saveImage', 'updateImage']) {
      const original = bigPng(scenario.size, seed++)
      const expected = sha256(original)
      // Another large save in flight, as in the failure report.
      const busy = backend.saveImage(bigPng(20 * MiB, seed++))
      let input = scenario.make ? scenario.make(original) : new Uint8Array(original)
      let pending
      if (call === 'saveImage') {
        pending = backend.saveImage(input)
      } else {
        const existing = await backend.saveImage(makePng(2, 2, seed++))
        pending = backend.updateImage(existing.id, input)
      }
      const after = scenario.after(input)
      if (scenario.drop) input = null
      await after
      let outcome
      try {
        const record = await pending
        const payload = await backend.customEndpointHelper(record.id, undefined, record.statelessProof)
        const { bytes } = await openPayload(payload, record)
        outcome = sha256(bytes) === expected ? 'stored as at call time' : 'stored other bytes'
      } catch (error) {
        outcome = `refused: ${error.message}`
      }
      await busy
      results.push({ scenario: name, call, outcome })
    }
  }
}
await backend.closePixstoreBackend()
process.stdout.write(JSON.stringify(results) + '\n')
