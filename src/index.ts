/** ragdiff's public API. */
export * from './errors.js';
export * from './scheduler/index.js';
export * from './rng.js';
export * from './pipeline/index.js';
export * from './store/index.js';
export { decodeImage } from './image/decode.js';
export type { DecodeOptions, DecodedImage } from './image/decode.js';
export * from './rag/index.js';
export { readUserFile, readUserFileSync, DEFAULT_MAX_USER_FILE_BYTES } from './io/user-file.js';
export type { ReadUserFileOptions } from './io/user-file.js';
export { prepareOutputFile, ensureOutputDir, writeOutputFile } from './io/output-path.js';
export { workerOptions, workerExecArgv, workerStackSizeMb, startWorker } from './worker-options.js';
export { prepareOnnxRuntime } from './models/ort-environment.js';
export * from './trajectory/index.js';
export * from './safety/index.js';
export * from './generator/index.js';
