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

/** Scheduler handle (native/binding/scheduler_binding.cc). */
export interface NativeScheduler {
  /**
   * Computes the schedule for n inference steps. `sigmas` is empty for DDIM. `flags[i]`: 1 = step i needs
   * noise, 2 = step i is second order when history is held, 4 = step i keeps x0 as history, 128 = undefined.
   */
  setTimesteps(n: number): { timesteps: Float64Array; sigmas: Float64Array; flags: Uint8Array; initNoiseSigma: number };
  initNoiseSigma(): number;
  /** scale_model_input divides by this at step i (1 for DDIM and DPM-Solver++). */
  inputDivisor(stepIndex: number): number;
  /** add_noise(x, z) = a*x + b*z at step i (sigma samplers) or training timestep t (DDIM). */
  noiseCoefficients(stepIndex: number, t: number): [number, number];
  /**
   * Step i: model output = sum_k weights[k] * branches[k*len ...]; `history` is the previous data prediction
   * (second-order DPM-Solver++), `x0Out` receives this step's data prediction. `out` may be `sample`.
   * Returns false when an input holds NaN/Inf (out and x0Out are then unspecified).
   */
  step(
    stepIndex: number,
    hasHistory: boolean,
    branches: Float32Array,
    weights: Float64Array,
    sample: Float32Array,
    noise: Float32Array | null,
    history: Float32Array | null,
    x0Out: Float32Array | null,
    out: Float32Array,
  ): boolean;
  /**
   * PNDM only: how step i combines the model outputs kept in 8 slots (native/core/schedule.h, PndmPlan),
   * given how many outputs the history slots hold and whether the schedule was re-entered.
   */
  pndmPlan(stepIndex: number, storedOutputs: number, restarted: boolean): {
    storeSlot: number; append: boolean; fromSaved: boolean; saveSample: boolean; weights: Float64Array;
  };
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
  sampler: 'ddim' | 'euler' | 'euler-ancestral' | 'dpmpp-2m' | 'pndm' | 'lcm';
  /** PNDM: skip the Runge-Kutta warm-up (PLMS start, as Stable Diffusion 1.5). */
  skipPrkSteps?: boolean;
  /** LCM: the distillation schedule's step count. */
  originalInferenceSteps?: number;
  /** LCM: timestep scale of the boundary-condition scalings. */
  timestepScaling?: number;
  useKarrasSigmas: boolean;
  eta: number;
  clipSample: boolean;
  clipSampleRange: number;
  setAlphaToOne: boolean;
  rescaleBetasZeroSnr: boolean;
  interpolationType: 'linear' | 'log_linear';
  continuousTimesteps: boolean;
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
    hasHistory: boolean,
    branches: Float32Array,
    weights: Float64Array,
    sample: Float32Array,
    noise: Float32Array | null,
    history: Float32Array | null,
    x0Out: Float32Array | null,
    out: Float32Array,
  ): boolean;
  /** The CUDA twin of normalFill. */
  normalFill(seed: number, offset: number, out: Float32Array): Float32Array;
  /**
   * Times the device-resident kernels: a plain copy (cudaMemcpy device to device), one DDIM
   * step, one DPM++ step and a guided step with `branches` branches on `len` floats.
   * Returns GB/s (bytes read + written per second) for each.
   */
  bench(len: number, branches: number, iterations: number): { copy: number; ddim: number; dpmpp: number; guided: number; guidedBytes: number };
  /** The CUDA twin of NativeAddon.fuseContext, on host arrays (copied to and from the device); same checks, same result bits. */
  fuseContext: NativeAddon['fuseContext'];
  /**
   * Times the device-resident fusion of rows × (textLength + slots) × width (every row with its own
   * neighbour set, weights 0.5): ms per fusion, GB/s (bytes read + written) and a device-to-device copy of
   * the output's size for comparison.
   */
  fuseContextBench(rows: number, textLength: number, slots: number, width: number, texts: number, iterations: number): { ms: number; gbs: number; copyGbs: number };
  /** The CUDA twin of trajectoryTopK (distances on the GPU, the same selection). */
  trajectoryTopK(keys: Float32Array, dim: number, queries: Float32Array, k: number): NativeTopK;
  /** The CUDA twin of topkExact (scores on the GPU, the CPU's selection; same checks, same result bits). */
  topkExact: NativeAddon['topkExact'];
}

/** q × k neighbours per query, ascending squared L2 distance (ties: lower index first). */
export interface NativeTopK {
  indices: Int32Array;
  distances: Float32Array;
}

/** q × k results per query (k = min(requested k, candidates)), best first. */
export interface NativeTopKScores {
  indices: Int32Array;
  /** Squared L2 distances ('l2') or inner products ('ip'), as computed (float32 L2, double inner product). */
  scores: Float64Array;
  k: number;
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
  /** out = x / d (float32); false on non-finite x. out may be x. */
  scaleDiv(x: Float32Array, d: number, out: Float32Array): boolean;
  /** out = a*x + b*y (float32); false on non-finite input. out may be x or y. */
  axpby(a: number, x: Float32Array, b: number, y: Float32Array, out: Float32Array): boolean;
  /** out = sum_k weights[k] * branches[k*len ...]; false on non-finite input. */
  combineBranches(branches: Float32Array, weights: Float64Array, out: Float32Array): boolean;
  /**
   * Conditioning fusion (native/core/context_fusion.h), in place into `out`
   * ([rows][textLength + slots][width]): row r gets the text tokens of sequence textIndex[r]
   * of textStates ([texts][textLength][width]) and, in its slots, set neighbourIndex[r] of
   * neighbourTokens ([sets][slots][width]) scaled per slot by weights[r * slots + s]
   * (-1 or a zero weight: zeros; null weights: all ones; null neighbourIndex: all -1).
   * `out` must not share memory with an input. Returns `out`.
   */
  fuseContext(
    out: Float32Array,
    rows: number,
    textLength: number,
    slots: number,
    width: number,
    textStates: Float32Array,
    textIndex: Int32Array,
    neighbourTokens: Float32Array | null,
    neighbourIndex: Int32Array | null,
    weights: Float32Array | null,
  ): Float32Array;
  /**
   * The shared exact top-k (native/core/topk.h) of queries (q × dim, finite) over rows (n × dim, n may be 0):
   * 'l2' ascending squared L2 (float32), 'ip' descending inner product (double). Candidates: `subset` (row
   * indices, in that order) or every row, less rows whose `mask` byte (n bytes) is not 1. Ties keep candidate
   * order; NaN scores rank last.
   */
  topkExact(
    rows: Float32Array, dim: number, queries: Float32Array, k: number, metric: 'l2' | 'ip', subset: Int32Array | null, mask: Uint8Array | null,
  ): NativeTopKScores;
  /** Exact top-k over keys (n × dim) for a batch of queries (q × dim): topkExact 'l2' over every key; native/core/trajectory_lookup.h. */
  trajectoryTopK(keys: Float32Array, dim: number, queries: Float32Array, k: number): NativeTopK;
  /** w = argmin ||Kᵀw − q||² (+ ridge·trace/k·||w||²), solved in double; residual = ||Kᵀw − q|| / ||q||. */
  trajectoryWeights(neighbours: Float32Array, query: Float32Array, ridge: number): { weights: Float64Array; residual: number };
  /** out = Σ_j weights[j] · values[j] (double accumulation); false on a non-finite result. */
  trajectoryCombine(values: Float32Array, weights: Float64Array, out: Float32Array): boolean;
  /** k-means coarse quantiser: nlist centroids and each key's list. */
  ivfTrain(keys: Float32Array, dim: number, nlist: number, iterations: number, seed: number): { centroids: Float32Array; assign: Int32Array };
  /** Approximate top-k scanning the nprobe nearest lists (keys stored list by list). Missing neighbours: index -1. */
  ivfSearch(
    listKeys: Float32Array, listIds: Int32Array, offsets: Float64Array, centroids: Float32Array, dim: number,
    queries: Float32Array, k: number, nprobe: number,
  ): NativeTopK;
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

/**
 * Loads an addon file. Throws RagdiffError ADDON_NOT_BUILT when `path` does not
 * exist and ADDON_LOAD_FAILED when it does not load, each naming the path, the
 * cause and what to install.
 */
export function loadAddon(path: string = addonPath): NativeAddon {
  if (!existsSync(path)) {
    throw new RagdiffError('ADDON_NOT_BUILT', `ragdiff's native addon is missing: ${path} does not exist. ${HELP}`);
  }
  try {
    const require = createRequire(import.meta.url);
    return require(path) as NativeAddon;
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new RagdiffError('ADDON_LOAD_FAILED', `ragdiff's native addon ${path} could not be loaded: ${why}. ${HELP}`, { cause: e });
  }
}

/** The loaded addon (cached); throws like loadAddon when it cannot be loaded. */
export function native(): NativeAddon {
  cached ??= loadAddon(addonPath);
  return cached;
}
