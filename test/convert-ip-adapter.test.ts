// `ragdiff convert ip-adapter` (src/convert/ip-adapter.ts): on the sd15 fixture UNet (both attention
// export styles) with a random adapter file that has the published key names at the fixture's widths
// (written by tools/convert/ip_adapter_ref.py, an independent writer), the converted UNet + image
// projection equal IP-Adapter's attention computed in PyTorch (<= 1e-4) for 1 and 3 references and
// several scales, the unconditional row fed the projection of a zero embedding; feeding zeros tokens
// instead, or skipping the mid block's weights, is caught; mismatched adapters are named.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { convertIpAdapter } from '../src/convert/convert-unet.js';
import { crossAttentionLayout, processorIndex } from '../src/convert/ip-adapter.js';
import { encodeSafetensors, openSafetensors } from '../src/convert/safetensors.js';
import { hasCode } from '../src/errors.js';
import { repoPath, tempDir } from './helpers.js';

const { dir, cleanup } = tempDir('ragdiff-ip-');
test.after(cleanup);
const golden = JSON.parse(readFileSync(repoPath('test/fixtures/convert/ip_adapter_sd15.json'), 'utf8'));
const weights = repoPath('test/fixtures/convert/ip_adapter_sd15.safetensors');
const config = JSON.parse(readFileSync(repoPath('test/fixtures/sd/sd15/unet/config.json'), 'utf8'));
const sdxlConfig = JSON.parse(readFileSync(repoPath('test/fixtures/sd/sdxl/unet/config.json'), 'utf8'));

const pattern = (dims: number[], scale: number, phase: number) =>
  new ort.Tensor('float32', Float32Array.from({ length: dims.reduce((a, b) => a * b) }, (_, i) => scale * Math.sin(0.37 * i + phase)), dims);
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m; };
const session = (p: string) => ort.InferenceSession.create(p, { executionProviders: ['cpu'], intraOpNumThreads: 1 });

async function tokensFor(projPath: string, refs: number, zero: boolean): Promise<Float32Array> {
  const s = await session(projPath);
  const e = pattern([3, golden.clip_dim], 1.5, 3);
  const embeds = new ort.Tensor('float32', zero ? new Float32Array(refs * golden.clip_dim) : (e.data as Float32Array).slice(0, refs * golden.clip_dim), [refs, golden.clip_dim]);
  const out = (await s.run({ image_embeds: embeds })).ip_tokens.data as Float32Array;   // [refs, T, C] = one row of refs*T tokens
  await s.release();
  return out;
}

async function runCase(conv: { unet: string; imageProj: string }, c: { references: number; scale: number }, zeroUncond = true): Promise<Float32Array> {
  const uncond = zeroUncond ? await tokensFor(conv.imageProj, c.references, true) : new Float32Array(c.references * golden.tokens * 32);
  const cond = await tokensFor(conv.imageProj, c.references, false);
  const s = await session(conv.unet);
  const out = await s.run({
    sample: pattern([2, 4, 8, 8], 0.9, 0), timestep: new ort.Tensor('int64', BigInt64Array.from([500n]), [1]),
    encoder_hidden_states: pattern([2, 77, 32], 1, 1),
    ip_tokens: new ort.Tensor('float32', Float32Array.from([...uncond, ...cond]), [2, c.references * golden.tokens, 32]),
    ip_scale: new ort.Tensor('float32', Float32Array.from([c.scale]), [1]),
  });
  await s.release();
  return out.out_sample.data as Float32Array;
}

test('the adapter order: diffusers numbers down, up, then mid; the graph runs down, mid, up', () => {
  const l = crossAttentionLayout(config);
  assert.equal(l, { down: 1, mid: 1, up: 2 });
  assert.equal([0, 1, 2, 3].map((g) => processorIndex(g, l)), [0, 3, 1, 2]);
  assert.equal(crossAttentionLayout(sdxlConfig), { down: 2, mid: 2, up: 4 });
});

for (const fam of ['sd15', 'sd15-sdpa']) {
  test(`${fam}: converted UNet + image_proj = PyTorch IP-Adapter attention (<= 1e-4), 1 and 3 references`, async () => {
    const conv = convertIpAdapter({ unet: repoPath(`test/fixtures/sd/${fam}/unet/model.onnx`), config, weights, outDir: join(dir, fam) });
    assert.is(conv.crossBlocks, 4);
    assert.is(statSync(join(dir, fam, 'ip_adapter_sd15.safetensors')).ino, statSync(weights).ino);   // shared, not copied
    assert.ok(statSync(conv.unet).size < statSync(repoPath(`test/fixtures/sd/${fam}/unet/model.onnx`)).size + 100_000, `graph only: ${statSync(conv.unet).size}`);
    for (const c of golden.cases) {
      const e = maxAbs(await runCase(conv, c), c.out_sample);
      assert.ok(e <= 1e-4, `refs ${c.references} scale ${c.scale}: max abs ${e}`);
    }
  });
}

test('the unconditional branch fed zeros instead of the zero-embedding projection is caught', async () => {
  const conv = { unet: join(dir, 'sd15', 'ip_adapter.onnx'), imageProj: join(dir, 'sd15', 'image_proj.onnx') };
  const e = maxAbs(await runCase(conv, golden.cases[0], false), golden.cases[0].out_sample);
  assert.ok(e > 1e-3, `zeros tokens: ${e}`);
});

test('weights of one block swapped (another block order) are caught', async () => {
  const f = openSafetensors(weights);
  const t: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const k of f.tensors.keys()) { const r = f.readFloat32(k); t[k] = { shape: [...r.shape], data: r.data }; }
  f.close();
  [t['ip_adapter.3.to_k_ip.weight'], t['ip_adapter.5.to_k_ip.weight']] = [t['ip_adapter.5.to_k_ip.weight'], t['ip_adapter.3.to_k_ip.weight']];
  const p = join(dir, 'swapped.safetensors');
  writeFileSync(p, encodeSafetensors(t));
  const conv = convertIpAdapter({ unet: repoPath('test/fixtures/sd/sd15/unet/model.onnx'), config, weights: p, outDir: join(dir, 'swapped') });
  const e = maxAbs(await runCase(conv, golden.cases[0]), golden.cases[0].out_sample);
  assert.ok(e > 1e-3, `swapped: ${e}`);
});

const mismatch = (f: () => unknown, re: RegExp) =>
  assert.throws(f, (e: unknown) => hasCode(e, 'WEIGHTS_MISMATCH') && re.test((e as Error).message), String(re));

test('adapters for another width, block count or family are refused, naming the first mismatch', () => {
  const f = openSafetensors(weights);
  const base: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const k of f.tensors.keys()) { const r = f.readFloat32(k); base[k] = { shape: [...r.shape], data: r.data }; }
  f.close();
  const write = (name: string, t: typeof base) => { const p = join(dir, name); writeFileSync(p, encodeSafetensors(t)); return p; };
  const unet = repoPath('test/fixtures/sd/sd15/unet/model.onnx');
  const wide = { ...base, 'ip_adapter.3.to_k_ip.weight': { shape: [8, 48], data: new Float32Array(8 * 48) } };
  mismatch(() => convertIpAdapter({ unet, config, weights: write('wide.safetensors', wide), outDir: join(dir, 'm1') }), /ip_adapter\.3\.to_k_ip\.weight is \[8,48\] but cross-attention block 2 \(graph order\) needs \[8, 32\]/);
  const fewer = { ...base };
  delete fewer['ip_adapter.7.to_k_ip.weight'];
  delete fewer['ip_adapter.7.to_v_ip.weight'];
  mismatch(() => convertIpAdapter({ unet, config, weights: write('fewer.safetensors', fewer), outDir: join(dir, 'm2') }), /3 cross-attention blocks .* but the UNet has 4/);
  const xl = { ...base, 'image_proj.norm.weight': { shape: [80], data: new Float32Array(80) } };
  mismatch(() => convertIpAdapter({ unet, config, weights: write('xl.safetensors', xl), outDir: join(dir, 'm3') }), /cross-attention width is 32 \(an SDXL adapter on an SD 1\.5 UNet/);
  assert.throws(() => convertIpAdapter({ unet, config, weights: join(dir, 'ip-adapter_sd15.bin'), outDir: join(dir, 'm4') }), (e: unknown) => hasCode(e, 'WEIGHTS_PICKLED'));
  for (const converted of [join(dir, 'sd15', 'ip_adapter.onnx'), repoPath('models/tiny-emoji/unet/refattn.onnx')]) {
    assert.throws(() => convertIpAdapter({ unet: converted, config, weights, outDir: join(dir, 'm5') }), (e: unknown) => hasCode(e, 'CONVERT_REFUSED') && /already converted/.test((e as Error).message), converted);
  }
  for (const m of ['m1', 'm2', 'm3', 'm4', 'm5']) assert.not.ok(existsSync(join(dir, m)), `${m}: nothing written before the refusal`);
});

test.run();
