/**
 * SD-Turbo and SDXL-Turbo (adversarial diffusion distillation): the base family's
 * encoders and UNet inputs, guidance off by default (CFG only for a scale above 1, as
 * diffusers), 1–4 steps (the distillation's range; more is refused, not silently run).
 * Their published scheduler is EulerDiscreteScheduler with timestep_spacing "trailing",
 * read from scheduler_config.json like any other.
 */
import type { FamilyAdapter } from './family.js';
import { sd2 } from './sd.js';
import { sdxl } from './sdxl.js';

export const TURBO_MAX_STEPS = 4;

export const sdTurbo: FamilyAdapter = { ...sd2, name: 'sd-turbo', guidance: 'optional', defaults: { steps: 1, guidanceScale: 0 }, maxSteps: TURBO_MAX_STEPS };
export const sdxlTurbo: FamilyAdapter = { ...sdxl, name: 'sdxl-turbo', guidance: 'optional', defaults: { steps: 1, guidanceScale: 0 }, maxSteps: TURBO_MAX_STEPS };
