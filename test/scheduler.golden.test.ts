// The samplers reproduce diffusers' own published full-loop values
// (tests/schedulers/test_scheduler_{ddim,euler,dpm_multi}.py), using diffusers'
// deterministic dummy sample, noise and model. The Euler-ancestral goldens draw
// torch's RNG and cannot be reproduced; its math is covered by the reference test.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScheduler, type SamplerName } from '../src/scheduler/index.js';

const f = Math.fround;
const N = 4 * 3 * 8 * 8;

/** torch.arange(768).reshape(3, 8, 8, 4).permute(3, 0, 1, 2) / 768, as a flat [4, 3, 8, 8] array. */
function dummySampleDeter(flip = false): Float32Array {
  const s = new Float32Array(N);
  for (let b = 0; b < 4; b++) for (let c = 0; c < 3; c++) for (let h = 0; h < 8; h++) for (let w = 0; w < 8; w++) {
    const k = ((c * 8 + h) * 8 + w) * 4 + b;
    s[((b * 3 + c) * 8 + h) * 8 + w] = f((flip ? N - 1 - k : k) / N);
  }
  return s;
}
/** diffusers' dummy model: sample * t / (t + 1), in float32. */
const dummyModel = (x: Float32Array, t: number) => {
  const tf = f(t), d = f(tf + 1);
  return x.map((v) => f(f(v * tf) / d));
};
const sumAbs = (x: Float32Array) => x.reduce((s, v) => s + Math.abs(v), 0);

interface Loop { scaleInput?: boolean; tStart?: number; addNoise?: boolean; steps?: number; useKarrasSigmas?: boolean }
function fullLoop(sampler: SamplerName, config: Record<string, unknown>, o: Loop = {}): { sum: number; mean: number } {
  const s = createScheduler(config, { sampler, useKarrasSigmas: o.useKarrasSigmas });
  s.setTimesteps(o.steps ?? 10);
  let x = dummySampleDeter();
  if (o.scaleInput) x = x.map((v) => f(v * f(s.initNoiseSigma)));
  const ts = s.timesteps.slice(o.tStart ?? 0);
  if (o.addNoise) {
    if (o.tStart) s.setBeginIndex(o.tStart);
    x = s.addNoise(x, dummySampleDeter(true), ts[0]!);
  }
  for (const t of ts) {
    // diffusers' Euler tests pass the scaled sample on to step(); so do we.
    if (o.scaleInput) x = s.scaleModelInput(x, t);
    x = s.step(dummyModel(x, t), t, x);
  }
  return { sum: sumAbs(x), mean: sumAbs(x) / N };
}

function near(actual: number, expected: number, tol: number, what: string) {
  assert.ok(Math.abs(actual - expected) < tol, `${what}: expected ${expected} ± ${tol}, got ${actual}`);
}

const DDIM = { num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: 'linear', clip_sample: true };
const EULER = { num_train_timesteps: 1100, beta_start: 0.0001, beta_end: 0.02, beta_schedule: 'linear' };
const DPM = {
  num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: 'linear', solver_order: 2,
  prediction_type: 'epsilon', thresholding: false, sample_max_value: 1.0, algorithm_type: 'dpmsolver++',
  solver_type: 'midpoint', lower_order_final: false, euler_at_final: false, lambda_min_clipped: -Infinity,
  variance_type: null, final_sigmas_type: 'sigma_min',
};

test('DDIM: full loop, no noise (172.0067 / 0.223967)', () => {
  const r = fullLoop('ddim', DDIM);
  near(r.sum, 172.0067, 1e-2, 'sum');
  near(r.mean, 0.223967, 1e-3, 'mean');
});
test('DDIM: v_prediction (52.5302 / 0.0684)', () => {
  const r = fullLoop('ddim', { ...DDIM, prediction_type: 'v_prediction' });
  near(r.sum, 52.5302, 1e-2, 'sum');
  near(r.mean, 0.0684, 1e-3, 'mean');
});
test('DDIM: set_alpha_to_one true / false (149.8295 / 149.0784)', () => {
  const a = fullLoop('ddim', { ...DDIM, set_alpha_to_one: true, beta_start: 0.01 });
  near(a.sum, 149.8295, 1e-2, 'sum');
  near(a.mean, 0.1951, 1e-3, 'mean');
  const b = fullLoop('ddim', { ...DDIM, set_alpha_to_one: false, beta_start: 0.01 });
  near(b.sum, 149.0784, 1e-2, 'sum');
  near(b.mean, 0.1941, 1e-3, 'mean');
});
test('DDIM: img2img from step 8 with add_noise (354.5418 / 0.4616)', () => {
  const r = fullLoop('ddim', DDIM, { tStart: 8, addNoise: true });
  near(r.sum, 354.5418, 1e-2, 'sum');
  near(r.mean, 0.4616, 1e-3, 'mean');
});
test('DDIM: steps_offset=1 with 5 steps gives timesteps [801, 601, 401, 201, 1]', () => {
  const s = createScheduler({ ...DDIM, steps_offset: 1 }, { sampler: 'ddim' });
  s.setTimesteps(5);
  assert.equal([...s.timesteps], [801, 601, 401, 201, 1]);
});

test('Euler: full loop, no noise (10.0807 / 0.0131)', () => {
  const r = fullLoop('euler', EULER, { scaleInput: true });
  near(r.sum, 10.0807, 1e-2, 'sum');
  near(r.mean, 0.0131, 1e-3, 'mean');
});
test('Euler: v_prediction (0.0002 / 2.2676e-06)', () => {
  const r = fullLoop('euler', { ...EULER, prediction_type: 'v_prediction' }, { scaleInput: true });
  near(r.sum, 0.0002, 1e-2, 'sum');
  near(r.mean, 2.2676e-6, 1e-3, 'mean');
});
test('Euler: Karras sigmas (124.52299499511719 / 0.16213932633399963)', () => {
  const r = fullLoop('euler', EULER, { scaleInput: true, useKarrasSigmas: true });
  near(r.sum, 124.52299499511719, 1e-2, 'sum');
  near(r.mean, 0.16213932633399963, 1e-3, 'mean');
});
test('Euler: img2img from step 8 with add_noise (57062.9297 / 74.3007)', () => {
  const r = fullLoop('euler', EULER, { scaleInput: true, tStart: 8, addNoise: true });
  near(r.sum, 57062.9297, 1e-2, 'sum');
  near(r.mean, 74.3007, 1e-3, 'mean');
});

test('DPM-Solver++ 2M: full loop, no noise (mean 0.3301)', () => {
  near(fullLoop('dpmpp-2m', DPM).mean, 0.3301, 1e-3, 'mean');
});
test('DPM-Solver++ 2M: img2img from step 5 with add_noise (318.4111 / 0.4146)', () => {
  const r = fullLoop('dpmpp-2m', DPM, { tStart: 5, addNoise: true });
  near(r.sum, 318.4111, 1e-2, 'sum');
  near(r.mean, 0.4146, 1e-3, 'mean');
});
test('DPM-Solver++ 2M: v_prediction (mean 0.2251)', () => {
  near(fullLoop('dpmpp-2m', { ...DPM, prediction_type: 'v_prediction' }).mean, 0.2251, 1e-3, 'mean');
});
test('DPM-Solver++ 2M: Karras sigmas + v_prediction (mean 0.2096)', () => {
  near(fullLoop('dpmpp-2m', { ...DPM, prediction_type: 'v_prediction', use_karras_sigmas: true }).mean, 0.2096, 1e-3, 'mean');
});
test('DPM-Solver++ 2M: 1000 steps on 1000 train timesteps keeps duplicated timesteps, as diffusers', () => {
  const s = createScheduler(DPM, { sampler: 'dpmpp-2m' });
  s.setTimesteps(1000);
  assert.is(s.timesteps.length, 1000);
  assert.ok(new Set(s.timesteps).size < 1000);
});

test('Stable Diffusion 1.x config: timesteps and sigmas as diffusers prints them', () => {
  const sd = { _class_name: 'PNDMScheduler', _diffusers_version: '0.6.0', beta_end: 0.012, beta_schedule: 'scaled_linear', beta_start: 0.00085,
    num_train_timesteps: 1000, set_alpha_to_one: false, skip_prk_steps: true, steps_offset: 1, trained_betas: null, clip_sample: false };
  const ddim = createScheduler(sd, { sampler: 'ddim' });
  ddim.setTimesteps(10);
  assert.equal([...ddim.timesteps], [901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
  const euler = createScheduler(sd, { sampler: 'euler' });
  euler.setTimesteps(10);
  assert.equal([...euler.timesteps].map((t) => +t.toFixed(4)), [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
  near(euler.initNoiseSigma, 14.6146, 1e-4, 'init_noise_sigma');
  const dpm = createScheduler(sd, { sampler: 'dpmpp-2m' });
  dpm.setTimesteps(10);
  assert.equal([...dpm.timesteps], [999, 899, 799, 699, 599, 500, 400, 300, 200, 100]);
});

test.run();
