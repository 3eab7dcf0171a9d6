/**
 * `ragdiff index migrate --from DIR --to postgres://…`: copies a local store
 * into a PostgreSQL store with its provenance and its opt-outs — removed
 * images are copied as removed rows (no bytes, no embedding) so that
 * re-adding them is still refused; blocked images stay blocked.
 *
 * Resumable: each batch is one transaction and rows go in with `ON CONFLICT
 * DO NOTHING`, so a copy that was interrupted (killed, connection dropped)
 * is simply run again; rows already copied are counted as `present`.
 * An image removed locally that the target already holds is removed there
 * too (an opt-out must survive the move). Ids, sha256, timestamps and statuses are kept, so references by id stay
 * valid across the move.
 */
import { RagdiffError } from '../../errors.js';
import type { ImageStore } from '../store.js';
import type { PgReferenceStore } from './store.js';
import { vectorParam } from './rows.js';

export interface CopyReport {
  copied: number;
  /** Already in the target (an earlier, interrupted run; or the same bytes added there). */
  present: number;
  /** Active or blocked images whose bytes were gone locally: copied without bytes. */
  missingBytes: string[];
}

export interface CopyOptions {
  /** Rows per transaction. Default 256. */
  batchSize?: number;
  signal?: AbortSignal;
  onProgress?(p: { done: number; total: number }): void;
}

/** Inserts (in the caller's transaction, via `run`) one local record; returns whether it was new. */
type Insert = (sql: string, params: unknown[]) => Promise<{ rowCount: number | null }>;

export async function copyLocalStore(from: ImageStore, to: PgReferenceStore, options: CopyOptions = {}): Promise<CopyReport> {
  const fromStats = from.stats();
  if (fromStats.encoderId !== to.encoderId || fromStats.dim !== to.width) {
    throw new RagdiffError('ENCODER_MISMATCH', `the local store was embedded by ${fromStats.encoderId} (width ${fromStats.dim}) and the target by ${to.encoderId} (width ${to.width}); copy into an empty database or one made with the same encoder`);
  }
  const batch = options.batchSize ?? 256;
  const total = fromStats.active + fromStats.removed + fromStats.blocked;
  const report: CopyReport = { copied: 0, present: 0, missingBytes: [] };
  for (let offset = 0; ; offset += batch) {
    if (options.signal?.aborted) throw new RagdiffError('ABORTED', `the copy was aborted after ${offset} of ${total} records; run it again to resume`);
    const page = from.list({ limit: batch, offset });
    if (page.length === 0) break;
    const records = page.map((im) => {
      const rec = from.exportRecord(im.id)!;
      let bytes: Buffer | null = null;
      if (im.status !== 'removed') {
        try {
          bytes = from.readImage(im.id);
        } catch {
          report.missingBytes.push(im.id);
        }
      }
      return { ...rec, bytes };
    });
    const counts = await to.transaction(async (insert: Insert) => {
      let copied = 0;
      for (const { image: im, colour, embedding, bytes } of records) {
        const active = im.status === 'active' && embedding !== null;
        const status = im.status === 'active' && !active ? 'blocked' : im.status;
        const reason = status === 'blocked' && im.status === 'active' ? 'no embedding in the local store (rebuild --reembed there first)' : im.reason;
        const r = await insert(
          `INSERT INTO ragdiff_images (id, sha256, phash, colour, source, licence, attribution, name, tags, width, height, format, bytes, origin, added_at, status, reason, status_at, embedding)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19::vector) ON CONFLICT DO NOTHING`,
          [im.id, im.sha256, im.phash, colour, im.source, im.licence, im.attribution, im.name, im.tags, im.width, im.height, im.format, im.bytes, im.origin, im.addedAt,
            status, reason, im.statusAt, status === 'active' ? vectorParam(embedding!) : null],
        );
        if (r.rowCount !== 1) {
          // Already there. An opt-out still applies to the copy in the target, however it got there.
          if (im.status === 'removed') {
            await insert(`UPDATE ragdiff_images SET status = 'removed', reason = $2, status_at = now(), embedding = NULL WHERE sha256 = $1 AND status <> 'removed'`, [im.sha256, im.reason]);
            await insert(`DELETE FROM ragdiff_blobs WHERE sha256 = $1`, [im.sha256]);
          }
          continue;
        }
        copied++;
        if (bytes && status !== 'removed') await insert('INSERT INTO ragdiff_blobs (sha256, bytes) VALUES ($1, $2) ON CONFLICT DO NOTHING', [im.sha256, bytes]);
      }
      return copied;
    });
    report.copied += counts;
    report.present += records.length - counts;
    options.onProgress?.({ done: Math.min(total, offset + page.length), total });
  }
  return report;
}
