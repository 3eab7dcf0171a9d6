/**
 * Image bytes in PostgreSQL: bytea rows in ragdiff_blobs keyed by sha256
 * (why bytea and not large objects: see schema.ts). Rows and bytes are
 * written in the same transaction by ingest.ts; these are the reads and the
 * opt-out's delete.
 */
import type pg from 'pg';
import { RagdiffError } from '../../errors.js';

/** The bytes of an active or blocked image: IMAGE_NOT_FOUND for unknown or removed ids, IMAGE_MISSING when a blocked-at-ingest image kept none. */
export async function readBlob(q: pg.Pool | pg.ClientBase, id: string): Promise<Buffer> {
  const r = await q.query<{ status: string; bytes: Buffer | null }>(
    `SELECT i.status, b.bytes FROM ragdiff_images i LEFT JOIN ragdiff_blobs b ON b.sha256 = i.sha256 WHERE i.id = $1`,
    [id],
  );
  const row = r.rows[0];
  if (!row || row.status === 'removed') throw new RagdiffError('IMAGE_NOT_FOUND', `no image with id ${JSON.stringify(id)}`);
  if (!row.bytes) throw new RagdiffError('IMAGE_MISSING', `the store holds no bytes for image ${id}`);
  return row.bytes;
}

/** Deletes the bytes of `sha256` unless a row that keeps bytes still references them (inside the caller's transaction). */
export async function deleteBlobIfUnused(c: pg.ClientBase, sha256: string): Promise<void> {
  await c.query(
    `DELETE FROM ragdiff_blobs b WHERE b.sha256 = $1 AND NOT EXISTS (SELECT 1 FROM ragdiff_images i WHERE i.sha256 = b.sha256 AND i.status <> 'removed')`,
    [sha256],
  );
}
