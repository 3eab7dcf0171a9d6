/**
 * One error family for ragdiff. Every error a caller might branch on carries a
 * stable `code`; messages name the parameter, the value and what was expected.
 *
 * Argument problems use the built-in TypeError / RangeError (so generic code
 * that checks `instanceof RangeError` keeps working) with a `code` attached.
 *
 * Codes form a closed set: see error-codes.ts (and docs/errors.md) to add one.
 */

import type { ErrorCode } from './error-codes.js';

export { ALL_ERROR_CODES, ERROR_CODES, httpStatusOf, httpStatusOfError, isErrorCode, type ErrorCode } from './error-codes.js';

export class RagdiffError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RagdiffError';
    this.code = code;
  }
}

/** The pipeline's queue is full; retry later. Thrown at once, never queued. */
export class BusyError extends RagdiffError {
  constructor(message: string) {
    super('BUSY', message);
    this.name = 'BusyError';
  }
}

/** The caller's AbortSignal fired; all resources of the call were released. */
export class AbortError extends RagdiffError {
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super('ABORTED', message, options);
    this.name = 'AbortError';
  }
}

export interface CodedTypeError extends TypeError { code: ErrorCode }
export interface CodedRangeError extends RangeError { code: ErrorCode }

export function typeError(code: ErrorCode, message: string): CodedTypeError {
  const e = new TypeError(message) as CodedTypeError;
  e.code = code;
  return e;
}

export function rangeError(code: ErrorCode, message: string): CodedRangeError {
  const e = new RangeError(message) as CodedRangeError;
  e.code = code;
  return e;
}

/** True when `e` is any error with the given ragdiff code. */
export function hasCode(e: unknown, code: ErrorCode): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: unknown }).code === code;
}
