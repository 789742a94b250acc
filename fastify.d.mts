import type { FastifyPluginCallback } from 'fastify'
import type { PixstoreFastifyOptions } from './fastify.js'

export type { PixstoreFastifyOptions } from './fastify.js'

/**
 * Fastify plugin serving `<prefix><route>/:id` (route default `/pixstore-image`)
 * with the wire payload of customEndpointHelper, answering like the default
 * endpoint. Errors go to Fastify's error handler. Needs the backend initialized
 * with `defaultEndpointEnabled: false`.
 */
export declare const pixstorePlugin: FastifyPluginCallback<PixstoreFastifyOptions>
export default pixstorePlugin
