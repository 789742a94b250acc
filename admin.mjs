// ESM entry of pixstore-native/admin: the same module instance as the CJS entry.
import admin from './admin.js'

export const { verifyStore, storeStats, exportStore, importFolder, migrateStore, rekeyStore } = admin
