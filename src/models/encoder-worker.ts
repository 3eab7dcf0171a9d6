/**
 * Encoder worker: opens one bundle's text and image encoder sessions
 * ({@link ClipSessions}) and answers embedding requests one at a time, so
 * onnxruntime's blocking `run` happens here and not on the caller's thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { serializeError } from '../worker-errors.js';
import { ClipSessions } from './clip-sessions.js';
import type { RgbImage } from './encoders.js';
import type { EncoderWorkerData, FromEncoderWorker, ToEncoderWorker } from './encoder-protocol.js';

const port = parentPort!;
const data = workerData as EncoderWorkerData;
const post = (m: FromEncoderWorker, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);

let clip: ClipSessions;
try {
  clip = await ClipSessions.open(data.dir, { ...data.options, onWarning: (message) => post({ type: 'warning', message }) });
  post({ type: 'ready', info: clip.info });
} catch (e) {
  post({ type: 'error', id: null, error: serializeError(e) });
  process.exit(0);
}

/** Rows of one width packed into one buffer that can be transferred. */
function pack(rows: readonly Float32Array[], dim: number): Float32Array {
  const out = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => out.set(r, i * dim));
  return out;
}

/** Views of the packed images (no copy); a size that does not fit is reported by checkImage as a length mismatch. */
function unpack(rgb: Uint8Array, sizes: Uint32Array): RgbImage[] {
  const images: RgbImage[] = [];
  let at = 0;
  for (let i = 0; i < sizes.length / 2; i++) {
    const width = sizes[2 * i]!, height = sizes[2 * i + 1]!;
    const n = width * height * 3;
    images.push({ rgb: rgb.subarray(Math.min(at, rgb.length), Math.min(at + n, rgb.length)), width, height });
    at += n;
  }
  return images;
}

// Requests run one after another; the caller sends a worker one request at a time anyway.
let chain: Promise<void> = Promise.resolve();
port.on('message', (msg: ToEncoderWorker) => {
  if (msg.type === 'exit') process.exit(msg.code);
  if (msg.type === 'close') {
    chain = chain.then(async () => {
      await clip.close();
      post({ type: 'closed' });
      port.close();
    });
    return;
  }
  const id = msg.id;
  chain = chain.then(async () => {
    try {
      const dim = clip.info.dim;
      if (msg.type === 'images') {
        const embeds = pack(await clip.embedImages(unpack(msg.rgb, msg.sizes), msg.first), dim);
        post({ type: 'result', id, embeds }, [embeds.buffer as ArrayBuffer]);
      } else {
        const r = await clip.encodeText(msg.texts, msg.hiddenStates);
        const embeds = pack(r.embeds, dim);
        const transfer = [embeds.buffer as ArrayBuffer];
        if (r.hiddenStates) transfer.push(r.hiddenStates.buffer as ArrayBuffer);
        post({ type: 'result', id, embeds, hiddenStates: r.hiddenStates }, transfer);
      }
    } catch (e) {
      post({ type: 'error', id, error: serializeError(e) });
    }
  });
});
