/**
 * Messages between {@link ClipEncoders} (caller's thread) and its encoder
 * workers. Errors cross as the generation workers' do (pipeline/protocol.ts),
 * so a typed error stays typed. Pixels and embeddings travel packed in one
 * buffer per message and are transferred, not cloned.
 */
import type { SerializedError } from '../worker-errors.js';
import type { ClipInfo, ClipSessionOptions } from './clip-sessions.js';

export interface EncoderWorkerData {
  dir: string;
  options: Omit<ClipSessionOptions, 'onWarning'>;
}

export type ToEncoderWorker =
  /**
   * Images packed back to back: image i is `sizes[2i] × sizes[2i+1]` RGB bytes. `first` is the
   * index of the first image in the caller's array (for error messages).
   */
  | { type: 'images'; id: number; rgb: Uint8Array; sizes: Uint32Array; first: number }
  | { type: 'text'; id: number; texts: string[]; hiddenStates: boolean }
  | { type: 'close' }
  /**
   * Ends the worker thread at once, sessions unreleased, handled as soon as the message arrives
   * (between model calls: the thread reads messages only when no `run` is on its stack). Used to
   * test the loss of a worker, as the pipeline's workers do.
   */
  | { type: 'exit'; code: number };

export type FromEncoderWorker =
  | { type: 'ready'; info: ClipInfo }
  | { type: 'warning'; message: string }
  /** n × dim embeddings, row after row; hiddenStates for text calls that asked for them. */
  | { type: 'result'; id: number; embeds: Float32Array; hiddenStates?: Float32Array }
  | { type: 'error'; id: number | null; error: SerializedError }
  | { type: 'closed' };
