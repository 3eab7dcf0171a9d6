/**
 * The ReDi lookup over a knowledge base: the query (the current latent at the
 * key step) finds its k nearest keys, least-squares weights project it onto
 * their span (w = argmin ‖K_topᵀ w − q‖), and the jump target is Σ wⱼ·Vⱼ over
 * the neighbours' values (and, for DPM-Solver++, Σ wⱼ·Hⱼ over their histories).
 *
 * Exact search streams the base's key windows through the native top-k and
 * merges per window (memory: one window); `KeyIndex` keeps all keys in memory
 * for repeated queries, optionally with an IVF coarse quantiser (approximate:
 * only the nprobe nearest lists are scanned; recall measured in bench/eval).
 */
import { RagdiffError, rangeError, typeError } from '../errors.js';
import { native, type NativeTopK } from '../native.js';
import type { KnowledgeBase } from './kb-file.js';

export interface Neighbour {
  index: number;
  /** L2 distance between the query and this key. */
  distance: number;
}

export interface LookupResult {
  neighbours: Neighbour[];
  weights: Float64Array;
  /** ‖Kᵀw − q‖ / ‖q‖ of the least-squares fit. */
  residual: number;
  /** Σ wⱼ·Vⱼ at the value step. */
  latent: Float32Array;
  /** Σ wⱼ·Hⱼ (sampler history at the value step) when the base stores history, else null. */
  history: Float32Array | null;
  lookupMs: number;
}

function checkK(k: number, count: number): void {
  if (!Number.isInteger(k) || k < 1) throw rangeError('OUT_OF_RANGE', `k must be a positive integer, got ${k}`);
  if (count === 0) throw new RagdiffError('KB_EMPTY', 'the knowledge base holds no trajectories');
  if (k > count) throw rangeError('K_TOO_LARGE', `k = ${k} exceeds the ${count} trajectories in the knowledge base`);
}

/** In-memory keys with an optional IVF quantiser. */
export class KeyIndex {
  readonly dim: number;
  readonly count: number;
  #ivf: { centroids: Float32Array; listKeys: Float32Array; listIds: Int32Array; offsets: Float64Array; nlist: number } | null = null;

  constructor(readonly keys: Float32Array, dim: number) {
    if (!(keys instanceof Float32Array)) throw typeError('INVALID_TYPE', 'keys must be a Float32Array');
    if (!Number.isInteger(dim) || dim < 1 || keys.length % dim !== 0) throw rangeError('LENGTH_MISMATCH', `keys must hold whole rows of ${dim} floats`);
    this.dim = dim;
    this.count = keys.length / dim;
  }

  static fromBase(kb: KnowledgeBase): KeyIndex {
    const [c, h, w] = kb.header.latentShape;
    return new KeyIndex(kb.readAllKeys(), c * h * w);
  }

  get hasIvf(): boolean {
    return this.#ivf !== null;
  }

  /**
   * Trains the coarse quantiser (k-means, `iterations` Lloyd steps; on an evenly
   * strided `trainSample` of the keys when given, then every key is assigned to
   * its nearest centroid) and stores the keys list by list.
   */
  buildIvf(nlist: number, options: { iterations?: number; seed?: number; trainSample?: number } = {}): void {
    if (!Number.isInteger(nlist) || nlist < 1 || nlist > this.count) throw rangeError('OUT_OF_RANGE', `nlist must be an integer in 1..${this.count}, got ${nlist}`);
    const sample = options.trainSample;
    let centroids: Float32Array, assign: Int32Array;
    if (sample !== undefined && sample < this.count) {
      if (!Number.isInteger(sample) || sample < nlist) throw rangeError('OUT_OF_RANGE', `trainSample must be an integer ≥ nlist (${nlist}), got ${sample}`);
      const sub = new Float32Array(sample * this.dim);
      for (let j = 0; j < sample; j++) {
        const i = Math.floor((j * this.count) / sample);
        sub.set(this.keys.subarray(i * this.dim, (i + 1) * this.dim), j * this.dim);
      }
      centroids = native().ivfTrain(sub, this.dim, nlist, options.iterations ?? 10, options.seed ?? 0).centroids;
      assign = new Int32Array(this.count);
      const block = 8192; // bounded distance matrices: block × nlist floats
      for (let b = 0; b < this.count; b += block) {
        const e = Math.min(this.count, b + block);
        assign.set(native().trajectoryTopK(centroids, this.dim, this.keys.subarray(b * this.dim, e * this.dim), 1).indices, b);
      }
    } else {
      ({ centroids, assign } = native().ivfTrain(this.keys, this.dim, nlist, options.iterations ?? 10, options.seed ?? 0));
    }
    const counts = new Float64Array(nlist + 1);
    for (const a of assign) counts[a + 1]!++;
    for (let c = 0; c < nlist; c++) counts[c + 1]! += counts[c]!;
    const fill = counts.slice(0, nlist);
    const listKeys = new Float32Array(this.keys.length);
    const listIds = new Int32Array(this.count);
    for (let i = 0; i < this.count; i++) {
      const at = fill[assign[i]!]!++;
      listIds[at] = i;
      listKeys.set(this.keys.subarray(i * this.dim, (i + 1) * this.dim), at * this.dim);
    }
    this.#ivf = { centroids, listKeys, listIds, offsets: counts, nlist };
  }

  /** Exact top-k for a batch of queries (q × dim). */
  searchExact(queries: Float32Array, k: number): NativeTopK {
    checkK(k, this.count);
    return native().trajectoryTopK(this.keys, this.dim, queries, k);
  }

  /** Approximate top-k through the IVF lists (buildIvf first). */
  searchIvf(queries: Float32Array, k: number, nprobe: number): NativeTopK {
    checkK(k, this.count);
    const ivf = this.#ivf;
    if (ivf === null) throw new RagdiffError('INVALID_STATE', 'call buildIvf(nlist) before searchIvf');
    if (!Number.isInteger(nprobe) || nprobe < 1 || nprobe > ivf.nlist) throw rangeError('OUT_OF_RANGE', `nprobe must be an integer in 1..${ivf.nlist}, got ${nprobe}`);
    return native().ivfSearch(ivf.listKeys, ivf.listIds, ivf.offsets, ivf.centroids, this.dim, queries, k, nprobe);
  }
}

/** Exact top-k over a base, one key window at a time (never all keys in memory); neighbours carry their keys. */
export function searchBase(kb: KnowledgeBase, query: Float32Array, k: number, windowRecords = 65536): (Neighbour & { key: Float32Array })[] {
  checkK(k, kb.count);
  const [c, h, w] = kb.header.latentShape;
  const dim = c * h * w;
  if (!(query instanceof Float32Array) || query.length !== dim) throw rangeError('LENGTH_MISMATCH', `the query must be a Float32Array of ${dim} floats (the base's latent shape)`);
  let best: { index: number; d2: number; key: Float32Array }[] = [];
  for (const win of kb.keyWindows(windowRecords)) {
    const kk = Math.min(k, win.count);
    const r = native().trajectoryTopK(win.keys, dim, query, kk);
    for (let j = 0; j < kk; j++) {
      const row = r.indices[j]!;
      best.push({ index: win.first + row, d2: r.distances[j]!, key: win.keys.slice(row * dim, (row + 1) * dim) });
    }
    best.sort((a, b) => a.d2 - b.d2 || a.index - b.index);
    best = best.slice(0, k);
  }
  return best.map((b) => ({ index: b.index, distance: Math.sqrt(b.d2), key: b.key }));
}

export interface LookupOptions {
  k: number;
  valueStep: number;
  /** Relative ridge of the least-squares solve (default 1e-6 · mean Gram diagonal). */
  ridge?: number;
  /** Use this in-memory index instead of streaming the base's keys. */
  index?: KeyIndex;
  /** With an index that has IVF lists: scan this many (approximate). */
  nprobe?: number;
}

/** The ReDi jump target for one query. */
export function lookupTrajectory(kb: KnowledgeBase, query: Float32Array, o: LookupOptions): LookupResult {
  const t0 = performance.now();
  const [c, h, w] = kb.header.latentShape;
  const dim = c * h * w;
  if (!(query instanceof Float32Array) || query.length !== dim) throw rangeError('LENGTH_MISMATCH', `the query must be a Float32Array of ${dim} floats (the base's latent shape)`);
  kb.valueSlot(o.valueStep);
  let found: (Neighbour & { key: Float32Array })[];
  if (o.index) {
    const ix = o.index;
    const r = o.nprobe !== undefined && ix.hasIvf ? ix.searchIvf(query, o.k, o.nprobe) : ix.searchExact(query, o.k);
    found = [];
    for (let j = 0; j < o.k; j++) {
      const i = r.indices[j]!;
      if (i >= 0) found.push({ index: i, distance: Math.sqrt(r.distances[j]!), key: ix.keys.subarray(i * dim, (i + 1) * dim) });
    }
  } else {
    found = searchBase(kb, query, o.k);
  }
  const neighbours: Neighbour[] = found.map((f) => ({ index: f.index, distance: f.distance }));
  const K = new Float32Array(found.length * dim);
  const values = new Float32Array(found.length * dim);
  const hist = kb.header.history ? new Float32Array(found.length * dim) : null;
  found.forEach((nb, j) => {
    K.set(nb.key, j * dim);
    const v = kb.readValue(nb.index, o.valueStep);
    values.set(v.latent, j * dim);
    if (hist && v.history) hist.set(v.history, j * dim);
  });
  const { weights, residual } = native().trajectoryWeights(K, query, o.ridge ?? 1e-6);
  const latent = new Float32Array(dim);
  if (!native().trajectoryCombine(values, weights, latent)) throw rangeError('NON_FINITE', 'the combined value is not finite');
  let history: Float32Array | null = null;
  if (hist) {
    history = new Float32Array(dim);
    if (!native().trajectoryCombine(hist, weights, history)) throw rangeError('NON_FINITE', 'the combined history is not finite');
  }
  return { neighbours, weights, residual, latent, history, lookupMs: performance.now() - t0 };
}
