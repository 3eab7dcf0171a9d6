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
import { repoPath } from './helpers.js';
import { SD_FAMILIES, bundleDir, maxAbsDiff, oracleTensor, readOracle, type SdFamily } from './fixtures/sd/oracle.js';

const TOL = 1e-4;

async function open(family: SdFamily, part: string): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(join(bundleDir(family), part, 'model.onnx'));
}

function f32(family: SdFamily, name: string, o = readOracle(family)): ort.Tensor {
  const t = oracleTensor(family, o, name);
  return new ort.Tensor('float32', t.data, t.shape);
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
    assert.ok(statSync(join(dir, 'unet/model.onnx_data')).size > 100_000, `${family}: unet/model.onnx_data is nearly empty`);
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
      const diff = maxAbsDiff(out.data as Float32Array, oracleTensor(family, o, 'probe_unet_out').data);
      assert.ok(diff <= TOL, `${family}: UNet differs from PyTorch by ${diff}`);
    } finally {
      await s.release();
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
        const got = states.data as Float32Array;
        const want = slice(ehs.data, rows - 1, rows);
        let diff = 0;
        for (let i = 0; i < L; i++) {
          for (let j = 0; j < w; j++) diff = Math.max(diff, Math.abs(got[i * w + j]! - want[i * width + offset + j]!));
        }
        assert.ok(diff <= TOL, `${family}/${part}: cond states differ by ${diff}`);
        if (uncond && o.cfg) {
          const u = (await s.run({ input_ids: ids([uncond[k]!]) }));
          const us = (sdxl ? u[`hidden_states.${(s.outputNames.length - 3) - 1}`]! : u.last_hidden_state!).data as Float32Array;
          const wu = slice(ehs.data, 0, rows);
          let du = 0;
          for (let i = 0; i < L; i++) for (let j = 0; j < w; j++) du = Math.max(du, Math.abs(us[i * w + j]! - wu[i * width + offset + j]!));
          assert.ok(du <= TOL, `${family}/${part}: uncond states differ by ${du}`);
        }
        if (sdxl && part === 'text_encoder_2') {
          const pooled = oracleTensor(family, o, 'text_embeds');
          const d = maxAbsDiff(out.text_embeds!.data as Float32Array, slice(pooled.data, rows - 1, rows));
          assert.ok(d <= TOL, `${family}: pooled text_embeds differ by ${d}`);
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
      const scaled = new ort.Tensor('float32', z.data.map((v) => v / o.vae_scaling_factor), z.shape);
      const img = (await dec.run({ latent_sample: scaled })).sample!;
      assert.equal(img.dims, [1, 3, o.height, o.width]);
      const d = maxAbsDiff(img.data as Float32Array, oracleTensor(family, o, 'image').data);
      assert.ok(d <= TOL, `${family}: decoded image differs by ${d}`);
      const lat = (await enc.run({ sample: f32(family, 'probe_vae_image', o) })).latent_sample!;
      const e = maxAbsDiff(lat.data as Float32Array, oracleTensor(family, o, 'probe_vae_latent_mean').data);
      assert.ok(e <= TOL, `${family}: VAE encoder differs by ${e}`);
    } finally {
      await dec.release();
      await enc.release();
    }
  });

  test(`${family}: the oracle would catch the wiring errors it lists`, () => {
    const o = readOracle(family);
    for (const [mutation, diff] of Object.entries(o.sensitivity_max_abs_final_latents)) {
      assert.ok(diff > 100 * o.tolerance.final_latents_max_abs, `${family}: ${mutation} moves the final latents by only ${diff}`);
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
        feeds.sample = new ort.Tensor('float32', x, [rows, C, h, w]);
        feeds.timestep = new ort.Tensor('int64', BigInt64Array.of(BigInt(Math.round(t))), [1]);
        const out = (await unet.run(feeds)).out_sample!.data as Float32Array;
        if (o.cfg) sch.stepGuided(out, [1 - o.guidance_scale, o.guidance_scale], t, latent, { out: latent });
        else sch.step(out, t, latent, { out: latent, noise: noise.slice((i + 1) * n, (i + 2) * n) });
      }
    } finally {
      await unet.release();
    }
    const d = maxAbsDiff(latent, oracleTensor(family, o, 'final_latents').data);
    assert.ok(d <= o.tolerance.final_latents_max_abs, `${family}: final latents differ from the oracle by ${d}`);
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
