/**
 * The catalogue: every image ever offered to the store (active, removed or
 * blocked) as rows in SQLite, plus the in-memory lookups ingest and query
 * need on every item (by SHA-256, id, label, perceptual hash, and compact
 * attribute codes for filters).
 *
 * `Catalogue` is the seam: ingest, query and the facade use only it, so a
 * later backend (PostgreSQL) implements the same interface. Rows change only
 * through `insert` / `setStatus` / `transaction`, each of which allocates a
 * new change sequence number (`seq`); readers catch up with `changesSince`.
 */
import type Database from 'better-sqlite3';
import { typeError } from '../errors.js';
import { normaliseTags } from './meta.js';
import { HashTable, type PerceptualHash } from './phash.js';
import { currentSeq, getMeta, nextSeq, openDatabase, setMeta, type ImageRow, type ImageStatus } from './schema.js';

/** What ingest needs to know about a stored image without reading its row. */
export interface Known {
  label: number;
  id: string;
  status: ImageStatus;
  reason: string | null;
}

/** The columns loading state needs (not the display fields: fewer objects to build at open). */
export type LoadRow = Pick<ImageRow, 'label' | 'id' | 'sha256' | 'phash' | 'colour' | 'source' | 'licence' | 'tags' | 'status' | 'reason' | 'seq' | 'path' | 'embedding'>;

/** A row to insert: everything but the label (assigned) and seq (the commit's). */
export type NewImageRow = Omit<ImageRow, 'label' | 'seq'>;

/** The attribute filters of a query. */
export interface AttributeFilter {
  sources?: readonly string[];
  licences?: readonly string[];
  tags?: readonly string[];
  excludeTags?: readonly string[];
  excludeIds?: readonly string[];
}

export interface Catalogue {
  readonly readOnly: boolean;
  getMeta(key: string): string | undefined;
  setMeta(key: string, value: string): void;
  currentSeq(): number;
  /** Every row's state columns (for loading state), in label order. */
  rows(): IterableIterator<LoadRow>;
  /** Runs `fn` inside one read transaction: every read in it sees the same committed state. */
  readSnapshot<T>(fn: () => T): T;
  /** Rows changed after `seq`, read in one snapshot with the sequence number they bring a reader to. Remembers them. */
  changesSince(seq: number): { seq: number; rows: ImageRow[] };
  rowByLabel(label: number): ImageRow | undefined;
  rowById(id: string): ImageRow | undefined;
  list(status: ImageStatus | undefined, limit: number, offset: number): ImageRow[];
  counts(): Record<ImageStatus, number>;
  /** Commits the rows in one transaction under one new seq; returns them with their labels. */
  insert(rows: readonly NewImageRow[]): ImageRow[];
  /** Commits a status change (and optionally drops the embedding) under a new seq. */
  setStatus(label: number, status: ImageStatus, reason: string | null, dropEmbedding?: boolean): void;
  /** Runs `fn` in one write transaction with a new seq. */
  transaction<T>(fn: (seq: number) => T): T;
  /** Updates one row inside a `transaction`. */
  updateRow(label: number, seq: number, fields: { embedding?: Buffer | null; status?: ImageStatus; reason?: string | null }): void;
  /** Puts a row into the in-memory lookups (called for every row loaded or committed). */
  remember(row: Pick<ImageRow, 'label' | 'id' | 'sha256' | 'phash' | 'colour' | 'source' | 'licence' | 'tags' | 'status' | 'reason'>): void;
  bySha(sha256: string): Known | undefined;
  byLabel(label: number): Known | undefined;
  labelOf(id: string): number | undefined;
  hasId(id: string): boolean;
  nearest(p: PerceptualHash, maxDistance: number, maxColourDifference: number): { label: number; distance: number } | undefined;
  /** Candidate mask for the filters over labels < bound that `isActive`, or undefined when there are no filters. */
  filterMask(f: AttributeFilter, bound: number, isActive: (label: number) => boolean): { mask: Uint8Array; labels: Int32Array } | undefined;
  close(): void;
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

export function checkStrings(name: string, v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw typeError('INVALID_TYPE', `${name} must be an array of strings, got ${v === null ? 'null' : typeof v}`);
  v.forEach((s, i) => {
    if (typeof s !== 'string') throw typeError('INVALID_TYPE', `${name}[${i}] must be a string, got ${s === null ? 'null' : typeof s}`);
  });
  return v as string[];
}

export class SqliteCatalogue implements Catalogue {
  private readonly db: Database.Database;
  private readonly bySha_ = new Map<string, Known>();
  private readonly byId_ = new Map<string, number>();
  private readonly byLabel_ = new Map<number, Known>();
  private readonly hashes = new HashTable<number>();
  private readonly sources = new Interner();
  private readonly licences = new Interner();
  private readonly tagCodes = new Interner();
  private sourceOf = new Int32Array(1024);
  private licenceOf = new Int32Array(1024);
  private tagsOf: (Int32Array | undefined)[] = [];
  private readonly stmt: {
    insert?: Database.Statement;
    setStatus?: Database.Statement;
    byLabel: Database.Statement;
    byId: Database.Statement;
    changed: Database.Statement;
    seq: Database.Statement;
  };

  constructor(path: string, readonly readOnly: boolean) {
    this.db = openDatabase(path, { readOnly });
    const db = this.db;
    this.stmt = {
      insert: readOnly ? undefined : db.prepare(`INSERT INTO images (id, sha256, phash, colour, source, licence, attribution, name, tags, width, height, format, bytes, origin, path, added_at, status, reason, status_at, seq, embedding)
        VALUES (@id, @sha256, @phash, @colour, @source, @licence, @attribution, @name, @tags, @width, @height, @format, @bytes, @origin, @path, @added_at, @status, @reason, @status_at, @seq, @embedding)`),
      setStatus: readOnly ? undefined : db.prepare('UPDATE images SET status = ?, reason = ?, status_at = ?, seq = ? WHERE label = ?'),
      byLabel: db.prepare('SELECT * FROM images WHERE label = ?'),
      byId: db.prepare('SELECT * FROM images WHERE id = ?'),
      changed: db.prepare('SELECT * FROM images WHERE seq > ? ORDER BY label'),
      seq: db.prepare("SELECT value FROM meta WHERE key = 'seq'"),
    };
  }

  getMeta(key: string): string | undefined {
    return getMeta(this.db, key);
  }

  setMeta(key: string, value: string): void {
    setMeta(this.db, key, value);
  }

  currentSeq(): number {
    const row = this.stmt.seq.get() as { value: string } | undefined;
    return Number(row?.value ?? '0');
  }

  rows(): IterableIterator<LoadRow> {
    return this.db
      .prepare('SELECT label, id, sha256, phash, colour, source, licence, tags, status, reason, seq, path, embedding FROM images ORDER BY label')
      .iterate() as IterableIterator<LoadRow>;
  }

  readSnapshot<T>(fn: () => T): T {
    return this.db.transaction(fn).deferred();
  }

  changesSince(seq: number): { seq: number; rows: ImageRow[] } {
    // One read transaction: the rows and the seq come from the same snapshot.
    const read = this.db.transaction(() => ({ seq: currentSeq(this.db), rows: this.stmt.changed.all(seq) as ImageRow[] }));
    const out = read.deferred();
    for (const r of out.rows) this.remember(r);
    return out;
  }

  rowByLabel(label: number): ImageRow | undefined {
    return this.stmt.byLabel.get(label) as ImageRow | undefined;
  }

  rowById(id: string): ImageRow | undefined {
    return this.stmt.byId.get(id) as ImageRow | undefined;
  }

  list(status: ImageStatus | undefined, limit: number, offset: number): ImageRow[] {
    return (status
      ? this.db.prepare('SELECT * FROM images WHERE status = ? ORDER BY label LIMIT ? OFFSET ?').all(status, limit, offset)
      : this.db.prepare('SELECT * FROM images ORDER BY label LIMIT ? OFFSET ?').all(limit, offset)) as ImageRow[];
  }

  counts(): Record<ImageStatus, number> {
    const counts = { active: 0, removed: 0, blocked: 0 };
    for (const r of this.db.prepare('SELECT status, COUNT(*) AS n FROM images GROUP BY status').all() as { status: ImageStatus; n: number }[]) counts[r.status] = r.n;
    return counts;
  }

  insert(rows: readonly NewImageRow[]): ImageRow[] {
    const out: ImageRow[] = [];
    this.db.transaction(() => {
      const seq = nextSeq(this.db);
      for (const r of rows) {
        const info = this.stmt.insert!.run({ ...r, seq });
        out.push({ ...r, seq, label: Number(info.lastInsertRowid) });
      }
    })();
    for (const r of out) this.remember(r);
    return out;
  }

  setStatus(label: number, status: ImageStatus, reason: string | null, dropEmbedding = false): void {
    this.db.transaction(() => {
      const seq = nextSeq(this.db);
      this.stmt.setStatus!.run(status, reason, new Date().toISOString(), seq, label);
      if (dropEmbedding) this.db.prepare('UPDATE images SET embedding = NULL WHERE label = ?').run(label);
    })();
    const known = this.byLabel_.get(label);
    if (known) {
      known.status = status;
      known.reason = reason;
    }
  }

  transaction<T>(fn: (seq: number) => T): T {
    return this.db.transaction(() => fn(nextSeq(this.db)))();
  }

  updateRow(label: number, seq: number, fields: { embedding?: Buffer | null; status?: ImageStatus; reason?: string | null }): void {
    if (fields.embedding !== undefined) this.db.prepare('UPDATE images SET embedding = ?, seq = ? WHERE label = ?').run(fields.embedding, seq, label);
    if (fields.status !== undefined) {
      this.db.prepare('UPDATE images SET status = ?, reason = ?, status_at = ?, seq = ? WHERE label = ?').run(fields.status, fields.reason ?? null, new Date().toISOString(), seq, label);
      const known = this.byLabel_.get(label);
      if (known) {
        known.status = fields.status;
        known.reason = fields.reason ?? null;
      }
    }
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

  remember(row: Pick<ImageRow, 'label' | 'id' | 'sha256' | 'phash' | 'colour' | 'source' | 'licence' | 'tags' | 'status' | 'reason'>): void {
    const existing = this.byLabel_.get(row.label);
    if (existing) {
      // A replayed change of a known row: status is all that changes after insert.
      existing.status = row.status;
      existing.reason = row.reason;
      return;
    }
    const known: Known = { label: row.label, id: row.id, status: row.status, reason: row.reason };
    this.bySha_.set(row.sha256, known);
    this.byId_.set(row.id, row.label);
    this.byLabel_.set(row.label, known);
    this.hashes.add(row.label, { hash: row.phash, colour: row.colour });
    this.ensureLabel(row.label);
    this.sourceOf[row.label] = this.sources.code(row.source);
    this.licenceOf[row.label] = this.licences.code(row.licence);
    const tags = JSON.parse(row.tags) as string[];
    this.tagsOf[row.label] = tags.length ? Int32Array.from(tags, (t) => this.tagCodes.code(t)) : undefined;
  }

  bySha(sha256: string): Known | undefined {
    return this.bySha_.get(sha256);
  }

  byLabel(label: number): Known | undefined {
    return this.byLabel_.get(label);
  }

  labelOf(id: string): number | undefined {
    return this.byId_.get(id);
  }

  hasId(id: string): boolean {
    return this.byId_.has(id);
  }

  nearest(p: PerceptualHash, maxDistance: number, maxColourDifference: number): { label: number; distance: number } | undefined {
    const hit = this.hashes.nearest(p, maxDistance, maxColourDifference);
    return hit ? { label: hit.key, distance: hit.distance } : undefined;
  }

  filterMask(f: AttributeFilter, bound: number, isActive: (label: number) => boolean): { mask: Uint8Array; labels: Int32Array } | undefined {
    const codes = (list: readonly string[] | undefined, interner: Interner) =>
      list === undefined ? undefined : new Set(list.map((s) => interner.find(s.trim()) ?? -1));
    const sources = codes(f.sources, this.sources);
    const licences = codes(f.licences, this.licences);
    const tags = f.tags === undefined ? undefined : codes(normaliseTags('tags', f.tags), this.tagCodes);
    const excludeTags = f.excludeTags === undefined ? undefined : codes(normaliseTags('excludeTags', f.excludeTags), this.tagCodes);
    const excluded = new Set<number>();
    for (const id of f.excludeIds ?? []) {
      const l = this.byId_.get(id);
      if (l !== undefined) excluded.add(l);
    }
    if (!sources && !licences && !tags && !excludeTags && excluded.size === 0) return undefined;
    const mask = new Uint8Array(bound);
    const labels: number[] = [];
    for (let l = 0; l < bound; l++) {
      if (!isActive(l)) continue;
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

  close(): void {
    if (this.db.open) this.db.close();
  }
}
