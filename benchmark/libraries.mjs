// Loads pixstore 3.2.1 or pixstore-native with the same explicit configuration
// on a fresh store, for the benchmark workers.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

/** Library names as they appear in the report. */
export const LIBRARIES = ['pixstore', 'pixstore-native']

/**
 * Imports `library` and initializes it on a store under `dir`. pixstore is
 * imported as its published build requires and always gets explicit config
 * (its build hard-codes test defaults).
 */
export async function openLibrary(library, dir, { endpointPort, durability } = {}) {
  mkdirSync(dir, { recursive: true })
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
  native.initPixstoreBackend({ ...config, durability: durability ?? 'process' })
  return native
}
