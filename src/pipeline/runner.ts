/**
 * The model side of a generation: owns the ONNX sessions of one bundle and runs
 * one job at a time — text encoding, optional image encoding, the sampling
 * loop, VAE decoding and the conversion to 8-bit RGB. It runs inside a worker
 * thread (see worker.ts) because onnxruntime-node's `run` blocks its thread;
 * it is plain async code, so benchmarks and tests can also drive it directly.
 *
 * Tensors are allocated once per job and refilled in place at every step.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type * as ort from 'onnxruntime-node';
import { AbortError, RagdiffError, rangeError } from '../errors.js';
import { openSession, expectIO, type ExecutionProvider, type OpenedSession } from '../models/session.js';
import { createScheduler, type DiffusersSchedulerConfig, type SamplerName, type Scheduler } from '../scheduler/index.js';
import { NoiseGenerator } from '../rng.js';
import { chwToRgb8 } from '../image/pixels.js';
import { readJsonFile, type BundleManifest } from './bundle.js';
import type { GuidanceBranch, GuidancePlan } from './guidance.js';
import { buildEncoderHiddenStates } from './context.js';
import { FloatBoundary, fillScalar, floatTypeOf, integerTensor, type FloatType } from './tensor-io.js';
import { BranchRows } from './branch-rows.js';
import { denoiseLoop, type LoopOptions } from './loop.js';
import { denoiseWithJump } from '../trajectory/jump.js';
import type { TrajectoryJob, TrajectoryStats } from '../trajectory/request.js';
import { encodeRgbPng } from './png.js';

export interface RunnerOptions {
  executionProviders?: ExecutionProvider[];
  /** Intra-op threads per session (default: ONNX Runtime's choice). */
  threads?: number;
  /** ONNX Runtime's spin-waiting intra-op threads (default false: idle threads sleep). */
  spinning?: boolean;
  onWarning?: (message: string) => void;
}

/** What a loaded bundle takes and makes; structured-cloneable. */
export interface ModelInfo {
  name: string;
  dir: string;
  /** sha256 over the bundle's model, tokenizer and scheduler files (hex). */
  hash: string;
  image: { channels: 3; height: number; width: number };
  latent: { channels: number; height: number; width: number };
  textLength: number;
  tokenWidth: number;
  /** encoder_hidden_states slots after the text tokens (retrieval neighbours); 0 for plain SD. */
  neighbourSlots: number;
  /** Width of the image embeddings image_proj takes (0 without an image_proj model). */
  embedDim: number;
  scalingFactor: number;
  /** Float type at the UNet boundary. */
  dtype: FloatType;
  timestepType: string;
  idsType: string;
  /** 'dynamic', or 1 for text encoders exported with a fixed batch of one (run once per text). */
  textBatch: 'dynamic' | 1;
  canImg2Img: boolean;
  /** The bundle has a reference-attention UNet variant (inputs ref_sample, ref_weight). */
  referenceAttention: boolean;
  providers: string[];
  schedulerConfig: Record<string, unknown>;
}

export interface Job {
  /** Token id sequences, [texts][textLength]. */
  texts: BigInt64Array[];
  plan: GuidancePlan;
  steps: number;
  sampler: SamplerName;
  karras?: boolean;
  /** One seed per image; image i's noise comes only from its own seeded stream. */
  seeds: number[];
  /**
   * Image-to-image: n init images as [n, 3, H, W] floats in [-1, 1] at the model's size, whose
   * scaled VAE latents are blended with `weights` (one per image, summing to 1), and the strength.
   */
  init?: { chw: Float32Array; weights: number[]; strength: number };
  /**
   * Resume mid-schedule: batch × latent floats (the sampler's state) entering step index `step`,
   * and for DPM-Solver++ the data prediction of step − 1 (else that step is first order).
   */
  start?: { step: number; latent: Float32Array; history?: Float32Array | null };
  /** Step indices after which the latent is reported through hooks.latent. */
  captureSteps?: number[];
  /**
   * Reference attention (needs the bundle's reference-attention UNet): n reference images as
   * [n, 3, H, W] floats in [-1, 1], blended in latent space with `weights`; each step the blend is
   * noised to the current timestep and the UNet's self-attention also attends to it, with
   * `fidelity` for the branches whose `branchMask` entry is 1 and 0 (plain attention) for the rest.
   */
  referenceAttention?: { chw: Float32Array; weights: number[]; fidelity: number; branchMask: number[] };
  /** Text chunks for each image's PNG (keyword → text), written by the encoder right after IHDR. */
  pngText?: Record<string, string>[];
  /** Trajectory retrieval (src/trajectory/): sample to keyStep, look up, jump to valueStep. */
  trajectory?: TrajectoryJob;
}

export type Stage = 'encode-text' | 'encode-image' | 'denoise' | 'decode';

export interface JobHooks {
  progress?(step: number, total: number, stage: Stage): void;
  /** Polled before every model call; true stops the job with an AbortError. */
  aborted?(): boolean;
  /** The latent after a captured step, and the DPM-Solver++ history a resume from it needs. */
  latent?(stepIndex: number, t: number, latent: Float32Array, history: Float32Array | null): void;
}

export interface JobTimings {
  textEncodeMs: number;
  imageEncodeMs: number;
  denoiseMs: number;
  unetMs: number;
  samplerMs: number;
  vaeDecodeMs: number;
  toRgbMs: number;
  /** PNG encoding (in the worker). */
  pngMs: number;
  /** Time inside ONNX Runtime runs, all models. */
  ortMs: number;
  totalMs: number;
}

export interface JobResult {
  /** One PNG per image, with job.pngText[i]'s text chunks. */
  images: Uint8Array[];
  width: number;
  height: number;
  /** Denoiser (UNet) calls; each evaluates every branch for every image at once. */
  nfe: number;
  branches: number;
  /** Steps actually run (fewer than requested for image-to-image). */
  stepsRun: number;
  timings: JobTimings;
  /** Set when the job asked for a trajectory jump. */
  trajectory?: TrajectoryStats;
}

function dim(v: number | string | undefined): number | undefined {
  return typeof v === 'number' && v > 0 ? v : undefined;
}

/** One UNet call's own buffers for a subset of the guidance rows (reference attention splits the batch). */
interface UnetRows {
  sample: FloatBoundary;
  out: FloatBoundary;
  feeds: Record<string, ort.Tensor>;
}

function tensorMeta(opened: OpenedSession, name: string, io: 'input' | 'output'): ort.InferenceSession.TensorValueMetadata {
  const list = io === 'input' ? opened.session.inputMetadata : opened.session.outputMetadata;
  const m = list.find((x) => x.name === name);
  if (!m || !m.isTensor) throw new RagdiffError('MODEL_IO_MISMATCH', `${opened.path}: ${io} ${name} is not a tensor`);
  return m as ort.InferenceSession.TensorValueMetadata;
}

function optionalJson(path: string, what: string): Record<string, unknown> {
  return existsSync(path) ? readJsonFile(path, what) : {};
}

/** sha256 over every file of the bundle's component folders, in a fixed order (path, then bytes). */
export function hashBundle(manifest: BundleManifest): string {
  const h = createHash('sha256');
  const dirs = ['text_encoder', 'unet', 'vae_decoder', 'vae_encoder', 'image_proj', 'tokenizer', 'scheduler'];
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.push(p);
    }
  };
  for (const d of dirs) if (existsSync(join(manifest.dir, d))) walk(join(manifest.dir, d));
  files.sort();
  const buf = Buffer.allocUnsafe(1 << 20);
  for (const f of files) {
    h.update(relative(manifest.dir, f).replaceAll('\\', '/') + '\0' + statSync(f).size + '\0');
    const fd = openSync(f, 'r');
    try {
      for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
    } finally {
      closeSync(fd);
    }
  }
  return h.digest('hex');
}

export class ModelRunner {
  private constructor(
    readonly info: ModelInfo,
    private readonly textEncoder: OpenedSession,
    private readonly unet: OpenedSession,
    private readonly vaeDecoder: OpenedSession,
    private readonly vaeEncoder: OpenedSession | null,
    private readonly imageProj: OpenedSession | null,
    private readonly unetRefAttn: OpenedSession | null,
    private readonly names: { textOut: string; unetOut: string; decOut: string; encOut: string; projOut: string },
  ) {}

  static async open(manifest: BundleManifest, options: RunnerOptions = {}): Promise<ModelRunner> {
    const so = { executionProviders: options.executionProviders, intraOpNumThreads: options.threads, allowSpinning: options.spinning ?? false, onWarning: options.onWarning };
    const opened: OpenedSession[] = [];
    try {
      const open = async (p: string) => {
        const s = await openSession(p, so);
        opened.push(s);
        return s;
      };
      const te = await open(manifest.files.textEncoder);
      const unet = await open(manifest.files.unet);
      const dec = await open(manifest.files.vaeDecoder);
      const enc = manifest.files.vaeEncoder ? await open(manifest.files.vaeEncoder) : null;
      const proj = manifest.files.imageProj ? await open(manifest.files.imageProj) : null;
      const refAttn = manifest.files.unetReferenceAttention ? await open(manifest.files.unetReferenceAttention) : null;
      if (refAttn) expectIO(refAttn, ['sample', 'timestep', 'encoder_hidden_states', 'ref_sample', 'ref_weight'], []);

      expectIO(te, ['input_ids'], []);
      expectIO(unet, ['sample', 'timestep', 'encoder_hidden_states'], []);
      expectIO(dec, ['latent_sample'], []);
      if (enc) expectIO(enc, ['sample'], []);
      if (proj) expectIO(proj, ['image_embeds'], []);
      const textOut = te.session.outputNames.includes('last_hidden_state') ? 'last_hidden_state' : te.session.outputNames[0]!;
      const unetOut = unet.session.outputNames.includes('out_sample') ? 'out_sample' : unet.session.outputNames[0]!;
      const decOut = dec.session.outputNames.includes('sample') ? 'sample' : dec.session.outputNames[0]!;
      const encOut = enc ? (enc.session.outputNames.includes('latent_sample') ? 'latent_sample' : enc.session.outputNames[0]!) : '';

      const projOut = proj ? (proj.session.outputNames.includes('image_prompt_embeds') ? 'image_prompt_embeds' : proj.session.outputNames[0]!) : '';
      const info = resolveInfo(manifest, te, unet, dec, enc, textOut, decOut);
      if (proj && info.neighbourSlots > 0) {
        const inMeta = tensorMeta(proj, 'image_embeds', 'input');
        const outMeta = tensorMeta(proj, projOut, 'output');
        info.embedDim = dim(inMeta.shape[2]) ?? (manifest.ragdiff as { embed_dim?: number } | null)?.embed_dim ?? 0;
        const k = dim(inMeta.shape[1]);
        const w = dim(outMeta.shape[2]);
        if ((k !== undefined && k !== info.neighbourSlots) || (w !== undefined && w !== info.tokenWidth)) {
          throw new RagdiffError('MODEL_IO_MISMATCH', `${proj.path}: maps [${inMeta.shape.join(', ')}] to [${outMeta.shape.join(', ')}], expected ${info.neighbourSlots} neighbours to width ${info.tokenWidth}`);
        }
        floatTypeOf(inMeta.type, `${proj.path}: image_embeds`);
        floatTypeOf(outMeta.type, `${proj.path}: ${projOut}`);
      }
      info.providers = unet.providers;
      info.referenceAttention = refAttn !== null && enc !== null;
      info.hash = hashBundle(manifest);
      return new ModelRunner(info, te, unet, dec, enc, info.embedDim > 0 ? proj : null, info.referenceAttention ? refAttn : null, { textOut, unetOut, decOut, encOut, projOut });
    } catch (e) {
      await Promise.allSettled(opened.map((s) => s.session.release()));
      throw e;
    }
  }

  /**
   * One scheduler per (sampler, karras), built on first use and reused by
   * later jobs: setTimesteps resets its step index and solver history, and its
   * own noise generator is never drawn from (the loop always passes per-image
   * noise to stochastic steps), so reuse gives the same bytes as a fresh one.
   */
  private readonly schedulers = new Map<string, Scheduler>();

  private scheduler(job: Job): Scheduler {
    const key = `${job.sampler}|${job.karras ?? ''}`;
    let s = this.schedulers.get(key);
    if (!s) {
      s = createScheduler(this.info.schedulerConfig as unknown as DiffusersSchedulerConfig, {
        sampler: job.sampler,
        ...(job.karras !== undefined ? { useKarrasSigmas: job.karras } : {}),
      });
      this.schedulers.set(key, s);
    }
    return s;
  }

  async close(): Promise<void> {
    const all = [this.textEncoder, this.unet, this.vaeDecoder, this.vaeEncoder, this.imageProj, this.unetRefAttn].filter((s): s is OpenedSession => s !== null);
    await Promise.allSettled(all.map((s) => s.session.release()));
  }

  /** Branches whose neighbourEmbeds are replaced by their image_proj tokens (one batched call for all). */
  private async projectNeighbours(
    branches: readonly GuidanceBranch[],
    timed: (s: OpenedSession, feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor>) => Promise<number>,
  ): Promise<GuidanceBranch[]> {
    const todo = branches.map((b, i) => (b.neighbourEmbeds ? i : -1)).filter((i) => i >= 0);
    if (todo.length === 0) return [...branches];
    const proj = this.imageProj;
    if (!proj) throw new RagdiffError('UNSUPPORTED', `${this.info.dir} has no image_proj model; neighbourEmbeds cannot be used`);
    const { neighbourSlots: S, embedDim: E, tokenWidth: W } = this.info;
    const input = new FloatBoundary(floatTypeOf(tensorMeta(proj, 'image_embeds', 'input').type, proj.path), [todo.length, S, E]);
    todo.forEach((b, j) => input.data.set(branches[b]!.neighbourEmbeds!, j * S * E));
    const output = new FloatBoundary(floatTypeOf(tensorMeta(proj, this.names.projOut, 'output').type, proj.path), [todo.length, S, W]);
    await timed(proj, { image_embeds: input.toModel() }, { [this.names.projOut]: output.tensor });
    output.fromModel();
    return branches.map((b, i) => {
      const j = todo.indexOf(i);
      return j < 0 ? b : { ...b, neighbours: output.data.subarray(j * S * W, (j + 1) * S * W), neighbourEmbeds: null };
    });
  }

  /**
   * VAE-encodes n images ([n, 3, H, W]) one at a time (exports may have a fixed batch of one)
   * and blends their scaled latents with `weights`.
   */
  private async encodeBlend(
    chw: Float32Array,
    weights: readonly number[],
    timed: (s: OpenedSession, feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor>) => Promise<number>,
  ): Promise<Float32Array> {
    const enc = this.vaeEncoder;
    if (!enc) throw new RagdiffError('UNSUPPORTED', `${this.info.dir} has no vae_encoder/model.onnx; images cannot enter as latents`);
    const { channels: C, height: h, width: w } = this.info.latent;
    const { height: H, width: Wd } = this.info.image;
    const pixels = new FloatBoundary(floatTypeOf(tensorMeta(enc, 'sample', 'input').type, enc.path), [1, 3, H, Wd]);
    const encoded = new FloatBoundary(floatTypeOf(tensorMeta(enc, this.names.encOut, 'output').type, enc.path), [1, C, h, w]);
    const plane = 3 * H * Wd;
    const size = C * h * w;
    const x0 = new Float32Array(size);
    for (let n = 0; n < weights.length; n++) {
      pixels.data.set(chw.subarray(n * plane, (n + 1) * plane));
      await timed(enc, { sample: pixels.toModel() }, { [this.names.encOut]: encoded.tensor });
      const z = encoded.fromModel();
      const k = weights[n]! * this.info.scalingFactor;
      for (let j = 0; j < size; j++) x0[j] = x0[j]! + k * z[j]!;
    }
    return x0;
  }

  async run(job: Job, hooks: JobHooks = {}): Promise<JobResult> {
    const started = performance.now();
    const info = this.info;
    const timings: JobTimings = { textEncodeMs: 0, imageEncodeMs: 0, denoiseMs: 0, unetMs: 0, samplerMs: 0, vaeDecodeMs: 0, toRgbMs: 0, pngMs: 0, ortMs: 0, totalMs: 0 };
    const checkAbort = () => {
      if (hooks.aborted?.()) throw new AbortError('generation aborted');
    };
    const timed = async (session: OpenedSession, feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor>) => {
      checkAbort();
      const t0 = performance.now();
      try {
        await session.session.run(feeds, fetches);
      } catch (e) {
        throw new RagdiffError('MODEL_RUN_FAILED', `${session.path}: ${String((e as Error)?.message ?? e).split('\n')[0]}`, { cause: e });
      }
      const ms = performance.now() - t0;
      timings.ortMs += ms;
      return ms;
    };

    const batch = job.seeds.length;
    const { branches, weights } = job.plan;
    const nb = branches.length;
    const { channels: C, height: h, width: w } = info.latent;
    const latentSize = C * h * w;
    const { textLength: L, tokenWidth: W, neighbourSlots: S } = info;

    const scheduler = this.scheduler(job);
    scheduler.setTimesteps(job.steps, { sampleLength: job.seeds.length * info.latent.channels * info.latent.height * info.latent.width });
    const timesteps = scheduler.timesteps;
    if (weights.length !== timesteps.length * nb) {
      throw new RagdiffError('INTERNAL', `guidance weights cover ${weights.length / nb} steps, the schedule has ${timesteps.length}`);
    }

    // ---- text encoder: all distinct texts in one call (one at a time for exports with a fixed batch of 1)
    hooks.progress?.(0, 1, 'encode-text');
    let t0 = performance.now();
    const T = job.texts.length;
    const textType = floatTypeOf(tensorMeta(this.textEncoder, this.names.textOut, 'output').type, this.textEncoder.path);
    const textStates = new Float32Array(T * L * W);
    const perCall = info.textBatch === 'dynamic' ? T : 1;
    for (let first = 0; first < T; first += perCall) {
      const ids: number[] = [];
      for (let i = first; i < first + perCall; i++) for (const id of job.texts[i]!) ids.push(Number(id));
      const out = new FloatBoundary(textType, [perCall, L, W], textStates.subarray(first * L * W, (first + perCall) * L * W));
      await timed(this.textEncoder, { input_ids: integerTensor(info.idsType, ids, [perCall, L]) }, { [this.names.textOut]: out.tensor });
      out.fromModel();
    }
    timings.textEncodeMs = performance.now() - t0;

    // ---- per-job buffers, allocated once
    const dtype = info.dtype;
    const latent = new Float32Array(batch * latentSize);
    const noise = new Float32Array(batch * latentSize);
    const modelInput = new FloatBoundary(dtype, [nb * batch, C, h, w]);
    const modelOutput = new FloatBoundary(dtype, [nb * batch, C, h, w]);
    const ehs = new FloatBoundary(floatTypeOf(tensorMeta(this.unet, 'encoder_hidden_states', 'input').type, this.unet.path), [nb * batch, L + S, W]);
    const conditioned = await this.projectNeighbours(branches, timed);
    // One native pass: text states, neighbour tokens scaled by their weights, zeros for dropped slots.
    buildEncoderHiddenStates(ehs.data, { batch, textLength: L, slots: S, width: W }, conditioned, textStates);
    ehs.toModel();
    const timestep = integerTensor(info.timestepType, new Array(nb * batch).fill(0), [nb * batch]);
    const generators = job.seeds.map((s) => new NoiseGenerator(s));
    const fillNoise = (out: Float32Array) => {
      generators.forEach((g, i) => g.fillNormal(out.subarray(i * latentSize, (i + 1) * latentSize)));
    };

    // ---- initial latent: resumed, image-to-image, or pure noise
    let startIndex = 0;
    if (job.start) {
      startIndex = job.start.step;
      latent.set(job.start.latent);
    } else if (job.init) {
      const initSteps = Math.min(Math.floor(job.steps * job.init.strength), job.steps);
      if (initSteps < 1) throw rangeError('OUT_OF_RANGE', `strength ${job.init.strength} × steps ${job.steps} leaves no step to run; raise strength or steps`);
      startIndex = job.steps - initSteps;
      if (!this.vaeEncoder) throw new RagdiffError('UNSUPPORTED', `${info.dir} has no vae_encoder/model.onnx; image-to-image is unavailable`);
      hooks.progress?.(0, 1, 'encode-image');
      t0 = performance.now();
      const x0 = await this.encodeBlend(job.init.chw, job.init.weights, timed);
      fillNoise(noise);
      const tStart = timesteps[startIndex]!;
      scheduler.setStepIndex(startIndex);
      for (let i = 0; i < batch; i++) {
        scheduler.addNoise(x0, noise.subarray(i * latentSize, (i + 1) * latentSize), tStart, latent.subarray(i * latentSize, (i + 1) * latentSize));
      }
      timings.imageEncodeMs = performance.now() - t0;
    } else {
      fillNoise(latent);
      const sigma = scheduler.initNoiseSigma;
      if (sigma !== 1) for (let j = 0; j < latent.length; j++) latent[j] = latent[j]! * sigma;
    }

    // ---- reference attention: the blended reference latent, noised to each step's timestep by its own stream.
    // Only the rows of the branches that attend run through the variant (its reference pass runs for every
    // row it is given, ref_weight 0 or not); the other branches' rows run through the plain UNet. With no
    // branch attending (say, the text+retrieval branch dropped at weight 0) the plain UNet does it all.
    const ra = job.referenceAttention;
    let refAttn: {
      x0: Float32Array; noise: Float32Array; noised: Float32Array; scaled: Float32Array;
      attend: BranchRows; attendIO: UnetRows & { ref: FloatBoundary };
      plain: BranchRows; plainIO: UnetRows | null;
    } | null = null;
    if (ra && ra.branchMask.some((m) => m !== 0)) {
      if (!this.unetRefAttn) throw new RagdiffError('UNSUPPORTED', `${info.dir} declares no reference-attention UNet (ragdiff.variants.reference_attention)`);
      if (ra.branchMask.length !== nb) throw new RagdiffError('INTERNAL', `referenceAttention.branchMask has ${ra.branchMask.length} entries for ${nb} branches`);
      const t1 = performance.now();
      const x0 = await this.encodeBlend(ra.chw, ra.weights, timed);
      timings.imageEncodeMs += performance.now() - t1;
      const noiseRef = new Float32Array(latentSize);
      // A stream of its own (not any image's), so the images' noise is the same with and without a reference.
      new NoiseGenerator(job.seeds[0]! + 0x5eed5).fillNormal(noiseRef);
      const ehsSize = (L + S) * W;
      const rowsFor = (session: OpenedSession, rows: BranchRows): UnetRows => {
        const states = new FloatBoundary(floatTypeOf(tensorMeta(session, 'encoder_hidden_states', 'input').type, session.path), [rows.rows, L + S, W]);
        rows.gather(ehs.data, states.data, ehsSize);
        states.toModel();
        const sample = new FloatBoundary(dtype, [rows.rows, C, h, w]);
        const timestep = integerTensor(info.timestepType, new Array(rows.rows).fill(0), [rows.rows]);
        return { sample, out: new FloatBoundary(dtype, [rows.rows, C, h, w]), feeds: { sample: sample.tensor, timestep, encoder_hidden_states: states.tensor } };
      };
      const attend = new BranchRows(ra.branchMask.map((m) => m !== 0), batch);
      const plain = new BranchRows(ra.branchMask.map((m) => m === 0), batch);
      const wMeta = tensorMeta(this.unetRefAttn, 'ref_weight', 'input');
      const perRow = wMeta.shape.length === 1 && wMeta.shape[0] !== 1;
      const weight = new FloatBoundary(floatTypeOf(wMeta.type, this.unetRefAttn.path), perRow ? [attend.rows] : [1]);
      weight.data.fill(ra.fidelity);
      const ref = new FloatBoundary(floatTypeOf(tensorMeta(this.unetRefAttn, 'ref_sample', 'input').type, this.unetRefAttn.path), [attend.rows, C, h, w]);
      const attendIO = { ...rowsFor(this.unetRefAttn, attend), ref };
      attendIO.feeds.ref_sample = ref.tensor;
      attendIO.feeds.ref_weight = weight.toModel();
      refAttn = {
        x0, noise: noiseRef, noised: new Float32Array(latentSize), scaled: new Float32Array(latentSize),
        attend, attendIO, plain, plainIO: plain.rows > 0 ? rowsFor(this.unet, plain) : null,
      };
    }

    // ---- denoising loop
    const total = timesteps.length - startIndex;
    const capture = new Set(job.captureSteps ?? []);
    const feeds: Record<string, ort.Tensor> = { sample: modelInput.tensor, timestep, encoder_hidden_states: ehs.tensor };
    const fetches = { [this.names.unetOut]: modelOutput.tensor };
    const loopTiming = { samplerMs: 0 };
    t0 = performance.now();
    hooks.progress?.(0, total, 'denoise');
    let trajectory: TrajectoryStats | undefined;
    const loopOptions: LoopOptions = {
      scheduler,
      buffers: { latent, modelInput: modelInput.data, modelOutput: modelOutput.data, noise },
      branches: nb,
      weights,
      startIndex,
      history: job.start?.history ?? null,
      // DDIM runs with eta 0 here (no request sets it): Euler ancestral and LCM draw per-step noise.
      stochastic: job.sampler === 'euler-ancestral' || job.sampler === 'lcm',
      fillNoise,
      timing: loopTiming,
      runModel: async (t) => {
        if (!refAttn) {
          fillScalar(timestep, t);
          modelInput.toModel();
          timings.unetMs += await timed(this.unet, feeds, fetches);
          modelOutput.fromModel();
          return;
        }
        const { attend, attendIO, plain, plainIO } = refAttn;
        // The reference as the sample would be at t, scaled like the sample (diffusers' reference-only pipeline).
        scheduler.addNoise(refAttn.x0, refAttn.noise, t, refAttn.noised);
        scheduler.scaleModelInput(refAttn.noised, t, refAttn.scaled);
        for (let r = 0; r < attend.rows; r++) attendIO.ref.data.set(refAttn.scaled, r * latentSize);
        attendIO.ref.toModel();
        const groups = plainIO ? ([[attend, attendIO, this.unetRefAttn!], [plain, plainIO, this.unet]] as const) : ([[attend, attendIO, this.unetRefAttn!]] as const);
        for (const [rows, io, session] of groups) {
          fillScalar(io.feeds.timestep!, t);
          rows.gather(modelInput.data, io.sample.data, latentSize);
          io.sample.toModel();
          timings.unetMs += await timed(session, io.feeds, { [this.names.unetOut]: io.out.tensor });
          rows.scatter(io.out.fromModel(), modelOutput.data, latentSize);
        }
      },
      afterStep: (i, t, x) => {
        if (capture.has(i)) hooks.latent?.(i, t, x, scheduler.history);
        hooks.progress?.(i - startIndex + 1, total, 'denoise');
      },
    };
    let nfe: number;
    if (job.trajectory) ({ nfe, stats: trajectory } = await denoiseWithJump(loopOptions, job.trajectory, batch));
    else nfe = await denoiseLoop(loopOptions);
    timings.samplerMs = loopTiming.samplerMs;
    timings.denoiseMs = performance.now() - t0;

    // ---- decode, one image at a time (bounded memory for large models)
    t0 = performance.now();
    const { height: H, width: Wd } = info.image;
    const decIn = new FloatBoundary(floatTypeOf(tensorMeta(this.vaeDecoder, 'latent_sample', 'input').type, this.vaeDecoder.path), [1, C, h, w]);
    const decOut = new FloatBoundary(floatTypeOf(tensorMeta(this.vaeDecoder, this.names.decOut, 'output').type, this.vaeDecoder.path), [1, 3, H, Wd]);
    const images: Uint8Array[] = [];
    const inv = 1 / info.scalingFactor;
    for (let i = 0; i < batch; i++) {
      hooks.progress?.(i, batch, 'decode');
      const src = latent.subarray(i * latentSize, (i + 1) * latentSize);
      for (let j = 0; j < latentSize; j++) decIn.data[j] = src[j]! * inv;
      await timed(this.vaeDecoder, { latent_sample: decIn.toModel() }, { [this.names.decOut]: decOut.tensor });
      const tr = performance.now();
      const rgb = chwToRgb8(decOut.fromModel(), Wd, H);
      const tp = performance.now();
      images.push(encodeRgbPng(rgb, Wd, H, 9, job.pngText?.[i]));
      timings.toRgbMs += tp - tr;
      timings.pngMs += performance.now() - tp;
    }
    hooks.progress?.(batch, batch, 'decode');
    timings.vaeDecodeMs = performance.now() - t0 - timings.toRgbMs - timings.pngMs;
    timings.totalMs = performance.now() - started;
    return { images, width: Wd, height: H, nfe, branches: nb, stepsRun: total, timings, ...(trajectory ? { trajectory } : {}) };
  }
}

/** Reads the shapes and types the bundle's sessions declare, filling symbolic dimensions from the configs. */
function resolveInfo(
  manifest: BundleManifest,
  te: OpenedSession,
  unet: OpenedSession,
  dec: OpenedSession,
  enc: OpenedSession | null,
  textOut: string,
  decOut: string,
): ModelInfo {
  const rd = manifest.ragdiff ?? {};
  const unetConfig = optionalJson(join(manifest.dir, 'unet', 'config.json'), 'UNet config');
  const vaeConfig = optionalJson(join(manifest.dir, 'vae_decoder', 'config.json'), 'VAE config');

  const sample = tensorMeta(unet, 'sample', 'input');
  const ehsMeta = tensorMeta(unet, 'encoder_hidden_states', 'input');
  const ts = tensorMeta(unet, 'timestep', 'input');
  const idsMeta = tensorMeta(te, 'input_ids', 'input');
  const textMeta = tensorMeta(te, textOut, 'output');
  const decOutMeta = tensorMeta(dec, decOut, 'output');

  const num = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined);
  const latentC = dim(sample.shape[1]) ?? num(unetConfig.in_channels) ?? rd.latent_channels ?? 4;
  const latentH = dim(sample.shape[2]) ?? num(unetConfig.sample_size) ?? rd.latent_size ?? 64;
  const latentW = dim(sample.shape[3]) ?? num(unetConfig.sample_size) ?? rd.latent_size ?? 64;
  const blocks = Array.isArray(vaeConfig.block_out_channels) ? vaeConfig.block_out_channels.length : 0;
  const factor = rd.image_size && rd.latent_size ? rd.image_size / rd.latent_size : blocks > 0 ? 2 ** (blocks - 1) : 8;
  const imageH = dim(decOutMeta.shape[2]) ?? latentH * factor;
  const imageW = dim(decOutMeta.shape[3]) ?? latentW * factor;
  const textLength = dim(idsMeta.shape[1]) ?? rd.text_max_length ?? 77;
  const tokenWidth = dim(textMeta.shape[2]) ?? dim(ehsMeta.shape[2]) ?? rd.token_width;
  if (!tokenWidth) throw new RagdiffError('MODEL_IO_MISMATCH', `${te.path}: cannot tell the token width (last_hidden_state has shape ${JSON.stringify(textMeta.shape)})`);
  const ehsWidth = dim(ehsMeta.shape[2]);
  if (ehsWidth !== undefined && ehsWidth !== tokenWidth) {
    throw new RagdiffError('MODEL_IO_MISMATCH', `${unet.path}: encoder_hidden_states width ${ehsWidth} differs from the text encoder's ${tokenWidth}`);
  }
  const seq = dim(ehsMeta.shape[1]) ?? textLength + manifest.neighbourSlots;
  const slots = seq - textLength;
  if (slots < 0) {
    throw new RagdiffError('MODEL_IO_MISMATCH', `${unet.path}: encoder_hidden_states holds ${seq} tokens, fewer than the text encoder's ${textLength}`);
  }
  const batchDim = sample.shape[0];
  if (typeof batchDim === 'number' && batchDim > 0) {
    throw new RagdiffError('UNSUPPORTED', `${unet.path}: the UNet has a fixed batch of ${batchDim}; re-export it with a dynamic batch axis`);
  }
  if (!['int64', 'int32', 'float32', 'float16'].includes(ts.type)) {
    throw new RagdiffError('MODEL_IO_MISMATCH', `${unet.path}: timestep has type ${ts.type}; expected int64, int32, float32 or float16`);
  }
  if (!['int64', 'int32'].includes(idsMeta.type)) {
    throw new RagdiffError('MODEL_IO_MISMATCH', `${te.path}: input_ids has type ${idsMeta.type}; expected int64 or int32`);
  }
  const idsBatch = idsMeta.shape[0];
  if (typeof idsBatch === 'number' && idsBatch > 1) {
    throw new RagdiffError('UNSUPPORTED', `${te.path}: the text encoder has a fixed batch of ${idsBatch}; re-export it with a dynamic batch axis`);
  }
  const textBatch: 'dynamic' | 1 = typeof idsBatch === 'number' ? 1 : 'dynamic';
  const dtype = floatTypeOf(sample.type, `${unet.path}: sample`);
  floatTypeOf(tensorMeta(unet, unet.session.outputNames.includes('out_sample') ? 'out_sample' : unet.session.outputNames[0]!, 'output').type, `${unet.path}: output`);

  return {
    name: manifest.name,
    dir: manifest.dir,
    hash: '',
    image: { channels: 3, height: imageH, width: imageW },
    latent: { channels: latentC, height: latentH, width: latentW },
    textLength,
    tokenWidth,
    neighbourSlots: slots,
    embedDim: 0,
    scalingFactor: manifest.scalingFactor,
    dtype,
    timestepType: ts.type,
    idsType: idsMeta.type,
    textBatch,
    canImg2Img: enc !== null,
    referenceAttention: false,
    providers: [],
    schedulerConfig: manifest.schedulerConfig,
  };
}
