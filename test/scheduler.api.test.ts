// The scheduler API: the diffusers contract, in-place stepping, fused guidance,
// re-entry mid-schedule, config validation and typed errors for bad input.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScheduler, parseSchedulerConfigJson, NoiseGenerator, type SamplerName } from '../src/index.js';
import { native } from '../src/native.js';
import { seededRandom } from './helpers.js';

const coded = (Ctor: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, code: string) => (e: unknown) =>
  e instanceof Ctor && (e as { code?: unknown }).code === code;

const SD = { beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', num_train_timesteps: 1000, steps_offset: 1, clip_sample: false, set_alpha_to_one: false };
const SAMPLERS: SamplerName[] = ['ddim', 'euler', 'euler-ancestral', 'dpmpp-2m'];
const rand = seededRandom(42);
const randomArray = (n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);

test('out may be the sample itself: in-place steps equal allocating steps', () => {
  for (const sampler of SAMPLERS) {
    const a = createScheduler(SD, { sampler, seed: 5 }), b = createScheduler(SD, { sampler, seed: 5 });
    a.setTimesteps(6, { sampleLength: 100 });
    b.setTimesteps(6);
    let x = randomArray(100);
    const y = x.slice();
    for (const t of a.timesteps) {
      const m = randomArray(100);
      x = a.step(m, t, x);
      const r = b.step(m, t, y, { out: y });
      assert.is(r, y, 'returns out');
    }
    assert.equal(Array.from(y), Array.from(x), sampler);
  }
});

test('stepGuided with weights [1 - g, g] equals step on the combined output', () => {
  for (const sampler of SAMPLERS) {
    const a = createScheduler(SD, { sampler }), b = createScheduler(SD, { sampler });
    a.setTimesteps(5);
    b.setTimesteps(5);
    let xa = randomArray(64), xb = xa.slice();
    const g = 7.5;
    for (const t of a.timesteps) {
      const br = randomArray(128), noise = randomArray(64);
      const combined = new Float32Array(64);
      native().combineBranches(br, new Float64Array([1 - g, g]), combined);
      xa = a.stepGuided(br, [1 - g, g], t, xa, { noise });
      xb = b.step(combined, t, xb, { noise });
      for (let i = 0; i < 64; i++) assert.ok(Math.abs(xa[i]! - xb[i]!) <= 1e-5 * (1 + Math.abs(xb[i]!)), `${sampler} t=${t}`);
    }
  }
});

test('weights can change every step, and any number of branches (1..64) is accepted', () => {
  const s = createScheduler(SD, { sampler: 'dpmpp-2m' });
  s.setTimesteps(4);
  let x = randomArray(32);
  const weights = [[1], [0.5, 0.5], [0.1, 0.2, 0.3, 0.4], Array(64).fill(1 / 64)];
  s.timesteps.forEach((t, i) => {
    const w = weights[i]!;
    x = s.stepGuided(randomArray(32 * w.length), w, t, x);
  });
  assert.ok(s.finished);
  assert.ok(x.every(Number.isFinite));
});

test('the schedule can be re-entered at any step; DPM-Solver++ resumes exactly with its history', () => {
  const full = createScheduler(SD, { sampler: 'dpmpp-2m' });
  full.setTimesteps(10);
  const x0 = randomArray(50);
  const outputs = full.timesteps.map(() => randomArray(50));
  let x = x0.slice();
  const snapshots: { latent: Float32Array; history: Float32Array | null }[] = [];
  full.timesteps.forEach((t, i) => {
    snapshots.push({ latent: x.slice(), history: full.history });
    x = full.step(outputs[i]!, t, x);
  });
  // jump to step 6 from the snapshot and finish
  const resumed = createScheduler(SD, { sampler: 'dpmpp-2m' });
  resumed.setTimesteps(10);
  const k = 6;
  resumed.setStepIndex(k, { history: snapshots[k]!.history });
  assert.is(resumed.stepIndex, k);
  let y = snapshots[k]!.latent.slice();
  for (let i = k; i < 10; i++) y = resumed.step(outputs[i]!, resumed.timesteps[i]!, y);
  assert.equal(Array.from(y), Array.from(x));
  // without history the first resumed step is first order: a different (still finite) result
  const cold = createScheduler(SD, { sampler: 'dpmpp-2m' });
  cold.setTimesteps(10);
  cold.setStepIndex(k);
  let z = snapshots[k]!.latent.slice();
  for (let i = k; i < 10; i++) z = cold.step(outputs[i]!, cold.timesteps[i]!, z);
  assert.ok(z.some((v, i) => v !== x[i]));
});

test('predOriginal receives the clean-sample prediction (epsilon: x0 = (x - sqrt(1 - a) eps) / sqrt(a))', () => {
  const s = createScheduler({ ...SD, clip_sample: false }, { sampler: 'ddim' });
  s.setTimesteps(10);
  const x = randomArray(16), eps = randomArray(16), x0 = new Float32Array(16);
  s.step(eps, s.timesteps[0]!, x, { predOriginal: x0 });
  // a = alphas_cumprod[901]; recover it from add_noise's coefficients
  const one = new Float32Array(1).fill(1), zero = new Float32Array(1);
  const sa = s.addNoise(one, zero, 901)[0]!, sb = s.addNoise(zero, one, 901)[0]!;
  for (let i = 0; i < 16; i++) assert.ok(Math.abs(x0[i]! - (x[i]! - sb * eps[i]!) / sa) < 1e-4);
});

test('stochastic samplers: explicit noise or the seeded generator, deterministically', () => {
  const run = (opts: { seed?: number; generator?: NoiseGenerator }) => {
    const s = createScheduler(SD, { sampler: 'euler-ancestral', ...opts });
    s.setTimesteps(5);
    let x = new Float32Array(40).fill(0.5);
    for (const t of s.timesteps) x = s.step(new Float32Array(40).fill(0.1), t, x);
    return Array.from(x);
  };
  assert.equal(run({ seed: 3 }), run({ seed: 3 }));
  assert.equal(run({ seed: 3 }), run({ generator: new NoiseGenerator(3) }));
  assert.not.equal(run({ seed: 3 }), run({ seed: 4 }));
  // DDIM with eta draws noise too; eta = 0 does not touch the generator
  const g = new NoiseGenerator(1);
  const d = createScheduler(SD, { sampler: 'ddim', eta: 0, generator: g });
  d.setTimesteps(3);
  let x = new Float32Array(8);
  for (const t of d.timesteps) x = d.step(new Float32Array(8), t, x);
  assert.is(g.offset, 0);
});

test('scaleModelInput: sample / sqrt(sigma^2 + 1) for Euler; DDIM and DPM++ return the sample itself', () => {
  const e = createScheduler(SD, { sampler: 'euler' });
  e.setTimesteps(10);
  const x = randomArray(8);
  const y = e.scaleModelInput(x, e.timesteps[0]!);
  const sigma = e.sigmas![0]!;
  y.forEach((v, i) => assert.ok(Math.abs(v - x[i]! / Math.sqrt(sigma * sigma + 1)) < 1e-6));
  assert.is(e.stepIndex, 0);
  const d = createScheduler(SD, { sampler: 'ddim' });
  d.setTimesteps(10);
  assert.is(d.scaleModelInput(x, 901), x);
  const out = new Float32Array(8);
  assert.is(d.scaleModelInput(x, 901, out), out);
  assert.equal(Array.from(out), Array.from(x));
});

test('config: diffusers files load as they are; _-keys and other schedulers\' keys are ignored', () => {
  const json = '{"_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": "0.21.0", "algorithm_type": "dpmsolver++", ' +
    '"beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "lambda_min_clipped": -Infinity, "lower_order_final": true, ' +
    '"num_train_timesteps": 1000, "prediction_type": "epsilon", "solver_order": 2, "solver_type": "midpoint", "steps_offset": 1, ' +
    '"trained_betas": null, "skip_prk_steps": true, "variance_type": null, "use_karras_sigmas": false}';
  const cfg = parseSchedulerConfigJson(json);
  assert.is(cfg.lambda_min_clipped, -Infinity);
  for (const sampler of SAMPLERS) {
    const s = createScheduler(cfg, { sampler });
    s.setTimesteps(20);
    assert.is(s.timesteps.length, 20);
    // the resolved config round-trips
    const again = createScheduler(JSON.parse(JSON.stringify(s.config)), { sampler });
    again.setTimesteps(20);
    assert.equal(again.timesteps, s.timesteps);
    assert.equal(again.config, s.config);
  }
});

test('config: unknown keys and unsupported values are rejected, naming the field', () => {
  assert.throws(() => createScheduler({ ...SD, beta_shedule: 'linear' }, { sampler: 'ddim' }), (e: unknown) =>
    coded(RangeError, 'UNKNOWN_CONFIG_KEY')(e) && /beta_shedule/.test((e as Error).message));
  assert.throws(() => createScheduler({ ...SD, thresholding: true }, { sampler: 'ddim' }), (e: unknown) =>
    coded(RangeError, 'UNSUPPORTED_CONFIG')(e) && /thresholding/.test((e as Error).message));
  assert.throws(() => createScheduler({ algorithm_type: 'sde-dpmsolver++' }, { sampler: 'dpmpp-2m' }), (e: unknown) =>
    coded(RangeError, 'UNSUPPORTED_CONFIG')(e) && /algorithm_type/.test((e as Error).message));
  assert.throws(() => createScheduler({ solver_order: 3 }, { sampler: 'dpmpp-2m' }), coded(RangeError, 'UNSUPPORTED_CONFIG'));
  assert.throws(() => createScheduler({ use_beta_sigmas: true }, { sampler: 'euler' }), coded(RangeError, 'UNSUPPORTED_CONFIG'));
  assert.throws(() => createScheduler({ beta_schedule: 'sigmoid' }, { sampler: 'euler' }), (e: unknown) =>
    coded(RangeError, 'INVALID_CONFIG')(e) && /beta_schedule/.test((e as Error).message));
  assert.throws(() => createScheduler({ num_train_timesteps: '1000' }, { sampler: 'euler' }), coded(TypeError, 'INVALID_CONFIG'));
  assert.throws(() => createScheduler({ num_train_timesteps: 10, trained_betas: [0.1, 0.2] }, { sampler: 'euler' }), coded(RangeError, 'INVALID_CONFIG'));
  assert.throws(() => createScheduler({ prediction_type: 'flow_prediction' }, { sampler: 'euler' }), coded(RangeError, 'UNSUPPORTED_CONFIG'));
  assert.throws(() => createScheduler(SD, { sampler: 'ddim', useKarrasSigmas: true }), coded(RangeError, 'UNSUPPORTED_OPTION'));
  assert.throws(() => createScheduler(SD, { sampler: 'euler', eta: 0.5 }), coded(RangeError, 'UNSUPPORTED_OPTION'));
  assert.throws(() => createScheduler(SD, { sampler: 'ddim', eta: 2 }), coded(RangeError, 'OUT_OF_RANGE'));
  assert.throws(() => createScheduler(SD, { sampler: 'heun' as SamplerName }), coded(RangeError, 'INVALID_VALUE'));
  assert.throws(() => createScheduler(null as unknown as Record<string, unknown>, { sampler: 'ddim' }), coded(TypeError, 'INVALID_TYPE'));
});

test('steps: 0 or more than num_train_timesteps is a RangeError; stepping before setTimesteps a RagdiffError', () => {
  const s = createScheduler(SD, { sampler: 'euler' });
  assert.throws(() => s.step(new Float32Array(4), 999, new Float32Array(4)), (e: unknown) => (e as { code?: string }).code === 'TIMESTEPS_NOT_SET');
  assert.throws(() => s.setTimesteps(0), coded(RangeError, 'OUT_OF_RANGE'));
  assert.throws(() => s.setTimesteps(1001), coded(RangeError, 'OUT_OF_RANGE'));
  assert.throws(() => s.setTimesteps(2.5), coded(RangeError, 'OUT_OF_RANGE'));
  s.setTimesteps(1000);
  assert.is(s.timesteps.length, 1000);
});

test('t must be the current step\'s timestep; stepping past the last timestep is an error', () => {
  for (const sampler of SAMPLERS) {
    const s = createScheduler(SD, { sampler });
    s.setTimesteps(3);
    const x = new Float32Array(4), m = new Float32Array(4);
    assert.throws(() => s.step(m, 12345, x), coded(RangeError, 'TIMESTEP_NOT_IN_SCHEDULE'));
    s.step(m, s.timesteps[0]!, x);
    assert.throws(() => s.step(m, s.timesteps[2]!, x), coded(RangeError, 'TIMESTEP_MISMATCH'));
    s.step(m, s.timesteps[1]!, x);
    s.step(m, s.timesteps[2]!, x);
    assert.ok(s.finished);
    assert.throws(() => s.step(m, s.timesteps[2]!, x), coded(RangeError, 'SCHEDULE_FINISHED'));
    assert.throws(() => s.setStepIndex(3), coded(RangeError, 'OUT_OF_RANGE'));
    s.setStepIndex(0);
    s.step(m, s.timesteps[0]!, x);
  }
});

test('wrong types and lengths are TypeError / RangeError with codes', () => {
  const s = createScheduler(SD, { sampler: 'dpmpp-2m' });
  s.setTimesteps(5);
  const t = s.timesteps[0]!;
  const x = new Float32Array(8);
  assert.throws(() => s.step(new Float32Array(7), t, x), coded(RangeError, 'LENGTH_MISMATCH'));
  assert.throws(() => s.step(Array.from(x) as unknown as Float32Array, t, x), coded(TypeError, 'INVALID_TYPE'));
  assert.throws(() => s.step(new Float64Array(8) as unknown as Float32Array, t, x), coded(TypeError, 'INVALID_TYPE'));
  assert.throws(() => s.step(x, t, x, { out: new Float32Array(9) }), coded(RangeError, 'LENGTH_MISMATCH'));
  assert.throws(() => s.stepGuided(new Float32Array(16), [0.5], t, x), coded(RangeError, 'LENGTH_MISMATCH'));
  assert.throws(() => s.stepGuided(new Float32Array(16), [0.5, NaN], t, x), coded(RangeError, 'NON_FINITE'));
  assert.throws(() => s.stepGuided(new Float32Array(0), [], t, x), coded(RangeError, 'OUT_OF_RANGE'));
  assert.throws(() => s.step(x, NaN, x), coded(TypeError, 'INVALID_TYPE'));
  const e = createScheduler(SD, { sampler: 'euler-ancestral' });
  e.setTimesteps(5);
  assert.throws(() => e.step(x, e.timesteps[0]!, x, { noise: new Float32Array(3) }), coded(RangeError, 'LENGTH_MISMATCH'));
  assert.is(s.stepIndex, null, 'no state changed');
});

test('NaN / Infinity in any input tensor: NON_FINITE naming it, and the scheduler state is unchanged', () => {
  for (const sampler of SAMPLERS) {
    const s = createScheduler(SD, { sampler, seed: 9 });
    s.setTimesteps(4);
    let x = randomArray(40);
    x = s.step(randomArray(40), s.timesteps[0]!, x);
    const history = s.history, offset = s.generator.offset;
    const bad = randomArray(40);
    bad[33] = NaN;
    assert.throws(() => s.step(bad, s.timesteps[1]!, x), (e: unknown) =>
      coded(RangeError, 'NON_FINITE')(e) && /modelOutput\[33\]/.test((e as Error).message), sampler);
    const badX = x.slice();
    badX[5] = -Infinity;
    assert.throws(() => s.stepGuided(randomArray(80), [0.5, 0.5], s.timesteps[1]!, badX), (e: unknown) =>
      coded(RangeError, 'NON_FINITE')(e) && /sample\[5\]/.test((e as Error).message));
    assert.is(s.stepIndex, 1);
    assert.equal(s.history, history);
    assert.is(s.generator.offset, offset);
    // and the schedule goes on as if nothing happened
    s.step(randomArray(40), s.timesteps[1]!, x);
    assert.is(s.stepIndex, 2);
  }
  // finite inputs whose result overflows float32 are refused the same way
  const e = createScheduler(SD, { sampler: 'euler' });
  e.setTimesteps(4);
  assert.throws(() => e.step(new Float32Array(4).fill(-3e38), e.timesteps[0]!, new Float32Array(4).fill(3e38)), (err: unknown) =>
    coded(RangeError, 'NON_FINITE')(err) && /too large/.test((err as Error).message));
  assert.is(e.stepIndex, null);
  const d = createScheduler(SD, { sampler: 'ddim' });
  d.setTimesteps(2);
  const noisy = new Float32Array(4).fill(Infinity);
  assert.throws(() => d.addNoise(noisy, new Float32Array(4), 10), coded(RangeError, 'NON_FINITE'));
  assert.throws(() => d.setStepIndex(1, { history: new Float32Array(4) }), coded(RangeError, 'INVALID_VALUE'));
});

test('addNoise: DDIM takes any training timestep; sigma samplers the step of t (or the begin index)', () => {
  const d = createScheduler(SD, { sampler: 'ddim' });
  d.setTimesteps(10);
  const x = new Float32Array([1, 2]), z = new Float32Array([0.5, -0.5]);
  const y = d.addNoise(x, z, 500);
  assert.ok(y[0]! !== 1 && Number.isFinite(y[0]));
  assert.throws(() => d.addNoise(x, z, 1000), coded(RangeError, 'OUT_OF_RANGE'));
  const e = createScheduler(SD, { sampler: 'euler' });
  e.setTimesteps(10);
  const t = e.timesteps[3]!;
  const w = e.addNoise(x, z, t);
  assert.ok(Math.abs(w[0]! - (1 + 0.5 * e.sigmas![3]!)) < 1e-5);
  assert.throws(() => e.addNoise(x, z, 3.5), coded(RangeError, 'TIMESTEP_NOT_IN_SCHEDULE'));
});

test('zero-SNR schedules: epsilon prediction is refused where it is undefined, v_prediction works', () => {
  const cfg = { ...SD, rescale_betas_zero_snr: true, timestep_spacing: 'trailing' };
  const bad = createScheduler(cfg, { sampler: 'ddim' });
  bad.setTimesteps(5);
  assert.throws(() => bad.step(new Float32Array(4), bad.timesteps[0]!, new Float32Array(4)), coded(RangeError, 'UNSUPPORTED'));
  const ok = createScheduler({ ...cfg, prediction_type: 'v_prediction' }, { sampler: 'ddim' });
  ok.setTimesteps(5);
  let x = randomArray(4);
  for (const t of ok.timesteps) x = ok.step(randomArray(4), t, x);
  assert.ok(x.every(Number.isFinite));
});

test('DPM-Solver++ with repeated timesteps (1000 steps over 1000) stays finite: first order where two sigmas coincide', () => {
  const s = createScheduler(SD, { sampler: 'dpmpp-2m' });
  s.setTimesteps(1000);
  s.setStepIndex(0);
  let x = randomArray(16);
  for (const t of s.timesteps) x = s.step(randomArray(16).map((v) => v * 0.1), t, x);
  assert.ok(x.every(Number.isFinite));
});

test.run();
