/**
 * A worker's error as BullMQ keeps it (a string, the job's failedReason) and
 * back: `[CODE] message`, so the server answers the same typed error an
 * in-process generation would have thrown.
 */
import { AbortError, BusyError, isErrorCode, RagdiffError } from '../errors.js';

export function failureReason(e: unknown): string {
  const code = (e as { code?: unknown })?.code;
  const message = e instanceof Error ? e.message : String(e);
  return typeof code === 'string' && isErrorCode(code) ? `[${code}] ${message}` : `[WORKER_FAILED] ${message}`;
}

export function errorOfFailure(reason: string | undefined): RagdiffError {
  const m = /^\[([A-Z0-9_]+)\] ([\s\S]*)$/.exec(reason ?? '');
  if (!m || !isErrorCode(m[1]!)) return new RagdiffError('WORKER_FAILED', `the queue worker failed: ${reason ?? 'no reason given'}`);
  if (m[1] === 'ABORTED') return new AbortError(m[2]);
  if (m[1] === 'BUSY') return new BusyError(m[2]!);
  return new RagdiffError(m[1], m[2]!);
}
