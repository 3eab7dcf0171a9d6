/**
 * Gathering the references of one request: the query vector, the user's
 * pinned references (stored ids and per-request uploads, which go through the
 * store's decode-check-embed gate but are never stored), and the nearest
 * stored images that fill the remaining places.
 */
import { RagdiffError, rangeError } from '../errors.js';
import type { NormalizedRetrieval } from './options.js';
import type { ReferenceSource } from './types.js';

/** A reference before it is used: where it came from, how well it matches, and its embedding. */
export interface Candidate {
  kind: 'stored' | 'upload';
  id?: string;
  sha256: string;
  score: number;
  pinned: boolean;
  source: string;
  licence: string;
  attribution: string;
  name: string;
  tags: string[];
  /** 64-bit perceptual hash (16 hex digits) when known: stored images and uploads. */
  phash?: string;
  /** Uploads: the hashes of the eight orientations (identity first). */
  orientedHashes?: readonly string[];
  /** L2-normalised, the store's width. */
  embedding: Float32Array;
  /** The encoded image (stored bytes are read only when a mode needs pixels). */
  bytes(): Uint8Array;
}

export interface Gathered {
  queryVector: Float32Array;
  pinned: Candidate[];
  retrieved: Candidate[];
  timings: { queryMs: number; searchMs: number; uploadsMs: number };
}

/** Cosine of two L2-normalised embeddings. */
export function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export async function queryVector(r: NormalizedRetrieval, store: ReferenceSource & { embedText(text: string): Promise<Float32Array> }): Promise<Float32Array> {
  const q = r.query;
  if ('text' in q) return store.embedText(q.text); // the store returns it L2-normalised
  if ('image' in q) return (await store.embedReference(q.image, { purpose: 'query' })).embedding;
  return q.embedding; // checked and normalised by normalizeRetrieval
}

/** The stored image `id` as a pinned reference; every state but active is a typed error. */
function pinnedStored(store: ReferenceSource, id: string, q: Float32Array): Candidate {
  const img = store.get(id);
  if (!img) throw new RagdiffError('REFERENCE_NOT_FOUND', `reference ${JSON.stringify(id)} is not in the store ${store.dir}`);
  if (img.status === 'removed') throw new RagdiffError('REFERENCE_REMOVED', `reference ${id} was removed from the store at its owner's request`);
  if (img.status === 'blocked') throw new RagdiffError('REFERENCE_BLOCKED', `reference ${id} is blocked: ${img.reason ?? 'by policy'}`);
  const embedding = store.embeddingOf(id);
  if (!embedding) throw new RagdiffError('REFERENCE_NOT_FOUND', `reference ${id} has no embedding (run \`ragdiff index rebuild --reembed\`)`);
  return {
    kind: 'stored', id, sha256: img.sha256, score: dot(q, embedding), pinned: true, source: img.source, licence: img.licence,
    attribution: img.attribution, name: img.name, tags: img.tags, phash: img.phash, embedding, bytes: () => store.readImage(id),
  };
}

export async function gatherReferences(
  r: NormalizedRetrieval,
  want: number,
  store: ReferenceSource & { embedText(text: string): Promise<Float32Array> },
): Promise<Gathered> {
  let t0 = performance.now();
  const q = await queryVector(r, store);
  const queryMs = performance.now() - t0;

  t0 = performance.now();
  const pinned: Candidate[] = [];
  for (const ref of r.references) {
    if ('id' in ref) {
      if (pinned.some((p) => p.id === ref.id)) throw rangeError('INVALID_VALUE', `reference ${ref.id} is given twice`);
      pinned.push(pinnedStored(store, ref.id, q));
      continue;
    }
    const e = await store.embedReference(ref.image, { purpose: 'reference' });
    pinned.push({
      kind: 'upload', sha256: e.sha256, score: dot(q, e.embedding), pinned: true, source: ref.source ?? 'upload', licence: ref.licence ?? 'unknown',
      attribution: ref.attribution ?? '', name: ref.name ?? `upload ${e.sha256.slice(0, 12)}`, tags: [], phash: e.phash, ...(e.orientedHashes ? { orientedHashes: e.orientedHashes } : {}), embedding: e.embedding, bytes: () => e.bytes ?? ref.image,
    });
  }
  const uploadsMs = performance.now() - t0;

  t0 = performance.now();
  const retrieved: Candidate[] = [];
  if (want > 0 && store.size > 0) {
    const excludeIds = [...(r.filters.excludeIds ?? []), ...pinned.filter((p) => p.id).map((p) => p.id!)];
    const available = store.size - pinned.filter((p) => p.kind === 'stored').length;
    if (available > 0) {
      const hits = await store.query({
        embedding: q, k: Math.min(want, available), sources: r.filters.sources, licences: r.filters.licences, tags: r.filters.tags,
        excludeIds, minScore: r.filters.minScore, withEmbeddings: true,
      });
      for (const h of hits) {
        retrieved.push({
          kind: 'stored', id: h.id, sha256: h.sha256, score: h.score, pinned: false, source: h.source, licence: h.licence,
          attribution: h.attribution, name: h.name, tags: h.tags, phash: h.phash, embedding: h.embedding!, bytes: () => store.readImage(h.id),
        });
      }
    }
  }
  const searchMs = performance.now() - t0;
  return { queryVector: q, pinned, retrieved, timings: { queryMs, searchMs, uploadsMs } };
}
