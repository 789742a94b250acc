// What the benchmark workers measure, with the same explicit configuration on
// a fresh store each time:
// - 'pixstore': pixstore 3.2.1 from npm;
// - 'pixstore-native': this package (local store);
// - 'pixstore-native-keyed': the same with proofKeys (HMAC proofs);
// - 'pixstore-native-uncached': the same with imageCacheBytes: 0 (every
//   image read from its file, as before the cache);
// - 'pixstore-native-remote': this package on PostgreSQL + S3 (the servers
//   run.mjs started; their config comes in PIXSTORE_BENCH_REMOTE);
// - 'limit': what the machine allows for the same work without a store —
//   plain files created, written and renamed (or renamed over, unlinked,
//   checked) with Node's fs, no encryption, no database.
import { mkdirSync } from 'node:fs'
import { access, rename, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** The libraries compared with each other in every row. */
export const LIBRARIES = ['pixstore', 'pixstore-native']

/** A proof key for the keyed variant (only ever used by the benchmark). */
const PROOF_KEY = 'a proof key of the benchmark, long enough for the rule'

/** The plain-file "library" that gives each row its limit. */
function limitLibrary(dir) {
  const files = join(dir, 'files')
  mkdirSync(files, { recursive: true })
  let next = 0
  const path = (id) => join(files, `${id}.img`)
  const put = async (id, bytes) => {
    const temp = join(files, `${id}.${next++}.tmp`)
    await writeFile(temp, bytes)
    await rename(temp, path(id))
    return { id }
  }
  return {
    saveImage: (bytes) => put(String(next++), bytes),
    updateImage: (id, bytes) => put(id, bytes),
    deleteImage: (id) => unlink(path(id)).then(() => true),
    imageExists: (id) => access(path(id)).then(() => true, () => false),
    getImageRecord: null,
  }
}

/**
 * Imports `library` and initializes it on a store under `dir`. pixstore is
 * imported as its published build requires and always gets explicit config
 * (its build hard-codes test defaults).
 */
export async function openLibrary(library, dir, { endpointPort, durability } = {}) {
  mkdirSync(dir, { recursive: true })
  if (library === 'limit') return limitLibrary(dir)
  const config = {
    imageRootDir: join(dir, 'images'),
    databasePath: join(dir, 'store.sqlite'),
    statelessKeyWindowLength: -1,
    defaultEndpointEnabled: endpointPort !== undefined,
    defaultEndpointListenHost: '127.0.0.1',
    defaultEndpointListenPort: endpointPort ?? 3001,
    errorHandlingMode: 'throw',
  }
  if (library === 'pixstore') {
    const pixstore = await import('pixstore/backend/index.js')
    pixstore.initPixstoreBackend(config)
    return pixstore
  }
  const native = await import('pixstore-native/backend')
  const extra = { durability: durability ?? 'process' }
  if (library === 'pixstore-native-keyed') extra.proofKeys = [PROOF_KEY]
  if (library === 'pixstore-native-uncached') extra.imageCacheBytes = 0
  if (library === 'pixstore-native-remote') {
    const remote = JSON.parse(process.env.PIXSTORE_BENCH_REMOTE)
    Object.assign(extra, remote, { proofKeys: [PROOF_KEY], objectStore: { ...remote.objectStore, url: `${remote.objectStore.url}/${dir.split('/').pop()}` } })
  }
  native.initPixstoreBackend({ ...config, ...extra })
  return native
}
