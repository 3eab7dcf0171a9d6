/**
 * diffusers `scheduler_config.json` -> the resolved configuration of one of
 * ragdiff's samplers.
 *
 * Rules:
 * - Keys starting with `_` (`_class_name`, `_diffusers_version`) are ignored.
 * - A key of diffusers' scheduler vocabulary that the chosen sampler does not use
 *   is ignored, as diffusers' `from_config` ignores it (e.g. `skip_prk_steps`, or
 *   `solver_order` given to DDIM).
 * - A key the sampler uses is validated; a value ragdiff does not implement
 *   (e.g. `thresholding: true`, `algorithm_type: "sde-dpmsolver++"`) is a
 *   RangeError with code `UNSUPPORTED_CONFIG` naming the field.
 * - Any other key is a RangeError with code `UNKNOWN_CONFIG_KEY` naming it.
 * - Wrong types are TypeErrors (`INVALID_CONFIG`), bad values RangeErrors (`INVALID_CONFIG`).
 * - Missing keys take the default of the diffusers class the sampler mirrors.
 */
import { rangeError, typeError } from '../errors.js';
import type { NativeSchedulerConfig } from '../native.js';

export type SamplerName = 'ddim' | 'euler' | 'euler-ancestral' | 'dpmpp-2m' | 'pndm' | 'lcm';
export const SAMPLER_NAMES: readonly SamplerName[] = ['ddim', 'euler', 'euler-ancestral', 'dpmpp-2m', 'pndm', 'lcm'];

/** The diffusers class each sampler reproduces. */
export const DIFFUSERS_CLASS: Record<SamplerName, string> = {
  ddim: 'DDIMScheduler',
  euler: 'EulerDiscreteScheduler',
  'euler-ancestral': 'EulerAncestralDiscreteScheduler',
  'dpmpp-2m': 'DPMSolverMultistepScheduler',
  pndm: 'PNDMScheduler',
  lcm: 'LCMScheduler',
};

/** The sampler that reproduces a diffusers class (`_class_name`); null for a class ragdiff does not implement. */
export function samplerForClass(className: unknown): SamplerName | null {
  for (const [k, v] of Object.entries(DIFFUSERS_CLASS)) if (v === className) return k as SamplerName;
  return null;
}

/** A parsed scheduler_config.json (any diffusers scheduler). */
export type DiffusersSchedulerConfig = Record<string, unknown>;

const COMMON = [
  'num_train_timesteps', 'beta_start', 'beta_end', 'beta_schedule', 'trained_betas',
  'prediction_type', 'timestep_spacing', 'steps_offset', 'rescale_betas_zero_snr',
] as const;

/** Keys each sampler reads (besides COMMON). */
const USED: Record<SamplerName, readonly string[]> = {
  ddim: ['clip_sample', 'clip_sample_range', 'set_alpha_to_one', 'thresholding', 'dynamic_thresholding_ratio', 'sample_max_value'],
  euler: ['interpolation_type', 'use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas', 'sigma_min', 'sigma_max', 'timestep_type', 'final_sigmas_type'],
  'euler-ancestral': [],
  'dpmpp-2m': [
    'solver_order', 'algorithm_type', 'solver_type', 'lower_order_final', 'euler_at_final', 'use_karras_sigmas',
    'use_exponential_sigmas', 'use_beta_sigmas', 'use_lu_lambdas', 'use_flow_sigmas', 'flow_shift', 'final_sigmas_type',
    'lambda_min_clipped', 'variance_type', 'thresholding', 'dynamic_thresholding_ratio', 'sample_max_value',
    'use_dynamic_shifting', 'time_shift_type',
  ],
  pndm: ['skip_prk_steps', 'set_alpha_to_one'],
  lcm: [
    'original_inference_steps', 'clip_sample', 'clip_sample_range', 'set_alpha_to_one', 'thresholding',
    'dynamic_thresholding_ratio', 'sample_max_value', 'timestep_scaling',
  ],
};

/** diffusers scheduler fields ragdiff knows of; ignored when the chosen sampler does not use them. */
const VOCABULARY = new Set<string>([
  ...COMMON, ...USED.ddim, ...USED.euler, ...USED['dpmpp-2m'],
  'skip_prk_steps', 'variance_type', 'clip_sample', 'set_alpha_to_one', 'predict_x0', 'solver_p', 'disable_corrector',
  'original_inference_steps', 'timestep_scaling', 'sigma_data', 'rho', 'shift', 'base_shift', 'max_shift',
  'base_image_seq_len', 'max_image_seq_len', 'invert_sigmas', 'shift_terminal', 'use_karras', 'noise_sampler_seed',
  's_noise', 's_churn', 's_tmin', 's_tmax', 'tau_func', 'predictor_order', 'corrector_order', 'lambda_min',
]);

/** The resolved configuration, in diffusers' own key names (round-trips through createScheduler). */
export interface ResolvedSchedulerConfig {
  readonly _class_name: string;
  readonly num_train_timesteps: number;
  readonly beta_start: number;
  readonly beta_end: number;
  readonly beta_schedule: 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
  readonly trained_betas: readonly number[] | null;
  readonly prediction_type: 'epsilon' | 'v_prediction' | 'sample';
  readonly timestep_spacing: 'leading' | 'trailing' | 'linspace';
  readonly steps_offset: number;
  readonly rescale_betas_zero_snr: boolean;
  readonly [key: string]: unknown;
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'an array';
  return v === null ? 'null' : typeof v === 'object' ? 'an object' : String(v);
}

function badType(key: string, want: string, v: unknown): never {
  throw typeError('INVALID_CONFIG', `config.${key} must be ${want}, got ${show(v)}`);
}
function badValue(key: string, want: string, v: unknown): never {
  throw rangeError('INVALID_CONFIG', `config.${key} must be ${want}, got ${show(v)}`);
}
function unsupported(key: string, v: unknown, why: string): never {
  throw rangeError('UNSUPPORTED_CONFIG', `config.${key} = ${show(v)} is not supported by ragdiff: ${why}`);
}

class Reader {
  constructor(private readonly c: DiffusersSchedulerConfig) {}
  has(key: string): boolean {
    return this.c[key] !== undefined;
  }
  num(key: string, dflt: number, check: (v: number) => boolean, want: string): number {
    const v = this.c[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'number') badType(key, 'a number', v);
    if (!check(v)) badValue(key, want, v);
    return v;
  }
  int(key: string, dflt: number, lo: number, hi: number): number {
    return this.num(key, dflt, (v) => Number.isInteger(v) && v >= lo && v <= hi, `an integer in ${lo}..${hi}`);
  }
  bool(key: string, dflt: boolean, allowNull = false): boolean {
    const v = this.c[key];
    if (v === undefined || (allowNull && v === null)) return dflt;
    if (typeof v !== 'boolean') badType(key, 'a boolean', v);
    return v;
  }
  oneOf<T extends string>(key: string, dflt: T, allowed: readonly T[]): T {
    const v = this.c[key];
    if (v === undefined) return dflt;
    if (typeof v !== 'string') badType(key, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, v);
    if (!(allowed as readonly string[]).includes(v)) badValue(key, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, v);
    return v as T;
  }
  mustBeOff(key: string, why: string): void {
    const v = this.c[key];
    if (v === undefined || v === null || v === false) return;
    if (typeof v !== 'boolean') badType(key, 'a boolean', v);
    unsupported(key, v, why);
  }
  raw(key: string): unknown {
    return this.c[key];
  }
}

export interface SchedulerOptionsForConfig {
  sampler: SamplerName;
  useKarrasSigmas?: boolean;
  eta?: number;
}

/** Parses and validates a diffusers config for `sampler`; returns the native config and the resolved diffusers config. */
export function resolveSchedulerConfig(
  config: DiffusersSchedulerConfig,
  options: SchedulerOptionsForConfig,
): { native: NativeSchedulerConfig; resolved: ResolvedSchedulerConfig } {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw typeError('INVALID_TYPE', `config must be a parsed scheduler_config.json object, got ${show(config)}`);
  }
  const sampler = options.sampler;
  const used = new Set<string>([...COMMON, ...USED[sampler]]);
  for (const key of Object.keys(config)) {
    if (key.startsWith('_')) continue;
    if (!VOCABULARY.has(key) && !used.has(key)) {
      throw rangeError('UNKNOWN_CONFIG_KEY', `config.${key} is not a diffusers scheduler field that ragdiff knows (misspelt?)`);
    }
  }
  const r = new Reader(config);
  const T = r.int('num_train_timesteps', 1000, 2, 100000);
  const betaStart = r.num('beta_start', 0.0001, (v) => v > 0 && v < 1, 'a number in (0, 1)');
  const betaEnd = r.num('beta_end', 0.02, (v) => v > 0 && v < 1, 'a number in (0, 1)');
  const betaSchedule = r.oneOf('beta_schedule', 'linear', ['linear', 'scaled_linear', 'squaredcos_cap_v2'] as const);
  let trainedBetas: number[] | null = null;
  const tb = r.raw('trained_betas');
  if (tb !== undefined && tb !== null) {
    if (!Array.isArray(tb) && !(ArrayBuffer.isView(tb) && !(tb instanceof DataView))) badType('trained_betas', 'an array of numbers or null', tb);
    const arr = Array.from(tb as ArrayLike<unknown>);
    if (arr.length !== T) badValue('trained_betas', `an array of num_train_timesteps (${T}) numbers`, `${arr.length} entries`);
    arr.forEach((b, i) => {
      if (typeof b !== 'number' || !(b > 0 && b < 1)) badValue(`trained_betas[${i}]`, 'a number in (0, 1)', b);
    });
    trainedBetas = arr as number[];
  }
  const pt = r.raw('prediction_type');
  if (pt === 'flow_prediction') unsupported('prediction_type', pt, 'use epsilon, v_prediction or sample');
  const prediction = r.oneOf('prediction_type', 'epsilon', ['epsilon', 'v_prediction', 'sample'] as const);
  const alphaSampler = sampler === 'ddim' || sampler === 'pndm' || sampler === 'lcm';
  const spacing = r.oneOf('timestep_spacing', alphaSampler ? 'leading' : 'linspace', ['leading', 'trailing', 'linspace'] as const);
  const stepsOffset = r.int('steps_offset', 0, 0, T - 1);
  const rescale = r.bool('rescale_betas_zero_snr', false);

  const native: NativeSchedulerConfig = {
    sampler, numTrainTimesteps: T, betaSchedule, betaStart, betaEnd,
    trainedBetas: trainedBetas ? Float64Array.from(trainedBetas) : null,
    predictionType: prediction, timestepSpacing: spacing, stepsOffset, rescaleBetasZeroSnr: rescale,
    useKarrasSigmas: false, eta: 0, clipSample: false, clipSampleRange: 1, setAlphaToOne: true,
    interpolationType: 'linear', continuousTimesteps: false, sigmaMin: NaN, sigmaMax: NaN, finalSigmasType: 'zero',
    solverOrder: 2, solverType: 'midpoint', lowerOrderFinal: true, eulerAtFinal: false, lambdaMinClipped: -Infinity,
  };
  const resolved: Record<string, unknown> = {
    _class_name: DIFFUSERS_CLASS[sampler], num_train_timesteps: T, beta_start: betaStart, beta_end: betaEnd,
    beta_schedule: betaSchedule, trained_betas: trainedBetas, prediction_type: prediction, timestep_spacing: spacing,
    steps_offset: stepsOffset, rescale_betas_zero_snr: rescale,
  };

  if (options.useKarrasSigmas !== undefined && typeof options.useKarrasSigmas !== 'boolean') {
    throw typeError('INVALID_TYPE', `options.useKarrasSigmas must be a boolean, got ${show(options.useKarrasSigmas)}`);
  }
  if (options.useKarrasSigmas && (alphaSampler || sampler === 'euler-ancestral')) {
    throw rangeError('UNSUPPORTED_OPTION', `options.useKarrasSigmas is offered for "euler" and "dpmpp-2m" (as in diffusers), not "${sampler}"`);
  }
  if (options.eta !== undefined && sampler !== 'ddim') {
    throw rangeError('UNSUPPORTED_OPTION', `options.eta applies to "ddim" only, not "${sampler}"`);
  }

  if (sampler === 'ddim') {
    r.mustBeOff('thresholding', 'dynamic thresholding is not implemented; use clip_sample');
    native.clipSample = r.bool('clip_sample', true);
    native.clipSampleRange = r.num('clip_sample_range', 1, (v) => v > 0 && Number.isFinite(v), 'a positive number');
    native.setAlphaToOne = r.bool('set_alpha_to_one', true);
    const eta = options.eta ?? 0;
    if (typeof eta !== 'number') throw typeError('INVALID_TYPE', `options.eta must be a number, got ${show(eta)}`);
    if (!(eta >= 0 && eta <= 1)) throw rangeError('OUT_OF_RANGE', `options.eta must be in [0, 1], got ${eta}`);
    native.eta = eta;
    Object.assign(resolved, {
      clip_sample: native.clipSample, clip_sample_range: native.clipSampleRange, set_alpha_to_one: native.setAlphaToOne, thresholding: false,
    });
  }
  if (sampler === 'euler' || sampler === 'dpmpp-2m') {
    native.useKarrasSigmas = options.useKarrasSigmas ?? r.bool('use_karras_sigmas', false, true);
    r.mustBeOff('use_exponential_sigmas', 'exponential sigmas are not implemented; use use_karras_sigmas');
    r.mustBeOff('use_beta_sigmas', 'beta sigmas are not implemented; use use_karras_sigmas');
    native.finalSigmasType = r.oneOf('final_sigmas_type', 'zero', ['zero', 'sigma_min'] as const);
    Object.assign(resolved, { use_karras_sigmas: native.useKarrasSigmas, final_sigmas_type: native.finalSigmasType });
  }
  if (sampler === 'euler') {
    native.interpolationType = r.oneOf('interpolation_type', 'linear', ['linear', 'log_linear'] as const);
    const smin = r.raw('sigma_min'), smax = r.raw('sigma_max');
    native.sigmaMin = smin === undefined || smin === null ? NaN : r.num('sigma_min', NaN, (v) => v > 0 && Number.isFinite(v), 'a positive number or null');
    native.sigmaMax = smax === undefined || smax === null ? NaN : r.num('sigma_max', NaN, (v) => v > 0 && Number.isFinite(v), 'a positive number or null');
    const tt = r.oneOf('timestep_type', 'discrete', ['discrete', 'continuous'] as const);
    native.continuousTimesteps = tt === 'continuous' && prediction === 'v_prediction';
    Object.assign(resolved, {
      interpolation_type: native.interpolationType, sigma_min: Number.isNaN(native.sigmaMin) ? null : native.sigmaMin,
      sigma_max: Number.isNaN(native.sigmaMax) ? null : native.sigmaMax, timestep_type: tt,
    });
  }
  if (sampler === 'dpmpp-2m') {
    const order = r.raw('solver_order');
    if (order === 3) unsupported('solver_order', order, 'dpmpp-2m is the second-order multistep solver; use 1 or 2');
    native.solverOrder = r.int('solver_order', 2, 1, 2);
    const alg = r.raw('algorithm_type');
    if (alg !== undefined && alg !== 'dpmsolver++' && alg !== 'deis') {
      if (typeof alg !== 'string') badType('algorithm_type', 'a string', alg);
      unsupported('algorithm_type', alg, 'dpmpp-2m implements "dpmsolver++"');
    }
    const st = r.oneOf('solver_type', 'midpoint', ['midpoint', 'heun', 'logrho', 'bh1', 'bh2'] as const);
    native.solverType = st === 'heun' ? 'heun' : 'midpoint'; // diffusers maps logrho / bh1 / bh2 to midpoint
    native.lowerOrderFinal = r.bool('lower_order_final', true);
    native.eulerAtFinal = r.bool('euler_at_final', false);
    const lmc = r.raw('lambda_min_clipped');
    native.lambdaMinClipped = lmc === undefined || lmc === null ? -Infinity
      : r.num('lambda_min_clipped', -Infinity, (v) => !Number.isNaN(v) && v !== Infinity, 'a number (or -Infinity)');
    const vt = r.raw('variance_type');
    if (vt === 'learned' || vt === 'learned_range') unsupported('variance_type', vt, 'models that predict their variance are not supported');
    r.mustBeOff('thresholding', 'dynamic thresholding is not implemented');
    r.mustBeOff('use_lu_lambdas', 'Lu lambdas are not implemented; use use_karras_sigmas');
    r.mustBeOff('use_flow_sigmas', 'flow-matching sigmas are not implemented');
    r.mustBeOff('use_dynamic_shifting', 'dynamic shifting is not implemented');
    Object.assign(resolved, {
      solver_order: native.solverOrder, algorithm_type: 'dpmsolver++', solver_type: native.solverType,
      lower_order_final: native.lowerOrderFinal, euler_at_final: native.eulerAtFinal,
      lambda_min_clipped: native.lambdaMinClipped, variance_type: null, thresholding: false,
    });
  }
  if (sampler === 'pndm') {
    if (prediction === 'sample') unsupported('prediction_type', prediction, 'PNDMScheduler steps epsilon or v_prediction models');
    if (rescale) unsupported('rescale_betas_zero_snr', rescale, 'PNDMScheduler has no zero-SNR rescaling');
    // diffusers' default is false: the Runge-Kutta warm-up (12 model calls over the first 3 steps).
    native.skipPrkSteps = r.bool('skip_prk_steps', false);
    native.setAlphaToOne = r.bool('set_alpha_to_one', false);
    Object.assign(resolved, { skip_prk_steps: native.skipPrkSteps, set_alpha_to_one: native.setAlphaToOne });
  }
  if (sampler === 'lcm') {
    r.mustBeOff('thresholding', 'dynamic thresholding is not implemented; use clip_sample');
    native.clipSample = r.bool('clip_sample', false);
    native.clipSampleRange = r.num('clip_sample_range', 1, (v) => v > 0 && Number.isFinite(v), 'a positive number');
    native.setAlphaToOne = r.bool('set_alpha_to_one', true);
    native.originalInferenceSteps = r.int('original_inference_steps', 50, 1, T);
    native.timestepScaling = r.num('timestep_scaling', 10, (v) => v > 0 && Number.isFinite(v), 'a positive number');
    Object.assign(resolved, {
      clip_sample: native.clipSample, clip_sample_range: native.clipSampleRange, set_alpha_to_one: native.setAlphaToOne,
      original_inference_steps: native.originalInferenceSteps, timestep_scaling: native.timestepScaling, thresholding: false,
    });
  }
  return { native, resolved: Object.freeze(resolved) as ResolvedSchedulerConfig };
}

/**
 * JSON.parse for scheduler_config.json files written by Python, which may hold
 * the non-standard tokens `Infinity`, `-Infinity` and `NaN` (e.g. diffusers'
 * `"lambda_min_clipped": -Infinity`).
 */
export function parseSchedulerConfigJson(text: string): DiffusersSchedulerConfig {
  if (typeof text !== 'string') throw typeError('INVALID_TYPE', 'text must be a string');
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (inString) {
      out += ch;
      if (ch === '\\') out += text[++i] ?? '';
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === '"') { inString = true; out += ch; continue; }
    const rest = text.slice(i, i + 9);
    if (rest.startsWith('-Infinity')) { out += '"\\u0000-Infinity"'; i += 8; continue; }
    if (rest.startsWith('Infinity')) { out += '"\\u0000Infinity"'; i += 7; continue; }
    if (rest.startsWith('NaN')) { out += '"\\u0000NaN"'; i += 2; continue; }
    out += ch;
  }
  const parsed: unknown = JSON.parse(out, (_k, v) =>
    v === '\u0000-Infinity' ? -Infinity : v === '\u0000Infinity' ? Infinity : v === '\u0000NaN' ? NaN : v);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw typeError('INVALID_CONFIG', 'scheduler_config.json must hold a JSON object');
  return parsed as DiffusersSchedulerConfig;
}
