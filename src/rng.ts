/**
 * Deterministic Gaussian noise for samplers: counter-based Philox4x32-10 with
 * Box–Muller (native/core/rng.cc). The value at stream position i depends only on
 * (seed, i): the same seed gives the same numbers on every machine and thread
 * count, however the stream is split into calls.
 */
import { rangeError, typeError } from './errors.js';
import { native } from './native.js';

export const MAX_SEED = Number.MAX_SAFE_INTEGER;

function checkSeed(name: string, seed: unknown): asserts seed is number {
  if (typeof seed !== 'number') throw typeError('INVALID_TYPE', `${name} must be an integer in 0..2^53-1, got ${typeof seed}`);
  if (!Number.isInteger(seed)) throw rangeError('INVALID_VALUE', `${name} must be an integer in 0..2^53-1, got ${seed}`);
  if (seed < 0 || seed > MAX_SEED) throw rangeError('OUT_OF_RANGE', `${name} must be an integer in 0..2^53-1, got ${seed}`);
}

export class NoiseGenerator {
  readonly seed: number;
  #offset: number;

  /** @param seed integer in 0..2^53-1 */
  constructor(seed: number, offset = 0) {
    checkSeed('seed', seed);
    checkSeed('offset', offset);
    this.seed = seed;
    this.#offset = offset;
  }

  /** How many normals this generator has produced (its position in the stream). */
  get offset(): number {
    return this.#offset;
  }

  /** Moves to a stream position (e.g. to replay or skip). */
  seek(offset: number): void {
    checkSeed('offset', offset);
    this.#offset = offset;
  }

  /** Fills `out` with standard normals from the current position and advances past them. */
  fillNormal(out: Float32Array): Float32Array {
    if (!(out instanceof Float32Array)) throw typeError('INVALID_TYPE', 'out must be a Float32Array');
    if (this.#offset + out.length > MAX_SEED) throw rangeError('OUT_OF_RANGE', 'the noise stream is exhausted (offset + out.length > 2^53-1)');
    native().normalFill(this.seed, this.#offset, out);
    this.#offset += out.length;
    return out;
  }

  /** A new Float32Array of n standard normals (advances the stream). */
  normal(n: number): Float32Array {
    if (!Number.isInteger(n) || n < 0) throw rangeError('OUT_OF_RANGE', `n must be a non-negative integer, got ${n}`);
    return this.fillNormal(new Float32Array(n));
  }
}
