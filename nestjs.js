'use strict'
// pixstore-native/nestjs (CommonJS): PixstoreModule. Nest 12 is an ES module:
// requiring it needs Node 22+ (or 20.17+ with --experimental-require-module);
// on older Nodes import pixstore-native/nestjs from ESM instead.

const { createNestIntegration } = require('./lib/nestjs-module.js')

function load(name) {
  try {
    return require(name)
  } catch (error) {
    if (error && error.code === 'ERR_REQUIRE_ESM') {
      throw new Error(`pixstore-native/nestjs: ${name} is an ES module, which this Node cannot require(); import 'pixstore-native/nestjs' instead, or use Node 22+`, { cause: error })
    }
    throw error
  }
}

const { PixstoreModule, PIXSTORE_CONFIG } = createNestIntegration(load('@nestjs/common'), load('@nestjs/core'))

exports.PixstoreModule = PixstoreModule
exports.PIXSTORE_CONFIG = PIXSTORE_CONFIG
