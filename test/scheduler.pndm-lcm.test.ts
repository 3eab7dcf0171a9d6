// PNDM (PLMS, with and without the Runge-Kutta warm-up) and LCM reproduce
// diffusers: its published full-loop values (tests/schedulers/test_scheduler_
// {pndm,lcm}.py) and, step by step, a float64 reference written from the Python
// sources as their own state machine (test/reference/diffusers-pndm-lcm.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createScheduler } from '../src/scheduler/index.js';
import { samplerFromConfig } from '../src/pipeline/params.js';
import { seededRandom } from './helpers.js';
import { DUMMY_N, dummyModel, dummySampleDeter, sumAbs } from './reference/diffusers-dummy.js';
import { combine } from './reference/diffusers.js';
import { RefPndm, lcmStep, lcmTimesteps, type LcmConfig, type PndmConfig } from './reference/diffusers-pndm-lcm.js';
import { alphasCumprod } from './reference/diffusers.js';

const near = (a: number, e: number, tol: number, what: string) => assert.ok(Math.abs(a - e) < tol, `${what}: expected ${e} ± ${tol}, got ${a}`);
function code(fn: () => unknown): string | undefined {
  try { fn(); } catch (e) { return (e as { code?: string }).code; }
  return undefined;
}

const PNDM = { num_train_timesteps: 1000, beta_start: 0.0001, beta_end: 0.02, beta_schedule: 'linear' };
function pndmLoop(config: Record<string, unknown>): number {
  const s = createScheduler(config, { sampler: 'pndm' });
  s.setTimesteps(10);
  let x = dummySampleDeter();
  for (const t of s.timesteps) x = s.step(dummyModel(x, t), t, x);
  assert.ok(s.finished);
  return sumAbs(x);
}

test('PNDM: diffusers full loop (PRK warm-up + PLMS), no noise (198.1318 / 0.2580)', () => {
  const sum = pndmLoop(PNDM);
  near(sum, 198.1318, 1e-2, 'sum');
  near(sum / DUMMY_N, 0.258, 1e-3, 'mean');
});
test('PNDM: v_prediction (67.3986 / 0.0878)', () => {
  const sum = pndmLoop({ ...PNDM, prediction_type: 'v_prediction' });
  near(sum, 67.3986, 1e-2, 'sum');
  near(sum / DUMMY_N, 0.0878, 1e-3, 'mean');
});
test('PNDM: set_alpha_to_one true / false with beta_start 0.01 (230.0399 / 186.9482)', () => {
  near(pndmLoop({ ...PNDM, set_alpha_to_one: true, beta_start: 0.01 }), 230.0399, 1e-2, 'sum (true)');
  near(pndmLoop({ ...PNDM, set_alpha_to_one: false, beta_start: 0.01 }), 186.9482, 1e-2, 'sum (false)');
});
test('PNDM: timesteps with steps_offset 1, as diffusers lists them', () => {
  const s = createScheduler({ ...PNDM, steps_offset: 1 }, { sampler: 'pndm' });
  s.setTimesteps(10);
  assert.equal([...s.timesteps], [901, 851, 851, 801, 801, 751, 751, 701, 701, 651, 651, 601, 601, 501, 401, 301, 201, 101, 1]);
  const k = createScheduler({ ...PNDM, steps_offset: 1, skip_prk_steps: true }, { sampler: 'pndm' });
  k.setTimesteps(10);
  assert.equal([...k.timesteps], [901, 801, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
});

test('LCM: diffusers one-step loop (18.7097 / 0.0244)', () => {
  const s = createScheduler({ num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', prediction_type: 'epsilon' }, { sampler: 'lcm' });
  s.setTimesteps(1);
  let x = dummySampleDeter();
  for (const t of s.timesteps) x = s.step(dummyModel(x, t), t, x);
  near(sumAbs(x), 18.7097, 1e-3, 'sum');
  near(sumAbs(x) / DUMMY_N, 0.0244, 1e-3, 'mean');
});
test('LCM: timesteps follow the original_inference_steps schedule', () => {
  const s = createScheduler({}, { sampler: 'lcm' });
  s.setTimesteps(4);
  assert.equal([...s.timesteps], [999, 759, 499, 259]);
  assert.equal([...s.timesteps], lcmTimesteps({ num_train_timesteps: 1000 } as LcmConfig, 4));
  assert.is(code(() => s.setTimesteps(51)), 'OUT_OF_RANGE');
});

function relErr(a: Float32Array, b: Float64Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) { num = Math.max(num, Math.abs(a[i]! - b[i]!)); den = Math.max(den, Math.abs(b[i]!)); }
  return num / Math.max(den, 1e-30);
}
const rnd = (rand: () => number, n: number) => Float32Array.from({ length: n }, () => rand() * 2 - 1);

const SD = { num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear' as const, steps_offset: 1 };
let seed = 101;
for (const skip of [true, false]) {
  for (const prediction_type of ['epsilon', 'v_prediction'] as const) {
    for (const timestep_spacing of ['leading', 'trailing', 'linspace'] as const) {
      test(`PNDM skip_prk_steps=${skip} / ${prediction_type} / ${timestep_spacing} matches the reference step by step`, () => {
        const cfg: PndmConfig = { ...SD, prediction_type, timestep_spacing, skip_prk_steps: skip, set_alpha_to_one: false };
        for (const [steps, branches] of [[12, null], [7, [-6.5, 7.5]]] as const) {
          const rand = seededRandom(seed++);
          const len = 301;
          const s = createScheduler(cfg as unknown as Record<string, unknown>, { sampler: 'pndm' });
          s.setTimesteps(steps);
          const r = new RefPndm(cfg);
          r.setTimesteps(steps);
          assert.equal([...s.timesteps], r.timesteps, 'timesteps');
          let x: Float32Array = rnd(rand, len);
          for (const t of s.timesteps) {
            let out: Float32Array, m: Float64Array;
            if (branches) {
              const br = rnd(rand, len * 2);
              out = s.stepGuided(br, branches, t, x);
              m = combine(br, [...branches], len);
            } else {
              const mo = rnd(rand, len);
              out = s.step(mo, t, x);
              m = Float64Array.from(mo);
            }
            const expect = r.step(m, t, Float64Array.from(x));
            const e = relErr(out, expect);
            assert.ok(e <= 1e-5, `t=${t}: relative error ${e}`);
            x = out;
          }
        }
      });
    }
  }
}

for (const prediction_type of ['epsilon', 'v_prediction', 'sample'] as const) {
  for (const clip_sample of [false, true]) {
    test(`LCM ${prediction_type} clip_sample=${clip_sample} matches the reference, predOriginal = denoised`, () => {
      const cfg: LcmConfig = { ...SD, steps_offset: 0, prediction_type, timestep_spacing: 'leading', clip_sample, clip_sample_range: 0.8 };
      const rand = seededRandom(seed++);
      const len = 257;
      const s = createScheduler(cfg as unknown as Record<string, unknown>, { sampler: 'lcm', seed: 5 });
      s.setTimesteps(6);
      const ts = lcmTimesteps(cfg, 6);
      assert.equal([...s.timesteps], ts);
      const acp = alphasCumprod(cfg, 'ddim');
      let x: Float32Array = rnd(rand, len);
      for (let i = 0; i < ts.length; i++) {
        const mo = rnd(rand, len), noise = rnd(rand, len), pred = new Float32Array(len);
        const out = s.step(mo, ts[i]!, x, { noise, predOriginal: pred });
        const [expect, den] = lcmStep(cfg, acp, ts, i, Float64Array.from(mo), Float64Array.from(x), noise);
        assert.ok(relErr(out, expect) <= 1e-5, `step ${i}: ${relErr(out, expect)}`);
        if (!clip_sample) assert.ok(relErr(pred, den) <= 1e-5, `denoised ${i}`);
        x = out;
      }
    });
  }
}

test('PNDM re-entered at a later step restarts the multistep (lower order) and matches a restarted reference', () => {
  const cfg: PndmConfig = { ...SD, prediction_type: 'epsilon', timestep_spacing: 'leading', skip_prk_steps: true };
  const s = createScheduler(cfg as unknown as Record<string, unknown>, { sampler: 'pndm' });
  s.setTimesteps(20);
  const rand = seededRandom(7);
  const j = 9;
  s.setStepIndex(j);
  // Reference: a PLMS whose counter is past the start (no repeated step) and whose ets is empty.
  const r = new RefPndm(cfg);
  r.setTimesteps(20);
  r.counter = j;
  let x: Float32Array = rnd(rand, 64);
  for (const t of s.timesteps.slice(j)) {
    const mo = rnd(rand, 64);
    const out = s.step(mo, t, x);
    // diffusers' PLMS with fewer than 4 stored outputs uses the lower Adams-Bashforth orders
    const expect = r.step(Float64Array.from(mo), t, Float64Array.from(x));
    assert.ok(relErr(out, expect) <= 1e-5);
    x = out;
  }
  assert.is(code(() => s.setStepIndex(1)), 'UNSUPPORTED');
  const p = createScheduler({ ...PNDM }, { sampler: 'pndm' });
  p.setTimesteps(10);
  assert.is(code(() => p.setStepIndex(5)), 'UNSUPPORTED'); // inside the Runge-Kutta warm-up
  p.setStepIndex(12);
});

test('PNDM / LCM bad configs are typed errors naming the field', () => {
  assert.is(code(() => createScheduler({ prediction_type: 'sample' }, { sampler: 'pndm' })), 'UNSUPPORTED_CONFIG');
  assert.is(code(() => createScheduler({ skip_prk_steps: 'yes' }, { sampler: 'pndm' })), 'INVALID_CONFIG');
  const p = createScheduler({}, { sampler: 'pndm' });
  assert.is(code(() => p.setTimesteps(3)), 'OUT_OF_RANGE'); // the PRK warm-up needs 4 steps
  assert.is(code(() => createScheduler({ thresholding: true }, { sampler: 'lcm' })), 'UNSUPPORTED_CONFIG');
  assert.is(code(() => createScheduler({ original_inference_steps: 0 }, { sampler: 'lcm' })), 'INVALID_CONFIG');
  assert.is(code(() => createScheduler({}, { sampler: 'pndm', useKarrasSigmas: true })), 'UNSUPPORTED_OPTION');
});

test('scheduler_config.json: PNDM and LCM classes map to their samplers; an unknown class is an explicit error', () => {
  assert.is(samplerFromConfig({ _class_name: 'PNDMScheduler' }), 'pndm');
  assert.is(samplerFromConfig({ _class_name: 'LCMScheduler' }), 'lcm');
  assert.is(samplerFromConfig({ _class_name: 'DDIMScheduler' }), 'ddim');
  assert.is(code(() => samplerFromConfig({ _class_name: 'UniPCMultistepScheduler' })), 'UNSUPPORTED_SCHEDULER');
  assert.is(code(() => samplerFromConfig({})), 'UNSUPPORTED_SCHEDULER');
  assert.is(samplerFromConfig({ _class_name: 'UniPCMultistepScheduler' }, 'dpmpp-2m'), 'dpmpp-2m');
});

test.run();
