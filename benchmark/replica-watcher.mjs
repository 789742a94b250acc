// A second instance for the replica-lag measure (a worker thread has a backend
// of its own): for each { id, token } it is sent, answers once its replica
// (getImageRecord, synchronous) shows that token.
import { parentPort, workerData } from 'node:worker_threads'
import { openLibrary } from './libraries.mjs'

const lib = await openLibrary('pixstore-native-remote', workerData.dir)
parentPort.on('message', ({ id, token }) => {
  const poll = () => {
    if ((lib.getImageRecord(id)?.token ?? 0) >= token) parentPort.postMessage('seen')
    else setImmediate(poll)
  }
  poll()
})
parentPort.postMessage('ready')
