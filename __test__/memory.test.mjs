// The caller's memory (SPEC "Input memory and threads"): whatever the caller
// does with the buffer after saveImage/updateImage returns — overwrite,
// detach, transfer, shrink, drop and GC — the stored image is the bytes at
// call time and the process does not crash. Run in a child process with
// --expose-gc, so a crash is an exit signal here and not the end of the suite.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { tempDir } from './helpers.mjs'

const child = new URL('./support/memory-child.mjs', import.meta.url).pathname

test('the stored image is the bytes the buffer held at call time, whatever the caller does next', () => {
  const dir = tempDir()
  try {
    const run = spawnSync(process.execPath, ['--expose-gc', child, dir.path, '2'], { encoding: 'utf8', timeout: 240_000 })
    assert.equal(run.signal, null, `the process died with ${run.signal}\n${run.stderr}`)
    assert.equal(run.status, 0, run.stderr)
    const results = JSON.parse(run.stdout.trim().split('\n').pop())
    assert.equal(results.length, 2 * 8 * 2, 'every scenario ran for both calls, twice')
    const wrong = results.filter((result) => result.outcome !== 'stored as at call time')
    assert.deepEqual(wrong, [])
  } finally {
    dir.remove()
  }
})
