/**
 * Conversions between model tensors and 8-bit pixels (native/core/pixels.cc).
 * sharp takes only 8-bit raw input, so decoded latents go through chwToRgb8.
 */
import { rangeError, typeError } from '../errors.js';
import { native } from '../native.js';

const MAX_SIDE = 65536;

function checkSize(width: unknown, height: unknown): void {
  for (const [name, v] of [['width', width], ['height', height]] as const) {
    if (typeof v !== 'number') throw typeError('INVALID_TYPE', `${name} must be an integer, got ${typeof v}`);
    if (!Number.isInteger(v) || v < 1 || v > MAX_SIDE) throw rangeError('OUT_OF_RANGE', `${name} must be an integer in 1..${MAX_SIDE}, got ${v}`);
  }
}

/**
 * Planar [3, height, width] floats in [-1, 1] to interleaved RGB bytes:
 * byte = round((x + 1) * 127.5) computed in float32, clamped to 0..255, ties rounded to even.
 * Non-finite input is rejected (RangeError, code NON_FINITE); `out` is then unspecified.
 */
export function chwToRgb8(src: Float32Array, width: number, height: number, out?: Uint8Array): Uint8Array {
  if (!(src instanceof Float32Array)) throw typeError('INVALID_TYPE', 'src must be a Float32Array');
  checkSize(width, height);
  const n = 3 * width * height;
  if (src.length !== n) throw rangeError('LENGTH_MISMATCH', `src must have 3 * ${width} * ${height} = ${n} elements, got ${src.length}`);
  const dst = out ?? new Uint8Array(n);
  if (!(dst instanceof Uint8Array)) throw typeError('INVALID_TYPE', 'out must be a Uint8Array');
  if (dst.length !== n) throw rangeError('LENGTH_MISMATCH', `out must have ${n} bytes, got ${dst.length}`);
  const bad = native().chwToRgb8(src, width, height, dst);
  if (bad >= 0) throw rangeError('NON_FINITE', `src[${bad}] is ${src[bad]}; tensors must be finite`);
  return dst;
}

/**
 * Interleaved bytes (3 or 4 channels; alpha is ignored) to planar [3, height, width]
 * floats: x = byte / 127.5 - 1, so 0 -> -1 and 255 -> 1 exactly, and
 * chwToRgb8(rgb8ToChw(p)) === p.
 */
export function rgb8ToChw(src: Uint8Array, width: number, height: number, channels: 3 | 4 = 3, out?: Float32Array): Float32Array {
  if (!(src instanceof Uint8Array)) throw typeError('INVALID_TYPE', 'src must be a Uint8Array (or Buffer)');
  checkSize(width, height);
  if (channels !== 3 && channels !== 4) throw rangeError('OUT_OF_RANGE', `channels must be 3 or 4, got ${String(channels)}`);
  const n = 3 * width * height;
  if (src.length !== channels * width * height) {
    throw rangeError('LENGTH_MISMATCH', `src must have ${channels} * ${width} * ${height} = ${channels * width * height} bytes, got ${src.length}`);
  }
  const dst = out ?? new Float32Array(n);
  if (!(dst instanceof Float32Array)) throw typeError('INVALID_TYPE', 'out must be a Float32Array');
  if (dst.length !== n) throw rangeError('LENGTH_MISMATCH', `out must have ${n} elements, got ${dst.length}`);
  native().rgb8ToChw(src, width, height, channels, dst);
  return dst;
}
