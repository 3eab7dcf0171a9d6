/**
 * Live sources over HTTP: `GET /v1/sources` lists what the operator enabled
 * (nothing online unless createServer({ sources }) / `serve --sources`), and a
 * generation body's `retrieval.from`, `budget` and `references: [{ url }]`
 * reach the loopback fakes only then; otherwise 403 SOURCE_NOT_ENABLED before
 * anything is fetched.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { demoInputs, ImageStore, loadClipEncoders, type AddInput, type ClipEncoders } from '../src/store/index.js';
import { RagPipeline, readProvenance } from '../src/rag/index.js';
import { createServer, type RagServer } from '../src/server/index.js';
import { createSources, HostLimiter } from '../src/sources/index.js';
import { startFakeApis, type FakeApis } from './fixtures/sources/fake-apis.js';
import { repoPath, tempDir } from './helpers.js';

const t = tempDir('ragdiff-server-sources-');
let enc: ClipEncoders;
let store: ImageStore;
let rag: RagPipeline;
let fake: FakeApis;
let online: RagServer;
let offline: RagServer;
let onlineBase = '';
let offlineBase = '';

const post = (url: string, body: unknown) => fetch(url, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

test.before(async () => {
  fake = await startFakeApis();
  enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  store = await ImageStore.open(`${t.dir}/store`, { encoder: enc });
  await store.add(demoInputs('twemoji').filter((i) => ['red apple', 'banana'].includes((i as AddInput & { meta?: { name?: string } }).meta?.name ?? '')), { source: 'twemoji', licence: 'CC-BY-4.0', attribution: 'Twemoji' });
  rag = await RagPipeline.load(repoPath('models/tiny-emoji'));
  const sources = createSources({ enable: ['openverse'], env: { RAGDIFF_OPENVERSE_URL: fake.base, RAGDIFF_COMMONS_URL: `${fake.base}/w/api.php` }, allowHosts: [fake.host], limiter: new HostLimiter() });
  online = await createServer({ rag, store, page: false, sources });
  onlineBase = await online.listen();
  offline = await createServer({ rag, store, page: false });
  offlineBase = await offline.listen();
});

test.after(async () => {
  await online.close();
  await offline.close();
  await rag.close();
  await store.close();
  await enc.close();
  await fake.close();
  t.cleanup();
});

test('GET /v1/sources: the store and the online sources the operator enabled (none by default)', async () => {
  assert.equal(await (await fetch(`${onlineBase}/v1/sources`)).json(), { sources: ['store', 'openverse'], urls: true });
  assert.equal(await (await fetch(`${offlineBase}/v1/sources`)).json(), { sources: ['store'], urls: false });
});

test('POST /v1/images/generations with retrieval.from and a URL reference: live references credited in the answer and the PNG', async () => {
  const res = await post(`${onlineBase}/v1/images/generations`, {
    prompt: 'red blue', seed: 1, steps: 2,
    retrieval: { k: 3, from: ['store', { source: 'openverse', k: 2 }], budget: { ms: 10000 }, references: [{ url: `${fake.base}/img/green.png`, creator: 'Gee', licence: 'CC-BY-4.0' }] },
  });
  const body = (await res.json()) as any;
  assert.is(res.status, 200, JSON.stringify(body));
  const refs = body.references as any[];
  assert.ok(refs.some((r) => r.source === 'url' && r.url === `${fake.base}/img/green.png` && r.creator === 'Gee'));
  const ov = refs.filter((r) => r.source === 'openverse');
  assert.ok(ov.length > 0);
  for (const r of ov) assert.ok(r.url && r.landingUrl && r.licence);
  assert.ok(body.retrieval.sources.some((s: any) => s.source === 'openverse' && s.used === ov.length));
  const prov = readProvenance(Buffer.from(body.data[0].b64_json, 'base64')).provenance!;
  assert.is(prov.references.filter((u) => u.url).length, ov.length + 1);
});

test('sources the operator did not enable are 403 SOURCE_NOT_ENABLED before anything is fetched; bad bodies are 400', async () => {
  const before = fake.seen.length;
  const expect = async (base: string, retrieval: unknown, status: number, code: string) => {
    const res = await post(`${base}/v1/images/generations`, { prompt: 'red', steps: 2, retrieval });
    const b = (await res.json()) as any;
    assert.is(res.status, status, JSON.stringify(b));
    assert.is(b.error.code, code);
  };
  await expect(offlineBase, { from: ['store', 'openverse'] }, 403, 'SOURCE_NOT_ENABLED');
  await expect(offlineBase, { references: [{ url: `${fake.base}/img/red.png` }] }, 403, 'SOURCE_NOT_ENABLED');
  await expect(onlineBase, { from: ['commons'] }, 403, 'SOURCE_NOT_ENABLED');
  await expect(onlineBase, { from: ['flickr'] }, 403, 'SOURCE_NOT_ENABLED');
  await expect(onlineBase, { from: ['openverse'], budget: { ms: 0 } }, 400, 'OUT_OF_RANGE');
  await expect(onlineBase, { references: [{ url: 'file:///etc/passwd' }] }, 400, 'URL_SCHEME');
  await expect(onlineBase, { from: ['openverse'], cache: true }, 400, 'INVALID_REQUEST');
  assert.is(fake.seen.length, before, 'nothing was searched or fetched');
});

test.run();
