// A node:cluster worker of processes.test.mjs, or a forked instance of
// remote.test.mjs: the backend, driven by its parent over IPC. Messages
// `{ seq, call, args }` are answered `{ seq, value }` or `{ seq, error }`;
// `writeForever` runs updates and saves until the process is killed,
// reporting `{ ack }` after each write resolved.
import * as backend from 'pixstore-native/backend'
import { makePng } from '../helpers.mjs'

const calls = {
  init: (config) => backend.initPixstoreBackend(config),
  save: (seed) => backend.saveImage(makePng(3, 3, seed), 'cluster'),
  update: (id, seed) => backend.updateImage(id, makePng(3, 3, seed)),
  record: (id) => backend.getImageRecord(id),
  recordAsync: (id) => backend.getImageRecordAsync(id),
  remove: (id) => backend.deleteImage(id),
  exists: (id) => backend.imageExists(id),
  payload: async (id, token, proof) => Array.from(await backend.customEndpointHelper(id, token, proof)),
  close: () => backend.closePixstoreBackend(),
  writeForever: async (ids, seedBase) => {
    for (let n = 0; ; n++) {
      const id = ids[n % ids.length]
      const seed = seedBase + n
      const record = n % 5 === 4 ? await backend.saveImage(makePng(3, 3, seed), 'cluster') : await backend.updateImage(id, makePng(3, 3, seed))
      process.send({ ack: { id: record.id, token: record.token, seed } })
    }
  },
}

process.on('message', async ({ seq, call, args }) => {
  try {
    process.send({ seq, value: (await calls[call](...args)) ?? null })
  } catch (error) {
    process.send({ seq, error: error.message })
  }
})
process.send({ ready: true })
