/**
 * Messages between a Pipeline (main thread) and its inference workers, and the
 * error (de)serialisation that keeps typed errors typed across the boundary.
 */
import { AbortError, BusyError, isErrorCode, RagdiffError, rangeError, typeError } from '../errors.js';
import type { BundleManifest } from './bundle.js';
import type { Job, JobResult, ModelInfo, RunnerOptions, Stage } from './runner.js';

export interface WorkerData {
  manifest: BundleManifest;
  options: Omit<RunnerOptions, 'onWarning'>;
}

export type ToWorker =
  | { type: 'generate'; id: number; job: Job; abort: SharedArrayBuffer }
  | { type: 'close' }
  /**
   * Ends the worker thread at once, sessions unreleased. Handled between model calls (this
   * thread reads messages only when no `run` is on its stack), unlike Worker.terminate(),
   * which may land inside onnxruntime's run and abort the whole process. Used to test the
   * loss of a worker.
   */
  | { type: 'exit'; code: number };

export type FromWorker =
  | { type: 'ready'; info: ModelInfo }
  | { type: 'warning'; message: string }
  | { type: 'progress'; id: number; step: number; total: number; stage: Stage }
  | { type: 'latent'; id: number; step: number; t: number; latent: Float32Array; history: Float32Array | null }
  | { type: 'result'; id: number; result: JobResult }
  | { type: 'error'; id: number | null; error: SerializedError }
  | { type: 'closed' };

export interface SerializedError {
  name: string;
  code?: string;
  message: string;
  stack?: string;
}

export function serializeError(e: unknown): SerializedError {
  const err = e as { name?: unknown; code?: unknown; message?: unknown; stack?: unknown };
  return {
    name: typeof err?.name === 'string' ? err.name : 'Error',
    code: typeof err?.code === 'string' ? err.code : undefined,
    message: typeof err?.message === 'string' ? err.message : String(e),
    stack: typeof err?.stack === 'string' ? err.stack : undefined,
  };
}

/**
 * Rebuilds an error of the same class and code; the worker's stack is kept as `workerStack`.
 * A code outside ragdiff's closed set (e.g. a Node ENOENT) becomes INTERNAL, the original
 * kept as `originalCode`.
 */
export function deserializeError(s: SerializedError): Error {
  let e: Error;
  const code = isErrorCode(s.code) ? s.code : 'INTERNAL';
  if (s.name === 'AbortError' || code === 'ABORTED') e = new AbortError(s.message);
  else if (s.name === 'BusyError') e = new BusyError(s.message);
  else if (s.name === 'RangeError') e = rangeError(code, s.message);
  else if (s.name === 'TypeError') e = typeError(code, s.message);
  else e = new RagdiffError(code, s.message);
  if (s.stack) (e as { workerStack?: string }).workerStack = s.stack;
  if (s.code !== undefined && s.code !== code) (e as { originalCode?: string }).originalCode = s.code;
  return e;
}
