/**
 * `mixture` — ReMoDiffuse's condition mixture: four branches, both (T,R),
 * text (T,0), retrieval (∅,R) and none (∅,0), combined with weights that sum
 * to one at every step so the mixture stays an unbiased estimate.
 *
 * For t > fineBelow: w = (t / T)·coarseScale + 1 and the step uses either the
 * pair (both: w, retrieval: 1 − w) or (text: w, none: 1 − w). ReMoDiffuse
 * flips a coin per step; here the pairs alternate by step index, so a seed
 * reproduces the image. For t ≤ fineBelow fixed constants: the published ones
 * (both 0.52351, text −0.28419, retrieval 2.39872, none = 1 − their sum) were
 * fitted on HumanML3D motion, not images — override them with `mixture.fine`.
 */
import { rangeError } from '../../errors.js';
import { fmt, PROMPT, retrievalBranch, UNCOND, type ModePlan, type PlanInput } from './plan.js';

export const REMODIFFUSE_FINE = { both: 0.52351, text: -0.28419, retrieval: 2.39872 };

export interface MixtureOptions {
  coarseScale: number;
  fineBelow: number;
  fine: { both: number; text: number; retrieval: number };
}

export function mixturePlan(p: PlanInput, o: MixtureOptions): ModePlan {
  const steps = p.timesteps.length;
  const weights = new Float32Array(steps * 4);
  const fineNone = 1 - o.fine.both - o.fine.text - o.fine.retrieval;
  let coarseStep = 0;
  for (let i = 0; i < steps; i++) {
    const t = p.timesteps[i]!;
    let row: [number, number, number, number]; // both, text, retrieval, none
    if (t > o.fineBelow) {
      const w = (t / p.numTrainTimesteps) * o.coarseScale + 1;
      row = coarseStep++ % 2 === 0 ? [w, 0, 1 - w, 0] : [0, w, 0, 1 - w];
    } else {
      row = [o.fine.both, o.fine.text, o.fine.retrieval, fineNone];
    }
    const sum = row[0] + row[1] + row[2] + row[3];
    if (Math.abs(sum - 1) > 1e-6) throw rangeError('INVALID_VALUE', `mixture weights at step ${i} sum to ${sum}, not 1`);
    weights.set(row, i * 4);
  }
  return {
    branches: [
      retrievalBranch(PROMPT, p.neighbours, 'both'),
      { text: PROMPT, label: 'text' },
      retrievalBranch(UNCOND, p.neighbours, 'retrieval'),
      { text: UNCOND, label: 'none' },
    ],
    weights,
    label: `mixture coarse=${fmt(o.coarseScale)} fine<=${o.fineBelow}`,
  };
}
