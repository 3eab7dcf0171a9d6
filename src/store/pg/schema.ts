/**
 * The PostgreSQL schema, as numbered migrations. A migration is applied once,
 * in order, in one transaction, and recorded in ragdiff_schema_version; a
 * database whose newest version is above SCHEMA_VERSION was written by a
 * newer ragdiff and is refused (SCHEMA_TOO_NEW). Never edit a released
 * migration: add the next one.
 *
 * Tables are prefixed `ragdiff_` so a store can share a database with an
 * application's own tables.
 *
 * Image bytes are bytea in ragdiff_blobs, keyed by sha256 (deduplicated),
 * rather than large objects: bytea travels through every connection pooler
 * (large objects need a session-held descriptor, which transaction-mode
 * PgBouncer breaks), is replicated and backed up with the row, and is deleted
 * by a plain DELETE in the opt-out's transaction (large objects need
 * lo_unlink or vacuumlo, or they leak). Reference images are small
 * (≤ 50 MiB by the gate, typically < 1 MiB), far below bytea's 1 GiB cap.
 */

/** The newest schema this ragdiff writes and understands. */
export const SCHEMA_VERSION = 1;

/** What a migration needs to know about the store being created. */
export interface SchemaParams {
  dim: number;
  m: number;
  efConstruction: number;
}

export interface Migration {
  version: number;
  describe: string;
  sql(p: SchemaParams): string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    describe: 'images, blobs, meta; HNSW (cosine) over active embeddings; attribute indexes',
    sql: (p) => [
      `CREATE TABLE ragdiff_meta (
        key   text PRIMARY KEY,
        value text NOT NULL
      )`,
      `CREATE TABLE ragdiff_blobs (
        sha256 text PRIMARY KEY CHECK (sha256 ~ '^[0-9a-f]{64}$'),
        bytes  bytea NOT NULL
      )`,
      `CREATE TABLE ragdiff_images (
        label       bigserial PRIMARY KEY,
        id          text NOT NULL UNIQUE,
        sha256      text NOT NULL UNIQUE,
        phash       text NOT NULL,
        colour      integer NOT NULL,
        source      text NOT NULL DEFAULT '',
        licence     text NOT NULL DEFAULT '',
        attribution text NOT NULL DEFAULT '',
        name        text NOT NULL DEFAULT '',
        tags        text[] NOT NULL DEFAULT '{}',
        width       integer NOT NULL,
        height      integer NOT NULL,
        format      text NOT NULL,
        bytes       integer NOT NULL,
        origin      text NOT NULL DEFAULT '',
        added_at    timestamptz NOT NULL DEFAULT now(),
        status      text NOT NULL CHECK (status IN ('active', 'removed', 'blocked')),
        reason      text,
        status_at   timestamptz,
        embedding   vector(${p.dim}),
        CHECK (status <> 'active' OR embedding IS NOT NULL)
      )`,
      // Partial: only searchable rows are in the graph, so a removed image can never surface from it.
      `CREATE INDEX ragdiff_images_hnsw ON ragdiff_images USING hnsw (embedding vector_cosine_ops)
        WITH (m = ${p.m}, ef_construction = ${p.efConstruction}) WHERE status = 'active'`,
      `CREATE INDEX ragdiff_images_status ON ragdiff_images (status)`,
      `CREATE INDEX ragdiff_images_source ON ragdiff_images (source)`,
      `CREATE INDEX ragdiff_images_licence ON ragdiff_images (licence)`,
      `CREATE INDEX ragdiff_images_tags ON ragdiff_images USING gin (tags)`,
    ],
  },
];
