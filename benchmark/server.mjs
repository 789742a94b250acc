// The endpoint under wrk: `node server.mjs <library> <dir> <port> <fixture> <count>`
// saves `count` copies of the fixture, writes the requests wrk should send to
// <dir>/requests.json, prints "ready" and serves until killed.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openLibrary } from './libraries.mjs'

const [library, dir, port, fixturePath, countText] = process.argv.slice(2)
const lib = await openLibrary(library, dir, { endpointPort: Number(port) })
const image = readFileSync(fixturePath)
const requests = []
for (let i = 0; i < Number(countText); i++) {
  const record = await lib.saveImage(image)
  requests.push({ path: `/pixstore-image/${encodeURIComponent(record.id)}`, proof: record.statelessProof, token: record.token })
}
writeFileSync(join(dir, 'requests.json'), JSON.stringify(requests))
process.stdout.write('ready\n')
setInterval(() => {}, 1 << 30)
