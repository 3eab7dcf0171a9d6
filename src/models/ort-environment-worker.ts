/**
 * Creates onnxruntime's process-wide environment on a thread whose stack was
 * sized for this process's command line (see worker-options.ts), then exits.
 * A one-byte buffer is not a model: the session fails to load, but only after
 * the environment exists, which is all this thread is for.
 */
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';

try {
  await ort.InferenceSession.create(new Uint8Array([0]));
} catch {
  // expected (not a model)
}
parentPort?.postMessage('ready');
