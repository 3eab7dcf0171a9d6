/**
 * `interleaved` — Re-Imagen's interleaved classifier-free guidance: each step
 * guides on one condition only. A text step pushes the fully conditioned
 * output away from the one without text, keeping the references:
 *   eps = e(∅,R) + s_t·(e(T,R) − e(∅,R));
 * a retrieval step pushes it away from the one without references:
 *   eps = e(T,0) + s_r·(e(T,R) − e(T,0)).
 * `textShare` of the steps are text steps, spread evenly (Bresenham), so the
 * pattern for 0.5 is text, retrieval, text, …
 */
import { fmt, PROMPT, retrievalBranch, UNCOND, type ModePlan, type PlanInput } from './plan.js';

export function interleavedPlan(p: PlanInput, textShare: number): ModePlan {
  const steps = p.timesteps.length;
  const weights = new Float32Array(steps * 3); // both, no-text, no-retrieval
  for (let i = 0; i < steps; i++) {
    const textStep = Math.floor((i + 1) * textShare) > Math.floor(i * textShare);
    weights.set(textStep ? [p.textScale, 1 - p.textScale, 0] : [p.retrievalScale, 0, 1 - p.retrievalScale], i * 3);
  }
  return {
    branches: [retrievalBranch(PROMPT, p.neighbours, 'both'), retrievalBranch(UNCOND, p.neighbours, 'retrieval'), { text: PROMPT, label: 'text' }],
    weights,
    label: `interleaved text share=${fmt(textShare)} s_t=${fmt(p.textScale)} s_r=${fmt(p.retrievalScale)}`,
  };
}
