// The framework glue's typings from CommonJS (Express and Fastify; Nest 12 is ESM-only,
// its CommonJS typings are checked with require in frameworks-nest.cts).
import express = require('express')
import Fastify = require('fastify')
import { pixstoreRouter } from 'pixstore-native/express'
import pixstorePlugin = require('pixstore-native/fastify')

const app = express()
app.use(pixstoreRouter({ authorize: (req, imageId) => req.path.length > 0 && imageId !== '' }))
const fastify = Fastify()
void fastify.register(pixstorePlugin, { authorize: (request) => request.headers.authorization === 'Bearer x' })
void fastify.register(pixstorePlugin.pixstorePlugin, { route: '/img' })
void fastify.register(pixstorePlugin.default)
const options: pixstorePlugin.PixstoreFastifyOptions = { accessControlAllowOrigin: '*' }
void options
