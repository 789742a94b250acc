// The published types compile in a consumer under moduleResolution nodenext
// (ESM and CJS files) and bundler; the framework glue's (Express, Fastify,
// NestJS) under nodenext, against the frameworks' own typings.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const tsc = require.resolve('typescript/bin/tsc')
const consumerDir = new URL('./typescript/', import.meta.url).pathname

function compile(options, files) {
  const result = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--skipLibCheck', 'false', '--types', 'node', ...options, ...files], {
    cwd: consumerDir,
    encoding: 'utf8',
  })
  assert.equal(result.status, 0, result.stdout + result.stderr)
}

test('types resolve under moduleResolution nodenext (ESM and CJS consumers)', () => {
  compile(['--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022'], ['consumer.mts', 'consumer.cts'])
})

test('framework glue types resolve under nodenext (ESM and CJS consumers)', () => {
  compile(['--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022'], ['frameworks.mts', 'frameworks.cts', 'frameworks-nest.cts'])
})

test('types resolve under moduleResolution bundler', () => {
  compile(['--module', 'esnext', '--moduleResolution', 'bundler', '--target', 'es2022'], ['consumer.mts'])
})

test('a wrong argument type is a compile error', () => {
  const result = spawnSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', 'wrong.mts'], {
    cwd: consumerDir,
    encoding: 'utf8',
  })
  assert.notEqual(result.status, 0)
  assert.match(result.stdout, /wrong\.mts.*error TS2345/s)
})
