/** Image generation from a diffusers-layout ONNX bundle, off the event loop. */
export { Pipeline } from './pipeline.js';
export type { PipelineOptions, PipelineInfo, GenerateResult, GenerateStats, GeneratedImage, PromptStats } from './pipeline.js';
export { SAMPLERS, MAX_STEPS, MAX_BATCH } from './params.js';
export type { GenerateRequest, ProgressEvent, LatentEvent, SamplerChoice } from './params.js';
export { cfgPlan, buildEncoderHiddenStates } from './guidance.js';
export type { GuidanceBranch, GuidancePlan, ContextLayout } from './guidance.js';
export { readBundle, DEFAULT_SCALING_FACTOR } from './bundle.js';
export type { BundleManifest } from './bundle.js';
export { formatParameters } from './output.js';
export type { GenerationParameters } from './output.js';
export type { ModelInfo, JobTimings } from './runner.js';
export { readPngText, withPngText } from '../image/png-text.js';
