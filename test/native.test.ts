// The addon: a helpful error when it is missing or broken, argument checks in
// the binding itself (a direct caller cannot crash the process), and results
// that do not depend on the thread count.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { addonPath, loadAddon, native, type NativeSchedulerConfig } from '../src/native.js';
import { tempDir, seededRandom } from './helpers.js';

const coded = (Ctor: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, code: string) => (e: unknown) =>
  e instanceof Ctor && (e as { code?: unknown }).code === code;

const CONFIG: NativeSchedulerConfig = {
  sampler: 'dpmpp-2m', numTrainTimesteps: 1000, betaSchedule: 'scaled_linear', betaStart: 0.00085, betaEnd: 0.012, trainedBetas: null,
  predictionType: 'epsilon', timestepSpacing: 'linspace', stepsOffset: 0, useKarrasSigmas: false, eta: 0, clipSample: false,
  clipSampleRange: 1, setAlphaToOne: true, rescaleBetasZeroSnr: false, interpolationType: 'linear', continuousTimesteps: false,
  sigmaMin: NaN, sigmaMax: NaN, finalSigmasType: 'zero', solverOrder: 2, solverType: 'midpoint', lowerOrderFinal: true,
  eulerAtFinal: false, lambdaMinClipped: -Infinity,
};

test('the built addon loads from build/Release/ragdiff.node', () => {
  assert.ok(addonPath.endsWith(join('build', 'Release', 'ragdiff.node')));
  assert.is(native().abiVersion, 1);
});

test('a missing addon: ADDON_NOT_BUILT naming the path and what to install', () => {
  const p = '/nonexistent/ragdiff.node';
  assert.throws(() => loadAddon(p), (e: unknown) => {
    const m = (e as Error).message;
    return (e as { code?: string }).code === 'ADDON_NOT_BUILT' && m.includes(p) && /cmake/i.test(m) && m.includes('npm run build:addon');
  });
});

test('a broken addon: ADDON_LOAD_FAILED with the underlying error', () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'ragdiff.node');
    writeFileSync(p, 'not a shared object');
    assert.throws(() => loadAddon(p), (e: unknown) => {
      const m = (e as Error).message;
      return (e as { code?: string }).code === 'ADDON_LOAD_FAILED' && m.includes(p) && /header|ELF|invalid|too short/i.test(m) && (e as Error).cause !== undefined;
    });
  } finally {
    cleanup();
  }
});

test('the binding validates scheduler configs and step arguments itself', () => {
  const n = native();
  assert.throws(() => n.createScheduler({ ...CONFIG, sampler: 'heun' as 'ddim' }), coded(RangeError, 'INVALID_CONFIG'));
  assert.throws(() => n.createScheduler({ ...CONFIG, numTrainTimesteps: 1.5 }), coded(RangeError, 'INVALID_CONFIG'));
  assert.throws(() => n.createScheduler({ ...CONFIG, betaStart: NaN }), coded(RangeError, 'INVALID_CONFIG'));
  const { betaEnd: _, ...missing } = CONFIG;
  assert.throws(() => n.createScheduler(missing as NativeSchedulerConfig), coded(TypeError, 'INVALID_CONFIG'));
  assert.throws(() => n.createScheduler(null as unknown as NativeSchedulerConfig), coded(TypeError, 'INVALID_TYPE'));
  const s = n.createScheduler(CONFIG);
  const x = new Float32Array(8), w = new Float64Array([1]);
  assert.throws(() => s.step(0, false, x, w, x, null, null, null, x), (e: unknown) => (e as { code?: string }).code === 'TIMESTEPS_NOT_SET');
  assert.throws(() => s.setTimesteps(0), coded(RangeError, 'OUT_OF_RANGE'));
  assert.throws(() => s.setTimesteps(-3), coded(RangeError, 'OUT_OF_RANGE'));
  s.setTimesteps(5);
  const out = new Float32Array(8);
  assert.throws(() => s.step(5, false, x, w, x, null, null, null, out), coded(RangeError, 'OUT_OF_RANGE'));
  assert.throws(() => s.step(0.5, false, x, w, x, null, null, null, out), coded(RangeError, 'OUT_OF_RANGE'));
  assert.throws(() => s.step(0, 1 as unknown as boolean, x, w, x, null, null, null, out), coded(TypeError, 'INVALID_TYPE'));
  assert.throws(() => s.step(0, false, new Float32Array(7), w, x, null, null, null, out), coded(RangeError, 'LENGTH_MISMATCH'));
  assert.throws(() => s.step(0, false, x, new Float64Array(0), x, null, null, null, out), coded(RangeError, 'OUT_OF_RANGE'));
  assert.throws(() => s.step(0, false, x, new Float64Array([NaN]), x, null, null, null, out), coded(RangeError, 'NON_FINITE'));
  assert.throws(() => s.step(0, false, x, w, x, null, null, null, new Float32Array(3)), coded(RangeError, 'LENGTH_MISMATCH'));
  assert.throws(() => s.step(0, false, x, x as never, x, null, null, null, out), coded(TypeError, 'INVALID_TYPE'));
  // step 1 with history claimed but not given
  assert.throws(() => s.step(1, true, x, w, x, null, null, null, out), coded(TypeError, 'HISTORY_REQUIRED'));
  // overlapping output views are refused (out may only be sample itself)
  const big = new Float32Array(16);
  assert.throws(() => s.step(0, false, x, w, big.subarray(0, 8), null, null, null, big.subarray(4, 12)), coded(RangeError, 'INVALID_VALUE'));
  assert.throws(() => s.step(0, false, x, w, out, null, null, out, out), coded(RangeError, 'INVALID_VALUE'));
  assert.ok(s.step(0, false, x, w, out, null, null, null, out));
  const ea = n.createScheduler({ ...CONFIG, sampler: 'euler-ancestral' });
  ea.setTimesteps(3);
  assert.throws(() => ea.step(0, false, x, w, x, null, null, null, out), coded(TypeError, 'NOISE_REQUIRED'));
  assert.throws(() => (n.scaleDiv as (...a: unknown[]) => boolean)(x, 0, out), coded(RangeError, 'INVALID_VALUE'));
  assert.throws(() => (n.axpby as (...a: unknown[]) => boolean)(1, x, 1, new Float32Array(2), out), coded(RangeError, 'LENGTH_MISMATCH'));
  assert.throws(() => (n.combineBranches as (...a: unknown[]) => boolean)(x, new Float64Array(3), out), coded(RangeError, 'LENGTH_MISMATCH'));
});

test('step results do not depend on the number of threads', () => {
  const n = native();
  const before = n.threadCount();
  const len = 4 * 128 * 128 * 16 + 7; // above the size where the pool starts (2 x 2^19 elements)
  const rand = seededRandom(11);
  const branches = Float32Array.from({ length: 2 * len }, () => rand() * 2 - 1);
  const sample = Float32Array.from({ length: len }, () => rand() * 2 - 1);
  const run = (threads: number) => {
    n.setThreadCount(threads);
    const s = n.createScheduler(CONFIG);
    s.setTimesteps(10);
    const out = new Float32Array(len), x0 = new Float32Array(len);
    assert.ok(s.step(0, false, branches, new Float64Array([-2, 3]), sample, null, null, x0, out));
    return [out, x0];
  };
  try {
    const [a, a0] = run(1);
    const [b, b0] = run(4);
    assert.ok(a!.every((v, i) => v === b![i]) && a0!.every((v, i) => v === b0![i]));
  } finally {
    n.setThreadCount(before);
  }
  assert.throws(() => n.setThreadCount(0), coded(RangeError, 'OUT_OF_RANGE'));
});

test('concurrent use from worker threads: each environment loads the addon and steps independently', async () => {
  const { Worker } = await import('node:worker_threads');
  const src = `
    const { parentPort, workerData } = require('node:worker_threads');
    const n = require(workerData.path);
    const s = n.createScheduler(workerData.config);
    s.setTimesteps(10);
    const len = 300000, x = new Float32Array(len).fill(0.5), m = new Float32Array(len).fill(0.25), out = new Float32Array(len);
    let ok = true;
    for (let i = 0; i < 20; i++) ok = ok && s.step(0, false, m, new Float64Array([1]), x, null, null, null, out);
    parentPort.postMessage({ ok, v: out[12345] });`;
  const runOne = () => new Promise<{ ok: boolean; v: number }>((resolve, reject) => {
    const w = new Worker(src, { eval: true, workerData: { path: addonPath, config: CONFIG } });
    w.once('message', resolve);
    w.once('error', reject);
  });
  const results = await Promise.all([runOne(), runOne(), runOne()]);
  assert.ok(results.every((r) => r.ok && r.v === results[0]!.v && Number.isFinite(r.v)));
});

test.run();
