// Times unet/model.onnx at batch 2 on the CPU provider (the per-call budget is ~15 ms on 2 cores).
// Usage: node tools/tiny_emoji/bench_unet.mjs [path/to/unet.onnx] [threads]
import * as ort from 'onnxruntime-node';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const path = process.argv[2] ?? join(root, 'models', 'tiny-emoji', 'unet', 'model.onnx');
const threads = Number(process.argv[3] ?? 2);
const s = await ort.InferenceSession.create(path, { executionProviders: ['cpu'], intraOpNumThreads: threads, graphOptimizationLevel: 'all' });
const f = (dims) => new ort.Tensor('float32', new Float32Array(dims.reduce((a, b) => a * b)).map(() => Math.random() - 0.5), dims);
const feed = { sample: f([2, 4, 16, 16]), timestep: new ort.Tensor('int64', BigInt64Array.from([500n]), [1]), encoder_hidden_states: f([2, 20, 128]) };
for (let i = 0; i < 5; i++) await s.run(feed);
const times = [];
for (let i = 0; i < 40; i++) { const t = performance.now(); await s.run(feed); times.push(performance.now() - t); }
times.sort((a, b) => a - b);
console.log(`${path}: batch 2, ${threads} threads: median ${times[20].toFixed(2)} ms, min ${times[0].toFixed(2)} ms`);
