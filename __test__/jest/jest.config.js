// Jest configuration of the Jest suite (run by __test__/jest.test.mjs): Jest's
// defaults — each test file in its own vm context — as a NestJS app's tests
// would run. Files are named *.spec.js so `node --test __test__/` skips them.
module.exports = {
  rootDir: __dirname,
  testMatch: ['<rootDir>/*.spec.js'],
  testEnvironment: 'node',
}
