// Child process of processes.test.mjs: waits until the given instant, then
// opens the store (fresh or not) and saves one image; prints the id, or the
// error that the open or the save gave.
import * as backend from 'pixstore-native/backend'
import { makePng, scriptArgs } from '../helpers.mjs'

const [storeDir, startAt] = scriptArgs('storeDir', 'startAt')
while (Date.now() < Number(startAt)) {
  // All children start at the same instant: spin rather than sleep.
}
try {
  backend.initPixstoreBackend({
    imageRootDir: `${storeDir}/images`,
    databasePath: `${storeDir}/store.sqlite`,
    defaultEndpointEnabled: false,
    errorHandlingMode: 'throw',
  })
  const record = await backend.saveImage(makePng(2, 2, process.pid))
  process.stdout.write(JSON.stringify({ id: record.id }))
} catch (error) {
  process.stdout.write(JSON.stringify({ error: error.message }))
}
await backend.closePixstoreBackend()
