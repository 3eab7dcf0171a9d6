// Every sampler x prediction type x timestep spacing (and Karras sigmas, clipping,
// eta, final sigma types, solver types) agrees with a float64 reference written
// from diffusers' sources (test/reference/diffusers.ts) on fresh random inputs,
// step by step, to 1e-5 relative to the output's magnitude; guided steps with 2
// and 3 branches and tensors large enough to be threaded included.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScheduler } from '../src/scheduler/index.js';
import { seededRandom } from './helpers.js';
import * as ref from './reference/diffusers.js';

const TOL = 1e-5;

function relErr(a: Float32Array, b: Float64Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / Math.max(den, 1e-30);
}

function randomArray(rand: () => number, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale;
  return a;
}
function gaussian(rand: () => number, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
  return a;
}

interface Case { sampler: ref.Sampler; config: ref.RefConfig; steps: number; len: number; branches: number[] | null; eta?: number }

function runCase(c: Case, seed: number): void {
  const label = `${c.sampler} ${JSON.stringify(c.config)} steps=${c.steps} len=${c.len} branches=${c.branches ?? 1}`;
  const rand = seededRandom(seed);
  const s = createScheduler(c.config as unknown as Record<string, unknown>, { sampler: c.sampler, eta: c.eta });
  s.setTimesteps(c.steps);
  const rs = ref.setTimesteps({ ...c.config, eta: c.eta }, c.sampler, c.steps);
  assert.equal([...s.timesteps], rs.timesteps, `timesteps: ${label}`);
  if (c.sampler !== 'ddim') {
    const sig = s.sigmas!;
    assert.is(sig.length, rs.sigmas.length, `sigma count: ${label}`);
    rs.sigmas.forEach((v, i) => assert.ok(Math.abs(sig[i]! - v) <= 1e-6 * Math.max(1, v), `sigma ${i}: ${sig[i]} vs ${v} (${label})`));
  }
  assert.ok(Math.abs(s.initNoiseSigma - ref.initNoiseSigma(c.config, c.sampler, rs)) <= 1e-6 * s.initNoiseSigma, `init_noise_sigma: ${label}`);
  // Start explicitly at step 0: with repeated timesteps (cosine + Karras) diffusers would
  // otherwise resolve the first t to its second occurrence.
  s.setStepIndex(0);
  const st = ref.newState();
  let x = randomArray(rand, c.len, s.initNoiseSigma);
  const refCfg = { ...c.config, eta: c.eta };
  for (let i = 0; i < s.timesteps.length; i++) {
    const t = s.timesteps[i]!;
    // scale_model_input agrees too (float32 division, as diffusers)
    const scaled = s.scaleModelInput(x, t);
    const d = ref.inputDivisor(c.sampler, rs, i);
    assert.ok(scaled.every((v, k) => v === Math.fround(x[k]! / d)), `scaleModelInput step ${i}: ${label}`);
    const noise = gaussian(rand, c.len);
    let out: Float32Array, m: Float64Array;
    if (c.branches) {
      const br = randomArray(rand, c.len * c.branches.length);
      out = s.stepGuided(br, c.branches, t, x, { noise });
      m = ref.combine(br, c.branches, c.len);
    } else {
      const mo = randomArray(rand, c.len);
      out = s.step(mo, t, x, { noise });
      m = Float64Array.from(mo);
    }
    const expect = ref.step(refCfg, c.sampler, rs, st, m, x, noise);
    const e = relErr(out, expect);
    assert.ok(e <= TOL, `step ${i} (t=${t}): relative error ${e.toExponential(2)} > ${TOL}: ${label}`);
    x = out;
  }
  assert.ok(s.finished);
}

const BASE: Omit<ref.RefConfig, 'prediction_type' | 'timestep_spacing'> = {
  num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', steps_offset: 1,
};
const PREDICTIONS = ['epsilon', 'v_prediction', 'sample'] as const;
const SPACINGS = ['leading', 'trailing', 'linspace'] as const;
const SAMPLERS: ref.Sampler[] = ['ddim', 'euler', 'euler-ancestral', 'dpmpp-2m'];

let seed = 1;
for (const sampler of SAMPLERS) {
  for (const prediction_type of PREDICTIONS) {
    for (const timestep_spacing of SPACINGS) {
      test(`${sampler} / ${prediction_type} / ${timestep_spacing} matches the float64 reference`, () => {
        const config: ref.RefConfig = { ...BASE, prediction_type, timestep_spacing, clip_sample: false };
        runCase({ sampler, config, steps: 12, len: 1003, branches: null }, seed++);
        runCase({ sampler, config, steps: 7, len: 517, branches: [-6.5, 7.5] }, seed++);
      });
    }
  }
}

test('variants: Karras sigmas, log-linear interpolation, final sigma_min, heun, solver_order 1, lower_order_final', () => {
  const cfg = (extra: Partial<ref.RefConfig>): ref.RefConfig => ({ ...BASE, prediction_type: 'epsilon', timestep_spacing: 'linspace', ...extra });
  runCase({ sampler: 'euler', config: cfg({ use_karras_sigmas: true }), steps: 15, len: 300, branches: null }, seed++);
  runCase({ sampler: 'euler', config: cfg({ use_karras_sigmas: true, prediction_type: 'v_prediction', final_sigmas_type: 'sigma_min' }), steps: 9, len: 300, branches: null }, seed++);
  runCase({ sampler: 'euler', config: cfg({ interpolation_type: 'log_linear' }), steps: 9, len: 300, branches: null }, seed++);
  runCase({ sampler: 'dpmpp-2m', config: cfg({ use_karras_sigmas: true }), steps: 20, len: 300, branches: [0.25, 0.25, 0.5] }, seed++);
  runCase({ sampler: 'dpmpp-2m', config: cfg({ use_karras_sigmas: true, prediction_type: 'v_prediction', final_sigmas_type: 'sigma_min' }), steps: 20, len: 300, branches: null }, seed++);
  runCase({ sampler: 'dpmpp-2m', config: cfg({ solver_type: 'heun', final_sigmas_type: 'sigma_min', lower_order_final: false }), steps: 10, len: 300, branches: null }, seed++);
  runCase({ sampler: 'dpmpp-2m', config: cfg({ solver_order: 1 }), steps: 10, len: 300, branches: null }, seed++);
  runCase({ sampler: 'dpmpp-2m', config: cfg({ euler_at_final: true, final_sigmas_type: 'sigma_min', timestep_spacing: 'trailing' }), steps: 30, len: 300, branches: null }, seed++);
  runCase({ sampler: 'dpmpp-2m', config: cfg({ beta_schedule: 'squaredcos_cap_v2', use_karras_sigmas: true }), steps: 10, len: 300, branches: null }, seed++);
});

test('DDIM variants: clip_sample, eta, set_alpha_to_one false, linear and cosine betas, zero-SNR v_prediction', () => {
  const cfg = (extra: Partial<ref.RefConfig>): ref.RefConfig => ({ ...BASE, prediction_type: 'epsilon', timestep_spacing: 'leading', ...extra });
  runCase({ sampler: 'ddim', config: cfg({ clip_sample: true }), steps: 10, len: 400, branches: null }, seed++);
  runCase({ sampler: 'ddim', config: cfg({ clip_sample: true, clip_sample_range: 0.5, prediction_type: 'v_prediction' }), steps: 10, len: 400, branches: [-1, 2] }, seed++);
  runCase({ sampler: 'ddim', config: cfg({ clip_sample: false }), steps: 10, len: 400, branches: null, eta: 1 }, seed++);
  runCase({ sampler: 'ddim', config: cfg({ clip_sample: true, set_alpha_to_one: false }), steps: 10, len: 400, branches: null, eta: 0.5 }, seed++);
  runCase({ sampler: 'ddim', config: cfg({ beta_schedule: 'linear', beta_start: 0.0001, beta_end: 0.02, clip_sample: false }), steps: 10, len: 400, branches: null }, seed++);
  runCase({ sampler: 'ddim', config: cfg({ beta_schedule: 'squaredcos_cap_v2', clip_sample: false }), steps: 10, len: 400, branches: null }, seed++);
  runCase({ sampler: 'ddim', config: cfg({ rescale_betas_zero_snr: true, prediction_type: 'v_prediction', timestep_spacing: 'trailing', clip_sample: false }), steps: 10, len: 400, branches: null }, seed++);
  runCase({ sampler: 'euler', config: cfg({ rescale_betas_zero_snr: true, prediction_type: 'v_prediction', timestep_spacing: 'trailing' }), steps: 10, len: 400, branches: null }, seed++);
});

test('large tensors (threaded) agree with the reference as well', () => {
  const config: ref.RefConfig = { ...BASE, prediction_type: 'epsilon', timestep_spacing: 'trailing', clip_sample: false };
  for (const sampler of SAMPLERS) runCase({ sampler, config, steps: 2, len: (1 << 20) + 5, branches: [-3, 4] }, seed++);
});

test.run();
