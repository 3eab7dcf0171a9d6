/**
 * The vector index: hnswlib-node (HNSW, cosine) for approximate search, plus a
 * dense copy of every active vector for exact search over small or heavily
 * filtered sets (the native top-k the trajectory lookup uses too) and for
 * returning neighbour embeddings.
 *
 * hnswlib-node's sharp edges are handled here and nowhere else:
 * - it takes `number[]`, not Float32Array;
 * - add, search and resize are not safe concurrently — every call here is
 *   synchronous on the calling thread and must stay so;
 * - `ef` is not saved with the index: parameters live in the store's metadata;
 * - a filter callback that throws aborts the process: the one used here only
 *   reads a typed array and is wrapped anyway;
 * - it throws when k exceeds what it can return: k is clamped and a short or
 *   failed answer falls back to exact search.
 *
 * Files are written as `vectors-<seq>.hnsw` + `vectors-<seq>.json` (size and
 * SHA-256 of the index file, parameters), each through a temporary name and a
 * rename; the newest pair that verifies is loaded.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import hnswlib from 'hnswlib-node';
import { RagdiffError, rangeError, typeError } from '../errors.js';
import { native } from '../native.js';

export interface HnswParams {
  /** Graph degree. Default 16. */
  M: number;
  /** Build-time candidate list. Default 200. */
  efConstruction: number;
  /** Query-time candidate list. Default 64. */
  efSearch: number;
  /** Seed of the level generator. Default 100. */
  seed: number;
}

export const DEFAULT_HNSW: HnswParams = { M: 16, efConstruction: 200, efSearch: 64, seed: 100 };

export interface Hit {
  label: number;
  score: number;
}

interface Sidecar {
  seq: number;
  dim: number;
  size: number;
  sha256: string;
  params: HnswParams;
  count: number;
}

function fileHash(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

/** The labels as row indices for the native top-k: those outside 0..bound-1 (or not integers) are dropped, as they name no vector. */
function labelSubset(labels: ArrayLike<number>, bound: number): Int32Array {
  let inRange = true;
  for (let j = 0; j < labels.length && inRange; j++) {
    const l = labels[j]!;
    inRange = Number.isInteger(l) && l >= 0 && l < bound;
  }
  if (inRange) return labels instanceof Int32Array ? labels : Int32Array.from(labels);
  const kept: number[] = [];
  for (let j = 0; j < labels.length; j++) {
    const l = labels[j]!;
    if (Number.isInteger(l) && l >= 0 && l < bound) kept.push(l);
  }
  return Int32Array.from(kept);
}

export class VectorIndex {
  private hnsw: hnswlib.HierarchicalNSW;
  private capacity: number;
  /** Dense copy of vectors, row = label. */
  private matrix: Float32Array;
  /** 1 where the label is an active vector. */
  private activeMask: Uint8Array;
  private activeCount = 0;
  /** Labels present in the HNSW graph (active or marked deleted). */
  private inGraph: Uint8Array;

  constructor(readonly dim: number, readonly params: HnswParams, capacity = 1024) {
    this.capacity = Math.max(16, capacity);
    this.hnsw = new hnswlib.HierarchicalNSW('cosine', dim);
    this.hnsw.initIndex(this.capacity, params.M, params.efConstruction, params.seed);
    this.hnsw.setEf(params.efSearch);
    this.matrix = new Float32Array(1024 * dim);
    this.activeMask = new Uint8Array(1024);
    this.inGraph = new Uint8Array(1024);
  }

  get size(): number {
    return this.activeCount;
  }

  /** One past the largest label seen (the length of per-label arrays). */
  get labelBound(): number {
    return this.activeMask.length;
  }

  isActive(label: number): boolean {
    return this.activeMask[label] === 1;
  }

  private ensureLabel(label: number): void {
    if (label < this.activeMask.length) return;
    let n = this.activeMask.length;
    while (n <= label) n *= 2;
    const m = new Float32Array(n * this.dim);
    m.set(this.matrix);
    this.matrix = m;
    const a = new Uint8Array(n);
    a.set(this.activeMask);
    this.activeMask = a;
    const g = new Uint8Array(n);
    g.set(this.inGraph);
    this.inGraph = g;
  }

  /** Keeps the vector for exact search; `graph` false defers the HNSW insert (bulk builds). */
  setVector(label: number, v: Float32Array, graph = true): void {
    if (v.length !== this.dim) throw new RagdiffError('EMBEDDING_INVALID', `embedding has ${v.length} values, the store holds ${this.dim}`);
    this.ensureLabel(label);
    this.matrix.set(v, label * this.dim);
    if (this.activeMask[label] !== 1) this.activeCount++;
    this.activeMask[label] = 1;
    if (graph) this.graphAdd(label);
  }

  private graphAdd(label: number): void {
    if (this.hnsw.getCurrentCount() >= this.capacity) {
      this.capacity *= 2;
      this.hnsw.resizeIndex(this.capacity);
    }
    // Re-adding a label already in the graph updates it and clears its deleted mark.
    this.hnsw.addPoint(Array.from(this.matrix.subarray(label * this.dim, (label + 1) * this.dim)), label);
    this.inGraph[label] = 1;
  }

  /** Drops a vector from search results (HNSW mark-delete; the graph keeps the node). */
  remove(label: number): void {
    if (label >= this.activeMask.length) return;
    if (this.activeMask[label] === 1) this.activeCount--;
    this.activeMask[label] = 0;
    this.matrix.fill(0, label * this.dim, (label + 1) * this.dim);
    if (this.inGraph[label] === 1) {
      try {
        this.hnsw.markDelete(label);
      } catch {
        // already marked (e.g. replaying a change the saved file already had)
      }
    }
  }

  vector(label: number): Float32Array | undefined {
    if (!this.isActive(label)) return undefined;
    return this.matrix.slice(label * this.dim, (label + 1) * this.dim);
  }

  /** Builds the graph from the dense copy (after bulk setVector(…, false)). */
  buildGraph(onProgress?: (done: number, total: number) => void): void {
    const labels: number[] = [];
    for (let l = 0; l < this.activeMask.length; l++) if (this.activeMask[l] === 1 && this.inGraph[l] !== 1) labels.push(l);
    const needed = this.hnsw.getCurrentCount() + labels.length;
    if (needed > this.capacity) {
      this.capacity = Math.max(needed, this.capacity * 2);
      this.hnsw.resizeIndex(this.capacity);
    }
    labels.forEach((l, i) => {
      this.graphAdd(l);
      if (onProgress && (i % 1000 === 999 || i === labels.length - 1)) onProgress(i + 1, labels.length);
    });
  }

  /**
   * Exact cosine search over the given labels (or all active ones): the shared
   * native top-k (native/core/topk.h, inner product of the normalised vectors in
   * double, the order of the JavaScript loop it replaced, kept as
   * test/reference/topk.ts). Best first; equal scores keep label order
   * (the order of `labels` when given). Labels that are not active vectors —
   * removed, never set, outside the index — are skipped.
   */
  exact(query: Float32Array, k: number, labels?: ArrayLike<number>): Hit[] {
    if (!(query instanceof Float32Array)) throw typeError('INVALID_TYPE', 'the query must be a Float32Array');
    if (query.length !== this.dim) throw new RagdiffError('EMBEDDING_INVALID', `the query has ${query.length} values, the store holds ${this.dim}`);
    for (let i = 0; i < query.length; i++) {
      if (!Number.isFinite(query[i]!)) throw rangeError('NON_FINITE', `query[${i}] is ${query[i]}; a query must be finite`);
    }
    if (!Number.isInteger(k) || k < 0) throw rangeError('OUT_OF_RANGE', `k must be a non-negative integer, got ${k}`);
    const bound = this.activeMask.length;
    const subset = labels === undefined ? null : labelSubset(labels, bound);
    const kk = Math.min(k, subset ? subset.length : bound);
    if (kk === 0) return [];
    const r = native().topkExact(this.matrix, this.dim, query, kk, 'ip', subset, this.activeMask);
    const out: Hit[] = [];
    for (let p = 0; p < r.k; p++) out.push({ label: r.indices[p]!, score: r.scores[p]! });
    return out;
  }

  /**
   * Approximate search; `allowed` (per-label mask) restricts results. Returns
   * undefined when HNSW could not produce min(k, candidates) results, so the
   * caller can fall back to exact search.
   */
  approximate(query: Float32Array, k: number, ef: number, allowed?: Uint8Array): Hit[] | undefined {
    const q = Array.from(query);
    const mask = this.activeMask;
    // Never throws: a throwing filter would abort the process.
    const filter = allowed
      ? (label: number): boolean => {
          try {
            return allowed[label] === 1 && mask[label] === 1;
          } catch {
            return false;
          }
        }
      : undefined;
    const kk = Math.min(k, this.hnsw.getCurrentCount());
    if (kk < 1) return [];
    this.hnsw.setEf(Math.max(ef, kk));
    let res: { distances: number[]; neighbors: number[] };
    try {
      res = filter ? this.hnsw.searchKnn(q, kk, filter) : this.hnsw.searchKnn(q, kk);
    } catch {
      return undefined;
    } finally {
      this.hnsw.setEf(this.params.efSearch);
    }
    const hits: Hit[] = [];
    for (let i = 0; i < res.neighbors.length; i++) {
      const label = res.neighbors[i]!;
      if (mask[label] === 1) hits.push({ label, score: 1 - res.distances[i]! });
    }
    return hits.sort((a, b) => b.score - a.score);
  }

  /**
   * The store's search strategy:
   * - at most `exactBelow` candidates: exact search;
   * - unfiltered: HNSW (ef = max(efSearch, k));
   * - filtered: HNSW for enough unfiltered neighbours that k of them should
   *   pass (2k / selectivity, up to 1024), filtered afterwards — no per-node
   *   callback into JS; when the filter passes too few for that, exact search
   *   over the filtered set (up to 20k), else HNSW with the filter callback and
   *   a deeper ef;
   * - any short HNSW answer falls back to exact search.
   */
  search(
    query: Float32Array,
    want: number,
    filter: { mask: Uint8Array; labels: Int32Array } | undefined,
    exactBelow: number,
    limits: { postFilterMax?: number; exactFilteredMax?: number } = {},
  ): Hit[] {
    const total = filter ? filter.labels.length : this.size;
    if (total === 0) return [];
    const k = Math.min(want, total);
    if (total <= exactBelow) return this.exact(query, k, filter?.labels);
    if (!filter) {
      const hits = this.approximate(query, k, Math.max(this.params.efSearch, k));
      return hits && hits.length >= k ? hits : this.exact(query, k);
    }
    const selectivity = total / this.size;
    const wide = Math.ceil((2 * k) / selectivity) + 10;
    if (wide <= (limits.postFilterMax ?? 1024)) {
      const hits = this.approximate(query, Math.min(wide, this.size), Math.max(this.params.efSearch, wide));
      const passed = hits?.filter((h) => filter.mask[h.label] === 1);
      if (passed && passed.length >= k) return passed.slice(0, k);
    }
    if (total <= (limits.exactFilteredMax ?? 20_000)) return this.exact(query, k, filter.labels);
    const ef = Math.min(total, Math.ceil(Math.max(this.params.efSearch, 2 * k) / Math.sqrt(selectivity)));
    const hits = this.approximate(query, k, ef, filter.mask);
    return hits && hits.length >= k ? hits : this.exact(query, k, filter.labels);
  }

  /** Writes the graph for change sequence `seq`, atomically; removes older files. */
  save(dir: string, seq: number, onWritten?: (stage: string) => void): void {
    mkdirSync(dir, { recursive: true });
    const base = `vectors-${seq}`;
    const nonce = randomBytes(4).toString('hex');
    const tmpIndex = join(dir, `${base}.hnsw.${nonce}.tmp`);
    this.hnsw.writeIndexSync(tmpIndex);
    onWritten?.('index-written');
    const sidecar: Sidecar = {
      seq,
      dim: this.dim,
      size: statSync(tmpIndex).size,
      sha256: fileHash(tmpIndex),
      params: this.params,
      count: this.hnsw.getCurrentCount(),
    };
    renameSync(tmpIndex, join(dir, `${base}.hnsw`));
    onWritten?.('index-renamed');
    const tmpJson = join(dir, `${base}.json.${nonce}.tmp`);
    writeFileSync(tmpJson, JSON.stringify(sidecar, null, 1));
    renameSync(tmpJson, join(dir, `${base}.json`));
    for (const f of readdirSync(dir)) {
      const m = /^vectors-(\d+)\.(hnsw|json)$/.exec(f);
      if ((m && Number(m[1]) !== seq) || f.endsWith('.tmp')) rmSync(join(dir, f), { force: true });
    }
  }

  /**
   * Loads the newest saved graph that verifies (size, hash, width, parameters).
   * Returns the change sequence it reflects, or -1 when none could be loaded
   * (the caller then builds the graph from the vectors it has).
   */
  load(dir: string): number {
    // A writer may replace the files while they are read (it writes the new pair, then deletes the old):
    // when no listed file loads, list again.
    for (let attempt = 0; attempt < 3; attempt++) {
      const seq = this.loadOnce(dir);
      if (seq >= 0) return seq;
    }
    return -1;
  }

  private loadOnce(dir: string): number {
    if (!existsSync(dir)) return -1;
    const seqs = readdirSync(dir)
      .map((f) => /^vectors-(\d+)\.json$/.exec(f))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => Number(m[1]))
      .sort((a, b) => b - a);
    for (const seq of seqs) {
      try {
        const side = JSON.parse(readFileSync(join(dir, `vectors-${seq}.json`), 'utf8')) as Sidecar;
        const file = join(dir, `vectors-${seq}.hnsw`);
        if (side.seq !== seq || side.dim !== this.dim || !existsSync(file)) continue;
        const p = side.params;
        if (p.M !== this.params.M || p.efConstruction !== this.params.efConstruction || p.seed !== this.params.seed) continue;
        if (statSync(file).size !== side.size || fileHash(file) !== side.sha256) continue;
        const h = new hnswlib.HierarchicalNSW('cosine', this.dim);
        h.readIndexSync(file);
        if (h.getNumDimensions() !== this.dim) continue;
        this.hnsw = h;
        this.capacity = h.getMaxElements();
        this.hnsw.setEf(this.params.efSearch);
        this.inGraph.fill(0);
        for (const l of h.getIdsList()) {
          this.ensureLabel(l);
          this.inGraph[l] = 1;
        }
        return seq;
      } catch {
        // try an older file, else rebuild
      }
    }
    return -1;
  }

  /**
   * Brings the graph in line with the active set after loading an older file:
   * re-adds `changed` labels (their vectors may differ), adds active labels the
   * graph lacks and marks deleted those it has that are no longer active.
   * Returns how many labels it touched, so the caller knows the saved file is
   * behind (a graph missing rows must be saved again even when no row is newer
   * than the file, e.g. after a writer was killed between commit and save).
   */
  reconcile(changed: Iterable<number>): number {
    let touched = 0;
    for (const l of changed) {
      if (this.isActive(l) && this.inGraph[l] === 1) {
        this.graphAdd(l);
        touched++;
      }
    }
    for (let l = 0; l < this.activeMask.length; l++) {
      if (this.activeMask[l] === 1) {
        if (this.inGraph[l] !== 1) {
          this.graphAdd(l);
          touched++;
        }
      } else if (this.inGraph[l] === 1) {
        try {
          this.hnsw.markDelete(l);
          touched++;
        } catch {
          // already marked deleted in the saved file
        }
      }
    }
    return touched;
  }
}
