// The SD-family fixtures (test/fixtures/sd, built by tools/sd_fixtures/build.py) are
// what their PyTorch oracles compute: each ONNX file, run by onnxruntime, reproduces
// the PyTorch module on the stored probes and on the oracle's own intermediate
// tensors. This keeps the fixtures honest without torch in CI; whether ragdiff's
// pipeline matches the oracle end to end is the pipeline tests' business.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { readFileSync } from 'node:fs';
import { createScheduler, samplerForClass } from '../src/scheduler/index.js';
import { Tokenizer } from '@huggingface/tokenizers';
import sharp from 'sharp';
import { repoPath } from './helpers.js';
import { clipTokenizerJson } from './fixtures/sd/clip-tokenizer-json.js';
import { SD_FAMILIES, bundleDir, maxAbsDiff, oracleTensor, readOracle, type Oracle, type SdFamily } from './fixtures/sd/oracle.js';
import { floatsToHalf, halfToFloats } from '../src/pipeline/tensor-io.js';

const TOL = 1e-4;

async function open(family: SdFamily, part: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(join(bundleDir(family), part, 'model.onnx'));
}

/** A float tensor in the bundle's boundary type (float16 bundles take and give float16). */
function floats(o: Oracle, data: Float32Array, dims: readonly number[]): ort.Tensor {
  if (o.dtype !== 'float16') return new ort.Tensor('float32', data, dims);
  return new ort.Tensor('float16', floatsToHalf(data, new Uint16Array(data.length)), dims);
}

function f32(family: SdFamily, name: string, o = readOracle(family)): ort.Tensor {
  const t = oracleTensor(family, o, name);
  return floats(o, t.data, t.shape);
}

function read(t: ort.Tensor): Float32Array {
  if (t.type === 'float16') {
    const d = t.data as unknown as ArrayLike<number> & { buffer: ArrayBuffer; byteOffset: number; length: number };
    return halfToFloats(new Uint16Array(d.buffer, d.byteOffset, d.length), new Float32Array(d.length));
  }
  return t.data as Float32Array;
}

/** 2^(exponent - 10): one fp16 ulp at v. */
function ulp16(v: number): number {
  const a = Math.abs(v);
  return a < 2 ** -14 ? 2 ** -24 : 2 ** (Math.floor(Math.log2(a)) - 10);
}

/** The largest error over the tolerance (<= 0: within): 1e-4 absolute in fp32, 2 fp16 ulp + 1e-4 in fp16 bundles. */
function overTolerance(o: Oracle, got: ArrayLike<number>, want: ArrayLike<number>): number {
  if (got.length !== want.length) throw new Error(`length ${got.length} vs ${want.length}`);
  let worst = -Infinity;
  for (let i = 0; i < got.length; i++) {
    const allowed = o.dtype === 'float16' ? 2 * ulp16(want[i]!) + TOL : TOL;
    worst = Math.max(worst, Math.abs(got[i]! - want[i]!) - allowed);
  }
  return worst;
}

function ids(rows: number[][]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(rows.flat(), (v) => BigInt(v)), [rows.length, rows[0]!.length]);
}

function slice(data: Float32Array, row: number, rows: number): Float32Array {
  const n = data.length / rows;
  return data.subarray(row * n, (row + 1) * n);
}

for (const family of SD_FAMILIES) {
  test(`${family}: optimum layout, UNet weights in external data`, () => {
    const dir = bundleDir(family);
    for (const f of ['model_index.json', 'scheduler/scheduler_config.json', 'unet/config.json', 'unet/model.onnx',
      'unet/model.onnx_data', 'vae_decoder/model.onnx', 'vae_decoder/config.json', 'vae_encoder/model.onnx',
      'text_encoder/model.onnx', 'text_encoder/config.json', 'tokenizer/vocab.json', 'tokenizer/merges.txt',
      'tokenizer/tokenizer_config.json', 'tokenizer/special_tokens_map.json', 'oracle.json']) {
      assert.ok(existsSync(join(dir, f)), `${family}: ${f} missing`);
    }
    // The weights live in the data file, not in the graph (optimum's layout for the UNet).
    assert.ok(statSync(join(dir, 'unet/model.onnx_data')).size > 50_000, `${family}: unet/model.onnx_data is nearly empty`);
    if (family === 'sdxl') assert.ok(existsSync(join(dir, 'text_encoder_2/model.onnx_data')), 'sdxl: text_encoder_2 keeps its weights in external data');
  });

  test(`${family}: every config has the published file's keys (tiny sizes only); tokenizer configs are the published ones`, () => {
    const o = readOracle(family);
    const dir = bundleDir(family);
    const real = repoPath(o.published_configs);
    const keys = (p: string) => Object.keys(JSON.parse(readFileSync(p, 'utf8')) as object).sort();
    const pairs: [string, string][] = [['model_index.json', 'model_index.json'], ['scheduler/scheduler_config.json', 'scheduler/scheduler_config.json'],
      ['unet/config.json', 'unet/config.json'], ['vae_decoder/config.json', 'vae/config.json'], ['vae_encoder/config.json', 'vae/config.json']];
    for (const te of ['text_encoder', 'text_encoder_2']) if (existsSync(join(dir, te))) pairs.push([`${te}/config.json`, `${te}/config.json`]);
    for (const [mine, theirs] of pairs) assert.equal(keys(join(dir, mine)), keys(join(real, theirs)), `${family}: ${mine}`);
    for (const tok of ['tokenizer', 'tokenizer_2']) {
      if (!existsSync(join(dir, tok))) continue;
      for (const f of ['tokenizer_config.json', 'special_tokens_map.json']) {
        assert.is(readFileSync(join(dir, tok, f), 'utf8'), readFileSync(join(real, tok, f), 'utf8'), `${family}: ${tok}/${f}`);
      }
    }
  });

  test(`${family}: the UNet's ONNX equals the PyTorch module on the probe`, async () => {
    const o = readOracle(family);
    const s = await open(family, 'unet');
    try {
      const t = oracleTensor(family, o, 'probe_unet_timestep').data;
      const meta = s.inputMetadata.find((m) => m.name === 'timestep') as { type?: string } | undefined;
      const timestep = meta?.type === 'float32'
        ? new ort.Tensor('float32', Float32Array.from(t), [t.length])
        : new ort.Tensor('int64', BigInt64Array.from(t, (v) => BigInt(v)), [t.length]);
      const feeds: Record<string, ort.Tensor> = {
        sample: f32(family, 'probe_unet_sample', o), timestep, encoder_hidden_states: f32(family, 'probe_unet_ehs', o),
      };
      for (const extra of ['text_embeds', 'time_ids', 'timestep_cond']) {
        if (o.tensors[`probe_unet_${extra}`]) feeds[extra] = f32(family, `probe_unet_${extra}`, o);
      }
      assert.equal([...s.inputNames].sort(), Object.keys(feeds).sort());
      const out = (await s.run(feeds)).out_sample!;
      const over = overTolerance(o, read(out), oracleTensor(family, o, 'probe_unet_out').data);
      assert.ok(over <= 0, `${family}: UNet differs from PyTorch by ${over} over the tolerance`);
    } finally {
      await s.release();
    }
  });

  test(`${family}: dynamic axes as optimum's — batch 3, non-square latents, 30 tokens, one timestep per row`, async () => {
    const o = readOracle(family);
    const dir = bundleDir(family);
    const cad = (JSON.parse(readFileSync(join(dir, 'unet/config.json'), 'utf8')) as { cross_attention_dim: number }).cross_attention_dim;
    const B = 3, H = 8, W = 12, L = 30;
    const unet = await open(family, 'unet');
    const te = await open(family, 'text_encoder');
    const dec = await open(family, 'vae_decoder');
    try {
      const feeds: Record<string, ort.Tensor> = {
        sample: floats(o, new Float32Array(B * 4 * H * W).fill(0.1), [B, 4, H, W]),
        timestep: new ort.Tensor('int64', BigInt64Array.of(5n, 500n, 999n), [B]),
        encoder_hidden_states: floats(o, new Float32Array(B * L * cad).fill(0.2), [B, L, cad]),
      };
      for (const extra of ['text_embeds', 'time_ids', 'timestep_cond']) {
        const e = o.tensors[`probe_unet_${extra}`];
        if (e) feeds[extra] = floats(o, new Float32Array(B * e.shape[1]!).fill(extra === 'time_ids' ? 64 : 0.1), [B, e.shape[1]!]);
      }
      const out = (await unet.run(feeds)).out_sample!;
      assert.equal(out.dims, [B, 4, H, W]);
      assert.ok(read(out).every(Number.isFinite));
      const ids = new ort.Tensor('int64', BigInt64Array.from({ length: B * L }, (_, i) => BigInt(i % 600)), [B, L]);
      assert.equal((await te.run({ input_ids: ids })).last_hidden_state!.dims.slice(0, 2), [B, L]);
      const img = (await dec.run({ latent_sample: floats(o, new Float32Array(2 * 4 * H * W).fill(0.1), [2, 4, H, W]) })).sample!;
      assert.equal(img.dims, [2, 3, 8 * H, 8 * W]);
    } finally {
      await Promise.all([unet.release(), te.release(), dec.release()]);
    }
  });

  test(`${family}: text encoder(s) give the oracle's encoder_hidden_states (and pooled text_embeds)`, async () => {
    const o = readOracle(family);
    const ehs = oracleTensor(family, o, 'encoder_hidden_states');
    const rows = ehs.shape[0]!;
    const sdxl = o.pipeline === 'StableDiffusionXLPipeline';
    const encoders = sdxl ? ['text_encoder', 'text_encoder_2'] : ['text_encoder'];
    // Row order as diffusers batches CFG: [uncond, cond]; SDXL's empty negative is all zeros.
    const cond = (sdxl ? o.token_ids.cond : [o.token_ids.cond]) as number[][];
    const uncond = o.token_ids.uncond ? ((sdxl ? o.token_ids.uncond : [o.token_ids.uncond]) as number[][]) : null;
    const width = ehs.shape[2]!;
    let offset = 0;
    for (const [k, part] of encoders.entries()) {
      const s = await open(family, part);
      try {
        const out = await s.run({ input_ids: ids([cond[k]!]) });
        const states = sdxl ? out[`hidden_states.${(s.outputNames.length - 3) - 1}`]! : out.last_hidden_state!;
        const w = states.dims[2]!;
        const L = states.dims[1]!;
        const cut = (all: Float32Array) => {
          const r = new Float32Array(L * w);
          for (let i = 0; i < L; i++) for (let j = 0; j < w; j++) r[i * w + j] = all[i * width + offset + j]!;
          return r;
        };
        const diff = overTolerance(o, read(states), cut(slice(ehs.data, rows - 1, rows)));
        assert.ok(diff <= 0, `${family}/${part}: cond states differ by ${diff} over the tolerance`);
        if (uncond && o.cfg) {
          const u = (await s.run({ input_ids: ids([uncond[k]!]) }));
          const us = read(sdxl ? u[`hidden_states.${(s.outputNames.length - 3) - 1}`]! : u.last_hidden_state!);
          const du = overTolerance(o, us, cut(slice(ehs.data, 0, rows)));
          assert.ok(du <= 0, `${family}/${part}: uncond states differ by ${du} over the tolerance`);
        }
        if (sdxl && part === 'text_encoder_2') {
          const pooled = oracleTensor(family, o, 'text_embeds');
          const d = overTolerance(o, read(out.text_embeds!), slice(pooled.data, rows - 1, rows));
          assert.ok(d <= 0, `${family}: pooled text_embeds differ by ${d} over the tolerance`);
        }
        offset += w;
      } finally {
        await s.release();
      }
    }
    assert.is(offset, width, `${family}: encoder widths add up to the UNet's cross-attention width`);
  });

  test(`${family}: VAE decoder turns the oracle's final latents into its image; encoder matches its probe`, async () => {
    const o = readOracle(family);
    const dec = await open(family, 'vae_decoder');
    const enc = await open(family, 'vae_encoder');
    try {
      const z = oracleTensor(family, o, 'final_latents');
      const scaled = floats(o, z.data.map((v) => v / o.vae_scaling_factor), z.shape);
      const img = (await dec.run({ latent_sample: scaled })).sample!;
      assert.equal(img.dims, [1, 3, o.height, o.width]);
      const d = overTolerance(o, read(img), oracleTensor(family, o, 'image').data);
      assert.ok(d <= 0, `${family}: decoded image differs by ${d} over the tolerance`);
      const lat = (await enc.run({ sample: f32(family, 'probe_vae_image', o) })).latent_sample!;
      const e = overTolerance(o, read(lat), oracleTensor(family, o, 'probe_vae_latent_mean').data);
      assert.ok(e <= 0, `${family}: VAE encoder differs by ${e} over the tolerance`);
    } finally {
      await dec.release();
      await enc.release();
    }
  });

  test(`${family}: the oracle would catch the wiring errors it lists`, () => {
    const o = readOracle(family);
    for (const [mutation, diff] of Object.entries(o.sensitivity_max_abs_final_latents)) {
      assert.ok(diff > 10 * o.tolerance.final_latents_max_abs, `${family}: ${mutation} moves the final latents by only ${diff}`);
    }
  });
}

// ragdiff's own scheduler driving the ONNX UNet, fed the oracle's conditioning and noise,
// lands on the oracle's final latents: the oracle's scheduler, guidance and noise conventions
// agree with ragdiff's (the text side is checked above; the whole Pipeline is the runner's tests').
for (const family of SD_FAMILIES) {
  test(`${family}: ragdiff's scheduler + the ONNX UNet reproduce the oracle's denoising loop`, async () => {
    const o = readOracle(family);
    const dir = bundleDir(family);
    const config = JSON.parse(readFileSync(join(dir, 'scheduler/scheduler_config.json'), 'utf8')) as Record<string, unknown>;
    const sampler = samplerForClass(config._class_name);
    assert.ok(sampler, `${family}: no sampler for ${String(config._class_name)}`);
    const sch = createScheduler(config, { sampler: sampler! });
    sch.setTimesteps(o.steps);
    assert.equal([...sch.timesteps], o.timesteps, `${family}: timesteps`);
    assert.ok(Math.abs(sch.initNoiseSigma - o.init_noise_sigma) < 1e-5, `${family}: init_noise_sigma`);
    const noise = oracleTensor(family, o, 'noise').data;
    const n = o.latent_shape.reduce((a, b) => a * b, 1);
    const latent = noise.slice(0, n).map((v) => v * sch.initNoiseSigma);
    const rows = o.cfg ? 2 : 1;
    const [, C, h, w] = o.latent_shape as [number, number, number, number];
    const feeds: Record<string, ort.Tensor> = { encoder_hidden_states: f32(family, 'encoder_hidden_states', o) };
    for (const extra of ['text_embeds', 'time_ids', 'timestep_cond']) if (o.tensors[extra]) feeds[extra] = f32(family, extra, o);
    const unet = await open(family, 'unet');
    try {
      for (const [i, t] of sch.timesteps.entries()) {
        const x = new Float32Array(rows * n);
        for (let r = 0; r < rows; r++) x.set(sch.scaleModelInput(latent, t), r * n);
        feeds.sample = floats(o, x, [rows, C, h, w]);
        feeds.timestep = new ort.Tensor('int64', BigInt64Array.of(BigInt(Math.round(t))), [1]);
        const out = read((await unet.run(feeds)).out_sample!);
        if (o.cfg) sch.stepGuided(out, [1 - o.guidance_scale, o.guidance_scale], t, latent, { out: latent });
        else sch.step(out, t, latent, { out: latent, noise: noise.slice((i + 1) * n, (i + 2) * n) });
      }
    } finally {
      await unet.release();
    }
    const d = maxAbsDiff(latent, oracleTensor(family, o, 'final_latents').data);
    assert.ok(d <= o.tolerance.final_latents_max_abs, `${family}: final latents differ from the oracle by ${d}`);
    if (process.env.SD_FIXTURES_VERBOSE) console.log(`${family}: final latents max abs error ${d}`);
  });
}

// The oracles' token ids, from a second CLIP BPE implementation (@huggingface/tokenizers on the bundle's
// vocab.json/merges.txt), padded to 77 with the pad token special_tokens_map.json names.
function ids77(dir: string, tokDir: string, text: string): number[] {
  const tok = new Tokenizer(clipTokenizerJson(join(dir, tokDir)), {});
  const vocab = JSON.parse(readFileSync(join(dir, tokDir, 'vocab.json'), 'utf8')) as Record<string, number>;
  const pad = (JSON.parse(readFileSync(join(dir, tokDir, 'special_tokens_map.json'), 'utf8')) as { pad_token: string }).pad_token;
  let ids = tok.encode(text).ids;
  if (ids.length > 77) ids = [...ids.slice(0, 76), ids[ids.length - 1]!];
  return [...ids, ...new Array(77 - ids.length).fill(vocab[pad])];
}

for (const family of SD_FAMILIES) {
  test(`${family}: the oracle's token ids are CLIP's (a second implementation agrees)`, () => {
    const o = readOracle(family);
    const dir = bundleDir(family);
    const sdxl = o.pipeline === 'StableDiffusionXLPipeline';
    const toks = sdxl ? ['tokenizer', 'tokenizer_2'] : ['tokenizer'];
    for (const [k, t] of toks.entries()) {
      const cond = (sdxl ? (o.token_ids.cond as number[][])[k] : o.token_ids.cond) as number[];
      assert.equal(ids77(dir, t, o.prompt), cond, `${family}/${t}: prompt`);
      if (o.token_ids.uncond) {
        const uncond = (sdxl ? (o.token_ids.uncond as number[][])[k] : o.token_ids.uncond) as number[];
        assert.equal(ids77(dir, t, o.negative_prompt ?? ''), uncond, `${family}/${t}: negative prompt`);
      }
    }
  });
}

test('the real CLIP vocabulary: tokenizer_golden.json agrees with the second implementation', () => {
  const dir = repoPath('test/fixtures/sd-configs/runwayml-stable-diffusion-v1-5');
  const golden = JSON.parse(readFileSync(join(dir, 'tokenizer_golden.json'), 'utf8')) as {
    bos: number; eos: number; cases: { prompt: string; tokens: number[]; ids_pad_eos: number[]; ids_pad_bang: number[] }[];
  };
  const tok = new Tokenizer(clipTokenizerJson(join(dir, 'tokenizer')), {});
  assert.ok(golden.cases.some((c) => c.tokens.length > 75), 'one case is longer than a 77-token window');
  for (const c of golden.cases) {
    assert.equal(tok.encode(c.prompt).ids, [golden.bos, ...c.tokens, golden.eos], c.prompt);
    assert.equal(ids77(dir, 'tokenizer', c.prompt), c.ids_pad_eos, c.prompt);
  }
});

// Image-to-image (reference-init with one image): the PNG through the ONNX VAE encoder gives the oracle's clean
// latent, and ragdiff's scheduler entered at the oracle's start index (addNoise there, then the remaining steps)
// lands on its final latents. Two schedulers are left out of the second half, because ragdiff's scheduler does
// something else than diffusers there (open questions for the runner, not fixture faults):
// - LCM: diffusers' LatentConsistencyModelImg2ImgPipeline shortens the distillation schedule itself
//   (set_timesteps(steps, strength)) and runs all `steps` of it; ragdiff enters the text-to-image schedule late.
// - PNDM: diffusers runs timesteps[start:] (PNDM's list with its repeated entry) with PLMS's counter fresh, so its
//   second call redoes the first step with averaged outputs; ragdiff restarts the multistep at low order instead
//   (setStepIndex). On sd15 the two end 1.44 apart.
for (const family of SD_FAMILIES) {
  test(`${family}: image-to-image — VAE encoder on init_image.png and ragdiff's scheduler reproduce the oracle`, async () => {
    const o = readOracle(family);
    const dir = bundleDir(family);
    const { data: px, info } = await sharp(join(dir, o.img2img.init_image)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    assert.equal([info.height, info.width], [o.height, o.width]);
    const chw = new Float32Array(3 * o.height * o.width);
    for (let i = 0; i < o.height * o.width; i++) for (let c = 0; c < 3; c++) chw[c * o.height * o.width + i] = (px[i * 3 + c]! / 255) * 2 - 1;
    const sf = o.vae_scaling_factor;
    const x0 = oracleTensor(family, o, 'img2img_init_latents');
    const enc = await open(family, 'vae_encoder');
    try {
      const mean = read((await enc.run({ sample: floats(o, chw, [1, 3, o.height, o.width]) })).latent_sample!);
      const over = overTolerance(o, mean, x0.data.map((v) => v / sf));
      assert.ok(over <= 0, `${family}: VAE encoder mean differs by ${over} over the tolerance`);
    } finally {
      await enc.release();
    }
    const config = JSON.parse(readFileSync(join(dir, 'scheduler/scheduler_config.json'), 'utf8')) as Record<string, unknown>;
    if (config._class_name === 'LCMScheduler' || config._class_name === 'PNDMScheduler') return;
    const sch = createScheduler(config, { sampler: samplerForClass(config._class_name)! });
    sch.setTimesteps(o.steps);
    assert.equal([...sch.timesteps], o.img2img.timesteps);
    const start = o.img2img.start_index;
    const noise = oracleTensor(family, o, 'noise').data;
    const n = o.latent_shape.reduce((a, b) => a * b, 1);
    sch.setStepIndex(start);
    const latent = sch.addNoise(x0.data, noise.slice(0, n), sch.timesteps[start]!);
    const d0 = maxAbsDiff(latent, oracleTensor(family, o, 'img2img_initial_latents').data);
    assert.ok(d0 <= 1e-5, `${family}: noised start latent differs by ${d0}`);
    const rows = o.cfg ? 2 : 1;
    const [, C, h, w] = o.latent_shape as [number, number, number, number];
    const feeds: Record<string, ort.Tensor> = { encoder_hidden_states: f32(family, 'encoder_hidden_states', o) };
    for (const extra of ['text_embeds', 'time_ids', 'timestep_cond']) if (o.tensors[extra]) feeds[extra] = f32(family, extra, o);
    const unet = await open(family, 'unet');
    try {
      for (let i = start; i < sch.timesteps.length; i++) {
        const t = sch.timesteps[i]!;
        const x = new Float32Array(rows * n);
        for (let r = 0; r < rows; r++) x.set(sch.scaleModelInput(latent, t), r * n);
        feeds.sample = floats(o, x, [rows, C, h, w]);
        feeds.timestep = new ort.Tensor('int64', BigInt64Array.of(BigInt(Math.round(t))), [1]);
        const out = read((await unet.run(feeds)).out_sample!);
        const k = i - start + 1;
        if (o.cfg) sch.stepGuided(out, [1 - o.guidance_scale, o.guidance_scale], t, latent, { out: latent });
        else sch.step(out, t, latent, { out: latent, noise: noise.slice(k * n, (k + 1) * n) });
      }
    } finally {
      await unet.release();
    }
    const d = maxAbsDiff(latent, oracleTensor(family, o, 'img2img_final_latents').data);
    assert.ok(d <= o.tolerance.final_latents_max_abs, `${family}: image-to-image final latents differ from the oracle by ${d}`);
  });
}

test('sd15 and sd15-sdpa share weights and oracle; only the attention export differs', () => {
  const a = readOracle('sd15');
  const b = readOracle('sd15-sdpa');
  assert.is(a.attention_export, 'baddbmm');
  assert.is(b.attention_export, 'sdpa');
  assert.is(maxAbsDiff(oracleTensor('sd15', a, 'final_latents').data, oracleTensor('sd15-sdpa', b, 'final_latents').data), 0);
});

test.run();
