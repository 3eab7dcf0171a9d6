/**
 * Live sources at generation time: RagPipeline.generate({ retrieval: { from:
 * ['store', 'openverse', 'commons'] } }) searches loopback fakes of Openverse
 * and Commons, fetches candidates in parallel through the SSRF-checked
 * fetcher, passes them through the store's gate and screens, embeds them with
 * the store's encoder and ranks them with store hits. Only allowed images are
 * used, each credited; a failing source is skipped and reported; the default
 * never opens a socket (instrumented).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as net from 'node:net';
import { demoInputs, ImageStore, loadClipEncoders, type AddInput, type ClipEncoders } from '../src/store/index.js';
import { RagPipeline, readProvenance } from '../src/rag/index.js';
import { createSources, HostLimiter, type SourceRegistry } from '../src/sources/index.js';
import { startFakeApis, type FakeApis } from './fixtures/sources/fake-apis.js';
import { hasErrorCode, rejects, repoPath, tempDir } from './helpers.js';

const META = { source: 'twemoji', licence: 'CC-BY-4.0', attribution: 'Twemoji © Twitter, Inc and other contributors, CC-BY 4.0' };
const t = tempDir('ragdiff-live-');
let enc: ClipEncoders;
let store: ImageStore;
let base: RagPipeline;
let rag: RagPipeline;
let fake: FakeApis;
let sources: SourceRegistry;
const steps = 2;

const registry = (env: Record<string, string>, allow: string[] = []) =>
  createSources({ env, allowHosts: [fake.host, ...allow], limiter: new HostLimiter() });

test.before(async () => {
  fake = await startFakeApis();
  enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  store = await ImageStore.open(`${t.dir}/store`, { encoder: enc });
  const names = ['red apple', 'banana', 'automobile', 'snowman', 'rocket'];
  await store.add(demoInputs('twemoji').filter((i) => names.includes((i as AddInput & { meta?: { name?: string } }).meta?.name ?? '')), META);
  base = await RagPipeline.load(repoPath('models/tiny-emoji'));
  sources = registry({ RAGDIFF_OPENVERSE_URL: fake.base, RAGDIFF_COMMONS_URL: `${fake.base}/w/api.php` });
  rag = new RagPipeline(base.pipeline, { sources });
});

test.after(async () => {
  await base.close();
  await store.close();
  await enc.close();
  await fake.close();
  t.cleanup();
});

test('the default (store only) never opens a socket; naming a live source does (instrumented)', async () => {
  const original = net.Socket.prototype.connect;
  let connects = 0;
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    connects++;
    return (original as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof original;
  try {
    const fresh = new RagPipeline(base.pipeline); // default registry, real endpoints: must stay unused
    await fresh.generate({ prompt: 'red apple', seed: 1, steps, retrieval: { store } });
    await fresh.generate({ prompt: 'red apple', seed: 1, steps, retrieval: { store, from: ['store'] } });
    await fresh.generate({ prompt: 'red apple', seed: 1, steps });
    assert.is(connects, 0);
    await rag.generate({ prompt: 'red', seed: 1, steps, retrieval: { store, from: ['openverse'] } });
    assert.ok(connects > 0, 'the instrument sees connections when a live source is asked');
  } finally {
    net.Socket.prototype.connect = original;
  }
});

test('store + Openverse + Commons: live images ranked with stored ones; only allowed images used, each credited, in the PNG too', async () => {
  // Openverse answers red (CC0), blue (BY-SA), black (mature), private (redirects to a metadata address),
  // html (an image URL answering HTML), missing (CC-BY without a creator), bomb (a decompression bomb).
  const r = await rag.generate({
    prompt: 'red blue black private html missing bomb', seed: 2, steps,
    retrieval: { store, k: 4, from: ['store', { source: 'openverse', k: 8 }, { source: 'commons', k: 8 }] },
  });
  const ov = r.stats.retrieval!.sources!.find((s) => s.source === 'openverse')!;
  assert.is(ov.answered, 6, 'the mature result is dropped by the connector');
  assert.is(ov.fetched, 2);
  assert.is(ov.reasons!['no-attribution'], 1);
  assert.is(ov.reasons!.URL_ADDRESS_REFUSED, 1);
  assert.is(ov.reasons!.FETCH_CONTENT_TYPE, 1);
  assert.ok(ov.reasons!.IMAGE_TOO_LARGE === 1 || ov.reasons!.IMAGE_INVALID === 1 || Object.keys(ov.reasons!).some((k) => k.startsWith('IMAGE_')), JSON.stringify(ov.reasons));
  const cm = r.stats.retrieval!.sources!.find((s) => s.source === 'commons')!;
  assert.is(cm.asked, 8);
  assert.ok(cm.fetched >= 2, JSON.stringify(cm));
  assert.ok(cm.error === undefined, JSON.stringify(cm));
  const live = r.references.filter((u) => u.url !== undefined);
  assert.ok(live.length > 0, 'some live references are used');
  assert.is(r.references.length, 4);
  for (const u of r.references) {
    assert.not.equal(u.licence, 'unknown');
    if (u.licence.startsWith('CC-BY')) assert.ok(u.attribution.length > 0, `${u.name} is credited`);
  }
  for (const u of live) {
    assert.ok(['openverse', 'commons'].includes(u.source));
    assert.match(u.url!, /\/img\/(red|blue|black)\.png$/);
    if (u.source === 'openverse') assert.not.match(u.url!, /black/, 'a mature Openverse result is never used');
    assert.ok(u.landingUrl);
    if (u.licence !== 'CC0-1.0') assert.ok(u.creator && u.licenceUrl);
  }
  // The same red and blue squares come from both sources: each image is used once.
  assert.is(new Set(r.references.map((u) => u.sha256)).size, r.references.length);
  assert.ok((cm.reasons?.duplicate ?? 0) + (ov.reasons?.duplicate ?? 0) >= 1);
  assert.is(ov.used + cm.used, live.length);
  const prov = readProvenance(r.images[0]!.png).provenance!;
  const inPng = prov.references.filter((u) => u.url !== undefined);
  assert.equal(inPng.map((u) => [u.url, u.landingUrl, u.creator, u.licence, u.licenceUrl, u.source]), live.map((u) => [u.url, u.landingUrl, u.creator, u.licence, u.licenceUrl, u.source]));
});

test('a source that is down is skipped and reported; the generation succeeds from the others, and fails only when required', async () => {
  const down = new RagPipeline(base.pipeline, { sources: registry({ RAGDIFF_OPENVERSE_URL: fake.base, RAGDIFF_COMMONS_URL: 'http://127.0.0.1:1/w/api.php' }, ['127.0.0.1:1']) });
  const r = await down.generate({ prompt: 'red blue', seed: 2, steps, retrieval: { store, k: 2, from: ['openverse', 'commons'] } });
  const cm = r.stats.retrieval!.sources!.find((s) => s.source === 'commons')!;
  assert.is(cm.error, 'FETCH_FAILED');
  assert.is(cm.used, 0);
  assert.ok(r.references.length > 0 && r.references.every((u) => u.source === 'openverse'));
  await rejects(down.generate({ prompt: 'red', seed: 2, steps, retrieval: { store, k: 1, from: ['openverse', { source: 'commons', required: true }] } }), hasErrorCode('SOURCE_FAILED'));
  // Garbage from a source is a skip too.
  const g = await rag.generate({ prompt: 'garbage red', seed: 2, steps, retrieval: { store, k: 1, from: ['store', 'openverse'] } });
  assert.is(g.stats.retrieval!.sources![0]!.error, 'SOURCE_BAD_ANSWER');
  assert.is(g.references.length, 1);
  assert.is(g.references[0]!.kind, 'stored');
});

test('the licence filter applies to every source; nothing satisfying it is an empty result said clearly', async () => {
  const r = await rag.generate({ prompt: 'red blue green', seed: 2, steps, retrieval: { store, k: 3, from: ['store', 'openverse'], licences: ['CC0-1.0'] } });
  assert.ok(r.references.length > 0);
  for (const u of r.references) assert.is(u.licence, 'CC0-1.0');
  const none = await rag.generate({ prompt: 'red blue', seed: 2, steps, retrieval: { store, k: 2, from: ['store', 'openverse', 'commons'], licences: ['CC-BY-NC-4.0'] } });
  assert.is(none.references.length, 0);
  assert.match(none.stats.retrieval!.skipped!, /no reference passed/);
});

test('a URL reference is fetched, gated and credited; bad URLs and HTML answers are typed errors', async () => {
  const r = await rag.generate({ prompt: 'blue', seed: 2, steps, retrieval: { store, k: 2, references: [{ url: `${fake.base}/img/blue.png`, creator: 'Dee', licence: 'CC-BY-4.0' }] } });
  const pinned = r.references.find((u) => u.pinned)!;
  assert.equal([pinned.url, pinned.creator, pinned.licence, pinned.source], [`${fake.base}/img/blue.png`, 'Dee', 'CC-BY-4.0', 'url']);
  assert.is(r.references.length, 2);
  const bad = (ref: Record<string, unknown>, code: string) =>
    rejects(rag.generate({ prompt: 'x', seed: 1, steps, retrieval: { store, k: 1, references: [ref as { url: string }] } }), hasErrorCode(code), code);
  await bad({ url: 'file:///etc/passwd' }, 'URL_SCHEME');
  await bad({ url: 'javascript:alert(1)' }, 'URL_SCHEME');
  await bad({ url: `http://u:p@${fake.host}/img/red.png` }, 'URL_CREDENTIALS');
  await bad({ url: `${fake.base}/page.html` }, 'FETCH_CONTENT_TYPE');
  await bad({ url: 'http://169.254.169.254/latest/meta-data/' }, 'URL_ADDRESS_REFUSED');
});

test('bad input: unknown or not-enabled sources, a budget of 0, unknown keys are typed errors before any work', async () => {
  const before = fake.seen.length;
  const bad = (retrieval: Record<string, unknown>, code: string, p: RagPipeline = rag) =>
    rejects(p.generate({ prompt: 'red', seed: 1, steps, retrieval: { store, ...retrieval } }), hasErrorCode(code), code);
  await bad({ from: ['flickr'] }, 'SOURCE_UNKNOWN');
  await bad({ from: ['store', 'openverse'] }, 'SOURCE_NOT_ENABLED', new RagPipeline(base.pipeline, { sources: createSources({ enable: ['commons'] }) }));
  await bad({ from: ['openverse'], budget: { ms: 0 } }, 'OUT_OF_RANGE');
  await bad({ from: ['openverse'], budget: { images: 0 } }, 'OUT_OF_RANGE');
  await bad({ from: ['openverse'], budget: { mb: 1 } }, 'UNKNOWN_OPTION');
  await bad({ from: [] }, 'INVALID_TYPE');
  await bad({ from: [{ source: 'openverse', k: 0 }] }, 'OUT_OF_RANGE');
  assert.is(fake.seen.length, before, 'nothing was searched');
});

test('the budget bounds the stage; cancelling the request cancels its fetches', async () => {
  const slow = await rag.generate({ prompt: 'slow red', seed: 1, steps, retrieval: { store, k: 1, from: ['store', 'openverse'], budget: { ms: 300 } } });
  assert.is(slow.stats.retrieval!.sources![0]!.error, 'FETCH_TIMEOUT', JSON.stringify(slow.stats.retrieval!.sources));
  assert.is(slow.references[0]!.kind, 'stored');
  const one = await rag.generate({ prompt: 'red blue green', seed: 1, steps, retrieval: { store, k: 3, from: ['openverse'], budget: { images: 1 } } });
  assert.is(one.stats.retrieval!.sources![0]!.fetched, 1);
  const ac = new AbortController();
  const p = rag.generate({ prompt: 'slow', seed: 1, steps, signal: ac.signal, retrieval: { store, k: 1, from: ['openverse'] } });
  setTimeout(() => ac.abort(), 50);
  await rejects(p, hasErrorCode('ABORTED'));
});

test('results without a licence are never used unless the request asks for unknown licences', async () => {
  const noLicence = new RagPipeline(base.pipeline, {
    sources: createSources({ allowHosts: [fake.host], limiter: new HostLimiter(), config: { generic: [{ name: 'catalogue', url: `${fake.base}/catalogue?q={query}`, results: 'data.items', fields: { url: 'image.src', creator: 'by' } }] } }),
  });
  const r = await noLicence.generate({ prompt: 'red blue', seed: 1, steps, retrieval: { store, k: 2, from: ['store', 'catalogue'] } });
  const cat = r.stats.retrieval!.sources!.find((s) => s.source === 'catalogue')!;
  assert.is(cat.answered, 2);
  assert.is(cat.reasons!.licence, 2);
  assert.ok(r.references.every((u) => u.source === 'twemoji'));
  const asked = await noLicence.generate({ prompt: 'red blue', seed: 1, steps, retrieval: { store, k: 2, from: ['catalogue'], licences: ['unknown'] } });
  assert.equal(asked.references.map((u) => [u.source, u.licence]), [['catalogue', 'unknown'], ['catalogue', 'unknown']]);
});

test('caching is opt-in: nothing is written unless asked; cached references keep their provenance; removed ones stay removed', async () => {
  const own = await ImageStore.open(`${t.dir}/cache`, { encoder: enc });
  try {
    await own.add(demoInputs('twemoji').filter((i) => (i as AddInput & { meta?: { name?: string } }).meta?.name === 'banana'), META);
    const before = own.list({ limit: 100 }).length;
    await rag.generate({ prompt: 'red blue', seed: 1, steps, retrieval: { store: own, k: 2, from: ['store', 'openverse'] } });
    assert.is(own.list({ limit: 100 }).length, before, 'nothing cached unless asked');
    const r = await rag.generate({ prompt: 'red blue', seed: 1, steps, retrieval: { store: own, k: 2, from: ['openverse'], cache: true } });
    assert.is(r.stats.retrieval!.cached!.added, 2);
    const cached = own.list({ limit: 100 }).filter((x) => x.source === 'openverse');
    assert.is(cached.length, 2);
    for (const x of cached) {
      assert.match(x.origin, /\/img\/(red|blue)\.png$/);
      assert.ok(['CC0-1.0', 'CC-BY-SA-4.0'].includes(x.licence));
      assert.match(x.attribution, /flickr\.com/);
    }
    // The same images again: deduplicated by content hash.
    const again = await rag.generate({ prompt: 'red blue', seed: 1, steps, retrieval: { store: own, k: 2, from: ['openverse'], cache: true } });
    assert.is(again.stats.retrieval!.cached!.added, 0);
    // Opt-out applies: a removed image is not cached back.
    await own.remove(cached[0]!.id);
    const third = await rag.generate({ prompt: 'red blue', seed: 1, steps, retrieval: { store: own, k: 2, from: ['openverse'], cache: true } });
    assert.is(third.stats.retrieval!.cached!.added, 0);
    assert.is(own.get(cached[0]!.id)!.status, 'removed');
    await rejects(rag.generate({ prompt: 'red', seed: 1, steps, retrieval: { store: own, k: 1, from: ['openverse'], cache: 'yes' as unknown as boolean } }), hasErrorCode('INVALID_TYPE'));
  } finally {
    await own.close();
  }
});

test.run();
