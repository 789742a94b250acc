export * from './admin.js'
