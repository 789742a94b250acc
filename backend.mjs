// ESM entry of pixstore-native/backend: the same module instance as the CJS entry.
import backend from './backend.js'

export const {
  initPixstoreBackend,
  closePixstoreBackend,
  getImageRecord,
  getImageRecordAsync,
  saveImage,
  saveImageFromFile,
  updateImage,
  updateImageFromFile,
  deleteImage,
  imageExists,
  customEndpointHelper,
  getPixstoreStats,
  getPixstoreMetrics,
  PIXSTORE_METRICS_CONTENT_TYPE,
  setPixstoreRequestLogger,
} = backend
