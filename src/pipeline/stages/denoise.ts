/**
 * Stage 3, denoise: the sampling loop (loop.ts) with a denoiser that evaluates
 * every guidance branch for every image in one UNet call per step. With reference
 * attention (a bundle's reference-attention UNet variant), the rows of the branches
 * that attend run through the variant in their own batch, the reference latent
 * noised to the step's timestep, and the other rows through the plain UNet.
 * Conditioning inputs are whatever the family feeds (RowInput), gathered per group.
 */
import type * as ort from 'onnxruntime-node';
import type { OpenedSession } from '../../models/session.js';
import type { Scheduler } from '../../scheduler/index.js';
import { NoiseGenerator } from '../../rng.js';
import { BranchRows } from '../branch-rows.js';
import { FloatBoundary, fillScalar, floatTypeOf, integerTensor, type FloatType } from '../tensor-io.js';
import { tensorMeta, type Timed } from '../session-meta.js';
import { denoiseLoop, type LoopOptions } from '../loop.js';
import { denoiseWithJump } from '../../trajectory/jump.js';
import type { TrajectoryStats } from '../../trajectory/request.js';
import type { Job, JobHooks, JobTimings, ModelInfo } from '../job.js';
import type { RowInput } from './conditioning.js';

/** One UNet call's own buffers for a group of rows. */
interface UnetRows {
  sample: FloatBoundary;
  out: FloatBoundary;
  feeds: Record<string, ort.Tensor>;
}

/** Feeds for `rows` of the conditioning (all rows when `rows` is null, sharing the loop's buffers). */
function rowsFor(session: OpenedSession, info: ModelInfo, conditioning: readonly RowInput[], n: number, rows: BranchRows | null, io?: { sample: FloatBoundary; out: FloatBoundary }): UnetRows {
  const { channels: C, height: h, width: w } = info.latent;
  const feeds: Record<string, ort.Tensor> = {};
  const sample = io?.sample ?? new FloatBoundary(info.dtype, [n, C, h, w]);
  feeds.sample = sample.tensor;
  feeds.timestep = integerTensor(info.timestepType, new Array(n).fill(0), [n]);
  for (const c of conditioning) {
    const type: FloatType = floatTypeOf(tensorMeta(session, c.name, 'input').type, `${session.path}: ${c.name}`);
    const dims = c.name === 'encoder_hidden_states' ? [n, c.width / info.tokenWidth, info.tokenWidth] : [n, c.width];
    const b = new FloatBoundary(type, dims, rows ? undefined : c.data);
    if (rows) rows.gather(c.data, b.data, c.width);
    feeds[c.name] = b.toModel();
  }
  return { sample, out: io?.out ?? new FloatBoundary(info.dtype, [n, C, h, w]), feeds };
}

export interface DenoiseArgs {
  timed: Timed;
  info: ModelInfo;
  hooks: JobHooks;
  timings: JobTimings;
  unet: OpenedSession;
  unetOut: string;
  /** The reference-attention variant and the reference's blended latent, when the job asks for it. */
  reference: { session: OpenedSession; x0: Float32Array } | null;
  scheduler: Scheduler;
  /** encoder_hidden_states first, then the family's extras; all rows, branch-major. */
  conditioning: RowInput[];
  buffers: { latent: Float32Array; noise: Float32Array };
  fillNoise(out: Float32Array): void;
  startIndex: number;
}

export async function denoise(job: Job, a: DenoiseArgs): Promise<{ nfe: number; stepsRun: number; trajectory?: TrajectoryStats }> {
  const { info, scheduler, timings } = a;
  const batch = job.seeds.length;
  const nb = job.plan.branches.length;
  const latentSize = info.latent.channels * info.latent.height * info.latent.width;
  const all = rowsFor(a.unet, info, a.conditioning, nb * batch, null);
  const fetches = { [a.unetOut]: all.out.tensor };

  // Reference attention: the blended reference latent, noised to each step's timestep by its own stream.
  // Only the rows of the branches that attend run through the variant (its reference pass runs for every
  // row it is given, ref_weight 0 or not); the other branches' rows run through the plain UNet.
  const ra = job.referenceAttention;
  let ref: {
    noise: Float32Array; noised: Float32Array; scaled: Float32Array; image: FloatBoundary;
    groups: [BranchRows, UnetRows, OpenedSession][];
  } | null = null;
  if (a.reference && ra) {
    const session = a.reference.session;
    const noise = new Float32Array(latentSize);
    // A stream of its own (not any image's), so the images' noise is the same with and without a reference.
    new NoiseGenerator(job.seeds[0]! + 0x5eed5).fillNormal(noise);
    const attend = new BranchRows(ra.branchMask.map((m) => m !== 0), batch);
    const plain = new BranchRows(ra.branchMask.map((m) => m === 0), batch);
    const wMeta = tensorMeta(session, 'ref_weight', 'input');
    const perRow = wMeta.shape.length === 1 && wMeta.shape[0] !== 1;
    const weight = new FloatBoundary(floatTypeOf(wMeta.type, session.path), perRow ? [attend.rows] : [1]);
    weight.data.fill(ra.fidelity);
    const { channels: C, height: h, width: w } = info.latent;
    const image = new FloatBoundary(floatTypeOf(tensorMeta(session, 'ref_sample', 'input').type, session.path), [attend.rows, C, h, w]);
    const attendIO = rowsFor(session, info, a.conditioning, attend.rows, attend);
    attendIO.feeds.ref_sample = image.tensor;
    attendIO.feeds.ref_weight = weight.toModel();
    const groups: [BranchRows, UnetRows, OpenedSession][] = [[attend, attendIO, session]];
    if (plain.rows > 0) groups.push([plain, rowsFor(a.unet, info, a.conditioning, plain.rows, plain), a.unet]);
    ref = { noise, noised: new Float32Array(latentSize), scaled: new Float32Array(latentSize), image, groups };
  }

  const modelInput = all.sample;
  const modelOutput = all.out;
  const total = scheduler.timesteps.length - a.startIndex;
  const capture = new Set(job.captureSteps ?? []);
  const loopTiming = { samplerMs: 0 };
  const t0 = performance.now();
  a.hooks.progress?.(0, total, 'denoise');
  const loopOptions: LoopOptions = {
    scheduler,
    buffers: { latent: a.buffers.latent, modelInput: modelInput.data, modelOutput: modelOutput.data, noise: a.buffers.noise },
    branches: nb,
    weights: job.plan.weights,
    startIndex: a.startIndex,
    history: job.start?.history ?? null,
    // DDIM runs with eta 0 here (no request sets it): Euler ancestral and LCM draw per-step noise.
    stochastic: job.sampler === 'euler-ancestral' || job.sampler === 'lcm',
    fillNoise: a.fillNoise,
    timing: loopTiming,
    runModel: async (t) => {
      if (!ref) {
        fillScalar(all.feeds.timestep!, t);
        modelInput.toModel();
        timings.unetMs += await a.timed(a.unet, all.feeds, fetches);
        modelOutput.fromModel();
        return;
      }
      // The reference as the sample would be at t, scaled like the sample (diffusers' reference-only pipeline).
      scheduler.addNoise(a.reference!.x0, ref.noise, t, ref.noised);
      scheduler.scaleModelInput(ref.noised, t, ref.scaled);
      const attendRows = ref.groups[0]![0].rows;
      for (let r = 0; r < attendRows; r++) ref.image.data.set(ref.scaled, r * latentSize);
      ref.image.toModel();
      for (const [rows, io, session] of ref.groups) {
        fillScalar(io.feeds.timestep!, t);
        rows.gather(modelInput.data, io.sample.data, latentSize);
        io.sample.toModel();
        timings.unetMs += await a.timed(session, io.feeds, { [a.unetOut]: io.out.tensor });
        rows.scatter(io.out.fromModel(), modelOutput.data, latentSize);
      }
    },
    afterStep: (i, t, x) => {
      if (capture.has(i)) a.hooks.latent?.(i, t, x, scheduler.history);
      a.hooks.progress?.(i - a.startIndex + 1, total, 'denoise');
    },
  };
  let nfe: number;
  let trajectory: TrajectoryStats | undefined;
  if (job.trajectory) ({ nfe, stats: trajectory } = await denoiseWithJump(loopOptions, job.trajectory, batch));
  else nfe = await denoiseLoop(loopOptions);
  timings.samplerMs = loopTiming.samplerMs;
  timings.denoiseMs = performance.now() - t0;
  return { nfe, stepsRun: total, ...(trajectory ? { trajectory } : {}) };
}
