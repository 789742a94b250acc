// Jest loads a fresh copy of the package's JS for every test file, while the
// native backend of the thread lives on (another file may have left it open
// with other settings). Like a fresh copy of pixstore's module, the first init
// here starts from the documented defaults, not from what another file set.
const backend = require('pixstore-native/backend')
const { PixstoreError } = require('pixstore-native/shared')
const { tempStore } = require('./support.js')

const store = tempStore()

afterAll(async () => {
  await backend.closePixstoreBackend()
  store.remove()
})

test('the first init of this module instance starts from the defaults', async () => {
  // Leave the backend as another file could: 'throw' mode.
  jest.isolateModules(() => {
    require('pixstore-native/backend').initPixstoreBackend({ ...store.config, errorHandlingMode: 'throw' })
  })
  backend.initPixstoreBackend(store.config)
  const warn = jest.spyOn(console, 'warn').mockImplementation(() => {})
  // 'hybrid', the default: a PixstoreError gives null, not a rejection.
  expect(await backend.updateImage('missingid', Buffer.from('x'))).toBeNull()
  expect(warn.mock.calls[0][0]).toBeInstanceOf(PixstoreError)
  warn.mockRestore()
})
