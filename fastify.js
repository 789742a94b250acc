'use strict'
// pixstore-native/fastify: the custom image endpoint as a Fastify plugin,
// answering like the default endpoint, with an authorize hook.

const { routeOptions, corsHeaders, pathBelowRoute, pathnameOf, answer } = require('./lib/image-route.js')

// Every method: the route answers like the default endpoint (OPTIONS 204, GET
// and HEAD the image, any other method 404) instead of Fastify's own 404.
const METHODS = ['GET', 'HEAD', 'OPTIONS', 'POST', 'PUT', 'PATCH', 'DELETE']

/**
 * Registers `<prefix><route>` and `<prefix><route>/*` (route default
 * `/pixstore-image`): `fastify.register(pixstorePlugin, { authorize })`.
 * The plugin keeps Fastify's encapsulation, so register's `prefix` applies.
 * Errors (a throwing `authorize`, a helper failure in the error modes that
 * throw) go to Fastify's error handler, with the CORS headers already set.
 */
function pixstorePlugin(fastify, options, done) {
  let settings
  try {
    settings = routeOptions(options)
  } catch (error) {
    return done(error)
  }
  const cors = corsHeaders(settings)
  const fullRoute = fastify.prefix + settings.route
  async function handler(request, reply) {
    reply.headers(cors)
    // The raw target, still percent-encoded: the id is decoded here as the default endpoint does.
    const path = pathBelowRoute(fullRoute, pathnameOf(request.raw.url))
    // null: a path Fastify matched but spelled differently (case, encoded letters), a 404.
    const { status, headers, body } = await answer(settings, {
      method: request.method,
      path,
      header: (name) => request.headers[name],
      req: request,
      source: 'fastify',
    })
    reply.code(status).headers(headers)
    return reply.send(body ?? undefined)
  }
  for (const url of [settings.route, `${settings.route}/*`]) {
    fastify.route({ method: METHODS, url, handler, exposeHeadRoute: false })
  }
  done()
}

// The conventions of fastify-plugin, without depending on it: a name and the
// Fastify versions (checked by Fastify at register), encapsulation kept.
pixstorePlugin[Symbol.for('fastify.display-name')] = 'pixstore-native'
pixstorePlugin[Symbol.for('plugin-meta')] = { name: 'pixstore-native', fastify: '5.x' }

module.exports = pixstorePlugin
module.exports.default = pixstorePlugin
module.exports.pixstorePlugin = pixstorePlugin
