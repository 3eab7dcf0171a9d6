/**
 * VectorIndex, the store's search core: every search path (exact, HNSW,
 * HNSW + post-filter, exact over a filtered set, HNSW with a filter callback)
 * agrees with exact search; removal, persistence and the hnswlib edge cases
 * (k larger than the index, deleted labels, re-adding) are handled. Exact search
 * (the native top-k) returns what the JavaScript search it replaced returned
 * (test/reference/topk.ts): the same labels, order, tie order and score bits.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_HNSW, VectorIndex, type Hit } from '../src/store/vectors.js';
import { referenceStoreExact } from './reference/topk.js';
import { seededRandom, tempDir } from './helpers.js';

const DIM = 16;
const N = 3000;
const rand = seededRandom(42);
function unit(): Float32Array {
  // low intrinsic dimension, like real embeddings: 4 latent factors + a little noise
  const z = [rand() - 0.5, rand() - 0.5, rand() - 0.5, rand() - 0.5];
  const v = Float32Array.from({ length: DIM }, (_, i) => z[i % 4]! * (1 + (i % 3)) + 0.05 * (rand() - 0.5));
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}
const data = Array.from({ length: N }, unit);
const queries = Array.from({ length: 50 }, unit);

function build(): VectorIndex {
  const index = new VectorIndex(DIM, { ...DEFAULT_HNSW, M: 12, efConstruction: 100 });
  data.forEach((v, l) => index.setVector(l, v));
  return index;
}

function recall(got: Hit[], truth: Hit[]): number {
  const ids = new Set(truth.map((h) => h.label));
  return got.filter((h) => ids.has(h.label)).length / truth.length;
}

test('exact search is exact and sorted', () => {
  const index = build();
  const q = queries[0]!;
  const hits = index.exact(q, 10);
  const brute = data.map((v, l) => ({ label: l, score: v.reduce((s, x, i) => s + x * q[i]!, 0) })).sort((a, b) => b.score - a.score).slice(0, 10);
  assert.equal(hits.map((h) => h.label), brute.map((h) => h.label));
  for (let i = 1; i < hits.length; i++) assert.ok(hits[i - 1]!.score >= hits[i]!.score);
});

test('exact search returns what the JavaScript exact search returned: labels, order (ties too), score bits', () => {
  const index = build();
  // ties: a few exact duplicates; removed and re-added labels; a label far beyond the others
  for (const [to, from] of [[3001, 17], [3002, 17], [40, 17], [3003, 5]] as const) index.setVector(to, data[from]!);
  for (const l of [5, 99, 1500]) index.remove(l);
  index.setVector(5000, data[0]!);
  const bound = index.labelBound;
  const matrix = new Float32Array(bound * DIM), mask = new Uint8Array(bound);
  for (let l = 0; l < bound; l++) {
    const v = index.vector(l);
    if (v) (matrix.set(v, l * DIM), (mask[l] = 1));
  }
  const sameHits = (got: Hit[], want: { row: number; score: number }[], what: string) => {
    assert.equal(got.map((h) => h.label), want.map((h) => h.row), what);
    got.forEach((h, i) => assert.ok(Object.is(h.score, want[i]!.score), `${what}: score ${i}`));
  };
  const labels = Int32Array.from({ length: 600 }, (_, i) => (i * 11) % 3004); // unsorted, holds removed labels
  const loose = [17, 3001, 40, 5, 1e9, -3, 2.5, 3002]; // removed, outside the index, not integers: skipped
  for (const q of [...queries.slice(0, 10), data[17]!]) {
    for (const k of [1, 10, 50, 4000]) {
      sameHits(index.exact(q, k), referenceStoreExact(matrix, DIM, mask, q, Math.min(k, bound)), `all, k ${k}`);
      sameHits(index.exact(q, k, labels), referenceStoreExact(matrix, DIM, mask, q, Math.min(k, labels.length), labels), `labels, k ${k}`);
    }
    sameHits(index.exact(q, 10, loose), referenceStoreExact(matrix, DIM, mask, q, 10, loose), 'loose labels');
  }
  const top = index.exact(data[17]!, 4);
  assert.equal(top.map((h) => h.label), [17, 40, 3001, 3002], 'equal scores keep label order');
  assert.equal(index.exact(queries[0]!, 0), []);
  assert.equal(index.exact(queries[0]!, 5, []), []);
  const code = (fn: () => unknown) => { try { fn(); } catch (e) { return (e as { code?: string }).code; } return 'no error'; };
  assert.is(code(() => index.exact(new Float32Array(DIM + 1), 5)), 'EMBEDDING_INVALID');
  assert.is(code(() => index.exact(Array.from(queries[0]!) as unknown as Float32Array, 5)), 'INVALID_TYPE');
  assert.is(code(() => index.exact(new Float32Array(DIM).fill(NaN), 5)), 'NON_FINITE');
  assert.is(code(() => index.exact(queries[0]!, -1)), 'OUT_OF_RANGE');
  assert.is(code(() => index.exact(queries[0]!, 1.5)), 'OUT_OF_RANGE');
});

test('every search path agrees with exact search (recall@10 ≥ 0.95) and respects the filter', () => {
  const index = build();
  const mask = new Uint8Array(index.labelBound);
  const labels: number[] = [];
  for (let l = 0; l < N; l++) if (l % 7 === 0) (mask[l] = 1), labels.push(l);
  const filter = { mask, labels: Int32Array.from(labels) };
  const paths: [string, (q: Float32Array) => Hit[]][] = [
    ['hnsw', (q) => index.search(q, 10, undefined, 0)],
    ['post-filter', (q) => index.search(q, 10, filter, 0)],
    ['exact filtered', (q) => index.search(q, 10, filter, 0, { postFilterMax: 0 })],
    ['filter callback', (q) => index.search(q, 10, filter, 0, { postFilterMax: 0, exactFilteredMax: 0 })],
  ];
  for (const [name, run] of paths) {
    let r = 0;
    for (const q of queries) {
      const got = run(q);
      assert.is(got.length, 10, name);
      if (name !== 'hnsw') assert.ok(got.every((h) => mask[h.label] === 1), `${name} respects the filter`);
      r += recall(got, name === 'hnsw' ? index.exact(q, 10) : index.exact(q, 10, filter.labels));
    }
    assert.ok(r / queries.length >= 0.95, `${name}: recall ${r / queries.length}`);
  }
});

test('removed vectors are never returned; re-adding restores them; k beyond the count is clamped', () => {
  const index = build();
  const q = data[5]!;
  assert.is(index.search(q, 1, undefined, 0)[0]!.label, 5);
  index.remove(5);
  index.remove(5); // twice is harmless
  assert.is(index.size, N - 1);
  for (const path of [0, 1_000_000]) assert.ok(index.search(q, 20, undefined, path).every((h) => h.label !== 5));
  index.setVector(5, data[5]!);
  assert.is(index.search(q, 1, undefined, 0)[0]!.label, 5);
  const small = new VectorIndex(DIM, DEFAULT_HNSW);
  small.setVector(3, data[0]!);
  small.setVector(9, data[1]!);
  small.remove(9);
  assert.equal(small.search(data[1]!, 10, undefined, 0).map((h) => h.label), [3]);
  const empty = new VectorIndex(DIM, DEFAULT_HNSW);
  assert.equal(empty.search(data[0]!, 5, undefined, 0), []);
});

test('save/load: the newest verified file is loaded; a corrupted file is skipped', () => {
  const t = tempDir();
  try {
    const index = build();
    index.remove(7);
    index.save(t.dir, 3);
    index.save(t.dir, 4);
    assert.equal(readdirSync(t.dir).sort(), ['vectors-4.hnsw', 'vectors-4.json']);
    const loaded = new VectorIndex(DIM, { ...DEFAULT_HNSW, M: 12, efConstruction: 100 });
    data.forEach((v, l) => l !== 7 && loaded.setVector(l, v, false));
    assert.is(loaded.load(t.dir), 4);
    loaded.reconcile([]);
    assert.equal(loaded.search(queries[1]!, 10, undefined, 0).map((h) => h.label), index.search(queries[1]!, 10, undefined, 0).map((h) => h.label));
    assert.ok(loaded.search(data[7]!, 10, undefined, 0).every((h) => h.label !== 7), 'deleted marks survive saving');
    // a damaged file fails its hash check and is not loaded
    writeFileSync(join(t.dir, 'vectors-4.hnsw'), Buffer.alloc(100, 1));
    const again = new VectorIndex(DIM, { ...DEFAULT_HNSW, M: 12, efConstruction: 100 });
    assert.is(again.load(t.dir), -1);
    // other parameters than the file's: not loaded either
    index.save(t.dir, 5);
    assert.is(new VectorIndex(DIM, { ...DEFAULT_HNSW, M: 16 }).load(t.dir), -1);
  } finally {
    t.cleanup();
  }
});

test.run();
