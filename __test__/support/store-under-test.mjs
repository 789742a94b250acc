// The store a suite runs against: the local one (SQLite + folder) by
// default, or PostgreSQL + S3 (real servers, see services.mjs) when
// PIXSTORE_TEST_STORE=remote — so the API, error-mode and guarantee suites
// run against both (remote-suites.test.mjs runs them that way).
import Database from 'better-sqlite3'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { listFiles } from '../helpers.mjs'
import { startPostgres, startSeaweed, pgRows, s3Keys, s3Get, objectKey } from './services.mjs'

export const remote = process.env.PIXSTORE_TEST_STORE === 'remote'

/**
 * A store under `dir`: `{ config, rows(), blobs(), ciphertextOf(record), stop() }`.
 * `blobs()` lists the stored images (files, or object keys); `ciphertextOf`
 * reads the bytes a record's image is stored as.
 */
export async function storeUnderTest(dir) {
  const imageRootDir = join(dir, 'images')
  const databasePath = join(dir, 'store.sqlite')
  if (!remote) {
    return {
      config: { imageRootDir, databasePath },
      rows: () => {
        const db = new Database(databasePath, { readonly: true })
        try {
          return db.prepare('SELECT id, token, meta FROM image_records ORDER BY id').all()
        } finally {
          db.close()
        }
      },
      blobs: () => listFiles(imageRootDir).filter((name) => !name.startsWith('.pixstore-tmp/')),
      ciphertextOf: (record) => {
        const [prefix, key] = record.id.includes(':') ? record.id.split(':') : ['', record.id]
        return readFileSync(join(imageRootDir, prefix, `${key}.pixstore-image`))
      },
      stop: async () => {},
    }
  }
  const pg = await startPostgres()
  const s3 = await startSeaweed()
  const prefix = 'suite/'
  return {
    config: {
      imageRootDir,
      databasePath,
      databaseUrl: pg.url,
      objectStore: { url: `s3://${s3.bucket}/${prefix}`, endpoint: s3.endpoint, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, allowHttp: true },
      orphanGracePeriodMs: 60_000,
    },
    pg,
    s3,
    rows: () => pgRows(pg.url),
    blobs: () => s3Keys(s3, prefix),
    ciphertextOf: (record) => s3Get(s3, objectKey(prefix, record)),
    stop: async () => {
      pg.stop()
      await s3.stop()
    },
  }
}
