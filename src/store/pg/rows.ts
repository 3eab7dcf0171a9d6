/** Image rows as PostgreSQL returns them, and their public shape (the local store's StoredImage). */
import pgvector from 'pgvector';
import type { ImageStatus } from '../schema.js';
import type { StoredImage } from '../types.js';

/** The columns of a record, in SELECT lists (the embedding is asked for separately). */
export const IMAGE_COLUMNS = `id, sha256, phash, source, licence, attribution, name, tags, width, height, format, bytes, origin, added_at, status, reason, status_at`;

export interface PgImageRow {
  id: string;
  sha256: string;
  phash: string;
  source: string;
  licence: string;
  attribution: string;
  name: string;
  tags: string[];
  width: number;
  height: number;
  format: string;
  bytes: number;
  origin: string;
  added_at: Date;
  status: ImageStatus;
  reason: string | null;
  status_at: Date | null;
}

export function rowToImage(r: PgImageRow): StoredImage {
  return {
    id: r.id,
    sha256: r.sha256,
    phash: r.phash,
    source: r.source,
    licence: r.licence,
    attribution: r.attribution,
    name: r.name,
    tags: r.tags,
    width: r.width,
    height: r.height,
    format: r.format,
    bytes: r.bytes,
    origin: r.origin,
    byReference: false,
    addedAt: r.added_at.toISOString(),
    status: r.status,
    reason: r.reason,
    statusAt: r.status_at ? r.status_at.toISOString() : null,
  };
}

/** A Float32Array as pgvector's text form. */
export function vectorParam(v: Float32Array): string {
  return pgvector.toSql(Array.from(v)) as string;
}

/** pgvector's text form as a Float32Array. */
export function vectorFromText(s: string): Float32Array {
  return Float32Array.from(pgvector.fromSql(s) as number[]);
}
