// The test helpers themselves: a child-process script started without its
// arguments refuses to run instead of writing into a folder named `undefined`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { tempDir } from './helpers.mjs'

for (const script of ['crash-worker.mjs', 'hammer-worker.mjs', 'memory-child.mjs']) {
  test(`support/${script} without arguments refuses to run and writes nothing`, () => {
    const cwd = tempDir()
    try {
      const run = spawnSync(process.execPath, [new URL(`./support/${script}`, import.meta.url).pathname], { cwd: cwd.path, encoding: 'utf8' })
      assert.notEqual(run.status, 0)
      assert.match(run.stderr, /usage: /)
      assert.equal(existsSync(`${cwd.path}/undefined`), false)
    } finally {
      cwd.remove()
    }
  })
}
