// The shared exact top-k (native/core/topk.h: the trajectory lookup's and the
// image store's exact search) against the TypeScript references of
// test/reference/topk.ts, bit for bit: squared L2 and inner product, with and
// without a subset and a mask, ties, k beyond the candidates, no rows, batched
// queries, a partition-independent result when threaded; the CUDA twin (skipped
// without a GPU); bad input as typed errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native, type NativeTopKScores } from '../src/native.js';
import { referenceStoreExact, referenceTopK, type RefHit } from './reference/topk.js';
import { seededRandom } from './helpers.js';

const n = native();
function code(fn: () => unknown): string | undefined {
  try { fn(); } catch (e) { return (e as { code?: string }).code; }
  return 'no error';
}
const rows = (rand: () => number, count: number, d: number) => Float32Array.from({ length: count * d }, () => rand() * 2 - 1);
/** Coarse values: many equal scores. */
const coarse = (rand: () => number, count: number, d: number) => Float32Array.from({ length: count * d }, () => Math.floor(rand() * 3) - 1);

/** Query j's results, as RefHit[]. */
function hits(r: NativeTopKScores, j: number): RefHit[] {
  const out: RefHit[] = [];
  for (let p = 0; p < r.k; p++) out.push({ row: r.indices[j * r.k + p]!, score: r.scores[j * r.k + p]! });
  return out;
}
/** Same rows, same scores to the bit (Object.is: -0 and NaN count). */
function same(got: RefHit[], want: RefHit[], what: string): void {
  assert.equal(got.map((h) => h.row), want.map((h) => h.row), `${what}: rows`);
  got.forEach((h, i) => assert.ok(Object.is(h.score, want[i]!.score), `${what}: score ${i}: ${h.score} vs ${want[i]!.score}`));
}

test('inner product: the store\'s JavaScript exact search, bit for bit (rows, scores, order), over every row, a subset and a mask', () => {
  const rand = seededRandom(21);
  for (const d of [16, 37, 128]) {
    const N = 1500, k = 10;
    const m = rows(rand, N, d), queries = rows(rand, 3, d);
    const mask = Uint8Array.from({ length: N }, () => (rand() < 0.8 ? 1 : 0));
    const labels = Int32Array.from({ length: 300 }, (_, i) => i * 5);
    for (const [what, subset] of [['every row', null], ['subset', labels]] as const) {
      const r = n.topkExact(m, d, queries, k, 'ip', subset, mask);
      assert.is(r.k, k);
      for (let j = 0; j < 3; j++) {
        const q = queries.subarray(j * d, (j + 1) * d);
        same(hits(r, j), referenceStoreExact(m, d, mask, q, k, subset ?? undefined), `d ${d} ${what} query ${j}`);
        same(hits(r, j), referenceTopK(m, d, queries, j, k, 'ip', subset, mask), `d ${d} ${what} query ${j} (contract)`);
      }
    }
  }
});

test('squared L2: float32 with the kernel\'s lanes, bit for bit; trajectoryTopK is the same kernel', () => {
  const rand = seededRandom(22);
  for (const d of [8, 37, 64]) {
    const N = 900, k = 7;
    const keys = rows(rand, N, d), queries = rows(rand, 4, d);
    const subset = Int32Array.from({ length: 200 }, () => Math.floor(rand() * N));
    const mask = Uint8Array.from({ length: N }, (_, i) => (i % 3 === 0 ? 0 : 1));
    for (const [what, s, mk] of [['every row', null, null], ['subset', subset, null], ['subset + mask', subset, mask], ['mask', null, mask]] as const) {
      const r = n.topkExact(keys, d, queries, k, 'l2', s, mk);
      for (let j = 0; j < 4; j++) same(hits(r, j), referenceTopK(keys, d, queries, j, k, 'l2', s, mk), `d ${d} ${what} query ${j}`);
    }
    const t = n.trajectoryTopK(keys, d, queries, k);
    const r = n.topkExact(keys, d, queries, k, 'l2', null, null);
    assert.equal([...t.indices], [...r.indices]);
    assert.equal([...t.distances], [...Float32Array.from(r.scores)]);
    assert.equal([...Float64Array.from(t.distances)], [...r.scores], 'L2 scores are float32 values');
  }
});

test('ties keep candidate order: row order, the subset\'s order (even unsorted, with repeats); NaN rows rank last', () => {
  const rand = seededRandom(23);
  const d = 5, N = 400;
  const m = coarse(rand, N, d), q = coarse(rand, 1, d);
  const subset = Int32Array.from({ length: 250 }, () => Math.floor(rand() * N)); // unsorted, repeats
  for (const metric of ['ip', 'l2'] as const) {
    for (const s of [null, subset]) {
      const r = n.topkExact(m, d, q, 60, metric, s, null);
      const ref = referenceTopK(m, d, q, 0, 60, metric, s, null);
      same(hits(r, 0), ref, `${metric} ${s ? 'subset' : 'rows'}`);
      // the data has ties inside the top 60, so the order is tested, not just the set
      assert.ok(ref.some((h, i) => i > 0 && h.score === ref[i - 1]!.score), 'ties present');
    }
  }
  const mask = new Uint8Array(N).fill(1);
  same(hits(n.topkExact(m, d, q, 60, 'ip', subset, mask), 0), referenceStoreExact(m, d, mask, q, 60, subset), 'the store\'s order with repeats');
  const withNaN = m.slice();
  for (let i = 0; i < N; i += 3) withNaN[i * d + 1] = NaN;
  for (const metric of ['ip', 'l2'] as const) {
    const r = n.topkExact(withNaN, d, q, N, metric, null, null);
    const ref = referenceTopK(withNaN, d, q, 0, N, metric, null, null);
    same(hits(r, 0), ref, `${metric} with NaN rows`);
    assert.ok(Number.isNaN(ref[N - 1]!.score) && !Number.isNaN(ref[N - 1 - Math.ceil(N / 3)]!.score), 'NaN scores last');
  }
});

test('k beyond the candidates returns every candidate; no rows, an empty subset or an all-zero mask return none', () => {
  const rand = seededRandom(24);
  const d = 12, N = 50;
  const m = rows(rand, N, d), q = rows(rand, 2, d);
  for (const metric of ['ip', 'l2'] as const) {
    const all = n.topkExact(m, d, q, 1000, metric, null, null);
    assert.is(all.k, N);
    assert.is(all.indices.length, 2 * N);
    for (let j = 0; j < 2; j++) same(hits(all, j), referenceTopK(m, d, q, j, N, metric, null, null), `${metric} k > n, query ${j}`);
    assert.is(n.topkExact(m, d, q, N, metric, null, null).k, N, 'k = n');
    const sub = n.topkExact(m, d, q, 9, metric, Int32Array.of(4, 8, 15), null);
    assert.is(sub.k, 3);
    assert.equal(new Set(sub.indices), new Set([4, 8, 15]));
    const masked = new Uint8Array(N);
    masked[7] = 1;
    assert.equal([...n.topkExact(m, d, q, 5, metric, null, masked).indices], [7, 7]);
    for (const r of [
      n.topkExact(new Float32Array(0), d, q, 5, metric, null, null),
      n.topkExact(m, d, q, 5, metric, new Int32Array(0), null),
      n.topkExact(m, d, q, 5, metric, null, new Uint8Array(N)),
    ]) {
      assert.is(r.k, 0);
      assert.is(r.indices.length, 0);
      assert.is(r.scores.length, 0);
    }
  }
});

test('threaded over rows: the same result with one thread as with the pool, batch = one query at a time', () => {
  const rand = seededRandom(25);
  const d = 32, N = 60_000, k = 25;
  const m = rows(rand, N, d), q = rows(rand, 3, d);
  const subset = Int32Array.from({ length: 40_000 }, (_, i) => (i * 7) % N);
  const before = n.threadCount();
  try {
    for (const metric of ['ip', 'l2'] as const) {
      for (const s of [null, subset]) {
        n.setThreadCount(4);
        const pooled = n.topkExact(m, d, q, k, metric, s, null);
        n.setThreadCount(1);
        const single = n.topkExact(m, d, q, k, metric, s, null);
        assert.equal([...pooled.indices], [...single.indices], `${metric} indices`);
        assert.equal([...pooled.scores], [...single.scores], `${metric} scores`);
        for (let j = 0; j < 3; j++) {
          const one = n.topkExact(m, d, q.subarray(j * d, (j + 1) * d), k, metric, s, null);
          assert.equal([...one.indices], [...pooled.indices.subarray(j * k, (j + 1) * k)], `${metric} query ${j} alone`);
        }
        same(hits(pooled, 2), referenceTopK(m, d, q, 2, k, metric, s, null), `${metric} reference`);
      }
    }
  } finally {
    n.setThreadCount(before);
  }
});

test('bad input through the binding: typed errors with codes, never a crash', () => {
  const f = new Float32Array(12), q = new Float32Array(3);
  assert.is(code(() => n.topkExact([] as unknown as Float32Array, 3, q, 1, 'ip', null, null)), 'INVALID_TYPE');
  assert.is(code(() => n.topkExact(new Float64Array(12) as unknown as Float32Array, 3, q, 1, 'ip', null, null)), 'INVALID_TYPE');
  assert.is(code(() => n.topkExact(f, 3, [1, 2, 3] as unknown as Float32Array, 1, 'ip', null, null)), 'INVALID_TYPE');
  assert.is(code(() => n.topkExact(f, '3' as unknown as number, q, 1, 'ip', null, null)), 'INVALID_TYPE');
  assert.is(code(() => n.topkExact(f, 0, q, 1, 'ip', null, null)), 'OUT_OF_RANGE');
  assert.is(code(() => n.topkExact(f, 2.5, q, 1, 'ip', null, null)), 'OUT_OF_RANGE');
  assert.is(code(() => n.topkExact(f, 5, q, 1, 'ip', null, null)), 'LENGTH_MISMATCH');
  assert.is(code(() => n.topkExact(f, 3, new Float32Array(4), 1, 'ip', null, null)), 'LENGTH_MISMATCH');
  assert.is(code(() => n.topkExact(f, 3, new Float32Array(0), 1, 'ip', null, null)), 'LENGTH_MISMATCH');
  assert.is(code(() => n.topkExact(f, 3, q, 0, 'ip', null, null)), 'OUT_OF_RANGE');
  assert.is(code(() => n.topkExact(f, 3, q, -1, 'ip', null, null)), 'OUT_OF_RANGE');
  assert.is(code(() => n.topkExact(f, 3, q, 1.5, 'ip', null, null)), 'OUT_OF_RANGE');
  assert.is(code(() => n.topkExact(f, 3, q, 2e9, 'ip', null, null)), 'OUT_OF_RANGE');
  assert.is(code(() => n.topkExact(f, 3, q, NaN, 'ip', null, null)), 'OUT_OF_RANGE');
  assert.is(code(() => n.topkExact(f, 3, Float32Array.of(1, NaN, 2), 1, 'ip', null, null)), 'NON_FINITE');
  assert.is(code(() => n.topkExact(f, 3, Float32Array.of(1, Infinity, 2), 1, 'l2', null, null)), 'NON_FINITE');
  assert.is(code(() => n.topkExact(f, 3, q, 1, 'cosine' as 'ip', null, null)), 'INVALID_VALUE');
  assert.is(code(() => n.topkExact(f, 3, q, 1, 1 as unknown as 'ip', null, null)), 'INVALID_TYPE');
  assert.is(code(() => n.topkExact(f, 3, q, 1, 'ip', [0, 1] as unknown as Int32Array, null)), 'INVALID_TYPE');
  assert.is(code(() => n.topkExact(f, 3, q, 1, 'ip', Int32Array.of(0, 4), null)), 'OUT_OF_RANGE');
  assert.is(code(() => n.topkExact(f, 3, q, 1, 'ip', Int32Array.of(-1), null)), 'OUT_OF_RANGE');
  assert.is(code(() => n.topkExact(new Float32Array(0), 3, q, 1, 'ip', Int32Array.of(0), null)), 'OUT_OF_RANGE');
  assert.is(code(() => n.topkExact(f, 3, q, 1, 'ip', null, new Uint8Array(3))), 'LENGTH_MISMATCH');
  assert.is(code(() => n.topkExact(f, 3, q, 1, 'ip', null, new Int8Array(4) as unknown as Uint8Array)), 'INVALID_TYPE');
  assert.is(code(() => (n.topkExact as unknown as () => unknown)()), 'INVALID_TYPE');
  // still works after all that
  assert.is(n.topkExact(f, 3, Float32Array.of(1, 0, 0), 2, 'ip', null, null).k, 2);
});

const gpu = n.cuda.available();
test('CUDA twin: the same rows and score bits as the CPU, both metrics, subset and mask (skipped without a GPU)', () => {
  if (!gpu) {
    assert.is(code(() => n.cuda.topkExact(new Float32Array(3), 3, new Float32Array(3), 1, 'ip', null, null)), 'CUDA_UNAVAILABLE');
    assert.is(code(() => n.cuda.topkExact(new Float32Array(3), 3, new Float32Array(3), 1, 'dot' as 'ip', null, null)), 'INVALID_VALUE', 'arguments are checked first');
    return;
  }
  const rand = seededRandom(26);
  const d = 37, N = 5000, k = 20;
  const m = rows(rand, N, d), q = rows(rand, 3, d);
  const subset = Int32Array.from({ length: 1000 }, () => Math.floor(rand() * N));
  const mask = Uint8Array.from({ length: N }, () => (rand() < 0.7 ? 1 : 0));
  for (const metric of ['ip', 'l2'] as const) {
    for (const [s, mk] of [[null, null], [subset, mask]] as const) {
      const c = n.topkExact(m, d, q, k, metric, s, mk), g = n.cuda.topkExact(m, d, q, k, metric, s, mk);
      assert.equal([...g.indices], [...c.indices], `${metric} indices`);
      assert.equal([...g.scores], [...c.scores], `${metric} scores`);
    }
  }
  assert.is(n.cuda.topkExact(new Float32Array(0), d, q, 5, 'ip', null, null).k, 0);
});

test.run();
