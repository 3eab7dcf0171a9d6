/**
 * Durability: a child process is killed (SIGKILL) at each checkpoint of the
 * write path — after writing bytes, after committing rows, after updating the
 * index, halfway through saving the index, after committing a removal — and
 * at random moments. Reopening must give a consistent store: every active row
 * has its bytes and is found by its own embedding, nothing else is on disk,
 * removed images stay removed, and ingest continues.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageStore } from '../src/store/index.js';
import { fakeEncoder } from './fixtures/store/fake-encoder.js';
import { makeMany } from './fixtures/store/images.js';
import { repoPath, tempDir } from './helpers.js';

const CHILD = repoPath('dist/test/fixtures/store/ingest-child.js');
const COUNT = 20;
let images: Buffer[];

function runChild(args: string[], killAfterLines?: number): Promise<{ code: number | null; signal: string | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      if (killAfterLines !== undefined && out.split('\n').length > killAfterLines) child.kill('SIGKILL');
    });
    child.stderr.on('data', (d) => (out += d));
    child.on('close', (code, signal) => resolve({ code, signal, out }));
  });
}

async function verify(dir: string, expectRemoved: string[] = []): Promise<ImageStore> {
  const store = await ImageStore.open(dir, { encoder: fakeEncoder(), exactSearchBelow: 0 });
  const active = store.list({ status: 'active', limit: 10_000 });
  assert.is(store.size, active.length, 'index size = active rows');
  const blobs: string[] = [];
  for (const d of readdirSync(join(dir, 'blobs'))) if (/^[0-9a-f]{2}$/.test(d)) blobs.push(...readdirSync(join(dir, 'blobs', d)));
  assert.equal(blobs.sort(), active.map((r) => r.sha256).sort(), 'bytes on disk = bytes of active rows');
  assert.equal(readdirSync(join(dir, 'blobs', 'tmp')), [], 'no temporary files left');
  if (existsSync(join(dir, 'index'))) assert.ok(readdirSync(join(dir, 'index')).every((f) => !f.endsWith('.tmp')));
  for (const r of active) {
    const bytes = readFileSync(join(dir, 'blobs', r.sha256.slice(0, 2), r.sha256));
    assert.is(createHash('sha256').update(bytes).digest('hex'), r.sha256);
    const top = (await store.query({ image: bytes, k: 1 }))[0]!;
    assert.is(top.id, r.id, 'each active image is found by its own embedding');
  }
  for (const id of expectRemoved) {
    assert.is(store.get(id)?.status, 'removed');
    assert.not.ok(existsSync(join(dir, 'blobs', store.get(id)!.sha256.slice(0, 2), store.get(id)!.sha256)));
  }
  return store;
}

async function finishIngest(store: ImageStore): Promise<void> {
  const r = await store.add(images, { source: 'crash' });
  assert.is(r.failed, 0);
  assert.is(store.size, COUNT - store.list({ status: 'removed' }).length);
}

test.before(async () => {
  images = await makeMany(COUNT);
});

for (const [point, nth] of [
  ['after-blobs', 1],
  ['after-blobs', 3],
  ['after-commit', 2],
  ['after-index-add', 2],
  ['index-index-written', 1],
  ['index-index-renamed', 2],
  ['index-index-written', 3],
] as const) {
  test(`killed at ${point} #${nth}: reopens consistent and ingest continues`, async () => {
    const t = tempDir('ragdiff-crash-');
    try {
      const r = await runChild([t.dir, 'add', point, String(nth), String(COUNT)]);
      assert.is(r.signal, 'SIGKILL', r.out);
      const store = await verify(t.dir);
      await finishIngest(store);
      await store.close();
      await (await verify(t.dir)).close();
    } finally {
      t.cleanup();
    }
  });
}

test('killed after committing a removal: the image stays removed and its bytes go', async () => {
  const t = tempDir('ragdiff-crash-');
  try {
    const full = await runChild([t.dir, 'add', 'none', '0', String(COUNT)]);
    assert.match(full.out, /done/);
    const r = await runChild([t.dir, 'remove', 'remove-committed', '2', '5']);
    assert.is(r.signal, 'SIGKILL');
    const removed = [...r.out.matchAll(/removed (\w+)/g)].map((m) => m[1]!);
    assert.is(removed.length, 1, 'one removal finished before the kill');
    const store = await verify(t.dir);
    const rows = store.list({ status: 'removed' });
    assert.is(rows.length, 2, 'the removal committed at the kill counts too');
    for (const row of rows) assert.ok((await store.query({ image: images[0]!, k: store.size })).every((h) => h.id !== row.id));
    await store.close();
    await (await verify(t.dir, rows.map((x) => x.id))).close();
  } finally {
    t.cleanup();
  }
});

test('killed at random moments during ingest: always consistent', async () => {
  const t = tempDir('ragdiff-crash-');
  try {
    for (const lines of [1, 4, 9]) {
      await runChild([t.dir, 'add', 'none', '0', String(COUNT)], lines);
      const store = await verify(t.dir);
      await store.close();
    }
    const store = await verify(t.dir);
    await finishIngest(store);
    await store.close();
  } finally {
    t.cleanup();
  }
});

test.run();
