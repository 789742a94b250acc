// The test page's script: the unmodified pixstore/frontend from npm, plus
// helpers the tests call through page.evaluate.
import { initPixstoreFrontend, getImage } from 'pixstore/frontend/index.js'

const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('')

window.pixstoreTest = {
  /** Configures the frontend; `customEndpoint` switches to a custom fetcher with a bearer token. */
  init(config, customEndpoint) {
    const fetcher = customEndpoint
      ? async (record) => {
          const response = await fetch(`${customEndpoint.url}/${encodeURIComponent(record.id)}`, {
            headers: {
              authorization: `Bearer ${customEndpoint.token}`,
              'x-pixstore-proof': record.statelessProof,
              'x-pixstore-token': String(record.token),
            },
          })
          if (!response.ok) throw new Error(`custom endpoint answered ${response.status}`)
          return new Uint8Array(await response.arrayBuffer())
        }
      : undefined
    initPixstoreFrontend({ errorHandlingMode: 'throw', ...config }, fetcher)
  },
  /** getImage, then the SHA-256 and MIME type of the decrypted image, or the error. */
  async imageDigest(record) {
    try {
      const blob = await getImage(record)
      return { hash: hex(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer())), type: blob.type }
    } catch (error) {
      return { error: `${error.name}: ${error.message}` }
    }
  },
}
