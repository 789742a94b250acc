// A consumer written against pixstore, with only the import names changed.
import {
  initPixstoreBackend,
  getImageRecord,
  saveImage,
  saveImageFromFile,
  updateImage,
  updateImageFromFile,
  deleteImage,
  imageExists,
  customEndpointHelper,
  closePixstoreBackend,
} from 'pixstore-native/backend'
import { setCustomErrorHandler, getLastPixstoreError, PixstoreError } from 'pixstore-native/shared'
import type {
  ImageRecord,
  PixstoreBackendConfig,
  ImageDecryptionMeta,
  ErrorHandlingMode,
  ImageFormat,
  WirePayloadState,
} from 'pixstore-native/types'

const mode: ErrorHandlingMode = 'hybrid'
const formats: ImageFormat[] = ['png', 'jpg']
const config: Partial<PixstoreBackendConfig> = {
  errorHandlingMode: mode,
  imageFormats: formats,
  durability: 'fsync',
  databasePath: ':memory:',
  proofKeys: (process.env.PIXSTORE_PROOF_KEYS ?? '').split(','),
  defaultEndpointReusePort: null,
}
initPixstoreBackend(config)

const record: ImageRecord | null = getImageRecord('id')
const meta: ImageDecryptionMeta | undefined = record?.meta
const saved: Promise<ImageRecord | null> = saveImage(Buffer.from([1]), 'dir')
const fromFile: Promise<ImageRecord | null> = saveImageFromFile('a.png')
const updated: Promise<ImageRecord | null> = updateImage('id', new Uint8Array(1))
const updatedFromFile: Promise<ImageRecord | null> = updateImageFromFile('id', 'a.png')
const deleted: Promise<boolean | null> = deleteImage('id')
const exists: Promise<boolean | null> = imageExists('id')
const payload: Promise<Uint8Array | null> = customEndpointHelper('id', undefined, 'proof')
const closed: Promise<void> = closePixstoreBackend()
setCustomErrorHandler((err: unknown) => console.log(err))
setCustomErrorHandler(undefined)
const last: PixstoreError | null = getLastPixstoreError()
const state: WirePayloadState | undefined = undefined
if (last instanceof PixstoreError) console.log(last.name, meta, state)
void [saved, fromFile, updated, updatedFromFile, deleted, exists, payload, closed]

// @ts-expect-error getImageRecord is synchronous
getImageRecord('id').then

// Stats, metrics and the request log (pixstore-native only).
import {
  getPixstoreStats,
  getPixstoreMetrics,
  setPixstoreRequestLogger,
  PIXSTORE_METRICS_CONTENT_TYPE,
  type PixstoreStats,
  type PixstoreRequestLog,
  type PixstoreHistogram,
} from 'pixstore-native/backend'

initPixstoreBackend({ defaultEndpointHealthRoute: '/healthz', defaultEndpointMetricsRoute: null })
const numbers: PixstoreStats = getPixstoreStats()
const saveTimes: PixstoreHistogram = numbers.writeDuration.save
const sum: number =
  numbers.saves + numbers.writeFailures.update + numbers.served.MissingID + numbers.endpoint.responses['404'] + saveTimes.buckets[0].le
const exposition: string = getPixstoreMetrics()
const contentType: 'text/plain; version=0.0.4; charset=utf-8' = PIXSTORE_METRICS_CONTENT_TYPE
setPixstoreRequestLogger((entry: PixstoreRequestLog) => {
  if (entry.state === 'Success' && entry.source === 'endpoint') console.log(entry.imageId, entry.durationMs, entry.status)
})
setPixstoreRequestLogger(async (entry) => void entry.route)
setPixstoreRequestLogger(undefined)
void [sum, exposition, contentType]
// @ts-expect-error served is keyed by wire state names
void numbers.served.Missing
// @ts-expect-error the logger receives one entry
setPixstoreRequestLogger((entry: PixstoreRequestLog, extra: string) => void [entry, extra])
