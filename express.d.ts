import type { Request, RequestHandler } from 'express'
import type { PixstoreRouteOptions } from './lib/image-route.js'

/** Options of `pixstoreRouter`; `authorize` receives the Express request. */
export interface PixstoreExpressOptions extends PixstoreRouteOptions<Request> {}

/**
 * Express middleware serving `<route>/:id` (default `/pixstore-image`) with the
 * wire payload of customEndpointHelper, answering like the default endpoint
 * (status codes, texts, CORS). Other paths go to `next()`; a throwing
 * `authorize` or a failing helper goes to `next(error)`. Needs the backend
 * initialized with `defaultEndpointEnabled: false`.
 */
export declare function pixstoreRouter(options?: PixstoreExpressOptions): RequestHandler
