// The framework glue mounted in each real framework from npm, on a free
// loopback port: `start(name, options)` gives `{ base, close }`, where `base`
// is the URL under which `<route>/<id>` is served. Errors the framework's
// error handling receives are collected in `errors`.
import { createRequire } from 'node:module'
import { createServer } from 'node:http'
import express from 'express'
import Fastify from 'fastify'
import { Module } from '@nestjs/common'
import { NestFactory } from '@nestjs/core'
import { FastifyAdapter } from '@nestjs/platform-fastify'
import { pixstoreRouter } from 'pixstore-native/express'
import pixstorePlugin from 'pixstore-native/fastify'
import { PixstoreModule } from 'pixstore-native/nestjs'

const require = createRequire(import.meta.url)
const express4 = require('express4')

export const FRAMEWORKS = ['express', 'express4', 'fastify', 'nest-express', 'nest-fastify']

async function listenNode(server) {
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  return server
}

async function closeNode(server) {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
}

/**
 * Starts `name` with the glue configured by `options`. For Express, `mount`
 * puts the router under a path; for Fastify it is register's `prefix`. Nest
 * apps get `nest` as the module config (backend config included).
 */
export async function start(name, options = {}, { mount = '', nest } = {}) {
  const errors = []
  if (name === 'express' || name === 'express4') {
    const app = (name === 'express' ? express : express4)()
    app.use(mount || '/', pixstoreRouter(options))
    app.get('/other', (req, res) => res.send('other route'))
    // The app's error handler: records what the glue passed to next(error).
    app.use((error, req, res, next) => {
      errors.push(error)
      res.status(500).send(`app error handler: ${error.message}`)
    })
    const server = await listenNode(createServer(app))
    return { base: `http://127.0.0.1:${server.address().port}${mount}`, errors, close: () => closeNode(server) }
  }
  if (name === 'fastify') {
    const app = Fastify()
    app.setErrorHandler((error, request, reply) => {
      errors.push(error)
      reply.code(500).send(`app error handler: ${error.message}`)
    })
    await app.register(pixstorePlugin, { ...options, ...(mount && { prefix: mount }) })
    app.get('/other', async () => 'other route')
    await app.listen({ port: 0, host: '127.0.0.1' })
    return {
      base: `http://127.0.0.1:${app.server.address().port}${mount}`,
      errors,
      close: async () => {
        app.server.closeAllConnections()
        await app.close()
      },
    }
  }
  if (name === 'nest-express' || name === 'nest-fastify') {
    class AppModule {}
    Module({ imports: [PixstoreModule.forRoot(nest ?? options)] })(AppModule)
    const app = name === 'nest-fastify'
      ? await NestFactory.create(AppModule, new FastifyAdapter(), { logger: false })
      : await NestFactory.create(AppModule, { logger: false })
    await app.listen(0, '127.0.0.1')
    const server = app.getHttpServer()
    return {
      base: `http://127.0.0.1:${server.address().port}`,
      errors,
      app,
      close: async () => {
        server.closeAllConnections()
        await app.close()
      },
    }
  }
  throw new Error(`unknown framework ${name}`)
}
