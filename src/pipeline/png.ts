/**
 * A small, synchronous PNG encoder for 8-bit RGB, used inside the inference
 * worker so the main thread never waits on an encoder (sharp's async encode
 * queues behind the busy libuv pool on small machines). Per row it picks the
 * PNG filter with the smallest sum of absolute residuals (libpng's heuristic),
 * then deflates everything with zlib. The bytes depend only on the pixels, the
 * level and the zlib build: the same inputs give the same file on one machine.
 */
import { crc32, deflateSync } from 'node:zlib';
import { rangeError, typeError } from '../errors.js';

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

function chunk(type: string, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  out.write(type, 4, 'latin1');
  out.set(data, 8);
  out.writeUInt32BE(crc32(out.subarray(4, 8 + data.length)), 8 + data.length);
  return out;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Encodes interleaved 8-bit RGB (width × height × 3 bytes) as a PNG. */
export function encodeRgbPng(rgb: Uint8Array, width: number, height: number, level = 9): Uint8Array {
  if (!(rgb instanceof Uint8Array)) throw typeError('INVALID_TYPE', 'rgb must be a Uint8Array');
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > 65535 || height > 65535) {
    throw rangeError('OUT_OF_RANGE', `width and height must be integers in 1..65535, got ${width}×${height}`);
  }
  const stride = width * 3;
  if (rgb.length !== stride * height) throw rangeError('LENGTH_MISMATCH', `rgb must have ${width} × ${height} × 3 = ${stride * height} bytes, got ${rgb.length}`);
  const raw = Buffer.allocUnsafe((stride + 1) * height);
  const trial = new Uint8Array(stride);
  const best = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const row = y * stride;
    const prev = row - stride;
    let bestSum = Infinity;
    let bestType = 0;
    for (let type = 0; type < 5; type++) {
      let sum = 0;
      for (let i = 0; i < stride; i++) {
        const x = rgb[row + i]!;
        const a = i >= 3 ? rgb[row + i - 3]! : 0;
        const b = y > 0 ? rgb[prev + i]! : 0;
        const c = i >= 3 && y > 0 ? rgb[prev + i - 3]! : 0;
        const pred = type === 0 ? 0 : type === 1 ? a : type === 2 ? b : type === 3 ? (a + b) >> 1 : paeth(a, b, c);
        const v = (x - pred) & 0xff;
        trial[i] = v;
        sum += v < 128 ? v : 256 - v;
        if (sum >= bestSum) break;
      }
      if (sum < bestSum) {
        bestSum = sum;
        bestType = type;
        best.set(trial);
      }
    }
    const at = y * (stride + 1);
    raw[at] = bestType;
    raw.set(best, at + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour
  const parts = [SIGNATURE, chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw, { level })), chunk('IEND', new Uint8Array(0))];
  // A buffer of its own (never a slice of Node's shared pool), so it can be transferred between threads.
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
