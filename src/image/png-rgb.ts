/**
 * The inverse of pipeline/png.ts's encoder, for the output door: a small,
 * synchronous decoder of 8-bit RGB, non-interlaced PNGs (what the pipeline
 * writes). sharp's decode of a 64×64 image costs about a millisecond, most of
 * it a hop through the libuv pool, and right after a generation it queues
 * behind that pool; this costs tens of microseconds. Anything else (another
 * colour type or depth, interlacing, a malformed or oversized file) is `null`:
 * the caller then takes the general path (image/decode.ts), which also
 * reports the proper error.
 */
import { inflateSync } from 'node:zlib';
import { PNG_SIGNATURE } from './png-text.js';

/** Chunks that do not change the pixels: the text the pipeline writes. */
const TEXT = new Set(['tEXt', 'iTXt', 'zTXt']);

export function decodeRgbPng(bytes: Uint8Array, maxPixels: number): { rgb: Uint8Array; width: number; height: number } | null {
  if (bytes.length < 8 + 25 || !PNG_SIGNATURE.every((b, i) => bytes[i] === b)) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 8;
  let width = 0, height = 0;
  const idat: Uint8Array[] = [];
  while (at + 12 <= bytes.length) {
    const len = view.getUint32(at);
    const type = String.fromCharCode(bytes[at + 4]!, bytes[at + 5]!, bytes[at + 6]!, bytes[at + 7]!);
    const start = at + 8;
    if (len > bytes.length - start - 4) return null;
    if (type === 'IHDR') {
      if (len !== 13) return null;
      width = view.getUint32(start);
      height = view.getUint32(start + 4);
      const [depth, colour, compression, filter, interlace] = bytes.subarray(start + 8, start + 13);
      if (depth !== 8 || colour !== 2 || compression !== 0 || filter !== 0 || interlace !== 0) return null;
      if (width < 1 || height < 1 || width * height > maxPixels) return null;
    } else if (type === 'IDAT') {
      idat.push(bytes.subarray(start, start + len));
    } else if (type === 'IEND') {
      break;
    } else if (!TEXT.has(type)) {
      return null; // colour management (iCCP, gAMA, sRGB...), palettes or anything unknown: the general path
    }
    at = start + len + 4;
  }
  if (width === 0 || idat.length === 0) return null;
  const stride = width * 3;
  const expected = (stride + 1) * height;
  let raw: Buffer;
  try {
    raw = inflateSync(Buffer.concat(idat), { maxOutputLength: expected });
  } catch {
    return null;
  }
  if (raw.length !== expected) return null;
  const rgb = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const type = raw[y * (stride + 1)]!;
    const src = y * (stride + 1) + 1;
    const o = y * stride;
    const up = o - stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= 3 ? rgb[o + i - 3]! : 0;
      const b = y > 0 ? rgb[up + i]! : 0;
      let p: number;
      switch (type) {
        case 0: p = 0; break;
        case 1: p = a; break;
        case 2: p = b; break;
        case 3: p = (a + b) >> 1; break;
        case 4: {
          const c = i >= 3 && y > 0 ? rgb[up + i - 3]! : 0;
          const q = a + b - c;
          const pa = Math.abs(q - a), pb = Math.abs(q - b), pc = Math.abs(q - c);
          p = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
          break;
        }
        default: return null;
      }
      rgb[o + i] = (raw[src + i]! + p) & 0xff;
    }
  }
  return { rgb, width, height };
}
