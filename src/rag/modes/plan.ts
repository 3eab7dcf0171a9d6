/**
 * What every mode's plan builder takes and returns. A mode turns the chosen
 * references into guidance branches (each: a text and optional neighbour
 * tokens) and a steps × branches weight table; the pipeline's fused guided
 * step does the rest, so no mode touches the sampler.
 *
 * Text indices follow the pipeline's default texts: 0 = the prompt, 1 = the
 * negative prompt ('' = the unconditional text).
 */
import type { GuidanceBranch } from '../../pipeline/index.js';

export const PROMPT = 0;
export const UNCOND = 1;

export interface Conditioning {
  /** slots × embedDim image embeddings for the neighbour slots (null: no token conditioning). */
  embeds: Float32Array | null;
  /** Per-slot weights (0 = slot unused). */
  weights: Float32Array | null;
}

export interface PlanInput {
  /** Timestep of each step of the schedule, in order. */
  timesteps: readonly number[];
  numTrainTimesteps: number;
  /** s_t and s_r. */
  textScale: number;
  retrievalScale: number;
  neighbours: Conditioning;
}

export interface ModePlan {
  branches: GuidanceBranch[];
  /** steps × branches, row-major. */
  weights: Float32Array;
  /** Shown in the image parameters, e.g. "tokens s_t=3 s_r=4". */
  label: string;
}

/** The retrieval-conditioned branch (prompt + neighbour tokens), or with the unconditional text. */
export function retrievalBranch(text: number, n: Conditioning, label: string): GuidanceBranch {
  return { text, neighbourEmbeds: n.embeds, neighbourWeights: n.weights, label };
}

export function fmt(x: number): string {
  return String(Math.round(x * 1000) / 1000);
}
