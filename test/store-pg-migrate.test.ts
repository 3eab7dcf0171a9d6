/**
 * Copying a local store into PostgreSQL (`ragdiff index migrate`): ids,
 * provenance, statuses and opt-outs survive; an interrupted copy resumes
 * without duplicates; an opt-out applies even to a copy the target already had.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { ImageStore, PgReferenceStore } from '../src/store/index.js';
import { copyLocalStore } from '../src/store/pg/copy-local.js';
import { fakeEncoder, otherEncoder } from './fixtures/store/fake-encoder.js';
import { makeMany } from './fixtures/store/images.js';
import { startTestPg, type TestPg } from './fixtures/pg/server.js';
import { hasErrorCode, rejects, tempDir } from './helpers.js';

let srv: TestPg;
const t = tempDir('ragdiff-pgcopy-');
let local: ImageStore;
let imgs: Buffer[];

test.before(async () => {
  srv = await startTestPg();
  imgs = await makeMany(10, 70);
  local = await ImageStore.open(join(t.dir, 'local'), { encoder: fakeEncoder(), nearDuplicates: false });
  await local.add(imgs.map((bytes, i) => ({ bytes, meta: { source: `s${i}`, licence: 'cc0', attribution: `by ${i}`, tags: ['x'] } })));
});

test.after(async () => {
  await local?.close();
  await srv?.stop();
  t.cleanup();
});

test('an interrupted copy resumes: same ids, provenance and statuses, no duplicates; opt-outs carried over', async () => {
  const target = await PgReferenceStore.open(srv.url, { encoder: fakeEncoder(), nearDuplicates: false });
  try {
    // The target already holds one image that the local store's owner then removed.
    const removedLocally = local.list()[9]!;
    assert.is((await target.add([imgs[9]!])).added, 1);
    assert.ok(await local.remove(removedLocally.id, 'owner opted out'));
    await local.block(local.list()[8]!.id, 'policy');

    const ac = new AbortController();
    await rejects(copyLocalStore(local, target, { batchSize: 3, signal: ac.signal, onProgress: () => ac.abort() }), hasErrorCode('ABORTED'));
    assert.is((await target.stats()).active + (await target.stats()).blocked + (await target.stats()).removed, 4); // one batch of 3, plus the pre-existing one

    const r = await copyLocalStore(local, target, { batchSize: 3 });
    assert.is(r.copied, 6);
    assert.is(r.present, 4);
    const s = await target.stats();
    assert.equal([s.active, s.blocked, s.removed], [8, 1, 1]);
    for (const im of local.list()) {
      const there = (await target.get(im.id)) ?? (await target.list({ limit: 100 })).find((x) => x.sha256 === im.sha256);
      assert.ok(there, im.id);
      assert.is(there!.status, im.status, im.id);
      assert.is(there!.sha256, im.sha256);
      if (im.id !== removedLocally.id) assert.equal([there!.source, there!.attribution, there!.tags], [im.source, im.attribution, im.tags]);
    }
    await rejects(Promise.resolve(target.readImage((await target.list({ status: 'removed' }))[0]!.id)), hasErrorCode('IMAGE_NOT_FOUND'));
    const first = local.list()[0]!;
    assert.ok((await target.readImage(first.id)).equals(local.readImage(first.id)));
    const q = { text: 'red', k: 5 };
    assert.equal((await target.query(q)).map((h) => h.sha256), (await local.query(q)).map((h) => h.sha256));

    const again = await copyLocalStore(local, target);
    assert.equal([again.copied, again.present], [0, 10]);
  } finally {
    await target.close();
  }
});

test('a target made by another encoder → ENCODER_MISMATCH before anything is copied', async () => {
  const other = await startTestPg();
  try {
    const target = await PgReferenceStore.open(other.url, { encoder: otherEncoder() });
    try {
      await rejects(copyLocalStore(local, target), hasErrorCode('ENCODER_MISMATCH'));
      assert.is((await target.stats()).active, 0);
    } finally {
      await target.close();
    }
  } finally {
    await other.stop();
  }
});

test.run();
