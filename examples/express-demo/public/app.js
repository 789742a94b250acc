// The demo page: upload, list, replace and delete images; every image is
// fetched and decrypted by the unmodified pixstore/frontend.
import { initPixstoreFrontend, getImage } from 'pixstore/frontend/index.js'

const gallery = document.getElementById('gallery')
const message = document.getElementById('message')

function say(text, isError = false) {
  message.textContent = text
  message.className = isError ? 'error' : ''
}

async function send(method, url, file) {
  const response = await fetch(url, { method, body: file, headers: file ? { 'content-type': file.type || 'application/octet-stream' } : {} })
  if (!response.ok) {
    const body = await response.json().catch(() => ({}))
    throw new Error(body.error || `${method} failed: ${response.status}`)
  }
  return response
}

function pickFile() {
  return new Promise((resolve) => {
    const input = Object.assign(document.createElement('input'), { type: 'file', accept: 'image/*' })
    input.addEventListener('change', () => resolve(input.files[0]))
    input.click()
  })
}

async function render() {
  const { images } = await (await fetch('/api/images')).json()
  // Images come from this server's /pixstore-image route (pixstoreRouter).
  initPixstoreFrontend({
    defaultEndpointConnectHost: location.hostname,
    defaultEndpointConnectPort: Number(location.port) || 80,
    defaultEndpointRoute: '/pixstore-image',
    frontendDbName: 'pixstore-demo',
    errorHandlingMode: 'warn',
  })
  gallery.replaceChildren(...images.map((record) => {
    const figure = document.createElement('figure')
    figure.dataset.id = record.id
    const img = document.createElement('img')
    img.alt = record.id
    getImage(record).then((blob) => { if (blob) img.src = URL.createObjectURL(blob) })
    const replace = Object.assign(document.createElement('button'), { textContent: 'Replace' })
    replace.addEventListener('click', async () => {
      const file = await pickFile()
      if (file) await act(() => send('PUT', `/api/images/${encodeURIComponent(record.id)}`, file), 'Image replaced')
    })
    const remove = Object.assign(document.createElement('button'), { textContent: 'Delete' })
    remove.addEventListener('click', () => act(() => send('DELETE', `/api/images/${encodeURIComponent(record.id)}`), 'Image deleted'))
    const caption = document.createElement('figcaption')
    caption.append(replace, remove)
    figure.append(img, caption)
    return figure
  }))
}

async function act(action, done) {
  try {
    await action()
    say(done)
  } catch (error) {
    say(error.message, true)
  }
  await render()
}

async function upload(files) {
  for (const file of files) {
    await act(() => send('POST', '/api/images', file), `Uploaded ${file.name}`)
  }
}

const drop = document.getElementById('drop')
drop.addEventListener('dragover', (event) => { event.preventDefault(); drop.classList.add('over') })
drop.addEventListener('dragleave', () => drop.classList.remove('over'))
drop.addEventListener('drop', (event) => {
  event.preventDefault()
  drop.classList.remove('over')
  upload(event.dataTransfer.files)
})
document.getElementById('picker').addEventListener('change', (event) => upload(event.target.files))
render()
