// Shared helpers of the JS test suite: temporary stores, free ports, image
// fixtures, and decoding/decrypting payloads the way pixstore/frontend does.
import { mkdtempSync, rmSync, readdirSync, statSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createServer } from 'node:net'
import { deflateSync, crc32 } from 'node:zlib'
import { createHash, webcrypto } from 'node:crypto'

/**
 * The command-line arguments of a child-process script, refusing to run
 * without all of them (a missing folder would otherwise become the relative
 * path `undefined/…`).
 */
export function scriptArgs(...names) {
  const values = process.argv.slice(2, 2 + names.length)
  if (values.length < names.length || values.some((value) => !value)) {
    throw new Error(`usage: ${process.argv[1]} ${names.map((name) => `<${name}>`).join(' ')}`)
  }
  return values
}

/** A fresh temporary folder; `remove()` deletes it. */
export function tempDir(prefix = 'pixstore-native-test-') {
  const path = mkdtempSync(join(tmpdir(), prefix))
  return { path, remove: () => rmSync(path, { recursive: true, force: true }) }
}

/** A TCP port that was free a moment ago. */
export async function freePort() {
  const server = createServer()
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address()
  await new Promise((resolve) => server.close(resolve))
  return port
}

function pngChunk(type, data) {
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const length = Buffer.alloc(4)
  length.writeUInt32BE(data.length)
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(body))
  return Buffer.concat([length, body, crc])
}

/** A valid RGB PNG of `width`×`height` whose pixels derive from `seed`. */
export function makePng(width = 1, height = 1, seed = 1) {
  const header = Buffer.alloc(13)
  header.writeUInt32BE(width, 0)
  header.writeUInt32BE(height, 4)
  header[8] = 8 // bit depth
  header[9] = 2 // RGB
  const rows = Buffer.alloc(height * (1 + width * 3))
  let x = seed >>> 0 || 1
  for (let i = 0; i < rows.length; i++) {
    if (i % (1 + width * 3) === 0) continue // filter byte 0
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5; x >>>= 0
    rows[i] = x & 0xff
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', header),
    pngChunk('IDAT', deflateSync(rows)),
    pngChunk('IEND', Buffer.alloc(0)),
  ])
}

/** Committed fixture images (real PNG, WebP and JPEG files). */
export const fixturesDir = fileURLToPath(new URL('./fixtures/', import.meta.url))

/** Every file under `dir` (relative paths), for "nothing changed on disk" checks. */
export function listFiles(dir) {
  if (!existsSync(dir)) return []
  const out = []
  const walk = (sub) => {
    for (const name of readdirSync(join(dir, sub))) {
      const rel = sub ? `${sub}/${name}` : name
      if (statSync(join(dir, rel)).isDirectory()) walk(rel)
      else out.push(rel)
    }
  }
  walk('')
  return out.sort()
}

export const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex')

/** pixstore's own wire decoder (from the npm package we replace). */
export const { decodeWirePayload } = await import('pixstore/shared/wire-encoder.js')

const fromBase64 = (text) => Uint8Array.from(Buffer.from(text, 'base64'))

/**
 * Decrypts like pixstore/frontend: Web Crypto AES-GCM over ciphertext ++ tag;
 * returns `{ formatByte, bytes }`.
 */
async function decryptLikeFrontend(encrypted, meta) {
  const key = await webcrypto.subtle.importKey('raw', fromBase64(meta.key), { name: 'AES-GCM' }, false, ['decrypt'])
  const tag = fromBase64(meta.tag)
  const combined = new Uint8Array(encrypted.byteLength + tag.byteLength)
  combined.set(encrypted, 0)
  combined.set(tag, encrypted.byteLength)
  const plain = new Uint8Array(await webcrypto.subtle.decrypt({ name: 'AES-GCM', iv: fromBase64(meta.iv), tagLength: 128 }, key, combined))
  return { formatByte: plain[0], bytes: Buffer.from(plain.subarray(1)) }
}

/**
 * Decodes a payload with pixstore's decoder and decrypts it with the record's
 * meta (Success) or the payload's (Updated); returns the image bytes.
 */
export async function openPayload(payload, record) {
  const decoded = decodeWirePayload(new Uint8Array(payload))
  if (decoded.state !== 0 && decoded.state !== 1) throw new Error(`payload state ${decoded.state}`)
  const meta = decoded.state === 0 ? record.meta : decoded.meta
  return { state: decoded.state, token: decoded.token, ...(await decryptLikeFrontend(decoded.encrypted, meta)) }
}

/** Fetches an image from an endpoint the way pixstore/frontend's default fetcher does. */
/** `token: null` sends no token header; by default the record's token and proof are sent. */
export async function fetchPayload(baseUrl, record, { token = record.token, proof = record.statelessProof } = {}) {
  const headers = {}
  if (proof) headers['x-pixstore-proof'] = proof
  if (token !== null) headers['x-pixstore-token'] = String(token)
  const response = await fetch(`${baseUrl}/${encodeURIComponent(record.id)}`, { headers })
  return { response, payload: new Uint8Array(await response.arrayBuffer()) }
}

/** The pixstore@3.2.1 backend (npm), imported as its build requires. */
export const loadPixstore = () => import('pixstore/backend/index.js')

