export * from './shared.js'
