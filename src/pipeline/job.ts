/**
 * The types a Pipeline and its ModelRunner exchange: the loaded bundle's info,
 * a job, its hooks and its result. All structured-cloneable (they cross the
 * worker boundary).
 */
import type { SamplerName } from '../scheduler/index.js';
import type { GuidancePlan } from './guidance.js';
import type { FloatType } from './tensor-io.js';
import type { ExecutionProvider } from '../models/session.js';
import type { TrajectoryJob, TrajectoryStats } from '../trajectory/request.js';
import type { FamilyName, GuidanceMode } from './families/family.js';

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
  /** The family adapter the bundle runs with (families/). */
  family: FamilyName;
  /** How the guidance scale is used (families/family.ts GuidanceMode). */
  guidance: GuidanceMode;
  /** Most inference steps the family allows (Turbo: 4); 0 for no family limit. */
  maxSteps: number;
  /** 77-token windows a prompt may span (1: the UNet's sequence is fixed, so longer prompts are truncated). */
  maxTextChunks: number;
  /** Width of the pooled text embedding the UNet takes as text_embeds (SDXL: 1280); 0 when it takes none. */
  pooledWidth: number;
  /** Keys of the published configs ragdiff does not read, and conversions it makes (fp16/fp32 boundaries). */
  warnings: string[];
}

export interface Job {
  /** Token id sequences, [texts][chunks × textLength]: every text with the same number of 77-token windows. */
  texts: BigInt64Array[];
  /** The same texts through the second tokenizer (SDXL's tokenizer_2; prompt_2), same shape. */
  texts2?: BigInt64Array[];
  /** Text indices whose hidden states and pooled embedding are zeros (SDXL's unset negative prompt). */
  zeroTexts?: number[];
  /** SDXL's add_time_ids: original_size (h, w) + crops_coords_top_left (top, left) + target_size (h, w). */
  timeIds?: number[];
  /** The guidance scale an 'embedded'-guidance family (LCM) feeds as timestep_cond. */
  guidanceScale?: number;
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

