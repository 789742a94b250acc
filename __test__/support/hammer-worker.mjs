// Rounds of 32 concurrent updates of one id with concurrent reads, throwing if
// a read does not decrypt; used by concurrency.test.mjs in its own process and
// as a child process on the same store.
import * as backend from 'pixstore-native/backend'
import { makePng, openPayload, scriptArgs } from '../helpers.mjs'

export async function hammer(id, rounds, seedBase) {
  let reads = 0
  for (let round = 0; round < rounds; round++) {
    const record = backend.getImageRecord(id)
    const writes = Array.from({ length: 32 }, (_, n) => backend.updateImage(id, makePng(3, 3, seedBase + round * 64 + n)))
    const readers = Array.from({ length: 32 }, async () => {
      const payload = await backend.customEndpointHelper(id, undefined, record.statelessProof)
      await openPayload(payload, record) // throws if the file and key do not belong together
      reads++
    })
    await Promise.all([...writes, ...readers])
  }
  return reads
}

/** Run as a child process: `hammer-worker.mjs <config JSON> <id> <rounds>`. */
if (process.argv[1] === new URL(import.meta.url).pathname) {
  const [configJson, id, roundsText] = scriptArgs('configJson', 'id', 'rounds')
  backend.initPixstoreBackend(JSON.parse(configJson))
  const reads = await hammer(id, Number(roundsText), 1_000_000)
  process.stdout.write(`${reads}\n`)
  await backend.closePixstoreBackend()
}
