/**
 * Stage 4, decode: latents / scaling_factor through the VAE decoder one image at a
 * time (bounded memory for large models), then 8-bit RGB and PNG. The pipeline
 * computes in float32; an fp16 decoder gets its input converted at the boundary
 * (tensor-io.ts), so an fp16 UNet with an fp32 VAE (or the reverse) just works. An
 * fp16 VAE that overflows (SDXL's, which diffusers upcasts: force_upcast) gives
 * non-finite pixels: that is an error naming the fix, not a black image.
 */
import { RagdiffError } from '../../errors.js';
import type { OpenedSession } from '../../models/session.js';
import { chwToRgb8 } from '../../image/pixels.js';
import { encodeRgbPng } from '../png.js';
import { FloatBoundary, floatTypeOf } from '../tensor-io.js';
import { tensorMeta, type Timed } from '../session-meta.js';
import type { Job, JobHooks, JobTimings, ModelInfo } from '../job.js';

export async function decodeLatents(
  ctx: { timed: Timed; info: ModelInfo; hooks: JobHooks; timings: JobTimings },
  vae: { session: OpenedSession; out: string },
  job: Job,
  latent: Float32Array,
): Promise<Uint8Array[]> {
  const { info, hooks, timings } = ctx;
  const t0 = performance.now();
  const batch = job.seeds.length;
  const { channels: C, height: h, width: w } = info.latent;
  const latentSize = C * h * w;
  const { height: H, width: Wd } = info.image;
  const dec = vae.session;
  const decIn = new FloatBoundary(floatTypeOf(tensorMeta(dec, 'latent_sample', 'input').type, dec.path), [1, C, h, w]);
  const decOut = new FloatBoundary(floatTypeOf(tensorMeta(dec, vae.out, 'output').type, dec.path), [1, 3, H, Wd]);
  const images: Uint8Array[] = [];
  const inv = 1 / info.scalingFactor;
  for (let i = 0; i < batch; i++) {
    hooks.progress?.(i, batch, 'decode');
    const src = latent.subarray(i * latentSize, (i + 1) * latentSize);
    for (let j = 0; j < latentSize; j++) decIn.data[j] = src[j]! * inv;
    await ctx.timed(dec, { latent_sample: decIn.toModel() }, { [vae.out]: decOut.tensor });
    const tr = performance.now();
    const pixels = decOut.fromModel();
    for (let j = 0; j < pixels.length; j++) {
      if (!Number.isFinite(pixels[j]!)) {
        const hint = decOut.type === 'float16' ? ' (an fp16 VAE overflowed: diffusers decodes this VAE in fp32 (force_upcast); export vae_decoder in fp32)' : '';
        throw new RagdiffError('MODEL_RUN_FAILED', `${dec.path}: decoded image ${i} has non-finite pixels${hint}`);
      }
    }
    const rgb = chwToRgb8(pixels, Wd, H);
    const tp = performance.now();
    images.push(encodeRgbPng(rgb, Wd, H, 9, job.pngText?.[i]));
    timings.toRgbMs += tp - tr;
    timings.pngMs += performance.now() - tp;
  }
  hooks.progress?.(batch, batch, 'decode');
  timings.vaeDecodeMs = performance.now() - t0 - timings.toRgbMs - timings.pngMs;
  return images;
}
