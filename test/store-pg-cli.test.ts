/**
 * `ragdiff index … --store postgres://…` end to end: the CLI in child
 * processes against PGlite + pgvector served on 127.0.0.1 by this process.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeMany } from './fixtures/store/images.js';
import { startTestPg, type TestPg } from './fixtures/pg/server.js';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const ENCODER = repoPath('dist/test/fixtures/store/fake-encoder.js');
const t = tempDir('ragdiff-pgcli-');
const images = join(t.dir, 'images');
let srv: TestPg;

function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; json: any }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, 'index', ...args, '--encoder', ENCODER, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => {
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolve({ code, stdout, stderr, json });
    });
  });
}

test.before(async () => {
  mkdirSync(images);
  (await makeMany(4)).forEach((b, i) => writeFileSync(join(images, `img${i}.png`), b));
  srv = await startTestPg();
});

test.after(async () => {
  await srv?.stop();
  t.cleanup();
});

test('migrate-schema creates the schema once; then add, query, info and remove work on the URL', async () => {
  const m = await cli('migrate-schema', '--store', srv.url);
  assert.is(m.code, 0, m.stderr + m.stdout);
  assert.equal(m.json.applied, [1]);
  const again = await cli('migrate-schema', '--store', srv.url);
  assert.equal(again.json.applied, []);
  const add = await cli('add', images, '--store', srv.url, '--source', 'test');
  assert.is(add.code, 0, add.stderr + add.stdout);
  assert.is(add.json.added, 4);
  const q = await cli('query', 'red', '--store', srv.url, '-k', '2');
  assert.is(q.code, 0, q.stderr + q.stdout);
  assert.is(q.json.length, 2);
  const rm = await cli('remove', q.json[0].id, '--store', srv.url);
  assert.is(rm.json[0].status, 'removed');
  const info = await cli('info', '--store', srv.url);
  assert.is(info.json.active, 3);
  assert.is(info.json.removed, 1);
});

test('two processes adding the same images at once → one row each, every item added in exactly one of them', async () => {
  const dir = join(t.dir, 'same');
  mkdirSync(dir);
  (await makeMany(3, 30)).forEach((b, i) => writeFileSync(join(dir, `s${i}.png`), b));
  const [a, b] = await Promise.all([cli('add', dir, '--store', srv.url), cli('add', dir, '--store', srv.url)]);
  assert.is(a.code, 0, a.stderr + a.stdout);
  assert.is(b.code, 0, b.stderr + b.stdout);
  assert.is(a.json.added + b.json.added, 3);
  for (const it of [...a.json.items, ...b.json.items]) assert.ok(['added', 'duplicate'].includes(it.status), JSON.stringify(it));
  const info = await cli('info', '--store', srv.url);
  assert.is(info.json.active, 6); // 3 from the first test + these 3, once
});

test('local-only commands and migrate-schema on a directory say so (INVALID_ARGUMENT)', async () => {
  const r = await cli('rebuild', '--store', srv.url);
  assert.is(r.code, 1);
  assert.is(r.json.error.code, 'INVALID_ARGUMENT');
  const m = await cli('migrate-schema', '--store', join(t.dir, 'local'));
  assert.is(m.json.error.code, 'INVALID_ARGUMENT');
});

test.run();
