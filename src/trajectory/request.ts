/**
 * The `trajectory` option of pipeline.generate: validation on the caller's
 * thread (so a base for another model, sampler, steps, guidance or shape, or
 * bad key/value steps, fail before queueing, with the field named) and the
 * plain, structured-cloneable job part the inference worker executes.
 */
import { assertKnownKeys } from '../validate.js';
import { RagdiffError, rangeError, typeError } from '../errors.js';
import { checkBinding, KbMismatchError, KnowledgeBase, type KbBinding } from './kb-file.js';

export interface TrajectoryRequest {
  /** Path of a knowledge base built for this model, sampler, steps, guidance and size (`ragdiff kb build`). */
  kb: string;
  /** Step index whose input latent is the query; must be the base's key step (default: the base's). */
  keyStep?: number;
  /** Step index to jump to; one of the base's value steps (default: the base's first). */
  valueStep?: number;
  /** Neighbours blended by the least-squares weights (default min(5, base size)). */
  k?: number;
  /** Largest L2 distance between the query and its nearest key at which to jump; beyond it sampling continues in full (default Infinity). */
  maxDistance?: number;
  /**
   * Stylisation (ReDi's zero-shot prompt switch): after the jump, sample with this prompt instead.
   * Every denoiser call then evaluates a third branch (weight 0 before the jump), so calls cost ~1.5×.
   */
  prompt?: string;
  /** Approximate search: scan this many IVF lists of a base indexed with `nlist` (default: exact search). */
  nprobe?: number;
  nlist?: number;
}

/** What the worker needs (plain data). */
export interface TrajectoryJob {
  kbPath: string;
  keyStep: number;
  valueStep: number;
  k: number;
  maxDistance: number;
  nprobe?: number;
  nlist?: number;
}

/** Per-generation trajectory statistics (GenerateResult.stats.trajectory). */
export interface TrajectoryStats {
  /** True when the sampler jumped from keyStep to valueStep. */
  jumped: boolean;
  /** Why it did not jump (distance above maxDistance), when it did not. */
  fallback?: string;
  keyStep: number;
  valueStep: number;
  k: number;
  /** Denoiser calls made and saved against full sampling. */
  denoiserCalls: number;
  denoiserCallsSaved: number;
  /** Per image: L2 distance from the query to its nearest key, and relative to the query's norm. */
  distance: number[];
  relativeDistance: number[];
  /** Per image: residual ‖Kᵀw − q‖ / ‖q‖ of the least-squares fit. */
  residual: number[];
  /** Per image: the neighbours' record indices and weights. */
  neighbours: { index: number; weight: number; distance: number }[][];
  lookupMs: number;
  /** 'exact' or 'ivf'. */
  search: 'exact' | 'ivf';
}

function int(name: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number') throw typeError('INVALID_TYPE', `trajectory.${name} must be an integer, got ${typeof v}`);
  if (!Number.isInteger(v) || v < lo || v > hi) throw rangeError('OUT_OF_RANGE', `trajectory.${name} must be an integer in ${lo}..${hi}, got ${v}`);
  return v;
}

/**
 * Checks the request against the base's header and the binding of this
 * generation; returns the worker's job. `timesteps` is the schedule's length.
 */
export function prepareTrajectory(t: unknown, binding: KbBinding, timesteps: number, batch: number): TrajectoryJob {
  if (typeof t !== 'object' || t === null || Array.isArray(t)) throw typeError('INVALID_TYPE', 'trajectory must be an object { kb, keyStep?, valueStep?, k?, maxDistance? }');
  const r = t as TrajectoryRequest;
  assertKnownKeys('trajectory', r, ['kb', 'keyStep', 'valueStep', 'k', 'maxDistance', 'nprobe', 'nlist', 'prompt']);
  if (typeof r.kb !== 'string' || r.kb === '') throw typeError('INVALID_TYPE', 'trajectory.kb must be the path of a knowledge base');
  if (r.prompt !== undefined && typeof r.prompt !== 'string') throw typeError('INVALID_TYPE', 'trajectory.prompt must be a string');
  if (r.keyStep !== undefined) int('keyStep', r.keyStep, 1, timesteps - 1);
  if (r.valueStep !== undefined) int('valueStep', r.valueStep, 1, timesteps - 1);
  if (r.keyStep !== undefined && r.valueStep !== undefined && r.keyStep >= r.valueStep) {
    throw rangeError('INVALID_VALUE', `trajectory.keyStep (${r.keyStep}) must come before trajectory.valueStep (${r.valueStep})`);
  }
  const kb = KnowledgeBase.open(r.kb);
  try {
    checkBinding(kb.header, binding, r.kb);
    const h = kb.header;
    const keyStep = r.keyStep ?? h.keyStep;
    if (keyStep !== h.keyStep) throw new KbMismatchError('keyStep', `${r.kb} holds keys at step ${h.keyStep}, not ${keyStep}`);
    const valueStep = r.valueStep ?? h.valueSteps[0]!;
    kb.valueSlot(valueStep);
    if (valueStep >= timesteps) throw rangeError('OUT_OF_RANGE', `trajectory.valueStep ${valueStep} is outside this ${timesteps}-step schedule`);
    if (kb.count === 0) throw new RagdiffError('KB_EMPTY', `${r.kb} holds no trajectories`);
    const k = r.k ?? Math.min(5, kb.count);
    int('k', k, 1, 256);
    if (k > kb.count) throw rangeError('K_TOO_LARGE', `trajectory.k = ${k} exceeds the ${kb.count} trajectories in ${r.kb}`);
    const maxDistance = r.maxDistance ?? Infinity;
    if (typeof maxDistance !== 'number' || Number.isNaN(maxDistance) || maxDistance < 0) throw rangeError('OUT_OF_RANGE', 'trajectory.maxDistance must be a non-negative number');
    const job: TrajectoryJob = { kbPath: r.kb, keyStep, valueStep, k, maxDistance };
    if (r.nprobe !== undefined || r.nlist !== undefined) {
      job.nlist = int('nlist', r.nlist ?? Math.max(1, Math.round(Math.sqrt(kb.count))), 1, kb.count);
      job.nprobe = int('nprobe', r.nprobe ?? 8, 1, job.nlist);
    }
    void batch;
    return job;
  } finally {
    kb.close();
  }
}

/**
 * The guidance plan of a stylised jump: texts [prompt, negative, style]; CFG on
 * the prompt before the value step, CFG on the style prompt from it on (a zero
 * weight leaves the branch out of the sum, so the steps before the jump are
 * those of plain CFG, as the base was sampled).
 */
export function stylePlan(guidanceScale: number, calls: number, valueStep: number): { branches: { text: number; label: string }[]; weights: Float32Array } {
  const weights = new Float32Array(calls * 3);
  for (let i = 0; i < calls; i++) {
    weights[3 * i] = 1 - guidanceScale;
    weights[3 * i + (i < valueStep ? 1 : 2)] = guidanceScale;
  }
  return { branches: [{ text: 1, label: 'uncond' }, { text: 0, label: 'cond' }, { text: 2, label: 'style' }], weights };
}

/** The value step a request resolves to (its own, else the base's first). */
export function requestedValueStep(t: TrajectoryRequest): number {
  if (t.valueStep !== undefined) return t.valueStep;
  const kb = KnowledgeBase.open(t.kb);
  try {
    return kb.header.valueSteps[0]!;
  } finally {
    kb.close();
  }
}
