// `ragdiff convert reference-attention` (src/convert): the converted tiny-emoji UNet reproduces the
// committed unet/refattn.onnx (made from the project's PyTorch model); the converted sd15 fixture UNet,
// in both attention export styles (baddbmm with names, SDPA anonymous), equals the community
// reference-only attention computed in PyTorch (tools/convert/reference_only.py) for three
// style_fidelity values; skipping one block shows; weights are shared, never copied; and the
// graphs it cannot or must not convert are refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { convertReferenceAttention } from '../src/convert/convert-unet.js';
import { readOnnxModel, externalData } from '../src/convert/onnx-model.js';
import { referenceAttentionGraph } from '../src/convert/reference-attention.js';
import { hasCode } from '../src/errors.js';
import { repoPath, tempDir } from './helpers.js';

const { dir, cleanup } = tempDir('ragdiff-conv-');
test.after(cleanup);

const pattern = (dims: number[], scale: number, phase: number) =>
  new ort.Tensor('float32', Float32Array.from({ length: dims.reduce((a, b) => a * b) }, (_, i) => scale * Math.sin(0.37 * i + phase)), dims);
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  assert.is(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
async function run(path: string, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(path, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  try { return (await s.run(feeds)).out_sample.data as Float32Array; } finally { await s.release(); }
}

const emoji = repoPath('models/tiny-emoji/unet');
const emojiFeeds = (w: number[]) => ({
  sample: pattern([2, 4, 16, 16], 0.9, 0), timestep: new ort.Tensor('int64', BigInt64Array.from([500n]), [1]),
  encoder_hidden_states: pattern([2, 20, 128], 1, 1), ref_sample: pattern([2, 4, 16, 16], 0.8, 2),
  ref_weight: new ort.Tensor('float32', Float32Array.from(w), [w.length]),
});

test('tiny-emoji: the converted plain UNet reproduces the committed refattn.onnx (<= 1e-5), sharing model.onnx\'s bytes', async () => {
  const out = join(dir, 'emoji', 'refattn.onnx');
  const r = convertReferenceAttention({ unet: join(emoji, 'model.onnx'), out });
  assert.is(r.selfAttentionBlocks, 7);
  assert.ok(statSync(out).size < 1_000_000, `graph only: ${statSync(out).size} bytes`);
  assert.is(statSync(join(dir, 'emoji', 'model.onnx')).ino, statSync(join(emoji, 'model.onnx')).ino);   // hard link, no copy
  assert.equal(readdirSync(join(dir, 'emoji')).sort(), ['model.onnx', 'refattn.onnx']);                  // no partial file left
  for (const w of [[0.6, 1.0], [0], [1]]) {
    const f = emojiFeeds(w);
    const e = maxAbs(await run(out, f), await run(join(emoji, 'refattn.onnx'), f));
    assert.ok(e <= 1e-5, `w=${w}: max abs ${e}`);
  }
});

const golden = JSON.parse(readFileSync(repoPath('test/fixtures/convert/reference_only_sd15.json'), 'utf8'));
const sdFeeds = (w: number[]) => ({
  sample: pattern([2, 4, 8, 8], 0.9, 0), timestep: new ort.Tensor('int64', BigInt64Array.from([500n]), [1]),
  encoder_hidden_states: pattern([2, 77, 32], 1, 1),
  ref_sample: new ort.Tensor('float32', Float32Array.from([...pattern([1, 4, 8, 8], 0.8, 2).data as Float32Array, ...pattern([1, 4, 8, 8], 0.8, 2).data as Float32Array]), [2, 4, 8, 8]),
  ref_weight: new ort.Tensor('float32', Float32Array.from(w), [w.length]),
});

for (const fam of ['sd15', 'sd15-sdpa']) {
  test(`${fam}: converted UNet = PyTorch reference-only attention (<= 1e-4) for style_fidelity 0, 0.5, 1`, async () => {
    const src = repoPath(`test/fixtures/sd/${fam}/unet/model.onnx`);
    const { sample, timestep, encoder_hidden_states } = sdFeeds([1]);
    assert.ok(maxAbs(await run(src, { sample, timestep, encoder_hidden_states }), golden.plain_out_sample) <= 1e-4, 'the PyTorch reference has the fixture\'s weights');
    const out = join(dir, fam, 'model.onnx');
    const r = convertReferenceAttention({ unet: src, out: join(dir, fam, 'refattn.onnx') });
    assert.is(r.selfAttentionBlocks, 4);
    assert.is(statSync(join(dir, fam, 'model.onnx_data')).ino, statSync(repoPath(`test/fixtures/sd/${fam}/unet/model.onnx_data`)).ino);
    assert.is(statSync(out).ino, statSync(src).ino);   // small inline weights referenced inside the source file itself
    for (const c of golden.cases) {
      const e = maxAbs(await run(join(dir, fam, 'refattn.onnx'), sdFeeds(c.ref_weight)), c.out_sample);
      assert.ok(e <= 1e-4, `style_fidelity ${c.style_fidelity}: max abs ${e}`);
    }
  });
}

test('skipping any one block is caught by the equality test', async () => {
  const src = repoPath('test/fixtures/sd/sd15/unet/model.onnx');
  for (const skip of [0, 3]) {
    const out = join(dir, 'skip', `s${skip}.onnx`);
    convertReferenceAttention({ unet: src, out, skip: [skip] });
    const e = maxAbs(await run(out, sdFeeds(golden.cases[0].ref_weight)), golden.cases[0].out_sample);
    assert.ok(e > 1e-3, `block ${skip} skipped: max abs ${e}`);
  }
});

const refused = (f: () => unknown, re: RegExp) =>
  assert.throws(f, (e: unknown) => hasCode(e, 'CONVERT_REFUSED') && re.test((e as Error).message), String(re));

test('refused: already converted, fused attention, no attention, output inside the source bundle', () => {
  const sd = readOnnxModel(repoPath('test/fixtures/sd/sd15/unet/model.onnx')).model;
  refused(() => referenceAttentionGraph(readOnnxModel(join(emoji, 'refattn.onnx')).model, 'refattn'), /already converted/);
  refused(() => referenceAttentionGraph(referenceAttentionGraph(sd, 'x').model, 'twice'), /already converted/);
  const fused = structuredClone(sd);
  fused.graph.node.push({ op_type: 'MultiHeadAttention', domain: 'com.microsoft', input: ['a', 'b', 'c'], output: ['d'], name: 'mha' });
  refused(() => referenceAttentionGraph(fused, 'fused'), /fused attention node.*MultiHeadAttention.*without --optimize/);
  const none = structuredClone(sd);
  for (const n of none.graph.node) if (n.op_type === 'Softmax') n.op_type = 'Relu';
  refused(() => referenceAttentionGraph(none, 'none'), /no recognisable self-attention \(0 Softmax/);
  const bundle = repoPath('test/fixtures/sd/sd15');
  refused(() => convertReferenceAttention({ unet: join(bundle, 'unet/model.onnx'), out: join(bundle, 'unet/refattn.onnx'), forbidInside: bundle }), /inside the source bundle/);
  assert.not.ok(existsSync(join(bundle, 'unet/refattn.onnx')));
  refused(() => convertReferenceAttention({ unet: join(emoji, 'model.onnx'), out: join(dir, 'ow', 'model.onnx') }), /overwrite the weights/);
});

test('the converted graph keeps external weights by reference', () => {
  const m = readOnnxModel(join(dir, 'sd15', 'refattn.onnx')).model;
  const ext = (m.graph.initializer ?? []).filter((t) => externalData(t));
  assert.ok(ext.length >= 50 && ext.every((t) => ['model.onnx_data', 'model.onnx'].includes(externalData(t)!.location)));
  assert.ok((m.metadata_props ?? []).some((p) => p.key === 'ragdiff.converted'));
});

for (const fam of ['sd15', 'sd21v', 'sdxl', 'lcm', 'sdturbo']) {
  test(`${fam}: with ref_weight 0 the converted UNet equals the plain one (every batched input plumbed)`, async () => {
    const src = repoPath(`test/fixtures/sd/${fam}/unet/model.onnx`);
    const out = join(dir, `w0-${fam}`, 'refattn.onnx');
    convertReferenceAttention({ unet: src, out });
    const s = await ort.InferenceSession.create(src, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
    const feeds: Record<string, ort.Tensor> = {};
    s.inputMetadata.forEach((m, k) => {
      if (!m.isTensor) return;
      const dims = m.shape.map((d) => (typeof d === 'number' ? d : d === 'sequence_length' ? 77 : d === 'steps' ? 1 : d === 'batch_size' ? 2 : 8));
      feeds[m.name] = m.type === 'int64' ? new ort.Tensor('int64', BigInt64Array.from([700n]), [1]) : pattern(dims, 0.7, k);
    });
    await s.release();
    const base = await run(src, feeds);
    const ref = pattern([2, 4, 8, 8], 0.8, 2);
    const w0 = await run(out, { ...feeds, ref_sample: ref, ref_weight: new ort.Tensor('float32', Float32Array.from([0]), [1]) });
    const w1 = await run(out, { ...feeds, ref_sample: ref, ref_weight: new ort.Tensor('float32', Float32Array.from([1, 1]), [2]) });
    assert.ok(maxAbs(w0, base) <= 1e-5, `w=0: ${maxAbs(w0, base)}`);
    assert.ok(maxAbs(w1, base) > 1e-4, `w=1 must differ: ${maxAbs(w1, base)}`);
  });
}

test.run();
