/**
 * The store's SQLite database: metadata of every image ever offered to the
 * store (active, removed or blocked), its embedding, and the store parameters.
 *
 * SQLite is the source of truth. The vector index is derived from it and can
 * always be rebuilt; it records the change sequence number (`seq`) it
 * reflects, and rows changed after that are replayed into it on open.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { RagdiffError } from '../errors.js';

export const SCHEMA_VERSION = 1;

export type ImageStatus = 'active' | 'removed' | 'blocked';

/** A row of the images table, as stored. */
export interface ImageRow {
  label: number;
  id: string;
  sha256: string;
  phash: string;
  colour: number;
  source: string;
  licence: string;
  attribution: string;
  name: string;
  /** JSON array of strings. */
  tags: string;
  width: number;
  height: number;
  format: string;
  bytes: number;
  origin: string;
  /** Absolute path of referenced (not copied) bytes; null when the store holds a copy. */
  path: string | null;
  added_at: string;
  status: ImageStatus;
  reason: string | null;
  status_at: string | null;
  seq: number;
  embedding: Buffer | null;
}

const DDL = `
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS images (
  label       INTEGER PRIMARY KEY AUTOINCREMENT,
  id          TEXT NOT NULL UNIQUE,
  sha256      TEXT NOT NULL UNIQUE,
  phash       TEXT NOT NULL,
  colour      INTEGER NOT NULL,
  source      TEXT NOT NULL DEFAULT '',
  licence     TEXT NOT NULL DEFAULT '',
  attribution TEXT NOT NULL DEFAULT '',
  name        TEXT NOT NULL DEFAULT '',
  tags        TEXT NOT NULL DEFAULT '[]',
  width       INTEGER NOT NULL,
  height      INTEGER NOT NULL,
  format      TEXT NOT NULL,
  bytes       INTEGER NOT NULL,
  origin      TEXT NOT NULL DEFAULT '',
  path        TEXT,
  added_at    TEXT NOT NULL,
  status      TEXT NOT NULL CHECK (status IN ('active', 'removed', 'blocked')),
  reason      TEXT,
  status_at   TEXT,
  seq         INTEGER NOT NULL,
  embedding   BLOB
);
CREATE INDEX IF NOT EXISTS images_seq ON images(seq);
CREATE INDEX IF NOT EXISTS images_status ON images(status);
CREATE INDEX IF NOT EXISTS images_source ON images(source);
`;

/**
 * Opens the store database. The writer (who holds the writer lock) creates
 * and migrates it; a reader opens it read-only and never writes a byte — in
 * WAL mode its reads are snapshots that never block the writer.
 */
export function openDatabase(path: string, options: { readOnly?: boolean } = {}): Database.Database {
  let db: Database.Database;
  try {
    db = options.readOnly ? new Database(path, { readonly: true, fileMustExist: true }) : new Database(path);
  } catch (e) {
    if (options.readOnly && !existsSync(path)) throw new RagdiffError('STORE_NOT_FOUND', `no image store at ${path}`, { cause: e });
    throw new RagdiffError('STORE_CORRUPT', `cannot open the store database ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    if (options.readOnly) {
      const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
      if (!hasMeta || getMeta(db, 'dim') === undefined) {
        db.close();
        throw new RagdiffError('STORE_NOT_FOUND', `the store at ${path} is not initialised yet (its writer is creating it)`);
      }
    } else {
      // WAL: readers never block the writer, and a killed process loses at most the open transaction.
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') throw new Error(`integrity check: ${String(check)}`);
      db.exec(DDL);
    }
    const version = getMeta(db, 'schema_version');
    if (version === undefined && !options.readOnly) setMeta(db, 'schema_version', String(SCHEMA_VERSION));
    else if (Number(version) > SCHEMA_VERSION) {
      throw new Error(`the store was written by a newer ragdiff (schema ${version}, this one reads ${SCHEMA_VERSION})`);
    }
  } catch (e) {
    if (db.open) db.close();
    if (e instanceof RagdiffError) throw e;
    throw new RagdiffError('STORE_CORRUPT', `the store database ${path} is not usable: ${(e as Error).message}`, { cause: e });
  }
  return db;
}

export function getMeta(db: Database.Database, key: string): string | undefined {
  const row = db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined;
  return row?.value;
}

export function setMeta(db: Database.Database, key: string, value: string): void {
  db.prepare('INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value').run(key, value);
}

/** Allocates the next change sequence number (call inside the transaction that uses it). */
export function nextSeq(db: Database.Database): number {
  const seq = Number(getMeta(db, 'seq') ?? '0') + 1;
  setMeta(db, 'seq', String(seq));
  return seq;
}

export function currentSeq(db: Database.Database): number {
  return Number(getMeta(db, 'seq') ?? '0');
}

export function embeddingToBlob(v: Float32Array): Buffer {
  return Buffer.from(v.buffer.slice(v.byteOffset, v.byteOffset + v.byteLength));
}

export function blobToEmbedding(b: Buffer, dim: number): Float32Array {
  if (b.byteLength !== dim * 4) throw new RagdiffError('STORE_CORRUPT', `stored embedding has ${b.byteLength / 4} values, expected ${dim}`);
  const out = new Float32Array(dim);
  new Uint8Array(out.buffer).set(b);
  return out;
}
