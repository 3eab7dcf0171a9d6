/**
 * `ragdiff serve` as a user runs it: --help says how to reach the page; the
 * server starts on loopback with a store, answers, and exits cleanly on
 * SIGTERM; a policy without the safety module is a clear error.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn } from 'node:child_process';
import { loadClipEncoders } from '../src/store/index.js';
import { buildSmallStore } from './fixtures/server/small-store.js';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const t = tempDir('ragdiff-cli-serve-');

function ragdiff(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: repoPath('.'), timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

test.after(() => t.cleanup());

test('serve --help says how to reach the page and lists the options', async () => {
  const r = await ragdiff(['serve', '--help']);
  assert.is(r.code, 0);
  assert.match(r.stdout, /open http:\/\/127\.0\.0\.1:8787\/ in a browser/);
  for (const flag of ['--host', '--port', '--model', '--store', '--demo-store', '--policy', '--concurrency', '--queue', '--api-key', '--write-key', '--request-timeout', '--headers-timeout', '--keep-alive-timeout', '--max-connections', '--max-connections-per-address']) assert.ok(r.stdout.includes(flag), flag);
});

test('serve --store: listens on loopback, generates, and exits 0 on SIGTERM', async () => {
  const enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  const store = await buildSmallStore(`${t.dir}/store`, enc);
  await store.close();
  await enc.close();
  const child = spawn(process.execPath, [MAIN, 'serve', '--store', `${t.dir}/store`, '--port', '0', '--queue', '2'], { cwd: repoPath('.') });
  let out = '';
  child.stderr.on('data', (d: Buffer) => (out += d));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no page URL printed: ${out}`)), 60_000);
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      const m = /page: (http:\/\/127\.0\.0\.1:\d+)\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
  try {
    const h = (await (await fetch(`${url}/healthz`)).json()) as { status: string; store: { size: number }; queue: { capacity: number } };
    assert.is(h.status, 'ok');
    assert.is(h.store.size, 30);
    assert.is(h.queue.capacity, 3);
    const res = await fetch(`${url}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'rocket', steps: 1 }) });
    assert.is(res.status, 200);
    assert.is(((await res.json()) as { references: unknown[] }).references.length, 4);
  } finally {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    assert.is(await exited, 0, out);
  }
});

test('serve --policy: a policy the server cannot load stops it before it listens, with a clear message', async () => {
  const r = await ragdiff(['serve', '--without-store', '--policy', `${t.dir}/missing-policy.json`, '--port', '0']);
  assert.is(r.code, 1);
  assert.not.match(r.stdout, /page: http/);
  assert.match(r.stderr, /missing-policy\.json/);
});

test.run();
