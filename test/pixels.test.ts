// Tensor <-> 8-bit pixel conversions (sharp takes only bytes).
import { test } from 'uvu';
import * as assert from 'uvu/assert';

/** A predicate for assert.throws: an instance of `Ctor` carrying `code`. */
const coded = (Ctor: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, code: string) => (e: unknown) =>
  e instanceof Ctor && (e as { code?: unknown }).code === code;
import { chwToRgb8, rgb8ToChw } from '../src/image/pixels.js';

test('chwToRgb8 maps [-1, 1] planar floats to interleaved RGB bytes', () => {
  // 2x1 image: pixel 0 = (-1, 0, 1), pixel 1 = (1, -1, 0)
  const src = new Float32Array([-1, 1, 0, -1, 1, 0]);
  assert.equal(Array.from(chwToRgb8(src, 2, 1)), [0, 128, 255, 255, 0, 128]);
});

test('chwToRgb8 clamps out-of-range values and rounds ties to even', () => {
  // (x + 1) * 127.5: -2 -> -127.5 -> 0; 3 -> 510 -> 255; ties: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2
  const xs = [-2, 3, 0.5 / 127.5 - 1, 1.5 / 127.5 - 1, 2.5 / 127.5 - 1, 100.4 / 127.5 - 1];
  const src = new Float32Array(3 * xs.length);
  src.set(xs, 0);
  const out = chwToRgb8(src, xs.length, 1);
  const red = xs.map((_, i) => out[3 * i]);
  // the float32 arithmetic decides the ties exactly as documented
  const expect = xs.map((x) => {
    const v = Math.min(255, Math.max(0, Math.fround(Math.fround(Math.fround(x) + 1) * 127.5)));
    const f = Math.floor(v);
    return v - f === 0.5 ? (f % 2 === 0 ? f : f + 1) : Math.round(v);
  });
  assert.equal(red, expect);
  assert.equal(red.slice(0, 2), [0, 255]);
  assert.is(red[5], 100);
});

test('rgb8ToChw maps bytes to [-1, 1] planes (0 -> -1, 255 -> 1 exactly), ignoring alpha', () => {
  const rgba = new Uint8Array([0, 255, 51, 7, 255, 0, 204, 9]);
  const chw = rgb8ToChw(rgba, 2, 1, 4);
  assert.equal(Array.from(chw), [-1, 1, 1, -1, Math.fround(51 / 127.5 - 1), Math.fround(204 / 127.5 - 1)]);
});

test('bytes -> floats -> bytes is the identity for every byte value', () => {
  const w = 16, h = 16;
  const px = new Uint8Array(3 * w * h);
  for (let i = 0; i < px.length; i++) px[i] = (i * 7) % 256;
  const back = chwToRgb8(rgb8ToChw(px, w, h, 3), w, h);
  assert.equal(Array.from(back), Array.from(px));
  assert.ok(new Set(px).size === 256);
});

test('large images (threaded) agree with the per-pixel formula', () => {
  const w = 300, h = 257;
  const src = new Float32Array(3 * w * h);
  for (let i = 0; i < src.length; i++) src[i] = Math.sin(i * 0.37) * 1.1;
  const out = chwToRgb8(src, w, h, new Uint8Array(3 * w * h));
  for (const p of [0, 1, 12345, w * h - 1]) {
    for (let c = 0; c < 3; c++) {
      const v = Math.min(255, Math.max(0, Math.fround(Math.fround(src[c * w * h + p]! + 1) * 127.5)));
      assert.ok(Math.abs(out[3 * p + c]! - v) <= 0.5, `pixel ${p} channel ${c}`);
    }
  }
});

test('non-finite tensors and wrong shapes are rejected with codes', () => {
  const src = new Float32Array(12);
  src[7] = NaN;
  assert.throws(() => chwToRgb8(src, 2, 2), (e: unknown) => coded(RangeError, 'NON_FINITE')(e) && /src\[7\]/.test((e as Error).message));
  src[7] = Infinity;
  assert.throws(() => chwToRgb8(src, 2, 2), (e: any) => e.code === 'NON_FINITE');
  assert.throws(() => chwToRgb8(new Float32Array(11), 2, 2), coded(RangeError, 'LENGTH_MISMATCH'));
  assert.throws(() => chwToRgb8(new Float32Array(12), 0, 2), coded(RangeError, 'OUT_OF_RANGE'));
  assert.throws(() => chwToRgb8(new Float32Array(12), 2, 2, new Uint8Array(3)), (e: any) => e.code === 'LENGTH_MISMATCH');
  assert.throws(() => rgb8ToChw(new Uint8Array(12), 2, 2, 2 as 3), (e: any) => e instanceof RangeError);
  assert.throws(() => rgb8ToChw(new Uint8Array(11), 2, 2, 3), (e: any) => e.code === 'LENGTH_MISMATCH');
  assert.throws(() => rgb8ToChw(new Float32Array(12) as unknown as Uint8Array, 2, 2, 3), (e: any) => e instanceof TypeError);
});

test.run();
