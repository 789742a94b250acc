/** Image formats pixstore knows; detection reports JPEG as `'jpg'`. */
export type ImageFormat =
  | 'jpeg' | 'jpg' | 'png' | 'webp' | 'gif' | 'bmp' | 'tiff' | 'tif' | 'ico' | 'svg' | 'avif'
  | 'heif' | 'heic' | 'jfif' | 'pjpeg' | 'pjp' | 'apng' | 'raw' | 'emf' | 'wmf' | 'cur' | 'dds'
  | 'icns' | 'ras' | 'sgi' | 'tga' | 'xbm' | 'xpm'

/** How API calls report errors. */
export type ErrorHandlingMode = 'hybrid' | 'throw' | 'warn' | 'silent' | 'custom'

/** What the frontend needs to decrypt an image (standard base64 with padding). */
export interface ImageDecryptionMeta {
  /** AES-256 key. */
  key: string
  /** AES-GCM IV (12 bytes). */
  iv: string
  /** AES-GCM tag (16 bytes). */
  tag: string
}

/** A stored image as the backend hands it to the frontend. */
export interface ImageRecord {
  /** Unique id, `<dir>:<key>` or `<key>`. */
  id: string
  /** Version token: `Date.now()` of the last write, strictly increasing per id. */
  token: number
  /** Decryption meta. */
  meta: ImageDecryptionMeta
  /** Time-limited proof of access for the endpoint. */
  statelessProof: string
}

/** Backend configuration; every key is optional in `initPixstoreBackend`. */
export interface PixstoreBackendConfig {
  /** Allowed formats (format byte = 1-based index). Default `['png','webp','jpg','jpeg']`. */
  imageFormats: readonly ImageFormat[]
  /** Folder of the encrypted files, relative to `process.cwd()`. Default `'pixstore-images'`. */
  imageRootDir: string
  /**
   * SQLite database path. Default `'./.pixstore.sqlite'`. `':memory:'` is an in-memory
   * database, as in pixstore: no file is written and every init starts empty.
   */
  databasePath: string
  /** Proof window in ms, or -1 for proofs that never expire. Default `20000`. */
  statelessKeyWindowLength: number
  /** Start the built-in HTTP endpoint. Default `true`. */
  defaultEndpointEnabled: boolean
  /** Endpoint listen address. Default `'0.0.0.0'`. */
  defaultEndpointListenHost: string
  /** Endpoint port, 1..65535. Default `3001`. */
  defaultEndpointListenPort: number
  /** Endpoint route. Default `'/pixstore-image'`. */
  defaultEndpointRoute: string
  /** `Access-Control-Allow-Origin` of endpoint responses. Default `'*'`. */
  accessControlAllowOrigin: string
  /** Error handling mode. Default `'hybrid'`. */
  errorHandlingMode: ErrorHandlingMode
  /** pixstore-native only: largest accepted image in bytes. Default 52428800 (50 MiB). */
  maxImageBytes: number
  /**
   * pixstore-native only: `'process'` (default) survives a crash of the process;
   * `'fsync'` also survives power loss (fsync of files and folders, SQLite synchronous=FULL).
   */
  durability: 'process' | 'fsync'
  /**
   * pixstore-native only: secrets shared by every process and host (each at least 32
   * characters). Proofs become HMAC-SHA256 of the id and window, made with the first key
   * and accepted under any listed key; rotate with `[new, old]`, then `[new]`. `null`
   * (the default) keeps pixstore's per-process proofs.
   */
  proofKeys: readonly string[] | null
  /**
   * pixstore-native only: bind the default endpoint with `SO_REUSEPORT`, so several
   * processes listen on one port. Default (`null`): on in node:cluster workers and PM2
   * instances, off otherwise.
   */
  defaultEndpointReusePort: boolean | null
}

/** The state byte that starts every wire payload. */
export declare enum WirePayloadState {
  Success = 0,
  Updated = 1,
  NotFound = 2,
  MissingID = 3,
  MissingProof = 4,
  InvalidProof = 5,
  InternalError = 6,
}
