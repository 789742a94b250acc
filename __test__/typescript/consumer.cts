// The CommonJS side: the same package names resolve through the `require`
// conditions to the CJS typings (the full API is exercised in consumer.mts).
import { initPixstoreBackend, getImageRecord, saveImage, closePixstoreBackend } from 'pixstore-native/backend'
import { PixstoreError, getLastPixstoreError } from 'pixstore-native/shared'
import type { ImageRecord, PixstoreBackendConfig } from 'pixstore-native/types'

const config: Partial<PixstoreBackendConfig> = { errorHandlingMode: 'throw' }
initPixstoreBackend(config)
const record: ImageRecord | null = getImageRecord('id')
const saved: Promise<ImageRecord | null> = saveImage(Buffer.from([1]))
const last: PixstoreError | null = getLastPixstoreError()
void [record, saved, last, closePixstoreBackend()]

// @ts-expect-error getImageRecord is synchronous
getImageRecord('id').then

import { getPixstoreStats, getPixstoreMetrics, setPixstoreRequestLogger } from 'pixstore-native/backend'
import type { PixstoreStats } from 'pixstore-native/types'
const stats: PixstoreStats = getPixstoreStats()
void [stats.writerQueueDepth, getPixstoreMetrics().length]
setPixstoreRequestLogger((entry) => console.log(entry.method, entry.status))
