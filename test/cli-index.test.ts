/**
 * `ragdiff index …` end to end, in child processes, with a small encoder
 * module (--encoder) so the commands test the CLI and the store, not a model.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { ImageStore } from '../src/store/index.js';
import { fakeEncoder } from './fixtures/store/fake-encoder.js';
import { makeMany, makePng } from './fixtures/store/images.js';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const ENCODER = repoPath('dist/test/fixtures/store/fake-encoder.js');
const t = tempDir('ragdiff-cli-');
const store = join(t.dir, 'store');
const images = join(t.dir, 'images');

function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; json: any }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, 'index', ...args, '--encoder', ENCODER], { stdio: ['ignore', 'pipe', 'pipe'] });
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
  const imgs = await makeMany(6);
  imgs.forEach((b, i) => writeFileSync(join(images, `img${i}.png`), b));
  writeFileSync(join(images, 'red.png'), await makePng([220, 30, 30], 1));
});

test.after(() => t.cleanup());

test('add: a directory plus a broken file → per-item report, the rest ingested, exit code 1', async () => {
  writeFileSync(join(t.dir, 'broken.png'), 'not a png');
  const r = await cli('add', images, join(t.dir, 'broken.png'), '--store', store, '--source', 'cli', '--licence', 'CC0-1.0', '--tags', 'a,b', '--json');
  assert.is(r.code, 1, r.stderr);
  assert.is(r.json.added, 7);
  assert.is(r.json.failed, 1);
  const failed = r.json.items.find((i: { status: string }) => i.status === 'failed');
  assert.is(failed.error.code, 'IMAGE_UNSUPPORTED');
  assert.match(failed.input, /broken\.png$/);
});

test('add again: duplicates are skipped, nothing failed → exit code 0; text output has a summary', async () => {
  const r = await cli('add', images, '--store', store);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /0 added, 7 skipped, 0 failed/);
  assert.match(r.stdout, /duplicate/);
});

test('query: JSON hits with provenance, filters, and typed errors with exit code 1', async () => {
  const r = await cli('query', 'red', '--store', store, '-k', '3', '--json');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.json.length, 3);
  assert.match(r.json[0].origin, /red\.png$/);
  assert.is(r.json[0].source, 'cli');
  assert.is(r.json[0].licence, 'CC0-1.0');
  assert.equal(r.json[0].tags, ['a', 'b']);
  assert.ok(r.json[0].score >= r.json[1].score);

  const none = await cli('query', 'red', '--store', store, '--source', 'elsewhere', '--json');
  assert.is(none.code, 0);
  assert.equal(none.json, []);

  const tooMany = await cli('query', 'red', '--store', store, '-k', '99', '--json');
  assert.is(tooMany.code, 1);
  assert.is(tooMany.json.error.code, 'OUT_OF_RANGE');

  const zero = await cli('query', 'red', '--store', store, '-k', '0');
  assert.is(zero.code, 1);
  assert.match(zero.stderr, /k must be an integer/);

  const byImage = await cli('query', '--image', join(images, 'img3.png'), '--store', store, '-k', '1', '--json');
  assert.is(byImage.code, 0, byImage.stderr);
  assert.match(byImage.json[0].origin, /img3\.png$/);

  // query opens read-only: a missing store is not created as a side effect.
  const missing = await cli('query', 'red', '--store', join(t.dir, 'missing'), '--json');
  assert.is(missing.code, 1);
  assert.is(missing.json.error.code, 'STORE_NOT_FOUND');
  await (await ImageStore.open(join(t.dir, 'empty'), { encoder: fakeEncoder() })).close();
  const empty = await cli('query', 'red', '--store', join(t.dir, 'empty'), '--json');
  assert.is(empty.code, 1);
  assert.is(empty.json.error.code, 'STORE_EMPTY');
});

test('remove: the image is gone from queries; an unknown id fails with exit code 1', async () => {
  const top = (await cli('query', 'red', '--store', store, '-k', '1', '--json')).json[0];
  const r = await cli('remove', top.id, '--store', store, '--json');
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.json, [{ id: top.id, status: 'removed' }]);
  const after = await cli('query', 'red', '--store', store, '-k', '6', '--json');
  assert.ok(after.json.every((h: { id: string }) => h.id !== top.id));
  const unknown = await cli('remove', 'nope', '--store', store, '--json');
  assert.is(unknown.code, 1);
  assert.is(unknown.json[0].error.code, 'IMAGE_NOT_FOUND');
});

test('rebuild and info', async () => {
  const r = await cli('rebuild', '--store', store, '--json');
  assert.is(r.code, 0, r.stderr);
  assert.is(r.json.indexed, 6);
  const re = await cli('rebuild', '--store', store, '--reembed', '--json');
  assert.is(re.code, 0, re.stderr);
  assert.is(re.json.reembedded, 6);
  const info = await cli('info', '--store', store, '--json');
  assert.is(info.json.active, 6);
  assert.is(info.json.removed, 1);
  assert.is(info.json.encoderId, 'fake-grid-48');
});

test('add-url: an allowlisted loopback server works; without --allow-host it is refused (exit code 1)', async () => {
  const png = await makePng([30, 200, 40], 4);
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'image/png' });
    res.end(png);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const ok = await cli('add-url', `http://127.0.0.1:${port}/green.png`, '--store', store, '--allow-host', `127.0.0.1:${port}`, '--source', 'web', '--json');
    assert.is(ok.code, 0, ok.stdout + ok.stderr);
    assert.is(ok.json.added, 1);
    const refused = await cli('add-url', `http://127.0.0.1:${port}/other.png`, 'file:///etc/passwd', '--store', store, '--json');
    assert.is(refused.code, 1);
    assert.equal(refused.json.items.map((i: { error: { code: string } }) => i.error.code), ['URL_ADDRESS_REFUSED', 'URL_SCHEME']);
  } finally {
    server.close();
  }
});

test('a missing --store is an error naming the option', async () => {
  const r = await cli('query', 'red');
  assert.is(r.code, 1);
  assert.match(r.stderr, /--store/);
});

test.run();
