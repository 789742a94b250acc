// The same app as esm-consumer.mjs in TypeScript, compiled by the app's own
// tsc under module/moduleResolution nodenext against the installed typings.
// Usage: node ts-consumer.mjs <platform package> <data dir> <port> <image>
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { initPixstoreBackend, saveImage, getImageRecord, closePixstoreBackend } from 'pixstore-native/backend'
import { PixstoreError } from 'pixstore-native/shared'
import type { ImageRecord, PixstoreBackendConfig } from 'pixstore-native/types'

const [platformPackage, dataDir, port, imagePath] = process.argv.slice(2)
if (!platformPackage || !dataDir || !port || !imagePath) throw new Error('usage: ts-consumer.mjs <platform package> <data dir> <port> <image>')

const config: Partial<PixstoreBackendConfig> = {
  imageRootDir: `${dataDir}/images`,
  databasePath: `${dataDir}/store.sqlite`,
  defaultEndpointListenHost: '127.0.0.1',
  defaultEndpointListenPort: Number(port),
  errorHandlingMode: 'throw',
}
initPixstoreBackend(config)
const record: ImageRecord | null = await saveImage(readFileSync(imagePath), 'ts')
if (!record) throw new Error('saveImage gave null in throw mode')
const reread: ImageRecord | null = getImageRecord(record.id)
// @ts-expect-error the typings are real: getImageRecord is synchronous, not a Promise
void getImageRecord(record.id).then
const response = await fetch(`http://127.0.0.1:${port}/pixstore-image/${encodeURIComponent(record.id)}`, {
  headers: { 'x-pixstore-proof': record.statelessProof, 'x-pixstore-token': String(record.token) },
})
const payload = Buffer.from(await response.arrayBuffer())
const refused: unknown = await saveImage(Buffer.from('not an image')).catch((error: unknown) => error)
await closePixstoreBackend()

console.log(JSON.stringify({
  binding: createRequire(import.meta.url).resolve(platformPackage),
  record,
  reread,
  status: response.status,
  payload: payload.toString('base64'),
  refused: { isPixstoreError: refused instanceof PixstoreError, message: refused instanceof Error ? refused.message : String(refused) },
}))
