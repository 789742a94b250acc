'use strict'
// PixstoreModule for NestJS, written without decorator syntax: the Nest
// packages are handed in by the entry points (nestjs.js requires them,
// nestjs.mjs imports them, as Nest 12 is an ES module).

const { initPixstoreBackend, closePixstoreBackend } = require('../backend.js')
const { routeOptions } = require('./image-route.js')

/** The injection token of the module's configuration. */
const PIXSTORE_CONFIG = 'PIXSTORE_CONFIG'

/**
 * The backend configuration the module applies: with the image route on, the
 * default endpoint is off unless asked for (then the configuration is refused:
 * customEndpointHelper would refuse every request).
 */
function backendConfig(config) {
  const backend = config.backend ?? {}
  if (config.route === false) return backend
  if (backend.defaultEndpointEnabled === true) {
    throw new Error('pixstore-native/nestjs: serve images either through the Nest route or the default endpoint: set route: false to keep defaultEndpointEnabled')
  }
  return { ...backend, defaultEndpointEnabled: false }
}

/** The options of the image route (framework glue), or null with `route: false`. */
function imageRouteOptions(config) {
  if (config.route === false) return null
  return routeOptions({
    route: config.route,
    authorize: config.authorize,
    accessControlAllowOrigin: config.accessControlAllowOrigin ?? config.backend?.accessControlAllowOrigin,
  })
}

/** Checks a configuration at once (forRoot) or when its factory resolves (forRootAsync). */
function checkConfig(config) {
  if (config === null || typeof config !== 'object') {
    throw new TypeError('pixstore-native/nestjs: the configuration must be an object')
  }
  backendConfig(config)
  imageRouteOptions(config)
  return config
}

const integrations = new Map()

/** PixstoreModule and its token, built once per copy of @nestjs/common. */
function createNestIntegration(common, core) {
  const known = integrations.get(common.Module)
  if (known) return known
  const { Module, Injectable, Dependencies } = common
  const { HttpAdapterHost } = core

  /** Inits the backend with the application, mounts the image route, closes the backend on shutdown. */
  class PixstoreLifecycle {
    constructor(config, adapterHost) {
      this.config = config
      this.adapterHost = adapterHost
    }

    async onModuleInit() {
      const config = checkConfig(this.config)
      initPixstoreBackend(backendConfig(config))
      const options = imageRouteOptions(config)
      // No HTTP adapter in a standalone application context: lifecycle only.
      const adapter = this.adapterHost?.httpAdapter
      if (!options || !adapter) return
      // The route is mounted on the platform itself, between Nest's routes and
      // its not-found handler, so it answers exactly as on plain Express/Fastify.
      const platform = adapter.getType()
      if (platform === 'express') {
        adapter.getInstance().use(require('../express.js').pixstoreRouter(options))
      } else if (platform === 'fastify') {
        // Not awaited: Fastify loads it at ready(), after Nest has set its error
        // handler, which the plugin's context then inherits.
        adapter.getInstance().register(require('../fastify.js'), options)
      } else {
        throw new Error(`pixstore-native/nestjs: the image route supports the express and fastify platforms, not ${platform}`)
      }
    }

    async onApplicationShutdown() {
      await closePixstoreBackend()
    }
  }
  Injectable()(PixstoreLifecycle)
  Dependencies(PIXSTORE_CONFIG, HttpAdapterHost)(PixstoreLifecycle)

  /**
   * `PixstoreModule.forRoot(config)` / `forRootAsync({ imports, inject, useFactory })`:
   * a global module whose lifecycle hooks run before those of other modules.
   */
  class PixstoreModule {
    static forRoot(config = {}) {
      return {
        module: PixstoreModule,
        global: true,
        providers: [{ provide: PIXSTORE_CONFIG, useValue: checkConfig(config) }, PixstoreLifecycle],
      }
    }

    static forRootAsync({ imports = [], inject = [], useFactory } = {}) {
      if (typeof useFactory !== 'function') {
        throw new TypeError('pixstore-native/nestjs: forRootAsync needs a useFactory function')
      }
      return {
        module: PixstoreModule,
        global: true,
        imports,
        providers: [{ provide: PIXSTORE_CONFIG, inject, useFactory: async (...deps) => checkConfig(await useFactory(...deps)) }, PixstoreLifecycle],
      }
    }
  }
  Module({})(PixstoreModule)

  const integration = { PixstoreModule, PIXSTORE_CONFIG }
  integrations.set(common.Module, integration)
  return integration
}

module.exports = { createNestIntegration, PIXSTORE_CONFIG }
