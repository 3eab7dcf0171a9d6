/**
 * A float64 reference of diffusers' PNDMScheduler and LCMScheduler, written from
 * their Python sources as a state machine (counter, ets list, cur_sample,
 * cur_model_output), so the slot plan of the native core is checked against the
 * original control flow rather than against itself. Used by the tests only.
 */
import { alphasCumprod, npArange, npLinspace, npRound, type RefConfig } from './diffusers.js';

export interface PndmConfig extends RefConfig { skip_prk_steps?: boolean }
export interface LcmConfig extends RefConfig { original_inference_steps?: number; timestep_scaling?: number }

export class RefPndm {
  readonly acp: number[];
  readonly finalAcp: number;
  timesteps: number[] = [];
  prk: number[] = [];
  n = 0;
  counter = 0;
  ets: Float64Array[] = [];
  curSample: Float64Array | null = null;
  curModelOutput: Float64Array | null = null;
  constructor(readonly c: PndmConfig) {
    this.acp = alphasCumprod(c, 'ddim');
    this.finalAcp = c.set_alpha_to_one ? 1 : this.acp[0]!;
  }
  setTimesteps(n: number): void {
    const T = this.c.num_train_timesteps;
    this.n = n;
    let base: number[];
    if (this.c.timestep_spacing === 'linspace') base = npLinspace(0, T - 1, n).map(npRound);
    else if (this.c.timestep_spacing === 'leading') base = Array.from({ length: n }, (_, i) => i * Math.floor(T / n) + this.c.steps_offset);
    else base = npArange(T, 0, -T / n).map(npRound).reverse().map((t) => t - 1);
    if (this.c.skip_prk_steps) {
      this.prk = [];
      this.timesteps = [...base.slice(0, -1), ...base.slice(-2, -1), ...base.slice(-1)].reverse();
    } else {
      const half = Math.floor(Math.floor(T / n) / 2);
      const p = base.slice(-4).flatMap((t) => [t, t + half]).slice(0, -1);
      this.prk = p.flatMap((t) => [t, t]).slice(1, -1).reverse();
      this.timesteps = [...this.prk, ...base.slice(0, -3).reverse()];
    }
    this.counter = 0;
    this.ets = [];
    this.curSample = null;
    this.curModelOutput = null;
  }
  step(m: Float64Array, t: number, x: Float64Array): Float64Array {
    if (this.counter < this.prk.length && !this.c.skip_prk_steps) return this.stepPrk(m, t, x);
    return this.stepPlms(m, t, x);
  }
  private stepPrk(m: Float64Array, t: number, x: Float64Array): Float64Array {
    const T = this.c.num_train_timesteps;
    const diff = this.counter % 2 ? 0 : Math.floor(Math.floor(T / this.n) / 2);
    const prev = t - diff;
    const ts = this.prk[Math.floor(this.counter / 4) * 4]!;
    let mo = m;
    const acc = (w: number) => {
      const a = this.curModelOutput ?? new Float64Array(m.length);
      for (let k = 0; k < m.length; k++) a[k]! += w * m[k]!;
      this.curModelOutput = a;
    };
    if (this.counter % 4 === 0) { acc(1 / 6); this.ets.push(m); this.curSample = x; }
    else if ((this.counter - 1) % 4 === 0) acc(1 / 3);
    else if ((this.counter - 2) % 4 === 0) acc(1 / 3);
    else {
      mo = this.curModelOutput!.map((v, k) => v + (1 / 6) * m[k]!);
      this.curModelOutput = null;
    }
    const out = this.prevSample(this.curSample ?? x, ts, prev, mo);
    this.counter++;
    return out;
  }
  private stepPlms(m: Float64Array, t: number, x: Float64Array): Float64Array {
    const T = this.c.num_train_timesteps;
    let prev = t - Math.floor(T / this.n);
    if (this.counter !== 1) {
      this.ets = this.ets.slice(-3);
      this.ets.push(m);
    } else {
      prev = t;
      t = t + Math.floor(T / this.n);
    }
    const e = this.ets, L = e.length;
    let mo: Float64Array, sample = x;
    if (L === 1 && this.counter === 0) { mo = m; this.curSample = x; }
    else if (L === 1 && this.counter === 1) { mo = m.map((v, k) => (v + e[0]![k]!) / 2); sample = this.curSample!; this.curSample = null; }
    // ragdiff's re-entry (not in diffusers, which fails here): one stored output after a restart is a first-order step.
    else if (L === 1) mo = m;
    else if (L === 2) mo = m.map((_, k) => (3 * e[1]![k]! - e[0]![k]!) / 2);
    else if (L === 3) mo = m.map((_, k) => (23 * e[2]![k]! - 16 * e[1]![k]! + 5 * e[0]![k]!) / 12);
    else mo = m.map((_, k) => (1 / 24) * (55 * e[3]![k]! - 59 * e[2]![k]! + 37 * e[1]![k]! - 9 * e[0]![k]!));
    const out = this.prevSample(sample, t, prev, mo);
    this.counter++;
    return out;
  }
  private prevSample(x: Float64Array, t: number, prev: number, mo: Float64Array): Float64Array {
    const a = this.acp[t]!, ap = prev >= 0 ? this.acp[prev]! : this.finalAcp;
    const b = 1 - a, bp = 1 - ap;
    const sc = Math.sqrt(ap / a);
    const den = a * Math.sqrt(bp) + Math.sqrt(a * b * ap);
    return x.map((xs, k) => {
      const e = this.c.prediction_type === 'v_prediction' ? Math.sqrt(a) * mo[k]! + Math.sqrt(b) * xs : mo[k]!;
      return sc * xs - ((ap - a) * e) / den;
    });
  }
}

export function lcmTimesteps(c: LcmConfig, n: number): number[] {
  const T = c.num_train_timesteps, orig = c.original_inference_steps ?? 50;
  const k = Math.floor(T / orig);
  const origin = Array.from({ length: orig }, (_, i) => (i + 1) * k - 1).reverse();
  return Array.from({ length: n }, (_, j) => origin[Math.floor((j * orig) / n)]!);
}

/** One LCM step i (float64); `noise` for every step but the last. Returns [prev_sample, denoised]. */
export function lcmStep(c: LcmConfig, acp: number[], ts: number[], i: number, m: Float64Array, x: Float64Array, noise: Float32Array | null): [Float64Array, Float64Array] {
  const t = ts[i]!, prev = i + 1 < ts.length ? ts[i + 1]! : t;
  const a = acp[t]!, ap = prev >= 0 ? acp[prev]! : (c.set_alpha_to_one ?? true) ? 1 : acp[0]!;
  const st = t * (c.timestep_scaling ?? 10);
  const cSkip = 0.25 / (st * st + 0.25), cOut = st / Math.sqrt(st * st + 0.25);
  const den = x.map((xs, k) => {
    let x0 = c.prediction_type === 'epsilon' ? (xs - Math.sqrt(1 - a) * m[k]!) / Math.sqrt(a)
      : c.prediction_type === 'sample' ? m[k]! : Math.sqrt(a) * xs - Math.sqrt(1 - a) * m[k]!;
    if (c.clip_sample) { const r = c.clip_sample_range ?? 1; x0 = Math.min(r, Math.max(-r, x0)); }
    return cOut * x0 + cSkip * xs;
  });
  if (i === ts.length - 1) return [den, den];
  return [den.map((d, k) => Math.sqrt(ap) * d + Math.sqrt(1 - ap) * noise![k]!), den];
}
