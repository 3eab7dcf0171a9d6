/**
 * ImageStore: reference images with provenance, embedded, indexed and persisted.
 *
 * Layout of a store directory:
 *   store.sqlite       metadata, status and embedding of every image ever offered (SQLite, WAL)
 *   blobs/ab/<sha256>  image bytes, content-addressed (unless added by reference)
 *   index/vectors-<seq>.hnsw + .json   the HNSW graph as of change <seq>
 *   LOCK               pid of the process that has the store open
 *
 * Consistency under a kill at any point: bytes are written (temp + rename)
 * before the row that references them is committed; the vector index is
 * derived from committed rows and replays every change newer than the file it
 * loaded; orphaned bytes are swept on open. So after a crash the store holds
 * exactly the committed images, each with its bytes and its vector.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, resolve } from 'node:path';
import type Database from 'better-sqlite3';
import { RagdiffError, rangeError, typeError } from '../errors.js';
import { DEFAULT_MAX_PIXELS } from '../image/decode.js';
import type { ImageTextEncoder } from '../models/encoders.js';
import { fetchImage, type FetchImageOptions } from '../net/fetch.js';
import { BlobStore } from './blobs.js';
import {
  decodeCandidate, embedCandidates, normaliseEmbedding, runScreen, DEFAULT_MAX_INPUT_BYTES,
  type DecodedCandidate, type ImageScreen, type ImagePurpose, type ScreenCandidate,
} from './gate.js';
import { acquireLock } from './lock.js';
import { mergeMeta, normaliseMeta, normaliseTags, type ImageMeta, type NormalisedMeta } from './meta.js';
import { HashTable, type PerceptualHash } from './phash.js';
import {
  blobToEmbedding, currentSeq, embeddingToBlob, getMeta, nextSeq, openDatabase, setMeta,
  type ImageRow, type ImageStatus,
} from './schema.js';
import { DEFAULT_HNSW, VectorIndex, type HnswParams } from './vectors.js';

export type { ImageMeta } from './meta.js';
export type { ImageStatus } from './schema.js';

export interface ImageStoreOptions {
  /** Any encoder of the {@link ImageTextEncoder} shape (e.g. `loadClipEncoders('models/tiny-emoji')`). */
  encoder: ImageTextEncoder;
  /** Create the store when the directory holds none. Default true. */
  create?: boolean;
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
  /** Images per encoder call. Default 32. */
  batchSize?: number;
  /** Images read and decoded at once. Default 4. */
  decodeConcurrency?: number;
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

export type AddStatus = 'added' | 'duplicate' | 'near-duplicate' | 'removed' | 'blocked' | 'failed';

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
  /** Duplicates, near-duplicates, removed and blocked. */
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

const DEFAULT_NEAR = { maxDistance: 6, maxColourDifference: 24 };

interface Item {
  input: string;
  meta: NormalisedMeta;
  /** Absolute path when the bytes stay where they are (by reference). */
  refPath?: string;
  load: () => Promise<Uint8Array>;
  /** Error found while listing (e.g. missing file). */
  error?: RagdiffError;
}

interface Known {
  label: number;
  id: string;
  status: ImageStatus;
  reason: string | null;
}

class Interner {
  private map = new Map<string, number>();
  code(s: string): number {
    let c = this.map.get(s);
    if (c === undefined) {
      c = this.map.size + 1;
      this.map.set(s, c);
    }
    return c;
  }
  find(s: string): number | undefined {
    return this.map.get(s);
  }
}

function now(): string {
  return new Date().toISOString();
}

function errorInfo(e: unknown): { code: string; message: string } {
  const err = e as { code?: unknown; message?: unknown };
  return { code: typeof err?.code === 'string' ? err.code : 'INTERNAL', message: String(err?.message ?? e) };
}

function checkStrings(name: string, v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw typeError('INVALID_TYPE', `${name} must be an array of strings, got ${v === null ? 'null' : typeof v}`);
  v.forEach((s, i) => {
    if (typeof s !== 'string') throw typeError('INVALID_TYPE', `${name}[${i}] must be a string, got ${s === null ? 'null' : typeof s}`);
  });
  return v as string[];
}

function intOption(name: string, v: unknown, min: number, max: number, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw rangeError('OUT_OF_RANGE', `${name} must be an integer in ${min}..${max}, got ${String(v)}`);
  }
  return v;
}

export class ImageStore extends EventEmitter {
  readonly dir: string;
  readonly encoder: ImageTextEncoder;
  private readonly db: Database.Database;
  private readonly blobs: BlobStore;
  private readonly indexDir: string;
  private vectors: VectorIndex;
  private readonly hnswParams: HnswParams;
  private readonly options: ImageStoreOptions;
  private readonly releaseLock: () => void;
  private dim: number;
  private encoderId: string;

  private bySha = new Map<string, Known>();
  private byId = new Map<string, number>();
  private byLabel = new Map<number, Known>();
  private hashes = new HashTable<number>();
  private sources = new Interner();
  private licences = new Interner();
  private tagCodes = new Interner();
  private sourceOf = new Int32Array(1024);
  private licenceOf = new Int32Array(1024);
  private tagsOf: (Int32Array | undefined)[] = [];

  private unsaved = 0;
  private reembedReport: RebuildReport | undefined;
  /** Active rows without a usable embedding (fixed by rebuild with reembed). */
  private unindexed = 0;
  private closed = false;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly stmt: {
    insert: Database.Statement;
    byLabel: Database.Statement;
    byId: Database.Statement;
    setStatus: Database.Statement;
  };

  private constructor(dir: string, options: ImageStoreOptions, db: Database.Database, releaseLock: () => void, params: HnswParams, dim: number, encoderId: string) {
    super();
    this.dir = dir;
    this.options = options;
    this.encoder = options.encoder;
    this.db = db;
    this.releaseLock = releaseLock;
    this.hnswParams = params;
    this.dim = dim;
    this.encoderId = encoderId;
    this.blobs = new BlobStore(join(dir, 'blobs'));
    this.indexDir = join(dir, 'index');
    this.vectors = new VectorIndex(dim, params);
    this.stmt = {
      insert: db.prepare(`INSERT INTO images (id, sha256, phash, colour, source, licence, attribution, name, tags, width, height, format, bytes, origin, path, added_at, status, reason, status_at, seq, embedding)
        VALUES (@id, @sha256, @phash, @colour, @source, @licence, @attribution, @name, @tags, @width, @height, @format, @bytes, @origin, @path, @added_at, @status, @reason, @status_at, @seq, @embedding)`),
      byLabel: db.prepare('SELECT * FROM images WHERE label = ?'),
      byId: db.prepare('SELECT * FROM images WHERE id = ?'),
      setStatus: db.prepare('UPDATE images SET status = ?, reason = ?, status_at = ?, seq = ? WHERE label = ?'),
    };
  }

  /** Opens (or creates) the store in `dir`. */
  static async open(dir: string, options: ImageStoreOptions): Promise<ImageStore> {
    if (typeof dir !== 'string' || dir.length === 0) throw typeError('INVALID_TYPE', 'store directory must be a non-empty string');
    if (typeof options !== 'object' || options === null) throw typeError('INVALID_TYPE', 'options must be an object with an encoder');
    const enc = options.encoder as ImageTextEncoder | undefined;
    if (!enc || typeof enc.embedImages !== 'function' || typeof enc.embedText !== 'function') {
      throw typeError('INVALID_TYPE', 'options.encoder must have embedImages(images) and embedText(texts)');
    }
    intOption('encoder.dim', enc.dim, 1, 65536, 0);
    intOption('exactSearchBelow', options.exactSearchBelow, 0, 10_000_000, 0);
    intOption('batchSize', options.batchSize, 1, 4096, 0);
    intOption('decodeConcurrency', options.decodeConcurrency, 1, 64, 0);
    intOption('saveEvery', options.saveEvery, 1, 100_000_000, 0);
    intOption('maxPixels', options.maxPixels, 1, 1_000_000_000, 0);
    intOption('maxInputBytes', options.maxInputBytes, 1, 2 ** 31, 0);
    if (options.nearDuplicates) {
      intOption('nearDuplicates.maxDistance', options.nearDuplicates.maxDistance, 0, 64, 0);
      intOption('nearDuplicates.maxColourDifference', options.nearDuplicates.maxColourDifference, 0, 255, 0);
    }
    if (options.onEncoderMismatch !== undefined && !['error', 'reembed'].includes(options.onEncoderMismatch)) {
      throw rangeError('INVALID_VALUE', `onEncoderMismatch must be "error" or "reembed", got ${JSON.stringify(options.onEncoderMismatch)}`);
    }
    const root = resolve(dir);
    const dbPath = join(root, 'store.sqlite');
    if (!existsSync(dbPath)) {
      if (options.create === false) throw new RagdiffError('STORE_NOT_FOUND', `no image store in ${root}`);
      mkdirSync(root, { recursive: true });
    }
    const release = acquireLock(join(root, 'LOCK'));
    let db: Database.Database | undefined;
    try {
      db = openDatabase(dbPath);
      const encoderId = enc.id ?? `anonymous-${enc.dim}`;
      let dim = Number(getMeta(db, 'dim') ?? NaN);
      let params: HnswParams;
      if (Number.isNaN(dim)) {
        params = { ...DEFAULT_HNSW, ...options.hnsw };
        intOption('hnsw.M', params.M, 2, 128, 0);
        intOption('hnsw.efConstruction', params.efConstruction, 1, 10_000, 0);
        intOption('hnsw.efSearch', params.efSearch, 1, 10_000, 0);
        intOption('hnsw.seed', params.seed, 0, 2 ** 31, 0);
        dim = enc.dim;
        const d = db;
        d.transaction(() => {
          setMeta(d, 'dim', String(dim));
          setMeta(d, 'encoder_id', encoderId);
          setMeta(d, 'space', 'cosine');
          setMeta(d, 'hnsw', JSON.stringify(params));
          setMeta(d, 'created_at', now());
        })();
      } else {
        params = { ...DEFAULT_HNSW, ...(JSON.parse(getMeta(db, 'hnsw') ?? '{}') as Partial<HnswParams>) };
        if (options.hnsw?.efSearch !== undefined && options.hnsw.efSearch !== params.efSearch) {
          params.efSearch = intOption('hnsw.efSearch', options.hnsw.efSearch, 1, 10_000, 0);
          setMeta(db, 'hnsw', JSON.stringify(params));
        }
      }
      const storedEncoder = getMeta(db, 'encoder_id') ?? encoderId;
      const mismatch = storedEncoder !== encoderId || dim !== enc.dim;
      if (mismatch && options.onEncoderMismatch !== 'reembed') {
        throw new RagdiffError(
          'ENCODER_MISMATCH',
          `the store in ${root} was embedded by ${storedEncoder} (width ${dim}); this encoder is ${encoderId} (width ${enc.dim}). ` +
            'Re-embed it with `ragdiff index rebuild --reembed` or open with onEncoderMismatch: "reembed"',
        );
      }
      const store = new ImageStore(root, options, db, release, params, dim, storedEncoder);
      store.loadState();
      if (mismatch) store.reembedReport = await store.rebuild({ reembed: true });
      return store;
    } catch (e) {
      db?.close();
      release();
      throw e;
    }
  }

  // ---------------------------------------------------------------- state

  private checkpoint(name: string): void {
    this.options.testHooks?.checkpoint?.(name);
  }

  private ensureLabel(label: number): void {
    if (label < this.sourceOf.length) return;
    let n = this.sourceOf.length;
    while (n <= label) n *= 2;
    const s = new Int32Array(n);
    s.set(this.sourceOf);
    this.sourceOf = s;
    const l = new Int32Array(n);
    l.set(this.licenceOf);
    this.licenceOf = l;
  }

  private remember(row: { label: number; id: string; sha256: string; phash: string; colour: number; source: string; licence: string; tags: string; status: ImageStatus; reason: string | null }): void {
    const known: Known = { label: row.label, id: row.id, status: row.status, reason: row.reason };
    this.bySha.set(row.sha256, known);
    this.byId.set(row.id, row.label);
    this.byLabel.set(row.label, known);
    this.hashes.add(row.label, { hash: row.phash, colour: row.colour });
    this.ensureLabel(row.label);
    this.sourceOf[row.label] = this.sources.code(row.source);
    this.licenceOf[row.label] = this.licences.code(row.licence);
    const tags = JSON.parse(row.tags) as string[];
    this.tagsOf[row.label] = tags.length ? Int32Array.from(tags, (t) => this.tagCodes.code(t)) : undefined;
  }

  /** Reads every row, loads (or builds) the vector index and replays changes it lacks; sweeps orphaned bytes. */
  private loadState(): void {
    const rows = this.db.prepare('SELECT label, id, sha256, phash, colour, source, licence, tags, status, reason, seq, path, embedding FROM images').iterate() as IterableIterator<ImageRow>;
    const keepSha = new Set<string>();
    const removedWithBytes: string[] = [];
    const rowSeq = new Map<number, number>();
    for (const row of rows) {
      this.remember(row);
      rowSeq.set(row.label, row.seq);
      if (row.status === 'active') {
        // An active row without a usable embedding stays unsearchable until `rebuild --reembed`.
        if (row.embedding && row.embedding.byteLength === this.dim * 4) this.vectors.setVector(row.label, blobToEmbedding(row.embedding, this.dim), false);
        else this.unindexed++;
      }
      if (row.path === null) {
        if (row.status === 'removed') removedWithBytes.push(row.sha256);
        else keepSha.add(row.sha256);
      }
    }
    const fileSeq = this.vectors.load(this.indexDir);
    if (fileSeq < 0) {
      this.vectors.buildGraph();
      if (this.vectors.size > 0) this.unsaved++;
    } else {
      const changed: number[] = [];
      for (const [label, seq] of rowSeq) if (seq > fileSeq) changed.push(label);
      this.vectors.reconcile(changed);
      if (changed.length) this.unsaved += changed.length;
    }
    // Bytes of removed images that a killed process did not get to delete, and bytes with no row.
    for (const sha of removedWithBytes) this.blobs.delete(sha);
    this.blobs.sweep((sha) => keepSha.has(sha));
    if (this.unsaved > 0) this.saveIndex();
  }

  private saveIndex(): void {
    this.vectors.save(this.indexDir, currentSeq(this.db), (stage) => this.checkpoint(`index-${stage}`));
    this.unsaved = 0;
  }

  private assertOpen(): void {
    if (this.closed) throw new RagdiffError('STORE_CLOSED', `the store ${this.dir} is closed`);
  }

  /** Runs writes one at a time (queries are not queued). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.assertOpen();
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** When open() re-embedded the store for a new encoder (onEncoderMismatch 'reembed'): what that did. */
  get reembeddedOnOpen(): RebuildReport | undefined {
    return this.reembedReport;
  }

  /** Number of active (searchable) images. */
  get size(): number {
    return this.vectors.size;
  }

  /** Embedding width of the store. */
  get width(): number {
    return this.dim;
  }

  stats(): StoreStats {
    this.assertOpen();
    const counts = { active: 0, removed: 0, blocked: 0 };
    for (const r of this.db.prepare('SELECT status, COUNT(*) AS n FROM images GROUP BY status').all() as { status: ImageStatus; n: number }[]) counts[r.status] = r.n;
    return { dir: this.dir, dim: this.dim, encoderId: this.encoderId, ...counts, unindexed: this.unindexed, hnsw: { ...this.hnswParams }, seq: currentSeq(this.db) };
  }

  private toImage(row: ImageRow): StoredImage {
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

  /** The record of an image of any status, or undefined. */
  get(id: string): StoredImage | undefined {
    this.assertOpen();
    if (typeof id !== 'string') throw typeError('INVALID_TYPE', `id must be a string, got ${typeof id}`);
    const row = this.stmt.byId.get(id) as ImageRow | undefined;
    return row ? this.toImage(row) : undefined;
  }

  /**
   * The stored embedding of an active image (e.g. a reference the user picked
   * by id), or undefined when the id is unknown or not active.
   */
  embeddingOf(id: string): Float32Array | undefined {
    this.assertOpen();
    if (typeof id !== 'string') throw typeError('INVALID_TYPE', `id must be a string, got ${typeof id}`);
    const label = this.byId.get(id);
    return label === undefined ? undefined : this.vectors.vector(label);
  }

  /** The stored bytes of an active or blocked image (throws IMAGE_NOT_FOUND otherwise). */
  readImage(id: string): Buffer {
    this.assertOpen();
    const row = this.stmt.byId.get(id) as ImageRow | undefined;
    if (!row || row.status === 'removed') throw new RagdiffError('IMAGE_NOT_FOUND', `no image with id ${JSON.stringify(id)}`);
    if (row.path === null) return this.blobs.read(row.sha256);
    let bytes: Buffer;
    try {
      bytes = readFileSync(row.path);
    } catch (e) {
      throw new RagdiffError('IMAGE_MISSING', `the file of image ${id} is gone: ${row.path}`, { cause: e });
    }
    // A referenced file is the caller's and may change: never hand out other bytes under this id.
    if (createHash('sha256').update(bytes).digest('hex') !== row.sha256) {
      throw new RagdiffError('IMAGE_CHANGED', `the file of image ${id} changed since it was added: ${row.path}`);
    }
    return bytes;
  }

  /** Lists records, optionally of one status. */
  list(options: { status?: ImageStatus; limit?: number; offset?: number } = {}): StoredImage[] {
    this.assertOpen();
    const limit = intOption('limit', options.limit, 1, 1_000_000, 1000);
    const offset = intOption('offset', options.offset, 0, Number.MAX_SAFE_INTEGER, 0);
    const rows = (options.status
      ? this.db.prepare('SELECT * FROM images WHERE status = ? ORDER BY label LIMIT ? OFFSET ?').all(options.status, limit, offset)
      : this.db.prepare('SELECT * FROM images ORDER BY label LIMIT ? OFFSET ?').all(limit, offset)) as ImageRow[];
    return rows.map((r) => this.toImage(r));
  }

  // ---------------------------------------------------------------- ingest

  private listInputs(inputs: readonly AddInput[], base: NormalisedMeta, copy: boolean, recursive: boolean): Item[] {
    const items: Item[] = [];
    const fileItem = (path: string, meta: NormalisedMeta): void => {
      const abs = resolve(path);
      let st;
      try {
        st = statSync(abs);
      } catch {
        items.push({ input: path, meta, load: async () => new Uint8Array(), error: new RagdiffError('FILE_NOT_FOUND', `no such file or directory: ${path}`) });
        return;
      }
      if (st.isDirectory()) {
        let names: string[];
        try {
          names = readdirSync(abs).sort();
        } catch (e) {
          items.push({ input: path, meta, load: async () => new Uint8Array(), error: new RagdiffError('FILE_UNREADABLE', `cannot list ${path}: ${(e as Error).message}`) });
          return;
        }
        for (const n of names) {
          if (n.startsWith('.')) continue;
          const child = join(abs, n);
          let cst;
          try {
            cst = statSync(child);
          } catch {
            continue;
          }
          if (cst.isDirectory()) {
            if (recursive) fileItem(child, meta);
          } else if (IMAGE_EXTENSIONS.includes(extname(n).toLowerCase())) fileItem(child, meta);
        }
        return;
      }
      if (!st.isFile()) {
        items.push({ input: path, meta, load: async () => new Uint8Array(), error: new RagdiffError('FILE_UNREADABLE', `not a regular file: ${path}`) });
        return;
      }
      const maxBytes = this.options.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES;
      items.push({
        input: path,
        meta,
        refPath: copy ? undefined : abs,
        load: async () => {
          if (st.size > maxBytes) throw new RagdiffError('IMAGE_TOO_LARGE', `${path} is ${st.size} bytes, over the limit of ${maxBytes}`);
          try {
            return new Uint8Array(readFileSync(abs));
          } catch (e) {
            throw new RagdiffError('FILE_UNREADABLE', `cannot read ${path}: ${(e as Error).message}`, { cause: e });
          }
        },
      });
    };
    inputs.forEach((input, i) => {
      if (typeof input === 'string') fileItem(input, base);
      else if (input instanceof Uint8Array) items.push({ input: `buffer[${i}]`, meta: base, load: async () => input });
      else if (input && typeof input === 'object' && 'bytes' in input) {
        const meta = mergeMeta(base, normaliseMeta(input.meta, `inputs[${i}].meta`));
        items.push({ input: typeof input.origin === 'string' ? input.origin : `buffer[${i}]`, meta, load: async () => input.bytes });
      } else if (input && typeof input === 'object' && 'path' in input) {
        fileItem(input.path, mergeMeta(base, normaliseMeta(input.meta, `inputs[${i}].meta`)));
      }
    });
    return items;
  }

  private validateInputs(inputs: unknown): asserts inputs is AddInput[] {
    if (!Array.isArray(inputs)) throw typeError('INVALID_TYPE', 'inputs must be an array of paths, Buffers or { path | bytes, meta } objects');
    inputs.forEach((input, i) => {
      if (typeof input === 'string') {
        if (input.length === 0) throw rangeError('INVALID_VALUE', `inputs[${i}] is an empty path`);
        return;
      }
      if (input instanceof Uint8Array) return;
      if (input && typeof input === 'object') {
        const o = input as Record<string, unknown>;
        if ('bytes' in o) {
          if (!(o.bytes instanceof Uint8Array)) throw typeError('INVALID_TYPE', `inputs[${i}].bytes must be a Buffer or Uint8Array`);
          if (o.origin !== undefined && typeof o.origin !== 'string') throw typeError('INVALID_TYPE', `inputs[${i}].origin must be a string`);
          normaliseMeta(o.meta, `inputs[${i}].meta`);
          return;
        }
        if (typeof o.path === 'string' && o.path.length > 0) {
          normaliseMeta(o.meta, `inputs[${i}].meta`);
          return;
        }
      }
      throw typeError('INVALID_TYPE', `inputs[${i}] must be a path, a Buffer or { path | bytes, meta }`);
    });
  }

  /**
   * Adds images from files, directories (image extensions, recursively),
   * Buffers or { path | bytes, meta } objects. Each item is reported: added,
   * duplicate (same bytes), near-duplicate (perceptual hash), removed (matches
   * an image removed at its owner's request), blocked (a screen refused it) or
   * failed (with an error code); a failed item never stops the others.
   * Invalid arguments throw before anything is read.
   */
  async add(inputs: readonly AddInput[], meta?: ImageMeta, options: AddOptions = {}): Promise<AddReport> {
    this.assertOpen();
    this.validateInputs(inputs);
    const base = normaliseMeta(meta);
    if (options.copy !== undefined && typeof options.copy !== 'boolean') throw typeError('INVALID_TYPE', 'options.copy must be a boolean');
    if (options.recursive !== undefined && typeof options.recursive !== 'boolean') throw typeError('INVALID_TYPE', 'options.recursive must be a boolean');
    if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw typeError('INVALID_TYPE', 'options.onProgress must be a function');
    return this.exclusive(async () => {
      const items = this.listInputs(inputs, base, options.copy ?? true, options.recursive ?? true);
      return this.ingest(items, options.onProgress, options.signal);
    });
  }

  /** Fetches images from http(s) URLs (see net/fetch.ts for the checks) and adds them. */
  async addUrl(urls: string | readonly string[], meta?: ImageMeta, options: AddUrlOptions = {}): Promise<AddReport> {
    this.assertOpen();
    const list = typeof urls === 'string' ? [urls] : urls;
    if (!Array.isArray(list)) throw typeError('INVALID_TYPE', 'urls must be a string or an array of strings');
    list.forEach((u, i) => {
      if (typeof u !== 'string') throw typeError('INVALID_TYPE', `urls[${i}] must be a string, got ${typeof u}`);
    });
    const base = normaliseMeta(meta);
    const { onProgress, ...fetchOptions } = options;
    const fetchWith: FetchImageOptions = { ...this.options.fetch, ...fetchOptions, maxBytes: fetchOptions.maxBytes ?? this.options.fetch?.maxBytes ?? this.options.maxInputBytes };
    return this.exclusive(async () => {
      const items: Item[] = list.map((url) => {
        const item: Item = {
          input: url,
          meta: base,
          load: async () => {
            const r = await fetchImage(url, fetchWith);
            item.input = r.url === url ? url : `${url} -> ${r.url}`;
            return new Uint8Array(r.bytes);
          },
        };
        return item;
      });
      return this.ingest(items, onProgress, fetchOptions.signal);
    });
  }

  private nearOptions(): { maxDistance: number; maxColourDifference: number } | undefined {
    const n = this.options.nearDuplicates;
    if (n === false) return undefined;
    return { ...DEFAULT_NEAR, ...(n ?? {}) };
  }

  /** Which known image (stored or pending in this call) the candidate duplicates, if any. */
  private findDuplicate(c: DecodedCandidate, pending: Map<string, { id: string }>, pendingHashes: HashTable<string>): AddItemResult | undefined {
    const known = this.bySha.get(c.sha256);
    const verdict = (k: Known, extra: Partial<AddItemResult>): Omit<AddItemResult, 'input'> => {
      if (k.status === 'removed') return { status: 'removed', duplicateOf: k.id, reason: 'matches an image removed from the store', ...extra };
      if (k.status === 'blocked') return { status: 'blocked', duplicateOf: k.id, reason: k.reason ?? 'blocked', ...extra };
      return { status: extra.distance !== undefined ? 'near-duplicate' : 'duplicate', duplicateOf: k.id, ...extra };
    };
    if (known) return verdict(known, {}) as AddItemResult;
    const p = pending.get(c.sha256);
    if (p) return { input: '', status: 'duplicate', duplicateOf: p.id };
    const near = this.nearOptions();
    if (!near) return undefined;
    const hit = this.hashes.nearest(c.phash, near.maxDistance, near.maxColourDifference);
    const pendingHit = pendingHashes.nearest(c.phash, near.maxDistance, near.maxColourDifference);
    if (hit && (!pendingHit || hit.distance <= pendingHit.distance)) {
      return verdict(this.byLabel.get(hit.key)!, { distance: hit.distance }) as AddItemResult;
    }
    if (pendingHit) return { input: '', status: 'near-duplicate', duplicateOf: pendingHit.key, distance: pendingHit.distance };
    return undefined;
  }

  private newId(sha256: string): string {
    let n = 16;
    while (this.byId.has(sha256.slice(0, n))) n += 4;
    return sha256.slice(0, n);
  }

  private async ingest(items: Item[], onProgress?: (p: AddProgress) => void, signal?: AbortSignal): Promise<AddReport> {
    const report: AddReport = { added: 0, skipped: 0, failed: 0, items: [] };
    const batchSize = this.options.batchSize ?? 32;
    const concurrency = this.options.decodeConcurrency ?? 4;
    const gate = { maxPixels: this.options.maxPixels ?? DEFAULT_MAX_PIXELS, maxBytes: this.options.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES };
    const screen = this.options.screen;
    const results: (AddItemResult | undefined)[] = new Array(items.length);
    const emit = (i: number, r: AddItemResult) => {
      results[i] = r;
      report.items.push(r);
      if (r.status === 'added') report.added++;
      else if (r.status === 'failed') report.failed++;
      else report.skipped++;
      const p: AddProgress = { done: report.items.length, total: items.length, added: report.added, skipped: report.skipped, failed: report.failed, item: r };
      this.emit('progress', p);
      try {
        onProgress?.(p);
      } catch {
        // a throwing progress callback must not corrupt an ingest
      }
    };
    const fail = (i: number, e: unknown) => emit(i, { input: items[i]!.input, status: 'failed', error: errorInfo(e) });

    for (let start = 0; start < items.length; start += batchSize) {
      if (signal?.aborted) {
        for (let i = start; i < items.length; i++) fail(i, new RagdiffError('ABORTED', 'the ingest was aborted before this item'));
        break;
      }
      const end = Math.min(items.length, start + batchSize);
      // 1. read + decode + hash, a few at a time
      const decoded: (DecodedCandidate | undefined)[] = new Array(end - start);
      let next = start;
      const worker = async () => {
        while (next < end) {
          const i = next++;
          const item = items[i]!;
          if (item.error) {
            fail(i, item.error);
            continue;
          }
          try {
            const bytes = await item.load();
            decoded[i - start] = await decodeCandidate(bytes, this.encoder, gate);
          } catch (e) {
            fail(i, e);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(concurrency, end - start) }, worker));

      // 2. duplicates and the pre-embedding screen, in input order
      const pending = new Map<string, { id: string }>();
      const pendingHashes = new HashTable<string>();
      type Accepted = { i: number; c: DecodedCandidate; id: string; screenInfo: ScreenCandidate; embedding?: Float32Array; blocked?: string };
      const accepted: Accepted[] = [];
      for (let i = start; i < end; i++) {
        const c = decoded[i - start];
        if (!c) continue;
        const item = items[i]!;
        const dup = this.findDuplicate(c, pending, pendingHashes);
        if (dup) {
          emit(i, { ...dup, input: item.input });
          continue;
        }
        const id = this.newId(c.sha256);
        pending.set(c.sha256, { id });
        pendingHashes.add(id, c.phash);
        const screenInfo: ScreenCandidate = { purpose: 'ingest', sha256: c.sha256, phash: c.phash, width: c.width, height: c.height, format: c.format, meta: item.meta, origin: item.input };
        const v = await runScreen(screen?.beforeEmbed?.bind(screen), screenInfo);
        accepted.push({ i, c, id, screenInfo, blocked: v.allow ? undefined : v.reason });
      }

      // 3. embed the survivors in one call (one by one if the batch fails, to find the culprit)
      const toEmbed = accepted.filter((a) => !a.blocked);
      try {
        const vecs = await embedCandidates(this.encoder, toEmbed.map((a) => a.c.pixels));
        toEmbed.forEach((a, j) => (a.embedding = vecs[j]));
      } catch {
        for (const a of toEmbed) {
          try {
            a.embedding = (await embedCandidates(this.encoder, [a.c.pixels]))[0];
          } catch (e) {
            fail(a.i, e);
          }
        }
      }
      for (const a of toEmbed) {
        if (!a.embedding) continue;
        const v = await runScreen(screen?.afterEmbed?.bind(screen), { ...a.screenInfo, embedding: a.embedding });
        if (!v.allow) a.blocked = v.reason;
      }
      const commit = accepted.filter((a) => a.blocked !== undefined || a.embedding !== undefined);
      if (commit.length === 0) continue;

      // 4. bytes first (temp + rename), then the rows in one transaction, then the vectors
      const item = (a: Accepted) => items[a.i]!;
      try {
        for (const a of commit) if (!a.blocked && !item(a).refPath) this.blobs.put(a.c.sha256, a.c.bytes);
        this.checkpoint('after-blobs');
        const rows: ImageRow[] = [];
        this.db.transaction(() => {
          const seq = nextSeq(this.db);
          const at = now();
          for (const a of commit) {
            const m = item(a).meta;
            const row = {
              id: a.id, sha256: a.c.sha256, phash: a.c.phash.hash, colour: a.c.phash.colour,
              source: m.source, licence: m.licence, attribution: m.attribution, name: m.name, tags: JSON.stringify(m.tags),
              width: a.c.width, height: a.c.height, format: a.c.format, bytes: a.c.bytes.byteLength,
              origin: item(a).input, path: a.blocked ? null : item(a).refPath ?? null, added_at: at,
              status: (a.blocked ? 'blocked' : 'active') as ImageStatus, reason: a.blocked ?? null, status_at: a.blocked ? at : null,
              seq, embedding: a.blocked ? null : embeddingToBlob(a.embedding!),
            };
            const info = this.stmt.insert.run(row);
            rows.push({ ...row, label: Number(info.lastInsertRowid) });
          }
        })();
        this.checkpoint('after-commit');
        rows.forEach((row, j) => {
          this.remember(row);
          const a = commit[j]!;
          if (row.status === 'active') this.vectors.setVector(row.label, a.embedding!);
        });
        this.unsaved += rows.length;
        this.checkpoint('after-index-add');
      } catch (e) {
        for (const a of commit) fail(a.i, new RagdiffError('STORE_WRITE_FAILED', `could not write to the store: ${(e as Error).message}`, { cause: e }));
        continue;
      }
      for (const a of commit) {
        emit(a.i, a.blocked ? { input: item(a).input, status: 'blocked', id: a.id, reason: a.blocked } : { input: item(a).input, status: 'added', id: a.id });
      }
      if (this.unsaved >= (this.options.saveEvery ?? 5000)) this.saveIndex();
    }
    if (this.unsaved > 0) this.saveIndex();
    // Items appear in the report in input order.
    report.items = results.filter((r): r is AddItemResult => r !== undefined);
    return report;
  }

  // ---------------------------------------------------------------- per-request references

  /**
   * Embeds an uploaded image for one request without storing it, through the
   * same decode / screen / embed path as stored images. An image matching a
   * blocked one (same bytes or near-duplicate) is refused with IMAGE_BLOCKED.
   */
  async embedReference(bytes: Uint8Array, options: { meta?: ImageMeta; purpose?: ImagePurpose } = {}): Promise<ReferenceEmbedding> {
    this.assertOpen();
    if (!(bytes instanceof Uint8Array)) throw typeError('INVALID_TYPE', 'image must be a Buffer or Uint8Array');
    const meta = normaliseMeta(options.meta);
    const c = await decodeCandidate(bytes, this.encoder, { maxPixels: this.options.maxPixels, maxBytes: this.options.maxInputBytes });
    const known = this.bySha.get(c.sha256);
    if (known?.status === 'blocked') throw new RagdiffError('IMAGE_BLOCKED', `the image matches blocked image ${known.id}: ${known.reason ?? 'blocked'}`);
    const near = this.nearOptions();
    if (near) {
      const hit = this.hashes.nearest(c.phash, near.maxDistance, near.maxColourDifference);
      const k = hit && this.byLabel.get(hit.key);
      if (k && k.status === 'blocked') throw new RagdiffError('IMAGE_BLOCKED', `the image is a near-duplicate of blocked image ${k.id}: ${k.reason ?? 'blocked'}`);
    }
    const info: ScreenCandidate = { purpose: options.purpose ?? 'reference', sha256: c.sha256, phash: c.phash, width: c.width, height: c.height, format: c.format, meta, origin: 'upload' };
    const before = await runScreen(this.options.screen?.beforeEmbed?.bind(this.options.screen), info);
    if (!before.allow) throw new RagdiffError('IMAGE_BLOCKED', `the image was refused: ${before.reason}`);
    const [embedding] = await embedCandidates(this.encoder, [c.pixels]);
    const after = await runScreen(this.options.screen?.afterEmbed?.bind(this.options.screen), { ...info, embedding: embedding! });
    if (!after.allow) throw new RagdiffError('IMAGE_BLOCKED', `the image was refused: ${after.reason}`);
    return { embedding: embedding!, sha256: c.sha256, phash: c.phash.hash, width: c.width, height: c.height, format: c.format };
  }

  /** Embeds a text query with the store's encoder. */
  async embedText(text: string): Promise<Float32Array> {
    this.assertOpen();
    if (typeof text !== 'string') throw typeError('INVALID_TYPE', `text must be a string, got ${typeof text}`);
    if (text.trim().length === 0) throw rangeError('INVALID_VALUE', 'text must not be empty');
    if (text.length > 10_000) throw rangeError('OUT_OF_RANGE', `text must be at most 10000 characters, got ${text.length}`);
    let out: Float32Array[];
    try {
      out = await this.encoder.embedText([text]);
    } catch (e) {
      throw new RagdiffError('EMBED_FAILED', `the text encoder failed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    }
    return normaliseEmbedding(out?.[0] as Float32Array, this.dim, 'text embedding');
  }

  // ---------------------------------------------------------------- query

  /** Text, image or embedding query; see {@link QueryRequest}. Results are in descending score order. */
  async query(request: QueryRequest): Promise<QueryHit[]> {
    this.assertOpen();
    if (typeof request !== 'object' || request === null) throw typeError('INVALID_TYPE', 'query must be an object');
    const given = (['text', 'image', 'embedding'] as const).filter((f) => request[f] !== undefined);
    if (given.length !== 1) throw typeError('INVALID_ARGUMENT', `a query needs exactly one of text, image or embedding, got ${given.length ? given.join(', ') : 'none'}`);
    this.checkQuery(request); // before any embedding work
    let vec: Float32Array;
    if (request.text !== undefined) vec = await this.embedText(request.text);
    else if (request.image !== undefined) vec = (await this.embedReference(request.image, { purpose: 'query' })).embedding;
    else vec = normaliseEmbedding(request.embedding as Float32Array, this.dim, 'query.embedding');
    return this.search(vec, request);
  }

  private checkQuery(r: Omit<QueryRequest, 'text' | 'image' | 'embedding'>): number {
    if (r.k !== undefined) {
      if (typeof r.k !== 'number') throw typeError('INVALID_TYPE', `k must be an integer, got ${typeof r.k}`);
      if (!Number.isInteger(r.k) || r.k < 1) throw rangeError('OUT_OF_RANGE', `k must be a positive integer, got ${r.k}`);
    }
    if (this.size === 0) throw new RagdiffError('STORE_EMPTY', `the store ${this.dir} has no active images to search`);
    const k = r.k ?? Math.min(10, this.size);
    if (k > this.size) throw rangeError('OUT_OF_RANGE', `k must be in 1..${this.size} (the store's active images), got ${k}`);
    for (const f of ['sources', 'licences', 'tags', 'excludeTags', 'excludeIds'] as const) checkStrings(f, r[f]);
    if (r.minScore !== undefined && (typeof r.minScore !== 'number' || !Number.isFinite(r.minScore))) {
      throw typeError('INVALID_TYPE', `minScore must be a finite number, got ${String(r.minScore)}`);
    }
    if (r.withEmbeddings !== undefined && typeof r.withEmbeddings !== 'boolean') throw typeError('INVALID_TYPE', 'withEmbeddings must be a boolean');
    return k;
  }

  /** Candidate mask for the filters, or undefined when there are none. */
  private filterMask(r: QueryRequest): { mask: Uint8Array; labels: Int32Array } | undefined {
    const codes = (list: readonly string[] | undefined, interner: Interner) =>
      list === undefined ? undefined : new Set(list.map((s) => interner.find(s.trim()) ?? -1));
    const sources = codes(r.sources, this.sources);
    const licences = codes(r.licences, this.licences);
    const tags = r.tags === undefined ? undefined : codes(normaliseTags('tags', r.tags), this.tagCodes);
    const excludeTags = r.excludeTags === undefined ? undefined : codes(normaliseTags('excludeTags', r.excludeTags), this.tagCodes);
    const excluded = new Set<number>();
    for (const id of r.excludeIds ?? []) {
      const l = this.byId.get(id);
      if (l !== undefined) excluded.add(l);
    }
    if (!sources && !licences && !tags && !excludeTags && excluded.size === 0) return undefined;
    const bound = this.vectors.labelBound;
    const mask = new Uint8Array(bound);
    const labels: number[] = [];
    for (let l = 0; l < bound; l++) {
      if (!this.vectors.isActive(l)) continue;
      if (sources && !sources.has(this.sourceOf[l]!)) continue;
      if (licences && !licences.has(this.licenceOf[l]!)) continue;
      const t = this.tagsOf[l];
      if (tags && !(t && t.some((c) => tags.has(c)))) continue;
      if (excludeTags && t && t.some((c) => excludeTags.has(c))) continue;
      if (excluded.has(l)) continue;
      mask[l] = 1;
      labels.push(l);
    }
    return { mask, labels: Int32Array.from(labels) };
  }

  /**
   * Synchronous search by an L2-normalised embedding of the store's width —
   * usable from inside a generation loop. Same options as {@link query}.
   */
  search(embedding: Float32Array, request: Omit<QueryRequest, 'text' | 'image' | 'embedding'> = {}): QueryHit[] {
    this.assertOpen();
    const k = this.checkQuery(request);
    const vec = normaliseEmbedding(embedding, this.dim, 'embedding');
    const filter = this.filterMask(request);
    const total = filter ? filter.labels.length : this.size;
    if (total === 0) return [];
    const minScore = request.minScore ?? -Infinity;
    const atRetrieval = this.options.screen?.atRetrieval;
    const out: QueryHit[] = [];
    let want = Math.min(k, total);
    for (;;) {
      out.length = 0;
      const hits = this.vectors.search(vec, want, filter, this.options.exactSearchBelow ?? 2048);
      let belowMin = false;
      for (const h of hits) {
        if (h.score < minScore) {
          belowMin = true;
          break;
        }
        const row = this.stmt.byLabel.get(h.label) as ImageRow | undefined;
        if (!row || row.status !== 'active') continue; // cannot happen while index and rows agree; never return it anyway
        const image = this.toImage(row);
        if (atRetrieval) {
          let ok = false;
          try {
            ok = atRetrieval({ id: image.id, source: image.source, licence: image.licence, tags: image.tags, phash: image.phash }) === true;
          } catch {
            ok = false;
          }
          if (!ok) continue;
        }
        const hit: QueryHit = { ...image, score: h.score };
        if (request.withEmbeddings) hit.embedding = this.vectors.vector(h.label);
        out.push(hit);
        if (out.length === k) break;
      }
      // Screens at retrieval can drop results: look deeper until k are found or nothing is left.
      if (out.length >= k || belowMin || want >= total) break;
      want = Math.min(total, want * 2 + k);
    }
    return out;
  }

  // ---------------------------------------------------------------- status changes

  private setStatus(id: string, status: ImageStatus, reason: string | null, extra?: () => void): Known {
    const label = this.byId.get(id);
    if (label === undefined) throw new RagdiffError('IMAGE_NOT_FOUND', `no image with id ${JSON.stringify(id)}`);
    const known = this.byLabel.get(label)!;
    this.db.transaction(() => {
      const seq = nextSeq(this.db);
      this.stmt.setStatus.run(status, reason, now(), seq, label);
      extra?.();
    })();
    known.status = status;
    known.reason = reason;
    return known;
  }

  /**
   * Removes an image at its owner's request: it is never returned again (the
   * change is committed before this resolves), its bytes and embedding are
   * deleted, and re-adding the same image is reported as 'removed'. (Files
   * added by reference are the caller's: the store drops its reference and
   * embedding but leaves the file.) Resolves false when it was already removed.
   */
  async remove(id: string, reason = 'removed on request'): Promise<boolean> {
    this.assertOpen();
    if (typeof id !== 'string' || id.length === 0) throw typeError('INVALID_TYPE', `id must be a non-empty string, got ${typeof id}`);
    if (typeof reason !== 'string') throw typeError('INVALID_TYPE', 'reason must be a string');
    return this.exclusive(async () => {
      const label = this.byId.get(id);
      if (label === undefined) throw new RagdiffError('IMAGE_NOT_FOUND', `no image with id ${JSON.stringify(id)}`);
      const row = this.stmt.byLabel.get(label) as ImageRow;
      if (row.status === 'removed') return false;
      this.setStatus(id, 'removed', reason, () => {
        this.db.prepare('UPDATE images SET embedding = NULL WHERE label = ?').run(label);
      });
      this.checkpoint('remove-committed');
      this.vectors.remove(label);
      if (row.path === null) this.blobs.delete(row.sha256);
      this.unsaved++;
      if (this.unsaved >= (this.options.saveEvery ?? 5000)) this.saveIndex();
      return true;
    });
  }

  /** Blocks an image (a policy decision): excluded from results, bytes and embedding kept for review. */
  async block(id: string, reason: string): Promise<void> {
    this.assertOpen();
    if (typeof id !== 'string') throw typeError('INVALID_TYPE', 'id must be a string');
    if (typeof reason !== 'string' || reason.trim().length === 0) throw typeError('INVALID_TYPE', 'reason must be a non-empty string');
    return this.exclusive(async () => {
      const label = this.byId.get(id);
      if (label === undefined) throw new RagdiffError('IMAGE_NOT_FOUND', `no image with id ${JSON.stringify(id)}`);
      if (this.byLabel.get(label)!.status === 'removed') throw new RagdiffError('IMAGE_REMOVED', `image ${id} was removed`);
      this.setStatus(id, 'blocked', reason);
      this.vectors.remove(label);
      this.unsaved++;
    });
  }

  /** Returns a blocked image to the searchable set (needs its stored embedding). */
  async unblock(id: string): Promise<void> {
    this.assertOpen();
    if (typeof id !== 'string') throw typeError('INVALID_TYPE', 'id must be a string');
    return this.exclusive(async () => {
      const label = this.byId.get(id);
      if (label === undefined) throw new RagdiffError('IMAGE_NOT_FOUND', `no image with id ${JSON.stringify(id)}`);
      const row = this.stmt.byLabel.get(label) as ImageRow;
      if (row.status !== 'blocked') throw new RagdiffError('INVALID_STATE', `image ${id} is ${row.status}, not blocked`);
      if (!row.embedding || row.embedding.byteLength !== this.dim * 4) {
        throw new RagdiffError('INVALID_STATE', `image ${id} was blocked at ingest and has no embedding; add it again instead`);
      }
      this.setStatus(id, 'active', null);
      this.vectors.setVector(label, blobToEmbedding(row.embedding, this.dim));
      this.unsaved++;
    });
  }

  // ---------------------------------------------------------------- rebuild

  /**
   * Recreates the vector index from the metadata. With `reembed`, every image
   * that still has bytes is decoded and embedded again with the current
   * encoder first (needed after an encoder change); an image whose bytes are
   * gone or changed is blocked with the reason.
   */
  async rebuild(options: RebuildOptions = {}): Promise<RebuildReport> {
    this.assertOpen();
    if (options.reembed !== undefined && typeof options.reembed !== 'boolean') throw typeError('INVALID_TYPE', 'reembed must be a boolean');
    return this.exclusive(() => this.rebuildNow(options));
  }

  private async rebuildNow(options: RebuildOptions): Promise<RebuildReport> {
    const report: RebuildReport = { indexed: 0, reembedded: 0, failed: [] };
    if (options.reembed) {
      const dim = this.encoder.dim;
      const rows = this.db.prepare("SELECT label, id, sha256, path, status FROM images WHERE status != 'removed' AND (status = 'active' OR embedding IS NOT NULL) ORDER BY label").all() as Pick<ImageRow, 'label' | 'id' | 'sha256' | 'path' | 'status'>[];
      const batch = this.options.batchSize ?? 32;
      const update = this.db.prepare('UPDATE images SET embedding = ?, seq = ? WHERE label = ?');
      const blockRow = this.db.prepare("UPDATE images SET status = 'blocked', reason = ?, status_at = ?, embedding = NULL, seq = ? WHERE label = ?");
      const updates: { label: number; blob: Buffer | null; failure?: string }[] = [];
      for (let s = 0; s < rows.length; s += batch) {
        const chunk = rows.slice(s, s + batch);
        const ok: { row: (typeof rows)[number]; c: DecodedCandidate }[] = [];
        for (const row of chunk) {
          try {
            const bytes = row.path !== null ? readFileSync(row.path) : this.blobs.read(row.sha256);
            const c = await decodeCandidate(new Uint8Array(bytes), this.encoder, { maxPixels: this.options.maxPixels, maxBytes: this.options.maxInputBytes });
            if (c.sha256 !== row.sha256) throw new RagdiffError('IMAGE_CHANGED', `the bytes of ${row.id} changed since they were added`);
            ok.push({ row, c });
          } catch (e) {
            const info = errorInfo(e);
            const code = info.code === 'ENOENT' || /ENOENT/.test(info.message) ? 'IMAGE_MISSING' : info.code;
            report.failed.push({ id: row.id, code, message: info.message });
            updates.push({ label: row.label, blob: null, failure: `${code}: ${info.message}` });
          }
        }
        const vecs = await embedCandidates(this.encoder, ok.map((o) => o.c.pixels));
        ok.forEach((o, j) => updates.push({ label: o.row.label, blob: embeddingToBlob(vecs[j]!) }));
        report.reembedded += ok.length;
        options.onProgress?.({ phase: 'embed', done: Math.min(rows.length, s + batch), total: rows.length });
      }
      this.db.transaction(() => {
        const seq = nextSeq(this.db);
        for (const u of updates) {
          if (u.failure !== undefined) blockRow.run(u.failure, now(), seq, u.label);
          else update.run(u.blob, seq, u.label);
        }
        setMeta(this.db, 'dim', String(dim));
        setMeta(this.db, 'encoder_id', this.encoder.id ?? `anonymous-${dim}`);
      })();
      for (const u of updates) {
        if (u.failure === undefined) continue;
        const known = this.byLabel.get(u.label)!;
        known.status = 'blocked';
        known.reason = u.failure;
      }
      this.dim = dim;
      this.encoderId = this.encoder.id ?? `anonymous-${dim}`;
    }
    // A fresh graph from the committed embeddings.
    const fresh = new VectorIndex(this.dim, this.hnswParams, Math.max(1024, Math.ceil(this.size * 1.25)));
    const rows = this.db.prepare("SELECT label, embedding FROM images WHERE status = 'active'").iterate() as IterableIterator<Pick<ImageRow, 'label' | 'embedding'>>;
    let unindexed = 0;
    for (const row of rows) {
      if (row.embedding && row.embedding.byteLength === this.dim * 4) fresh.setVector(row.label, blobToEmbedding(row.embedding, this.dim), false);
      else unindexed++;
    }
    fresh.buildGraph((done, total) => options.onProgress?.({ phase: 'index', done, total }));
    this.vectors = fresh;
    this.unindexed = unindexed;
    report.indexed = fresh.size;
    this.saveIndex();
    return report;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Saves the index if it changed, closes the database and releases the lock. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.chain;
    this.closed = true;
    try {
      if (this.unsaved > 0) this.saveIndex();
    } finally {
      this.db.close();
      this.releaseLock();
    }
  }
}
