/**
 * Connecting to the store's PostgreSQL: URL checks, a pool, and turning the
 * driver's connection failures into typed errors (STORE_UNREACHABLE) that
 * never echo a password.
 */
import pg from 'pg';
import { RagdiffError, rangeError, typeError } from '../../errors.js';

/** True for the locations the PostgreSQL backend serves. */
export function isPostgresUrl(location: unknown): location is string {
  return typeof location === 'string' && /^postgres(ql)?:\/\//i.test(location);
}

/** The URL without its password, for messages and stats. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

export interface PgConnectOptions {
  /** Connections in the pool. Default 4. */
  poolSize?: number;
  /** Give up connecting after this long. Default 10 000 ms. */
  connectTimeoutMs?: number;
}

/** Driver errors that mean the connection, not the statement, failed. */
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', '57P01', '57P02', '57P03', '08000', '08003', '08006', '08001', '08004']);

export function isConnectionError(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown } | null;
  if (typeof err?.code === 'string' && CONNECTION_CODES.has(err.code)) return true;
  const m = String(err?.message ?? '');
  return /Connection terminated|connection timeout|Client has encountered a connection error|not queryable|timeout exceeded when trying to connect/i.test(m);
}

/** Wraps a connection failure as STORE_UNREACHABLE; other errors pass through unchanged. */
export function connectionError(e: unknown, url: string, doing: string): unknown {
  if (e instanceof RagdiffError || !isConnectionError(e)) return e;
  const err = e as { code?: string; message?: string };
  return new RagdiffError('STORE_UNREACHABLE', `the store's database at ${redactUrl(url)} ${doing}: ${err.code ? `${err.code} ` : ''}${err.message ?? String(e)}`, { cause: e });
}

/** Opens a pool and proves it with one round trip (a refusing server fails here, typed). */
export async function openPool(url: string, options: PgConnectOptions = {}): Promise<pg.Pool> {
  if (!isPostgresUrl(url)) throw typeError('INVALID_VALUE', `a PostgreSQL store location must be a postgres:// URL, got ${JSON.stringify(redactUrl(String(url)))}`);
  const poolSize = options.poolSize ?? 4;
  if (!Number.isInteger(poolSize) || poolSize < 1 || poolSize > 1000) throw rangeError('OUT_OF_RANGE', `poolSize must be an integer in 1..1000, got ${String(poolSize)}`);
  const timeout = options.connectTimeoutMs ?? 10_000;
  if (!Number.isInteger(timeout) || timeout < 1) throw rangeError('OUT_OF_RANGE', `connectTimeoutMs must be a positive integer, got ${String(timeout)}`);
  const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: timeout, application_name: 'ragdiff' });
  // An idle client whose server goes away emits 'error' on the pool; without a listener that would crash the process.
  pool.on('error', () => undefined);
  try {
    const c = await pool.connect();
    c.release();
  } catch (e) {
    await pool.end().catch(() => undefined);
    throw connectionError(e, url, 'refused the connection') as Error;
  }
  return pool;
}

/**
 * Runs `fn` in one transaction on one pooled client: COMMIT when it resolves,
 * ROLLBACK when it throws. A client whose connection broke is destroyed, not
 * returned to the pool.
 */
export async function inTransaction<T>(pool: pg.Pool, url: string, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (e) {
    throw connectionError(e, url, 'could not be reached') as Error;
  }
  let broken = false;
  const onError = () => (broken = true);
  client.on('error', onError);
  try {
    await client.query('BEGIN');
    const out = await fn(client);
    await client.query('COMMIT');
    return out;
  } catch (e) {
    if (isConnectionError(e)) broken = true;
    if (!broken) await client.query('ROLLBACK').catch(() => (broken = true));
    throw connectionError(e, url, 'dropped the connection mid-transaction (PostgreSQL rolled it back, unless the drop came during COMMIT; a retry is safe: ingest is idempotent)');
  } finally {
    client.off('error', onError);
    client.release(broken ? true : undefined);
  }
}
