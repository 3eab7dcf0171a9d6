/** The knowledge-base binding of one generation: what its trajectories depend on. */
import type { ModelInfo } from '../pipeline/runner.js';
import type { Scheduler } from '../scheduler/index.js';
import type { KbBinding } from './kb-file.js';

export function generationBinding(
  info: Pick<ModelInfo, 'hash' | 'image' | 'latent'>,
  scheduler: Pick<Scheduler, 'sampler' | 'config'>,
  o: { steps: number; guidanceScale: number; negativePrompt: string },
): KbBinding {
  return {
    modelHash: info.hash,
    sampler: scheduler.sampler,
    scheduler: { ...scheduler.config },
    steps: o.steps,
    guidance: { mode: 'cfg', scale: o.guidanceScale, negativePrompt: o.negativePrompt },
    width: info.image.width,
    height: info.image.height,
    latentShape: [info.latent.channels, info.latent.height, info.latent.width],
  };
}
