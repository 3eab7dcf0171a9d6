// ONNX model I/O for `ragdiff convert` (src/convert/onnx-model.ts): a round trip keeps the graph
// and keeps external weights by reference (no byte copied), so the written model computes the same
// output; references that onnxruntime could not follow, and files that are not ONNX, are refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { linkSync, statSync, writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readOnnxModel, writeOnnxModel, externalData, shareExternalData } from '../src/convert/onnx-model.js';
import { hasCode } from '../src/errors.js';
import { repoPath, tempDir, seededRandom } from './helpers.js';

const src = repoPath('test/fixtures/sd/sd15/unet');

async function run(path: string): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(path, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  const r = seededRandom(7);
  const f = (dims: number[]) => new ort.Tensor('float32', Float32Array.from({ length: dims.reduce((a, b) => a * b) }, () => r() * 2 - 1), dims);
  const out = await s.run({ sample: f([2, 4, 8, 8]), timestep: new ort.Tensor('int64', BigInt64Array.from([500n]), [1]), encoder_hidden_states: f([2, 77, 32]) });
  await s.release();
  return out.out_sample.data as Float32Array;
}

test('round trip: same graph, external weights by reference, same output', async () => {
  const m = readOnnxModel(join(src, 'model.onnx'));
  const ext = (m.model.graph.initializer ?? []).filter((t) => externalData(t));
  assert.ok(ext.length >= 50, `external initializers: ${ext.length}`);
  const { dir, cleanup } = tempDir();
  try {
    writeOnnxModel(shareExternalData(m, dir), join(dir, 'model.onnx'));
    assert.is(statSync(join(dir, 'model.onnx_data')).ino, statSync(join(src, 'model.onnx_data')).ino);   // same inode: no copy
    assert.ok(statSync(join(dir, 'model.onnx')).size < statSync(join(src, 'model.onnx')).size + 4096);
    const back = readOnnxModel(join(dir, 'model.onnx'));
    assert.equal(back.model.graph.node.length, m.model.graph.node.length);
    assert.equal(externalData(back.model.graph.initializer![0])?.location, 'model.onnx_data');
    assert.equal(Array.from(await run(join(dir, 'model.onnx'))), Array.from(await run(join(src, 'model.onnx'))));
  } finally { cleanup(); }
});

test('a location is rewritten relative to the new file, below its directory', () => {
  const m = readOnnxModel(join(src, 'model.onnx'));
  const { dir, cleanup } = tempDir();
  try {
    linkSync(join(src, 'model.onnx_data'), join(dir, 'weights.bin'));
    for (const t of m.model.graph.initializer ?? []) for (const e of t.external_data ?? []) if (e.key === 'location') e.value = 'weights.bin';
    const moved = { model: m.model, dir };
    writeOnnxModel(moved, join(dir, 'sub', '..', 'x.onnx'));
    assert.equal(externalData(readOnnxModel(join(dir, 'x.onnx')).model.graph.initializer![0])?.location, 'weights.bin');
  } finally { cleanup(); }
});

test('external data that onnxruntime could not reach from the output is refused', () => {
  const m = readOnnxModel(join(src, 'model.onnx'));
  const { dir, cleanup } = tempDir();
  try {
    assert.throws(() => writeOnnxModel(m, join(dir, 'model.onnx')), (e: unknown) => hasCode(e, 'OUTPUT_NOT_WRITABLE') && /not below/.test(String(e)));
  } finally { cleanup(); }
});

test('shareInline: a single-file model\'s weights come back as references to its own bytes', () => {
  const path = repoPath('models/tiny-emoji/unet/model.onnx');
  const plain = readOnnxModel(path).model.graph.initializer ?? [];
  const shared = readOnnxModel(path, { shareInline: true }).model.graph.initializer ?? [];
  const big = plain.filter((t) => t.raw_data && Buffer.from(t.raw_data, 'base64').length >= 64);
  assert.ok(big.length > 50, `inline weights: ${big.length}`);
  const file = readFileSync(path);
  for (const t of big.slice(0, 20)) {
    const ext = externalData(shared.find((s) => s.name === t.name)!)!;
    assert.is(ext.location, 'model.onnx');
    const at = Number(ext.offset);
    assert.ok(file.subarray(at, at + Number(ext.length)).equals(Buffer.from(t.raw_data!, 'base64')), t.name);
  }
  assert.not.ok(shared.some((t) => t.raw_data && Buffer.from(t.raw_data, 'base64').length >= 64));
});

test('a file that is not ONNX, and a missing one, are typed errors', () => {
  const { dir, cleanup } = tempDir();
  try {
    writeFileSync(join(dir, 'bad.onnx'), Buffer.from([0xff, 0xff, 0xff, 0x0f, 1, 2, 3]));
    assert.throws(() => readOnnxModel(join(dir, 'bad.onnx')), (e: unknown) => hasCode(e, 'MODEL_FILE_INVALID'));
    assert.throws(() => readOnnxModel(join(dir, 'none.onnx')), (e: unknown) => hasCode(e, 'MODEL_FILE_MISSING'));
    assert.ok(readFileSync(join(dir, 'bad.onnx')).length === 7);
  } finally { cleanup(); }
});

test.run();
