// Runs the Jest suite (__test__/jest/) with the real `jest` from npm: Jest is
// the default test runner of NestJS apps, and it runs every test file in a vm
// context of its own (see __test__/jest/backend.spec.js).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const jest = require.resolve('jest/bin/jest')
const config = new URL('./jest/jest.config.js', import.meta.url).pathname

test('the Jest suite passes under the real Jest, every file in its own vm context', () => {
  const run = spawnSync(process.execPath, [jest, '--config', config, '--json', '--ci'], { encoding: 'utf8', timeout: 120_000 })
  const report = JSON.parse(run.stdout)
  const failures = report.testResults.flatMap((file) =>
    file.assertionResults.filter((result) => result.status !== 'passed').map((result) => `${result.fullName}: ${result.failureMessages.join('\n')}`),
  )
  assert.deepEqual(failures, [])
  assert.equal(run.status, 0, run.stderr)
  assert.equal(report.numTotalTestSuites, 2)
  assert.ok(report.numPassedTests >= 13, `${report.numPassedTests} tests passed`)
})
