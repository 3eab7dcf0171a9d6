/**
 * The reference store port: what the pipeline, the CLI and the server need
 * from a store of reference images, whatever holds it. Two backends:
 *   - `ImageStore` (store.ts): SQLite + hnswlib files in one directory, the
 *     embedded default (one writer process, any number of readers);
 *   - `PgReferenceStore` (pg/store.ts): PostgreSQL + pgvector, shared by any
 *     number of processes on any number of machines.
 *
 * Every method may be awaited. Some of the local store's answers are
 * synchronous (it reads a local file); they are typed `Awaitable` here so
 * that `ImageStore` satisfies the port unchanged — callers of the port must
 * always `await` them. Requests that cross a process boundary name a store
 * by its `location` (a directory or a postgres:// URL), never by object.
 */
import type { ImageTextEncoder } from '../models/encoders.js';
import type { ImagePurpose } from './gate.js';
import type { ImageMeta } from './meta.js';
import type { ImageStatus } from './schema.js';
import type { AddInput, AddOptions, AddReport, QueryHit, QueryRequest, ReferenceEmbedding, StoreStats, StoredImage } from './types.js';

/** A value, or a promise of it: always `await` it. */
export type Awaitable<T> = T | Promise<T>;

export interface ListOptions {
  status?: ImageStatus;
  /** 1..1,000,000. Default 1000. */
  limit?: number;
  offset?: number;
}

export interface ReferenceStore {
  /** The encoder that embeds queries and ingested images (its id and width must match the store's). */
  readonly encoder: ImageTextEncoder;
  /** Embedding width of the store. */
  readonly width: number;
  /** True when opened for reading only: write calls throw STORE_READ_ONLY. */
  readonly readOnly: boolean;

  /** Text, image or embedding query with filters and k; results in descending score order. */
  query(request: QueryRequest): Promise<QueryHit[]>;
  /** Embeds a text query with the store's encoder (L2-normalised). */
  embedText(text: string): Promise<Float32Array>;
  /** Embeds image bytes for one request without storing them, through the store's gate and screens. */
  embedReference(bytes: Uint8Array, options?: { meta?: ImageMeta; purpose?: ImagePurpose }): Promise<ReferenceEmbedding>;
  /** The stored embedding of an active image, or undefined. */
  embeddingOf(id: string): Awaitable<Float32Array | undefined>;
  /** The record of an image of any status, or undefined. */
  get(id: string): Awaitable<StoredImage | undefined>;
  /** The bytes of an active or blocked image (IMAGE_NOT_FOUND otherwise). */
  readImage(id: string): Awaitable<Buffer>;
  /** Ingests images through the store's gate and screens; each item reported (see AddReport). */
  add(inputs: readonly AddInput[], meta?: ImageMeta, options?: AddOptions): Promise<AddReport>;
  /** Opt-out: the image is never returned again and its bytes and embedding are deleted. False when already removed. */
  remove(id: string, reason?: string): Promise<boolean>;
  /** Records, optionally of one status, in insertion order. */
  list(options?: ListOptions): Awaitable<StoredImage[]>;
  stats(): Awaitable<StoreStats>;
  close(): Promise<void>;
}
