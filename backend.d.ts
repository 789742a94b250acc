import type { ImageRecord, PixstoreBackendConfig, PixstoreStats, PixstoreRequestLogger } from './types.js'

export type {
  ImageRecord,
  PixstoreBackendConfig,
  ImageDecryptionMeta,
  ErrorHandlingMode,
  ImageFormat,
  PixstoreStats,
  PixstoreHistogram,
  PixstoreWriteCounts,
  PixstoreRequestLog,
  PixstoreRequestLogger,
} from './types.js'

/**
 * Validates the configuration and applies it over the current one: opens the
 * store (SQLite + image folder) and starts, stops or moves the default
 * endpoint. Throws a plain Error on invalid values, and then changes nothing.
 */
export declare function initPixstoreBackend(config?: Partial<PixstoreBackendConfig>): void

/** Stops the default endpoint (open requests finish) and closes the store. */
export declare function closePixstoreBackend(): Promise<void>

/**
 * The image record with a fresh stateless proof, or null (also for an id that could
 * not have been generated). Synchronous.
 */
export declare function getImageRecord(id: string): ImageRecord | null

/**
 * The image record as the database has it now (with `databaseUrl`, asked of PostgreSQL
 * rather than the in-process replica), or null. Off the JS thread.
 */
export declare function getImageRecordAsync(id: string): Promise<ImageRecord | null>

/**
 * Encrypts and stores a new image; `dir` prefixes its id (`dir:key`). The bytes are
 * copied before this returns: the buffer may be reused, changed or freed at once.
 */
export declare function saveImage(buffer: Buffer | Uint8Array | ArrayBuffer, dir?: string): Promise<ImageRecord | null>

/** Reads an image file, encrypts and stores it as a new image. */
export declare function saveImageFromFile(filePath: string | Buffer | URL, dir?: string): Promise<ImageRecord | null>

/**
 * Replaces the image of an existing id (PixstoreError `Image not found: <id>` if none,
 * also for an id that could not have been generated). The bytes are copied before this returns.
 */
export declare function updateImage(id: string, buffer: Buffer | Uint8Array | ArrayBuffer): Promise<ImageRecord | null>

/** Replaces the image of an existing id with a file's content. */
export declare function updateImageFromFile(id: string, filePath: string | Buffer | URL): Promise<ImageRecord | null>

/** Deletes an image; true if its file or its record was deleted. */
export declare function deleteImage(id: string): Promise<boolean | null>

/** Whether the image's file or record exists. */
export declare function imageExists(id: string): Promise<boolean | null>

/**
 * The encoded wire payload for a custom endpoint (state byte first). Refused
 * with a PixstoreError while the default endpoint runs.
 */
export declare function customEndpointHelper(
  imageId: string,
  clientToken: number | undefined,
  statelessProof: string,
): Promise<Uint8Array | null>

/**
 * The numbers of this environment's backend: writes, payloads served by wire state,
 * bytes, duration histograms (seconds), the default endpoint's connections and
 * responses. Synchronous, cheap, never fails (zeros before the first init); counters
 * only grow, across re-inits and closes.
 */
export declare function getPixstoreStats(): PixstoreStats

/** `getPixstoreStats()` in Prometheus' text exposition format 0.0.4, for a metrics route of your own. */
export declare function getPixstoreMetrics(): string

/** The `Content-Type` to serve `getPixstoreMetrics()` with (as prom-client's `register.contentType`). */
export declare const PIXSTORE_METRICS_CONTENT_TYPE: 'text/plain; version=0.0.4; charset=utf-8'

/**
 * Sets the function called once per request answered by the default endpoint or the
 * framework glue (`undefined` or `null` removes it). It runs on the JS thread after the
 * response is ready and never delays one; what it throws or rejects with is printed
 * with `console.error`. Without a logger nothing is recorded.
 */
export declare function setPixstoreRequestLogger(logger: PixstoreRequestLogger | undefined | null): void
