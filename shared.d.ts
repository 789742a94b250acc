/** An expected failure of a Pixstore call: bad input, not found, not initialized, … */
export declare class PixstoreError extends Error {
  constructor(message: string, options?: ErrorOptions)
  name: 'PixstoreError'
}

/** Receives every error of a Pixstore call in `'custom'` mode. */
export type CustomErrorHandler = (error: unknown) => void

/** Sets (or with `undefined` or `null` removes) the handler used in `'custom'` error handling mode. */
export declare function setCustomErrorHandler(handler: CustomErrorHandler | undefined | null): void

/** The last PixstoreError handled in `'hybrid'` mode, or null. */
export declare function getLastPixstoreError(): PixstoreError | null
