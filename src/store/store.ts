/**
 * ImageStore: reference images with provenance, embedded, indexed and persisted.
 * This file is the facade; the jobs live beside it: catalogue.ts (rows and
 * attribute filters), vectors.ts (the HNSW index), blobs.ts (image bytes),
 * walk.ts (listing inputs, reading users' files), ingest.ts, query.ts, and
 * writer-lock.ts.
 *
 * Layout of a store directory:
 *   store.sqlite       metadata, status and embedding of every image ever offered (SQLite, WAL)
 *   blobs/ab/<sha256>  image bytes, content-addressed (unless added by reference)
 *   index/vectors-<seq>.hnsw + .json   the HNSW graph as of change <seq>
 *   writer.lock        held (a kernel lock, see writer-lock.ts) by the one writer
 *
 * One writer and any number of readers, in any processes. The writer holds
 * the writer lock from open to close; it alone writes rows, bytes and index
 * files, sweeps orphaned bytes and saves the index. A reader opens the
 * database read-only, loads the newest saved index and replays rows
 * committed after it (by change sequence number), and catches up again when
 * the writer commits more.
 *
 * Consistency under a kill at any point: bytes are written (temp + rename)
 * before the row that references them is committed; the vector index is
 * derived from committed rows and replays every change newer than the file it
 * loaded; orphaned bytes are swept by the next writer on open. So after a
 * crash the store holds exactly the committed images, each with its bytes and
 * its vector.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { RagdiffError, rangeError, typeError } from '../errors.js';
import type { ImageTextEncoder } from '../models/encoders.js';
import { fetchImage, type FetchImageOptions } from '../net/fetch.js';
import { BlobStore } from './blobs.js';
import { SqliteCatalogue, type Catalogue, type LoadRow } from './catalogue.js';
import {
  decodeCandidate, embedCandidates, normaliseEmbedding, runScreen, DEFAULT_MAX_INPUT_BYTES,
  type DecodedCandidate, type ImagePurpose, type ScreenCandidate,
} from './gate.js';
import { errorInfo, ingest } from './ingest.js';
import { normaliseMeta, type ImageMeta } from './meta.js';
import { checkQuery, searchVectors, toImage, type SearchContext } from './query.js';
import { blobToEmbedding, embeddingToBlob, type ImageStatus } from './schema.js';
import type { ReferenceStore } from './reference-store.js';
import type {
  AddInput, AddOptions, AddReport, AddUrlOptions, ImageStoreOptions, QueryHit, QueryRequest, RebuildOptions, RebuildReport,
  ReferenceEmbedding, StoreStats, StoredImage,
} from './types.js';
import { DEFAULT_HNSW, VectorIndex, type HnswParams } from './vectors.js';
import { listInputs, readRegularFile, type Item } from './walk.js';
import { ensureOutputDir } from '../io/output-path.js';
import { acquireWriterLock, WRITER_LOCK_FILE, type WriterLock } from './writer-lock.js';

export type * from './types.js';
export { IMAGE_EXTENSIONS } from './walk.js';

const DEFAULT_NEAR = { maxDistance: 6, maxColourDifference: 24 };

function now(): string {
  return new Date().toISOString();
}

function intOption(name: string, v: unknown, min: number, max: number, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw rangeError('OUT_OF_RANGE', `${name} must be an integer in ${min}..${max}, got ${String(v)}`);
  }
  return v;
}

function checkOptions(options: ImageStoreOptions): ImageTextEncoder {
  if (typeof options !== 'object' || options === null) throw typeError('INVALID_TYPE', 'options must be an object with an encoder');
  const enc = options.encoder as ImageTextEncoder | undefined;
  if (!enc || typeof enc.embedImages !== 'function' || typeof enc.embedText !== 'function') {
    throw typeError('INVALID_TYPE', 'options.encoder must have embedImages(images) and embedText(texts)');
  }
  intOption('encoder.dim', enc.dim, 1, 65536, 0);
  intOption('exactSearchBelow', options.exactSearchBelow, 0, 10_000_000, 0);
  intOption('batchSize', options.batchSize, 1, 4096, 0);
  intOption('decodeConcurrency', options.decodeConcurrency, 1, 64, 0);
  intOption('embedInFlight', options.embedInFlight, 1, 16, 0);
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
  if (options.readOnly !== undefined && typeof options.readOnly !== 'boolean') throw typeError('INVALID_TYPE', 'readOnly must be a boolean');
  return enc;
}

export class ImageStore implements ReferenceStore {
  readonly dir: string;
  readonly encoder: ImageTextEncoder;
  /** True when opened with `readOnly`: no lock held, nothing written. */
  readonly readOnly: boolean;
  private readonly catalogue: Catalogue;
  private readonly blobs: BlobStore;
  private readonly indexDir: string;
  private vectors: VectorIndex;
  private readonly hnswParams: HnswParams;
  private readonly options: ImageStoreOptions;
  private readonly lock: WriterLock | undefined;
  private dim: number;
  private encoderId: string;
  /** The change sequence number the in-memory state reflects. */
  private seq = 0;
  private unsaved = 0;
  private reembedReport: RebuildReport | undefined;
  /** Active rows without a usable embedding (fixed by rebuild with reembed). */
  private readonly unindexed = new Set<number>();
  private closed = false;
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(dir: string, options: ImageStoreOptions, catalogue: Catalogue, lock: WriterLock | undefined, params: HnswParams, dim: number, encoderId: string) {
    this.dir = dir;
    this.options = options;
    this.encoder = options.encoder;
    this.readOnly = lock === undefined;
    this.catalogue = catalogue;
    this.lock = lock;
    this.hnswParams = params;
    this.dim = dim;
    this.encoderId = encoderId;
    this.blobs = new BlobStore(join(dir, 'blobs'), !this.readOnly);
    this.indexDir = join(dir, 'index');
    this.vectors = new VectorIndex(dim, params);
  }

  /**
   * Opens (or creates) the store in `dir`. As a writer (the default) it takes
   * the store's writer lock or throws STORE_LOCKED; with `readOnly: true` it
   * takes no lock and writes nothing (the store must exist: STORE_NOT_FOUND).
   */
  static async open(dir: string, options: ImageStoreOptions): Promise<ImageStore> {
    if (typeof dir !== 'string' || dir.length === 0) throw typeError('INVALID_TYPE', 'store directory must be a non-empty string');
    const enc = checkOptions(options);
    const root = resolve(dir);
    const dbPath = join(root, 'store.sqlite');
    if (options.readOnly) {
      if (!existsSync(dbPath)) throw new RagdiffError('STORE_NOT_FOUND', `no image store in ${root}`);
      return ImageStore.openReader(root, options, enc, dbPath);
    }
    if (!existsSync(dbPath)) {
      if (options.create === false) throw new RagdiffError('STORE_NOT_FOUND', `no image store in ${root}`);
      // mkdir -p is race-free (two processes creating one store both succeed; the lock then decides);
      // when it fails (a file, FIFO or symlink loop in the way), ensureOutputDir names why with a typed error.
      try {
        mkdirSync(root, { recursive: true });
      } catch {
        ensureOutputDir(root, 'store directory');
      }
    }
    const lock = acquireWriterLock(join(root, WRITER_LOCK_FILE));
    let catalogue: SqliteCatalogue | undefined;
    try {
      // The pid file of older versions means nothing now; the kernel lock above is the truth.
      rmSync(join(root, 'LOCK'), { force: true });
      catalogue = new SqliteCatalogue(dbPath, false);
      const cat = catalogue;
      const encoderId = enc.id ?? `anonymous-${enc.dim}`;
      let dim = Number(cat.getMeta('dim') ?? NaN);
      let params: HnswParams;
      if (Number.isNaN(dim)) {
        params = { ...DEFAULT_HNSW, ...options.hnsw };
        intOption('hnsw.M', params.M, 2, 128, 0);
        intOption('hnsw.efConstruction', params.efConstruction, 1, 10_000, 0);
        intOption('hnsw.efSearch', params.efSearch, 1, 10_000, 0);
        intOption('hnsw.seed', params.seed, 0, 2 ** 31, 0);
        dim = enc.dim;
        const d = dim;
        cat.transaction(() => {
          cat.setMeta('dim', String(d));
          cat.setMeta('encoder_id', encoderId);
          cat.setMeta('space', 'cosine');
          cat.setMeta('hnsw', JSON.stringify(params));
          cat.setMeta('created_at', now());
        });
      } else {
        params = { ...DEFAULT_HNSW, ...(JSON.parse(cat.getMeta('hnsw') ?? '{}') as Partial<HnswParams>) };
        if (options.hnsw?.efSearch !== undefined && options.hnsw.efSearch !== params.efSearch) {
          params.efSearch = intOption('hnsw.efSearch', options.hnsw.efSearch, 1, 10_000, 0);
          cat.setMeta('hnsw', JSON.stringify(params));
        }
      }
      const storedEncoder = cat.getMeta('encoder_id') ?? encoderId;
      const mismatch = storedEncoder !== encoderId || dim !== enc.dim;
      if (mismatch && options.onEncoderMismatch !== 'reembed') throw mismatchError(root, storedEncoder, dim, encoderId, enc.dim);
      const store = new ImageStore(root, options, cat, lock, params, dim, storedEncoder);
      store.loadWriter();
      if (mismatch) store.reembedReport = await store.rebuild({ reembed: true });
      return store;
    } catch (e) {
      catalogue?.close();
      lock.release();
      throw e;
    }
  }

  private static async openReader(root: string, options: ImageStoreOptions, enc: ImageTextEncoder, dbPath: string): Promise<ImageStore> {
    const catalogue = new SqliteCatalogue(dbPath, true);
    try {
      const dim = Number(catalogue.getMeta('dim'));
      const params: HnswParams = { ...DEFAULT_HNSW, ...(JSON.parse(catalogue.getMeta('hnsw') ?? '{}') as Partial<HnswParams>) };
      if (options.hnsw?.efSearch !== undefined) params.efSearch = intOption('hnsw.efSearch', options.hnsw.efSearch, 1, 10_000, 0);
      const encoderId = enc.id ?? `anonymous-${enc.dim}`;
      const storedEncoder = catalogue.getMeta('encoder_id') ?? encoderId;
      if (storedEncoder !== encoderId || dim !== enc.dim) throw mismatchError(root, storedEncoder, dim, encoderId, enc.dim);
      const store = new ImageStore(root, options, catalogue, undefined, params, dim, storedEncoder);
      store.loadReader();
      return store;
    } catch (e) {
      catalogue.close();
      throw e;
    }
  }

  // ---------------------------------------------------------------- state

  private checkpoint(name: string): void {
    this.options.testHooks?.checkpoint?.(name);
  }

  /** Applies one row (loaded or replayed) to the vectors. */
  private applyRow(row: LoadRow, graph: boolean): void {
    if (row.status === 'active' && row.embedding && row.embedding.byteLength === this.dim * 4) {
      this.vectors.setVector(row.label, blobToEmbedding(row.embedding, this.dim), graph);
      this.unindexed.delete(row.label);
    } else {
      this.vectors.remove(row.label);
      // An active row without a usable embedding stays unsearchable until `rebuild --reembed`.
      if (row.status === 'active') this.unindexed.add(row.label);
      else this.unindexed.delete(row.label);
    }
  }

  /** Writer: loads state, deletes bytes no row keeps, and saves the index when it was behind. */
  private loadWriter(): void {
    const fileSeq = this.vectors.load(this.indexDir);
    const keepSha = new Set<string>();
    const removedWithBytes: string[] = [];
    const changed: number[] = [];
    for (const row of this.catalogue.rows()) {
      this.catalogue.remember(row);
      this.applyRow(row, false);
      if (row.seq > fileSeq) changed.push(row.label);
      if (row.path === null) {
        if (row.status === 'removed') removedWithBytes.push(row.sha256);
        else keepSha.add(row.sha256);
      }
    }
    this.seq = this.catalogue.currentSeq();
    if (fileSeq < 0) {
      this.vectors.buildGraph();
      if (this.vectors.size > 0) this.unsaved++;
    } else {
      // Rows newer than the file, and any the file lacks or has in excess: the saved index is behind.
      this.unsaved += this.vectors.reconcile(changed) + changed.length;
    }
    // Bytes of removed images that a killed writer did not get to delete, and bytes with no row.
    for (const sha of removedWithBytes) this.blobs.delete(sha);
    this.blobs.sweep((sha) => keepSha.has(sha));
    if (this.unsaved > 0) this.saveIndex();
  }

  /** Reader: loads the saved graph and replays what was committed after it, in memory only. */
  private loadReader(): void {
    // The file first, the rows second: the rows' snapshot is never older than the file.
    const fileSeq = this.vectors.load(this.indexDir);
    const changed: number[] = [];
    this.catalogue.readSnapshot(() => {
      this.seq = this.catalogue.currentSeq();
      for (const row of this.catalogue.rows()) {
        this.catalogue.remember(row);
        this.applyRow(row, false);
        if (row.seq > fileSeq) changed.push(row.label);
      }
    });
    if (fileSeq < 0) this.vectors.buildGraph();
    else this.vectors.reconcile(changed);
  }

  /**
   * Reader: catches up with rows the writer committed since this store's
   * snapshot (cheap when nothing changed: one indexed read). Called by
   * search and query; call it yourself before get/list for the newest rows.
   * Returns how many rows changed. A writer is always current (returns 0).
   */
  refresh(): number {
    this.assertOpen();
    if (!this.readOnly) return 0;
    if (this.catalogue.currentSeq() === this.seq) return 0;
    const dim = Number(this.catalogue.getMeta('dim'));
    const encoderId = this.catalogue.getMeta('encoder_id') ?? this.encoderId;
    if (dim !== this.dim || encoderId !== this.encoderId) {
      throw new RagdiffError('ENCODER_MISMATCH', `the store in ${this.dir} was re-embedded by ${encoderId} (width ${dim}) while open; reopen it with that encoder`);
    }
    const { seq, rows } = this.catalogue.changesSince(this.seq);
    for (const row of rows) this.applyRow(row, true);
    this.seq = seq;
    return rows.length;
  }

  private saveIndex(): void {
    this.vectors.save(this.indexDir, this.catalogue.currentSeq(), (stage) => this.checkpoint(`index-${stage}`));
    this.unsaved = 0;
  }

  private assertOpen(): void {
    if (this.closed) throw new RagdiffError('STORE_CLOSED', `the store ${this.dir} is closed`);
  }

  private assertWritable(what: string): void {
    this.assertOpen();
    if (this.readOnly) throw new RagdiffError('STORE_READ_ONLY', `the store ${this.dir} was opened read-only: ${what} needs the writer (open without readOnly)`);
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
    if (this.readOnly && !this.closed) this.refresh();
    return this.vectors.size;
  }

  /** Embedding width of the store. */
  get width(): number {
    return this.dim;
  }

  stats(): StoreStats {
    this.assertOpen();
    this.refresh();
    return { dir: this.dir, dim: this.dim, encoderId: this.encoderId, ...this.catalogue.counts(), unindexed: this.unindexed.size, hnsw: { ...this.hnswParams }, seq: this.seq };
  }

  /** The record of an image of any status, or undefined. */
  get(id: string): StoredImage | undefined {
    this.assertOpen();
    if (typeof id !== 'string') throw typeError('INVALID_TYPE', `id must be a string, got ${typeof id}`);
    const row = this.catalogue.rowById(id);
    return row ? toImage(row) : undefined;
  }

  /**
   * The stored embedding of an active image (e.g. a reference the user picked
   * by id), or undefined when the id is unknown or not active.
   */
  embeddingOf(id: string): Float32Array | undefined {
    this.assertOpen();
    if (typeof id !== 'string') throw typeError('INVALID_TYPE', `id must be a string, got ${typeof id}`);
    this.refresh();
    const label = this.catalogue.labelOf(id);
    return label === undefined ? undefined : this.vectors.vector(label);
  }

  /**
   * An image's full record for copying it to another backend (`ragdiff index
   * migrate`): the record, its mean colour (the near-duplicate check uses it)
   * and its stored embedding (null when it has none, e.g. removed).
   */
  exportRecord(id: string): { image: StoredImage; colour: number; embedding: Float32Array | null } | undefined {
    this.assertOpen();
    const row = this.catalogue.rowById(id);
    if (!row) return undefined;
    const embedding = row.embedding && row.embedding.byteLength === this.dim * 4 ? blobToEmbedding(row.embedding, this.dim) : null;
    return { image: toImage(row), colour: row.colour, embedding };
  }

  /** The stored bytes of an active or blocked image (throws IMAGE_NOT_FOUND otherwise, IMAGE_MISSING when the bytes are gone). */
  readImage(id: string): Buffer {
    this.assertOpen();
    const row = this.catalogue.rowById(id);
    if (!row || row.status === 'removed') throw new RagdiffError('IMAGE_NOT_FOUND', `no image with id ${JSON.stringify(id)}`);
    if (row.path === null) {
      try {
        return this.blobs.read(row.sha256);
      } catch (e) {
        // Only a removal committed after the row was read deletes stored bytes.
        const again = this.catalogue.rowById(id);
        if (!again || again.status === 'removed') throw new RagdiffError('IMAGE_NOT_FOUND', `image ${id} was removed`, { cause: e });
        throw new RagdiffError('IMAGE_MISSING', `the stored bytes of image ${id} are gone`, { cause: e });
      }
    }
    let bytes: Buffer;
    try {
      bytes = readRegularFile(row.path, this.options.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES);
    } catch (e) {
      throw new RagdiffError('IMAGE_MISSING', `the file of image ${id} is gone or unreadable: ${row.path}`, { cause: e });
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
    return this.catalogue.list(options.status, limit, offset).map(toImage);
  }

  // ---------------------------------------------------------------- ingest

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

  private nearOptions(): { maxDistance: number; maxColourDifference: number } | undefined {
    const n = this.options.nearDuplicates;
    if (n === false) return undefined;
    return { ...DEFAULT_NEAR, ...(n ?? {}) };
  }

  private runIngest(items: Item[], onProgress?: AddOptions['onProgress'], signal?: AbortSignal): Promise<AddReport> {
    const o = this.options;
    return ingest({
      encoder: this.encoder,
      catalogue: this.catalogue,
      blobs: this.blobs,
      screen: o.screen,
      near: this.nearOptions(),
      batchSize: o.batchSize ?? 64,
      decodeConcurrency: o.decodeConcurrency ?? 4,
      embedInFlight: o.embedInFlight ?? 2,
      maxPixels: o.maxPixels,
      maxInputBytes: o.maxInputBytes,
      checkpoint: (name) => this.checkpoint(name),
      committed: (active, rows) => {
        for (const a of active) this.vectors.setVector(a.label, a.embedding);
        this.seq = this.catalogue.currentSeq();
        this.unsaved += rows;
        if (this.unsaved >= (o.saveEvery ?? 5000)) this.saveIndex();
      },
    }, items, onProgress, signal).finally(() => {
      if (this.unsaved > 0) this.saveIndex();
    });
  }

  /**
   * Adds images from files, directories (image extensions, recursively),
   * Buffers or { path | bytes, meta } objects. Each item is reported: added,
   * duplicate (same bytes), near-duplicate (perceptual hash), removed (matches
   * an image removed at its owner's request), blocked (a screen refused it),
   * skipped (found in a directory but not read: a dangling symlink, a FIFO or
   * device, a symlink loop) or failed (with an error code); a failed item
   * never stops the others. Invalid arguments throw before anything is read.
   */
  async add(inputs: readonly AddInput[], meta?: ImageMeta, options: AddOptions = {}): Promise<AddReport> {
    this.assertWritable('add');
    this.validateInputs(inputs);
    const base = normaliseMeta(meta);
    if (options.copy !== undefined && typeof options.copy !== 'boolean') throw typeError('INVALID_TYPE', 'options.copy must be a boolean');
    if (options.recursive !== undefined && typeof options.recursive !== 'boolean') throw typeError('INVALID_TYPE', 'options.recursive must be a boolean');
    if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw typeError('INVALID_TYPE', 'options.onProgress must be a function');
    return this.exclusive(async () => {
      const items = listInputs(inputs, base, {
        copy: options.copy ?? true,
        recursive: options.recursive ?? true,
        maxBytes: this.options.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES,
      });
      return this.runIngest(items, options.onProgress, options.signal);
    });
  }

  /** Fetches images from http(s) URLs (see net/fetch.ts for the checks) and adds them. */
  async addUrl(urls: string | readonly string[], meta?: ImageMeta, options: AddUrlOptions = {}): Promise<AddReport> {
    this.assertWritable('addUrl');
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
      return this.runIngest(items, onProgress, fetchOptions.signal);
    });
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
    this.refresh();
    const known = this.catalogue.bySha(c.sha256);
    if (known?.status === 'blocked') throw new RagdiffError('IMAGE_BLOCKED', `the image matches blocked image ${known.id}: ${known.reason ?? 'blocked'}`);
    const near = this.nearOptions();
    if (near) {
      const hit = this.catalogue.nearest(c.phash, near.maxDistance, near.maxColourDifference);
      const k = hit && this.catalogue.byLabel(hit.label);
      if (k && k.status === 'blocked') throw new RagdiffError('IMAGE_BLOCKED', `the image is a near-duplicate of blocked image ${k.id}: ${k.reason ?? 'blocked'}`);
    }
    const info: ScreenCandidate = { purpose: options.purpose ?? 'reference', sha256: c.sha256, phash: c.phash, orientedHashes: c.orientedHashes, width: c.width, height: c.height, format: c.format, meta, origin: 'upload' };
    const before = await runScreen(this.options.screen?.beforeEmbed?.bind(this.options.screen), info);
    if (!before.allow) throw new RagdiffError('IMAGE_BLOCKED', `the image was refused: ${before.reason}`);
    const [embedding] = await embedCandidates(this.encoder, [c.pixels]);
    const after = await runScreen(this.options.screen?.afterEmbed?.bind(this.options.screen), { ...info, embedding: embedding! });
    if (!after.allow) throw new RagdiffError('IMAGE_BLOCKED', `the image was refused: ${after.reason}`);
    return { embedding: embedding!, sha256: c.sha256, phash: c.phash.hash, orientedHashes: c.orientedHashes, bytes: c.bytes, width: c.width, height: c.height, format: c.format };
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

  private searchContext(): SearchContext {
    return { dir: this.dir, catalogue: this.catalogue, vectors: this.vectors, exactSearchBelow: this.options.exactSearchBelow ?? 2048, screen: this.options.screen };
  }

  /** Text, image or embedding query; see {@link QueryRequest}. Results are in descending score order. */
  async query(request: QueryRequest): Promise<QueryHit[]> {
    this.assertOpen();
    if (typeof request !== 'object' || request === null) throw typeError('INVALID_TYPE', 'query must be an object');
    const given = (['text', 'image', 'embedding'] as const).filter((f) => request[f] !== undefined);
    if (given.length !== 1) throw typeError('INVALID_ARGUMENT', `a query needs exactly one of text, image or embedding, got ${given.length ? given.join(', ') : 'none'}`);
    checkQuery(request, this.size, this.dir); // before any embedding work
    let vec: Float32Array;
    if (request.text !== undefined) vec = await this.embedText(request.text);
    else if (request.image !== undefined) vec = (await this.embedReference(request.image, { purpose: 'query' })).embedding;
    else vec = normaliseEmbedding(request.embedding as Float32Array, this.dim, 'query.embedding');
    return this.search(vec, request);
  }

  /**
   * Synchronous search by an L2-normalised embedding of the store's width —
   * usable from inside a generation loop. Same options as {@link query}.
   */
  search(embedding: Float32Array, request: Omit<QueryRequest, 'text' | 'image' | 'embedding'> = {}): QueryHit[] {
    this.assertOpen();
    const k = checkQuery(request, this.size, this.dir);
    const vec = normaliseEmbedding(embedding, this.dim, 'embedding');
    return searchVectors(this.searchContext(), vec, k, request);
  }

  // ---------------------------------------------------------------- status changes

  private labelOrThrow(id: string): number {
    const label = this.catalogue.labelOf(id);
    if (label === undefined) throw new RagdiffError('IMAGE_NOT_FOUND', `no image with id ${JSON.stringify(id)}`);
    return label;
  }

  /**
   * Removes an image at its owner's request: it is never returned again (the
   * change is committed before this resolves), its bytes and embedding are
   * deleted, and re-adding the same image is reported as 'removed'. (Files
   * added by reference are the caller's: the store drops its reference and
   * embedding but leaves the file.) Resolves false when it was already removed.
   */
  async remove(id: string, reason = 'removed on request'): Promise<boolean> {
    this.assertWritable('remove');
    if (typeof id !== 'string' || id.length === 0) throw typeError('INVALID_TYPE', `id must be a non-empty string, got ${typeof id}`);
    if (typeof reason !== 'string') throw typeError('INVALID_TYPE', 'reason must be a string');
    return this.exclusive(async () => {
      const label = this.labelOrThrow(id);
      const row = this.catalogue.rowByLabel(label)!;
      if (row.status === 'removed') return false;
      this.catalogue.setStatus(label, 'removed', reason, true);
      this.checkpoint('remove-committed');
      this.vectors.remove(label);
      this.unindexed.delete(label);
      // Readers that read the row before the commit may still hand out the id; readImage then says IMAGE_NOT_FOUND.
      if (row.path === null) this.blobs.delete(row.sha256);
      this.seq = this.catalogue.currentSeq();
      this.unsaved++;
      if (this.unsaved >= (this.options.saveEvery ?? 5000)) this.saveIndex();
      return true;
    });
  }

  /** Blocks an image (a policy decision): excluded from results, bytes and embedding kept for review. */
  async block(id: string, reason: string): Promise<void> {
    this.assertWritable('block');
    if (typeof id !== 'string') throw typeError('INVALID_TYPE', 'id must be a string');
    if (typeof reason !== 'string' || reason.trim().length === 0) throw typeError('INVALID_TYPE', 'reason must be a non-empty string');
    return this.exclusive(async () => {
      const label = this.labelOrThrow(id);
      if (this.catalogue.byLabel(label)!.status === 'removed') throw new RagdiffError('IMAGE_REMOVED', `image ${id} was removed`);
      this.catalogue.setStatus(label, 'blocked', reason);
      this.vectors.remove(label);
      this.unindexed.delete(label);
      this.seq = this.catalogue.currentSeq();
      this.unsaved++;
    });
  }

  /** Returns a blocked image to the searchable set (needs its stored embedding). */
  async unblock(id: string): Promise<void> {
    this.assertWritable('unblock');
    if (typeof id !== 'string') throw typeError('INVALID_TYPE', 'id must be a string');
    return this.exclusive(async () => {
      const label = this.labelOrThrow(id);
      const row = this.catalogue.rowByLabel(label)!;
      if (row.status !== 'blocked') throw new RagdiffError('INVALID_STATE', `image ${id} is ${row.status}, not blocked`);
      if (!row.embedding || row.embedding.byteLength !== this.dim * 4) {
        throw new RagdiffError('INVALID_STATE', `image ${id} was blocked at ingest and has no embedding; add it again instead`);
      }
      this.catalogue.setStatus(label, 'active', null);
      this.vectors.setVector(label, blobToEmbedding(row.embedding, this.dim));
      this.seq = this.catalogue.currentSeq();
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
    this.assertWritable('rebuild');
    if (options.reembed !== undefined && typeof options.reembed !== 'boolean') throw typeError('INVALID_TYPE', 'reembed must be a boolean');
    return this.exclusive(() => this.rebuildNow(options));
  }

  private async rebuildNow(options: RebuildOptions): Promise<RebuildReport> {
    const report: RebuildReport = { indexed: 0, reembedded: 0, failed: [] };
    const cat = this.catalogue;
    if (options.reembed) {
      const dim = this.encoder.dim;
      const rows: LoadRow[] = [];
      for (const r of cat.rows()) if (r.status !== 'removed' && (r.status === 'active' || r.embedding !== null)) rows.push(r);
      const batch = this.options.batchSize ?? 64;
      const updates: { label: number; blob: Buffer | null; failure?: string }[] = [];
      for (let s = 0; s < rows.length; s += batch) {
        const chunk = rows.slice(s, s + batch);
        const ok: { row: LoadRow; c: DecodedCandidate }[] = [];
        for (const row of chunk) {
          try {
            const bytes = row.path !== null ? readRegularFile(row.path, this.options.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES) : this.blobs.read(row.sha256);
            const c = await decodeCandidate(new Uint8Array(bytes), this.encoder, { maxPixels: this.options.maxPixels, maxBytes: this.options.maxInputBytes });
            if (c.sha256 !== row.sha256) throw new RagdiffError('IMAGE_CHANGED', `the bytes of ${row.id} changed since they were added`);
            ok.push({ row, c });
          } catch (e) {
            const info = errorInfo(e);
            const code = info.code === 'ENOENT' || info.code === 'FILE_NOT_FOUND' || /ENOENT/.test(info.message) ? 'IMAGE_MISSING' : info.code;
            report.failed.push({ id: row.id, code, message: info.message });
            updates.push({ label: row.label, blob: null, failure: `${code}: ${info.message}` });
          }
        }
        const vecs = await embedCandidates(this.encoder, ok.map((o) => o.c.pixels));
        ok.forEach((o, j) => updates.push({ label: o.row.label, blob: embeddingToBlob(vecs[j]!) }));
        report.reembedded += ok.length;
        options.onProgress?.({ phase: 'embed', done: Math.min(rows.length, s + batch), total: rows.length });
      }
      const encoderId = this.encoder.id ?? `anonymous-${dim}`;
      cat.transaction((seq) => {
        for (const u of updates) {
          if (u.failure !== undefined) cat.updateRow(u.label, seq, { embedding: null, status: 'blocked', reason: u.failure });
          else cat.updateRow(u.label, seq, { embedding: u.blob });
        }
        cat.setMeta('dim', String(dim));
        cat.setMeta('encoder_id', encoderId);
      });
      this.dim = dim;
      this.encoderId = encoderId;
    }
    // A fresh graph from the committed embeddings.
    const fresh = new VectorIndex(this.dim, this.hnswParams, Math.max(1024, Math.ceil(this.vectors.size * 1.25)));
    this.unindexed.clear();
    for (const row of cat.rows()) {
      if (row.status !== 'active') continue;
      if (row.embedding && row.embedding.byteLength === this.dim * 4) fresh.setVector(row.label, blobToEmbedding(row.embedding, this.dim), false);
      else this.unindexed.add(row.label);
    }
    fresh.buildGraph((done, total) => options.onProgress?.({ phase: 'index', done, total }));
    this.vectors = fresh;
    this.seq = cat.currentSeq();
    report.indexed = fresh.size;
    this.saveIndex();
    return report;
  }

  // ---------------------------------------------------------------- lifecycle

  /** Saves the index if it changed (writer), closes the database and releases the writer lock it holds. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.chain;
    this.closed = true;
    try {
      if (!this.readOnly && this.unsaved > 0) this.saveIndex();
    } finally {
      this.catalogue.close();
      this.lock?.release();
      if (this.options.ownsEncoder) await (this.encoder as { close?(): Promise<void> }).close?.();
    }
  }
}

function mismatchError(root: string, storedEncoder: string, dim: number, encoderId: string, encDim: number): RagdiffError {
  return new RagdiffError(
    'ENCODER_MISMATCH',
    `the store in ${root} was embedded by ${storedEncoder} (width ${dim}); this encoder is ${encoderId} (width ${encDim}). ` +
      'Re-embed it with `ragdiff index rebuild --reembed` or open with onEncoderMismatch: "reembed"',
  );
}
