/**
 * Loads the native addon (build/Release/ragdiff.node) and describes its interface.
 *
 * The addon is loaded on first use, so importing ragdiff never fails because of
 * it; the first call that needs it throws a RagdiffError with code
 * `ADDON_NOT_BUILT` (no file) or `ADDON_LOAD_FAILED` (the file would not load),
 * naming the path, the underlying error and what to install.
 *
 * Every function here validates its own arguments too (types, lengths, ranges)
 * and throws TypeError / RangeError with a `code`, so calling it directly cannot
 * crash the process. The public API validates first, with friendlier messages.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RagdiffError } from './errors.js';

/** Flags of {@link NativeStepParams}; keep in sync with native/core/step_kernel.h. */
export const enum StepFlags {
  Clip = 1,
  EpsFromClippedX0 = 2,
}

/** Scheduler handle created by `createScheduler` (native/binding/scheduler_binding.cc). */
export interface NativeScheduler {
  /** Computes the schedule for n inference steps; returns timesteps and sigmas (sigmas has n + 1 entries, or is empty for DDIM). */
  setTimesteps(n: number): { timesteps: Float64Array; sigmas: Float64Array };
  /** Model-input scale at step index i (1 / sqrt(sigma^2 + 1) for sigma samplers, 1 for DDIM / DPM++). */
  inputScale(stepIndex: number): number;
  /** sqrt(alpha_cumprod) and sqrt(1 - alpha_cumprod) of a train timestep (0..num_train_timesteps-1), for addNoise. */
  noiseCoefficients(t: number): [number, number];
  /**
   * One (guided) step at step index i: modelOutput = sum_k weights[k] * branches[k*len ... ].
   * `histIn` / `histOut` are the solver's previous / next data predictions (DPM++; null otherwise).
   * Returns -1, or the index (into the concatenated inputs) of the first non-finite value, in which
   * case `out` and `histOut` hold unspecified values and nothing else changed.
   */
  step(
    stepIndex: number,
    t: number,
    branches: Float32Array,
    weights: Float64Array,
    sample: Float32Array,
    noise: Float32Array | null,
    histIn: Float32Array | null,
    histOut: Float32Array | null,
    out: Float32Array,
    lowerOrder: boolean,
  ): number;
  /** Whether step index i needs `noise`. */
  needsNoise(stepIndex: number): boolean;
  /** Whether step index i reads the solver history (second-order update). */
  usesHistory(stepIndex: number): boolean;
}

export interface NativeSchedulerConfig {
  numTrainTimesteps: number;
  betaSchedule: 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
  betaStart: number;
  betaEnd: number;
  trainedBetas: Float64Array | null;
  predictionType: 'epsilon' | 'v_prediction' | 'sample';
  timestepSpacing: 'leading' | 'trailing' | 'linspace';
  stepsOffset: number;
  sampler: 'ddim' | 'euler' | 'euler-ancestral' | 'dpmpp-2m';
  useKarrasSigmas: boolean;
  eta: number;
  clipSample: boolean;
  clipSampleRange: number;
  setAlphaToOne: boolean;
  rescaleBetasZeroSnr: boolean;
  interpolationType: 'linear' | 'log_linear';
  sigmaMin: number; // NaN: unset
  sigmaMax: number; // NaN: unset
  finalSigmasType: 'zero' | 'sigma_min';
  solverOrder: number;
  solverType: 'midpoint' | 'heun';
  lowerOrderFinal: boolean;
  eulerAtFinal: boolean;
  lambdaMinClipped: number; // -Infinity: unset
}

export interface NativeCuda {
  /** True when the addon was built with CUDA and a device is usable. */
  available(): boolean;
  /** Why CUDA is unavailable (empty when available). */
  reason(): string;
  /** Device name, or '' when unavailable. */
  deviceName(): string;
  /** The CUDA twin of NativeScheduler.step, on host arrays (copied to and from the device). */
  step(
    scheduler: NativeScheduler,
    stepIndex: number,
    t: number,
    branches: Float32Array,
    weights: Float64Array,
    sample: Float32Array,
    noise: Float32Array | null,
    histIn: Float32Array | null,
    histOut: Float32Array | null,
    out: Float32Array,
    lowerOrder: boolean,
  ): number;
  /** The CUDA twin of normalFill. */
  normalFill(seed: number, offset: number, out: Float32Array): Float32Array;
  /**
   * Times the device-resident kernels: a plain copy (cudaMemcpy device to device), one DDIM
   * step, one DPM++ step and a guided step with `branches` branches on `len` floats.
   * Returns GB/s (bytes read + written per second) for each.
   */
  bench(len: number, branches: number, iterations: number): { copy: number; ddim: number; dpmpp: number; guided: number; guidedBytes: number };
}

export interface NativeAddon {
  abiVersion: number;
  threadCount(): number;
  setThreadCount(n: number): void;
  normalFill(seed: number, offset: number, out: Float32Array): Float32Array;
  philox4x32(c0: number, c1: number, c2: number, c3: number, k0: number, k1: number): [number, number, number, number];
  chwToRgb8(src: Float32Array, width: number, height: number, out: Uint8Array): number;
  rgb8ToChw(src: Uint8Array, width: number, height: number, channels: number, out: Float32Array): Float32Array;
  createScheduler(config: NativeSchedulerConfig): NativeScheduler;
  cuda: NativeCuda;
}

const here = dirname(fileURLToPath(import.meta.url));
// src/ when run from sources, dist/src/ when compiled.
const root = here.endsWith(join('dist', 'src')) ? join(here, '..', '..') : join(here, '..');
export const addonPath = join(root, 'build', 'Release', 'ragdiff.node');

const HELP =
  'To build it: install a C++17 compiler (g++ or clang++), CMake >= 3.18 (or python3 for the node-gyp fallback), ' +
  'then run `npm run build:addon` in the ragdiff package directory.';

let cached: NativeAddon | undefined;

/** The loaded addon; throws a RagdiffError (ADDON_NOT_BUILT / ADDON_LOAD_FAILED) when it cannot be loaded. */
export function native(): NativeAddon {
  if (cached) return cached;
  if (!existsSync(addonPath)) {
    throw new RagdiffError('ADDON_NOT_BUILT', `ragdiff's native addon is missing: ${addonPath} does not exist. ${HELP}`);
  }
  try {
    const require = createRequire(import.meta.url);
    cached = require(addonPath) as NativeAddon;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new RagdiffError('ADDON_LOAD_FAILED', `ragdiff's native addon ${addonPath} could not be loaded: ${why}. ${HELP}`, { cause: e });
  }
  return cached;
}
