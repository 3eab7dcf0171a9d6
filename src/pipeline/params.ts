/**
 * The public request of `pipeline.generate`, its defaults and its validation.
 * Everything here runs synchronously on the caller's thread before a request is
 * admitted, so a bad request fails at once and never occupies the queue.
 */
import { AbortError, RagdiffError, rangeError, typeError } from '../errors.js';
import { assertBoolean, assertInteger, assertNumber, assertOneOf, assertPlainObject, assertString } from '../validate.js';
import { MAX_SEED } from '../rng.js';
import { DIFFUSERS_CLASS, SAMPLER_NAMES, samplerForClass, type SamplerName } from '../scheduler/index.js';
import type { GuidanceBranch } from './guidance.js';
import type { TrajectoryRequest } from '../trajectory/request.js';
import type { Stage } from './runner.js';

export const SAMPLERS: readonly SamplerName[] = SAMPLER_NAMES;
export type SamplerChoice = SamplerName;
export const MAX_STEPS = 1000;
export const MAX_BATCH = 16;
export const MAX_GUIDANCE = 100;
/**
 * Longest prompt accepted, in UTF-16 code units. The text encoder reads only its
 * first textLength tokens (16 for tiny-emoji, 77 for SD); a longer prompt is
 * accepted and truncated (stats.prompt.truncated), up to this cap; beyond it the
 * request fails with PROMPT_TOO_LONG, which bounds tokenizing and the PNG's text chunks.
 */
export const MAX_PROMPT_CHARS = 32_768;

/** Throws PROMPT_TOO_LONG (a RangeError) for a string over MAX_PROMPT_CHARS. */
export function checkPromptLength(name: string, v: string): void {
  if (v.length > MAX_PROMPT_CHARS) {
    throw rangeError('PROMPT_TOO_LONG', `${name} has ${v.length} characters; at most ${MAX_PROMPT_CHARS} are accepted (the text encoder reads only its first tokens anyway)`);
  }
}

export interface ProgressEvent {
  /** Steps (or images, while decoding) done in this stage. */
  step: number;
  total: number;
  stage: 'queued' | Stage | 'png';
}

export interface LatentEvent {
  /** Step index in the full schedule, and its timestep. */
  step: number;
  t: number;
  /** batch × latent floats after that step (a copy). */
  latent: Float32Array;
  /** DPM-Solver++ only: the data prediction a resume at step + 1 needs to stay second order; else null. */
  history: Float32Array | null;
}

export interface GenerateRequest {
  prompt: string;
  negativePrompt?: string;
  /** SDXL: the prompt for the second text encoder (diffusers' prompt_2; default: prompt). */
  prompt2?: string;
  /** SDXL: the negative prompt for the second text encoder (default: negativePrompt). */
  negativePrompt2?: string;
  /** Cut prompts to one 77-token window instead of encoding longer ones in windows (A1111/compel style, the default where the model allows). */
  truncatePrompt?: boolean;
  /** SDXL micro-conditioning (time_ids), [height, width] and [top, left] in pixels; defaults: the image size and (0, 0), as diffusers. */
  sizeConditioning?: { originalSize?: [number, number]; cropsTopLeft?: [number, number]; targetSize?: [number, number] };
  /** Denoising steps, 1..1000 (default 25). Image-to-image runs about steps × strength of them. */
  steps?: number;
  /** Classifier-free guidance scale, 0..100 (default 7.5). 1 runs the conditional branch only. */
  guidanceScale?: number;
  /** Integer 0..2^53-1; image i of a batch uses seed + i. Default: a random seed, reported per image. */
  seed?: number;
  /** Images per call, 1..16 (default 1); all go through each denoiser call together. */
  batch?: number;
  sampler?: SamplerChoice;
  /** Karras sigma spacing for the sigma samplers. */
  karras?: boolean;
  /** Encoded image bytes (PNG, JPEG, WebP, …) for image-to-image; resized to the model's size (reported in stats). */
  initImage?: Uint8Array;
  /**
   * Several encoded images whose VAE latents are blended with `weights` (finite, summing to 1)
   * into the starting latent — the retrieval layer's reference-init. Excludes initImage; uses strength.
   */
  initImages?: { images: Uint8Array[]; weights: number[] };
  /** How much of the schedule image-to-image re-runs, (0, 1] (default 0.75). */
  strength?: number;
  /**
   * Reference attention (bundles with a reference-attention UNet variant): the images' blended latent
   * is noised to each step's timestep and every self-attention also attends to it, mixed in with
   * `fidelity` ∈ [0, 1]. Branches with `reference: true` attend to it (all branches when none says).
   */
  referenceAttention?: { images: Uint8Array[]; weights: number[]; fidelity: number };
  onProgress?: (e: ProgressEvent) => void;
  signal?: AbortSignal;
  /**
   * Advanced: explicit guidance branches with per-step weights instead of CFG.
   * `texts` default to [prompt, negativePrompt ?? '']; branch.text indexes them;
   * weights has one row of branch weights per schedule step.
   */
  guidance?: { texts?: string[]; branches: GuidanceBranch[]; weights: Float32Array; /** Shown in the parameters instead of "N branches". */ label?: string };
  /**
   * JSON-serialisable record written into each PNG's `ragdiff` chunk and returned in
   * `parameters.provenance` (the retrieval layer puts the references used here). At most 256 KiB as JSON.
   */
  provenance?: Record<string, unknown>;
  /** Advanced (trajectory seams): report the latent after these step indices through onLatent / result.latents. */
  captureLatents?: number[];
  onLatent?: (e: LatentEvent) => void;
  /**
   * Advanced: start at schedule index `step` from `latent` (batch × latent floats) instead of noise;
   * `history` (from a LatentEvent) keeps DPM-Solver++ second order across the restart.
   */
  startFrom?: { step: number; latent: Float32Array; history?: Float32Array | null };
  /**
   * Trajectory retrieval (ReDi): sample to the knowledge base's key step, blend the nearest stored
   * trajectories' values and continue from the value step (src/trajectory/request.ts).
   */
  trajectory?: TrajectoryRequest;
}

export interface NormalizedRequest {
  prompt: string;
  negativePrompt: string;
  /** Whether the request gave a negative prompt (SDXL zeros an unset one). */
  negativePromptSet: boolean;
  prompt2?: string;
  negativePrompt2?: string;
  truncatePrompt: boolean;
  sizeConditioning?: GenerateRequest['sizeConditioning'];
  steps: number;
  guidanceScale: number;
  seed: number;
  batch: number;
  sampler: SamplerChoice;
  /** Undefined: the scheduler config's use_karras_sigmas. */
  karras?: boolean;
  initImage?: Uint8Array;
  initImages?: GenerateRequest['initImages'];
  referenceAttention?: GenerateRequest['referenceAttention'];
  strength?: number;
  onProgress?: (e: ProgressEvent) => void;
  signal?: AbortSignal;
  guidance?: GenerateRequest['guidance'];
  provenance?: Record<string, unknown>;
  captureLatents: number[];
  onLatent?: (e: LatentEvent) => void;
  startFrom?: GenerateRequest['startFrom'];
  trajectory?: TrajectoryRequest;
}

export interface RequestDefaults {
  steps: number;
  guidanceScale: number;
  sampler: SamplerChoice;
}

const KNOWN = new Set([
  'prompt', 'negativePrompt', 'steps', 'guidanceScale', 'seed', 'batch', 'sampler', 'karras', 'initImage', 'initImages', 'referenceAttention', 'strength',
  'onProgress', 'signal', 'guidance', 'captureLatents', 'onLatent', 'startFrom', 'provenance', 'trajectory',
  'prompt2', 'negativePrompt2', 'truncatePrompt', 'sizeConditioning',
]);

export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 32);
}

/** Encoded images with one blend weight each: finite, summing to one. */
function checkImageBlend(name: string, v: unknown): void {
  assertPlainObject(name, v);
  const { images, weights } = v as { images: unknown; weights: unknown };
  if (!Array.isArray(images) || images.length === 0 || images.length > 16) throw typeError('INVALID_TYPE', `${name}.images must be an array of 1..16 encoded images`);
  images.forEach((b, i) => {
    if (!(b instanceof Uint8Array)) throw typeError('INVALID_TYPE', `${name}.images[${i}] must be a Buffer or Uint8Array of encoded image bytes`);
  });
  if (!Array.isArray(weights) || weights.length !== images.length) throw rangeError('LENGTH_MISMATCH', `${name}.weights must have one weight per image (${images.length})`);
  weights.forEach((w, i) => assertNumber(`${name}.weights[${i}]`, w, -1e6, 1e6));
  const sum = (weights as number[]).reduce((a, b) => a + b, 0);
  if (Math.abs(sum - 1) > 1e-4) throw rangeError('INVALID_VALUE', `${name}.weights must sum to 1, got ${sum}`);
}

export function normalizeRequest(req: unknown, defaults: RequestDefaults): NormalizedRequest {
  assertPlainObject('request', req);
  const r = req as unknown as GenerateRequest;
  for (const k of Object.keys(r)) if (!KNOWN.has(k)) throw rangeError('UNKNOWN_OPTION', `unknown generate option ${JSON.stringify(k)}`);
  if (r.signal !== undefined && !(r.signal instanceof AbortSignal)) throw typeError('INVALID_TYPE', 'signal must be an AbortSignal');
  if (r.signal?.aborted) throw new AbortError('generation aborted before it started', { cause: r.signal.reason });

  assertString('prompt', r.prompt);
  checkPromptLength('prompt', r.prompt);
  if (r.negativePrompt !== undefined) {
    assertString('negativePrompt', r.negativePrompt);
    checkPromptLength('negativePrompt', r.negativePrompt);
  }
  for (const k of ['prompt2', 'negativePrompt2'] as const) {
    if (r[k] !== undefined) {
      assertString(k, r[k]);
      checkPromptLength(k, r[k]!);
    }
  }
  if (r.truncatePrompt !== undefined) assertBoolean('truncatePrompt', r.truncatePrompt);
  if (r.sizeConditioning !== undefined) {
    assertPlainObject('sizeConditioning', r.sizeConditioning);
    for (const [k, v] of Object.entries(r.sizeConditioning)) {
      if (!['originalSize', 'cropsTopLeft', 'targetSize'].includes(k)) throw rangeError('UNKNOWN_OPTION', `unknown sizeConditioning option ${JSON.stringify(k)}`);
      if (!Array.isArray(v) || v.length !== 2) throw typeError('INVALID_TYPE', `sizeConditioning.${k} must be [${k === 'cropsTopLeft' ? 'top, left' : 'height, width'}]`);
      v.forEach((x, i) => assertInteger(`sizeConditioning.${k}[${i}]`, x, 0, 1 << 20));
    }
  }
  const steps = r.steps ?? defaults.steps;
  assertInteger('steps', steps, 1, MAX_STEPS);
  const guidanceScale = r.guidanceScale ?? defaults.guidanceScale;
  assertNumber('guidanceScale', guidanceScale, 0, MAX_GUIDANCE);
  const batch = r.batch ?? 1;
  assertInteger('batch', batch, 1, MAX_BATCH);
  const seed = r.seed ?? randomSeed();
  assertInteger('seed', seed, 0, MAX_SEED - (batch - 1));
  const sampler = r.sampler ?? defaults.sampler;
  assertOneOf('sampler', sampler, SAMPLERS);
  const karras = r.karras;
  if (karras !== undefined) assertBoolean('karras', karras);
  if (r.onProgress !== undefined && typeof r.onProgress !== 'function') throw typeError('INVALID_TYPE', 'onProgress must be a function');
  if (r.onLatent !== undefined && typeof r.onLatent !== 'function') throw typeError('INVALID_TYPE', 'onLatent must be a function');

  let strength: number | undefined;
  if (r.initImages !== undefined) {
    if (r.initImage !== undefined) throw rangeError('INVALID_VALUE', 'initImage and initImages cannot be combined');
    checkImageBlend('initImages', r.initImages);
  }
  if (r.referenceAttention !== undefined) {
    checkImageBlend('referenceAttention', r.referenceAttention);
    assertNumber('referenceAttention.fidelity', r.referenceAttention.fidelity, 0, 1);
  }
  if (r.initImage !== undefined || r.initImages !== undefined) {
    if (r.initImage !== undefined && !(r.initImage instanceof Uint8Array)) throw typeError('INVALID_TYPE', 'initImage must be a Buffer or Uint8Array of encoded image bytes');
    strength = r.strength ?? 0.75;
    assertNumber('strength', strength, 0, 1);
    if (strength === 0) throw rangeError('OUT_OF_RANGE', 'strength must be in (0, 1], got 0');
  } else if (r.strength !== undefined) {
    throw rangeError('INVALID_VALUE', 'strength applies only with initImage');
  }

  const captureLatents = r.captureLatents ?? [];
  if (!Array.isArray(captureLatents)) throw typeError('INVALID_TYPE', 'captureLatents must be an array of step indices');
  // Indices into the schedule's model calls (PNDM makes more calls than steps): the upper bound is checked once the schedule is known.
  captureLatents.forEach((s, i) => assertInteger(`captureLatents[${i}]`, s, 0, 4 * MAX_STEPS));

  if (r.startFrom !== undefined) {
    assertPlainObject('startFrom', r.startFrom);
    assertInteger('startFrom.step', r.startFrom.step, 0, steps - 1);
    if (!(r.startFrom.latent instanceof Float32Array)) throw typeError('INVALID_TYPE', 'startFrom.latent must be a Float32Array');
    if (r.initImage !== undefined || r.initImages !== undefined) throw rangeError('INVALID_VALUE', 'startFrom and initImage cannot be combined');
    if (r.startFrom.history != null && !(r.startFrom.history instanceof Float32Array)) throw typeError('INVALID_TYPE', 'startFrom.history must be a Float32Array or null');
  }
  if (r.trajectory !== undefined) {
    assertPlainObject('trajectory', r.trajectory);
    for (const other of ['startFrom', 'initImage', 'guidance'] as const) {
      if (r[other] !== undefined) throw rangeError('INVALID_VALUE', `trajectory and ${other} cannot be combined`);
    }
  }
  if (r.guidance !== undefined) {
    assertPlainObject('guidance', r.guidance);
    if (r.guidance.texts !== undefined) {
      if (!Array.isArray(r.guidance.texts) || r.guidance.texts.length === 0 || r.guidance.texts.length > 16) {
        throw typeError('INVALID_TYPE', 'guidance.texts must be an array of 1..16 strings');
      }
      r.guidance.texts.forEach((t, i) => {
        assertString(`guidance.texts[${i}]`, t);
        checkPromptLength(`guidance.texts[${i}]`, t);
      });
    }
    if (r.guidance.label !== undefined) {
      assertString('guidance.label', r.guidance.label);
      if (r.guidance.label.length > 200) throw rangeError('OUT_OF_RANGE', 'guidance.label must be at most 200 characters');
    }
  }
  if (r.provenance !== undefined) {
    assertPlainObject('provenance', r.provenance);
    let json: string;
    try {
      json = JSON.stringify(r.provenance);
    } catch (e) {
      throw typeError('INVALID_TYPE', `provenance must be JSON-serialisable: ${(e as Error).message}`);
    }
    if (json.length > 256 * 1024) throw rangeError('OUT_OF_RANGE', `provenance must be at most 256 KiB as JSON, got ${json.length} characters`);
  }

  return {
    prompt: r.prompt,
    negativePrompt: r.negativePrompt ?? '',
    negativePromptSet: r.negativePrompt !== undefined,
    ...(r.prompt2 !== undefined ? { prompt2: r.prompt2 } : {}),
    ...(r.negativePrompt2 !== undefined ? { negativePrompt2: r.negativePrompt2 } : {}),
    truncatePrompt: r.truncatePrompt ?? false,
    ...(r.sizeConditioning !== undefined ? { sizeConditioning: r.sizeConditioning } : {}),
    steps,
    guidanceScale,
    seed,
    batch,
    sampler,
    karras,
    initImage: r.initImage,
    initImages: r.initImages,
    referenceAttention: r.referenceAttention,
    strength,
    onProgress: r.onProgress,
    signal: r.signal,
    guidance: r.guidance,
    provenance: r.provenance,
    captureLatents,
    onLatent: r.onLatent,
    startFrom: r.startFrom,
    trajectory: r.trajectory,
  };
}

/**
 * The sampler a bundle's scheduler_config.json names (`_class_name`), as a ragdiff
 * sampler. A class ragdiff does not implement is an error (UNSUPPORTED_SCHEDULER)
 * unless the caller chooses a sampler explicitly (`explicit`), which then wins.
 */
export function samplerFromConfig(config: Record<string, unknown>, explicit?: SamplerChoice): SamplerChoice {
  if (explicit !== undefined) {
    assertOneOf('sampler', explicit, SAMPLERS);
    return explicit;
  }
  const s = samplerForClass(config._class_name);
  if (s === null) {
    throw new RagdiffError('UNSUPPORTED_SCHEDULER',
      `scheduler_config.json names _class_name ${JSON.stringify(config._class_name)}, which ragdiff does not implement ` +
      `(it implements ${Object.values(DIFFUSERS_CLASS).join(', ')}); choose a sampler explicitly (sampler: ${SAMPLERS.map((x) => JSON.stringify(x)).join(' | ')})`);
  }
  return s;
}
