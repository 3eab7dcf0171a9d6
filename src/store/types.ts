/** The image store's public types (re-exported by store.ts and index.ts). */
import type { ImageTextEncoder } from '../models/encoders.js';
import type { FetchImageOptions } from '../net/fetch.js';
import type { ImageScreen } from './gate.js';
import type { ImageMeta } from './meta.js';
import type { ImageStatus } from './schema.js';
import type { HnswParams } from './vectors.js';

export type { ImageMeta } from './meta.js';
export type { ImageStatus } from './schema.js';

export interface ImageStoreOptions {
  /** Any encoder of the {@link ImageTextEncoder} shape (e.g. `loadClipEncoders('models/tiny-emoji')`). */
  encoder: ImageTextEncoder;
  /** Create the store when the directory holds none. Default true (false when readOnly). */
  create?: boolean;
  /**
   * Open as a reader: no writer lock, the database read-only, nothing on disk
   * written or deleted. Any number of readers may run beside the one writer;
   * each sees committed rows only and catches up with the writer's newer
   * commits at query time (or by `refresh()`). Write calls throw STORE_READ_ONLY.
   */
  readOnly?: boolean;
  /** Close the encoder (when it has close()) when the store closes: for an encoder made for this store alone, as openDemoStore does when none is given. Default false. */
  ownsEncoder?: boolean;
  /** HNSW parameters, fixed when the store is created; `efSearch` may be changed later and is persisted. */
  hnsw?: Partial<HnswParams>;
  /** Below this many candidate vectors, search is exact. Default 2048. */
  exactSearchBelow?: number;
  /** Near-duplicate thresholds (64-bit pHash distance, per-channel mean colour difference); false disables. Default { 6, 24 }. */
  nearDuplicates?: { maxDistance?: number; maxColourDifference?: number } | false;
  /** Largest decoded image accepted, width × height. Default 40 megapixels. */
  maxPixels?: number;
  /** Largest encoded input accepted, in bytes. Default 50 MiB. */
  maxInputBytes?: number;
  /** Images per encoder call. Default 64. */
  batchSize?: number;
  /** Images read and decoded at once. Default 4. */
  decodeConcurrency?: number;
  /** Encoder calls in flight at once during ingest (overlaps decode and embedding; encoders in worker threads can run them in parallel). Default 2. */
  embedInFlight?: number;
  /** Operator policy hooks (see gate.ts). */
  screen?: ImageScreen;
  /** When the store was embedded by another encoder: refuse ('error', default) or re-embed every image ('reembed'). */
  onEncoderMismatch?: 'error' | 'reembed';
  /** Save the index after this many unsaved vector changes (it is also saved at the end of each call and on close). Default 5000. */
  saveEvery?: number;
  /** Defaults for addUrl (allowHosts, limits, resolver, connect). */
  fetch?: FetchImageOptions;
  /** For crash tests only: called at named points of each write. */
  testHooks?: { checkpoint?(name: string): void };
}

/** An image's record (any status). */
export interface StoredImage {
  id: string;
  sha256: string;
  phash: string;
  source: string;
  licence: string;
  attribution: string;
  name: string;
  tags: string[];
  width: number;
  height: number;
  format: string;
  bytes: number;
  origin: string;
  /** True when the store references the file instead of holding a copy. */
  byReference: boolean;
  addedAt: string;
  status: ImageStatus;
  reason: string | null;
  statusAt: string | null;
}

export interface QueryHit extends StoredImage {
  /** Cosine similarity to the query, in [-1, 1]. */
  score: number;
  /** The stored (L2-normalised) embedding, when asked for with `withEmbeddings`. */
  embedding?: Float32Array;
}

export interface QueryRequest {
  /** Exactly one of text, image (encoded bytes, not stored) or embedding. */
  text?: string;
  image?: Uint8Array;
  embedding?: Float32Array | readonly number[];
  /** Results wanted: 1..size (a larger k is a RangeError). Default min(10, size). */
  k?: number;
  /** Only images from these sources / with these licences / with at least one of these tags. */
  sources?: readonly string[];
  licences?: readonly string[];
  tags?: readonly string[];
  /** Never images with any of these tags, or these ids. */
  excludeTags?: readonly string[];
  excludeIds?: readonly string[];
  /** Drop results scoring below this. */
  minScore?: number;
  withEmbeddings?: boolean;
}

export type AddInput =
  | string
  | Uint8Array
  | { path: string; meta?: ImageMeta }
  | { bytes: Uint8Array; origin?: string; meta?: ImageMeta };

/**
 * 'skipped': found while walking a directory but not read — a dangling
 * symlink, a FIFO/device/socket, a symlink loop, an unreadable entry — with
 * the reason and an error code.
 */
export type AddStatus = 'added' | 'duplicate' | 'near-duplicate' | 'removed' | 'blocked' | 'skipped' | 'failed';

export interface AddItemResult {
  /** The path, URL or `buffer[i]` the item came from. */
  input: string;
  status: AddStatus;
  /** The new image's id ('added', 'blocked'). */
  id?: string;
  /** The stored image this one duplicates. */
  duplicateOf?: string;
  /** pHash distance for near-duplicates. */
  distance?: number;
  /** Why the item was blocked, or matched a removed image. */
  reason?: string;
  error?: { code: string; message: string };
}

export interface AddReport {
  added: number;
  /** Duplicates, near-duplicates, removed, blocked and skipped. */
  skipped: number;
  failed: number;
  items: AddItemResult[];
}

export interface AddProgress {
  done: number;
  total: number;
  added: number;
  skipped: number;
  failed: number;
  item: AddItemResult;
}

export interface AddOptions {
  onProgress?: (p: AddProgress) => void;
  signal?: AbortSignal;
  /** Hold a copy of file bytes (default) or reference the file by its path. Buffers and URLs are always copied. */
  copy?: boolean;
  /** Descend into sub-directories. Default true. */
  recursive?: boolean;
}

export interface AddUrlOptions extends FetchImageOptions {
  onProgress?: (p: AddProgress) => void;
}

export interface RebuildOptions {
  /** Re-decode and re-embed every image from its bytes (after an encoder change). Default false. */
  reembed?: boolean;
  onProgress?: (p: { phase: 'embed' | 'index'; done: number; total: number }) => void;
}

export interface RebuildReport {
  indexed: number;
  reembedded: number;
  failed: { id: string; code: string; message: string }[];
}

export interface ReferenceEmbedding {
  embedding: Float32Array;
  sha256: string;
  phash: string;
  /** The hashes of the eight orientations of the square (identity first). */
  orientedHashes?: string[];
  /** The bytes screened: the input, or for an animation a PNG of its first frame (the only one screened). */
  bytes?: Uint8Array;
  width: number;
  height: number;
  format: string;
}

export interface StoreStats {
  dir: string;
  dim: number;
  encoderId: string;
  active: number;
  removed: number;
  blocked: number;
  /** Active images without a usable embedding (run rebuild with reembed). */
  unindexed: number;
  hnsw: HnswParams;
  seq: number;
}

/** File extensions picked up when a directory is added. */
export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp', '.gif', '.avif', '.heic', '.heif', '.tif', '.tiff'];

