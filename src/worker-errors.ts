/**
 * Errors crossing a worker-thread boundary (inference and encoder workers):
 * serialised in the worker, rebuilt on the main thread with the same class and
 * code, so typed errors stay typed.
 */
import { AbortError, BusyError, isErrorCode, RagdiffError, rangeError, typeError } from './errors.js';

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
