'use strict'
// pixstore-native/shared: error handling shared by every pixstore-native call.

const errors = require('./lib/errors.js')

exports.PixstoreError = errors.PixstoreError
exports.setCustomErrorHandler = errors.setCustomErrorHandler
exports.getLastPixstoreError = errors.getLastPixstoreError
