/** The modes' plan builders, by name. */
import type { RetrievalMode } from '../types.js';
import { textCfgPlan } from './cfg.js';
import { interleavedPlan } from './interleaved.js';
import { mixturePlan, type MixtureOptions } from './mixture.js';
import type { ModePlan, PlanInput } from './plan.js';
import { tokensPlan } from './tokens.js';

export { REMODIFFUSE_FINE } from './mixture.js';
export type { MixtureOptions } from './mixture.js';
export type { Conditioning, ModePlan, PlanInput } from './plan.js';
export { tokensPlan, mixturePlan, interleavedPlan, textCfgPlan };

/** Modes that put reference embeddings into the UNet's neighbour slots. */
export const TOKEN_MODES: readonly RetrievalMode[] = ['tokens', 'mixture', 'interleaved'];

export function buildPlan(mode: RetrievalMode, input: PlanInput, o: { mixture: MixtureOptions; textShare: number }): ModePlan {
  switch (mode) {
    case 'tokens':
      return tokensPlan(input);
    case 'mixture':
      return mixturePlan(input, o.mixture);
    case 'interleaved':
      return interleavedPlan(input, o.textShare);
    case 'reference-init':
    case 'reference-attention':
      return textCfgPlan(input);
  }
}
