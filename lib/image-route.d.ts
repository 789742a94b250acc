/** Options of the image route, the same for pixstore-native/express, /fastify and /nestjs. */
export interface PixstoreRouteOptions<Req> {
  /**
   * Path of the route; images are served at `<route>/<percent-encoded id>`.
   * Default `'/pixstore-image'` (pixstore/frontend's `defaultEndpointRoute`).
   */
  route?: string
  /**
   * Called for every GET/HEAD of a well-formed image id, before the payload is
   * built; may be async. `true` serves the image; anything else answers
   * `403 Forbidden` (text/plain, with the CORS headers, so the browser can read
   * the status). A throw goes to the framework's error handling. Preflight
   * (OPTIONS) requests never reach it. Default: every request is served.
   */
  authorize?: (req: Req, imageId: string) => boolean | Promise<boolean>
  /** `Access-Control-Allow-Origin` of every answer of the route. Default `'*'`. */
  accessControlAllowOrigin?: string
}
