// The published types compile in a consumer under moduleResolution nodenext
// (ESM and CJS files) and bundler; the framework glue's (Express, Fastify,
// NestJS) under nodenext, against the frameworks' own typings.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'
import { rmSync, writeFileSync } from 'node:fs'

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

test('every value an entry point exports at run time is declared in its types', async () => {
  const { exports } = require('../package.json')
  const lines = []
  for (const entry of Object.keys(exports).filter((entry) => entry !== './package.json')) {
    const specifier = entry === '.' ? 'pixstore-native' : `pixstore-native/${entry.slice(2)}`
    const names = Object.keys(await import(specifier)).filter((name) => name !== 'default' && name !== 'module.exports')
    if (names.length === 0) continue
    const alias = `m${lines.length}`
    lines.push(`import * as ${alias} from '${specifier}'`, ...names.map((name) => `void ${alias}.${name}`))
  }
  const file = `${consumerDir}exports-${process.pid}.mts`
  writeFileSync(file, lines.join('\n') + '\n')
  try {
    compile(['--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022'], [file])
  } finally {
    rmSync(file)
  }
})
