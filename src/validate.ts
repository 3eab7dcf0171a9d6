/**
 * Small argument checks shared by the public API. Each throws a TypeError or
 * RangeError (with a `code`) whose message names the parameter and the bound.
 */
import { rangeError, typeError } from './errors.js';

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? v.slice(0, 57) + '...' : v);
  if (typeof v === 'bigint') return `${v}n`;
  if (v === null || typeof v !== 'object') return String(v);
  return Array.isArray(v) ? 'an array' : `a ${v.constructor?.name ?? 'object'}`;
}

export function assertInteger(name: string, v: unknown, min: number, max: number): asserts v is number {
  if (typeof v !== 'number') throw typeError('INVALID_TYPE', `${name} must be an integer, got ${show(v)}`);
  if (!Number.isInteger(v)) throw rangeError('INVALID_VALUE', `${name} must be an integer, got ${show(v)}`);
  if (v < min || v > max) throw rangeError('OUT_OF_RANGE', `${name} must be in ${min}..${max}, got ${v}`);
}

export function assertNumber(name: string, v: unknown, min = -Infinity, max = Infinity): asserts v is number {
  if (typeof v !== 'number') throw typeError('INVALID_TYPE', `${name} must be a number, got ${show(v)}`);
  if (!Number.isFinite(v)) throw rangeError('NON_FINITE', `${name} must be finite, got ${v}`);
  if (v < min || v > max) throw rangeError('OUT_OF_RANGE', `${name} must be in [${min}, ${max}], got ${v}`);
}

export function assertString(name: string, v: unknown, maxLength = Infinity): asserts v is string {
  if (typeof v !== 'string') throw typeError('INVALID_TYPE', `${name} must be a string, got ${show(v)}`);
  if (v.length > maxLength) throw rangeError('OUT_OF_RANGE', `${name} must be at most ${maxLength} characters, got ${v.length}`);
}

export function assertBoolean(name: string, v: unknown): asserts v is boolean {
  if (typeof v !== 'boolean') throw typeError('INVALID_TYPE', `${name} must be a boolean, got ${show(v)}`);
}

export function assertOneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): asserts v is T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw rangeError('INVALID_VALUE', `${name} must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${show(v)}`);
  }
}

export function assertFloat32Array(name: string, v: unknown, length?: number): asserts v is Float32Array {
  if (!(v instanceof Float32Array)) throw typeError('INVALID_TYPE', `${name} must be a Float32Array, got ${show(v)}`);
  if (length !== undefined && v.length !== length) {
    throw rangeError('LENGTH_MISMATCH', `${name} must have ${length} elements, got ${v.length}`);
  }
}

/** Rejects NaN and ±Infinity (ragdiff's policy for tensors entering native kernels). */
export function assertFinite(name: string, v: Float32Array): void {
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (x - x !== 0) throw rangeError('NON_FINITE', `${name}[${i}] is ${x}; tensors must be finite`);
  }
}

export function assertPlainObject(name: string, v: unknown): asserts v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw typeError('INVALID_TYPE', `${name} must be an object, got ${show(v)}`);
  }
}

/**
 * Throws UNKNOWN_OPTION naming the full path of the first key of `v` not in
 * `known` (`retrieval.scales.txt`), so a misspelt nested option is never
 * silently ignored.
 */
export function assertKnownKeys(name: string, v: object, known: readonly string[]): void {
  for (const k of Object.keys(v)) {
    if (!known.includes(k)) throw rangeError('UNKNOWN_OPTION', `${name}.${k} is not an option (misspelt?); ${name} takes ${known.join(', ')}`);
  }
}
