/** ragdiff's public API. */
export * from './errors.js';
export * from './scheduler/index.js';
export * from './rng.js';
export * from './pipeline/index.js';
export * from './store/index.js';
export { decodeImage } from './image/decode.js';
export type { DecodeOptions, DecodedImage } from './image/decode.js';
export * from './rag/index.js';
export * from './safety/index.js';
