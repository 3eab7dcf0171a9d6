/**
 * A float64 reference of diffusers' four schedulers, written from their Python
 * sources line by line (formulas unfolded, as diffusers writes them). Schedule
 * tables are stored as float32 (Math.fround) where diffusers stores float32
 * tensors; all step arithmetic is float64. Used by the tests only.
 */
const f = Math.fround;

export type Sampler = 'ddim' | 'euler' | 'euler-ancestral' | 'dpmpp-2m';
export interface RefConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
  trained_betas?: number[] | null;
  prediction_type: 'epsilon' | 'v_prediction' | 'sample';
  timestep_spacing: 'leading' | 'trailing' | 'linspace';
  steps_offset: number;
  rescale_betas_zero_snr?: boolean;
  clip_sample?: boolean;
  clip_sample_range?: number;
  set_alpha_to_one?: boolean;
  eta?: number;
  use_karras_sigmas?: boolean;
  interpolation_type?: 'linear' | 'log_linear';
  final_sigmas_type?: 'zero' | 'sigma_min';
  solver_order?: number;
  solver_type?: 'midpoint' | 'heun';
  lower_order_final?: boolean;
  euler_at_final?: boolean;
}

// --- numpy / torch helpers -------------------------------------------------------------
export function npRound(x: number): number {
  const r = Math.floor(x);
  const d = x - r;
  if (d > 0.5) return r + 1;
  if (d < 0.5) return r;
  return r % 2 === 0 ? r : r + 1;
}
export function npLinspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const div = num - 1;
  const step = (stop - start) / div;
  const y = Array.from({ length: num }, (_, i) => i * step + start);
  y[div] = stop;
  return y;
}
export function npArange(start: number, stop: number, step: number): number[] {
  const len = Math.max(0, Math.ceil((stop - start) / step));
  if (len === 0) return [];
  const y = [start];
  if (len > 1) y.push(start + step);
  const delta = (y[1] ?? start) - start;
  for (let i = 2; i < len; i++) y.push(start + i * delta);
  return y;
}
function npInterpIndex(x: number, fp: number[]): number {
  const n = fp.length;
  if (x <= 0) return fp[0]!;
  if (x >= n - 1) return fp[n - 1]!;
  const j = Math.floor(x);
  if (x === j) return fp[j]!;
  return (fp[j + 1]! - fp[j]!) * (x - j) + fp[j]!;
}
function torchLinspaceF32(start: number, end: number, steps: number): number[] {
  const s = f(start), e = f(end);
  if (steps === 1) return [s];
  const step = f(f(e - s) / (steps - 1));
  const half = Math.floor(steps / 2);
  return Array.from({ length: steps }, (_, i) => (i < half ? f(s + f(step * i)) : f(e - f(step * (steps - i - 1)))));
}
function cumprodF32(x: number[]): number[] {
  let acc = 1;
  return x.map((v) => f((acc *= v)));
}

// --- the training schedule -------------------------------------------------------------
export function alphasCumprod(c: RefConfig, sampler: Sampler): number[] {
  const T = c.num_train_timesteps;
  let betas: number[];
  if (c.trained_betas) betas = c.trained_betas.map(f);
  else if (c.beta_schedule === 'linear') betas = torchLinspaceF32(c.beta_start, c.beta_end, T);
  else if (c.beta_schedule === 'scaled_linear') betas = torchLinspaceF32(Math.sqrt(c.beta_start), Math.sqrt(c.beta_end), T).map((b) => f(b * b));
  else {
    const ab = (t: number) => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
    betas = Array.from({ length: T }, (_, i) => f(Math.min(1 - ab((i + 1) / T) / ab(i / T), 0.999)));
  }
  if (c.rescale_betas_zero_snr) {
    const acp = cumprodF32(betas.map((b) => f(1 - b)));
    let s = acp.map((a) => f(Math.sqrt(a)));
    const s0 = s[0]!, sT = s[s.length - 1]!;
    s = s.map((v) => f(v - sT));
    const k = f(s0 / f(s0 - sT));
    s = s.map((v) => f(v * k));
    const ab = s.map((v) => f(v * v));
    betas = ab.map((v, i) => (i === 0 ? f(1 - v) : f(1 - f(v / ab[i - 1]!))));
  }
  const acp = cumprodF32(betas.map((b) => f(1 - b)));
  if (c.rescale_betas_zero_snr && sampler !== 'ddim') acp[acp.length - 1] = 2 ** -24;
  return acp;
}

const trainSigmas = (acp: number[]) => acp.map((a) => f(Math.sqrt(f(f(1 - a) / a))));

function sigmaToT(sigma: number, logSigmas: number[]): number {
  const ls = Math.log(Math.max(sigma, 1e-10));
  let count = 0, best = 0, bestCount = 0;
  logSigmas.forEach((l, j) => {
    if (ls - l >= 0) count++;
    if (count > bestCount) { bestCount = count; best = j; }
  });
  const low = Math.min(best, logSigmas.length - 2), high = low + 1;
  let w = (logSigmas[low]! - ls) / (logSigmas[low]! - logSigmas[high]!);
  w = Math.min(1, Math.max(0, w));
  return (1 - w) * low + w * high;
}
function karras(smin: number, smax: number, n: number): number[] {
  const rho = 7, lo = smin ** (1 / rho), hi = smax ** (1 / rho);
  return npLinspace(0, 1, n).map((r) => (hi + r * (lo - hi)) ** rho);
}

// --- set_timesteps -------------------------------------------------------------------------
export interface RefSchedule {
  acp: number[];
  timesteps: number[];
  sigmas: number[];
  n: number;
}

export function setTimesteps(c: RefConfig, sampler: Sampler, n: number): RefSchedule {
  const T = c.num_train_timesteps;
  const acp = alphasCumprod(c, sampler);
  if (sampler === 'ddim') {
    let ts: number[];
    if (c.timestep_spacing === 'linspace') ts = npLinspace(0, T - 1, n).map(npRound).reverse();
    else if (c.timestep_spacing === 'leading') {
      const r = Math.floor(T / n);
      ts = Array.from({ length: n }, (_, i) => i * r).reverse().map((t) => t + c.steps_offset);
    } else ts = npArange(T, 0, -T / n).map((v) => npRound(v) - 1);
    return { acp, timesteps: ts, sigmas: [], n };
  }
  const sig = trainSigmas(acp);
  const logSig = sig.map((s) => f(Math.log(s)));
  if (sampler === 'dpmpp-2m') {
    let ts: number[];
    if (c.timestep_spacing === 'linspace') ts = npLinspace(0, T - 1, n + 1).map(npRound).reverse().slice(0, n);
    else if (c.timestep_spacing === 'leading') {
      const r = Math.floor(T / (n + 1));
      ts = Array.from({ length: n + 1 }, (_, i) => i * r).reverse().slice(0, n).map((t) => t + c.steps_offset);
    } else ts = npArange(T, 0, -T / n).map((v) => npRound(v) - 1);
    let sigmas: number[];
    if (c.use_karras_sigmas) {
      sigmas = karras(sig[0]!, sig[T - 1]!, n);
      ts = sigmas.map((s) => sigmaToT(s, logSig)).map((t) => Math.trunc(c.beta_schedule === 'squaredcos_cap_v2' ? t : npRound(t)));
    } else sigmas = ts.map((t) => npInterpIndex(t, sig));
    const last = c.final_sigmas_type === 'sigma_min' ? f(Math.sqrt(f(f(1 - acp[0]!) / acp[0]!))) : 0;
    return { acp, timesteps: ts, sigmas: [...sigmas, last].map(f), n };
  }
  // Euler, Euler ancestral
  let ts: number[];
  if (c.timestep_spacing === 'linspace') ts = npLinspace(0, T - 1, n).map(f).reverse();
  else if (c.timestep_spacing === 'leading') {
    const r = Math.floor(T / n);
    ts = Array.from({ length: n }, (_, i) => i * r).reverse().map((t) => f(t + c.steps_offset));
  } else ts = npArange(T, 0, -T / n).map((v) => f(npRound(v) - 1));
  let sigmas = c.interpolation_type === 'log_linear'
    ? torchLinspaceF32(logSig[T - 1]!, logSig[0]!, n + 1).map((l) => f(Math.exp(l)))
    : ts.map((t) => npInterpIndex(t, sig));
  if (c.use_karras_sigmas) {
    sigmas = karras(sigmas[sigmas.length - 1]!, sigmas[0]!, n);
    ts = sigmas.map((s) => f(sigmaToT(s, logSig)));
  }
  const last = c.final_sigmas_type === 'sigma_min' ? f(Math.sqrt(f(f(1 - acp[0]!) / acp[0]!))) : 0;
  return { acp, timesteps: ts, sigmas: [...sigmas, last].map(f), n };
}

export function initNoiseSigma(c: RefConfig, sampler: Sampler, s: RefSchedule): number {
  if (sampler === 'ddim' || sampler === 'dpmpp-2m') return 1;
  const m = Math.max(...s.sigmas);
  return c.timestep_spacing === 'leading' ? f(Math.sqrt(f(f(m * m) + 1))) : m;
}

// --- steps (float64) ---------------------------------------------------------------------
export interface RefState {
  stepIndex: number;
  modelOutputs: (Float64Array | null)[]; // DPM-Solver++: [previous x0, current x0]
  lowerOrderNums: number;
}
export const newState = (): RefState => ({ stepIndex: 0, modelOutputs: [null, null], lowerOrderNums: 0 });

/** Weighted sum of branches in float64 (the model output of a guided step). */
export function combine(branches: Float32Array, weights: number[], len: number): Float64Array {
  const m = new Float64Array(len);
  weights.forEach((w, k) => {
    for (let i = 0; i < len; i++) m[i]! += w * branches[k * len + i]!;
  });
  return m;
}

/** One step at state.stepIndex; returns the next sample in float64 and advances the state. */
export function step(c: RefConfig, sampler: Sampler, s: RefSchedule, st: RefState, m: Float64Array, x: Float32Array, noise?: Float32Array): Float64Array {
  const i = st.stepIndex, len = x.length, out = new Float64Array(len);
  const p = c.prediction_type;
  if (sampler === 'ddim') {
    const t = s.timesteps[i]!, prev = t - Math.floor(c.num_train_timesteps / s.n);
    const at = s.acp[t]!, ap = prev >= 0 ? s.acp[prev]! : c.set_alpha_to_one === false ? s.acp[0]! : 1;
    const bt = 1 - at;
    const variance = ((1 - ap) / bt) * (1 - at / ap);
    const eta = c.eta ?? 0, std = eta * Math.sqrt(variance);
    for (let k = 0; k < len; k++) {
      const xs = x[k]!, mo = m[k]!;
      let x0: number, eps: number;
      if (p === 'epsilon') { x0 = (xs - Math.sqrt(bt) * mo) / Math.sqrt(at); eps = mo; }
      else if (p === 'sample') { x0 = mo; eps = (xs - Math.sqrt(at) * x0) / Math.sqrt(bt); }
      else { x0 = Math.sqrt(at) * xs - Math.sqrt(bt) * mo; eps = Math.sqrt(at) * mo + Math.sqrt(bt) * xs; }
      if (c.clip_sample ?? true) { const r = c.clip_sample_range ?? 1; x0 = Math.min(r, Math.max(-r, x0)); }
      let v = Math.sqrt(ap) * x0 + Math.sqrt(1 - ap - std * std) * eps;
      if (eta > 0) v += std * noise![k]!;
      out[k] = v;
    }
  } else if (sampler === 'euler' || sampler === 'euler-ancestral') {
    const sigma = s.sigmas[i]!, to = s.sigmas[i + 1]!;
    let dt = to - sigma, up = 0;
    if (sampler === 'euler-ancestral') {
      up = Math.sqrt((to * to * (sigma * sigma - to * to)) / (sigma * sigma));
      dt = Math.sqrt(to * to - up * up) - sigma;
    }
    for (let k = 0; k < len; k++) {
      const xs = x[k]!, mo = m[k]!;
      const x0 = p === 'epsilon' ? xs - sigma * mo
        : p === 'v_prediction' ? mo * (-sigma / Math.sqrt(sigma * sigma + 1)) + xs / (sigma * sigma + 1) : mo;
      const d = (xs - x0) / sigma;
      out[k] = xs + d * dt + (up ? noise![k]! * up : 0);
    }
  } else {
    const N = s.timesteps.length;
    const lowerFinal = i === N - 1 && (c.euler_at_final || (c.lower_order_final !== false && N < 15) || (c.final_sigmas_type ?? 'zero') === 'zero');
    const toAS = (sg: number) => { const a = 1 / Math.sqrt(sg * sg + 1); return [a, sg * a] as const; };
    const [as0, ss0] = toAS(s.sigmas[i]!);
    const x0 = new Float64Array(len);
    for (let k = 0; k < len; k++) {
      x0[k] = p === 'epsilon' ? (x[k]! - ss0 * m[k]!) / as0 : p === 'v_prediction' ? as0 * x[k]! - ss0 * m[k]! : m[k]!;
    }
    st.modelOutputs = [st.modelOutputs[1]!, x0];
    const order = c.solver_order ?? 2;
    const sigT = s.sigmas[i + 1]!;
    const [at, stt] = toAS(sigT);
    const lam = (a: number, sg: number) => Math.log(a) - Math.log(sg);
    const h = lam(at, stt) - lam(as0, ss0);
    if (order === 1 || st.lowerOrderNums < 1 || lowerFinal) {
      for (let k = 0; k < len; k++) out[k] = sigT === 0 ? x0[k]! : (stt / ss0) * x[k]! - at * (Math.exp(-h) - 1) * x0[k]!;
    } else {
      const [as1, ss1] = toAS(s.sigmas[i - 1]!);
      const r0 = (lam(as0, ss0) - lam(as1, ss1)) / h;
      const m0 = x0, m1 = st.modelOutputs[0]!;
      for (let k = 0; k < len; k++) {
        const D0 = m0[k]!, D1 = (1 / r0) * (m0[k]! - m1[k]!);
        out[k] = c.solver_type === 'heun'
          ? (stt / ss0) * x[k]! - at * (Math.exp(-h) - 1) * D0 + at * ((Math.exp(-h) - 1) / h + 1) * D1
          : (stt / ss0) * x[k]! - at * (Math.exp(-h) - 1) * D0 - 0.5 * at * (Math.exp(-h) - 1) * D1;
      }
    }
    if (st.lowerOrderNums < order) st.lowerOrderNums++;
  }
  st.stepIndex++;
  return out;
}

/** diffusers' scale_model_input divisor (Euler samplers), float32 as diffusers computes it. */
export function inputDivisor(sampler: Sampler, s: RefSchedule, i: number): number {
  if (sampler === 'ddim' || sampler === 'dpmpp-2m') return 1;
  const sg = s.sigmas[i]!;
  return f(Math.sqrt(f(f(sg * sg) + 1)));
}
