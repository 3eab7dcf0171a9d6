/**
 * `tokens` — RDM / kNN-Diffusion: the references' image embeddings, projected
 * by the bundle's image_proj, fill the neighbour slots after the text tokens.
 * Separate text and retrieval scales, as the tiny-emoji model card measures:
 *
 *   eps = e(∅,0) + s_t·(e(T,0) − e(∅,0)) + s_r·(e(T,R) − e(T,0))
 *
 * i.e. branch weights [1 − s_t, s_t − s_r, s_r] on [e(∅,0), e(T,0), e(T,R)],
 * the same at every step. s_r = 0 is plain CFG (the retrieval branch is pruned).
 */
import { fmt, PROMPT, retrievalBranch, UNCOND, type ModePlan, type PlanInput } from './plan.js';

export function tokensPlan(p: PlanInput): ModePlan {
  const steps = p.timesteps.length;
  const { textScale: st, retrievalScale: sr } = p;
  const weights = new Float32Array(steps * 3);
  for (let i = 0; i < steps; i++) weights.set([1 - st, st - sr, sr], i * 3);
  return {
    branches: [{ text: UNCOND, label: 'none' }, { text: PROMPT, label: 'text' }, retrievalBranch(PROMPT, p.neighbours, 'text+retrieval')],
    weights,
    label: `tokens s_t=${fmt(st)} s_r=${fmt(sr)}`,
  };
}
