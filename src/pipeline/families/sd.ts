/** Stable Diffusion 1.x and 2.x: one CLIP text encoder, its last hidden state; CFG (diffusers' StableDiffusionPipeline). */
import type { FamilyAdapter, TextEncoderSpec } from './family.js';

export const CLIP_L: TextEncoderSpec = { component: 'text_encoder', tokenizer: 'tokenizer', hidden: 'last', pooled: false };

export const sd1: FamilyAdapter = {
  name: 'sd1',
  textEncoders: [CLIP_L],
  unetExtras: [],
  guidance: 'cfg',
  defaults: { steps: 25, guidanceScale: 7.5 },
  retrievalSlots: false,
  zeroEmptyNegative: false,
};

/** SD 2.x differs in its widths (OpenCLIP ViT-H, 1024) and scheduler (v_prediction), both read from the bundle. */
export const sd2: FamilyAdapter = { ...sd1, name: 'sd2' };
