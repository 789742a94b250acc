'use strict'
// pixstore-native/express: the custom image endpoint as Express middleware,
// answering like the default endpoint, with an authorize hook.

const { routeOptions, corsHeaders, pathBelowRoute, pathnameOf, answer } = require('./lib/image-route.js')

/**
 * Express middleware serving `<route>/:id` (default `/pixstore-image`) through
 * customEndpointHelper: `app.use(pixstoreRouter({ authorize }))`. Requests to
 * other paths go on to the next handler; errors (a throwing `authorize`, a
 * helper failure in the error modes that throw) go to `next(error)`.
 */
function pixstoreRouter(options = {}) {
  const settings = routeOptions(options)
  const cors = corsHeaders(settings)
  return function pixstoreImageRoute(req, res, next) {
    // req.url is relative to where the middleware is mounted (app.use('/api', …)).
    const path = pathBelowRoute(settings.route, pathnameOf(req.url))
    if (path === null) return next()
    // Node's own calls, not res.set: Express would add a charset to text/plain.
    for (const [name, value] of Object.entries(cors)) res.setHeader(name, value)
    answer(settings, { method: req.method, path, header: (name) => req.headers[name], req, source: 'express' }).then(
      ({ status, headers, body }) => {
        res.statusCode = status
        for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
        res.end(body ?? undefined)
      },
      next,
    )
  }
}

exports.pixstoreRouter = pixstoreRouter
