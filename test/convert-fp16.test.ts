// The converters on a float16 UNet (test/fixtures/convert/sd15-sdpa-fp16, made by
// tools/convert/fp16_fixture.py from the sd15-sdpa fixture): constants are emitted in the UNet's
// precision and the float32 inputs ref_weight / ip_scale / ip_tokens are cast inside, so the graphs
// load and match the PyTorch fp32 references within a stated fp16 tolerance (FP16_TOL, max abs on
// out_sample, whose values are of order 1).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { convertIpAdapter, convertReferenceAttention } from '../src/convert/convert-unet.js';
import { repoPath, tempDir } from './helpers.js';

const FP16_TOL = 5e-3;   // measured 1.9e-3 (reference attention) and 1.5e-3 (IP-Adapter); the fp16 plain UNet itself is 1.6e-3 off fp32
const { dir, cleanup } = tempDir('ragdiff-fp16-');
test.after(cleanup);
const UNETS: [string, string][] = [
  ['float16 throughout (sd15-sdpa-fp16)', repoPath('test/fixtures/convert/sd15-sdpa-fp16/model.onnx')],
  ['float16 storage and boundaries, float32 arithmetic (sd15-fp16)', repoPath('test/fixtures/sd/sd15-fp16/unet/model.onnx')],
];
const refGolden = JSON.parse(readFileSync(repoPath('test/fixtures/convert/reference_only_sd15.json'), 'utf8'));
const ipGolden = JSON.parse(readFileSync(repoPath('test/fixtures/convert/ip_adapter_sd15.json'), 'utf8'));

const sinus = (n: number, scale: number, phase: number) => Float32Array.from({ length: n }, (_, i) => scale * Math.sin(0.37 * i + phase));
const f32 = (data: Float32Array, dims: number[]) => new ort.Tensor('float32', data, dims);
/** float32 → float16 tensor (inputs only; round-half-up on the dropped bits is enough for test inputs). */
function half(data: Float32Array, dims: number[]): ort.Tensor {
  const u = new Uint16Array(data.length);
  const f = new Float32Array(1);
  const b = new Uint32Array(f.buffer);
  for (let i = 0; i < data.length; i++) {   // round-to-nearest on the 13 dropped bits; inputs are normal numbers of order 1
    f[0] = data[i];
    const x = b[0];
    const e = ((x >>> 23) & 0xff) - 112;
    u[i] = e <= 0 ? (x >>> 16) & 0x8000 : ((x >>> 16) & 0x8000) | ((e << 10) + (((x & 0x7fffff) + 0x1000) >>> 13));
  }
  return new ort.Tensor('float16', u, dims);
}
function toF32(t: ort.Tensor): Float32Array {
  const u = t.data as Uint16Array;
  return Float32Array.from(u, (h) => {
    const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    return e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  });
}
const maxAbs = (a: ArrayLike<number>, b: ArrayLike<number>) => { let m = 0; for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i])); return m; };
const base = () => ({
  sample: half(sinus(512, 0.9, 0), [2, 4, 8, 8]), timestep: new ort.Tensor('int64', BigInt64Array.from([500n]), [1]),
  encoder_hidden_states: half(sinus(2 * 77 * 32, 1, 1), [2, 77, 32]),
});
async function run(path: string, feeds: Record<string, ort.Tensor>): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(path, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  try { return toF32((await s.run(feeds)).out_sample); } finally { await s.release(); }
}

for (const [label, unet] of UNETS) {
test(`${label}: reference attention loads and equals the PyTorch fp32 reference within FP16_TOL`, async () => {
  const out = join(dir, `ref-${unet.length}`, 'refattn.onnx');
  convertReferenceAttention({ unet, out });
  const plain = await run(unet, base());
  const errs: number[] = [];
  const ref1 = sinus(256, 0.8, 2);
  for (const c of refGolden.cases) {
    const o = await run(out, { ...base(), ref_sample: half(Float32Array.from([...ref1, ...ref1]), [2, 4, 8, 8]), ref_weight: f32(Float32Array.from(c.ref_weight), [2]) });
    errs.push(maxAbs(o, c.out_sample));
  }
  console.log(`  fp16 reference attention max abs vs fp32 PyTorch: ${errs.map((e) => e.toExponential(2)).join(', ')}; fp16 plain vs fp32 plain ${maxAbs(plain, refGolden.plain_out_sample).toExponential(2)}`);
  for (const e of errs) assert.ok(e <= FP16_TOL, `max abs ${e}`);
});

test(`${label}: IP-Adapter loads and equals the PyTorch fp32 reference within FP16_TOL`, async () => {
  const conv = convertIpAdapter({ unet, config: JSON.parse(readFileSync(repoPath('test/fixtures/sd/sd15/unet/config.json'), 'utf8')), weights: repoPath('test/fixtures/convert/ip_adapter_sd15.safetensors'), outDir: join(dir, `ip-${unet.length}`) });
  const proj = await ort.InferenceSession.create(conv.imageProj);
  const c = ipGolden.cases[0];
  const embeds = sinus(3 * ipGolden.clip_dim, 1.5, 3).slice(0, ipGolden.clip_dim);
  const cond = (await proj.run({ image_embeds: f32(embeds, [1, ipGolden.clip_dim]) })).ip_tokens.data as Float32Array;
  const uncond = (await proj.run({ image_embeds: f32(new Float32Array(ipGolden.clip_dim), [1, ipGolden.clip_dim]) })).ip_tokens.data as Float32Array;
  await proj.release();
  const o = await run(conv.unet, { ...base(), ip_tokens: f32(Float32Array.from([...uncond, ...cond]), [2, ipGolden.tokens, 32]), ip_scale: f32(Float32Array.from([c.scale]), [1]) });
  const e = maxAbs(o, c.out_sample);
  console.log(`  fp16 IP-Adapter max abs vs fp32 PyTorch: ${e.toExponential(2)}`);
  assert.ok(e <= FP16_TOL, `max abs ${e}`);
});
}

test.run();
