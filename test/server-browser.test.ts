/**
 * The page, end to end in a real browser (Debian's chromium driven by
 * playwright-core, on loopback, phone-sized viewport): type a prompt, see the
 * references, drop one, upload one, generate with live progress, and get an
 * image whose provenance lists the upload and omits the dropped reference,
 * shown beside a no-retrieval image of the same seed, with the references used
 * listed under it with their attribution.
 *
 * Skipped, with a message, where /usr/bin/chromium is missing (CI installs it:
 * .ci/run). A screenshot is saved to out/test-artifacts/ on failure.
 * RAGDIFF_SCREENSHOT=<file.png> also saves one of the finished page.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { loadClipEncoders, type ClipEncoders, type ImageStore } from '../src/store/index.js';
import { RagPipeline, readProvenance } from '../src/rag/index.js';
import { createServer, type RagServer } from '../src/server/index.js';
import { buildSmallStore, twemojiInputs, UPLOAD_NAME } from './fixtures/server/small-store.js';
import { repoPath, tempDir } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

if (!existsSync(CHROMIUM)) {
  console.log(`server-browser: SKIPPED — ${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)`);
  // Reported by uvu as skipped, so the runner counts it as such rather than as a file that failed to report.
  test.skip('the page end to end in chromium', () => {});
  test.run();
} else {
  const t = tempDir('ragdiff-browser-');
  let enc: ClipEncoders;
  let store: ImageStore;
  let rag: RagPipeline;
  let server: RagServer;
  let base: string;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  test.before(async () => {
    enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
    store = await buildSmallStore(`${t.dir}/store`, enc);
    rag = await RagPipeline.load(repoPath('models/tiny-emoji'), { concurrency: 1, maxQueue: 4 });
    server = await createServer({ rag, store });
    base = await server.listen({ host: '127.0.0.1', port: 0 });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
    // A phone-sized viewport: the page must work there.
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
  });

  test.after(async () => {
    await browser?.close();
    await server?.close({ graceMs: 0 });
    await rag?.close();
    await store?.close();
    await enc?.close();
    t.cleanup();
  });

  const shoot = async (path: string) => {
    mkdirSync(dirname(path), { recursive: true });
    await page.screenshot({ path, fullPage: true });
  };

  test('type a prompt, see references, drop one, upload one, generate: the provenance lists the upload and omits the dropped one', async () => {
    try {
      await page.goto(`${base}/`);
      await page.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
      await page.fill('#prompt', 'red apple');
      await page.click('#search');
      await page.waitForFunction(() => document.querySelectorAll('#refs li').length >= 4, undefined, { timeout: 30_000 });
      const first = page.locator('#refs li').first();
      assert.match(await first.innerText(), /red apple/);
      assert.match(await first.innerText(), /twemoji · CC-BY-4\.0 · score 0\.\d{3}/);
      // Thumbnails are loaded (fetched, shown as blob URLs).
      await page.waitForFunction(() => [...document.querySelectorAll<HTMLImageElement>('#refs li img')].every((i) => i.complete && i.naturalWidth > 0), undefined, { timeout: 30_000 });

      // Drop the best match.
      const dropped = (await first.getAttribute('data-id'))!;
      await first.locator('button.drop').click();
      assert.is(await page.locator(`#refs li[data-id="${dropped}"]`).getAttribute('data-choice'), 'dropped');

      // Upload one: it is added to the store (through its gate) and pinned.
      await page.setInputFiles('#upload', twemojiInputs([UPLOAD_NAME])[0]!.path);
      const uploaded = page.locator('#refs li[data-choice="pinned"]');
      await uploaded.waitFor({ timeout: 30_000 });
      const uploadId = (await uploaded.getAttribute('data-id'))!;
      assert.match(await uploaded.innerText(), /uploaded/i);
      assert.equal([store.get(uploadId)!.status, store.get(uploadId)!.source], ['active', 'upload']);

      await page.click('#settings summary');
      await page.fill('#steps', '4');
      await page.fill('#seed', '5');
      await page.click('#generate');
      await page.waitForFunction(() => /^Done/.test(document.querySelector('#status')!.textContent ?? '') || document.querySelector('#status')!.classList.contains('error'), undefined, { timeout: 120_000 });
      assert.match(await page.locator('#status').innerText(), /^Done: seed 5/);

      // Live progress reached the page (stage names only come from the event stream).
      assert.ok(['decode', 'png', 'denoise'].includes((await page.locator('#with').getAttribute('data-stage')) ?? ''));
      assert.is(await page.locator('#with progress').evaluate((p) => (p as HTMLProgressElement).value), 1);

      const withSrc = (await page.locator('#with img.out').getAttribute('src'))!;
      const withoutSrc = (await page.locator('#without img.out').getAttribute('src'))!;
      assert.match(withSrc, /^data:image\/png;base64,/);
      assert.match(withoutSrc, /^data:image\/png;base64,/);
      const withPng = readProvenance(Buffer.from(withSrc.split(',')[1]!, 'base64'));
      const withoutPng = readProvenance(Buffer.from(withoutSrc.split(',')[1]!, 'base64'));
      const ids = withPng.provenance!.references.map((r) => r.id);
      assert.ok(ids.includes(uploadId), `the upload ${uploadId} is in the provenance: ${ids.join(', ')}`);
      assert.not.ok(ids.includes(dropped), `the dropped ${dropped} is not`);
      assert.is(withPng.parameters.seed, 5);
      assert.is(withoutPng.parameters.seed, 5, 'the comparison uses the same seed');
      assert.is(withoutPng.provenance, undefined, 'the comparison has no references');

      // The references used are listed under the image, with attribution.
      const used = page.locator('#with .used-list li');
      assert.is(await used.count(), ids.length);
      assert.match(await page.locator(`#with .used-list li[data-id="${uploadId}"]`).innerText(), /pinned/);
      assert.match(await used.nth(1).innerText(), /Twemoji © Twitter/);

      // Phone-sized: nothing wider than the viewport.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow} px wider than the viewport`);
      assert.equal(pageErrors, []);
      if (process.env.RAGDIFF_SCREENSHOT) await shoot(process.env.RAGDIFF_SCREENSHOT);
    } catch (e) {
      const path = repoPath('out/test-artifacts/server-browser-failure.png');
      await shoot(path).catch(() => {});
      console.error(`server-browser: screenshot of the failure saved to ${path}`);
      throw e;
    }
  });

  test('with API keys and a safety screen: the key is asked for, refused references are shown with the reason, a generate-only key cannot upload', async () => {
    const ghost = store.list({ limit: 1000 }).find((r) => r.name === 'ghost')!.id;
    const keyed = await createServer({
      rag, store, apiKeys: { keys: ['page-read-key-123'], writeKeys: ['page-write-key-123'] },
      safety: { screen: (ref) => (ref.id === ghost ? { allow: false, reason: 'no ghosts on this server' } : { allow: true }), policyStamp: () => ({ version: 'page-test', hash: 'sha256:0123456789abcdef' }) },
    });
    const url = await keyed.listen({ host: '127.0.0.1', port: 0 });
    const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true });
    const p = await context.newPage();
    try {
      await p.goto(`${url}/`);
      // /v1/info needs the key too: the page asks for it before it can draw itself.
      await p.locator('#api-key').waitFor({ state: 'visible', timeout: 30_000 });
      assert.match(await p.locator('#status').innerText(), /needs an API key/);
      await p.fill('#api-key', 'page-read-key-123');
      await p.waitForSelector('body[data-ready="true"]', { timeout: 30_000 });
      assert.match(await p.locator('#model').innerText(), /safety policy sha256:0123/);
      assert.ok(await p.locator('#api-key').isVisible(), 'the key field stays shown when the server needs keys');
      await p.fill('#prompt', 'ghost');
      await p.click('#search');
      const card = p.locator(`#refs li[data-id="${ghost}"]`);
      await card.waitFor({ timeout: 30_000 });
      assert.match((await card.getAttribute('class')) ?? '', /refused/);
      assert.match(await card.innerText(), /refused by policy/i);
      assert.ok(await p.locator('#safety').isVisible());
      assert.match(await p.locator('#safety').innerText(), /no ghosts on this server/);
      await p.setInputFiles('#upload', twemojiInputs(['guitar'])[0]!.path);
      await p.waitForFunction(() => /Upload refused/.test(document.querySelector('#status')!.textContent ?? ''), undefined, { timeout: 30_000 });
      assert.match(await p.locator('#status').innerText(), /write key/);
    } catch (e) {
      const path = repoPath('out/test-artifacts/server-browser-keys-failure.png');
      mkdirSync(dirname(path), { recursive: true });
      await p.screenshot({ path, fullPage: true }).catch(() => {});
      console.error(`server-browser: screenshot of the failure saved to ${path}`);
      throw e;
    } finally {
      await context.close();
      await keyed.close({ graceMs: 0 });
    }
  });

  test.run();
}
