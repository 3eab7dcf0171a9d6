/**
 * Bad input: each case is a typed error (per item for ingest, thrown for
 * arguments), and the store is unchanged and still usable afterwards.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageStore } from '../src/store/index.js';
import { fakeEncoder } from './fixtures/store/fake-encoder.js';
import { corrupt, makeMany, makePng, pngClaiming } from './fixtures/store/images.js';
import { tempDir } from './helpers.js';

const t = tempDir('ragdiff-bad-');
let store: ImageStore;
let good: Buffer[];

function snapshot(): string {
  const blobs: string[] = [];
  for (const d of readdirSync(join(t.dir, 'store', 'blobs'))) if (/^[0-9a-f]{2}$/.test(d)) blobs.push(...readdirSync(join(t.dir, 'store', 'blobs', d)));
  const s = store.stats();
  return JSON.stringify({ s: { ...s, seq: undefined }, seq: s.seq, rows: store.list().map((r) => [r.id, r.status]), blobs: blobs.sort() });
}

async function stillUsable(): Promise<void> {
  const hits = await store.query({ text: 'red', k: 2 });
  assert.is(hits.length, 2);
}

async function errorOf(p: Promise<unknown> | (() => unknown)): Promise<{ code?: string; name?: string }> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return e as { code?: string; name?: string };
  }
  return { code: 'NO_ERROR' };
}

test.before(async () => {
  store = await ImageStore.open(join(t.dir, 'store'), { encoder: fakeEncoder(), maxPixels: 10_000_000 });
  good = await makeMany(3);
  await store.add(good);
});

test.after(async () => {
  await store.close();
  t.cleanup();
});

test('zero-byte, truncated, corrupt, oversized-header and non-image files fail per item; the rest of the batch is ingested', async () => {
  const png = await makePng([200, 10, 10], 3, 64);
  const files: Record<string, Buffer> = {
    'empty.png': Buffer.alloc(0),
    'truncated.png': png.subarray(0, Math.floor(png.length / 2)),
    'corrupt.png': corrupt(png),
    'bomb.png': pngClaiming(100_000, 100_000),
    'text.png': Buffer.from('this is not an image, whatever its name says\n'),
    'html.jpg': Buffer.from('<!doctype html><html><body>hello</body></html>'),
  };
  for (const [name, bytes] of Object.entries(files)) writeFileSync(join(t.dir, name), bytes);
  const before = snapshot();
  const names = Object.keys(files);
  const report = await store.add(names.map((n) => join(t.dir, n)));
  assert.is(report.failed, names.length);
  assert.is(report.added, 0);
  const codes = Object.fromEntries(report.items.map((i) => [i.input.split('/').pop(), i.error?.code]));
  assert.equal(codes, {
    'empty.png': 'IMAGE_EMPTY',
    'truncated.png': 'IMAGE_CORRUPT',
    'corrupt.png': 'IMAGE_CORRUPT',
    'bomb.png': 'IMAGE_TOO_LARGE',
    'text.png': 'IMAGE_UNSUPPORTED',
    'html.jpg': 'IMAGE_UNSUPPORTED',
  });
  assert.is(snapshot(), before, 'the store is unchanged');
  await stillUsable();

  // the same bad inputs as Buffers, mixed with one good image: only the good one goes in
  const fresh = await makePng([10, 200, 200], 11);
  const mixed = await store.add([...Object.values(files), fresh]);
  assert.is(mixed.failed, names.length);
  assert.is(mixed.added, 1);
  assert.is(mixed.items.at(-1)!.status, 'added');
  await store.remove(mixed.items.at(-1)!.id!);
  await stillUsable();
});

test('metadata with wrong types is rejected before anything is read', async () => {
  const before = snapshot();
  const img = await makePng([1, 2, 3], 1);
  const cases: [unknown, string][] = [
    [{ source: 42 }, 'INVALID_TYPE'],
    [{ licence: null }, 'INVALID_TYPE'],
    [{ tags: 'a,b' }, 'INVALID_TYPE'],
    [{ tags: ['ok', 7] }, 'INVALID_TYPE'],
    [{ tags: [''] }, 'OUT_OF_RANGE'],
    [{ attribution: 'x'.repeat(5000) }, 'OUT_OF_RANGE'],
    [{ license: 'MIT' }, 'UNKNOWN_OPTION'],
    ['CC-BY', 'INVALID_TYPE'],
    [[1, 2], 'INVALID_TYPE'],
    [{ name: 'bad\u0000name' }, 'INVALID_VALUE'],
  ];
  for (const [meta, code] of cases) {
    const e = await errorOf(store.add([img], meta as never));
    assert.is(e.code, code, JSON.stringify(meta));
    assert.ok(e instanceof TypeError || e instanceof RangeError);
  }
  for (const inputs of [null, 'a.png', [42], [{ bytes: 'x' }], [{ bytes: img, meta: { tags: 1 } }]]) {
    assert.is((await errorOf(store.add(inputs as never))).code, 'INVALID_TYPE', JSON.stringify(inputs));
  }
  assert.is(snapshot(), before);
  await stillUsable();
});

test('queries: k ≤ 0, k > size, non-integer k, bad embeddings, ambiguous requests are typed errors', async () => {
  const before = snapshot();
  const size = store.size;
  for (const [req, code, Type] of [
    [{ text: 'red', k: 0 }, 'OUT_OF_RANGE', RangeError],
    [{ text: 'red', k: -3 }, 'OUT_OF_RANGE', RangeError],
    [{ text: 'red', k: 1.5 }, 'OUT_OF_RANGE', RangeError],
    [{ text: 'red', k: size + 1 }, 'OUT_OF_RANGE', RangeError],
    [{ text: 'red', k: '3' }, 'INVALID_TYPE', TypeError],
    [{ text: '', k: 1 }, 'INVALID_VALUE', RangeError],
    [{ text: 5, k: 1 }, 'INVALID_TYPE', TypeError],
    [{ k: 1 }, 'INVALID_ARGUMENT', TypeError],
    [{ text: 'red', embedding: new Float32Array(48) }, 'INVALID_ARGUMENT', TypeError],
    [{ embedding: new Float32Array(47).fill(1), k: 1 }, 'LENGTH_MISMATCH', RangeError],
    [{ embedding: new Float32Array(48).fill(NaN), k: 1 }, 'NON_FINITE', RangeError],
    [{ embedding: new Float32Array(48), k: 1 }, 'INVALID_VALUE', RangeError],
    [{ text: 'red', sources: 'a' }, 'INVALID_TYPE', TypeError],
    [{ text: 'red', minScore: NaN }, 'INVALID_TYPE', TypeError],
    [{ image: new Uint8Array(0), k: 1 }, 'IMAGE_EMPTY', Error],
    [{ image: Buffer.from('nope'), k: 1 }, 'IMAGE_UNSUPPORTED', Error],
  ] as const) {
    const e = await errorOf(store.query(req as never));
    assert.is(e.code, code, JSON.stringify(req));
    assert.ok(e instanceof Type, `${JSON.stringify(req)} is a ${Type.name}`);
  }
  assert.is((await errorOf(() => store.search(new Float32Array(48).fill(1), { k: 0 }))).code, 'OUT_OF_RANGE');
  assert.is(snapshot(), before);
  await stillUsable();
});

test('querying an empty store is a typed error; so is k larger than the store', async () => {
  const e = tempDir();
  const empty = await ImageStore.open(e.dir, { encoder: fakeEncoder() });
  try {
    assert.is((await errorOf(empty.query({ text: 'red', k: 1 }))).code, 'STORE_EMPTY');
    assert.is((await errorOf(() => empty.search(new Float32Array(48).fill(1)))).code, 'STORE_EMPTY');
    await empty.add([await makePng([9, 9, 9], 1)]);
    assert.is((await errorOf(empty.query({ text: 'red', k: 2 }))).code, 'OUT_OF_RANGE');
    assert.is((await empty.query({ text: 'red', k: 1 })).length, 1);
  } finally {
    await empty.close();
    e.cleanup();
  }
});

test('an encoder that fails or returns garbage fails those items only', async () => {
  const e = tempDir();
  const bad = await ImageStore.open(e.dir, { encoder: fakeEncoder({ failOnRed: 77 }), batchSize: 8 });
  try {
    const ok = await makeMany(3, 100);
    const boom = await makePng([77, 1, 1], 5);
    const r = await bad.add([ok[0]!, boom, ok[1]!, ok[2]!]);
    assert.equal(r.items.map((i) => i.status), ['added', 'failed', 'added', 'added']);
    assert.is(r.items[1]!.error!.code, 'EMBED_FAILED');
    assert.is(bad.size, 3);
  } finally {
    await bad.close();
    e.cleanup();
  }
  const g = tempDir();
  const garbage = await ImageStore.open(g.dir, {
    encoder: { dim: 4, async embedImages(imgs) { return imgs.map(() => new Float32Array([NaN, 0, 0, 0])); }, async embedText() { return [new Float32Array(4).fill(1)]; } },
  });
  try {
    const r = await garbage.add([await makePng([5, 5, 5], 1)]);
    assert.is(r.items[0]!.error!.code, 'EMBED_FAILED');
    assert.is(garbage.size, 0);
  } finally {
    await garbage.close();
    g.cleanup();
  }
});

test('options are validated at open', async () => {
  const e = tempDir();
  try {
    assert.is((await errorOf(ImageStore.open(e.dir, {} as never))).code, 'INVALID_TYPE');
    assert.is((await errorOf(ImageStore.open(e.dir, { encoder: fakeEncoder(), batchSize: 0 }))).code, 'OUT_OF_RANGE');
    assert.is((await errorOf(ImageStore.open(e.dir, { encoder: fakeEncoder(), hnsw: { M: 1 } }))).code, 'OUT_OF_RANGE');
    assert.is((await errorOf(ImageStore.open(e.dir, { encoder: fakeEncoder(), onEncoderMismatch: 'ignore' as never }))).code, 'INVALID_VALUE');
  } finally {
    e.cleanup();
  }
});

test.run();
