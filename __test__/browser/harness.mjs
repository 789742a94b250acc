// Browser test harness: Debian's Chromium driven by playwright-core, and a
// localhost page running pixstore/frontend (bundled with esbuild). Without
// Chromium the browser tests skip, except under CI=true, where they fail.
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { build } from 'esbuild'

export const CHROMIUM = '/usr/bin/chromium'

/** `{ skip }` options for node:test: a reason to skip, or false. Under CI a missing browser is a failure. */
export function browserAvailability() {
  if (existsSync(CHROMIUM)) return { skip: false }
  if (process.env.CI === 'true') throw new Error(`${CHROMIUM} is missing; CI must install Debian's chromium`)
  return { skip: `${CHROMIUM} not installed (apt-get install chromium)` }
}

/** Launches headless Chromium with a fresh profile; `close()` also removes the profile. */
export async function launchBrowser() {
  const { chromium } = await import('playwright-core')
  const profile = mkdtempSync(join(tmpdir(), 'pixstore-chromium-'))
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
  return {
    context,
    browser: context.browser(),
    async close() {
      await context.close()
      rmSync(profile, { recursive: true, force: true })
    },
  }
}

/** Serves a page with the bundled `entry` script on localhost; returns its origin and `close()`. */
export async function servePage(entry) {
  const bundle = await build({ entryPoints: [entry], bundle: true, format: 'iife', write: false, platform: 'browser', logLevel: 'silent' })
  const script = bundle.outputFiles[0].text
  const html = '<!doctype html><meta charset="utf-8"><title>pixstore test</title><script src="/app.js"></script>'
  const server = createServer((req, res) => {
    if (req.url === '/app.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(script)
    else res.writeHead(200, { 'content-type': 'text/html' }).end(html)
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    origin: `http://localhost:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  }
}
