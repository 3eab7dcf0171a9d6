/**
 * The command line with live sources, run as a user would (a child process)
 * against loopback fakes: `generate --source store --source openverse
 * --licence … --ref-url … --allow-host …` and `ragdiff sources search`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { demoInputs, ImageStore, loadClipEncoders, type AddInput } from '../src/store/index.js';
import { readProvenance } from '../src/rag/index.js';
import { readFileSync } from 'node:fs';
import { startFakeApis, type FakeApis } from './fixtures/sources/fake-apis.js';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const t = tempDir('ragdiff-cli-sources-');
let fake: FakeApis;
const storeDir = join(t.dir, 'store');

function ragdiff(args: string[]): Promise<{ code: number; stdout: string; stderr: string; json: any }> {
  const env = { ...process.env, RAGDIFF_OPENVERSE_URL: fake.base, RAGDIFF_COMMONS_URL: `${fake.base}/w/api.php` };
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: repoPath('.'), env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr, json });
    });
  });
}

test.before(async () => {
  fake = await startFakeApis();
  const enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  const store = await ImageStore.open(storeDir, { encoder: enc });
  await store.add(demoInputs('twemoji').filter((i) => ['red apple', 'banana'].includes((i as AddInput & { meta?: { name?: string } }).meta?.name ?? '')), { source: 'twemoji', licence: 'CC-BY-4.0', attribution: 'Twemoji' });
  await store.close();
  await enc.close();
});
test.after(async () => {
  await fake.close();
  t.cleanup();
});

test('generate --source store --source openverse --licence CC0-1.0 --ref-url --allow-host --json: live references credited, in the PNG too', async () => {
  const out = join(t.dir, 'a.png');
  const r = await ragdiff(['generate', 'red blue green', '-o', out, '--store', storeDir, '--source', 'store', '--source', 'openverse', '--licence', 'CC0-1.0',
    '--ref-url', `${fake.base}/img/blue.png`, '--allow-host', fake.host, '-k', '3', '--steps', '2', '--seed', '1', '--json']);
  assert.is(r.code, 0, r.stderr);
  const refs = r.json.references as any[];
  const pinned = refs.find((x) => x.pinned);
  assert.is(pinned.url, `${fake.base}/img/blue.png`);
  assert.is(pinned.source, 'url');
  const ov = refs.filter((x) => x.source === 'openverse');
  assert.ok(ov.length > 0, JSON.stringify(refs));
  for (const x of ov) {
    assert.is(x.licence, 'CC0-1.0');
    assert.ok(x.url && x.landingUrl && typeof x.creator === 'string');
  }
  assert.ok(refs.every((x) => x.source !== 'twemoji'), 'the store has only CC-BY images: filtered out');
  assert.ok(r.json.stats.retrieval.sources.some((s: any) => s.source === 'openverse' && s.used === ov.length));
  const prov = readProvenance(readFileSync(out)).provenance!;
  assert.equal(prov.references.filter((u) => u.url).map((u) => u.url).sort(), refs.filter((x) => x.url).map((x) => x.url).sort());
  const explained = await ragdiff(['explain', out]);
  assert.ok(explained.stdout.includes(`${fake.base}/img/blue.png`) || explained.stdout.includes('flickr.com'), explained.stdout);
});

test('generate: a bad --ref-url and an unknown source are typed errors', async () => {
  const out = join(t.dir, 'b.png');
  const bad = await ragdiff(['generate', 'red', '-o', out, '--store', storeDir, '--ref-url', 'file:///etc/passwd', '--steps', '2']);
  assert.is.not(bad.code, 0);
  assert.match(bad.stderr, /URL_SCHEME/);
  const refused = await ragdiff(['generate', 'red', '-o', out, '--store', storeDir, '--ref-url', `${fake.base}/img/blue.png`, '--steps', '2']);
  assert.match(refused.stderr, /URL_ADDRESS_REFUSED/, 'loopback only with --allow-host');
});

test('generate --cache-into DIR: the live references used are written there with their origin; nothing is cached without it', async () => {
  const cache = join(t.dir, 'cache');
  const r = await ragdiff(['generate', 'red blue', '-o', join(t.dir, 'c.png'), '--store', storeDir, '--source', 'openverse', '--allow-host', fake.host, '--cache-into', cache, '-k', '2', '--steps', '2', '--json']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.json.stats.retrieval.cached.added, 2);
  const enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  const s = await ImageStore.open(cache, { encoder: enc });
  try {
    const rows = s.list({ limit: 10 });
    assert.is(rows.length, 2);
    for (const x of rows) {
      assert.is(x.source, 'openverse');
      assert.match(x.origin, /^http:\/\/127\.0\.0\.1:\d+\/img\/(red|blue)\.png$/);
    }
  } finally {
    await s.close();
    await enc.close();
  }
  const plain = await ragdiff(['generate', 'red blue', '-o', join(t.dir, 'd.png'), '--store', storeDir, '--source', 'openverse', '--allow-host', fake.host, '-k', '2', '--steps', '2', '--json']);
  assert.is(plain.json.stats.retrieval.cached, undefined);
});

test('sources search --source commons --json: what a source would give; unknown sources fail', async () => {
  const r = await ragdiff(['sources', 'search', 'red blue', '--source', 'commons', '--allow-host', fake.host, '--json']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.json.sources[0].source, 'commons');
  assert.equal(r.json.sources[0].candidates.map((c: any) => c.title).sort(), ['blue square', 'red square']);
  assert.is(r.json.sources[0].candidates[0].licence, 'CC-BY-SA-4.0');
  const text = await ragdiff(['sources', 'search', 'red', '--source', 'openverse', '--allow-host', fake.host]);
  assert.match(text.stdout, /openverse: 1 candidate/);
  const unknown = await ragdiff(['sources', 'search', 'red', '--source', 'flickr']);
  assert.is.not(unknown.code, 0);
  assert.match(unknown.stderr, /SOURCE_UNKNOWN/);
});

test.run();
