/**
 * Latent Consistency Models distilled with an embedded guidance scale (diffusers'
 * LatentConsistencyModelPipeline, e.g. LCM_Dreamshaper_v7): no CFG; the scale w
 * enters the UNet as `timestep_cond`, the sinusoidal embedding of (w − 1) × 1000
 * (get_guidance_scale_embedding). An LCM-LoRA'd or LCM-SDXL UNet without
 * `time_cond_proj_dim` is its base family with the LCM scheduler instead.
 */
import type { FamilyAdapter } from './family.js';
import { CLIP_L } from './sd.js';

export const lcm: FamilyAdapter = {
  name: 'lcm',
  textEncoders: [CLIP_L],
  unetExtras: ['timestep_cond'],
  guidance: 'embedded',
  defaults: { steps: 4, guidanceScale: 8.5 },
  retrievalSlots: false,
  zeroEmptyNegative: false,
};

/**
 * diffusers' get_guidance_scale_embedding(w − 1, dim) for one scale, in float32 as torch
 * computes it: [sin(w' f_0..f_{h−1}), cos(…)] with w' = (w − 1)·1000, f_k = exp(−k·ln(10⁴)/(h − 1)).
 */
export function guidanceScaleEmbedding(guidanceScale: number, dim: number): Float32Array {
  const f = Math.fround;
  const w = f(f(f(guidanceScale) - 1) * 1000);
  const half = Math.floor(dim / 2);
  const out = new Float32Array(dim);
  const step = f(f(Math.log(10000)) / (half - 1));
  for (let k = 0; k < half; k++) {
    const a = f(w * f(Math.exp(f(-k * step))));
    out[k] = Math.sin(a);
    out[half + k] = Math.cos(a);
  }
  return out; // an odd dim leaves the last entry zero (diffusers pads it)
}
