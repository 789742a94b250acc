// The API and error-mode suite (api.test.mjs) and the concurrency guarantees
// (concurrency.test.mjs) run again against PostgreSQL + S3: each file starts
// its own servers (support/store-under-test.mjs) when PIXSTORE_TEST_STORE=remote.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'

for (const suite of ['api.test.mjs', 'concurrency.test.mjs']) {
  test(`${suite} passes against PostgreSQL + S3`, () => {
    // A test runner of its own: without NODE_TEST_CONTEXT it reports in TAP as usual.
    const { NODE_TEST_CONTEXT, ...env } = process.env
    const run = spawnSync(process.execPath, ['--test', '--test-reporter=tap', new URL(`./${suite}`, import.meta.url).pathname], {
      env: { ...env, PIXSTORE_TEST_STORE: 'remote' },
      encoding: 'utf8',
      timeout: 600_000,
    })
    const failures = run.stdout.split('\n').filter((line) => line.startsWith('not ok'))
    assert.deepEqual(failures, [], run.stdout.slice(-4000))
    assert.equal(run.status, 0, run.stderr)
    const passed = Number(/^# pass (\d+)$/m.exec(run.stdout)?.[1])
    assert.ok(passed >= 3, `${passed} tests passed`)
  })
}
