/**
 * Messages between a Pipeline (main thread) and its inference workers. Errors
 * cross the boundary as SerializedError (../worker-errors.ts).
 */
import type { SerializedError } from '../worker-errors.js';
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
