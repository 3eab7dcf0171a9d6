/**
 * The sampling loop, separate from the models: it owns no sessions and builds
 * no conditioning. Each step scales the latent, replicates it for every
 * guidance branch, asks `runModel` for all branch outputs in one batched call
 * and hands them with that step's weights to the sampler's fused guided step.
 *
 * Seams for what comes later (trajectory retrieval, retrieval-augmented
 * guidance): the loop can start at any step index with a given latent;
 * `afterStep` sees (and may replace, in place) the latent after every step; the
 * weight table gives any number of branches per-step weights. (Abort is polled
 * by runModel's caller before every model call, so the loop needs no hook.)
 */
import type { Scheduler } from '../scheduler/index.js';

/** The part of the sampler the loop drives. */
export type LoopScheduler = Pick<Scheduler, 'timesteps' | 'scaleModelInput' | 'stepGuided' | 'setStepIndex'>;

export interface LoopBuffers {
  /** batch × latentSize; updated in place by every step. */
  latent: Float32Array;
  /** branches × batch × latentSize: the scaled latent, once per branch (branch-major). */
  modelInput: Float32Array;
  /** branches × batch × latentSize: the denoiser's outputs, branch-major. */
  modelOutput: Float32Array;
  /** batch × latentSize: per-step noise, used by stochastic samplers (ancestral, DDIM with eta > 0). */
  noise: Float32Array;
}

export interface LoopOptions {
  scheduler: LoopScheduler;
  buffers: LoopBuffers;
  branches: number;
  /** timesteps.length × branches, row-major. */
  weights: Float32Array;
  /** First step index to run (0 = from pure noise; > 0 re-enters the schedule there). */
  startIndex?: number;
  /** DPM-Solver++: the data prediction of step startIndex − 1, so a resumed solver stays second order. */
  history?: Float32Array | null;
  /** With startIndex > 0: the scheduler already stands at startIndex (an earlier loop ran to it); keep its state. */
  continues?: boolean;
  /** One past the last step index to run (default: all). */
  endIndex?: number;
  /** Runs the denoiser on buffers.modelInput at timestep t, filling buffers.modelOutput. */
  runModel(t: number, stepIndex: number): Promise<void>;
  /**
   * True for samplers that draw noise at every step (Euler ancestral, DDIM with eta > 0):
   * buffers.noise is then refilled before each step by fillNoise.
   */
  stochastic: boolean;
  /** Fills buffers.noise from per-image seeded streams, so a batch image's noise never depends on the others. */
  fillNoise(noise: Float32Array): void;
  /** Called after each step with the updated latent (may modify it in place). */
  afterStep?(stepIndex: number, t: number, latent: Float32Array): void;
  /** Accumulates time spent in the sampler (scale + guided step), in ms. */
  timing?: { samplerMs: number };
}

/** Runs steps [startIndex, endIndex ?? timesteps.length) and returns the number of denoiser calls made. */
export async function denoiseLoop(o: LoopOptions): Promise<number> {
  const { scheduler, buffers, branches } = o;
  const { latent, modelInput, modelOutput, noise } = buffers;
  const ts = scheduler.timesteps;
  const start = o.startIndex ?? 0;
  const end = Math.min(o.endIndex ?? ts.length, ts.length);
  const n = latent.length;
  let calls = 0;
  if (start > 0 && !o.continues) scheduler.setStepIndex(start, { history: o.history ?? null });
  for (let i = start; i < end; i++) {
    const t = ts[i]!;
    let t0 = performance.now();
    const first = modelInput.subarray(0, n);
    scheduler.scaleModelInput(latent, t, first);
    for (let b = 1; b < branches; b++) modelInput.copyWithin(b * n, 0, n);
    let samplerMs = performance.now() - t0;

    await o.runModel(t, i);
    calls++;

    t0 = performance.now();
    if (o.stochastic) o.fillNoise(noise);
    scheduler.stepGuided(modelOutput, o.weights.subarray(i * branches, (i + 1) * branches), t, latent, o.stochastic ? { noise, out: latent } : { out: latent });
    samplerMs += performance.now() - t0;
    if (o.timing) o.timing.samplerMs += samplerMs;
    o.afterStep?.(i, t, latent);
  }
  return calls;
}
