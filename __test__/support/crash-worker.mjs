// Child process of crash.test.mjs: runs a seeded random mix of saves, updates
// and deletes on a few slots (each slot's operations in sequence, the slots in
// parallel) until it is killed. It appends to a log with synchronous writes:
// a `begin` line before each call and an acknowledgement after it resolved.
import { openSync, writeSync } from 'node:fs'
import * as backend from 'pixstore-native/backend'
import { makePng, sha256, scriptArgs } from '../helpers.mjs'

const [storeDir, ackPath, seedText, durability] = scriptArgs('storeDir', 'ackPath', 'seed', 'durability')
let seed = Number(seedText) >>> 0 || 1
const random = () => {
  seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5; seed >>>= 0
  return seed / 2 ** 32
}

backend.initPixstoreBackend({
  imageRootDir: `${storeDir}/images`,
  databasePath: `${storeDir}/store.sqlite`,
  defaultEndpointEnabled: false,
  errorHandlingMode: 'throw',
  durability,
})
const ackLog = openSync(ackPath, 'a')
const ack = (entry) => writeSync(ackLog, JSON.stringify(entry) + '\n')
const slotIds = JSON.parse(process.env.PIXSTORE_SLOT_IDS || '[]')

async function runSlot(slot) {
  let id = slotIds[slot] ?? null
  for (;;) {
    const image = makePng(1 + Math.floor(random() * 40), 1 + Math.floor(random() * 40), Math.floor(random() * 2 ** 31))
    const roll = random()
    if (id === null) {
      const record = await backend.saveImage(image, random() < 0.5 ? 'crash' : undefined)
      id = record.id
      ack({ slot, op: 'save', id, token: record.token, hash: sha256(image) })
    } else if (roll < 0.75) {
      ack({ slot, op: 'update', id, begin: true })
      const record = await backend.updateImage(id, image)
      ack({ slot, op: 'update', id, token: record.token, hash: sha256(image) })
    } else {
      ack({ slot, op: 'delete', id, begin: true })
      await backend.deleteImage(id)
      ack({ slot, op: 'delete', id })
      id = null
    }
  }
}

process.stdout.write('ready\n')
await Promise.all(Array.from({ length: 6 }, (_, slot) => runSlot(slot)))
