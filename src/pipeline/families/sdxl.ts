/**
 * SDXL (diffusers' StableDiffusionXLPipeline): both text encoders' penultimate hidden
 * states concatenated along the width (768 + 1280 = 2048), text_encoder_2's pooled
 * projection as `text_embeds`, and `time_ids` = original_size + crops_coords_top_left +
 * target_size. An unset negative prompt is zeros (force_zeros_for_empty_prompt).
 */
import type { FamilyAdapter } from './family.js';

export const sdxl: FamilyAdapter = {
  name: 'sdxl',
  textEncoders: [
    { component: 'text_encoder', tokenizer: 'tokenizer', hidden: 'penultimate', pooled: false },
    { component: 'text_encoder_2', tokenizer: 'tokenizer_2', hidden: 'penultimate', pooled: true },
  ],
  unetExtras: ['text_embeds', 'time_ids'],
  guidance: 'cfg',
  defaults: { steps: 25, guidanceScale: 5 },
  retrievalSlots: false,
  zeroEmptyNegative: true,
};
