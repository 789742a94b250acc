// The same app as esm-consumer.mjs, written as CommonJS with require().
// Usage: node cjs-consumer.cjs <platform package> <data dir> <port> <image>
const { readFileSync } = require('node:fs')
const { initPixstoreBackend, saveImage, getImageRecord, closePixstoreBackend } = require('pixstore-native/backend')
const { PixstoreError } = require('pixstore-native/shared')

async function main() {
  const [platformPackage, dataDir, port, imagePath] = process.argv.slice(2)
  if (!imagePath) throw new Error('usage: cjs-consumer.cjs <platform package> <data dir> <port> <image>')
  initPixstoreBackend({
    imageRootDir: `${dataDir}/images`,
    databasePath: `${dataDir}/store.sqlite`,
    defaultEndpointListenHost: '127.0.0.1',
    defaultEndpointListenPort: Number(port),
    errorHandlingMode: 'throw',
  })
  const record = await saveImage(readFileSync(imagePath), 'cjs')
  const reread = getImageRecord(record.id)
  const response = await fetch(`http://127.0.0.1:${port}/pixstore-image/${encodeURIComponent(record.id)}`, {
    headers: { 'x-pixstore-proof': record.statelessProof, 'x-pixstore-token': String(record.token) },
  })
  const payload = Buffer.from(await response.arrayBuffer())
  const refused = await saveImage(Buffer.from('not an image')).catch((error) => error)
  await closePixstoreBackend()
  console.log(JSON.stringify({
    binding: require.resolve(platformPackage),
    record,
    reread,
    status: response.status,
    payload: payload.toString('base64'),
    refused: { isPixstoreError: refused instanceof PixstoreError, message: refused.message },
  }))
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
