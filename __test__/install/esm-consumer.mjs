// An ESM app using the installed pixstore-native: save, read and serve one
// image through the default endpoint, then print what it got as one JSON line
// for the test to check (the test decrypts the payload like pixstore/frontend).
// Usage: node esm-consumer.mjs <platform package> <data dir> <port> <image>
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { initPixstoreBackend, saveImage, getImageRecord, closePixstoreBackend } from 'pixstore-native/backend'
import { PixstoreError } from 'pixstore-native/shared'

const [platformPackage, dataDir, port, imagePath] = process.argv.slice(2)
if (!imagePath) throw new Error('usage: esm-consumer.mjs <platform package> <data dir> <port> <image>')

initPixstoreBackend({
  imageRootDir: `${dataDir}/images`,
  databasePath: `${dataDir}/store.sqlite`,
  defaultEndpointListenHost: '127.0.0.1',
  defaultEndpointListenPort: Number(port),
  errorHandlingMode: 'throw',
})
const record = await saveImage(readFileSync(imagePath), 'esm')
const reread = getImageRecord(record.id)
const response = await fetch(`http://127.0.0.1:${port}/pixstore-image/${encodeURIComponent(record.id)}`, {
  headers: { 'x-pixstore-proof': record.statelessProof, 'x-pixstore-token': String(record.token) },
})
const payload = Buffer.from(await response.arrayBuffer())
const refused = await saveImage(Buffer.from('not an image')).catch((error) => error)
await closePixstoreBackend()

console.log(JSON.stringify({
  binding: createRequire(import.meta.url).resolve(platformPackage),
  record,
  reread,
  status: response.status,
  payload: payload.toString('base64'),
  refused: { isPixstoreError: refused instanceof PixstoreError, message: refused.message },
}))
