import type { DynamicModule, ModuleMetadata } from '@nestjs/common'
import type { PixstoreBackendConfig } from './types.js'
import type { PixstoreRouteOptions } from './lib/image-route.js'

/**
 * Configuration of `PixstoreModule`. `authorize` receives the platform's request
 * (an Express `Request` or a `FastifyRequest`).
 */
export interface PixstoreModuleConfig<Req = any> extends Omit<PixstoreRouteOptions<Req>, 'route'> {
  /**
   * Passed to `initPixstoreBackend` when the application initializes. With the
   * image route on, `defaultEndpointEnabled` is `false` (setting it `true` is refused).
   */
  backend?: Partial<PixstoreBackendConfig>
  /**
   * `false`: no image route (e.g. to keep the default endpoint); the module then
   * only inits and closes the backend. Default `'/pixstore-image'`.
   */
  route?: string | false
  /** Default: `backend.accessControlAllowOrigin`, else `'*'`. */
  accessControlAllowOrigin?: string
}

/** `forRootAsync` options: the configuration from a factory with injected dependencies. */
export interface PixstoreModuleAsyncOptions<Req = any> extends Pick<ModuleMetadata, 'imports'> {
  inject?: any[]
  useFactory: (...deps: any[]) => PixstoreModuleConfig<Req> | Promise<PixstoreModuleConfig<Req>>
}

/** The injection token of the module's configuration. */
export declare const PIXSTORE_CONFIG: 'PIXSTORE_CONFIG'

/**
 * A global module: it inits the backend when the application initializes (before
 * the other modules' `onModuleInit`), mounts the image route on the HTTP platform
 * (Express or Fastify; it answers like the default endpoint, after the
 * application's own routes; Nest guards, interceptors and the global prefix do
 * not apply to it: use `authorize` and `route`), and closes the backend on
 * `app.close()` (after the HTTP server has stopped).
 */
export declare class PixstoreModule {
  static forRoot<Req = any>(config?: PixstoreModuleConfig<Req>): DynamicModule
  static forRootAsync<Req = any>(options: PixstoreModuleAsyncOptions<Req>): DynamicModule
}
