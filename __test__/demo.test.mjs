// The `npm start` demo driven in headless Chromium: upload, see the image
// rendered through pixstore/frontend (served by the demo's own Express app),
// replace it, delete it, and get a clear message for a file that is not an
// image. Started with PORT=0, the demo prints the port it actually got.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import { tempDir, fixturesDir } from './helpers.mjs'
import { browserAvailability, launchBrowser } from './browser/harness.mjs'

const availability = browserAvailability()
const dir = tempDir()
let server
let browser
let page

before(async () => {
  if (availability.skip) return
  // PORT=0: the demo listens on a free port and must print the one it got.
  server = spawn(process.execPath, [new URL('../examples/express-demo/server.mjs', import.meta.url).pathname], {
    env: { ...process.env, PORT: '0', DATA_DIR: join(dir.path, 'data') },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let output = ''
  const url = await new Promise((resolve, reject) => {
    server.stdout.on('data', (chunk) => {
      output += chunk
      const printed = /demo on (http:\/\/localhost:(\d+))/.exec(output)
      if (printed) resolve(printed)
    })
    server.on('exit', (code) => reject(new Error(`demo exited with ${code}`)))
  })
  assert.notEqual(url[2], '0', 'the printed port is the real one')
  browser = await launchBrowser()
  page = await browser.context.newPage()
  await page.goto(url[1])
})

after(async () => {
  await browser?.close()
  server?.kill()
  dir.remove()
})

const renderedSizes = () => page.$$eval('#gallery img', (imgs) => imgs.map((img) => (img.complete && img.src.startsWith('blob:') ? `${img.naturalWidth}x${img.naturalHeight}` : 'pending')))

test('upload, render, replace and delete in the demo page', availability, async () => {
  await page.setInputFiles('#picker', join(fixturesDir, 'medium.png'))
  await page.waitForFunction(() => document.querySelector('#gallery img')?.naturalWidth > 0)
  assert.deepEqual(await renderedSizes(), ['320x240'])
  assert.match(await page.textContent('#message'), /Uploaded medium\.png/)

  const chooser = page.waitForEvent('filechooser')
  await page.click('#gallery figure button:text("Replace")')
  await (await chooser).setFiles(join(fixturesDir, '200k.jpg'))
  await page.waitForFunction(() => document.querySelector('#gallery img')?.naturalWidth === 640)
  assert.deepEqual(await renderedSizes(), ['640x480'])
  assert.equal(await page.textContent('#message'), 'Image replaced')

  await page.click('#gallery figure button:text("Delete")')
  await page.waitForFunction(() => document.querySelectorAll('#gallery figure').length === 0)
  assert.equal(await page.textContent('#message'), 'Image deleted')
})

test('a file that is not an image gets a clear message on the page', availability, async () => {
  const notes = join(dir.path, 'notes.txt')
  writeFileSync(notes, 'these are notes, not a picture')
  await page.setInputFiles('#picker', notes)
  await page.waitForFunction(() => document.querySelector('#message').classList.contains('error'))
  assert.equal(await page.textContent('#message'), 'Invalid image file')
  assert.equal(await page.$$eval('#gallery figure', (figures) => figures.length), 0)
})
