/** What an opened ONNX session declares: tensor metadata by name, fixed dimensions, preferred output names. */
import type * as ort from 'onnxruntime-node';
import { RagdiffError } from '../errors.js';
import type { OpenedSession } from '../models/session.js';

export function tensorMeta(opened: OpenedSession, name: string, io: 'input' | 'output'): ort.InferenceSession.TensorValueMetadata {
  const list = io === 'input' ? opened.session.inputMetadata : opened.session.outputMetadata;
  const m = list.find((x) => x.name === name);
  if (!m || !m.isTensor) throw new RagdiffError('MODEL_IO_MISMATCH', `${opened.path}: ${io} ${name} is not a tensor`);
  return m as ort.InferenceSession.TensorValueMetadata;
}

/** A fixed, positive dimension; undefined for a symbolic or missing one. */
export function dim(v: number | string | undefined): number | undefined {
  return typeof v === 'number' && v > 0 ? v : undefined;
}

/** The output named `preferred` when the session has it, else its first output. */
export function outputName(opened: OpenedSession, preferred: string): string {
  return opened.session.outputNames.includes(preferred) ? preferred : opened.session.outputNames[0]!;
}

/** Runs a session, timing it; the runner's one door to onnxruntime (abort polled first). */
export type Timed = (s: OpenedSession, feeds: Record<string, ort.Tensor>, fetches: Record<string, ort.Tensor>) => Promise<number>;
