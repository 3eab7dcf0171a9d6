/**
 * The page with live sources, in a real browser (chromium via playwright-core,
 * loopback only): the sources picker lists what the operator enabled, ticking
 * Openverse (a loopback fake) and pasting an image URL make a generation whose
 * references list each live one with its source, creator, licence and a link
 * to its page. Skipped where /usr/bin/chromium is missing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { loadClipEncoders, type ClipEncoders, type ImageStore } from '../src/store/index.js';
import { RagPipeline, readProvenance } from '../src/rag/index.js';
import { createServer, type RagServer } from '../src/server/index.js';
import { createSources, HostLimiter } from '../src/sources/index.js';
import { buildSmallStore } from './fixtures/server/small-store.js';
import { startFakeApis, type FakeApis } from './fixtures/sources/fake-apis.js';
import { repoPath, tempDir } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

if (!existsSync(CHROMIUM)) {
  console.log(`server-browser-sources: SKIPPED — ${CHROMIUM} is missing`);
  test.skip('the page with live sources', () => {});
  test.run();
} else {
  const t = tempDir('ragdiff-browser-sources-');
  let enc: ClipEncoders;
  let store: ImageStore;
  let rag: RagPipeline;
  let server: RagServer;
  let fake: FakeApis;
  let browser: Browser;
  let base = '';

  test.before(async () => {
    fake = await startFakeApis();
    enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
    store = await buildSmallStore(`${t.dir}/store`, enc);
    rag = await RagPipeline.load(repoPath('models/tiny-emoji'), { concurrency: 1, maxQueue: 4 });
    const sources = createSources({ enable: ['openverse'], env: { RAGDIFF_OPENVERSE_URL: fake.base }, allowHosts: [fake.host], limiter: new HostLimiter() });
    server = await createServer({ rag, store, sources });
    base = await server.listen({ host: '127.0.0.1', port: 0 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  });

  test.after(async () => {
    await browser?.close();
    await server?.close({ graceMs: 0 });
    await rag?.close();
    await store?.close();
    await enc?.close();
    await fake?.close();
    t.cleanup();
  });

  test('pick Openverse, paste an image URL, generate: the live references are credited with links', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${base}/`);
    await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
    assert.equal(await page.locator('#sources input[name="source"]').evaluateAll((els) => els.map((e) => [(e as HTMLInputElement).value, (e as HTMLInputElement).checked])), [['store', true], ['openverse', false]]);
    await page.check('#sources input[value="openverse"]');
    await page.fill('#ref-url', `${fake.base}/img/blue.png`);
    await page.fill('#prompt', 'red blue');
    await page.click('#settings summary');
    await page.fill('#steps', '2');
    await page.uncheck('#compare');
    await page.click('#generate');
    await page.waitForFunction(() => /^Done/.test(document.querySelector('#status')!.textContent ?? '') || document.querySelector('#status')!.classList.contains('error'), undefined, { timeout: 120_000 });
    assert.match(await page.locator('#status').innerText(), /^Done/);
    const src = (await page.locator('#with img.out').getAttribute('src'))!;
    const refs = readProvenance(Buffer.from(src.split(',')[1]!, 'base64')).provenance!.references;
    assert.ok(refs.some((r) => r.source === 'url' && r.url === `${fake.base}/img/blue.png`));
    assert.ok(refs.some((r) => r.source === 'openverse'));
    const text = await page.locator('#with .used-list').innerText();
    assert.match(text, /openverse · by Ann red/);
    const links = await page.locator('#with .used-list a').evaluateAll((as) => as.map((a) => (a as HTMLAnchorElement).href));
    assert.ok(links.includes('https://www.flickr.com/photos/x/0'), links.join(' '));
    assert.equal(errors, []);
    await page.close();
  });

  test.run();
}
