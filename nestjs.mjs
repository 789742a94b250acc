// ESM entry of pixstore-native/nestjs: the same PixstoreModule as the CJS entry
// for the same copy of @nestjs/common.
import * as common from '@nestjs/common'
import * as core from '@nestjs/core'
import integration from './lib/nestjs-module.js'

export const { PixstoreModule, PIXSTORE_CONFIG } = integration.createNestIntegration(common, core)
