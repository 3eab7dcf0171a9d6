/**
 * Nearest-neighbour queries on pgvector, with the local store's filters and
 * result shape.
 *
 * Each query runs in its own transaction so that `SET LOCAL hnsw.ef_search`
 * (the recall/speed knob, raised to at least k) applies to it alone.
 *
 * Filtered queries: HNSW finds ef_search candidates first and filters them
 * after, so a selective filter can leave fewer than k. On pgvector ≥ 0.8 the
 * query enables iterative index scans (`hnsw.iterative_scan =
 * relaxed_order`): the scan keeps going until k rows pass the filter (bounded
 * by hnsw.max_scan_tuples); "relaxed" means rows can come slightly out of
 * order, so results are re-sorted by score here. On older pgvector the
 * fallback is over-fetching: ef_search and LIMIT are raised (×4 per round, up
 * to ef_search's cap of 1000) and the query re-run while it returns fewer
 * than k and more may exist; past the cap, the last round disables index
 * scans for the statement (`SET LOCAL enable_indexscan = off`), which is an
 * exact scan over the filtered rows — slow on big stores, never wrong.
 */
import type pg from 'pg';
import { passesAtRetrieval, type ImageScreen } from '../gate.js';
import type { QueryHit, QueryRequest } from '../types.js';
import { IMAGE_COLUMNS, rowToImage, vectorFromText, vectorParam, type PgImageRow } from './rows.js';

export type PgSearchOptions = Omit<QueryRequest, 'text' | 'image' | 'embedding'>;

export interface PgSearchContext {
  /** Runs fn in one transaction. */
  tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T>;
  efSearch: number;
  /** pgvector has iterative index scans (≥ 0.8). */
  iterative: boolean;
  screen?: ImageScreen;
}

/** Compares dotted versions: true when `have` ≥ `want`. */
export function versionAtLeast(have: string, want: string): boolean {
  const a = have.split('.').map((x) => parseInt(x, 10) || 0);
  const b = want.split('.').map((x) => parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(a.length, b.length); i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) > (b[i] ?? 0);
  return true;
}

/** The WHERE clause of a request's attribute filters, with its parameters from $2 on ($1 is the vector). */
export function filterSql(r: PgSearchOptions): { where: string; params: unknown[]; filtered: boolean } {
  const params: unknown[] = [];
  const clauses = [`status = 'active'`];
  const add = (sql: (n: string) => string, v: unknown) => {
    params.push(v);
    clauses.push(sql(`$${params.length + 1}`));
  };
  if (r.sources) add((n) => `source = ANY(${n}::text[])`, [...r.sources]);
  if (r.licences) add((n) => `licence = ANY(${n}::text[])`, [...r.licences]);
  if (r.tags) add((n) => `tags && ${n}::text[]`, [...r.tags]);
  if (r.excludeTags?.length) add((n) => `NOT (tags && ${n}::text[])`, [...r.excludeTags]);
  if (r.excludeIds?.length) add((n) => `id <> ALL(${n}::text[])`, [...r.excludeIds]);
  return { where: clauses.join(' AND '), params, filtered: clauses.length > 1 };
}

type HitRow = PgImageRow & { score: number; embedding_text?: string };

async function fetchRows(ctx: PgSearchContext, vec: string, want: number, r: PgSearchOptions, round: number): Promise<HitRow[]> {
  const f = filterSql(r);
  const cols = `${IMAGE_COLUMNS}, 1 - (embedding <=> $1::vector) AS score${r.withEmbeddings ? ', embedding::text AS embedding_text' : ''}`;
  const sql = `SELECT ${cols} FROM ragdiff_images WHERE ${f.where} ORDER BY embedding <=> $1::vector LIMIT ${want}`;
  return ctx.tx(async (c) => {
    const ef = Math.min(1000, Math.max(ctx.efSearch, want));
    await c.query(`SET LOCAL hnsw.ef_search = ${ef}`);
    if (f.filtered && ctx.iterative) await c.query(`SET LOCAL hnsw.iterative_scan = relaxed_order`);
    if (round < 0) await c.query('SET LOCAL enable_indexscan = off');
    const res = await c.query<HitRow>(sql, [vec, ...f.params]);
    return res.rows;
  });
}

/**
 * Search by a checked, L2-normalised embedding; `k` already checked against
 * the store's size. Returns up to k hits in descending score order.
 */
export async function searchPg(ctx: PgSearchContext, vec: Float32Array, k: number, r: PgSearchOptions): Promise<QueryHit[]> {
  const v = vectorParam(vec);
  const minScore = r.minScore ?? -Infinity;
  const filtered = filterSql(r).filtered;
  let want = k;
  let round = 0;
  for (;;) {
    const rows = await fetchRows(ctx, v, want, r, round);
    rows.sort((a, b) => b.score - a.score); // relaxed_order scans may return rows slightly out of order
    const out: QueryHit[] = [];
    for (const row of rows) {
      if (row.score < minScore) break;
      const image = rowToImage(row);
      if (!passesAtRetrieval(ctx.screen, image)) continue;
      const hit: QueryHit = { ...image, score: row.score };
      if (r.withEmbeddings && row.embedding_text) hit.embedding = vectorFromText(row.embedding_text);
      out.push(hit);
      if (out.length === k) break;
    }
    const exhausted = rows.length < want; // the scan found no more rows passing the filter
    const belowMin = rows.length > 0 && rows[rows.length - 1]!.score < minScore;
    if (out.length >= k || belowMin || round < 0) return out;
    if (exhausted) {
      // Unfiltered HNSW (ef_search ≥ LIMIT) and iterative scans return fewer than asked only when no more rows qualify.
      if (!filtered || ctx.iterative) return out;
      // Old pgvector: the scan stopped at ef_search candidates; past its cap, one exact round settles it.
      if (want >= 1000) {
        round = -1;
        continue;
      }
    }
    want = Math.min(want * 4, 100_000);
    round++;
    if (round > 6) round = -1;
  }
}
