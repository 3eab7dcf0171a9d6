/** The family adapters by name. */
import type { FamilyAdapter, FamilyName } from './family.js';
import { sd1, sd2 } from './sd.js';
import { sdxl } from './sdxl.js';
import { sdTurbo, sdxlTurbo } from './turbo.js';
import { lcm } from './lcm.js';
import { tinyEmoji } from './tiny-emoji.js';

export const FAMILIES: Record<FamilyName, FamilyAdapter> = {
  sd1, sd2, sdxl, 'sd-turbo': sdTurbo, 'sdxl-turbo': sdxlTurbo, lcm, 'tiny-emoji': tinyEmoji,
};

export * from './family.js';
export { guidanceScaleEmbedding } from './lcm.js';
export { TURBO_MAX_STEPS } from './turbo.js';
