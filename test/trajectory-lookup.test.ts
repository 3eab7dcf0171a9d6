// The native trajectory lookup against a float64 TypeScript reference: exact
// top-k (batched, dimensions not a multiple of the SIMD width), least-squares
// weights, the fused weighted combination, IVF (all lists probed = exact; recall
// otherwise), the streaming search over a knowledge-base file, the CUDA twin
// (skipped without a GPU), and bad input as typed errors.
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { native } from '../src/native.js';
import { appendTrajectories, createKnowledgeBase, KnowledgeBase, type KbBinding } from '../src/trajectory/kb-file.js';
import { KeyIndex, lookupTrajectory, searchBase } from '../src/trajectory/lookup.js';
import { seededRandom, tempDir } from './helpers.js';

const n = native();
function code(fn: () => unknown): string | undefined {
  try { fn(); } catch (e) { return (e as { code?: string }).code; }
  return 'no error';
}
const rows = (rand: () => number, count: number, d: number) => Float32Array.from({ length: count * d }, () => rand() * 2 - 1);

// --- float64 reference ---------------------------------------------------------------------
function refTopK(keys: Float32Array, d: number, q: Float32Array, k: number): { index: number; d2: number }[] {
  const N = keys.length / d, all: { index: number; d2: number }[] = [];
  for (let i = 0; i < N; i++) {
    let s = 0;
    for (let t = 0; t < d; t++) { const u = keys[i * d + t]! - q[t]!; s += u * u; }
    all.push({ index: i, d2: s });
  }
  return all.sort((a, b) => a.d2 - b.d2 || a.index - b.index).slice(0, k);
}
/** Solves (K Kᵀ + λ·tr/k·I) w = K q by Gaussian elimination with partial pivoting, in float64. */
function refWeights(K: Float32Array, k: number, d: number, q: Float32Array, ridge: number): number[] {
  const G = Array.from({ length: k }, (_, i) => Array.from({ length: k }, (_, j) => { let s = 0; for (let t = 0; t < d; t++) s += K[i * d + t]! * K[j * d + t]!; return s; }));
  const b = Array.from({ length: k }, (_, i) => { let s = 0; for (let t = 0; t < d; t++) s += K[i * d + t]! * q[t]!; return s; });
  const tr = G.reduce((s, r, i) => s + r[i]!, 0) / k;
  for (let i = 0; i < k; i++) G[i]![i]! += ridge * tr;
  for (let c = 0; c < k; c++) {
    let p = c;
    for (let r = c + 1; r < k; r++) if (Math.abs(G[r]![c]!) > Math.abs(G[p]![c]!)) p = r;
    [G[c], G[p]] = [G[p]!, G[c]!];
    [b[c], b[p]] = [b[p]!, b[c]!];
    for (let r = c + 1; r < k; r++) {
      const f = G[r]![c]! / G[c]![c]!;
      for (let j = c; j < k; j++) G[r]![j]! -= f * G[c]![j]!;
      b[r]! -= f * b[c]!;
    }
  }
  const w = new Array<number>(k).fill(0);
  for (let i = k - 1; i >= 0; i--) {
    let s = b[i]!;
    for (let j = i + 1; j < k; j++) s -= G[i]![j]! * w[j]!;
    w[i] = s / G[i]![i]!;
  }
  return w;
}

test('exact top-k matches the float64 reference for a batch of queries (d = 37)', () => {
  const rand = seededRandom(11);
  const d = 37, N = 600, Q = 4, k = 9;
  const keys = rows(rand, N, d), queries = rows(rand, Q, d);
  const r = n.trajectoryTopK(keys, d, queries, k);
  for (let j = 0; j < Q; j++) {
    const ref = refTopK(keys, d, queries.subarray(j * d, (j + 1) * d), k);
    assert.equal([...r.indices.subarray(j * k, (j + 1) * k)], ref.map((x) => x.index), `query ${j}`);
    ref.forEach((x, m) => assert.ok(Math.abs(r.distances[j * k + m]! - x.d2) <= 1e-5 * x.d2, `distance ${j}/${m}`));
  }
});

test('least-squares weights match the reference; an exact combination is recovered with residual ~0', () => {
  const rand = seededRandom(12);
  const d = 50, k = 6;
  const K = rows(rand, k, d), q = rows(rand, 1, d);
  for (const ridge of [0, 1e-3]) {
    const r = n.trajectoryWeights(K, q, ridge);
    const ref = refWeights(K, k, d, q, ridge === 0 ? 1e-10 : ridge);
    ref.forEach((w, i) => assert.ok(Math.abs(r.weights[i]! - w) <= 1e-7 * Math.max(1, Math.abs(w)), `w[${i}] ridge ${ridge}: ${r.weights[i]} vs ${w}`));
    assert.ok(r.residual > 0.1 && r.residual < 1, 'a random query is not in the span of 6 keys');
  }
  const coeff = [0.5, -0.25, 0.1, 0.9, 0, 0.3];
  const q2 = new Float32Array(d);
  for (let t = 0; t < d; t++) q2[t] = coeff.reduce((s, c, i) => s + c * K[i * d + t]!, 0);
  const r2 = n.trajectoryWeights(K, q2, 0);
  coeff.forEach((c, i) => assert.ok(Math.abs(r2.weights[i]! - c) < 1e-5, `recovered w[${i}]`));
  assert.ok(r2.residual < 1e-6);
  // duplicated neighbours make the Gram matrix singular: the ridge keeps the solve defined
  const dup = new Float32Array(2 * d);
  dup.set(K.subarray(0, d), 0);
  dup.set(K.subarray(0, d), d);
  const r3 = n.trajectoryWeights(dup, K.subarray(0, d), 0);
  assert.ok(Math.abs(r3.weights[0]! + r3.weights[1]! - 1) < 1e-4);
});

test('the fused combination equals Σ wⱼ·Vⱼ in float64 (rounded once)', () => {
  const rand = seededRandom(13);
  const len = 70001, k = 5;
  const V = rows(rand, k, len);
  const w = Float64Array.from({ length: k }, () => rand() * 2 - 1);
  const out = new Float32Array(len);
  assert.ok(n.trajectoryCombine(V, w, out));
  for (let i = 0; i < len; i += 997) {
    let s = 0;
    for (let j = 0; j < k; j++) s += w[j]! * V[j * len + i]!;
    assert.is(out[i], Math.fround(s));
  }
  const big = V.slice();
  big[3] = 3e38;
  assert.is(n.trajectoryCombine(big, Float64Array.from([10, 0, 0, 0, 0]), out), false);
});

test('IVF: probing every list is exact; fewer lists trade recall (measured, not assumed)', () => {
  const rand = seededRandom(14);
  const d = 16, N = 3000, Q = 20, k = 10;
  // clustered keys, as latents of similar prompts are
  const centres = rows(rand, 30, d);
  const keys = new Float32Array(N * d);
  for (let i = 0; i < N; i++) for (let t = 0; t < d; t++) keys[i * d + t] = centres[(i % 30) * d + t]! + 0.3 * (rand() * 2 - 1);
  const queries = new Float32Array(Q * d);
  for (let j = 0; j < Q; j++) for (let t = 0; t < d; t++) queries[j * d + t] = centres[(j % 30) * d + t]! + 0.3 * (rand() * 2 - 1);
  const ix = new KeyIndex(keys, d);
  ix.buildIvf(32, { iterations: 8, seed: 3 });
  const exact = ix.searchExact(queries, k);
  const all = ix.searchIvf(queries, k, 32);
  assert.equal([...all.indices], [...exact.indices]);
  let hit = 0;
  const approx = ix.searchIvf(queries, k, 4);
  for (let j = 0; j < Q; j++) {
    const truth = new Set(exact.indices.subarray(j * k, (j + 1) * k));
    for (const i of approx.indices.subarray(j * k, (j + 1) * k)) if (truth.has(i)) hit++;
  }
  const recall = hit / (Q * k);
  assert.ok(recall >= 0.8, `recall@10 with 4 of 32 lists: ${recall}`);
  assert.is(code(() => ix.searchIvf(queries, k, 33)), 'OUT_OF_RANGE');
});

const D = 4 * 2 * 3;
const BINDING: KbBinding = {
  modelHash: 'h', sampler: 'dpmpp-2m', scheduler: {}, steps: 10, guidance: { mode: 'cfg', scale: 7.5, negativePrompt: '' }, width: 8, height: 8, latentShape: [4, 2, 3],
};

test('lookup over a base file: streaming (small windows) = in-memory index; value = Σ w·V; history combined too', () => {
  const { dir, cleanup } = tempDir();
  try {
    const p = join(dir, 'kb');
    createKnowledgeBase(p, { ...BINDING, keyStep: 3, valueSteps: [6], history: true, embeddingDim: 0 });
    const rand = seededRandom(15);
    for (let c = 0; c < 4; c++) {
      appendTrajectories(p, Array.from({ length: 25 }, (_, i) => {
        const key = rows(rand, 1, D);
        // values depend linearly on keys, so the least-squares blend of values is the value of the blended key
        return { key, values: [key.map((v) => 2 * v + 0.5)], histories: [key.map((v) => -v)], seed: c * 25 + i, prompt: `p${c}-${i}` };
      }));
    }
    const kb = KnowledgeBase.open(p, { expect: BINDING });
    const query = rows(rand, 1, D);
    const streamed = searchBase(kb, query, 5, 10);
    const ix = KeyIndex.fromBase(kb);
    const mem = ix.searchExact(query, 5);
    assert.equal(streamed.map((s) => s.index), [...mem.indices]);
    const a = lookupTrajectory(kb, query, { k: 5, valueStep: 6 });
    const b = lookupTrajectory(kb, query, { k: 5, valueStep: 6, index: ix });
    assert.equal([...a.latent], [...b.latent]);
    // Σw·(2K+0.5) = 2·(Σw·K) + 0.5·Σw
    const K = new Float32Array(5 * D);
    a.neighbours.forEach((nb, j) => K.set(ix.keys.subarray(nb.index * D, (nb.index + 1) * D), j * D));
    const w = refWeights(K, 5, D, query, 1e-6);
    const sw = w.reduce((s, x) => s + x, 0);
    for (let t = 0; t < D; t++) {
      const proj = w.reduce((s, x, j) => s + x * K[j * D + t]!, 0);
      assert.ok(Math.abs(a.latent[t]! - (2 * proj + 0.5 * sw)) < 1e-4, `value ${t}`);
      assert.ok(Math.abs(a.history![t]! + proj) < 1e-4, `history ${t}`);
    }
    assert.ok(a.neighbours[0]!.distance <= a.neighbours[4]!.distance);
    // bad input
    assert.is(code(() => lookupTrajectory(kb, query, { k: 101, valueStep: 6 })), 'K_TOO_LARGE');
    assert.is(code(() => lookupTrajectory(kb, query, { k: 0, valueStep: 6 })), 'OUT_OF_RANGE');
    assert.is(code(() => lookupTrajectory(kb, query, { k: 3, valueStep: 7 })), 'KB_MISMATCH');
    assert.is(code(() => lookupTrajectory(kb, query.subarray(1), { k: 3, valueStep: 6 })), 'LENGTH_MISMATCH');
    const nanq = query.slice();
    nanq[0] = NaN;
    assert.is(code(() => lookupTrajectory(kb, nanq, { k: 3, valueStep: 6, index: ix })), 'NON_FINITE');
    kb.close();
    const e = join(dir, 'empty');
    createKnowledgeBase(e, { ...BINDING, keyStep: 3, valueSteps: [6], history: false, embeddingDim: 0 });
    const ekb = KnowledgeBase.open(e);
    assert.is(code(() => lookupTrajectory(ekb, query, { k: 1, valueStep: 6 })), 'KB_EMPTY');
    ekb.close();
  } finally {
    cleanup();
  }
});

test('the addon checks every argument of the lookup functions', () => {
  const f = new Float32Array(12);
  assert.is(code(() => n.trajectoryTopK([] as unknown as Float32Array, 3, f, 1)), 'INVALID_TYPE');
  assert.is(code(() => n.trajectoryTopK(f, 5, f, 1)), 'LENGTH_MISMATCH');
  assert.is(code(() => n.trajectoryTopK(f, 3, f, 5)), 'K_TOO_LARGE');
  assert.is(code(() => n.trajectoryTopK(f, 3, f, 0)), 'OUT_OF_RANGE');
  assert.is(code(() => n.trajectoryTopK(f, 3, Float32Array.of(1, NaN, 2), 1)), 'NON_FINITE');
  assert.is(code(() => n.trajectoryWeights(f, new Float32Array(5), 0)), 'LENGTH_MISMATCH');
  assert.is(code(() => n.trajectoryWeights(f, new Float32Array(3), -1)), 'OUT_OF_RANGE');
  assert.is(code(() => n.trajectoryCombine(f, new Float64Array(5), new Float32Array(3))), 'LENGTH_MISMATCH');
  assert.is(code(() => n.trajectoryCombine(f, Float64Array.of(1, 1, 1, NaN), new Float32Array(3))), 'NON_FINITE');
  assert.is(code(() => n.trajectoryCombine(f, new Float64Array(4), f.subarray(0, 3))), 'INVALID_VALUE');
  assert.is(code(() => n.ivfTrain(f, 3, 5, 1, 0)), 'OUT_OF_RANGE');
  const { centroids } = n.ivfTrain(f, 3, 2, 1, 0);
  assert.is(code(() => n.ivfSearch(f, new Int32Array(4), Float64Array.of(0, 5, 4), centroids, 3, f.subarray(0, 3), 1, 1)), 'INVALID_VALUE');
  assert.is(code(() => n.ivfSearch(f, new Int32Array(3), Float64Array.of(0, 2, 4), centroids, 3, f.subarray(0, 3), 1, 1)), 'LENGTH_MISMATCH');
});

const gpu = n.cuda.available();
test(`CUDA twin: the same neighbours and bit-identical distances${gpu ? '' : ' (skipped: no GPU)'}`, () => {
  if (!gpu) {
    assert.is(code(() => n.cuda.trajectoryTopK(new Float32Array(3), 3, new Float32Array(3), 1)), 'CUDA_UNAVAILABLE');
    return;
  }
  const rand = seededRandom(16);
  for (const [d, N] of [[1024, 10000], [37, 513]] as const) {
    const keys = rows(rand, N, d), queries = rows(rand, 3, d);
    const c = n.trajectoryTopK(keys, d, queries, 8), g = n.cuda.trajectoryTopK(keys, d, queries, 8);
    assert.equal([...g.indices], [...c.indices]);
    assert.equal([...g.distances], [...c.distances]);
  }
});

test.run();
