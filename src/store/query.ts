/**
 * Query: checks a request, builds the attribute filter, searches the vector
 * index and turns hits into records — reading each hit's row afresh, so a
 * row changed since the vectors were loaded (removed, blocked) is never
 * returned.
 */
import { RagdiffError, rangeError, typeError } from '../errors.js';
import { checkStrings, type Catalogue } from './catalogue.js';
import { passesAtRetrieval, type ImageScreen } from './gate.js';
import type { ImageRow } from './schema.js';
import type { QueryHit, QueryRequest, StoredImage } from './types.js';
import type { VectorIndex } from './vectors.js';

export interface SearchContext {
  dir: string;
  catalogue: Catalogue;
  vectors: VectorIndex;
  exactSearchBelow: number;
  screen?: ImageScreen;
}

export type SearchOptions = Omit<QueryRequest, 'text' | 'image' | 'embedding'>;

export function toImage(row: ImageRow): StoredImage {
  return {
    id: row.id,
    sha256: row.sha256,
    phash: row.phash,
    source: row.source,
    licence: row.licence,
    attribution: row.attribution,
    name: row.name,
    tags: JSON.parse(row.tags) as string[],
    width: row.width,
    height: row.height,
    format: row.format,
    bytes: row.bytes,
    origin: row.origin,
    byReference: row.path !== null,
    addedAt: row.added_at,
    status: row.status,
    reason: row.reason,
    statusAt: row.status_at,
  };
}

/** Checks the non-vector part of a request against a store of `size` active images; returns k. */
export function checkQuery(r: SearchOptions, size: number, dir: string): number {
  if (r.k !== undefined) {
    if (typeof r.k !== 'number') throw typeError('INVALID_TYPE', `k must be an integer, got ${typeof r.k}`);
    if (!Number.isInteger(r.k) || r.k < 1) throw rangeError('OUT_OF_RANGE', `k must be a positive integer, got ${r.k}`);
  }
  if (size === 0) throw new RagdiffError('STORE_EMPTY', `the store ${dir} has no active images to search`);
  const k = r.k ?? Math.min(10, size);
  if (k > size) throw rangeError('OUT_OF_RANGE', `k must be in 1..${size} (the store's active images), got ${k}`);
  for (const f of ['sources', 'licences', 'tags', 'excludeTags', 'excludeIds'] as const) checkStrings(f, r[f]);
  if (r.minScore !== undefined && (typeof r.minScore !== 'number' || !Number.isFinite(r.minScore))) {
    throw typeError('INVALID_TYPE', `minScore must be a finite number, got ${String(r.minScore)}`);
  }
  if (r.withEmbeddings !== undefined && typeof r.withEmbeddings !== 'boolean') throw typeError('INVALID_TYPE', 'withEmbeddings must be a boolean');
  return k;
}

/** Search by a checked, L2-normalised embedding; `k` from {@link checkQuery}. */
export function searchVectors(ctx: SearchContext, vec: Float32Array, k: number, request: SearchOptions): QueryHit[] {
  const { vectors, catalogue } = ctx;
  const filter = catalogue.filterMask(request, vectors.labelBound, (l) => vectors.isActive(l));
  const total = filter ? filter.labels.length : vectors.size;
  if (total === 0) return [];
  const minScore = request.minScore ?? -Infinity;
  const out: QueryHit[] = [];
  let want = Math.min(k, total);
  for (;;) {
    out.length = 0;
    const hits = vectors.search(vec, want, filter, ctx.exactSearchBelow);
    let belowMin = false;
    for (const h of hits) {
      if (h.score < minScore) {
        belowMin = true;
        break;
      }
      const row = catalogue.rowByLabel(h.label);
      if (!row || row.status !== 'active') continue; // changed since the vectors were loaded: never return it
      const image = toImage(row);
      if (!passesAtRetrieval(ctx.screen, image)) continue;
      const hit: QueryHit = { ...image, score: h.score };
      if (request.withEmbeddings) hit.embedding = vectors.vector(h.label);
      out.push(hit);
      if (out.length === k) break;
    }
    // Screens at retrieval can drop results: look deeper until k are found or nothing is left.
    if (out.length >= k || belowMin || want >= total) break;
    want = Math.min(total, want * 2 + k);
  }
  return out;
}
