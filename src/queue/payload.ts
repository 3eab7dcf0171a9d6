/**
 * What a queued job holds and returns, as JSON with no image bytes: pinned
 * uploads and generated PNGs are blob keys (see blob-dir.ts). A worker checks
 * every payload before running it: one edited in Redis, or from another
 * version, fails with JOB_INVALID instead of reaching the pipeline.
 */
import type { UrlReference } from '../sources/plain-url.js';
import { RagdiffError } from '../errors.js';
import type { GenerationRequest } from '../generator/index.js';
import type { RagResult, ReferenceChoice } from '../rag/index.js';
import type { BlobDir } from './blob-dir.js';

export const PAYLOAD_VERSION = 1;

type UploadMeta = { name?: string; source?: string; licence?: string; attribution?: string };
// URL references travel as they are (the worker fetches them through the same SSRF-checked door).
export type WireReference = { id: string } | ({ blob: string } & UploadMeta) | UrlReference;
export type WireQuery = string | { blob: string } | { embedding: number[] };

export interface JobPayload {
  v: typeof PAYLOAD_VERSION;
  /** The model the job asks for (GeneratorInfo.id). */
  model: string;
  request: Omit<GenerationRequest, 'retrieval'> & { retrieval?: Omit<NonNullable<GenerationRequest['retrieval']>, 'references' | 'query'> & { references?: WireReference[]; query?: WireQuery } };
}

type WireImage = Omit<RagResult['images'][number], 'png'> & { png: string };
export type WireResult = Omit<RagResult, 'images' | 'retrieved'> & { images: WireImage[]; retrieved?: { png: string; reference: NonNullable<RagResult['retrieved']>['reference'] } };

const isObject = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const invalid = (what: string) => new RagdiffError('JOB_INVALID', `malformed job payload: ${what}`);

/** The payload for `request`: uploads go to the blob directory first. */
export async function toPayload(model: string, request: GenerationRequest, blobs: BlobDir): Promise<JobPayload> {
  const { retrieval, ...rest } = request;
  if (!retrieval) return { v: PAYLOAD_VERSION, model, request: rest };
  const { references, query, ...r } = retrieval;
  const q: WireQuery | undefined = query === undefined || typeof query === 'string' ? query : query instanceof Float32Array ? { embedding: Array.from(query) } : { blob: await blobs.put(query) };
  const wire = references && (await Promise.all(references.map(async (c): Promise<WireReference> => {
    if ('id' in c) return { id: c.id };
    if ('url' in c) return c;
    const { image, ...meta } = c;
    return { blob: await blobs.put(image), ...meta };
  })));
  return { v: PAYLOAD_VERSION, model, request: { ...rest, retrieval: { ...r, ...(wire ? { references: wire } : {}), ...(q !== undefined ? { query: q } : {}) } } };
}

/** Checks the payload's shape (the pipeline checks the values) and reads pinned uploads back from the blob directory. */
export async function fromPayload(data: unknown, blobs: BlobDir): Promise<{ model: string; request: GenerationRequest }> {
  if (!isObject(data)) throw invalid(`expected an object, got ${data === null ? 'null' : typeof data}`);
  if (typeof data.unparseable === 'string') throw invalid(`not JSON: ${JSON.stringify(data.unparseable)}`);
  if (data.v !== PAYLOAD_VERSION) throw invalid(`version ${JSON.stringify(data.v)}, this worker reads ${PAYLOAD_VERSION}`);
  if (typeof data.model !== 'string' || data.model === '') throw invalid('model must be a non-empty string');
  const req = data.request;
  if (!isObject(req)) throw invalid('request must be an object');
  if (typeof req.prompt !== 'string') throw invalid('request.prompt must be a string');
  const { retrieval, ...rest } = req;
  if (retrieval === undefined) return { model: data.model, request: rest as GenerationRequest };
  if (!isObject(retrieval)) throw invalid('request.retrieval must be an object');
  const { references, query, ...r } = retrieval;
  const q = await queryOf(query, blobs);
  if (references !== undefined && !Array.isArray(references)) throw invalid('request.retrieval.references must be an array');
  const pinned = references && (await Promise.all(references.map(async (c: unknown, i): Promise<ReferenceChoice> => {
    if (isObject(c) && typeof c.id === 'string') return { id: c.id };
    if (isObject(c) && typeof c.blob === 'string') {
      const { blob, ...meta } = c;
      let image: Buffer;
      try {
        image = await blobs.get(blob);
      } catch (e) {
        if ((e as { code?: string }).code === 'INVALID_VALUE') throw invalid(`request.retrieval.references[${i}].blob is not a blob key`);
        throw e;
      }
      return { image, ...(meta as UploadMeta) };
    }
    if (isObject(c) && typeof c.url === 'string') return c as unknown as UrlReference; // the library checks its fields
    throw invalid(`request.retrieval.references[${i}] must be {id}, {blob} or {url}`);
  })));
  return { model: data.model, request: { ...rest, retrieval: { ...r, ...(pinned ? { references: pinned } : {}), ...(q !== undefined ? { query: q } : {}) } } as GenerationRequest };
}

async function queryOf(q: unknown, blobs: BlobDir): Promise<string | Uint8Array | Float32Array | undefined> {
  if (q === undefined || typeof q === 'string') return q;
  if (isObject(q) && Array.isArray(q.embedding) && q.embedding.every((x) => typeof x === 'number')) return Float32Array.from(q.embedding as number[]);
  if (isObject(q) && typeof q.blob === 'string') {
    try {
      return await blobs.get(q.blob);
    } catch (e) {
      if ((e as { code?: string }).code === 'INVALID_VALUE') throw invalid('request.retrieval.query.blob is not a blob key');
      throw e;
    }
  }
  throw invalid('request.retrieval.query must be a string, {blob} or {embedding}');
}

/** The result with every PNG moved to the blob directory. */
export async function toWireResult(r: RagResult, blobs: BlobDir): Promise<WireResult> {
  const images = await Promise.all(r.images.map(async (im) => ({ ...im, png: await blobs.put(im.png) })));
  const { retrieved, ...rest } = r;
  return { ...rest, images, ...(retrieved ? { retrieved: { ...retrieved, png: await blobs.put(retrieved.png) } } : {}) };
}

export async function fromWireResult(w: WireResult, blobs: BlobDir): Promise<RagResult> {
  const images = await Promise.all(w.images.map(async (im) => ({ ...im, png: await blobs.get(im.png) })));
  const { retrieved, ...rest } = w;
  return { ...rest, images, ...(retrieved ? { retrieved: { ...retrieved, png: await blobs.get(retrieved.png) } } : {}) };
}
