import type { PixstoreBackendConfig } from './types.js'

/** How far an operation is; passed to `onProgress` at most every 100 ms. */
export interface AdminProgress {
  /** What it is doing: `'records'`, `'files'` or `'audit'`. */
  phase: string
  /** Items done. */
  done: number
  /** Items in all, when known. */
  total?: number | null
}

/** Options every operation takes. */
export interface AdminOptions {
  /** Called with the progress (errors it throws are ignored). */
  onProgress?: (progress: AdminProgress) => void
  /**
   * Stops the operation after the items in progress; it then resolves with `interrupted: true`.
   * A signal already aborted when the call is made rejects it with the signal's reason (as
   * `fetch` does), before any store is opened.
   */
  signal?: AbortSignal
}

/** What verify found wrong. */
export interface StoreProblem {
  /**
   * SPEC's five kinds, and `unreadable-record`: a record whose meta cannot be read (not JSON,
   * or its key wrapped under a master key not in `masterKeys`), so its image cannot be checked.
   */
  kind: 'missing-file' | 'corrupt-file' | 'orphan-file' | 'temp-file' | 'unfinished-write' | 'unreadable-record'
  /** The image id, when there is one. */
  id?: string
  /** The file path or object key, when there is one. */
  path?: string
  /** Why the record, or its image file (`corrupt-file`), cannot be read at all. */
  reason?: string
  /** Whether `repair` fixed it. */
  repaired: boolean
}

export interface VerifyReport {
  /** Records checked. */
  records: number
  /** Image files (or objects) found for them. */
  files: number
  problems: StoreProblem[]
  interrupted: boolean
}

export interface StatsReport {
  images: number
  /** Bytes of the original images. */
  bytes: number
  /** Images per format (`'missing'` for records without an image, `'unreadable'` for records whose meta or image file cannot be read). */
  formats: Record<string, number>
  /** Images per id prefix (`''` for ids without one). */
  prefixes: Record<string, number>
  interrupted: boolean
}

export interface ExportReport {
  exported: { id: string; path: string }[]
  failed: { id: string; reason: string }[]
  interrupted: boolean
}

export interface ImportReport {
  imported: { path: string; id: string }[]
  skipped: { path: string; reason: string }[]
  interrupted: boolean
}

export interface MigrateReport {
  /** Records copied with their image. */
  migrated: number
  /** Records the destination already had (a resumed run). */
  skipped: number
  failed: { id: string; reason: string }[]
  interrupted: boolean
}

export interface RekeyReport {
  /** Records whose stored key was rewrapped (or unwrapped). */
  rekeyed: number
  /** Records already as asked. */
  skipped: number
  failed: { id: string; reason: string }[]
  interrupted: boolean
}

type StoreConfig = Partial<PixstoreBackendConfig>

/**
 * Checks every record's image (present, authentic under its key), then orphan files,
 * temporary files and unfinished writes; `repair` removes orphans and temporary files
 * and settles unfinished writes, never a record or the only copy of an image.
 */
export declare function verifyStore(config: StoreConfig, options?: AdminOptions & { repair?: boolean }): Promise<VerifyReport>
/** Counts images, their bytes, formats and id prefixes. */
export declare function storeStats(config: StoreConfig, options?: AdminOptions): Promise<StatsReport>
/**
 * Decrypts every image into `folder`, named after its id with its format's extension. Rejects
 * with an Error naming the path, before any store is opened, when `folder` exists and is not a
 * folder (a missing one is created).
 */
export declare function exportStore(config: StoreConfig, folder: string, options?: AdminOptions): Promise<ExportReport>
/**
 * Stores every image under `folder`, recursively; re-running does not import twice. Rejects
 * with an Error naming the path, before any store is opened, when `folder` does not exist or is
 * not a folder.
 */
export declare function importFolder(
  config: StoreConfig,
  folder: string,
  options?: AdminOptions & { dir?: string; concurrency?: number },
): Promise<ImportReport>
/**
 * Copies every record and image from `from` to `to` as they are; resumable; the source is only
 * read. Rejects, before opening either, when `to` keeps its images where `from` does (the same
 * folder or bucket prefix, or one inside the other) or its records in the same database.
 */
export declare function migrateStore(from: StoreConfig, to: StoreConfig, options?: AdminOptions): Promise<MigrateReport>
/**
 * Rewraps every record's stored key under `config.masterKeys[0]` (a plain store is wrapped
 * too), or with `unwrap` stores them all plain again; no image is rewritten; resumable.
 */
export declare function rekeyStore(config: StoreConfig, options?: AdminOptions & { unwrap?: boolean }): Promise<RekeyReport>
