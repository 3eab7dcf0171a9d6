/**
 * A model family's adapter: what its text encoders and UNet take and how the
 * runner's stages feed them. The stages (encode prompt → prepare latents →
 * denoise → decode) are the same for every family, as in diffusers' pipelines;
 * what differs is data here, read by the stages, never a branch in the loop.
 */

export type FamilyName = 'sd1' | 'sd2' | 'sdxl' | 'sd-turbo' | 'sdxl-turbo' | 'lcm' | 'tiny-emoji';
export const FAMILY_NAMES: readonly FamilyName[] = ['sd1', 'sd2', 'sdxl', 'sd-turbo', 'sdxl-turbo', 'lcm', 'tiny-emoji'];

/** One text encoder: which component and tokenizer, and which of its outputs feeds the UNet. */
export interface TextEncoderSpec {
  component: 'text_encoder' | 'text_encoder_2';
  tokenizer: 'tokenizer' | 'tokenizer_2';
  /**
   * 'last': last_hidden_state (SD 1.x/2.x); 'penultimate': the hidden state before the last
   * layer (SDXL's `hidden_states[-2]`, exported by optimum as hidden_states.N).
   */
  hidden: 'last' | 'penultimate';
  /** Its pooled projection is the UNet's `text_embeds` (SDXL's text_encoder_2). */
  pooled: boolean;
}

/** UNet inputs besides sample, timestep and encoder_hidden_states. */
export type UnetExtra = 'text_embeds' | 'time_ids' | 'timestep_cond';

/**
 * How the guidance scale is used: 'cfg' classifier-free guidance (two branches);
 * 'embedded' the scale enters the UNet as `timestep_cond` and only the conditional
 * branch runs (LCM); 'optional' CFG only for a scale above 1, else the conditional
 * branch alone (Turbo: diffusers' do_classifier_free_guidance = scale > 1).
 */
export type GuidanceMode = 'cfg' | 'embedded' | 'optional';

export interface FamilyAdapter {
  name: FamilyName;
  /** In the order their hidden states are concatenated along the width (diffusers' SDXL order). */
  textEncoders: readonly TextEncoderSpec[];
  unetExtras: readonly UnetExtra[];
  guidance: GuidanceMode;
  /** Request defaults when the bundle's ragdiff.defaults does not say (diffusers' pipeline defaults). */
  defaults: { steps: number; guidanceScale: number };
  /** Most inference steps the family is distilled for (Turbo); undefined: no limit beyond the sampler's. */
  maxSteps?: number;
  /** Neighbour-token slots after the text and the reference-attention variant (ragdiff's own layout). */
  retrievalSlots: boolean;
  /** An unconditional prompt left empty is zeros, not the encoded "" (model_index force_zeros_for_empty_prompt). */
  zeroEmptyNegative: boolean;
}

/** The UNet input names a family needs, for the error that names what an export lacks. */
export function unetInputs(f: FamilyAdapter): string[] {
  return ['sample', 'timestep', 'encoder_hidden_states', ...f.unetExtras];
}
