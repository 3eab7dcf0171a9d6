/**
 * The demo store: built from the Twemoji in emoji-datasource-twitter with the
 * tiny-emoji encoders on first use, cached, and answering text queries.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { openDemoStore, demoInputs, type ImageStore } from '../src/store/index.js';
import { loadClipEncoders, type ClipEncoders } from '../src/models/encoders.js';
import { repoPath, tempDir } from './helpers.js';

const t = tempDir('ragdiff-demo-');
let enc: ClipEncoders;
let store: ImageStore;

test.before(async () => {
  enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  store = await openDemoStore({ encoder: enc, cacheDir: t.dir });
});

test.after(async () => {
  await store.close();
  await enc.close();
  t.cleanup();
});

test('builds from the emoji package with provenance on every image', () => {
  const inputs = demoInputs('twemoji');
  assert.is(inputs.length, 1911);
  const stats = store.stats();
  // Some emoji share identical pixels (territory flags): those are skipped as exact duplicates.
  assert.ok(stats.active > 1850 && stats.active <= 1911, `active ${stats.active}`);
  assert.is(stats.encoderId, enc.id);
  const apple = store.list({ limit: 5000 }).find((r) => r.name === 'red apple')!;
  assert.ok(apple);
  assert.is(apple.source, 'twemoji');
  assert.is(apple.licence, 'CC-BY-4.0');
  assert.match(apple.attribution, /Twemoji/);
  assert.ok(apple.tags.includes('subcategory:food-fruit'));
  assert.is(apple.width, 64);
});

test('the Noto set (for database-swap experiments) lists the same emoji from emoji-datasource-google', () => {
  const noto = demoInputs('noto') as { path: string; meta: { name: string } }[];
  assert.ok(noto.length > 1850, `${noto.length}`);
  assert.ok(noto.every((i) => existsSync(i.path) && i.path.includes('emoji-datasource-google')));
  assert.ok(noto.some((i) => i.meta.name === 'red apple'));
});

test('"red apple" finds the apple among the top results', async () => {
  const hits = await store.query({ text: 'red apple', k: 5 });
  const rank = hits.findIndex((h) => h.name === 'red apple');
  assert.ok(rank >= 0, `apple not in the top 5: ${hits.map((h) => h.name).join(', ')}`);
  // and an apple picture finds itself first
  const image = hits[rank]!;
  const self = await store.query({ image: store.readImage(image.id), k: 1 });
  assert.is(self[0]!.id, image.id);
});

test('filters by tag: only fruit', async () => {
  const hits = await store.query({ text: 'red apple', k: 5, tags: ['subcategory:food-fruit'] });
  assert.is(hits.length, 5);
  assert.ok(hits.every((h) => h.tags.includes('subcategory:food-fruit')));
  const held = await store.query({ text: 'red apple', k: 5, excludeTags: ['subcategory:food-fruit'] });
  assert.ok(held.every((h) => !h.tags.includes('subcategory:food-fruit')));
});

test('is cached: a second open reuses the built store', async () => {
  // One store directory (beside it the build lock, a file that is never deleted: see openDemoStore).
  const stores = () => readdirSync(t.dir).filter((f) => !f.endsWith('.build.lock'));
  const dirs = stores();
  assert.is(dirs.length, 1);
  assert.ok(existsSync(join(t.dir, dirs[0]!, 'COMPLETE')));
  await store.close();
  store = await openDemoStore({ encoder: enc, cacheDir: t.dir });
  assert.equal(stores(), dirs);
  assert.ok(store.size > 1850);
});

test('an encoder it loaded itself closes with the store; one it was given stays open', async () => {
  const own = await openDemoStore({ encoderDir: repoPath('models/tiny-emoji'), cacheDir: t.dir, store: { readOnly: true } });
  assert.ok(own.size > 1850);                                       // the same cached store (same encoder id)
  assert.is((await own.query({ text: 'red apple', k: 1 })).length, 1);
  const ownEncoder = own.encoder;
  await own.close();
  try {
    await ownEncoder.embedText(['red apple']);
    assert.unreachable('the store\'s own encoder should be closed');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'CLOSED');
  }
  // The shared encoder `enc` outlived every store above that was given it.
  assert.is((await enc.embedText(['red apple'])).length, 1);
});

test.run();
