// CUDA twins against their CPU versions, through the addon: every sampler's
// step (plain and guided, vectorised and scalar paths, with noise and history),
// non-finite detection, and the Philox normal generator. Skipped, saying why,
// where the addon has no usable CUDA device.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native, type NativeSchedulerConfig } from '../src/native.js';
import { seededRandom } from './helpers.js';

const n = native();
const available = n.cuda.available();
if (!available) console.log(`CUDA tests skipped: ${n.cuda.reason()}`);
else console.log(`CUDA device: ${n.cuda.deviceName()}`);
// Without a device the GPU tests are not registered at all (the skip reason is printed above).
const gpuTest: (name: string, fn: () => void) => void = available ? (name, fn) => test(name, fn) : () => {};

const BASE: NativeSchedulerConfig = {
  sampler: 'ddim', numTrainTimesteps: 1000, betaSchedule: 'scaled_linear', betaStart: 0.00085, betaEnd: 0.012, trainedBetas: null,
  predictionType: 'epsilon', timestepSpacing: 'leading', stepsOffset: 1, useKarrasSigmas: false, eta: 0, clipSample: false,
  clipSampleRange: 1, setAlphaToOne: false, rescaleBetasZeroSnr: false, interpolationType: 'linear', continuousTimesteps: false,
  sigmaMin: NaN, sigmaMax: NaN, finalSigmasType: 'zero', solverOrder: 2, solverType: 'midpoint', lowerOrderFinal: true,
  eulerAtFinal: false, lambdaMinClipped: -Infinity,
};

const rand = seededRandom(2024);
const randomArray = (len: number) => Float32Array.from({ length: len }, () => rand() * 2 - 1);

function compare(cpu: Float32Array, gpu: Float32Array, what: string): number {
  let maxDiff = 0, maxAbs = 0, exact = 0;
  for (let i = 0; i < cpu.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(cpu[i]! - gpu[i]!));
    maxAbs = Math.max(maxAbs, Math.abs(cpu[i]!));
    if (cpu[i] === gpu[i]) exact++;
  }
  assert.ok(maxDiff <= 1e-6 * Math.max(1, maxAbs), `${what}: max |cpu - gpu| = ${maxDiff}`);
  return exact / cpu.length;
}

gpuTest('every sampler step on the GPU matches the CPU kernel', () => {
  const cases: [Partial<NativeSchedulerConfig>, number[]][] = [
    [{ sampler: 'ddim' }, [1]],
    [{ sampler: 'ddim', clipSample: true, eta: 0.7 }, [-6.5, 7.5]],
    [{ sampler: 'ddim', predictionType: 'v_prediction', clipSample: true }, [0.2, 0.3, 0.5]],
    [{ sampler: 'euler', useKarrasSigmas: true }, [1]],
    [{ sampler: 'euler-ancestral', predictionType: 'v_prediction' }, [-1, 2]],
    [{ sampler: 'dpmpp-2m' }, [-6.5, 7.5]],
    [{ sampler: 'dpmpp-2m', predictionType: 'sample', solverType: 'heun' }, [0.1, 0.2, 0.3, 0.2, 0.2]],
    // PNDM steps over its 8 stored-output slots as branches; LCM noises every step but the last
    [{ sampler: 'pndm', skipPrkSteps: true }, [2.25, -2.5, 1.5, -0.25, 0, 0, 0, 0]],
    [{ sampler: 'pndm', predictionType: 'v_prediction' }, [1 / 6, 0, 0, 0, 0, 1 / 3, 1 / 3, 1 / 6]],
    [{ sampler: 'lcm' }, [-6.5, 7.5]],
    [{ sampler: 'lcm', clipSample: true, predictionType: 'v_prediction' }, [1]],
  ];
  let exactSum = 0, count = 0;
  for (const [extra, weights] of cases) {
    for (const len of [4 * 64 * 64, 4 * 32 * 32 + 3, 1]) {
      const s = n.createScheduler({ ...BASE, ...extra });
      const { flags } = s.setTimesteps(6);
      const w = Float64Array.from(weights);
      let x = randomArray(len);
      let hist: Float32Array | null = null;
      for (let i = 0; i < 6; i++) {
        const branches = randomArray(len * w.length), noise = flags[i]! & 1 ? randomArray(len) : null;
        const useHist = hist !== null && (flags[i]! & 2) !== 0;
        const x0c = new Float32Array(len), x0g = new Float32Array(len), oc = new Float32Array(len), og = new Float32Array(len);
        assert.ok(s.step(i, hist !== null, branches, w, x, noise, useHist ? hist : null, x0c, oc));
        assert.ok(n.cuda.step(s, i, hist !== null, branches, w, x, noise, useHist ? hist : null, x0g, og));
        const what = `${JSON.stringify(extra)} len=${len} step ${i}`;
        exactSum += compare(oc, og, what);
        compare(x0c, x0g, `${what} (x0)`);
        count++;
        if (flags[i]! & 4) hist = x0c;
        x = oc;
      }
    }
  }
  console.log(`  bit-identical elements: ${((100 * exactSum) / count).toFixed(3)}%`);
});

gpuTest('the GPU kernel reports NaN / Inf inputs like the CPU kernel', () => {
  const s = n.createScheduler({ ...BASE, sampler: 'euler' });
  s.setTimesteps(4);
  const len = 4096, x = randomArray(len), m = randomArray(len);
  m[4000] = NaN;
  const w = new Float64Array([1]);
  assert.is(s.step(0, false, m, w, x, null, null, null, new Float32Array(len)), false);
  assert.is(n.cuda.step(s, 0, false, m, w, x, null, null, null, new Float32Array(len)), false);
  m[4000] = 0;
  x[17] = -Infinity;
  assert.is(n.cuda.step(s, 0, false, m, w, x, null, null, null, new Float32Array(len)), false);
  x[17] = 0;
  assert.is(n.cuda.step(s, 0, false, m, w, x, null, null, null, new Float32Array(len)), true);
});

gpuTest('the GPU Philox generator gives the CPU stream', () => {
  for (const [seed, offset, len] of [[0, 0, 1000], [2 ** 40 + 3, 12345, 4097], [7, 3, 1 << 20]] as const) {
    const cpu = n.normalFill(seed, offset, new Float32Array(len));
    const gpu = n.cuda.normalFill(seed, offset, new Float32Array(len));
    const exact = compare(cpu, gpu, `seed ${seed} offset ${offset}`);
    assert.ok(exact > 0.999, `only ${exact} of values bit-identical`);
  }
});

test('without a device, the CUDA entry points say why instead of crashing', () => {
  if (available) {
    assert.type(n.cuda.deviceName(), 'string');
    return;
  }
  assert.ok(n.cuda.reason().length > 0);
  assert.is(n.cuda.deviceName(), '');
  assert.throws(() => n.cuda.bench(1024, 2, 1), (e: unknown) => (e as { code?: string }).code === 'CUDA_UNAVAILABLE');
  assert.throws(() => n.cuda.normalFill(0, 0, new Float32Array(4)), (e: unknown) => (e as { code?: string }).code === 'CUDA_UNAVAILABLE');
});

test.run();
