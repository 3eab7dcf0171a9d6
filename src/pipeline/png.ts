/**
 * A small, synchronous PNG encoder for 8-bit RGB, used inside the inference
 * worker so the main thread never waits on an encoder (sharp's async encode
 * queues behind the busy libuv pool on small machines). Per row it picks the
 * PNG filter with the smallest sum of absolute residuals (libpng's heuristic),
 * then deflates everything with zlib. The bytes depend only on the pixels, the
 * level and the zlib build: the same inputs give the same file on one machine.
 */
import { deflateSync } from 'node:zlib';
import { PNG_SIGNATURE, pngChunk, textChunk } from '../image/png-text.js';
import { rangeError, typeError } from '../errors.js';


/**
 * Writes one row filtered with `type` into out[at..] and returns the sum of
 * |residual| (residuals read as signed bytes). One specialised loop per type.
 */
function filterRow(type: number, cur: Uint8Array, up: Uint8Array, out: Uint8Array, at: number): number {
  const n = cur.length;
  let sum = 0;
  let v = 0;
  switch (type) {
    case 0:
      for (let i = 0; i < n; i++) {
        v = cur[i]!;
        out[at + i] = v;
        sum += v < 128 ? v : 256 - v;
      }
      break;
    case 1:
      for (let i = 0; i < n; i++) {
        v = (cur[i]! - (i >= 3 ? cur[i - 3]! : 0)) & 0xff;
        out[at + i] = v;
        sum += v < 128 ? v : 256 - v;
      }
      break;
    case 2:
      for (let i = 0; i < n; i++) {
        v = (cur[i]! - up[i]!) & 0xff;
        out[at + i] = v;
        sum += v < 128 ? v : 256 - v;
      }
      break;
    case 3:
      for (let i = 0; i < n; i++) {
        v = (cur[i]! - (((i >= 3 ? cur[i - 3]! : 0) + up[i]!) >> 1)) & 0xff;
        out[at + i] = v;
        sum += v < 128 ? v : 256 - v;
      }
      break;
    default:
      for (let i = 0; i < n; i++) {
        const a = i >= 3 ? cur[i - 3]! : 0;
        const b = up[i]!;
        const c = i >= 3 ? up[i - 3]! : 0;
        const p = a + b - c;
        const pa = p > a ? p - a : a - p;
        const pb = p > b ? p - b : b - p;
        const pc = p > c ? p - c : c - p;
        v = (cur[i]! - (pa <= pb && pa <= pc ? a : pb <= pc ? b : c)) & 0xff;
        out[at + i] = v;
        sum += v < 128 ? v : 256 - v;
      }
  }
  return sum;
}

/**
 * Encodes interleaved 8-bit RGB (width × height × 3 bytes) as a PNG. `text`
 * entries become tEXt/iTXt chunks right after IHDR: the same bytes
 * `withPngText(encodeRgbPng(rgb, w, h), text)` gives, without parsing and
 * rebuilding the file.
 */
export function encodeRgbPng(rgb: Uint8Array, width: number, height: number, level = 9, text?: Readonly<Record<string, string>>): Uint8Array {
  if (!(rgb instanceof Uint8Array)) throw typeError('INVALID_TYPE', 'rgb must be a Uint8Array');
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1 || width > 65535 || height > 65535) {
    throw rangeError('OUT_OF_RANGE', `width and height must be integers in 1..65535, got ${width}×${height}`);
  }
  const stride = width * 3;
  if (rgb.length !== stride * height) throw rangeError('LENGTH_MISMATCH', `rgb must have ${width} × ${height} × 3 = ${stride * height} bytes, got ${rgb.length}`);
  const raw = Buffer.allocUnsafe((stride + 1) * height);
  const zero = new Uint8Array(stride);
  const trial = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const cur = rgb.subarray(y * stride, (y + 1) * stride);
    const up = y > 0 ? rgb.subarray((y - 1) * stride, y * stride) : zero;
    let bestType = 0;
    let bestSum = Infinity;
    for (let type = 0; type < 5; type++) {
      const sum = filterRow(type, cur, up, trial, 0);
      if (sum < bestSum) {
        bestSum = sum;
        bestType = type;
      }
    }
    const at = y * (stride + 1);
    raw[at] = bestType;
    filterRow(bestType, cur, up, raw, at + 1);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // colour type: truecolour
  const texts = text ? Object.entries(text).map(([k, v]) => textChunk(k, v)) : [];
  const parts = [PNG_SIGNATURE, pngChunk('IHDR', ihdr), ...texts, pngChunk('IDAT', deflateSync(raw, { level })), pngChunk('IEND', new Uint8Array(0))];
  // A buffer of its own (never a slice of Node's shared pool), so it can be transferred between threads.
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
