/**
 * One entry for both backends: a `postgres://` (or `postgresql://`) URL opens
 * the PostgreSQL + pgvector store, anything else is a local store directory.
 */
import { ImageStore } from './store.js';
import type { ReferenceStore } from './reference-store.js';
import type { ImageStoreOptions } from './types.js';
import { isPostgresUrl } from './pg/connect.js';
import { PgReferenceStore, type PgStoreOptions } from './pg/store.js';

export type OpenReferenceStoreOptions = ImageStoreOptions & Omit<PgStoreOptions, keyof ImageStoreOptions | 'hnsw' | 'testHooks'>;

export async function openReferenceStore(location: string, options: OpenReferenceStoreOptions): Promise<ReferenceStore> {
  if (isPostgresUrl(location)) {
    const { hnsw, testHooks, ...rest } = options;
    return PgReferenceStore.open(location, { ...rest, hnsw: hnsw && { M: hnsw.M, efConstruction: hnsw.efConstruction, efSearch: hnsw.efSearch } });
  }
  return ImageStore.open(location, options);
}
