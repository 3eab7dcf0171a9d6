/**
 * Readers read: `generate --store/--demo-store` opens the store read-only, so
 * two generations on one store run at once, beside a writer, and beside
 * `serve --read-only`, which holds no writer lock and says so in /healthz.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn } from 'node:child_process';
import { ImageStore, loadClipEncoders, openDemoStore } from '../src/store/index.js';
import { acceptsNoUploads } from '../src/cli/serve.js';
import { buildSmallStore } from './fixtures/server/small-store.js';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
// Shared with cli-rag.test.ts: the demo store is built once per checkout.
const CACHE = repoPath('.cache/cli-test');
const t = tempDir('ragdiff-cli-readers-');
const STORE = `${t.dir}/store`;
test.after(() => t.cleanup());

function ragdiff(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: t.dir, timeout: 180_000, env: { ...process.env, RAGDIFF_CACHE_DIR: CACHE } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const gen = (name: string, ...more: string[]) => ragdiff(['generate', 'red apple', '-o', `${t.dir}/${name}.png`, '--steps', '1', '--seed', '3', '-k', '2', '--json', ...more]);

function assertGenerated(r: { code: number; stdout: string; stderr: string }, what: string): void {
  assert.is(r.code, 0, `${what}: ${r.stderr}${r.stdout}`);
  const doc = JSON.parse(r.stdout) as { files: string[]; references: unknown[] };
  assert.is(doc.files.length, 1, what);
  assert.is(doc.references.length, 2, what);
}

test.before(async () => {
  const enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  try {
    await (await buildSmallStore(STORE, enc)).close();
    // The demo store is built on first use (the build alone takes a lock), here once for the test below.
    await (await openDemoStore({ dataset: 'twemoji', encoder: enc, cacheDir: CACHE, store: { readOnly: true } })).close();
  } finally {
    await enc.close();
  }
});

test('two generations on one --store at once both succeed (neither takes the writer lock)', async () => {
  const [a, b] = await Promise.all([gen('a', '--store', STORE), gen('b', '--store', STORE)]);
  assertGenerated(a, 'first');
  assertGenerated(b, 'second');
});

test('two generations on the demo store at once both succeed', async () => {
  const [a, b] = await Promise.all([gen('da', '--demo-store', 'twemoji'), gen('db', '--demo-store', 'twemoji')]);
  assertGenerated(a, 'first');
  assertGenerated(b, 'second');
});

test('a generation runs while another process holds the writer lock (ragdiff index add beside it)', async () => {
  const enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  const writer = await ImageStore.open(STORE, { encoder: enc });
  try {
    assert.is(writer.readOnly, false);
    assertGenerated(await gen('w', '--store', STORE), 'beside a writer');
  } finally {
    await writer.close();
    await enc.close();
  }
});

test('serve --read-only: no writer lock (a writer and two generations run beside it), /healthz says writable: false, removals are 409', async () => {
  const child = spawn(process.execPath, [MAIN, 'serve', '--store', STORE, '--read-only', '--port', '0', '--json'], { cwd: t.dir });
  let out = '';
  child.stderr.on('data', (d: Buffer) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve printed no address: ${out}`)), 120_000);
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
    let line = '';
    child.stdout.on('data', (d: Buffer) => {
      line += d;
      const nl = line.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      const doc = JSON.parse(line.slice(0, nl)) as { url: string; store: { writable: boolean } };
      assert.is(doc.store.writable, false);
      resolve(doc.url);
    });
  });
  try {
    const h = (await (await fetch(`${url}/healthz`)).json()) as { store: { size: number; writable: boolean } };
    assert.is(h.store.writable, false);
    assert.is(h.store.size, 30);
    const del = await fetch(`${url}/v1/references/0123456789abcdef`, { method: 'DELETE' });
    assert.is(del.status, 409);
    assert.is(((await del.json()) as { error: { code: string } }).error.code, 'STORE_READ_ONLY');
    // The lock is free: a writer opens beside the server, and generations run beside both.
    const enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
    const writer = await ImageStore.open(STORE, { encoder: enc });
    await writer.close();
    await enc.close();
    const [a, b] = await Promise.all([gen('s1', '--store', STORE), gen('s2', '--store', STORE)]);
    assertGenerated(a, 'first beside serve');
    assertGenerated(b, 'second beside serve');
    const res = await fetch(`${url}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'rocket', steps: 1 }) });
    assert.is(res.status, 200);
  } finally {
    child.removeAllListeners('exit');
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.is(await exited, 0, out);
  }
});

test('serve takes the writer lock only when it accepts uploads', () => {
  const env = {};
  assert.is(acceptsNoUploads({}, env), false, 'no keys: anyone may upload');
  assert.is(acceptsNoUploads({ readOnly: true }, env), true);
  assert.is(acceptsNoUploads({ apiKey: ['k1-xxxxxxxx'] }, env), true, 'keys but no write key: nobody may upload');
  assert.is(acceptsNoUploads({ apiKey: ['k1-xxxxxxxx'], writeKey: ['w1-xxxxxxxx'] }, env), false);
  assert.is(acceptsNoUploads({}, { RAGDIFF_API_KEYS: 'k1-xxxxxxxx' }), true);
  assert.is(acceptsNoUploads({}, { RAGDIFF_API_KEYS: 'k1-xxxxxxxx', RAGDIFF_WRITE_KEYS: 'w1-xxxxxxxx' }), false);
  assert.is(acceptsNoUploads({ writeKey: ['w1-xxxxxxxx'] }, env), false);
});

test.run();
