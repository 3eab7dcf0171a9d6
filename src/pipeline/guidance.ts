/**
 * Guidance as data: a generation carries any number of branches (each a text
 * and optional neighbour tokens) and a table of per-step weights. Every step
 * runs all branches in one batched denoiser call and combines their outputs as
 * Σ_b w[step][b] · out_b inside the sampler's fused guided step.
 *
 * Classifier-free guidance is the two-branch case [uncond, cond] with weights
 * [1 − g, g]. Condition mixtures (both / text / retrieval / none with
 * timestep-dependent weights) and interleaved guidance are other tables over
 * the same machinery.
 *
 * The encoder_hidden_states for all branches are fused natively (context.ts).
 */
import { RagdiffError, rangeError, typeError } from '../errors.js';
import { assertFinite, assertFloat32Array } from '../validate.js';

export interface GuidanceBranch {
  /** Index into the request's token sequences (texts). */
  text: number;
  /**
   * Tokens for the slots after the text tokens in encoder_hidden_states
   * (slots × tokenWidth floats, already in the UNet's token space), or
   * null/absent for zeros — the text-only and unconditional branches.
   */
  neighbours?: Float32Array | null;
  /**
   * Alternatively, image embeddings of the neighbours (slots × embedDim, e.g. CLIP image
   * embeddings from the store), projected into token space by the bundle's
   * image_proj model inside the worker. At most one of neighbours / neighbourEmbeds.
   */
  neighbourEmbeds?: Float32Array | null;
  /**
   * One weight per neighbour slot (length = slots): each slot's tokens are scaled
   * by it in encoder_hidden_states — 0 drops the slot (zeros), 1 keeps it as is.
   * Retrieval modes use this to weigh neighbours by relevance. Absent: all ones.
   * Unused by a branch without neighbours.
   */
  neighbourWeights?: Float32Array | null;
  /** With reference attention: whether this branch attends to the reference (default: every branch, when no branch says). */
  reference?: boolean;
  /** For stats and provenance, e.g. 'cond', 'uncond', 'text', 'retrieval'. */
  label?: string;
}

export interface GuidancePlan {
  branches: GuidanceBranch[];
  /** steps × branches, row-major; row i weighs the branch outputs at loop step i (of the full schedule). */
  weights: Float32Array;
}

/** Classifier-free guidance: branch 0 unconditional (text index 1), branch 1 conditional (text index 0). */
export function cfgPlan(guidanceScale: number, steps: number): GuidancePlan {
  const weights = new Float32Array(steps * 2);
  for (let i = 0; i < steps; i++) {
    weights[2 * i] = 1 - guidanceScale;
    weights[2 * i + 1] = guidanceScale;
  }
  return { branches: [{ text: 1, label: 'uncond' }, { text: 0, label: 'cond' }], weights };
}

export interface PlanLimits {
  /** Steps in the schedule (rows of the weight table). */
  steps: number;
  /** Texts the branches may index. */
  texts: number;
  /** slots × tokenWidth: the length of `neighbours` (0: the model has no neighbour slots). */
  neighbourLength: number;
  /** slots × embedDim: the length of `neighbourEmbeds` (0: the bundle has no image_proj model). */
  embedLength: number;
  /** Neighbour slots (the length of `neighbourWeights`); when absent only their finiteness is checked here (the worker checks the length). */
  slots?: number;
}

/** Checks a plan against the request: text indices exist, neighbour lengths fit, the weight table is steps × branches and finite. */
export function checkPlan(plan: GuidancePlan, limits: PlanLimits): void {
  const { steps, texts: textCount, neighbourLength, embedLength } = limits;
  if (!Array.isArray(plan.branches) || plan.branches.length === 0) throw typeError('INVALID_TYPE', 'guidance.branches must be a non-empty array');
  if (plan.branches.length > 16) throw rangeError('OUT_OF_RANGE', `guidance.branches must have at most 16 branches, got ${plan.branches.length}`);
  plan.branches.forEach((b, i) => {
    const name = `guidance.branches[${i}]`;
    if (!Number.isInteger(b.text) || b.text < 0 || b.text >= textCount) {
      throw rangeError('OUT_OF_RANGE', `${name}.text must be an index in 0..${textCount - 1}, got ${b.text}`);
    }
    if (b.neighbours != null && b.neighbourEmbeds != null) throw rangeError('INVALID_VALUE', `${name} has both neighbours and neighbourEmbeds; give one`);
    if (b.neighbours != null) {
      assertFloat32Array(`${name}.neighbours`, b.neighbours);
      if (neighbourLength === 0) throw new RagdiffError('UNSUPPORTED', 'this model has no neighbour-token slots; guidance branches cannot carry neighbours');
      if (b.neighbours.length !== neighbourLength) {
        throw rangeError('LENGTH_MISMATCH', `${name}.neighbours must have ${neighbourLength} elements (slots × token width), got ${b.neighbours.length}`);
      }
      assertFinite(`${name}.neighbours`, b.neighbours);
    }
    if (b.neighbourEmbeds != null) {
      assertFloat32Array(`${name}.neighbourEmbeds`, b.neighbourEmbeds);
      if (neighbourLength === 0 || embedLength === 0) {
        throw new RagdiffError('UNSUPPORTED', 'this bundle has no neighbour slots or no image_proj model; guidance branches cannot carry neighbour embeddings');
      }
      if (b.neighbourEmbeds.length !== embedLength) {
        throw rangeError('LENGTH_MISMATCH', `${name}.neighbourEmbeds must have ${embedLength} elements (slots × embedding width), got ${b.neighbourEmbeds.length}`);
      }
      assertFinite(`${name}.neighbourEmbeds`, b.neighbourEmbeds);
    }
    if (b.neighbourWeights != null) {
      if (!(b.neighbourWeights instanceof Float32Array)) throw typeError('INVALID_TYPE', `${name}.neighbourWeights must be a Float32Array`);
      if (neighbourLength === 0) throw new RagdiffError('UNSUPPORTED', 'this model has no neighbour-token slots; guidance branches cannot carry neighbour weights');
      if (limits.slots !== undefined && b.neighbourWeights.length !== limits.slots) {
        throw rangeError('LENGTH_MISMATCH', `${name}.neighbourWeights must have one weight per neighbour slot (${limits.slots}), got ${b.neighbourWeights.length}`);
      }
      if (b.neighbours == null && b.neighbourEmbeds == null) throw rangeError('INVALID_VALUE', `${name}.neighbourWeights needs neighbours or neighbourEmbeds`);
      assertFinite(`${name}.neighbourWeights`, b.neighbourWeights);
    }
  });
  assertFloat32Array('guidance.weights', plan.weights);
  const want = steps * plan.branches.length;
  if (plan.weights.length !== want) {
    throw rangeError('LENGTH_MISMATCH', `guidance.weights must have steps × branches = ${steps} × ${plan.branches.length} = ${want} elements, got ${plan.weights.length}`);
  }
  assertFinite('guidance.weights', plan.weights);
}

/**
 * Drops branches whose weight is zero at every step, so CFG at scale 1 (or a
 * mixture that never uses a branch) costs no denoiser work for it.
 */
export function pruneZeroBranches(plan: GuidancePlan): GuidancePlan {
  const n = plan.branches.length;
  const steps = plan.weights.length / n;
  const keep: number[] = [];
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < steps; i++) {
      if (plan.weights[i * n + b] !== 0) {
        keep.push(b);
        break;
      }
    }
  }
  if (keep.length === n) return plan;
  if (keep.length === 0) throw rangeError('INVALID_VALUE', 'guidance weights are zero for every branch at every step');
  const weights = new Float32Array(steps * keep.length);
  for (let i = 0; i < steps; i++) keep.forEach((b, j) => (weights[i * keep.length + j] = plan.weights[i * n + b]!));
  return { branches: keep.map((b) => plan.branches[b]!), weights };
}

// The encoder_hidden_states builder moved to context.ts (native fusion); re-exported for existing importers.
export { buildEncoderHiddenStates, type ContextLayout } from './context.js';
