/**
 * The PostgreSQL + pgvector store through the production `pg` driver, against
 * PGlite (+ pgvector) served on 127.0.0.1 (see fixtures/pg/server.ts): the
 * same results shape and filters as the local store, opt-out deleting bytes,
 * and each bad input a typed error.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { ImageStore, openReferenceStore, PgReferenceStore, type ReferenceStore } from '../src/store/index.js';
import { fakeEncoder, otherEncoder } from './fixtures/store/fake-encoder.js';
import { makeMany, makePng } from './fixtures/store/images.js';
import { startTestPg, type TestPg } from './fixtures/pg/server.js';
import { hasErrorCode, rejects, tempDir } from './helpers.js';
import { inTransaction } from '../src/store/pg/connect.js';
import { searchPg } from '../src/store/pg/query.js';

let srv: TestPg;
let bare: TestPg; // a PostgreSQL without the vector extension
let store: PgReferenceStore;
let local: ImageStore;
const t = tempDir('ragdiff-pg-');
let images: Buffer[];

async function sql<T extends pg.QueryResultRow>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<T>(text, params)).rows;
  } finally {
    await c.end();
  }
}

test.before(async () => {
  [srv, bare] = await Promise.all([startTestPg(), startTestPg({ withVector: false })]);
  images = await makeMany(12);
  const s = await openReferenceStore(srv.url, { encoder: fakeEncoder(), nearDuplicates: false });
  assert.instance(s, PgReferenceStore);
  store = s as PgReferenceStore;
  local = await ImageStore.open(join(t.dir, 'local'), { encoder: fakeEncoder(), nearDuplicates: false });
  const meta = (i: number) => ({ source: i % 2 ? 'odd' : 'even', licence: i < 6 ? 'cc0' : 'cc-by', tags: [`t${i % 3}`], name: `img${i}` });
  const inputs = images.map((bytes, i) => ({ bytes, meta: meta(i) }));
  const r = await store.add(inputs);
  assert.is(r.added, 12, JSON.stringify(r.items.filter((x) => x.status !== 'added')));
  assert.is((await local.add(inputs)).added, 12);
});

test.after(async () => {
  await store?.close();
  await local?.close();
  await srv?.stop();
  await bare?.stop();
  t.cleanup();
});

test('carries pgvector ≥ 0.8 (iterative scans) and records its schema version', async () => {
  assert.ok(/^0\.(8|9)|^[1-9]/.test(store.vectorVersion), store.vectorVersion);
  const v = await sql<{ version: number }>(srv.url, 'SELECT version FROM ragdiff_schema_version');
  assert.equal(v.map((r) => r.version), [1]);
  const idx = await sql<{ indexdef: string }>(srv.url, `SELECT indexdef FROM pg_indexes WHERE indexname = 'ragdiff_images_hnsw'`);
  assert.match(idx[0]!.indexdef, /hnsw \(embedding vector_cosine_ops\)/);
  assert.match(idx[0]!.indexdef, /m='?16'?/);
});

test('same results as the local store: ids, order, scores and record fields, with and without filters', async () => {
  const requests = [
    { text: 'red', k: 5 },
    { embedding: (await local.embedText('blue')), k: 4, sources: ['odd'] },
    { text: 'green', k: 3, licences: ['cc-by'], tags: ['t1', 't2'] },
    { text: 'white', k: 6, excludeTags: ['t0'], excludeIds: [local.list()[1]!.id] },
    { text: 'red', k: 12, minScore: 0.5 },
  ];
  for (const r of requests) {
    const a = await store.query(r);
    const b = await local.query(r);
    assert.equal(a.map((h) => h.id), b.map((h) => h.id), JSON.stringify(r));
    a.forEach((h, i) => {
      assert.ok(Math.abs(h.score - b[i]!.score) < 1e-5);
      const { addedAt: _a, score: _s, ...rest } = h;
      const { addedAt: _b, score: _t, ...restLocal } = b[i]!;
      assert.equal({ ...rest, origin: '' }, { ...restLocal, origin: '' });
    });
  }
  const withE = await store.query({ text: 'red', k: 1, withEmbeddings: true });
  assert.is(withE[0]!.embedding!.length, 48);
});

test('the fallback for pgvector < 0.8 (over-fetch, then one exact round) returns what iterative scans return', async () => {
  const pool = new pg.Pool({ connectionString: srv.url, max: 1 });
  try {
    const tx = <T,>(fn: (c: pg.PoolClient) => Promise<T>) => inTransaction(pool, srv.url, fn);
    const vec = await store.embedText('green');
    for (const r of [{ sources: ['odd'] }, { tags: ['t1'], licences: ['cc0'] }, { excludeTags: ['t0', 't1', 't2'] }]) {
      const iterative = await searchPg({ tx, efSearch: 4, iterative: true }, vec, 3, r);
      const fallback = await searchPg({ tx, efSearch: 4, iterative: false }, vec, 3, r);
      assert.equal(fallback.map((h) => h.id), iterative.map((h) => h.id), JSON.stringify(r));
    }
  } finally {
    await pool.end();
  }
});

test('get, list, stats, readImage and embeddingOf through the port', async () => {
  const port: ReferenceStore = store;
  const [first] = await port.list({ limit: 1 });
  assert.ok(first);
  assert.equal((await port.get(first.id))!.sha256, first.sha256);
  assert.is(await port.get('nope'), undefined);
  assert.ok((await port.readImage(first.id)).equals(images[0]!));
  assert.is((await port.embeddingOf(first.id))!.length, 48);
  const s = await port.stats();
  assert.is(s.active, 12);
  assert.is(s.encoderId, 'fake-grid-48');
  assert.not.match(s.dir, /secret/);
});

test('opt-out: never returned again, bytes deleted, re-adding says removed', async () => {
  const [hit] = await store.query({ text: 'red', k: 1 });
  assert.is(await store.remove(hit!.id, 'owner asked'), true);
  assert.is(await store.remove(hit!.id), false);
  assert.ok(!(await store.query({ text: 'red', k: 11 })).some((h) => h.id === hit!.id));
  await rejects(Promise.resolve(store.readImage(hit!.id)), hasErrorCode('IMAGE_NOT_FOUND'));
  assert.equal(await sql(srv.url, 'SELECT 1 FROM ragdiff_blobs WHERE sha256 = $1', [hit!.sha256]), []);
  const again = await store.add([images[Number(hit!.name.slice(3))]!]);
  assert.is(again.items[0]!.status, 'removed');
});

test('duplicates and the gate: same bytes → duplicate, undecodable bytes → failed with an IMAGE_ code', async () => {
  const active = (await store.list({ status: 'active', limit: 1 }))[0]!;
  const r = await store.add([images[Number(active.name.slice(3))]!, Buffer.from('not an image')]);
  assert.is(r.items[0]!.duplicateOf, active.id);
  assert.is(r.items[0]!.status, 'duplicate');
  assert.is(r.items[1]!.status, 'failed');
  assert.match(r.items[1]!.error!.code, /^IMAGE_/);
  await rejects(store.add([images[0]!], undefined, { copy: false }), hasErrorCode('INVALID_VALUE'));
});

test('near-duplicates (perceptual hash + colour, in SQL) are reported as the local store does', async () => {
  const near = await PgReferenceStore.open(srv.url, { encoder: fakeEncoder() });
  try {
    const a = await makePng([200, 30, 30], 3);
    const b = await makePng([201, 30, 30], 3); // one level apart: other bytes, same look
    const r = await near.add([a, b]);
    assert.equal(r.items.map((i) => i.status), ['added', 'near-duplicate']);
    assert.is(r.items[1]!.duplicateOf, r.items[0]!.id);
    const again = await near.add([await makePng([199, 30, 30], 3)]);
    assert.is(again.items[0]!.status, 'near-duplicate');
    assert.is(again.items[0]!.duplicateOf, r.items[0]!.id);
    assert.is(typeof again.items[0]!.distance, 'number');
  } finally {
    await near.close();
  }
});

test('bad input: a refusing URL → STORE_UNREACHABLE (password not echoed)', async () => {
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  let err: { code?: string; message?: string } = {};
  try {
    await PgReferenceStore.open(`postgres://u:secret@127.0.0.1:${port}/db`, { encoder: fakeEncoder(), connectTimeoutMs: 5000 });
  } catch (e) {
    err = e as typeof err;
  }
  assert.is(err.code, 'STORE_UNREACHABLE');
  assert.not.match(err.message!, /secret/);
  await rejects(PgReferenceStore.open('mysql://127.0.0.1/x', { encoder: fakeEncoder() }), hasErrorCode('INVALID_VALUE'));
});

test('bad input: a database without pgvector → VECTOR_EXTENSION_MISSING saying how to install it, nothing created', async () => {
  let err: { code?: string; message?: string } = {};
  try {
    await PgReferenceStore.open(bare.url, { encoder: fakeEncoder() });
  } catch (e) {
    err = e as typeof err;
  }
  assert.is(err.code, 'VECTOR_EXTENSION_MISSING');
  assert.match(err.message!, /CREATE EXTENSION vector/);
  assert.match(err.message!, /pgvector/);
  assert.equal(await sql(bare.url, `SELECT to_regclass('ragdiff_schema_version') AS t`), [{ t: null }]);
});

test('bad input: a schema from a newer ragdiff → SCHEMA_TOO_NEW', async () => {
  await sql(bare.url, `CREATE TABLE ragdiff_schema_version (version integer PRIMARY KEY, describe text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
  await sql(bare.url, `INSERT INTO ragdiff_schema_version (version, describe) VALUES (99, 'from the future')`);
  await rejects(PgReferenceStore.open(bare.url, { encoder: fakeEncoder() }), hasErrorCode('SCHEMA_TOO_NEW'));
});

test('bad input: another encoder or width → ENCODER_MISMATCH; create: false on an empty database → STORE_NOT_FOUND', async () => {
  await rejects(PgReferenceStore.open(srv.url, { encoder: otherEncoder() }), hasErrorCode('ENCODER_MISMATCH'));
  await rejects(PgReferenceStore.open(srv.url, { encoder: fakeEncoder({ id: 'another-48' }) }), hasErrorCode('ENCODER_MISMATCH'));
  const fresh = await startTestPg();
  try {
    await rejects(PgReferenceStore.open(fresh.url, { encoder: fakeEncoder(), create: false }), hasErrorCode('STORE_NOT_FOUND'));
  } finally {
    await fresh.stop();
  }
});

test('bad input: hnsw parameters outside pgvector bounds → OUT_OF_RANGE before connecting', async () => {
  await rejects(PgReferenceStore.open(srv.url, { encoder: fakeEncoder(), hnsw: { M: 1 } }), hasErrorCode('OUT_OF_RANGE'));
  await rejects(PgReferenceStore.open(srv.url, { encoder: fakeEncoder(), hnsw: { M: 16, efConstruction: 8 } }), hasErrorCode('OUT_OF_RANGE'));
});

test('a reader sees the writer; write calls on it → STORE_READ_ONLY', async () => {
  const reader = await PgReferenceStore.open(srv.url, { encoder: fakeEncoder(), readOnly: true });
  try {
    assert.is((await reader.stats()).active, (await store.stats()).active);
    await rejects(reader.add([await makePng([1, 2, 3], 5)]), hasErrorCode('STORE_READ_ONLY'));
  } finally {
    await reader.close();
  }
});

test.run();
