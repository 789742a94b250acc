// The app pm2.test.mjs runs under PM2 in cluster mode (`-i 2`): Express on PORT,
// the default endpoint on PIXSTORE_PORT in every instance, shared proofKeys.
// Every answer names the PM2 instance that gave it.
const express = require('express')
const backend = require('pixstore-native/backend')

backend.initPixstoreBackend({
  imageRootDir: `${process.env.STORE_DIR}/images`,
  databasePath: `${process.env.STORE_DIR}/store.sqlite`,
  defaultEndpointListenHost: '127.0.0.1',
  defaultEndpointListenPort: Number(process.env.PIXSTORE_PORT),
  statelessKeyWindowLength: -1,
  proofKeys: [process.env.PIXSTORE_PROOF_KEY],
  errorHandlingMode: 'throw',
})

const app = express()
app.use((req, res, next) => {
  res.set('x-instance', process.env.NODE_APP_INSTANCE)
  next()
})
app.post('/images', express.raw({ type: '*/*', limit: '5mb' }), async (req, res, next) => {
  try {
    res.json(await backend.saveImage(req.body))
  } catch (error) {
    next(error)
  }
})
app.get('/records/:id', (req, res) => res.json(backend.getImageRecord(req.params.id)))
app.listen(Number(process.env.PORT), '127.0.0.1', () => process.send?.('ready'))
