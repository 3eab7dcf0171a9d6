/**
 * Applying schema migrations on open (and by `ragdiff index migrate-schema`).
 * Many processes may open a store at once: the whole check-and-migrate runs
 * in one transaction under a transaction-scoped advisory lock, so exactly
 * one of them migrates and the others see the result.
 */
import type pg from 'pg';
import { RagdiffError } from '../../errors.js';
import { MIGRATIONS, SCHEMA_VERSION, type SchemaParams } from './schema.js';

/** An arbitrary constant naming ragdiff's schema lock (pg_advisory_xact_lock takes a bigint). */
const SCHEMA_LOCK = 7_236_584_911;

/** Install hints for a database without pgvector. */
export const PGVECTOR_HINT =
  'install pgvector ≥ 0.5 on the server (Debian/Ubuntu: apt install postgresql-<major>-pgvector; Docker: the pgvector/pgvector image; ' +
  'managed services: enable the "vector" extension), then run CREATE EXTENSION vector as a role allowed to, or grant this role that right';

export interface MigrateReport {
  from: number;
  to: number;
  applied: number[];
  vectorVersion: string;
}

/** The pgvector version installed in the database, creating the extension when it is available but not yet created. */
async function ensureVector(c: pg.ClientBase): Promise<string> {
  const have = await c.query<{ extversion: string }>(`SELECT extversion FROM pg_extension WHERE extname = 'vector'`);
  if (have.rows[0]) return have.rows[0].extversion;
  await c.query('SAVEPOINT ragdiff_vector');
  try {
    await c.query('CREATE EXTENSION IF NOT EXISTS vector');
    await c.query('RELEASE SAVEPOINT ragdiff_vector');
  } catch (e) {
    await c.query('ROLLBACK TO SAVEPOINT ragdiff_vector');
    const err = e as { message?: string; code?: string };
    throw new RagdiffError('VECTOR_EXTENSION_MISSING', `the database has no pgvector extension (${err.code ?? ''} ${err.message ?? String(e)}): ${PGVECTOR_HINT}`, { cause: e });
  }
  const now = await c.query<{ extversion: string }>(`SELECT extversion FROM pg_extension WHERE extname = 'vector'`);
  return now.rows[0]!.extversion;
}

/** The highest applied version (0 for a database with no ragdiff schema). */
export async function currentVersion(c: pg.ClientBase): Promise<number> {
  const t = await c.query(`SELECT to_regclass('ragdiff_schema_version') AS t`);
  if (!t.rows[0].t) return 0;
  const v = await c.query<{ v: number | null }>('SELECT max(version) AS v FROM ragdiff_schema_version');
  return v.rows[0]?.v ?? 0;
}

export function tooNew(version: number, where: string): RagdiffError {
  return new RagdiffError('SCHEMA_TOO_NEW', `the store at ${where} has schema version ${version}, written by a newer ragdiff; this one understands up to ${SCHEMA_VERSION}: upgrade ragdiff`);
}

/**
 * Brings the schema up to SCHEMA_VERSION inside the caller's transaction.
 * `params` is read only when the store is created (width and HNSW shape are
 * fixed then). Throws VECTOR_EXTENSION_MISSING, SCHEMA_TOO_NEW.
 */
export async function migrate(c: pg.ClientBase, params: SchemaParams, where: string): Promise<MigrateReport> {
  await c.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
  const vectorVersion = await ensureVector(c);
  const from = await currentVersion(c);
  if (from > SCHEMA_VERSION) throw tooNew(from, where);
  const applied: number[] = [];
  if (from === 0) {
    await c.query(`CREATE TABLE IF NOT EXISTS ragdiff_schema_version (
      version    integer PRIMARY KEY,
      describe   text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now()
    )`);
  }
  for (const m of MIGRATIONS) {
    if (m.version <= from) continue;
    for (const sql of m.sql(params)) await c.query(sql);
    await c.query('INSERT INTO ragdiff_schema_version (version, describe) VALUES ($1, $2)', [m.version, m.describe]);
    applied.push(m.version);
  }
  return { from, to: SCHEMA_VERSION, applied, vectorVersion };
}
