// pixstore-native demo: an Express app that stores uploaded images encrypted
// and shows them through pixstore/frontend. Start it with `npm start`, then
// open the URL it prints (http://localhost:3000; PORT changes the port, 0 picks a free one).
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import express from 'express'
import { build } from 'esbuild'
import { initPixstoreBackend, saveImage, updateImage, deleteImage, getImageRecord } from 'pixstore-native/backend'
import { PixstoreError } from 'pixstore-native/shared'
import { pixstoreRouter } from 'pixstore-native/express'

const port = Number(process.env.PORT || 3000)
const dataDir = process.env.DATA_DIR || fileURLToPath(new URL('./data', import.meta.url))
mkdirSync(dataDir, { recursive: true })

// The embedded default: SQLite + a local folder. Images are served by this app
// (pixstoreRouter below) instead of the built-in endpoint on a port of its own.
initPixstoreBackend({
  imageRootDir: `${dataDir}/images`,
  databasePath: `${dataDir}/pixstore.sqlite`,
  defaultEndpointEnabled: false,
  errorHandlingMode: 'throw',
})

// The app's own data: which images are in the gallery (a real app keeps this in its database).
const galleryFile = `${dataDir}/gallery.json`
const gallery = existsSync(galleryFile) ? JSON.parse(readFileSync(galleryFile, 'utf8')) : []
const saveGallery = () => writeFileSync(galleryFile, JSON.stringify(gallery))

const app = express()
// GET /pixstore-image/:id for pixstore/frontend, answered like the built-in endpoint.
// A real app would check its session here: authorize: (req, imageId) => …
app.use(pixstoreRouter())
const upload = express.raw({ type: () => true, limit: '20mb' })
// A PixstoreError is the user's fault (not an image, unknown id): answer 400 with its message.
const handle = (route) => async (req, res, next) => {
  try {
    await route(req, res)
  } catch (error) {
    if (error instanceof PixstoreError) res.status(400).json({ error: error.message })
    else next(error)
  }
}

app.get('/api/images', (req, res) => {
  res.json({ images: gallery.map((id) => getImageRecord(id)).filter(Boolean) })
})

app.post('/api/images', upload, handle(async (req, res) => {
  const record = await saveImage(req.body, 'gallery')
  gallery.unshift(record.id)
  saveGallery()
  res.status(201).json(record)
}))

app.put('/api/images/:id', upload, handle(async (req, res) => {
  if (!gallery.includes(req.params.id)) return res.sendStatus(404)
  res.json(await updateImage(req.params.id, req.body))
}))

app.delete('/api/images/:id', handle(async (req, res) => {
  if (!gallery.includes(req.params.id)) return res.sendStatus(404)
  await deleteImage(req.params.id)
  gallery.splice(gallery.indexOf(req.params.id), 1)
  saveGallery()
  res.sendStatus(204)
}))

// The page's script bundles the unmodified pixstore/frontend from npm.
const bundle = await build({
  entryPoints: [fileURLToPath(new URL('./public/app.js', import.meta.url))],
  bundle: true,
  write: false,
  format: 'iife',
  logLevel: 'silent',
})
app.get('/app.js', (req, res) => res.type('text/javascript').send(bundle.outputFiles[0].text))
app.use(express.static(fileURLToPath(new URL('./public', import.meta.url))))

const server = app.listen(port, () => console.log(`pixstore-native demo on http://localhost:${server.address().port}`))
