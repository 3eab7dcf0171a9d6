/**
 * Text-only classifier-free guidance, the plan of `reference-init` (the
 * references enter as the starting latent, not as tokens) — so it runs on
 * any bundle with a VAE encoder, Stable Diffusion exports included.
 */
import { fmt, PROMPT, UNCOND, type ModePlan, type PlanInput } from './plan.js';

export function textCfgPlan(p: PlanInput): ModePlan {
  const steps = p.timesteps.length;
  const weights = new Float32Array(steps * 2);
  for (let i = 0; i < steps; i++) weights.set([1 - p.textScale, p.textScale], i * 2);
  return { branches: [{ text: UNCOND, label: 'none' }, { text: PROMPT, label: 'text' }], weights, label: `cfg s_t=${fmt(p.textScale)}` };
}
