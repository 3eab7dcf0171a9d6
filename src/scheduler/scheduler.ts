/**
 * Diffusers-compatible schedulers over ragdiff's native sampler core.
 *
 *   const s = createScheduler(config, { sampler: 'dpmpp-2m' });
 *   s.setTimesteps(25);
 *   let x = noise.map((v) => v * s.initNoiseSigma);
 *   for (const t of s.timesteps) {
 *     const eps = await unet(s.scaleModelInput(x, t), t);
 *     s.step(eps, t, x, { out: x });                    // in place: no allocation per step
 *   }
 *
 * Classifier-free (or any N-branch) guidance is fused into the step:
 *   s.stepGuided(branches, [1 - g, g], t, x, { out: x }) // branches = [uncond | cond], N x x.length
 *
 * State: the step index (null until the first step or scaleModelInput resolves
 * it from t, as in diffusers) and, for DPM-Solver++, the previous step's data
 * prediction. `setStepIndex(i, { history })` re-enters the schedule anywhere
 * (img2img strength, trajectory jumps); `history` hands DPM-Solver++ the data
 * prediction of step i - 1 so it can stay second order.
 *
 * Tensors are Float32Arrays of any shape, flattened. NaN / ±Infinity in any input
 * tensor is rejected with a RangeError (code NON_FINITE) naming the tensor and
 * index (so is a result that overflows float32); the scheduler's state (step
 * index, history, noise stream position) is then unchanged, while `out` (which
 * may be `sample` itself) holds unspecified values. The check costs one test per
 * output element inside the fused kernel, not a separate pass.
 */
import { RagdiffError, rangeError, typeError } from '../errors.js';
import { native, type NativeScheduler } from '../native.js';
import { NoiseGenerator } from '../rng.js';
import { assertFinite, assertFloat32Array } from '../validate.js';
import {
  type DiffusersSchedulerConfig, type ResolvedSchedulerConfig, type SamplerName, SAMPLER_NAMES, resolveSchedulerConfig,
} from './config.js';

export interface CreateSchedulerOptions {
  sampler: SamplerName;
  /** Karras sigmas (euler, dpmpp-2m); overrides the config's use_karras_sigmas. */
  useKarrasSigmas?: boolean;
  /** DDIM's eta in [0, 1] (0: deterministic DDIM, 1: DDPM-like). */
  eta?: number;
  /** Seed of the noise stream used by stochastic steps when step() gets no `noise` (default 0). */
  seed?: number;
  /** Noise stream used by stochastic steps when step() gets no `noise` (overrides seed). */
  generator?: NoiseGenerator;
}

/** A Float32Array this module allocates. */
type OwnedF32 = Float32Array<ArrayBuffer>;

export interface StepOptions<O extends Float32Array = OwnedF32> {
  /** Noise for stochastic steps (euler-ancestral; ddim with eta > 0); drawn from the scheduler's generator when absent. */
  noise?: Float32Array;
  /** Where to write the next sample; may be `sample` itself. A new array when absent. */
  out?: O;
  /** Receives the step's prediction of the clean sample (diffusers' pred_original_sample). */
  predOriginal?: Float32Array;
}

const FLAG_NOISE = 1;
const FLAG_SECOND_ORDER = 2;
const FLAG_KEEPS_X0 = 4;
const FLAG_UNDEFINED = 128;



export class Scheduler {
  readonly sampler: SamplerName;
  /** The resolved diffusers configuration (diffusers key names; round-trips through createScheduler). */
  readonly config: ResolvedSchedulerConfig;
  /** Model evaluations per step (1 for every sampler here), as diffusers' `order`. */
  readonly order = 1;
  readonly generator: NoiseGenerator;

  readonly #native: NativeScheduler;
  #timesteps: readonly number[] = [];
  #sigmas: Float64Array | null = null;
  #flags: Uint8Array = new Uint8Array(0);
  #initNoiseSigma: number;
  #numInferenceSteps = 0;
  #stepIndex: number | null = null;
  #beginIndex: number | null = null;
  // DPM-Solver++ history: two buffers, the current x0 in #hist[#cur] when #hasHistory.
  #hist: [Float32Array | null, Float32Array | null] = [null, null];
  #cur = 0;
  #hasHistory = false;
  #noiseBuf: Float32Array | null = null;
  // PNDM: model outputs in 8 slots (native/core/schedule.h, PndmPlan), how many the
  // history slots hold, whether the schedule was re-entered, and the saved sample.
  #pndmRing: Float32Array | null = null;
  #pndmStored = 0;
  #pndmRestarted = false;
  #pndmSaved: Float32Array | null = null;
  readonly #one = new Float64Array([1]);
  #weights = new Float64Array(2);

  constructor(config: DiffusersSchedulerConfig, options: CreateSchedulerOptions) {
    if (typeof options !== 'object' || options === null) throw typeError('INVALID_TYPE', 'options must be an object with a sampler');
    if (!SAMPLER_NAMES.includes(options.sampler)) {
      throw rangeError('INVALID_VALUE', `options.sampler must be one of ${SAMPLER_NAMES.map((s) => JSON.stringify(s)).join(', ')}, got ${JSON.stringify(options.sampler)}`);
    }
    const { native: cfg, resolved } = resolveSchedulerConfig(config, options);
    this.sampler = options.sampler;
    this.config = resolved;
    if (options.generator !== undefined && !(options.generator instanceof NoiseGenerator)) {
      throw typeError('INVALID_TYPE', 'options.generator must be a NoiseGenerator');
    }
    this.generator = options.generator ?? new NoiseGenerator(options.seed ?? 0);
    this.#native = native().createScheduler(cfg);
    this.#initNoiseSigma = this.#native.initNoiseSigma();
  }

  /** Inference timesteps (descending), after setTimesteps. */
  get timesteps(): readonly number[] {
    return this.#timesteps;
  }
  /** Sigmas of the sigma samplers (one per timestep, then the final sigma); null for DDIM. */
  get sigmas(): Float64Array | null {
    return this.#sigmas;
  }
  get numInferenceSteps(): number {
    return this.#numInferenceSteps;
  }
  /** Standard deviation of the initial noise (multiply unit noise by it). */
  get initNoiseSigma(): number {
    return this.#initNoiseSigma;
  }
  /** Index of the next step; null until the first step (or scaleModelInput / setStepIndex) fixes it. */
  get stepIndex(): number | null {
    return this.#stepIndex;
  }
  /** The index set by setStepIndex, used by addNoise; null otherwise. */
  get beginIndex(): number | null {
    return this.#beginIndex;
  }
  /** True once every timestep has been stepped. */
  get finished(): boolean {
    return this.#stepIndex !== null && this.#stepIndex >= this.#timesteps.length;
  }
  /** DPM-Solver++: a copy of the data prediction the next step will use as history; null when there is none. */
  get history(): Float32Array | null {
    return this.#hasHistory ? this.#hist[this.#cur]!.slice() : null;
  }

  /**
   * Computes the timesteps for `n` inference steps (1..num_train_timesteps) and
   * resets the step index and solver history. `sampleLength` preallocates the
   * solver's buffers so that no step allocates.
   */
  setTimesteps(n: number, options: { sampleLength?: number } = {}): void {
    const T = this.config.num_train_timesteps;
    if (typeof n !== 'number') throw typeError('INVALID_TYPE', `numInferenceSteps must be an integer, got ${typeof n}`);
    if (!Number.isInteger(n) || n < 1 || n > T) {
      throw rangeError('OUT_OF_RANGE', `numInferenceSteps must be an integer in 1..${T} (num_train_timesteps), got ${n}`);
    }
    const r = this.#native.setTimesteps(n);
    this.#timesteps = Object.freeze(Array.from(r.timesteps));
    this.#sigmas = this.#alphaSampler() ? null : r.sigmas;
    this.#flags = r.flags;
    this.#initNoiseSigma = r.initNoiseSigma;
    this.#numInferenceSteps = n;
    this.#stepIndex = null;
    this.#beginIndex = null;
    this.#hasHistory = false;
    this.#pndmStored = 0;
    this.#pndmRestarted = false;
    const len = options.sampleLength;
    if (len !== undefined) {
      if (!Number.isInteger(len) || len < 1) throw rangeError('OUT_OF_RANGE', `sampleLength must be a positive integer, got ${len}`);
      this.#ensureBuffers(len);
    }
  }

  /**
   * Re-enters the schedule at step `index` (0..timesteps.length - 1): the next
   * step() must be given timesteps[index]. For DPM-Solver++, `history` is the data
   * prediction (x0) of step index - 1, so the solver stays second order;
   * without it the next step is first order. addNoise uses this index too
   * (diffusers' set_begin_index).
   */
  setStepIndex(index: number, options: { history?: Float32Array | null } = {}): void {
    this.#requireTimesteps();
    const N = this.#timesteps.length;
    if (!Number.isInteger(index) || index < 0 || index >= N) {
      throw rangeError('OUT_OF_RANGE', `step index must be an integer in 0..${N - 1}, got ${index}`);
    }
    const h = options.history ?? null;
    if (h !== null) {
      assertFloat32Array('history', h);
      if (this.sampler !== 'dpmpp-2m') throw rangeError('INVALID_VALUE', `history applies to dpmpp-2m only, not ${this.sampler}`);
      if (index === 0) throw rangeError('INVALID_VALUE', 'history needs a previous step: step index must be at least 1');
      assertFinite('history', h);
      this.#ensureBuffers(h.length);
      this.#hist[this.#cur]!.set(h);
    }
    this.#hasHistory = h !== null;
    if (this.sampler === 'pndm') {
      // Re-entry restarts the linear multistep at low order (PLMS keeps no history across a jump).
      this.#pndmStored = 0;
      this.#pndmRestarted = index !== 0;
      if (index !== 0) this.#native.pndmPlan(index, 0, true); // throws for steps that cannot be entered
    }
    this.#stepIndex = index;
    this.#beginIndex = index;
  }

  /** Alias of setStepIndex(index) without history, diffusers' name. */
  setBeginIndex(index: number): void {
    this.setStepIndex(index);
  }

  /**
   * The model input for timestep t: sample / sqrt(sigma^2 + 1) for the Euler
   * samplers; DDIM and DPM-Solver++ need no scaling and return `sample` itself
   * (or copy it into `out`). Fixes the step index from t when it is not set.
   */
  scaleModelInput<S extends Float32Array>(sample: S, t: number, out?: S): S {
    assertFloat32Array('sample', sample);
    if (out !== undefined) assertFloat32Array('out', out, sample.length);
    const i = this.#resolveIndex(t);
    this.#stepIndex = i;
    const d = this.#native.inputDivisor(i);
    if (d === 1) {
      if (out !== undefined && out !== sample) out.set(sample);
      return out ?? sample;
    }
    const dst = out ?? (new Float32Array(sample.length) as Float32Array as S);
    if (!native().scaleDiv(sample, d, dst)) this.#throwNonFinite([['sample', sample]]);
    return dst;
  }

  /** One step from `sample` at timestep t given the model output; returns the sample at the next timestep. */
  step<O extends Float32Array = OwnedF32>(modelOutput: Float32Array, t: number, sample: Float32Array, options: StepOptions<O> = {}): O {
    assertFloat32Array('sample', sample);
    assertFloat32Array('modelOutput', modelOutput, sample.length);
    return this.#step(modelOutput, this.#one, t, sample, options, 'modelOutput');
  }

  /**
   * One step with guidance fused in: the model output is sum_k weights[k] *
   * branchOutputs[k], where branchOutputs holds the N branches back to back
   * (N x sample.length, branch-major). Classifier-free guidance at scale g:
   * branches [uncond, cond], weights [1 - g, g]. Weights may change every step.
   */
  stepGuided<O extends Float32Array = OwnedF32>(
    branchOutputs: Float32Array, weights: ArrayLike<number>, t: number, sample: Float32Array, options: StepOptions<O> = {},
  ): O {
    assertFloat32Array('sample', sample);
    assertFloat32Array('branchOutputs', branchOutputs);
    if (weights === null || typeof weights !== 'object' || typeof weights.length !== 'number') {
      throw typeError('INVALID_TYPE', 'weights must be an array of numbers');
    }
    const n = weights.length;
    if (n < 1 || n > 64) throw rangeError('OUT_OF_RANGE', `weights must have 1..64 entries, got ${n}`);
    if (branchOutputs.length !== n * sample.length) {
      throw rangeError('LENGTH_MISMATCH', `branchOutputs must have weights.length x sample.length = ${n} x ${sample.length} = ${n * sample.length} elements, got ${branchOutputs.length}`);
    }
    if (this.#weights.length !== n) this.#weights = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const w = weights[k];
      if (typeof w !== 'number') throw typeError('INVALID_TYPE', `weights[${k}] must be a number, got ${typeof w}`);
      if (!Number.isFinite(w)) throw rangeError('NON_FINITE', `weights[${k}] must be finite, got ${w}`);
      this.#weights[k] = w;
    }
    return this.#step(branchOutputs, this.#weights, t, sample, options, 'branchOutputs');
  }

  /**
   * Noises a clean sample to timestep t (img2img strength): DDIM uses any training
   * timestep t; the sigma samplers use the step of t in the schedule (or the index
   * set by setStepIndex), as diffusers' add_noise.
   */
  addNoise<O extends Float32Array = OwnedF32>(original: Float32Array, noise: Float32Array, t: number, out?: O): O {
    assertFloat32Array('original', original);
    assertFloat32Array('noise', noise, original.length);
    if (out !== undefined) assertFloat32Array('out', out, original.length);
    if (typeof t !== 'number' || !Number.isFinite(t)) throw typeError('INVALID_TYPE', `t must be a finite number, got ${String(t)}`);
    let i = -1;
    if (!this.#alphaSampler()) {
      this.#requireTimesteps();
      i = this.#beginIndex === null ? this.#indexForTimestep(t) : this.#stepIndex ?? this.#beginIndex;
    } else if (!Number.isInteger(t) || t < 0 || t >= this.config.num_train_timesteps) {
      throw rangeError('OUT_OF_RANGE', `t must be an integer training timestep in 0..${this.config.num_train_timesteps - 1}, got ${t}`);
    }
    const [a, b] = this.#native.noiseCoefficients(i, t);
    const dst = out ?? (new Float32Array(original.length) as Float32Array as O);
    if (!native().axpby(a, original, b, noise, dst)) this.#throwNonFinite([['original', original], ['noise', noise]]);
    return dst;
  }

  // --- internals --------------------------------------------------------------------------

  #requireTimesteps(): void {
    if (this.#timesteps.length === 0) throw new RagdiffError('TIMESTEPS_NOT_SET', 'call setTimesteps(n) before stepping the scheduler');
  }

  #indexForTimestep(t: number): number {
    let first = -1;
    for (let k = 0; k < this.#timesteps.length; k++) {
      if (this.#timesteps[k] === t) {
        if (first >= 0) return k; // diffusers: the second occurrence when t repeats
        first = k;
      }
    }
    if (first < 0) {
      throw rangeError('TIMESTEP_NOT_IN_SCHEDULE', `t = ${t} is not one of this schedule's timesteps (${this.#describeTimesteps()})`);
    }
    return first;
  }

  #describeTimesteps(): string {
    const ts = this.#timesteps;
    return ts.length <= 8 ? ts.join(', ') : `${ts.slice(0, 4).join(', ')}, …, ${ts.slice(-2).join(', ')}`;
  }

  #resolveIndex(t: number): number {
    this.#requireTimesteps();
    if (typeof t !== 'number' || Number.isNaN(t)) throw typeError('INVALID_TYPE', `t must be a number, got ${String(t)}`);
    const N = this.#timesteps.length;
    if (this.#stepIndex === null) return this.#indexForTimestep(t);
    const i = this.#stepIndex;
    if (i >= N) {
      throw rangeError('SCHEDULE_FINISHED', `all ${N} steps have been taken; call setTimesteps() or setStepIndex() to sample again`);
    }
    if (this.#timesteps[i] !== t) {
      if (!this.#timesteps.includes(t)) {
        throw rangeError('TIMESTEP_NOT_IN_SCHEDULE', `t = ${t} is not one of this schedule's timesteps (${this.#describeTimesteps()})`);
      }
      throw rangeError('TIMESTEP_MISMATCH', `step ${i} is at t = ${this.#timesteps[i]}, got t = ${t} (use setStepIndex() to jump)`);
    }
    return i;
  }

  #ensureBuffers(len: number): void {
    if (this.sampler === 'dpmpp-2m' && (this.#hist[0] === null || this.#hist[0].length !== len)) {
      this.#hist = [new Float32Array(len), new Float32Array(len)];
      this.#cur = 0;
      this.#hasHistory = false;
    }
    if ((this.sampler === 'euler-ancestral' || (this.sampler === 'ddim' && (this.config as { eta?: number }).eta !== 0)) &&
        (this.#noiseBuf === null || this.#noiseBuf.length !== len)) {
      this.#noiseBuf = new Float32Array(len);
    }
  }

  #alphaSampler(): boolean {
    return this.sampler === 'ddim' || this.sampler === 'pndm' || this.sampler === 'lcm';
  }

  #step<O extends Float32Array>(branches: Float32Array, weights: Float64Array, t: number, sample: Float32Array, options: StepOptions<O>, name: string): O {
    if (typeof options !== 'object' || options === null) throw typeError('INVALID_TYPE', 'options must be an object');
    const i = this.#resolveIndex(t);
    if (this.sampler === 'pndm') return this.#stepPndm(i, branches, weights, sample, options, name);
    const len = sample.length;
    const { out, predOriginal } = options;
    if (out !== undefined) assertFloat32Array('out', out, len);
    if (predOriginal !== undefined) assertFloat32Array('predOriginal', predOriginal, len);
    const flags = this.#flags[i]!;
    if (flags & FLAG_UNDEFINED) {
      // Let the native layer say why (e.g. epsilon prediction with a zero-SNR schedule).
      this.#native.step(i, this.#hasHistory, branches, weights, sample, null, null, null, out ?? new Float32Array(len));
    }
    const keepsX0 = (flags & FLAG_KEEPS_X0) !== 0;
    if (keepsX0 && (this.#hist[0] === null || this.#hist[0].length !== len)) {
      if (this.#hasHistory) throw rangeError('LENGTH_MISMATCH', `sample must have ${this.#hist[0]!.length} elements like the previous step, got ${len}`);
      this.#ensureBuffers(len);
    }
    let noise: Float32Array | null = null;
    const offsetBefore = this.generator.offset;
    if (flags & FLAG_NOISE) {
      if (options.noise !== undefined) {
        assertFloat32Array('noise', options.noise, len);
        noise = options.noise;
      } else {
        if (this.#noiseBuf === null || this.#noiseBuf.length !== len) this.#noiseBuf = new Float32Array(len);
        noise = this.generator.fillNormal(this.#noiseBuf);
      }
    }
    const history = this.#hasHistory && flags & FLAG_SECOND_ORDER ? this.#hist[this.#cur] : null;
    const x0Out = keepsX0 ? this.#hist[1 - this.#cur]! : predOriginal ?? null;
    const dst = out ?? (new Float32Array(len) as Float32Array as O);
    const ok = this.#native.step(i, this.#hasHistory, branches, weights, sample, noise, history, x0Out, dst);
    if (!ok) {
      if (noise !== null && options.noise === undefined) this.generator.seek(offsetBefore);
      const inputs: [string, Float32Array][] = [[name, branches], ['sample', sample]];
      if (noise) inputs.push([options.noise ? 'noise' : 'generated noise', noise]);
      if (history) inputs.push(['history', history]);
      this.#throwNonFinite(inputs);
    }
    if (keepsX0) {
      this.#cur = 1 - this.#cur;
      this.#hasHistory = true;
      if (predOriginal !== undefined) predOriginal.set(this.#hist[this.#cur]!);
    }
    this.#stepIndex = i + 1;
    return dst;
  }

  // PNDM: the guided model output goes into its slot, then one kernel pass over the
  // 8 slots with the plan's weights (unused slots weigh 0).
  #stepPndm<O extends Float32Array>(i: number, branches: Float32Array, weights: Float64Array, sample: Float32Array, options: StepOptions<O>, name: string): O {
    const len = sample.length;
    const { out, predOriginal } = options;
    if (out !== undefined) assertFloat32Array('out', out, len);
    if (predOriginal !== undefined) assertFloat32Array('predOriginal', predOriginal, len);
    if (this.#pndmRing === null || this.#pndmRing.length !== 8 * len) {
      if (this.#pndmStored > 0) throw rangeError('LENGTH_MISMATCH', `sample must have ${this.#pndmRing!.length / 8} elements like the previous step, got ${len}`);
      this.#pndmRing = new Float32Array(8 * len);
      this.#pndmSaved = new Float32Array(len);
    }
    const plan = this.#native.pndmPlan(i, this.#pndmStored, this.#pndmRestarted);
    const ring = this.#pndmRing;
    const slot = ring.subarray(plan.storeSlot * len, (plan.storeSlot + 1) * len);
    if (!native().combineBranches(branches, weights, slot)) this.#throwNonFinite([[name, branches]]);
    if (plan.saveSample) this.#pndmSaved!.set(sample);
    const from = plan.fromSaved ? this.#pndmSaved! : sample;
    const dst = out ?? (new Float32Array(len) as Float32Array as O);
    const ok = this.#native.step(i, false, ring, plan.weights, from, null, null, predOriginal ?? null, dst);
    if (!ok) this.#throwNonFinite([['sample', from]]);
    if (plan.append) this.#pndmStored++;
    this.#stepIndex = i + 1;
    return dst;
  }

  #throwNonFinite(inputs: [string, Float32Array][]): never {
    for (const [name, v] of inputs) assertFinite(name, v);
    throw rangeError('NON_FINITE', 'the result is not finite although every input is: the inputs are too large for float32');
  }
}

/** Creates a scheduler from a parsed diffusers scheduler_config.json. */
export function createScheduler(config: DiffusersSchedulerConfig, options: CreateSchedulerOptions): Scheduler {
  return new Scheduler(config, options);
}
