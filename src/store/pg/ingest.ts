/**
 * Ingest into PostgreSQL: items → read + decode + hash (the shared gate,
 * ../gate.ts) → duplicate and near-duplicate checks → pre-embedding screen →
 * embed in batches → post-embedding screen → one transaction per batch
 * (rows and bytes together, so a crash or a dropped connection leaves
 * nothing half-written).
 *
 * Many writers at once, in any processes: there is no writer lock. The
 * unique constraints on sha256 and id decide races — `INSERT … ON CONFLICT
 * DO NOTHING` makes the loser wait for the winner's commit and then report
 * the image as a duplicate of the winner's row; bytes are inserted only
 * after the row insert succeeded, in the same transaction.
 */
import type pg from 'pg';
import { RagdiffError } from '../../errors.js';
import { DEFAULT_MAX_PIXELS } from '../../image/decode.js';
import type { ImageTextEncoder } from '../../models/encoders.js';
import { decodeCandidate, embedAndScreen, runScreen, DEFAULT_MAX_INPUT_BYTES, type DecodedCandidate, type ImageScreen, type ScreenCandidate } from '../gate.js';
import { errorInfo } from '../ingest.js';
import { colourDistance, HashTable, type PerceptualHash } from '../phash.js';
import type { AddItemResult, AddProgress, AddReport } from '../types.js';
import type { Item } from '../walk.js';
import { isConnectionError } from './connect.js';
import { vectorParam } from './rows.js';

export interface PgIngestContext {
  encoder: ImageTextEncoder;
  pool: pg.Pool;
  tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T>;
  screen?: ImageScreen;
  near?: { maxDistance: number; maxColourDifference: number };
  batchSize: number;
  maxPixels?: number;
  maxInputBytes?: number;
  /** For fault tests: awaited at named points of each batch's transaction. */
  checkpoint?(name: string): void | Promise<void>;
}

interface Known {
  id: string;
  status: string;
  reason: string | null;
}

function verdictOf(k: Known, distance?: number): Omit<AddItemResult, 'input'> {
  const extra = distance === undefined ? {} : { distance };
  if (k.status === 'removed') return { status: 'removed', duplicateOf: k.id, reason: 'matches an image removed from the store', ...extra };
  if (k.status === 'blocked') return { status: 'blocked', duplicateOf: k.id, reason: k.reason ?? 'blocked', ...extra };
  return { status: distance !== undefined ? 'near-duplicate' : 'duplicate', duplicateOf: k.id, ...extra };
}

/**
 * The stored image a hash is a near-duplicate of (Hamming distance by text
 * because bit_count() needs PostgreSQL 14; this runs on 13). A linear scan:
 * fine at the sizes ingest sees per item; an index (e.g. a BK-tree) is future work.
 * Smallest distance within the thresholds, if any.
 */
export async function nearestStored(q: pg.Pool | pg.ClientBase, h: PerceptualHash, near: { maxDistance: number; maxColourDifference: number }): Promise<(Known & { distance: number }) | undefined> {
  const res = await q.query<Known & { colour: number; d: number }>(
    `SELECT id, status, reason, colour, d FROM (
       SELECT id, status, reason, colour, length(replace((('x' || phash)::bit(64) # ('x' || $1)::bit(64))::text, '0', '')) AS d FROM ragdiff_images
     ) s WHERE d <= $2 ORDER BY d LIMIT 16`,
    [h.hash, near.maxDistance],
  );
  for (const r of res.rows) if (colourDistance(r.colour, h.colour) <= near.maxColourDifference) return { id: r.id, status: r.status, reason: r.reason, distance: r.d };
  return undefined;
}

export async function bySha(q: pg.Pool | pg.ClientBase, sha256: string): Promise<Known | undefined> {
  const res = await q.query<Known>('SELECT id, status, reason FROM ragdiff_images WHERE sha256 = $1', [sha256]);
  return res.rows[0];
}

interface Accepted {
  i: number;
  c: DecodedCandidate;
  screenInfo: ScreenCandidate;
  embedding?: Float32Array;
  blocked?: string;
}

export async function ingestPg(ctx: PgIngestContext, items: Item[], onProgress?: (p: AddProgress) => void, signal?: AbortSignal): Promise<AddReport> {
  const report: AddReport = { added: 0, skipped: 0, failed: 0, items: [] };
  const results: (AddItemResult | undefined)[] = new Array(items.length);
  const gate = { maxPixels: ctx.maxPixels ?? DEFAULT_MAX_PIXELS, maxBytes: ctx.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES };
  let done = 0;
  const emit = (i: number, r: AddItemResult) => {
    results[i] = r;
    done++;
    if (r.status === 'added') report.added++;
    else if (r.status === 'failed') report.failed++;
    else report.skipped++;
    try {
      onProgress?.({ done, total: items.length, added: report.added, skipped: report.skipped, failed: report.failed, item: r });
    } catch {
      // a throwing progress callback must not corrupt an ingest
    }
  };
  const fail = (i: number, e: unknown) => emit(i, { input: items[i]!.input, status: 'failed', error: errorInfo(e) });
  const pending = new Map<string, number>(); // sha256 → item index, accepted in this call
  const pendingHashes = new HashTable<string>(); // id prefix → hash, accepted in this call

  const embed = (batch: Accepted[]) => embedAndScreen(ctx.encoder, ctx.screen, batch, fail);

  /** One transaction for the batch; returns each row's outcome. A connection failure throws (typed by tx). */
  const commit = async (batch: Accepted[]) => {
    const rows = batch.filter((a) => a.blocked !== undefined || a.embedding !== undefined);
    if (rows.length === 0) return;
    let outcome: Map<number, AddItemResult>;
    try {
      outcome = await ctx.tx(async (c) => {
        const out = new Map<number, AddItemResult>();
        for (const a of rows) {
          const item = items[a.i]!;
          const m = item.meta;
          let n = 16;
          for (;;) {
            const id = a.c.sha256.slice(0, n);
            const ins = await c.query(
              `INSERT INTO ragdiff_images (id, sha256, phash, colour, source, licence, attribution, name, tags, width, height, format, bytes, origin, status, reason, status_at, embedding)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18::vector)
               ON CONFLICT DO NOTHING RETURNING label`,
              [id, a.c.sha256, a.c.phash.hash, a.c.phash.colour, m.source, m.licence, m.attribution, m.name, m.tags, a.c.width, a.c.height, a.c.format, a.c.bytes.byteLength,
                item.input, a.blocked ? 'blocked' : 'active', a.blocked ?? null, a.blocked ? new Date() : null, a.blocked ? null : vectorParam(a.embedding!)],
            );
            if (ins.rowCount === 1) {
              await ctx.checkpoint?.('after-row');
              // Blocked images keep no bytes; the row went in, so these bytes are this row's.
              if (!a.blocked) await c.query('INSERT INTO ragdiff_blobs (sha256, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING', [a.c.sha256, Buffer.from(a.c.bytes.buffer, a.c.bytes.byteOffset, a.c.bytes.byteLength)]);
              out.set(a.i, a.blocked ? { input: item.input, status: 'blocked', id, reason: a.blocked } : { input: item.input, status: 'added', id });
              break;
            }
            // Another writer committed the same bytes first (it decided the race), or the id prefix is taken by other bytes.
            const winner = await bySha(c, a.c.sha256);
            if (winner) {
              out.set(a.i, { ...verdictOf(winner), input: item.input });
              break;
            }
            n += 4;
            if (n > 64) throw new RagdiffError('STORE_WRITE_FAILED', `no free id for image ${a.c.sha256}`);
          }
        }
        await ctx.checkpoint?.('before-commit');
        return out;
      });
    } catch (e) {
      if (isConnectionError(e) || (e as { code?: string }).code === 'STORE_UNREACHABLE') throw e;
      for (const a of rows) fail(a.i, new RagdiffError('STORE_WRITE_FAILED', `could not write to the store: ${(e as Error).message}`, { cause: e }));
      return;
    }
    for (const a of rows) emit(a.i, outcome.get(a.i)!);
  };

  let batch: Accepted[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const b = batch;
    batch = [];
    await embed(b);
    await commit(b);
  };
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    if (signal?.aborted) {
      for (let j = i; j < items.length; j++) fail(j, new RagdiffError('ABORTED', 'the ingest was aborted before this item'));
      break;
    }
    if (item.error) {
      if (item.skipped) emit(i, { input: item.input, status: 'skipped', reason: item.error.message, error: errorInfo(item.error) });
      else fail(i, item.error);
      continue;
    }
    let c: DecodedCandidate;
    try {
      c = await decodeCandidate(await item.load(), ctx.encoder, gate);
    } catch (e) {
      fail(i, e);
      continue;
    }
    const known = await bySha(ctx.pool, c.sha256);
    if (known) {
      emit(i, { ...verdictOf(known), input: item.input });
      continue;
    }
    const p = pending.get(c.sha256);
    if (p !== undefined) {
      emit(i, { input: item.input, status: 'duplicate', duplicateOf: c.sha256.slice(0, 16) });
      continue;
    }
    if (ctx.near) {
      const hit = await nearestStored(ctx.pool, c.phash, ctx.near);
      const pendingHit = pendingHashes.nearest(c.phash, ctx.near.maxDistance, ctx.near.maxColourDifference);
      if (hit && (!pendingHit || hit.distance <= pendingHit.distance)) {
        emit(i, { ...verdictOf(hit, hit.distance), input: item.input });
        continue;
      }
      if (pendingHit) {
        emit(i, { input: item.input, status: 'near-duplicate', duplicateOf: pendingHit.key, distance: pendingHit.distance });
        continue;
      }
    }
    pending.set(c.sha256, i);
    pendingHashes.add(c.sha256.slice(0, 16), c.phash);
    const screenInfo: ScreenCandidate = { purpose: 'ingest', sha256: c.sha256, phash: c.phash, width: c.width, height: c.height, format: c.format, meta: item.meta, origin: item.input };
    const v = await runScreen(ctx.screen?.beforeEmbed?.bind(ctx.screen), screenInfo);
    batch.push({ i, c, screenInfo, blocked: v.allow ? undefined : v.reason });
    if (batch.length >= ctx.batchSize) await flush();
  }
  await flush();
  report.items = results.filter((r): r is AddItemResult => r !== undefined);
  return report;
}
