/**
 * ragdiff's own layout (tiny-emoji and bundles with a `ragdiff` block): one text
 * encoder whose last hidden state is followed, in encoder_hidden_states, by neighbour
 * slots that retrieval fills (RDM/kNN tokens, projected by image_proj), and an optional
 * reference-attention UNet variant (ragdiff.variants.reference_attention). CFG.
 */
import type { FamilyAdapter } from './family.js';
import { CLIP_L } from './sd.js';

export const tinyEmoji: FamilyAdapter = {
  name: 'tiny-emoji',
  textEncoders: [CLIP_L],
  unetExtras: [],
  guidance: 'cfg',
  defaults: { steps: 25, guidanceScale: 7.5 },
  retrievalSlots: true,
  zeroEmptyNegative: false,
};
