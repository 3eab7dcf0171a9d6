// NoiseGenerator: counter-based Philox4x32-10 + Box–Muller, deterministic per (seed, index).
import { test } from 'uvu';
import * as assert from 'uvu/assert';

/** A predicate for assert.throws: an instance of `Ctor` carrying `code`. */
const coded = (Ctor: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor, code: string) => (e: unknown) =>
  e instanceof Ctor && (e as { code?: unknown }).code === code;
import { NoiseGenerator } from '../src/rng.js';
import { native } from '../src/native.js';

const hex = (a: number[]) => a.map((x) => '0x' + x.toString(16).padStart(8, '0'));

test('Philox4x32-10 matches the Random123 known-answer vectors', () => {
  const n = native();
  assert.equal(hex(n.philox4x32(0, 0, 0, 0, 0, 0)), ['0x6627e8d5', '0xe169c58d', '0xbc57ac4c', '0x9b00dbd8']);
  const f = 0xffffffff;
  assert.equal(hex(n.philox4x32(f, f, f, f, f, f)), ['0x408f276d', '0x41c83b0e', '0xa20bc7c6', '0x6d5451fd']);
  assert.equal(hex(n.philox4x32(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0)), [
    '0xd16cfe09', '0x94fdcceb', '0x5001e420', '0x24126ea1',
  ]);
});

test('each normal is Box–Muller of its own Philox block: value depends only on (seed, index)', () => {
  const seed = 2 ** 40 + 12345;
  const g = new NoiseGenerator(seed);
  const z = g.fillNormal(new Float32Array(64));
  const n = native();
  for (let i = 0; i < 64; i += 4) {
    const block = i / 4;
    const bits = n.philox4x32(block, 0, 0, 0, seed % 2 ** 32, Math.floor(seed / 2 ** 32));
    for (const k of [0, 2]) {
      const u0 = (bits[k]! + 0.5) / 2 ** 32;
      const u1 = (bits[k + 1]! + 0.5) / 2 ** 32;
      const r = Math.sqrt(-2 * Math.log(u0));
      assert.is(z[i + k], Math.fround(r * Math.cos(2 * Math.PI * u1)), `index ${i + k}`);
      assert.is(z[i + k + 1], Math.fround(r * Math.sin(2 * Math.PI * u1)), `index ${i + k + 1}`);
    }
  }
});

test('the stream does not depend on how it is split into calls', () => {
  const whole = new NoiseGenerator(7).fillNormal(new Float32Array(1001));
  const g = new NoiseGenerator(7);
  const parts = [1, 2, 3, 5, 7, 11, 13, 200, 759];
  const joined = new Float32Array(1001);
  let at = 0;
  for (const p of parts) {
    joined.set(g.fillNormal(new Float32Array(p)), at);
    at += p;
  }
  assert.is(at, 1001);
  assert.is(g.offset, 1001);
  assert.equal(Array.from(joined), Array.from(whole));
});

test('the stream does not depend on the thread count', () => {
  const n = native();
  const before = n.threadCount();
  const len = 300_001;
  try {
    n.setThreadCount(1);
    const one = new NoiseGenerator(99).fillNormal(new Float32Array(len));
    n.setThreadCount(4);
    const four = new NoiseGenerator(99).fillNormal(new Float32Array(len));
    assert.ok(one.every((v, i) => v === four[i]));
  } finally {
    n.setThreadCount(before);
  }
});

test('seek replays the stream; pinned values guard against drift across machines', () => {
  const g = new NoiseGenerator(42);
  const a = g.fillNormal(new Float32Array(8));
  g.seek(3);
  const b = g.fillNormal(new Float32Array(5));
  assert.equal(Array.from(b), Array.from(a.subarray(3)));
  // First values for seed 0: pins the mapping (block, lane) -> value.
  const z = new NoiseGenerator(0).normal(4);
  const bits = native().philox4x32(0, 0, 0, 0, 0, 0);
  const r = Math.sqrt(-2 * Math.log((bits[0] + 0.5) / 2 ** 32));
  assert.is(z[0], Math.fround(r * Math.cos((2 * Math.PI * (bits[1] + 0.5)) / 2 ** 32)));
});

test('samples look standard normal (mean, variance, tails)', () => {
  const z = new NoiseGenerator(123).normal(1 << 20);
  let s = 0, s2 = 0, tail = 0;
  for (const v of z) {
    s += v;
    s2 += v * v;
    if (Math.abs(v) > 3) tail++;
  }
  const mean = s / z.length;
  const variance = s2 / z.length - mean * mean;
  assert.ok(Math.abs(mean) < 0.005, `mean ${mean}`);
  assert.ok(Math.abs(variance - 1) < 0.005, `variance ${variance}`);
  const p3 = tail / z.length; // 0.0027 for N(0,1)
  assert.ok(p3 > 0.0022 && p3 < 0.0032, `P(|z|>3) = ${p3}`);
});

test('different seeds give different streams', () => {
  const a = new NoiseGenerator(1).normal(16);
  const b = new NoiseGenerator(2).normal(16);
  assert.ok(a.some((v, i) => v !== b[i]));
});

test('bad seeds are TypeError / RangeError with codes', () => {
  assert.throws(() => new NoiseGenerator('1' as unknown as number), coded(TypeError, 'INVALID_TYPE'));
  assert.throws(() => new NoiseGenerator(1.5), coded(RangeError, 'INVALID_VALUE'));
  assert.throws(() => new NoiseGenerator(-1), coded(RangeError, 'OUT_OF_RANGE'));
  assert.throws(() => new NoiseGenerator(2 ** 53), coded(RangeError, 'OUT_OF_RANGE'));
  assert.throws(() => new NoiseGenerator(NaN), (e: any) => e instanceof RangeError);
  assert.throws(() => new NoiseGenerator(0).fillNormal(new Float64Array(2) as unknown as Float32Array), (e: any) => e instanceof TypeError);
  new NoiseGenerator(Number.MAX_SAFE_INTEGER).normal(4);
});

test('the addon itself rejects bad arguments without crashing', () => {
  const n = native() as any;
  assert.throws(() => n.normalFill(-1, 0, new Float32Array(1)), (e: any) => e instanceof RangeError);
  assert.throws(() => n.normalFill(0, 0, [1, 2]), (e: any) => e instanceof TypeError);
  assert.throws(() => n.normalFill(0, 2 ** 53 - 1, new Float32Array(4)), (e: any) => e instanceof RangeError);
  assert.throws(() => n.normalFill(), (e: any) => e instanceof TypeError);
});

test.run();
