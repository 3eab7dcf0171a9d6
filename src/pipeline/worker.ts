/**
 * Inference worker: opens one bundle's ONNX sessions (onnxruntime's `run`
 * blocks the thread it runs on, so it must not be the main one) and runs one
 * job at a time for the Pipeline that started it.
 *
 * Abort arrives through a SharedArrayBuffer flag the main thread sets
 * synchronously; the runner polls it before every model call, so a job stops
 * within one denoiser call even while this thread is busy.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ModelRunner } from './runner.js';
import type { FromWorker, ToWorker, WorkerData } from './protocol.js';
import { serializeError } from '../worker-errors.js';

const port = parentPort!;
const data = workerData as WorkerData;
const post = (m: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

let runner: ModelRunner;
try {
  runner = await ModelRunner.open(data.manifest, { ...data.options, onWarning: (message) => post({ type: 'warning', message }) });
  post({ type: 'ready', info: runner.info });
} catch (e) {
  post({ type: 'error', id: null, error: serializeError(e) });
  process.exit(0);
}

// Jobs run one after another; the Pipeline never sends a second before the first answers.
let chain: Promise<void> = Promise.resolve();
port.on('message', (msg: ToWorker) => {
  if (msg.type === 'exit') process.exit(msg.code);
  if (msg.type === 'close') {
    chain = chain.then(async () => {
      await runner.close();
      post({ type: 'closed' });
      port.close();
    });
    return;
  }
  const { id, job } = msg;
  const flag = new Int32Array(msg.abort);
  chain = chain.then(async () => {
    try {
      const result = await runner.run(job, {
        aborted: () => Atomics.load(flag, 0) !== 0,
        progress: (step, total, stage) => post({ type: 'progress', id, step, total, stage }),
        latent: (step, t, latent, history) => post({ type: 'latent', id, step, t, latent: latent.slice(), history }),
      });
      // Transfer (not copy) the PNGs when each owns its whole buffer.
      const own = result.images.filter((im) => im.byteOffset === 0 && im.byteLength === im.buffer.byteLength);
      post({ type: 'result', id, result }, own.map((im) => im.buffer as ArrayBuffer));
    } catch (e) {
      post({ type: 'error', id, error: serializeError(e) });
    }
  });
});
