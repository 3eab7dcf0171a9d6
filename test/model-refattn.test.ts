// The reference-attention UNet variant (tools/tiny_emoji/refattn.py): declared in model_index.json,
// its weights shared with unet/model.onnx (external data), its output equal to the PyTorch
// definition on fixed inputs (tools/tiny_emoji/golden_refattn.json), and with fidelity weight 0
// equal to the base UNet.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { repoPath } from './helpers.js';

const bundle = repoPath('models/tiny-emoji');
const index = JSON.parse(readFileSync(join(bundle, 'model_index.json'), 'utf8'));
const variant = index.ragdiff.variants.reference_attention;
const golden = JSON.parse(readFileSync(repoPath('tools/tiny_emoji/golden_refattn.json'), 'utf8'));
const ctxLen = index.ragdiff.text_max_length + index.ragdiff.retrieval.k;

const f32 = (dims: number[], fill: (i: number) => number = () => 0) => {
  const n = dims.reduce((a, b) => a * b, 1);
  return new ort.Tensor('float32', Float32Array.from({ length: n }, (_, i) => fill(i)), dims);
};
const pattern = (scale: number, phase = 0) => (i: number) => scale * Math.sin(0.37 * i + phase);
const i64 = (values: number[]) => new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), [values.length]);

let ref: ort.InferenceSession;
let base: ort.InferenceSession;
test.before(async () => {
  ref = await ort.InferenceSession.create(join(bundle, variant.path), { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  base = await ort.InferenceSession.create(join(bundle, 'unet/model.onnx'), { executionProviders: ['cpu'], intraOpNumThreads: 1 });
});
test.after(async () => { await ref.release(); await base.release(); });

const feed = (b: number, weight: number[]) => ({
  sample: f32([b, 4, 16, 16], pattern(0.9)),
  timestep: i64([500]),
  encoder_hidden_states: f32([b, ctxLen, 128], pattern(1.0, 1.0)),
  ref_sample: f32([b, 4, 16, 16], pattern(0.8, 2.0)),
  ref_weight: new ort.Tensor('float32', Float32Array.from(weight), [weight.length]),
});

test('model_index.json declares the variant with the I/O the ONNX file has, and the UNet it shares weights with', () => {
  assert.is(variant.path, 'unet/refattn.onnx');
  assert.equal(variant.inputs.map((i: { name: string }) => i.name), [...ref.inputNames]);
  assert.equal(variant.outputs, [...ref.outputNames]);
  const sha = createHash('sha256').update(readFileSync(join(bundle, variant.weights.shared_with))).digest('hex');
  assert.is(sha, variant.weights.sha256, 'unet/model.onnx changed since the variant was exported: rerun tools/tiny_emoji/refattn.py');
  assert.ok(statSync(join(bundle, variant.path)).size < 1_000_000, 'the variant holds the graph only');
});

test('ONNX output equals the PyTorch definition on fixed inputs (weights 0.6 and 1.0)', async () => {
  const out = (await ref.run(feed(2, [0.6, 1.0]))).out_sample!;
  const g = golden.out_sample;
  assert.equal(Array.from(out.dims), g.shape);
  const d = out.data as Float32Array;
  g.first.forEach((v: number, i: number) => assert.ok(Math.abs(d[i]! - v) < 1e-3 + 1e-3 * Math.abs(v), `out[${i}] = ${d[i]}, golden ${v}`));
  let sum = 0, abs = 0;
  for (const v of d) { sum += v; abs += Math.abs(v); }
  assert.ok(Math.abs(abs - g.abs_sum) <= 1e-3 * g.abs_sum, `sum|x| ${abs} vs ${g.abs_sum}`);
  assert.ok(Math.abs(sum - g.sum) <= 1e-3 * g.abs_sum, `sum ${sum} vs ${g.sum}`);
});

test('weight 0 gives the base UNet; weight > 0 changes the output; per-item weights equal separate calls', async () => {
  const f = feed(2, [0]);
  const b = (await base.run({ sample: f.sample, timestep: f.timestep, encoder_hidden_states: f.encoder_hidden_states })).out_sample!.data as Float32Array;
  const z = (await ref.run(f)).out_sample!.data as Float32Array;
  let maxDiff = 0;
  for (let i = 0; i < b.length; i++) maxDiff = Math.max(maxDiff, Math.abs(b[i]! - z[i]!));
  assert.ok(maxDiff < 1e-4, `max |diff| ${maxDiff}`);
  const mixed = (await ref.run(feed(2, [0.6, 1.0]))).out_sample!.data as Float32Array;
  const all06 = (await ref.run(feed(2, [0.6]))).out_sample!.data as Float32Array;
  const all10 = (await ref.run(feed(2, [1.0]))).out_sample!.data as Float32Array;
  const half = b.length / 2;
  let d06 = 0, d10 = 0, moved = 0;
  for (let i = 0; i < half; i++) { d06 = Math.max(d06, Math.abs(mixed[i]! - all06[i]!)); moved += Math.abs(mixed[i]! - b[i]!); }
  for (let i = half; i < b.length; i++) d10 = Math.max(d10, Math.abs(mixed[i]! - all10[i]!));
  assert.ok(d06 < 1e-4 && d10 < 1e-4, `${d06} ${d10}`);
  assert.ok(moved / half > 1e-3, `the reference changes the output (mean |diff| ${moved / half})`);
});

test('dynamic batch: batch 1 and 3 run with per-item timesteps', async () => {
  for (const b of [1, 3]) {
    const f = { ...feed(b, new Array(b).fill(0.5)), timestep: i64(new Array(b).fill(300)) };
    const out = (await ref.run(f)).out_sample!;
    assert.equal(Array.from(out.dims), [b, 4, 16, 16]);
    assert.ok((out.data as Float32Array).every(Number.isFinite));
  }
});

test.run();
