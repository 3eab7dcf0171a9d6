/**
 * The public generation API: `Pipeline.load(dir)` once, then any number of
 * concurrent `pipeline.generate(...)` calls.
 *
 * Threads: validation, tokenizing, init-image decoding and PNG encoding happen
 * on the caller's thread (all cheap or asynchronous); every ONNX session lives
 * in an inference worker (worker.ts). `concurrency` workers each hold their own
 * sessions and run one generation at a time; up to `maxQueue` more wait in
 * FIFO order; beyond that `generate` rejects at once with a BusyError.
 *
 * Abort: a generation's AbortSignal sets a shared flag the worker polls before
 * every model call, so a running generation stops within one denoiser call;
 * a queued one leaves the queue at once. Either way the promise rejects with an
 * AbortError and every buffer of the call is released.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { AbortError, BusyError, RagdiffError, rangeError } from '../errors.js';
import { assertBoolean, assertFinite, assertInteger, assertPlainObject } from '../validate.js';
import { WorkerPool, type Dispatch } from '../worker-pool.js';
import { decodeImage, DEFAULT_MAX_PIXELS } from '../image/decode.js';
import { rgb8ToChw } from '../image/pixels.js';
import { loadTokenizer, type PromptTokenizer } from '../models/tokenizer.js';
import type { ExecutionProvider } from '../models/session.js';
import { createScheduler, type DiffusersSchedulerConfig, type Scheduler } from '../scheduler/index.js';
import { readBundle, type BundleManifest } from './bundle.js';
import { generationBinding } from '../trajectory/binding.js';
import { prepareTrajectory, requestedValueStep, stylePlan, type TrajectoryStats } from '../trajectory/request.js';
import { cfgPlan, checkPlan, pruneZeroBranches, type GuidancePlan } from './guidance.js';
import { normalizeRequest, samplerFromConfig, SAMPLERS, type GenerateRequest, type LatentEvent, type NormalizedRequest, type ProgressEvent, type RequestDefaults, type SamplerChoice } from './params.js';
import { parameterText, type GenerationParameters } from './output.js';
import type { FromWorker, ToWorker, WorkerData } from './protocol.js';
import { deserializeError } from '../worker-errors.js';
import type { Job, JobResult, JobTimings, ModelInfo } from './runner.js';
import { tokenizeTexts, type PromptStats } from './prompts.js';
import { FAMILIES } from './families/index.js';

export type { PromptStats } from './prompts.js';

export interface PipelineOptions {
  /** ONNX Runtime execution providers in order of preference; one that cannot load falls back to CPU with a warning. */
  executionProviders?: ExecutionProvider[];
  /** Inference workers, each with its own sessions, i.e. generations run at once (1..16, default 1). */
  concurrency?: number;
  /** Generations that may wait for a worker (0..10000, default 16); beyond that generate() rejects with BusyError. */
  maxQueue?: number;
  /** Intra-op threads per session (default: the machine's cores divided among the workers). */
  threads?: number;
  /**
   * Let ONNX Runtime's idle intra-op threads spin-wait (its own default). Default false here: on
   * shared or small machines spinning threads take CPU from the event loop and from other workers.
   */
  spinning?: boolean;
  /** Pixel limit for init images, checked from the header before decoding (default 40 M). */
  maxInitImagePixels?: number;
  /** Receives warnings such as an execution-provider fallback (default: console.warn). */
  onWarning?: (message: string) => void;
}

export interface GeneratedImage {
  /** PNG bytes with the parameters in `parameters` (A1111 text) and `ragdiff` (JSON) text chunks. */
  png: Buffer;
  width: number;
  height: number;
  seed: number;
}


export interface GenerateStats {
  /** Denoiser (UNet) calls; each evaluates every guidance branch for every image of the batch at once. */
  nfe: number;
  /** Guidance branches evaluated per call (2 for CFG, 1 at guidanceScale 1). */
  branches: number;
  steps: number;
  /** Steps run (image-to-image runs about steps × strength). */
  stepsRun: number;
  sampler: SamplerChoice;
  prompt: PromptStats;
  negativePrompt: PromptStats;
  initImage?: { sourceWidth: number; sourceHeight: number; format: string; resized: boolean };
  /** Trajectory retrieval: jumped or not (and why), denoiser calls made / saved, distances, lookup time. */
  trajectory?: TrajectoryStats;
  timings: JobTimings & { queueMs: number; prepareMs: number; /** building the parameter chunks (the worker writes them) */ tagMs: number; /** generate() call to resolution, queue included */ wallMs: number };
}

export interface GenerateResult {
  images: GeneratedImage[];
  stats: GenerateStats;
  parameters: GenerationParameters;
  /** Latents captured at request.captureLatents. */
  latents: LatentEvent[];
}

export type PipelineInfo = ModelInfo & { defaults: RequestDefaults };

interface Prepared {
  job: Job;
  transfer: ArrayBuffer[];
  prompt: PromptStats;
  negativePrompt: PromptStats;
  initImage?: GenerateStats['initImage'];
}

interface Task {
  id: number;
  req: NormalizedRequest;
  prepared: Prepared;
  flag: Int32Array;
  resolve(r: JobResult): void;
  reject(e: unknown): void;
  /** An error to report instead of AbortError (e.g. thrown by onProgress). */
  failure?: unknown;
  latents: LatentEvent[];
  queuedAt: number;
  startedAt: number;
  state: 'queued' | 'running' | 'done';
}

const WORKER_URL = new URL('./worker.js', import.meta.url);

function scheduleKey(sampler: SamplerChoice, karras: boolean | undefined): string {
  return `${sampler}|${karras ?? ''}`;
}

let nextId = 1;

/** SDXL's add_time_ids: original_size + crops_coords_top_left + target_size, each defaulting as diffusers (the image size, (0, 0)). */
function timeIds(req: NormalizedRequest, info: ModelInfo): number[] {
  const size: [number, number] = [info.image.height, info.image.width];
  const c = req.sizeConditioning ?? {};
  return [...(c.originalSize ?? size), ...(c.cropsTopLeft ?? [0, 0]), ...(c.targetSize ?? size)];
}

/** The bundle's default sampler: ragdiff.defaults.sampler when it names one (an explicit choice), else the config's _class_name (an unknown class is UNSUPPORTED_SCHEDULER). */
function bundleSampler(manifest: BundleManifest): SamplerChoice {
  const d = (manifest.ragdiff as { defaults?: { sampler?: string } } | null)?.defaults ?? {};
  return samplerFromConfig(manifest.schedulerConfig, SAMPLERS.find((s) => s === d.sampler));
}

export class Pipeline {
  readonly info: PipelineInfo;
  private readonly queue: Task[] = [];
  /** Schedulers that validated a (sampler, karras) pair: built once per pair, not once per request. */
  private readonly schedules = new Map<string, Scheduler>();
  private admitted = 0;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly manifest: BundleManifest,
    private readonly options: Required<Pick<PipelineOptions, 'concurrency' | 'maxQueue' | 'maxInitImagePixels'>> & PipelineOptions,
    info: ModelInfo,
    private readonly tokenizers: PromptTokenizer[],
    private readonly pool: WorkerPool<Task, FromWorker, ModelInfo>,
  ) {
    const d = (manifest.ragdiff as { defaults?: { steps?: number; guidance_scale?: number; sampler?: string } } | null)?.defaults ?? {};
    const sampler = bundleSampler(manifest);
    const family = FAMILIES[manifest.family].defaults;
    this.info = { ...info, defaults: { steps: d.steps ?? family.steps, guidanceScale: d.guidance_scale ?? family.guidanceScale, sampler } };
    pool.serve({
      next: () => this.next(),
      message: (task, m) => this.onMessage(task, m),
      lost: (task, why) => {
        task.state = 'done';
        task.reject(new RagdiffError('WORKER_FAILED', `inference worker ${why} during a generation`));
      },
      exhausted: (e) => {
        for (const t of this.queue.splice(0)) {
          t.state = 'done';
          t.reject(e);
        }
      },
    });
  }

  /** Reads the bundle, starts the inference workers and waits until every one has its sessions open. */
  static async load(dir: string, options: PipelineOptions = {}): Promise<Pipeline> {
    assertPlainObject('options', options);
    const concurrency = options.concurrency ?? 1;
    assertInteger('concurrency', concurrency, 1, 16);
    const maxQueue = options.maxQueue ?? 16;
    assertInteger('maxQueue', maxQueue, 0, 10_000);
    if (options.threads !== undefined) assertInteger('threads', options.threads, 1, 256);
    if (options.spinning !== undefined) assertBoolean('spinning', options.spinning);
    const threads = options.threads ?? Math.max(1, Math.floor(availableParallelism() / concurrency));
    const maxInitImagePixels = options.maxInitImagePixels ?? DEFAULT_MAX_PIXELS;
    assertInteger('maxInitImagePixels', maxInitImagePixels, 1, 2 ** 31);
    const manifest = readBundle(dir);
    const defaultSampler = bundleSampler(manifest);
    let firstScheduler: Scheduler;
    try {
      firstScheduler = createScheduler(manifest.schedulerConfig as unknown as DiffusersSchedulerConfig, { sampler: defaultSampler });
    } catch (e) {
      const c = (e as { code?: string }).code;
      if (c !== 'INVALID_CONFIG' && c !== 'UNSUPPORTED_CONFIG') throw e; // e.g. the addon failed to load
      throw new RagdiffError('MODEL_FILE_INVALID', `${join(manifest.dir, 'scheduler', 'scheduler_config.json')}: ${(e as Error).message}`, { cause: e });
    }
    const opts = { ...options, concurrency, maxQueue, maxInitImagePixels, threads };

    const given: PipelineOptions = options; // (assertPlainObject narrowed `options`)
    const workerData: WorkerData = { manifest, options: { executionProviders: given.executionProviders, threads, spinning: given.spinning } };
    const onWarning = given.onWarning ?? ((m: string) => console.warn(`ragdiff: ${m}`));
    // Rejects only once every worker has settled, those that loaded closed again (see worker-pool.ts).
    const { pool, infos } = await WorkerPool.start<Task, FromWorker, ModelInfo>({ url: WORKER_URL, workerData, size: concurrency, what: 'inference worker', onWarning });
    const info = infos[0]!;
    let tokenizers: PromptTokenizer[];
    try {
      tokenizers = [loadTokenizer(manifest.files.tokenizerDir, { maxLength: info.textLength })];
      if (manifest.files.tokenizer2Dir) tokenizers.push(loadTokenizer(manifest.files.tokenizer2Dir, { maxLength: info.textLength }));
    } catch (e) {
      await pool.close();
      throw e;
    }
    const p = new Pipeline(manifest, opts, info, tokenizers, pool);
    p.schedules.set(scheduleKey(defaultSampler, undefined), firstScheduler);
    return p;
  }

  /** A message from the worker running `task` (after `result` or `error` that worker is free again). */
  private onMessage(task: Task, m: FromWorker): void {
    switch (m.type) {
      case 'progress':
        this.progress(task, { step: m.step, total: m.total, stage: m.stage });
        break;
      case 'latent': {
        const e = { step: m.step, t: m.t, latent: m.latent, history: m.history };
        task.latents.push(e);
        if (task.req.onLatent) this.callUser(task, () => task.req.onLatent!(e));
        break;
      }
      case 'result':
        task.state = 'done';
        task.resolve(m.result);
        break;
      case 'error': {
        task.state = 'done';
        const err = deserializeError(m.error);
        task.reject(err instanceof AbortError && task.failure !== undefined ? task.failure : err);
        break;
      }
    }
  }

  /** Runs a user callback; if it throws, the generation is aborted and rejects with that error. */
  private callUser(task: Task, fn: () => void): void {
    try {
      fn();
    } catch (e) {
      if (task.failure === undefined) task.failure = e;
      this.cancel(task);
    }
  }

  private progress(task: Task, e: ProgressEvent): void {
    if (task.req.onProgress) this.callUser(task, () => task.req.onProgress!(e));
  }

  /** Stops a task: a queued one leaves the queue now; a running one stops before its next model call. */
  private cancel(task: Task): void {
    if (task.state === 'queued') {
      const i = this.queue.indexOf(task);
      if (i >= 0) this.queue.splice(i, 1);
      task.state = 'done';
      task.reject(task.failure ?? new AbortError('generation aborted while queued'));
    } else if (task.state === 'running') {
      Atomics.store(task.flag, 0, 1);
    }
  }

  /** The next queued generation for an idle worker. */
  private next(): Dispatch<Task> | undefined {
    const task = this.queue.shift();
    if (!task) return undefined;
    task.state = 'running';
    task.startedAt = performance.now();
    const message: ToWorker = { type: 'generate', id: task.id, job: task.prepared.job, abort: task.flag.buffer as SharedArrayBuffer };
    return { job: task, message, transfer: task.prepared.transfer };
  }

  /** Generations running now and waiting in the queue. */
  get queueState(): { running: number; queued: number; capacity: number } {
    const running = this.pool.running.length;
    return { running, queued: this.admitted - running, capacity: this.options.concurrency + this.options.maxQueue };
  }

  async generate(request: GenerateRequest): Promise<GenerateResult> {
    const called = performance.now();
    if (this.closing) throw new RagdiffError('CLOSED', 'the pipeline is closed');
    const req = normalizeRequest(request, this.info.defaults);
    const capacity = this.options.concurrency + this.options.maxQueue;
    if (this.admitted >= capacity) {
      throw new BusyError(`the pipeline is busy: ${this.options.concurrency} generation(s) running and ${this.options.maxQueue} queued; retry later`);
    }
    this.admitted++;
    try {
      const t0 = performance.now();
      const prepared = await this.prepare(req);
      const prepareMs = performance.now() - t0;
      // The parameter chunks go to the worker, whose encoder writes them: the PNG is built once.
      const tp = performance.now();
      const params = this.parameters(req);
      prepared.job.pngText = prepared.job.seeds.map((seed) => parameterText({ ...params, seed }));
      const tagMs = performance.now() - tp;
      if (req.signal?.aborted) throw new AbortError('generation aborted', { cause: req.signal.reason });
      if (this.closing) throw new RagdiffError('CLOSED', 'the pipeline is closed');
      const { result, task } = await this.run(req, prepared);

      const images: GeneratedImage[] = result.images.map((png, i) => {
        this.progress(task, { step: i + 1, total: result.images.length, stage: 'png' });
        // A Buffer view of the worker's bytes (transferred, not copied).
        return { png: Buffer.from(png.buffer, png.byteOffset, png.byteLength), width: result.width, height: result.height, seed: req.seed + i };
      });
      if (task.failure !== undefined) throw task.failure;
      return {
        images,
        parameters: params,
        latents: task.latents,
        stats: {
          nfe: result.nfe,
          branches: result.branches,
          steps: req.steps,
          stepsRun: result.stepsRun,
          sampler: req.sampler,
          prompt: prepared.prompt,
          negativePrompt: prepared.negativePrompt,
          ...(prepared.initImage ? { initImage: prepared.initImage } : {}),
          ...(result.trajectory ? { trajectory: result.trajectory } : {}),
          timings: { ...result.timings, queueMs: task.startedAt - task.queuedAt, prepareMs, tagMs, wallMs: performance.now() - called },
        },
      };
    } finally {
      this.admitted--;
    }
  }

  private parameters(req: NormalizedRequest): GenerationParameters {
    return {
      prompt: req.prompt,
      negativePrompt: req.negativePrompt,
      steps: req.steps,
      sampler: req.sampler,
      karras: req.karras ?? this.manifest.schedulerConfig.use_karras_sigmas === true,
      guidanceScale: req.guidanceScale,
      seed: req.seed,
      width: this.info.image.width,
      height: this.info.image.height,
      model: this.info.name,
      modelHash: this.info.hash,
      ...(req.strength !== undefined ? { strength: req.strength } : {}),
      ...(req.guidance ? { guidance: req.guidance.label ?? `${req.guidance.branches.length} branches` } : {}),
      ...(req.provenance ? { provenance: req.provenance } : {}),
    };
  }

  private async prepare(req: NormalizedRequest): Promise<Prepared> {
    const info = this.info;
    // The schedule, resolved here so a configuration the sampler refuses fails before queueing.
    const key = scheduleKey(req.sampler, req.karras);
    let schedule = this.schedules.get(key);
    if (!schedule) {
      schedule = createScheduler(info.schedulerConfig as unknown as DiffusersSchedulerConfig, { sampler: req.sampler, ...(req.karras !== undefined ? { useKarrasSigmas: req.karras } : {}) });
      this.schedules.set(key, schedule);
    }
    schedule.setTimesteps(req.steps);
    // Model calls: one per timestep (PNDM repeats some, so it can exceed the step count).
    const calls = schedule.timesteps.length;
    if (info.maxSteps > 0 && req.steps > info.maxSteps) {
      throw rangeError('OUT_OF_RANGE', `steps ${req.steps} is more than a ${info.family} model is distilled for (1..${info.maxSteps}); its scheduler takes 1 to ${info.maxSteps} steps`);
    }
    // SDXL's options on a model with one text encoder and no time ids would be silently meaningless.
    for (const k of ['prompt2', 'negativePrompt2', 'sizeConditioning'] as const) {
      if (req[k] !== undefined && (k === 'sizeConditioning' ? info.pooledWidth === 0 : this.tokenizers.length < 2)) {
        throw rangeError('INVALID_VALUE', `${k} applies to SDXL-family models (two text encoders, time ids); this model is ${info.family}`);
      }
    }
    req.captureLatents.forEach((s, i) => {
      if (s >= calls) throw rangeError('OUT_OF_RANGE', `captureLatents[${i}] must be a schedule index in 0..${calls - 1} (${req.sampler}, ${req.steps} steps), got ${s}`);
    });
    const style = req.trajectory?.prompt;
    const texts = req.guidance?.texts ?? (style !== undefined ? [req.prompt, req.negativePrompt, style] : [req.prompt, req.negativePrompt]);
    const texts2 = req.guidance?.texts ? [] : [req.prompt2, req.negativePrompt2];
    const slotsLength = info.neighbourSlots * info.tokenWidth;
    // LCM embeds the scale (timestep_cond) and Turbo runs without CFG unless the scale is above 1 (diffusers): the conditional branch alone.
    const condOnly = info.guidance === 'embedded' || (info.guidance === 'optional' && req.guidanceScale <= 1);
    let plan: GuidancePlan = req.guidance ? { branches: req.guidance.branches, weights: req.guidance.weights }
      : condOnly ? { branches: [{ text: 0, label: 'cond' }], weights: new Float32Array(calls).fill(1) } : cfgPlan(req.guidanceScale, calls);
    // Stylised trajectory jump: the style prompt takes over at the value step (checked against the base below).
    if (style !== undefined) plan = stylePlan(req.guidanceScale, calls, requestedValueStep(req.trajectory!));
    checkPlan(plan, { steps: calls, texts: texts.length, neighbourLength: slotsLength, embedLength: info.neighbourSlots * info.embedDim, slots: info.neighbourSlots });
    plan = pruneZeroBranches(plan);
    // Encode only the texts some branch still uses, and renumber the branches to match.
    const used = [...new Set(plan.branches.map((b) => b.text))].sort((a, b) => a - b);
    plan = { branches: plan.branches.map((b) => ({ ...b, text: used.indexOf(b.text) })), weights: plan.weights };

    const chunks = req.truncatePrompt ? 1 : info.maxTextChunks;
    const tokens = tokenizeTexts(this.tokenizers, used.map((i) => texts[i]!), used.map((i) => texts2[i]), chunks);
    const statsOf = (text: string) => tokenizeTexts(this.tokenizers.slice(0, 1), [text], [], chunks).stats[0]!;
    const promptStats = used[0] === 0 && !req.guidance?.texts ? tokens.stats[0]! : statsOf(req.prompt);
    const negativeStats = used.includes(1) && !req.guidance?.texts ? tokens.stats[used.indexOf(1)]! : statsOf(req.negativePrompt);
    // SDXL: an unset negative prompt is zeros, not the encoded "" (model_index.json force_zeros_for_empty_prompt).
    const zeroNegative = FAMILIES[this.manifest.family].zeroEmptyNegative && this.manifest.forceZerosForEmptyPrompt && !req.negativePromptSet && !req.guidance?.texts;
    const job: Job = {
      texts: tokens.texts,
      ...(tokens.texts2 ? { texts2: tokens.texts2 } : {}),
      ...(zeroNegative && used.includes(1) ? { zeroTexts: [used.indexOf(1)] } : {}),
      ...(info.pooledWidth > 0 ? { timeIds: timeIds(req, info) } : {}),
      ...(info.guidance === 'embedded' ? { guidanceScale: req.guidanceScale } : {}),
      plan,
      steps: req.steps,
      sampler: req.sampler,
      karras: req.karras,
      seeds: Array.from({ length: req.batch }, (_, i) => req.seed + i),
      captureSteps: req.captureLatents,
    };
    if (req.trajectory) {
      const binding = generationBinding(info, schedule, { steps: req.steps, guidanceScale: req.guidanceScale, negativePrompt: req.negativePrompt });
      job.trajectory = prepareTrajectory(req.trajectory, binding, calls, req.batch);
    }
    const transfer: ArrayBuffer[] = [];
    const prepared: Prepared = { job, transfer, prompt: promptStats, negativePrompt: negativeStats };
    const latentSize = info.latent.channels * info.latent.height * info.latent.width;

    if (req.startFrom) {
      if (req.startFrom.latent.length !== req.batch * latentSize) {
        throw rangeError('LENGTH_MISMATCH', `startFrom.latent must have batch × ${info.latent.channels}×${info.latent.height}×${info.latent.width} = ${req.batch * latentSize} elements, got ${req.startFrom.latent.length}`);
      }
      const latent = req.startFrom.latent.slice();
      assertFinite('startFrom.latent', latent);
      const history = req.startFrom.history ? req.startFrom.history.slice() : null;
      if (history && history.length !== latent.length) {
        throw rangeError('LENGTH_MISMATCH', `startFrom.history must have ${latent.length} elements like startFrom.latent, got ${history.length}`);
      }
      job.start = { step: req.startFrom.step, latent, history };
      transfer.push(latent.buffer);
      if (history) transfer.push(history.buffer);
    }
    const initSources = req.initImages ?? (req.initImage ? { images: [req.initImage], weights: [1] } : undefined);
    if (initSources) {
      if (!info.canImg2Img) throw new RagdiffError('UNSUPPORTED', `${info.dir} has no vae_encoder/model.onnx; image-to-image is unavailable`);
      if (Math.min(Math.floor(req.steps * req.strength!), req.steps) < 1) {
        throw rangeError('OUT_OF_RANGE', `strength ${req.strength} × steps ${req.steps} leaves no step to run; raise strength or steps`);
      }
      const chw = await this.decodeImages(initSources.images, (s) => (prepared.initImage = s));
      job.init = { chw, weights: [...initSources.weights], strength: req.strength! };
      transfer.push(chw.buffer as ArrayBuffer);
    }
    if (req.referenceAttention) {
      if (!info.referenceAttention) throw new RagdiffError('UNSUPPORTED', `${info.dir} has no reference-attention UNet variant (ragdiff.variants.reference_attention) or no VAE encoder`);
      const ra = req.referenceAttention;
      const chw = await this.decodeImages(ra.images);
      const marked = plan.branches.some((b) => b.reference !== undefined);
      job.referenceAttention = { chw, weights: [...ra.weights], fidelity: ra.fidelity, branchMask: plan.branches.map((b) => (!marked || b.reference ? 1 : 0)) };
      transfer.push(chw.buffer as ArrayBuffer);
    }
    return prepared;
  }

  /** Decodes encoded images to [n, 3, H, W] floats at the model's size. */
  private async decodeImages(images: readonly Uint8Array[], first?: (source: NonNullable<GenerateStats['initImage']>) => void): Promise<Float32Array> {
    const { width, height } = this.info.image;
    const plane = 3 * width * height;
    const chw = new Float32Array(images.length * plane);
    for (let i = 0; i < images.length; i++) {
      const img = await decodeImage(images[i]!, { maxPixels: this.options.maxInitImagePixels, width, height });
      chw.set(rgb8ToChw(img.rgb, width, height, 3), i * plane);
      if (i === 0) first?.({ sourceWidth: img.source.width, sourceHeight: img.source.height, format: img.source.format, resized: img.source.resized });
    }
    return chw;
  }

  private run(req: NormalizedRequest, prepared: Prepared): Promise<{ result: JobResult; task: Task }> {
    return new Promise((resolve, reject) => {
      const task: Task = {
        id: nextId++,
        req,
        prepared,
        flag: new Int32Array(new SharedArrayBuffer(4)),
        latents: [],
        queuedAt: performance.now(),
        startedAt: 0,
        state: 'queued',
        resolve: (r) => {
          cleanup();
          resolve({ result: r, task });
        },
        reject: (e) => {
          cleanup();
          reject(e);
        },
      };
      const onAbort = () => this.cancel(task);
      const cleanup = () => req.signal?.removeEventListener('abort', onAbort);
      req.signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(task);
      this.progress(task, { step: 0, total: 0, stage: 'queued' });
      this.pool.pump();
    });
  }

  /**
   * Stops the pipeline: queued generations reject with code CLOSED, running
   * ones are aborted (AbortError), then every worker releases its sessions and
   * exits. Await outstanding generate() calls first for a graceful drain.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    for (const t of this.queue.splice(0)) {
      t.state = 'done';
      t.reject(new RagdiffError('CLOSED', 'the pipeline was closed before this generation started'));
    }
    for (const task of this.pool.running) this.cancel(task);
    this.closing = this.pool.close();
    return this.closing;
  }
}
