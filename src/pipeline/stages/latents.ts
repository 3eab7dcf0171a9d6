/**
 * Stage 2, prepare latents: pure noise scaled by the scheduler's init sigma, a
 * resumed latent, or image-to-image (the VAE encoder's latents of the init images,
 * blended, noised to the first step run). Noise comes from one seeded stream per image.
 */
import { RagdiffError, rangeError } from '../../errors.js';
import type { OpenedSession } from '../../models/session.js';
import type { Scheduler } from '../../scheduler/index.js';
import { FloatBoundary, floatTypeOf } from '../tensor-io.js';
import { tensorMeta, type Timed } from '../session-meta.js';
import type { Job, JobHooks, JobTimings, ModelInfo } from '../job.js';

export interface VaeEncoder {
  session: OpenedSession;
  out: string;
}

/**
 * VAE-encodes n images ([n, 3, H, W]) one at a time (exports may have a fixed batch of one)
 * and blends their scaled latents with `weights`.
 */
export async function encodeBlend(timed: Timed, info: ModelInfo, vae: VaeEncoder | null, chw: Float32Array, weights: readonly number[]): Promise<Float32Array> {
  if (!vae) throw new RagdiffError('UNSUPPORTED', `${info.dir} has no vae_encoder/model.onnx; images cannot enter as latents`);
  const enc = vae.session;
  const { channels: C, height: h, width: w } = info.latent;
  const { height: H, width: Wd } = info.image;
  const pixels = new FloatBoundary(floatTypeOf(tensorMeta(enc, 'sample', 'input').type, enc.path), [1, 3, H, Wd]);
  const encoded = new FloatBoundary(floatTypeOf(tensorMeta(enc, vae.out, 'output').type, enc.path), [1, C, h, w]);
  const plane = 3 * H * Wd;
  const size = C * h * w;
  const x0 = new Float32Array(size);
  for (let n = 0; n < weights.length; n++) {
    pixels.data.set(chw.subarray(n * plane, (n + 1) * plane));
    await timed(enc, { sample: pixels.toModel() }, { [vae.out]: encoded.tensor });
    const z = encoded.fromModel();
    const k = weights[n]! * info.scalingFactor;
    for (let j = 0; j < size; j++) x0[j] = x0[j]! + k * z[j]!;
  }
  return x0;
}

export interface PreparedLatents {
  /** The schedule index the loop starts at. */
  startIndex: number;
}

/** Fills `latent` (batch × latent floats) with the starting point; `noise` is scratch of the same size. */
export async function prepareLatents(
  ctx: { timed: Timed; info: ModelInfo; vae: VaeEncoder | null; hooks: JobHooks; timings: JobTimings },
  job: Job,
  scheduler: Scheduler,
  latent: Float32Array,
  noise: Float32Array,
  fillNoise: (out: Float32Array) => void,
): Promise<PreparedLatents> {
  const { info } = ctx;
  const batch = job.seeds.length;
  const latentSize = latent.length / batch;
  if (job.start) {
    latent.set(job.start.latent);
    return { startIndex: job.start.step };
  }
  if (job.init) {
    const initSteps = Math.min(Math.floor(job.steps * job.init.strength), job.steps);
    if (initSteps < 1) throw rangeError('OUT_OF_RANGE', `strength ${job.init.strength} × steps ${job.steps} leaves no step to run; raise strength or steps`);
    const startIndex = job.steps - initSteps;
    if (!ctx.vae) throw new RagdiffError('UNSUPPORTED', `${info.dir} has no vae_encoder/model.onnx; image-to-image is unavailable`);
    ctx.hooks.progress?.(0, 1, 'encode-image');
    const t0 = performance.now();
    const x0 = await encodeBlend(ctx.timed, info, ctx.vae, job.init.chw, job.init.weights);
    fillNoise(noise);
    const tStart = scheduler.timesteps[startIndex]!;
    scheduler.setStepIndex(startIndex);
    for (let i = 0; i < batch; i++) {
      scheduler.addNoise(x0, noise.subarray(i * latentSize, (i + 1) * latentSize), tStart, latent.subarray(i * latentSize, (i + 1) * latentSize));
    }
    ctx.timings.imageEncodeMs = performance.now() - t0;
    return { startIndex };
  }
  fillNoise(latent);
  const sigma = scheduler.initNoiseSigma;
  if (sigma !== 1) for (let j = 0; j < latent.length; j++) latent[j] = latent[j]! * sigma;
  return { startIndex: 0 };
}
