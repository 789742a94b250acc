// ESM entry of pixstore-native/fastify: the same plugin as the CJS entry.
import pixstorePlugin from './fastify.js'

export { pixstorePlugin }
export default pixstorePlugin
