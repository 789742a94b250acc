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
  /**
   * pixstore-native only: a path of the default endpoint that answers `200 ok` to GET
   * and HEAD while the backend is open (503 while it closes), for load balancers.
   * Default `null`: none. Must not be `defaultEndpointRoute` or below it.
   */
  defaultEndpointHealthRoute: string | null
  /**
   * pixstore-native only: a path of the default endpoint that answers GET and HEAD with
   * `getPixstoreMetrics()` (Prometheus text format). Default `null`: none. Must not be
   * `defaultEndpointRoute` or below it.
   */
  defaultEndpointMetricsRoute: string | null
  /** `Access-Control-Allow-Origin` of endpoint responses. Default `'*'`. */
  accessControlAllowOrigin: string
  /** Error handling mode. Default `'hybrid'`. */
  errorHandlingMode: ErrorHandlingMode
  /**
   * pixstore-native only: largest accepted image in bytes; larger ones are refused before they
   * are read or encrypted. Default `Number.MAX_SAFE_INTEGER`: no limit, as in pixstore.
   */
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
  /**
   * pixstore-native only: master keys (base64 of 32 bytes each, e.g. `openssl rand -base64 32`).
   * The per-image key in each record is stored wrapped under the first (AES-256-GCM, the id as
   * associated data) and unwrapped with any listed one; JS and the wire payload see plain keys.
   * With them the store is no longer readable by pixstore 3.2.1. Default `null`: keys stored plain.
   */
  masterKeys: readonly string[] | null
  /**
   * pixstore-native only: `postgres://user:password@host:port/database` — records in PostgreSQL
   * (TLS with `sslmode=require` or `verify-full`). Default `null`: SQLite at `databasePath`.
   */
  databaseUrl: string | null
  /** pixstore-native only: PostgreSQL connections per process (1..1000). Default `10`. */
  databasePoolSize: number
  /**
   * pixstore-native only: encrypted images in S3-compatible storage; what is not given comes
   * from the `AWS_*` environment variables. Default `null`: files under `imageRootDir`.
   */
  objectStore: {
    /** `s3://bucket` or `s3://bucket/prefix`. */
    url: string
    /** A custom endpoint (MinIO, R2, SeaweedFS…), requested path-style. */
    endpoint?: string
    region?: string
    accessKeyId?: string
    secretAccessKey?: string
    sessionToken?: string
    /** Allow a plain `http://` endpoint. */
    allowHttp?: boolean
  } | null
  /**
   * pixstore-native only: bytes of encrypted images recently served kept in memory, by version
   * (id and GCM tag), so they are served without a file or object read. Never stale: every write
   * makes a new version. Images above an eighth of it are not kept; `0` turns it off. Default
   * `67108864` (64 MiB).
   */
  imageCacheBytes: number
  /**
   * pixstore-native only (remote stores): how long superseded, deleted or abandoned objects stay
   * before any instance removes them, in ms; also the age after which an unfinished write counts
   * as abandoned. Default `60000`.
   */
  orphanGracePeriodMs: number
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

/** A duration histogram in seconds, as Prometheus has it: cumulative buckets. */
export interface PixstoreHistogram {
  /** Observations up to `le` seconds (cumulative); the last bucket's `le` is `Infinity`. */
  buckets: Array<{ le: number; count: number }>
  /** Sum of the observations, in seconds. */
  sum: number
  /** Number of observations. */
  count: number
}

/** Counts by write operation. */
export interface PixstoreWriteCounts {
  save: number
  update: number
  delete: number
}

/** The numbers of one backend (one JS environment), from `getPixstoreStats()`. */
export interface PixstoreStats {
  /** Whether the backend is initialized and not closed. */
  backendOpen: boolean
  /** Images stored by `saveImage` / `saveImageFromFile`. */
  saves: number
  /** Images replaced by `updateImage` / `updateImageFromFile`. */
  updates: number
  /** `deleteImage` calls that completed (whether they returned true or false). */
  deletes: number
  /** Writes that failed (invalid or oversized image, image not found, storage error, not initialized). */
  writeFailures: PixstoreWriteCounts
  /** Saves, updates and deletes started and not finished. */
  writesInFlight: number
  /** Writes and deletes waiting for the local store's writer thread (0 for remote stores). */
  writerQueueDepth: number
  /** Image bytes stored by successful saves and updates (before encryption). */
  receivedBytes: number
  /** Wire payloads built (default endpoint, `customEndpointHelper`, framework glue), by state. */
  served: Record<'Success' | 'Updated' | 'NotFound' | 'MissingID' | 'MissingProof' | 'InvalidProof' | 'InternalError', number>
  /** Bytes of those payloads. */
  servedBytes: number
  /** Durations of successful writes, from the call to the commit. */
  writeDuration: { save: PixstoreHistogram; update: PixstoreHistogram; delete: PixstoreHistogram }
  /** Durations of building a payload (proof check, record and image read). */
  serveDuration: PixstoreHistogram
  /** The default endpoint: open TCP connections and responses by status code. */
  endpoint: { openConnections: number; responses: Record<'200' | '204' | '400' | '404' | '503', number> }
  /** Request log entries of the default endpoint dropped because the logger fell behind. */
  requestLogDropped: number
}

/** One request answered by the default endpoint or the framework glue. */
export interface PixstoreRequestLog {
  /** Who answered: the default endpoint or the glue of a framework. */
  source: 'endpoint' | 'express' | 'fastify'
  /** The request method. */
  method: string
  /** The route of ours the path matched (image, health or metrics route), or null. */
  route: string | null
  /** The image id asked for (decoded; only ids that could have been generated), or null. */
  imageId: string | null
  /** The state of the wire payload served, or null when none was. */
  state: keyof typeof WirePayloadState | null
  /** The HTTP status (500 when the glue handed an error to the framework). */
  status: number
  /** Body bytes sent (0 for HEAD and 204). */
  bytes: number
  /** From the request's arrival to its answer being ready, in milliseconds. */
  durationMs: number
  /** The client's IP address. */
  remoteAddress: string | null
  /** Framework glue only: the error handed to the framework's error handling. */
  error?: unknown
}

/** Receives every request log entry; may be async. */
export type PixstoreRequestLogger = (entry: PixstoreRequestLog) => void | Promise<void>
