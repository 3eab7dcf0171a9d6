/**
 * Image generation from a diffusers-layout ONNX bundle, off the event loop.
 *
 *   const pipeline = await Pipeline.load('models/tiny-emoji', { concurrency: 1, maxQueue: 16 });
 *   const { images, stats } = await pipeline.generate({
 *     prompt: 'grinning face', steps: 25, guidanceScale: 7.5, seed: 1, batch: 4,
 *     onProgress: ({ step, total, stage }) => {}, signal,
 *   });
 *   // images[i].png carries `parameters` (A1111 text) and `ragdiff` (JSON) chunks; image i used seed + i
 *   await pipeline.close();
 *
 * Errors: BusyError (code BUSY) at once when the queue is full; AbortError (ABORTED)
 * within one denoiser call of the signal firing; RangeError/TypeError with a code for
 * bad arguments; RagdiffError MODEL_FILE_MISSING / MODEL_FILE_INVALID / MODEL_IO_MISMATCH
 * naming the file at load; IMAGE_* for init images; CLOSED after close().
 *
 * Determinism: noise comes from ragdiff's seeded Philox generator (src/rng.ts), one stream
 * per image (seed + i), so the same request and seed give byte-identical PNGs on a machine.
 */
export { Pipeline } from './pipeline.js';
export type { PipelineOptions, PipelineInfo, GenerateResult, GenerateStats, GeneratedImage, PromptStats } from './pipeline.js';
export { SAMPLERS, MAX_STEPS, MAX_BATCH, MAX_PROMPT_CHARS } from './params.js';
export type { GenerateRequest, ProgressEvent, LatentEvent, SamplerChoice } from './params.js';
export { cfgPlan } from './guidance.js';
export type { GuidanceBranch, GuidancePlan } from './guidance.js';
export { buildEncoderHiddenStates, fuseContext, branchContext } from './context.js';
export type { ContextLayout, FusionLayout, FusionRows, BranchContext } from './context.js';
export { readBundle, DEFAULT_SCALING_FACTOR } from './bundle.js';
export type { BundleManifest } from './bundle.js';
export { formatParameters } from './output.js';
export type { GenerationParameters } from './output.js';
export type { ModelInfo, JobTimings } from './runner.js';
export { readPngText, withPngText } from '../image/png-text.js';
