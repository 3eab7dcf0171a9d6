/**
 * PgReferenceStore: the reference store on PostgreSQL + pgvector, shared by
 * any number of processes on any number of machines (no writer lock: the
 * database's constraints and transactions decide). The files beside it:
 * connect.ts (URL, pool, typed connection errors), schema.ts + migrations.ts
 * (versioned schema), ingest.ts, query.ts, blobs.ts (image bytes), rows.ts.
 */
import type pg from 'pg';
import { RagdiffError, rangeError, typeError } from '../../errors.js';
import type { ImageTextEncoder } from '../../models/encoders.js';
import { decodeCandidate, embedCandidates, normaliseEmbedding, runScreen, DEFAULT_MAX_INPUT_BYTES, type ImagePurpose, type ScreenCandidate } from '../gate.js';
import { normaliseMeta, type ImageMeta } from '../meta.js';
import { checkQuery } from '../query.js';
import type { ListOptions, ReferenceStore } from '../reference-store.js';
import type { ImageStatus } from '../schema.js';
import type { AddInput, AddOptions, AddReport, ImageStoreOptions, QueryHit, QueryRequest, ReferenceEmbedding, StoreStats, StoredImage } from '../types.js';
import { DEFAULT_HNSW, type HnswParams } from '../vectors.js';
import { listInputs } from '../walk.js';
import { deleteBlobIfUnused, readBlob } from './blobs.js';
import { connectionError, inTransaction, openPool, redactUrl, type PgConnectOptions } from './connect.js';
import { bySha, ingestPg, nearestStored } from './ingest.js';
import { currentVersion, migrate, tooNew, type MigrateReport } from './migrations.js';
import { searchPg, versionAtLeast } from './query.js';
import { IMAGE_COLUMNS, rowToImage, vectorFromText, type PgImageRow } from './rows.js';
import { SCHEMA_VERSION } from './schema.js';

export interface PgStoreOptions extends Pick<ImageStoreOptions, 'encoder' | 'create' | 'readOnly' | 'ownsEncoder' | 'nearDuplicates' | 'maxPixels' | 'maxInputBytes' | 'batchSize' | 'screen' | 'fetch'>, PgConnectOptions {
  /** HNSW shape, fixed when the store is created (M → pgvector's m); efSearch is per query. */
  hnsw?: Partial<Pick<HnswParams, 'M' | 'efConstruction' | 'efSearch'>>;
  /** Apply pending schema migrations on open (default true; false: refuse an outdated schema and leave it to `ragdiff index migrate-schema`). */
  migrate?: boolean;
  /** For fault tests only: awaited at named points of each ingest transaction. */
  testHooks?: { checkpoint?(name: string): void | Promise<void> };
}

const DEFAULT_NEAR = { maxDistance: 6, maxColourDifference: 24 };
/** How long the cached count of active images (for k's bound) may be trusted. */
const SIZE_TTL_MS = 1000;

function intOption(name: string, v: unknown, min: number, max: number, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw rangeError('OUT_OF_RANGE', `${name} must be an integer in ${min}..${max}, got ${String(v)}`);
  return v;
}

export class PgReferenceStore implements ReferenceStore {
  readonly encoder: ImageTextEncoder;
  readonly readOnly: boolean;
  /** The URL without its password. */
  readonly location: string;
  readonly width: number;
  readonly encoderId: string;
  /** pgvector's version in the database. */
  readonly vectorVersion: string;
  private readonly url: string;
  private readonly pool: pg.Pool;
  private readonly options: PgStoreOptions;
  private readonly hnsw: HnswParams;
  /** What open() migrated (writers only). */
  readonly migrated: MigrateReport | undefined;
  private sizeCache = { n: -1, at: 0 };
  private closed = false;

  private constructor(url: string, pool: pg.Pool, options: PgStoreOptions, init: { dim: number; encoderId: string; hnsw: HnswParams; vectorVersion: string; migrated?: MigrateReport }) {
    this.url = url;
    this.location = redactUrl(url);
    this.pool = pool;
    this.options = options;
    this.encoder = options.encoder;
    this.readOnly = options.readOnly === true;
    this.width = init.dim;
    this.encoderId = init.encoderId;
    this.hnsw = init.hnsw;
    this.vectorVersion = init.vectorVersion;
    this.migrated = init.migrated;
  }

  /**
   * Connects, applies pending schema migrations (unless `migrate: false` or
   * readOnly), creates the store on an empty database (unless `create:
   * false`) and checks the encoder. Typed failures: STORE_UNREACHABLE,
   * VECTOR_EXTENSION_MISSING, SCHEMA_TOO_NEW, STORE_NOT_FOUND, ENCODER_MISMATCH.
   */
  static async open(url: string, options: PgStoreOptions): Promise<PgReferenceStore> {
    if (typeof options !== 'object' || options === null) throw typeError('INVALID_TYPE', 'options must be an object with an encoder');
    const enc = options.encoder;
    if (!enc || typeof enc.embedImages !== 'function' || typeof enc.embedText !== 'function') throw typeError('INVALID_TYPE', 'options.encoder must have embedImages(images) and embedText(texts)');
    intOption('encoder.dim', enc.dim, 1, 16000, 0); // pgvector's HNSW indexes at most 16000 dimensions (2000 for vector before halfvec)
    const hnsw: HnswParams = { ...DEFAULT_HNSW, ...options.hnsw };
    intOption('hnsw.M', hnsw.M, 2, 100, 0); // pgvector's bounds
    intOption('hnsw.efConstruction', hnsw.efConstruction, 4, 1000, 0);
    intOption('hnsw.efSearch', hnsw.efSearch, 1, 1000, 0);
    if (hnsw.efConstruction < 2 * hnsw.M) throw rangeError('OUT_OF_RANGE', `hnsw.efConstruction must be at least 2 × M (${2 * hnsw.M}) for pgvector, got ${hnsw.efConstruction}`);
    intOption('batchSize', options.batchSize, 1, 4096, 0);
    const pool = await openPool(url, options);
    try {
      const encoderId = enc.id ?? `anonymous-${enc.dim}`;
      const init = await inTransaction(pool, url, async (c) => {
        const before = await currentVersion(c);
        if (before > SCHEMA_VERSION) throw tooNew(before, redactUrl(url));
        if (before === 0 && (options.create === false || options.readOnly)) throw new RagdiffError('STORE_NOT_FOUND', `no ragdiff store in ${redactUrl(url)}`);
        let vectorVersion: string;
        let migrated: MigrateReport | undefined;
        if (before < SCHEMA_VERSION && (options.migrate === false || options.readOnly)) {
          throw new RagdiffError('INVALID_STATE', `the store at ${redactUrl(url)} has schema version ${before}; run \`ragdiff index migrate-schema --store <url>\` (this ragdiff needs ${SCHEMA_VERSION})`);
        }
        if (options.readOnly) vectorVersion = (await c.query(`SELECT extversion FROM pg_extension WHERE extname = 'vector'`)).rows[0]?.extversion ?? '0';
        else {
          migrated = await migrate(c, { dim: enc.dim, m: hnsw.M, efConstruction: hnsw.efConstruction }, redactUrl(url));
          vectorVersion = migrated.vectorVersion;
        }
        if (!options.readOnly) {
          await c.query(
            `INSERT INTO ragdiff_meta (key, value) VALUES ('dim', $1), ('encoder_id', $2), ('space', 'cosine'), ('hnsw', $3), ('created_at', $4) ON CONFLICT (key) DO NOTHING`,
            [String(enc.dim), encoderId, JSON.stringify({ M: hnsw.M, efConstruction: hnsw.efConstruction }), new Date().toISOString()],
          );
        }
        const meta = new Map((await c.query<{ key: string; value: string }>('SELECT key, value FROM ragdiff_meta')).rows.map((r) => [r.key, r.value]));
        const stored = JSON.parse(meta.get('hnsw') ?? '{}') as Partial<HnswParams>;
        return { dim: Number(meta.get('dim')), encoderId: meta.get('encoder_id') ?? encoderId, hnsw: { ...hnsw, ...stored, efSearch: hnsw.efSearch }, vectorVersion, migrated };
      });
      if (init.encoderId !== encoderId || init.dim !== enc.dim) {
        throw new RagdiffError('ENCODER_MISMATCH', `the store at ${redactUrl(url)} was embedded by ${init.encoderId} (width ${init.dim}); this encoder is ${encoderId} (width ${enc.dim}). Open it with that encoder, or copy the images into a new store`);
      }
      return new PgReferenceStore(url, pool, options, init);
    } catch (e) {
      await pool.end().catch(() => undefined);
      throw e;
    }
  }

  /**
   * Applies pending schema migrations and nothing else (for a deploy step run
   * before the services start: `ragdiff index migrate-schema`). On an empty
   * database it creates the store for `options.encoder`'s width.
   */
  static async migrateSchema(url: string, options: PgStoreOptions): Promise<MigrateReport & { location: string }> {
    const store = await PgReferenceStore.open(url, { ...options, migrate: true, readOnly: false });
    try {
      return { ...store.migrated!, location: store.location };
    } finally {
      await store.close();
    }
  }

  // ---------------------------------------------------------------- plumbing

  private assertOpen(): void {
    if (this.closed) throw new RagdiffError('STORE_CLOSED', `the store ${this.location} is closed`);
  }

  private assertWritable(what: string): void {
    this.assertOpen();
    if (this.readOnly) throw new RagdiffError('STORE_READ_ONLY', `the store ${this.location} was opened read-only: ${what} needs a writer (open without readOnly)`);
  }

  private tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, this.url, fn);
  }

  private async q<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(sql, params);
    } catch (e) {
      throw connectionError(e, this.url, 'could not be reached') as Error;
    }
  }

  private nearOptions(): { maxDistance: number; maxColourDifference: number } | undefined {
    const n = this.options.nearDuplicates;
    if (n === false) return undefined;
    return { ...DEFAULT_NEAR, ...(n ?? {}) };
  }

  /** Active images (cached for a second: it bounds k, it is not a promise of what a query will find). */
  private async activeCount(fresh = false): Promise<number> {
    if (!fresh && this.sizeCache.n >= 0 && Date.now() - this.sizeCache.at < SIZE_TTL_MS) return this.sizeCache.n;
    const r = await this.q<{ n: string }>(`SELECT count(*) AS n FROM ragdiff_images WHERE status = 'active'`);
    this.sizeCache = { n: Number(r.rows[0]!.n), at: Date.now() };
    return this.sizeCache.n;
  }

  /** Runs statements in one transaction (for copy-local.ts; writers only). */
  async transaction<T>(fn: (query: (sql: string, params: unknown[]) => Promise<{ rowCount: number | null }>) => Promise<T>): Promise<T> {
    this.assertWritable('a write');
    this.sizeCache.at = 0;
    return this.tx((c) => fn((sql, params) => c.query(sql, params)));
  }

  // ---------------------------------------------------------------- reads

  async stats(): Promise<StoreStats> {
    this.assertOpen();
    const r = await this.q<{ status: ImageStatus; n: string }>('SELECT status, count(*) AS n FROM ragdiff_images GROUP BY status');
    const counts = { active: 0, removed: 0, blocked: 0 };
    for (const row of r.rows) counts[row.status] = Number(row.n);
    const seq = await this.q<{ s: string | null }>('SELECT max(label) AS s FROM ragdiff_images');
    return { dir: this.location, dim: this.width, encoderId: this.encoderId, ...counts, unindexed: 0, hnsw: { ...this.hnsw }, seq: Number(seq.rows[0]!.s ?? 0) };
  }

  async get(id: string): Promise<StoredImage | undefined> {
    this.assertOpen();
    if (typeof id !== 'string') throw typeError('INVALID_TYPE', `id must be a string, got ${typeof id}`);
    const r = await this.q<PgImageRow>(`SELECT ${IMAGE_COLUMNS} FROM ragdiff_images WHERE id = $1`, [id]);
    return r.rows[0] ? rowToImage(r.rows[0]) : undefined;
  }

  async embeddingOf(id: string): Promise<Float32Array | undefined> {
    this.assertOpen();
    if (typeof id !== 'string') throw typeError('INVALID_TYPE', `id must be a string, got ${typeof id}`);
    const r = await this.q<{ e: string }>(`SELECT embedding::text AS e FROM ragdiff_images WHERE id = $1 AND status = 'active'`, [id]);
    return r.rows[0] ? vectorFromText(r.rows[0].e) : undefined;
  }

  async readImage(id: string): Promise<Buffer> {
    this.assertOpen();
    if (typeof id !== 'string') throw typeError('INVALID_TYPE', `id must be a string, got ${typeof id}`);
    try {
      return await readBlob(this.pool, id);
    } catch (e) {
      throw connectionError(e, this.url, 'could not be reached') as Error;
    }
  }

  async list(options: ListOptions = {}): Promise<StoredImage[]> {
    this.assertOpen();
    const limit = intOption('limit', options.limit, 1, 1_000_000, 1000);
    const offset = intOption('offset', options.offset, 0, Number.MAX_SAFE_INTEGER, 0);
    if (options.status !== undefined && !['active', 'removed', 'blocked'].includes(options.status)) throw rangeError('INVALID_VALUE', `status must be active, removed or blocked, got ${JSON.stringify(options.status)}`);
    const r = options.status
      ? await this.q<PgImageRow>(`SELECT ${IMAGE_COLUMNS} FROM ragdiff_images WHERE status = $1 ORDER BY label LIMIT $2 OFFSET $3`, [options.status, limit, offset])
      : await this.q<PgImageRow>(`SELECT ${IMAGE_COLUMNS} FROM ragdiff_images ORDER BY label LIMIT $1 OFFSET $2`, [limit, offset]);
    return r.rows.map(rowToImage);
  }

  // ---------------------------------------------------------------- embedding

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
    return normaliseEmbedding(out?.[0] as Float32Array, this.width, 'text embedding');
  }

  /** As ImageStore.embedReference: the gate, the blocked-image checks and both screens; nothing stored. */
  async embedReference(bytes: Uint8Array, options: { meta?: ImageMeta; purpose?: ImagePurpose } = {}): Promise<ReferenceEmbedding> {
    try {
      return await this.embedReferenceNow(bytes, options);
    } catch (e) {
      throw connectionError(e, this.url, 'could not be reached') as Error;
    }
  }

  private async embedReferenceNow(bytes: Uint8Array, options: { meta?: ImageMeta; purpose?: ImagePurpose }): Promise<ReferenceEmbedding> {
    this.assertOpen();
    if (!(bytes instanceof Uint8Array)) throw typeError('INVALID_TYPE', 'image must be a Buffer or Uint8Array');
    const meta = normaliseMeta(options.meta);
    const c = await decodeCandidate(bytes, this.encoder, { maxPixels: this.options.maxPixels, maxBytes: this.options.maxInputBytes });
    const known = await bySha(this.pool, c.sha256);
    if (known?.status === 'blocked') throw new RagdiffError('IMAGE_BLOCKED', `the image matches blocked image ${known.id}: ${known.reason ?? 'blocked'}`);
    const near = this.nearOptions();
    if (near) {
      const k = await nearestStored(this.pool, c.phash, near);
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

  // ---------------------------------------------------------------- query

  async query(request: QueryRequest): Promise<QueryHit[]> {
    this.assertOpen();
    if (typeof request !== 'object' || request === null) throw typeError('INVALID_TYPE', 'query must be an object');
    const given = (['text', 'image', 'embedding'] as const).filter((f) => request[f] !== undefined);
    if (given.length !== 1) throw typeError('INVALID_ARGUMENT', `a query needs exactly one of text, image or embedding, got ${given.length ? given.join(', ') : 'none'}`);
    let k: number;
    try {
      k = checkQuery(request, await this.activeCount(), this.location);
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== 'STORE_EMPTY' && code !== 'OUT_OF_RANGE') throw e;
      k = checkQuery(request, await this.activeCount(true), this.location); // the cache may be behind other writers
    }
    let vec: Float32Array;
    if (request.text !== undefined) vec = await this.embedText(request.text);
    else if (request.image !== undefined) vec = (await this.embedReference(request.image, { purpose: 'query' })).embedding;
    else vec = normaliseEmbedding(request.embedding as Float32Array, this.width, 'query.embedding');
    return searchPg({ tx: (fn) => this.tx(fn), efSearch: this.hnsw.efSearch, iterative: versionAtLeast(this.vectorVersion, '0.8.0'), screen: this.options.screen }, vec, k, request);
  }

  // ---------------------------------------------------------------- writes

  /**
   * Adds images (paths, directories, Buffers, { path | bytes, meta }), each
   * reported as the local store does. Bytes are always copied into the
   * database (a path on one machine means nothing to the others). A dropped
   * connection throws STORE_UNREACHABLE; the batch in flight is rolled back
   * and a retry reports what was committed as duplicates.
   */
  async add(inputs: readonly AddInput[], meta?: ImageMeta, options: AddOptions = {}): Promise<AddReport> {
    this.assertWritable('add');
    if (!Array.isArray(inputs)) throw typeError('INVALID_TYPE', 'inputs must be an array of paths, Buffers or { path | bytes, meta } objects');
    if (options.copy === false) throw rangeError('INVALID_VALUE', 'a PostgreSQL store always holds a copy of the bytes: copy: false applies to local stores only');
    if (options.onProgress !== undefined && typeof options.onProgress !== 'function') throw typeError('INVALID_TYPE', 'options.onProgress must be a function');
    const base = normaliseMeta(meta);
    inputs.forEach((input, i) => {
      if (typeof input === 'string' || input instanceof Uint8Array) return;
      if (input && typeof input === 'object') normaliseMeta((input as { meta?: unknown }).meta, `inputs[${i}].meta`);
    });
    const items = listInputs(inputs, base, { copy: true, recursive: options.recursive ?? true, maxBytes: this.options.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES });
    this.sizeCache.at = 0;
    return ingestPg({
      encoder: this.encoder,
      pool: this.pool,
      tx: (fn) => this.tx(fn),
      screen: this.options.screen,
      near: this.nearOptions(),
      batchSize: this.options.batchSize ?? 64,
      maxPixels: this.options.maxPixels,
      maxInputBytes: this.options.maxInputBytes,
      checkpoint: this.options.testHooks?.checkpoint,
    }, items, options.onProgress, options.signal).catch((e: unknown) => {
      throw connectionError(e, this.url, 'dropped the connection during the ingest (batches committed before it stay; a retry reports them as duplicates)') as Error;
    });
  }

  /**
   * Opt-out: in one transaction the row becomes 'removed' (its embedding
   * cleared, so it leaves the HNSW graph) and its bytes are deleted. Re-adding
   * the image reports 'removed'. Resolves false when it was already removed.
   */
  async remove(id: string, reason = 'removed on request'): Promise<boolean> {
    this.assertWritable('remove');
    if (typeof id !== 'string' || id.length === 0) throw typeError('INVALID_TYPE', `id must be a non-empty string, got ${typeof id}`);
    if (typeof reason !== 'string') throw typeError('INVALID_TYPE', 'reason must be a string');
    this.sizeCache.at = 0;
    return this.tx(async (c) => {
      const row = await c.query<{ status: ImageStatus; sha256: string }>('SELECT status, sha256 FROM ragdiff_images WHERE id = $1 FOR UPDATE', [id]);
      if (!row.rows[0]) throw new RagdiffError('IMAGE_NOT_FOUND', `no image with id ${JSON.stringify(id)}`);
      if (row.rows[0].status === 'removed') return false;
      await c.query(`UPDATE ragdiff_images SET status = 'removed', reason = $2, status_at = now(), embedding = NULL WHERE id = $1`, [id, reason]);
      await deleteBlobIfUnused(c, row.rows[0].sha256);
      return true;
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      await this.pool.end();
    } finally {
      if (this.options.ownsEncoder) await (this.encoder as { close?(): Promise<void> }).close?.();
    }
  }
}
