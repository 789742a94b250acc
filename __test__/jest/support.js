// Shared by the Jest spec files: temporary stores and a PNG maker. Plain
// CommonJS, loaded by Jest inside each test file's vm context.
const { mkdtempSync, rmSync } = require('node:fs')
const { tmpdir } = require('node:os')
const { join } = require('node:path')
const { deflateSync, crc32 } = require('node:zlib')

function tempStore(extra = {}) {
  const path = mkdtempSync(join(tmpdir(), 'pixstore-native-jest-'))
  return {
    config: { imageRootDir: join(path, 'images'), databasePath: join(path, 'store.sqlite'), defaultEndpointEnabled: false, ...extra },
    remove: () => rmSync(path, { recursive: true, force: true }),
  }
}

function chunk(type, data) {
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const length = Buffer.alloc(4)
  length.writeUInt32BE(data.length)
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([length, body, crc])
}

/** A 1×1 RGB PNG whose pixel derives from `seed`. */
function png(seed = 1) {
  const header = Buffer.alloc(13)
  header.writeUInt32BE(1, 0)
  header.writeUInt32BE(1, 4)
  header[8] = 8
  header[9] = 2
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('IDAT', deflateSync(Buffer.from([0, seed & 255, (seed >> 8) & 255, 7]))),
    chunk('IEND', Buffer.alloc(0)),
  ])
}

module.exports = { tempStore, png }
