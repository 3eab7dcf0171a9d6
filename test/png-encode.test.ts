// The worker's PNG encoder: lossless, valid (sharp decodes it), deterministic,
// with every filter type exercised, and typed errors for bad arguments.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sharp from 'sharp';
import { inflateSync } from 'node:zlib';
import { encodeRgbPng } from '../src/pipeline/png.js';
import { pngChunks, readPngText, withPngText } from '../src/image/png-text.js';
import { parameterText } from '../src/pipeline/output.js';
import { seededRandom } from './helpers.js';

function image(width: number, height: number, kind: 'noise' | 'gradient' | 'flat'): Uint8Array {
  const rnd = seededRandom(width * 31 + height);
  const px = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        const i = (y * width + x) * 3 + c;
        px[i] = kind === 'noise' ? Math.floor(rnd() * 256) : kind === 'gradient' ? (x * 7 + y * 3 + c * 50) & 255 : 200;
      }
    }
  }
  return px;
}

test('round trip through sharp is lossless for noise, gradients and flat images of odd sizes', async () => {
  for (const [w, h] of [[1, 1], [3, 2], [64, 64], [33, 17]] as const) {
    for (const kind of ['noise', 'gradient', 'flat'] as const) {
      const rgb = image(w, h, kind);
      const png = encodeRgbPng(rgb, w, h);
      const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
      assert.equal([info.width, info.height, info.channels], [w, h, 3]);
      assert.ok(Buffer.from(rgb).equals(data), `${w}×${h} ${kind}`);
    }
  }
});

test('rows use the filter that suits them (not always None)', () => {
  const png = encodeRgbPng(image(64, 64, 'gradient'), 64, 64);
  const chunks = pngChunks(png);
  assert.equal(chunks.map((c) => c.type), ['IHDR', 'IDAT', 'IEND']);
  const raw = inflateSync(chunks[1]!.data);
  const filters = new Set(Array.from({ length: 64 }, (_, y) => raw[y * (64 * 3 + 1)]));
  assert.ok([...filters].some((f) => f !== 0), `filters used: ${[...filters].join(', ')}`);
  const flat = encodeRgbPng(image(64, 64, 'flat'), 64, 64);
  assert.ok(flat.length < 200, `a flat image compresses to ${flat.length} bytes`);
  assert.ok(png.length < 64 * 64 * 3 / 4, `a gradient compresses well with prediction (${png.length} bytes)`);
});

test('same pixels, same bytes; the result owns its buffer (transferable)', () => {
  const rgb = image(32, 32, 'noise');
  const a = encodeRgbPng(rgb, 32, 32);
  assert.ok(Buffer.from(a).equals(Buffer.from(encodeRgbPng(rgb, 32, 32))));
  assert.is(a.byteOffset, 0);
  assert.is(a.byteLength, a.buffer.byteLength);
});

test('bad arguments are typed errors', () => {
  assert.throws(() => encodeRgbPng(new Uint8Array(11), 2, 2), (e: RangeError & { code?: string }) => e.code === 'LENGTH_MISMATCH');
  assert.throws(() => encodeRgbPng(new Uint8Array(0), 0, 1), (e: RangeError & { code?: string }) => e.code === 'OUT_OF_RANGE');
  assert.throws(() => encodeRgbPng([1, 2, 3] as unknown as Uint8Array, 1, 1), (e: TypeError) => e instanceof TypeError);
});

test('text chunks written by the encoder: the same bytes as tagging the PNG afterwards', () => {
  const rgb = image(33, 17, 'gradient');
  const params = {
    prompt: 'grinning face', negativePrompt: 'blurry ☃ ünïcode, "quoted"', steps: 4, sampler: 'dpmpp-2m' as const, karras: false,
    guidanceScale: 7.5, seed: 7, width: 33, height: 17, model: 'tiny', modelHash: 'ab'.repeat(32),
  };
  const text = parameterText(params);
  const once = encodeRgbPng(rgb, 33, 17, 9, text);
  const twice = withPngText(encodeRgbPng(rgb, 33, 17), text);
  assert.ok(Buffer.from(once).equals(twice), 'byte-identical to the parse-and-rebuild path');
  assert.equal(pngChunks(once).map((c) => c.type), ['IHDR', 'iTXt', 'iTXt', 'IDAT', 'IEND'], 'non-Latin-1 text: UTF-8 iTXt');
  assert.equal(readPngText(once), text);
});

test.run();
