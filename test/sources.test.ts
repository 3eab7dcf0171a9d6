/**
 * The live-source port: Openverse, Wikimedia Commons, an operator's JSON
 * search API and plain URLs, each against a loopback fake answering in the
 * API's documented shape. Licences normalise to one id set; mature results,
 * malformed and oversized answers, 429s and bad configs are handled as the
 * issue asks. Nothing leaves 127.0.0.1.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { createSources, HostLimiter, htmlToText, normaliseLicence, requiresAttribution, retryAfterMs, urlCandidate } from '../src/sources/index.js';
import { startFakeApis, type FakeApis } from './fixtures/sources/fake-apis.js';
import { hasErrorCode, rejects, tempDir } from './helpers.js';

let fake: FakeApis;
const t = tempDir('ragdiff-sources-');
const generic = { name: 'catalogue', url: '', results: 'data.items', fields: { url: 'image.src', creator: 'by', licence: 'terms', title: 'caption' } };
const registry = (extra: Record<string, unknown> = {}) =>
  createSources({
    env: { RAGDIFF_OPENVERSE_URL: fake.base, RAGDIFF_COMMONS_URL: `${fake.base}/w/api.php` },
    allowHosts: [fake.host], config: { generic: [{ ...generic, url: `${fake.base}/catalogue?q={query}&n={k}` }] }, limiter: new HostLimiter(), ...extra,
  });

test.before(async () => {
  fake = await startFakeApis();
});
test.after(async () => {
  await fake.close();
  t.cleanup();
});

test('licences from every spelling normalise to one id; CC-BY kinds require attribution', () => {
  assert.is(normaliseLicence('by-sa', '4.0'), 'CC-BY-SA-4.0');
  assert.is(normaliseLicence('CC BY-SA 4.0'), 'CC-BY-SA-4.0');
  assert.is(normaliseLicence('cc-by-sa-4.0'), 'CC-BY-SA-4.0');
  assert.is(normaliseLicence('https://creativecommons.org/licenses/by/2.0/'), 'CC-BY-2.0');
  assert.is(normaliseLicence('cc0', '1.0'), 'CC0-1.0');
  assert.is(normaliseLicence('CC0'), 'CC0-1.0');
  assert.is(normaliseLicence('https://creativecommons.org/publicdomain/zero/1.0/'), 'CC0-1.0');
  assert.is(normaliseLicence('Public domain'), 'PDM');
  assert.is(normaliseLicence('pdm'), 'PDM');
  assert.is(normaliseLicence('CC-BY-4.0'), 'CC-BY-4.0');
  assert.is(normaliseLicence('by', '4'), 'CC-BY-4.0');
  assert.is(normaliseLicence('All rights reserved'), 'unknown');
  assert.is(normaliseLicence(undefined), 'unknown');
  assert.ok(requiresAttribution('CC-BY-SA-4.0'));
  assert.not.ok(requiresAttribution('CC0-1.0'));
  assert.not.ok(requiresAttribution('PDM'));
});

test('Openverse: results map to candidates with licence, creator and landing page; mature results are dropped', async () => {
  const got = await registry().get('openverse').search('red blue black green', { k: 10 });
  assert.equal(got.map((c) => c.title), ['red square', 'blue square', 'green square']);
  assert.equal(got.map((c) => c.licence), ['CC0-1.0', 'CC-BY-SA-4.0', 'CC-BY-SA-4.0']);
  assert.is(got[0]!.creator, 'Ann red');
  assert.is(got[0]!.url, `${fake.base}/img/red.png`);
  assert.is(got[0]!.thumbnailUrl, `${fake.base}/img/red.png`);
  assert.is(got[0]!.landingUrl, 'https://www.flickr.com/photos/x/0');
  assert.is(got[1]!.licenceUrl, 'https://creativecommons.org/licenses/by-sa/4.0/');
  assert.is(got[0]!.source, 'openverse');
  const q = fake.seen.find((s) => s.startsWith('/v1/images/'))!;
  assert.match(q, /q=red\+blue\+black\+green/);
  assert.match(q, /page_size=/);
});

test('Openverse: the licence filter is sent and applied; k caps the answer', async () => {
  const got = await registry().get('openverse').search('red blue green yellow', { k: 10, licences: ['CC-BY-SA-4.0'] });
  assert.ok(fake.seen.some((s) => /license=by-sa/.test(s)));
  assert.ok(got.length > 0);
  for (const c of got) assert.is(c.licence, 'CC-BY-SA-4.0');
  assert.is((await registry().get('openverse').search('red blue green yellow', { k: 2 })).length, 2);
  assert.equal(await registry().get('openverse').search('red blue green yellow', { k: 5, licences: ['CC-BY-NC-ND-4.0'] }), []);
});

test('Openverse: a 429 with Retry-After is waited out once and the search succeeds', async () => {
  const before = fake.seen.length;
  const got = await registry().get('openverse').search('ratelimit red', { k: 3 });
  assert.is(got.length, 1);
  assert.is(fake.seen.length - before, 2);
  assert.is(retryAfterMs('3'), 3000);
  assert.is(retryAfterMs(new Date(Date.now() + 5000).toUTCString())! > 3000, true);
  assert.is(retryAfterMs(undefined), undefined);
});

test('malformed JSON, an HTML answer and a 50 MB answer are typed errors; the big one is cut off, not buffered', async () => {
  const ov = registry().get('openverse');
  await rejects(ov.search('garbage', { k: 3 }), hasErrorCode('SOURCE_BAD_ANSWER'));
  await rejects(ov.search('htmlanswer', { k: 3 }), hasErrorCode('SOURCE_BAD_ANSWER'));
  await rejects(ov.search('huge', { k: 3 }), hasErrorCode('FETCH_TOO_LARGE'));
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(fake.hugeSent() < 50 * 1024 * 1024, `the fake got ${fake.hugeSent()} bytes out`);
});

test('a slow answer times out; an abort cancels the search', async () => {
  await rejects(registry({ timeoutMs: 200 }).get('openverse').search('slow', { k: 3 }), hasErrorCode('FETCH_TIMEOUT'));
  const ac = new AbortController();
  const p = registry().get('openverse').search('slow', { k: 3, signal: ac.signal });
  setTimeout(() => ac.abort(), 20);
  await rejects(p, hasErrorCode('ABORTED'));
});

test('Commons: generator search → imageinfo; licence and artist from extmetadata, artist HTML stripped, order by index', async () => {
  const got = await registry().get('commons').search('red blue', { k: 5 });
  // index puts blue (index 1) before red (index 2)
  assert.equal(got.map((c) => c.title), ['blue square', 'red square']);
  assert.is(got[0]!.creator, 'Bo & blue');
  assert.is(got[0]!.licence, 'CC-BY-SA-4.0');
  assert.is(got[0]!.licenceUrl, 'https://creativecommons.org/licenses/by-sa/4.0');
  assert.is(got[0]!.landingUrl, 'https://commons.wikimedia.org/wiki/File:blue_square.png');
  assert.match(got[0]!.attribution, /Bo & blue/);
  const q = new URL(fake.seen.find((s) => s.startsWith('/w/api.php'))!, 'http://x').searchParams;
  assert.is(q.get('generator'), 'search');
  assert.is(q.get('gsrnamespace'), '6');
  assert.is(q.get('prop'), 'imageinfo');
  assert.is(q.get('iiprop'), 'url|mime|size|extmetadata');
  assert.ok(Number(q.get('iiurlwidth')) > 0);
  assert.equal(await registry().get('commons').search('nothing here', { k: 5 }), []);
  assert.is(htmlToText('<span>A &lt;b&gt; &#x41;&#66;</span>  <script>x()</script>'), 'A <b> AB');
});

test('generic JSON: a URL template and field paths; a path the answer lacks is SOURCE_CONFIG naming it', async () => {
  const got = await registry().get('catalogue').search('red green', { k: 5 });
  assert.equal(got.map((c) => [c.title, c.creator, c.licence, c.source]), [['red', 'Cat red', 'CC-BY-4.0', 'catalogue'], ['green', 'Cat green', 'CC-BY-4.0', 'catalogue']]);
  assert.ok(fake.seen.some((s) => s === '/catalogue?q=red%20green&n=5'));
  const wrong = createSources({ allowHosts: [fake.host], limiter: new HostLimiter(), config: { generic: [{ ...generic, url: `${fake.base}/catalogue?q={query}`, results: 'data.hits' }] } });
  await rejects(wrong.get('catalogue').search('red', { k: 2 }), (e) => hasErrorCode('SOURCE_CONFIG')(e) && /data\.hits/.test((e as Error).message));
  const wrongField = createSources({ allowHosts: [fake.host], limiter: new HostLimiter(), config: { generic: [{ ...generic, url: `${fake.base}/catalogue?q={query}`, fields: { url: 'img.href' } }] } });
  await rejects(wrongField.get('catalogue').search('red', { k: 2 }), (e) => hasErrorCode('SOURCE_CONFIG')(e) && /img\.href/.test((e as Error).message));
  // The config file itself is checked when loaded.
  const file = `${t.dir}/sources.json`;
  writeFileSync(file, JSON.stringify({ generic: [{ name: 'x', url: 'http://h/{query}', results: 'a', fields: { url: 'u', colour: 'c' } }] }));
  assert.throws(() => createSources({ config: file }), (e: Error) => hasErrorCode('SOURCE_CONFIG')(e) && /colour/.test(e.message));
  writeFileSync(file, JSON.stringify({ generic: [{ name: 'x', url: 'http://{query}.example/s', results: 'a', fields: { url: 'u' } }] }));
  assert.throws(() => createSources({ config: file }), (e: Error) => hasErrorCode('SOURCE_CONFIG')(e) && /host/.test(e.message));
  writeFileSync(file, '{ not json');
  assert.throws(() => createSources({ config: file }), hasErrorCode('SOURCE_CONFIG'));
});

test('registry: unknown and not-enabled sources are typed errors; endpoints come from env or config', () => {
  const r = registry({ enable: ['commons'] });
  assert.throws(() => r.get('flickr'), hasErrorCode('SOURCE_UNKNOWN'));
  assert.throws(() => r.get('openverse'), hasErrorCode('SOURCE_NOT_ENABLED'));
  assert.throws(() => createSources({ enable: ['nope'] }), hasErrorCode('SOURCE_UNKNOWN'));
  assert.equal(createSources().enabled, ['openverse', 'commons']);
});

test('plain URLs: bad schemes and credentials are typed errors at once; a good one is a candidate', () => {
  assert.throws(() => urlCandidate({ url: 'file:///etc/passwd' }, 'references[0]'), hasErrorCode('URL_SCHEME'));
  assert.throws(() => urlCandidate({ url: 'ftp://h/x.png' }, 'references[0]'), hasErrorCode('URL_SCHEME'));
  assert.throws(() => urlCandidate({ url: 'http://u:p@example.org/x.png' }, 'references[0]'), hasErrorCode('URL_CREDENTIALS'));
  assert.throws(() => urlCandidate({ url: 'http://169.254.169.254/x.png' }, 'references[0]'), hasErrorCode('URL_ADDRESS_REFUSED'));
  const c = urlCandidate({ url: 'https://example.org/a%20b.png', creator: 'Cy', licence: 'CC BY 4.0' }, 'references[0]');
  assert.equal([c.title, c.creator, c.licence, c.source, c.landingUrl], ['a b.png', 'Cy', 'CC-BY-4.0', 'url', 'https://example.org/a%20b.png']);
});

test('the politeness limit holds one host to its concurrency', async () => {
  const lim = new HostLimiter({ concurrency: 2 });
  let active = 0;
  let peak = 0;
  const job = () => lim.run('http://h.example/x', undefined, async () => {
    active++;
    peak = Math.max(peak, active);
    await new Promise((r) => setTimeout(r, 5));
    active--;
  });
  await Promise.all([job(), job(), job(), job(), job()]);
  assert.is(peak, 2);
});

test.run();
