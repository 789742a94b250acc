// The framework glue's typings from an ES module: Express, Fastify and NestJS.
import express from 'express'
import Fastify from 'fastify'
import { Module } from '@nestjs/common'
import { pixstoreRouter, type PixstoreExpressOptions } from 'pixstore-native/express'
import pixstorePlugin, { pixstorePlugin as namedPlugin, type PixstoreFastifyOptions } from 'pixstore-native/fastify'
import { PixstoreModule, PIXSTORE_CONFIG, type PixstoreModuleConfig } from 'pixstore-native/nestjs'

const app = express()
const expressOptions: PixstoreExpressOptions = {
  route: '/images',
  accessControlAllowOrigin: 'https://app.example',
  authorize: (req, imageId) => req.get('authorization') === `Bearer ${imageId}`,
}
app.use(pixstoreRouter(expressOptions))
app.use('/api', pixstoreRouter({ authorize: async (req) => req.headers.authorization !== undefined }))

const fastify = Fastify()
const fastifyOptions: PixstoreFastifyOptions = { authorize: async (request, imageId) => request.headers.authorization === imageId }
void fastify.register(pixstorePlugin, fastifyOptions)
void fastify.register(namedPlugin, { prefix: '/api', route: '/img' })

const nestConfig: PixstoreModuleConfig = { backend: { databasePath: ':memory:' }, route: false }
class AppModule {}
Module({ imports: [PixstoreModule.forRoot(nestConfig), PixstoreModule.forRootAsync({ inject: [], useFactory: async () => ({ route: '/img' }) })] })(AppModule)
const token: 'PIXSTORE_CONFIG' = PIXSTORE_CONFIG
void token

// @ts-expect-error authorize returns a boolean, not a string
pixstoreRouter({ authorize: () => 'yes' })
// @ts-expect-error route is a string
void fastify.register(pixstorePlugin, { route: 42 })
