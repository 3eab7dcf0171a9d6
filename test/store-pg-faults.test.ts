/**
 * Faults on the PostgreSQL store (PGlite + pgvector over pglite-socket on
 * 127.0.0.1): two writers ingesting the same image at once → one row; the
 * connection dropped mid-ingest → a typed error, nothing half-written, and a
 * retry succeeds.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import pg from 'pg';
import type { ImageTextEncoder } from '../src/models/encoders.js';
import { PgReferenceStore } from '../src/store/index.js';
import { fakeEncoder } from './fixtures/store/fake-encoder.js';
import { makeMany } from './fixtures/store/images.js';
import { startTestPg, type TestPg } from './fixtures/pg/server.js';
import { hasErrorCode, rejects } from './helpers.js';

let srv: TestPg;

async function count(sql: string, params: unknown[] = []): Promise<number> {
  const c = new pg.Client({ connectionString: srv.url });
  await c.connect();
  try {
    return Number((await c.query<{ n: string }>(sql, params)).rows[0]!.n);
  } finally {
    await c.end();
  }
}

/** An encoder whose image calls wait until `n` callers are inside (so both writers pass their duplicate checks first). */
function barrierEncoder(n: number): ImageTextEncoder {
  const base = fakeEncoder();
  let waiting = 0;
  let release!: () => void;
  const all = new Promise<void>((r) => (release = r));
  return {
    ...base,
    async embedImages(images) {
      if (++waiting >= n) release();
      await all;
      return base.embedImages(images);
    },
  };
}

test.before(async () => {
  srv = await startTestPg();
});

test.after(async () => {
  await srv?.stop();
});

test('two writers (separate pools) ingesting the same image at once → one row, one blob; the loser reports a duplicate', async () => {
  const [img] = await makeMany(1, 40);
  const enc = barrierEncoder(2);
  const a = await PgReferenceStore.open(srv.url, { encoder: enc, poolSize: 2 });
  const b = await PgReferenceStore.open(srv.url, { encoder: enc, poolSize: 2 });
  try {
    const [ra, rb] = await Promise.all([a.add([img!]), b.add([img!])]);
    const statuses = [ra.items[0]!.status, rb.items[0]!.status].sort();
    assert.equal(statuses, ['added', 'duplicate']);
    const winner = ra.items[0]!.id ?? rb.items[0]!.id;
    assert.is(ra.items[0]!.duplicateOf ?? rb.items[0]!.duplicateOf, winner);
    assert.is(await count('SELECT count(*) AS n FROM ragdiff_images'), 1);
    assert.is(await count('SELECT count(*) AS n FROM ragdiff_blobs'), 1);
  } finally {
    await a.close();
    await b.close();
  }
});

test('connection dropped mid-ingest → STORE_UNREACHABLE, no row and no bytes of the batch; a retry adds them', async () => {
  const imgs = await makeMany(3, 50);
  let drop = true;
  const store = await PgReferenceStore.open(srv.url, {
    encoder: fakeEncoder(),
    testHooks: {
      checkpoint: (name) => {
        // After the first row of the batch is written, before its bytes: the socket goes away.
        if (name === 'after-row' && drop) {
          drop = false;
          srv.dropConnections();
        }
      },
    },
  });
  try {
    const rowsBefore = await count('SELECT count(*) AS n FROM ragdiff_images');
    const blobsBefore = await count('SELECT count(*) AS n FROM ragdiff_blobs');
    await rejects(store.add(imgs), hasErrorCode('STORE_UNREACHABLE'));
    assert.is(await count('SELECT count(*) AS n FROM ragdiff_images'), rowsBefore, 'no row of the dropped batch');
    assert.is(await count('SELECT count(*) AS n FROM ragdiff_blobs'), blobsBefore, 'no bytes of the dropped batch');
    const again = await store.add(imgs);
    assert.equal(again.items.map((i) => i.status), ['added', 'added', 'added']);
    for (const it of again.items) assert.ok((await store.readImage(it.id!)).length > 0);
    assert.is(await count('SELECT count(*) AS n FROM ragdiff_images'), rowsBefore + 3);
  } finally {
    await store.close();
  }
});

test('the database refusing mid-life (restart) → STORE_UNREACHABLE from add, query and get; all work again once it is back', async () => {
  const [img] = await makeMany(1, 60);
  const store = await PgReferenceStore.open(srv.url, { encoder: fakeEncoder(), connectTimeoutMs: 3000 });
  try {
    await srv.pause();
    try {
      await rejects(store.add([img!]), hasErrorCode('STORE_UNREACHABLE'));
      await rejects(store.query({ text: 'red', k: 1 }), hasErrorCode('STORE_UNREACHABLE'));
      await rejects(store.get('x'), hasErrorCode('STORE_UNREACHABLE'));
    } finally {
      await srv.resume();
    }
    assert.is((await store.add([img!])).added, 1);
    assert.is((await store.query({ text: 'red', k: 1 })).length, 1);
  } finally {
    await store.close();
  }
});

test.run();
