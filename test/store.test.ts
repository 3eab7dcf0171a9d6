/**
 * ImageStore: ingest, duplicates, query with filters, remove, block, rebuild,
 * per-request references and persistence — with a small deterministic encoder.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { ImageStore, type AddProgress, type ImageStoreOptions } from '../src/store/index.js';
import { fakeEncoder, otherEncoder } from './fixtures/store/fake-encoder.js';
import { makeMany, makePng } from './fixtures/store/images.js';
import { tempDir } from './helpers.js';

const RED: [number, number, number] = [220, 30, 30];
const BLUE: [number, number, number] = [30, 40, 220];
const GREEN: [number, number, number] = [30, 200, 40];

async function withStore(fn: (store: ImageStore, dir: string) => Promise<void>, options: Partial<ImageStoreOptions> = {}): Promise<void> {
  const t = tempDir('ragdiff-store-');
  const store = await ImageStore.open(t.dir, { encoder: fakeEncoder(), ...options });
  try {
    await fn(store, t.dir);
  } finally {
    await store.close();
    t.cleanup();
  }
}

/** Blue minus red over the fake encoder's 16 cells: a stand-in for a concept score. */
function blueness(e: Float32Array): number {
  let s = 0;
  for (let i = 0; i < 16; i++) s += e[i * 3 + 2]! - e[i * 3]!;
  return s;
}

function blobCount(dir: string): number {
  let n = 0;
  for (const d of readdirSync(join(dir, 'blobs'))) if (/^[0-9a-f]{2}$/.test(d)) n += readdirSync(join(dir, 'blobs', d)).length;
  return n;
}

test('adds Buffers with provenance and finds them by text, image and embedding', async () => {
  await withStore(async (store, dir) => {
    const red = await makePng(RED, 1);
    const blue = await makePng(BLUE, 2);
    const green = await makePng(GREEN, 3);
    const report = await store.add([red, blue, { bytes: green, meta: { name: 'green square', tags: ['plant'] } }], {
      source: 'unit', licence: 'CC0-1.0', attribution: 'the tests', tags: ['colour'],
    });
    assert.is(report.added, 3);
    assert.is(report.failed, 0);
    assert.is(store.size, 3);
    assert.is(blobCount(dir), 3);

    const byText = await store.query({ text: 'red', k: 1 });
    assert.is(byText.length, 1);
    assert.is(byText[0]!.id, report.items[0]!.id);
    assert.is(byText[0]!.source, 'unit');
    assert.is(byText[0]!.licence, 'CC0-1.0');
    assert.is(byText[0]!.attribution, 'the tests');
    assert.equal(byText[0]!.tags, ['colour']);
    assert.is(byText[0]!.width, 32);
    assert.is(byText[0]!.status, 'active');
    assert.ok(/^\d{4}-\d\d-\d\dT/.test(byText[0]!.addedAt));

    const g = (await store.query({ text: 'green', k: 3 }))[0]!;
    assert.is(g.name, 'green square');
    assert.equal(g.tags, ['colour', 'plant'], 'per-item tags are merged with the call tags');

    // An uploaded image (not stored) through the same path finds its stored twin first.
    const byImage = await store.query({ image: blue, k: 3 });
    assert.is(byImage[0]!.id, report.items[1]!.id);
    assert.ok(byImage[0]!.score > 0.999);
    assert.ok(byImage[0]!.score >= byImage[1]!.score && byImage[1]!.score >= byImage[2]!.score, 'results in descending order');
    assert.is(store.size, 3, 'query images are not stored');

    const picked = store.embeddingOf(report.items[1]!.id!)!;
    assert.is(picked.length, 48);
    assert.is(store.embeddingOf('unknown'), undefined);
    const withEmb = await store.query({ image: blue, k: 1, withEmbeddings: true });
    assert.equal(Array.from(withEmb[0]!.embedding!), Array.from(picked));
    const byEmbedding = store.search(withEmb[0]!.embedding!, { k: 1 });
    assert.is(byEmbedding[0]!.id, report.items[1]!.id);
    assert.is(withEmb[0]!.embedding!.length, 48);
  });
});

test('files and directories are ingested, with progress events and a per-item report', async () => {
  await withStore(async (store) => {
    const t = tempDir();
    try {
      const imgs = await makeMany(5);
      mkdirSync(join(t.dir, 'sub'));
      imgs.forEach((b, i) => writeFileSync(join(t.dir, i < 3 ? `${i}.png` : `sub/${i}.PNG`), b));
      writeFileSync(join(t.dir, 'notes.txt'), 'not an image and not picked up from a directory');
      const progress: AddProgress[] = [];
      const report = await store.add([t.dir, join(t.dir, 'missing.png')], { source: 'files' }, { onProgress: (p) => progress.push(p) });
      assert.is(report.added, 5);
      assert.is(report.failed, 1);
      assert.is(report.items.length, 6);
      const missing = report.items.find((i) => i.status === 'failed')!;
      assert.is(missing.error!.code, 'FILE_NOT_FOUND');
      assert.is(progress.length, 6);
      assert.is(progress.at(-1)!.done, 6);
      assert.is(progress.at(-1)!.total, 6);
      assert.ok(progress.every((p, i) => i === 0 || p.done === progress[i - 1]!.done + 1));
      assert.ok(report.items[0]!.input.endsWith('0.png'), 'items are reported in input order');
    } finally {
      t.cleanup();
    }
  });
});

test('animated GIF, CMYK JPEG, 16-bit PNG, greyscale and alpha are normalised by the one decode path', async () => {
  await withStore(async (store) => {
    const size = 24;
    const rgba = Buffer.alloc(size * size * 4);
    for (let i = 0; i < size * size; i++) rgba.set([(i * 7) % 256, (i * 3) % 256, 90, i % 2 ? 0 : 255], i * 4);
    const alpha = await sharp(rgba, { raw: { width: size, height: size, channels: 4 } }).png().toBuffer();
    const frames = Buffer.alloc(size * size * 3 * 3);
    for (let i = 0; i < frames.length; i++) frames[i] = (i * 13) % 251;
    const animated = await sharp(frames, { raw: { width: size, height: size * 3, channels: 3, pageHeight: size } }).gif().toBuffer();
    assert.is((await sharp(animated).metadata()).pages, 3);
    const cmyk = await sharp(await makePng([200, 120, 40], 3, 40)).toColourspace('cmyk').jpeg().toBuffer();
    const deep = await sharp(await makePng([10, 150, 240], 4, 40)).toColourspace('rgb16').png().toBuffer();
    const grey = await sharp(await makePng([90, 90, 90], 5, 40)).greyscale().png().toBuffer();
    assert.is((await sharp(deep).metadata()).depth, 'ushort');
    assert.is((await sharp(cmyk).metadata()).space, 'cmyk');
    const r = await store.add([alpha, animated, cmyk, deep, grey]);
    assert.equal(r.items.map((i) => i.status), ['added', 'added', 'added', 'added', 'added'], JSON.stringify(r.items));
    assert.is(store.get(r.items[2]!.id!)!.format, 'jpeg');
    assert.is(store.get(r.items[0]!.id!)!.width, size);
  });
});

test('embeddings are computed in batches', async () => {
  const calls = { images: [] as number[], texts: 0 };
  await withStore(async (store) => {
    await store.add(await makeMany(10));
    assert.equal(calls.images, [4, 4, 2]);
  }, { encoder: fakeEncoder({ calls }), batchSize: 4 });
});

test('exact duplicates and near-duplicates are reported, not re-added', async () => {
  await withStore(async (store) => {
    const red = await makePng(RED, 1, 64);
    const first = await store.add([red]);
    const id = first.items[0]!.id!;
    const again = await store.add([red, red]);
    assert.is(again.added, 0);
    assert.is(again.skipped, 2);
    assert.is(again.items[0]!.status, 'duplicate');
    assert.is(again.items[0]!.duplicateOf, id);

    // Re-encoded as JPEG and resized: different bytes, same picture.
    const jpeg = await sharp(red).resize(48, 48).jpeg({ quality: 85 }).toBuffer();
    const near = await store.add([jpeg]);
    assert.is(near.items[0]!.status, 'near-duplicate');
    assert.is(near.items[0]!.duplicateOf, id);
    assert.type(near.items[0]!.distance, 'number');

    // Same layout, different colour: not a near-duplicate.
    const blue = await makePng(BLUE, 1, 64);
    assert.is((await store.add([blue])).items[0]!.status, 'added');

    // Duplicates inside one call.
    const green = await makePng(GREEN, 5);
    const inCall = await store.add([green, green]);
    assert.equal(inCall.items.map((i) => i.status), ['added', 'duplicate']);
    assert.is(inCall.items[1]!.duplicateOf, inCall.items[0]!.id);
    assert.is(store.size, 3);
  });
});

test('near-duplicate detection can be tuned or turned off', async () => {
  await withStore(async (store) => {
    const red = await makePng(RED, 1, 64);
    const jpeg = await sharp(red).jpeg({ quality: 70 }).toBuffer();
    const r = await store.add([red, jpeg]);
    assert.equal(r.items.map((i) => i.status), ['added', 'added']);
  }, { nearDuplicates: false });
});

test('filters: sources, licences, tags, excludeTags, excludeIds, minScore', async () => {
  await withStore(async (store) => {
    const imgs = await makeMany(40);
    await store.add(imgs.slice(0, 20), { source: 'a', licence: 'CC0-1.0', tags: ['even'] });
    const b = await store.add(imgs.slice(20), { source: 'b', licence: 'CC-BY-4.0', tags: ['odd', 'late'] });
    const q = { text: 'red', k: 10 };
    const onlyB = await store.query({ ...q, sources: ['b'] });
    assert.is(onlyB.length, 10);
    assert.ok(onlyB.every((h) => h.source === 'b'));
    assert.ok((await store.query({ ...q, licences: ['CC0-1.0'] })).every((h) => h.licence === 'CC0-1.0'));
    assert.ok((await store.query({ ...q, tags: ['late'] })).every((h) => h.tags.includes('late')));
    assert.ok((await store.query({ ...q, excludeTags: ['odd'] })).every((h) => !h.tags.includes('odd')));
    assert.equal(await store.query({ ...q, sources: ['nobody'] }), []);
    const excluded = b.items.slice(0, 5).map((i) => i.id!);
    const rest = await store.query({ ...q, sources: ['b'], excludeIds: excluded });
    assert.ok(rest.every((h) => !excluded.includes(h.id)));
    assert.is(rest.length, 10);
    const all = await store.query({ text: 'red', k: 40 });
    const cut = all[5]!.score;
    const above = await store.query({ text: 'red', k: 40, minScore: cut });
    assert.ok(above.length >= 6 && above.length < 40);
    assert.ok(above.every((h) => h.score >= cut));
    // only 20 'a' images: asking for 15 returns 15, asking for 30 returns the 20 there are
    assert.is((await store.query({ ...q, k: 30, sources: ['a'] })).length, 20);
  });
});

test('filtered HNSW search keeps recall against exact search (search deeper / exact fallback)', async () => {
  const t = tempDir();
  try {
    // exactSearchBelow 0 forces the HNSW path even for this small store; the default (2048) searches exactly.
    const approx = await ImageStore.open(join(t.dir, 'hnsw'), { encoder: fakeEncoder(), exactSearchBelow: 0, hnsw: { M: 8, efConstruction: 40, efSearch: 10 } });
    const exact = await ImageStore.open(join(t.dir, 'exact'), { encoder: fakeEncoder() });
    const imgs = await makeMany(300);
    const sourceOf = (i: number) => (i % 50 === 0 ? 'rare' : 'abcdefghi'[i % 9]!);
    const inputs = imgs.map((bytes, i) => ({ bytes, meta: { source: sourceOf(i) } }));
    await approx.add(inputs);
    await exact.add(inputs);
    let found = 0;
    let wanted = 0;
    const cases: [string, string[] | undefined][] = [['red', ['a']], ['blue', ['rare']], ['green', ['b', 'c']], ['yellow', undefined], ['purple', ['rare', 'd']], ['black', ['e']]];
    for (const [text, sources] of cases) {
      const got = await approx.query({ text, k: 10, sources });
      const truth = await exact.query({ text, k: 10, sources });
      const available = sources ? imgs.filter((_, i) => sources.includes(sourceOf(i))).length : imgs.length;
      assert.is(got.length, Math.min(10, available), `${text} ${sources}`);
      assert.ok(got.every((h) => !sources || sources.includes(h.source)));
      const ids = new Set(truth.map((h) => h.id));
      wanted += truth.length;
      found += got.filter((h) => ids.has(h.id)).length;
    }
    assert.ok(found / wanted >= 0.95, `filtered recall@10 ${found}/${wanted}`);
    await approx.close();
    await exact.close();
  } finally {
    t.cleanup();
  }
});

test('remove: never returned again, survives reopening, bytes deleted, re-adding refused', async () => {
  const t = tempDir();
  try {
    let store = await ImageStore.open(t.dir, { encoder: fakeEncoder() });
    const red = await makePng(RED, 1);
    const r = await store.add([red, await makePng(BLUE, 2), await makePng(GREEN, 3)]);
    const id = r.items[0]!.id!;
    assert.is(blobCount(t.dir), 3);
    assert.ok(await store.remove(id));
    assert.not.ok(await store.remove(id), 'removing twice is a no-op');
    assert.is(store.size, 2);
    assert.is(blobCount(t.dir), 2);
    assert.ok((await store.query({ text: 'red', k: 2 })).every((h) => h.id !== id));
    assert.is(store.get(id)!.status, 'removed');
    await store.close();

    store = await ImageStore.open(t.dir, { encoder: fakeEncoder() });
    assert.is(store.size, 2);
    assert.ok((await store.query({ text: 'red', k: 2 })).every((h) => h.id !== id));
    const readd = await store.add([red]);
    assert.is(readd.items[0]!.status, 'removed');
    assert.is(readd.items[0]!.duplicateOf, id);
    assert.is(store.size, 2);
    let code = '';
    try {
      store.readImage(id);
    } catch (e) {
      code = (e as { code: string }).code;
    }
    assert.is(code, 'IMAGE_NOT_FOUND');
    let missing = '';
    await store.remove('nope').catch((e: { code: string }) => (missing = e.code));
    assert.is(missing, 'IMAGE_NOT_FOUND');
    await store.close();
  } finally {
    t.cleanup();
  }
});

test('block and unblock change what queries return; screens decide at ingest, upload and retrieval', async () => {
  const blockedSources = new Set<string>();
  await withStore(async (store) => {
    const r = await store.add([await makePng(RED, 1), await makePng(BLUE, 2), await makePng(GREEN, 3)], { source: 'ok' });
    const redId = r.items[0]!.id!;
    await store.block(redId, 'policy 7');
    assert.is(store.size, 2);
    assert.ok((await store.query({ text: 'red', k: 2 })).every((h) => h.id !== redId));
    assert.is(store.get(redId)!.reason, 'policy 7');
    await store.unblock(redId);
    assert.is((await store.query({ text: 'red', k: 1 }))[0]!.id, redId);

    // ingest screen: blocked items are recorded with their reason and never searchable
    const bad = await store.add([await makePng(RED, 9)], { source: 'shady' });
    assert.is(bad.items[0]!.status, 'blocked');
    assert.is(bad.items[0]!.reason, 'source shady is not allowed');
    assert.is(store.size, 3);
    // re-adding it is reported as blocked again
    assert.is((await store.add([await makePng(RED, 9)], { source: 'ok' })).items[0]!.status, 'blocked');

    // uploads matching a blocked image are refused
    let code = '';
    await store.query({ image: await makePng(RED, 9), k: 1 }).catch((e: { code: string }) => (code = e.code));
    assert.is(code, 'IMAGE_BLOCKED');
    // after-embedding screen (e.g. concept similarity): refuses very blue uploads
    code = '';
    await store.embedReference(await makePng([0, 0, 255], 4)).catch((e: { code: string }) => (code = e.code));
    assert.is(code, 'IMAGE_BLOCKED');
    const fine = await store.embedReference(await makePng(GREEN, 7));
    assert.is(fine.embedding.length, 48, 'a green upload passes the same screens');

    // retrieval-time screen: a policy change hides stored images without touching them
    blockedSources.add('ok');
    assert.equal(await store.query({ text: 'red', k: 3 }), []);
    blockedSources.clear();
    assert.is((await store.query({ text: 'red', k: 3 })).length, 3);
  }, {
    screen: {
      beforeEmbed: (c) => (c.meta.source === 'shady' ? { allow: false, reason: 'source shady is not allowed' } : { allow: true }),
      afterEmbed: (c) => (c.purpose !== 'ingest' && blueness(c.embedding) > 0.5 ? { allow: false, reason: 'too blue' } : { allow: true }),
      atRetrieval: (c) => !blockedSources.has(c.source),
    },
  });
});

test('rebuild recreates the index; an encoder change is refused unless re-embedded', async () => {
  const t = tempDir();
  try {
    let store = await ImageStore.open(t.dir, { encoder: fakeEncoder() });
    await store.add(await makeMany(12));
    const before = await store.query({ text: 'blue', k: 5 });
    const rebuilt = await store.rebuild();
    assert.is(rebuilt.indexed, 12);
    assert.equal((await store.query({ text: 'blue', k: 5 })).map((h) => h.id), before.map((h) => h.id));
    await store.close();

    let code = '';
    await ImageStore.open(t.dir, { encoder: otherEncoder() }).catch((e: { code: string }) => (code = e.code));
    assert.is(code, 'ENCODER_MISMATCH');

    store = await ImageStore.open(t.dir, { encoder: otherEncoder(), onEncoderMismatch: 'reembed' });
    assert.is(store.stats().dim, 24);
    assert.is(store.stats().encoderId, 'fake-half-24');
    assert.is(store.size, 12);
    assert.is((await store.query({ text: 'blue', k: 1 }))[0]!.embedding, undefined);
    assert.is((await store.query({ text: 'blue', k: 1, withEmbeddings: true }))[0]!.embedding!.length, 24);
    await store.close();
    store = await ImageStore.open(t.dir, { encoder: otherEncoder() });
    assert.is(store.size, 12, 'the re-embedded store opens with the new encoder');
    await store.close();
  } finally {
    t.cleanup();
  }
});

test('by-reference files are not copied; rebuild --reembed blocks images whose file is gone', async () => {
  const t = tempDir();
  try {
    const files = await makeMany(3);
    files.forEach((b, i) => writeFileSync(join(t.dir, `${i}.png`), b));
    let store = await ImageStore.open(join(t.dir, 'store'), { encoder: fakeEncoder() });
    const r = await store.add([join(t.dir, '0.png'), join(t.dir, '1.png'), join(t.dir, '2.png')], {}, { copy: false });
    assert.is(r.added, 3);
    assert.is(blobCount(join(t.dir, 'store')), 0);
    assert.ok(store.get(r.items[0]!.id!)!.byReference);
    assert.equal(store.readImage(r.items[1]!.id!), files[1]);
    await store.close();
    writeFileSync(join(t.dir, '2.png'), files[0]!); // changed under the store
    let changed = '';
    try {
      store = await ImageStore.open(join(t.dir, 'store'), { encoder: fakeEncoder() });
      store.readImage(r.items[2]!.id!);
    } catch (e) {
      changed = (e as { code: string }).code;
    } finally {
      await store.close();
    }
    assert.is(changed, 'IMAGE_CHANGED');
    store = await ImageStore.open(join(t.dir, 'store'), { encoder: otherEncoder(), onEncoderMismatch: 'reembed' });
    assert.is(store.size, 2);
    assert.is(store.get(r.items[2]!.id!)!.status, 'blocked');
    assert.match(store.get(r.items[2]!.id!)!.reason!, /IMAGE_CHANGED/);
    await store.close();
  } finally {
    t.cleanup();
  }
});

test('a second open of a store in use is refused; close releases it', async () => {
  await withStore(async (_store, dir) => {
    let code = '';
    await ImageStore.open(dir, { encoder: fakeEncoder() }).catch((e: { code: string }) => (code = e.code));
    assert.is(code, 'STORE_LOCKED');
  });
  let code = '';
  await ImageStore.open(join(tempDir().dir, 'none'), { encoder: fakeEncoder(), create: false }).catch((e: { code: string }) => (code = e.code));
  assert.is(code, 'STORE_NOT_FOUND');
});

test('the index persists: reopening loads the saved graph and answers the same', async () => {
  const t = tempDir();
  try {
    let store = await ImageStore.open(t.dir, { encoder: fakeEncoder(), exactSearchBelow: 0 });
    await store.add(await makeMany(50));
    const before = (await store.query({ text: 'green', k: 5 })).map((h) => h.id);
    await store.close();
    assert.ok(readdirSync(join(t.dir, 'index')).some((f) => f.endsWith('.hnsw')));
    store = await ImageStore.open(t.dir, { encoder: fakeEncoder(), exactSearchBelow: 0 });
    assert.equal((await store.query({ text: 'green', k: 5 })).map((h) => h.id), before);
    assert.is(store.stats().hnsw.efSearch, 64);
    await store.close();
    // efSearch is persisted
    store = await ImageStore.open(t.dir, { encoder: fakeEncoder(), hnsw: { efSearch: 99 } });
    await store.close();
    store = await ImageStore.open(t.dir, { encoder: fakeEncoder() });
    assert.is(store.stats().hnsw.efSearch, 99);
    await store.close();
    assert.ok(existsSync(join(t.dir, 'store.sqlite')));
  } finally {
    t.cleanup();
  }
});

test.run();
