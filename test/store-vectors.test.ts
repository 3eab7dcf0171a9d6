/**
 * VectorIndex, the store's search core: every search path (exact, HNSW,
 * HNSW + post-filter, exact over a filtered set, HNSW with a filter callback)
 * agrees with exact search; removal, persistence and the hnswlib edge cases
 * (k larger than the index, deleted labels, re-adding) are handled.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEFAULT_HNSW, VectorIndex, type Hit } from '../src/store/vectors.js';
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
