import type { FastifyPluginCallback, FastifyRequest } from 'fastify'
import type { PixstoreRouteOptions } from './lib/image-route.js'

type PixstorePlugin = FastifyPluginCallback<pixstorePlugin.PixstoreFastifyOptions>

declare namespace pixstorePlugin {
  /** Options of the plugin; `authorize` receives the Fastify request. */
  export interface PixstoreFastifyOptions extends PixstoreRouteOptions<FastifyRequest> {}
  /**
   * Fastify plugin serving `<prefix><route>/:id` (route default `/pixstore-image`)
   * with the wire payload of customEndpointHelper, answering like the default
   * endpoint. Errors go to Fastify's error handler. Needs the backend initialized
   * with `defaultEndpointEnabled: false`.
   */
  export const pixstorePlugin: PixstorePlugin
  export { pixstorePlugin as default }
}

declare function pixstorePlugin(...params: Parameters<PixstorePlugin>): ReturnType<PixstorePlugin>
export = pixstorePlugin
