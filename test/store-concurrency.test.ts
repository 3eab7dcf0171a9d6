/**
 * Many readers and one writer, across processes: exactly one writer wins any
 * race, a killed writer's lock frees itself, a stale pid file means nothing,
 * readers see only committed rows (each with its bytes) while a writer
 * ingests, and concurrent first use of the demo store works.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageStore } from '../src/store/index.js';
import { fakeEncoder } from './fixtures/store/fake-encoder.js';
import { makeMany } from './fixtures/store/images.js';
import { repoPath, tempDir } from './helpers.js';

const CHILD = repoPath('dist/test/fixtures/store/concurrency-child.js');

/** A child with a line reader: `next(pred)` resolves with the first line (since the last call) matching. */
function child(args: string[]): { proc: ChildProcessWithoutNullStreams; next(pred: (l: string) => boolean): Promise<string>; exited: Promise<{ code: number | null; signal: string | null; out: string }> } {
  const proc = spawn(process.execPath, [CHILD, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const lines: string[] = [];
  let out = '';
  let waiters: { pred: (l: string) => boolean; resolve: (l: string) => void }[] = [];
  let buf = '';
  proc.stdout.on('data', (d) => {
    out += d;
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      const w = waiters.find((x) => x.pred(line));
      if (w) {
        waiters = waiters.filter((x) => x !== w);
        w.resolve(line);
      } else lines.push(line);
    }
  });
  proc.stderr.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: string | null; out: string }>((resolve) => proc.on('close', (code, signal) => resolve({ code, signal, out })));
  return {
    proc,
    exited,
    next(pred) {
      const j = lines.findIndex(pred);
      if (j >= 0) return Promise.resolve(lines.splice(j, 1)[0]!);
      return new Promise((resolve) => waiters.push({ pred, resolve }));
    },
  };
}

test('two processes racing to open the same store 50 times: exactly one writer each time', async () => {
  const t = tempDir('ragdiff-race-');
  const a = child(['race', t.dir]);
  const b = child(['race', t.dir]);
  try {
    for (let r = 0; r < 50; r++) {
      const at = Date.now() + 40;
      a.proc.stdin.write(`open ${r} ${at}\n`);
      b.proc.stdin.write(`open ${r} ${at}\n`);
      const starts = (l: string) => l.startsWith(`${r} `);
      const [ra, rb] = await Promise.all([a.next(starts), b.next(starts)]);
      const winners = [ra, rb].filter((l) => l.endsWith('won')).length;
      assert.is(winners, 1, `round ${r}: ${ra} / ${rb}`);
      for (const l of [ra, rb]) if (!l.endsWith('won')) assert.is(l, `${r} locked STORE_LOCKED`);
      a.proc.stdin.write(`close ${r}\n`);
      b.proc.stdin.write(`close ${r}\n`);
      await Promise.all([a.next((l) => l === `${r} closed`), b.next((l) => l === `${r} closed`)]);
    }
    // Every round's store was created once and is whole.
    const store = await ImageStore.open(join(t.dir, 's-49'), { encoder: fakeEncoder() });
    assert.is(store.size, 0);
    await store.close();
  } finally {
    a.proc.stdin.end('exit\n');
    b.proc.stdin.end('exit\n');
    await Promise.all([a.exited, b.exited]);
    t.cleanup();
  }
});

test('a writer killed with SIGKILL while holding the lock: the next writer proceeds, no cleanup by hand', async () => {
  const t = tempDir('ragdiff-kill-');
  try {
    const seed = await ImageStore.open(t.dir, { encoder: fakeEncoder() });
    await seed.add(await makeMany(3));
    await seed.close();
    const holder = child(['hold', t.dir]);
    await holder.next((l) => l === 'open');
    let code = '';
    await ImageStore.open(t.dir, { encoder: fakeEncoder() }).catch((e: { code: string }) => (code = e.code));
    assert.is(code, 'STORE_LOCKED', 'refused while the holder lives');
    const reader = await ImageStore.open(t.dir, { encoder: fakeEncoder(), readOnly: true });
    assert.is(reader.size, 3, 'a reader opens beside the writer');
    await reader.close();
    holder.proc.kill('SIGKILL');
    assert.is((await holder.exited).signal, 'SIGKILL');
    const store = await ImageStore.open(t.dir, { encoder: fakeEncoder() });
    assert.is(store.size, 3);
    assert.is((await store.add(await makeMany(2, 10))).added, 2);
    await store.close();
  } finally {
    t.cleanup();
  }
});

test('a leftover LOCK file naming a live unrelated process does not block (pids mean nothing now)', async () => {
  for (const pid of [process.ppid, 1, process.pid]) {
    const t = tempDir('ragdiff-stale-');
    try {
      await (await ImageStore.open(t.dir, { encoder: fakeEncoder() })).close();
      writeFileSync(join(t.dir, 'LOCK'), String(pid));
      const store = await ImageStore.open(t.dir, { encoder: fakeEncoder() });
      assert.not.ok(existsSync(join(t.dir, 'LOCK')), 'the meaningless pid file is removed');
      await store.close();
    } finally {
      t.cleanup();
    }
  }
});

test('close releases only what it holds: a reader closing never frees the writer, a second writer handle is refused', async () => {
  const t = tempDir('ragdiff-own-');
  try {
    const writer = await ImageStore.open(t.dir, { encoder: fakeEncoder() });
    await writer.add(await makeMany(2));
    const reader = await ImageStore.open(t.dir, { encoder: fakeEncoder(), readOnly: true });
    await reader.close();
    let code = '';
    await ImageStore.open(t.dir, { encoder: fakeEncoder() }).catch((e: { code: string }) => (code = e.code));
    assert.is(code, 'STORE_LOCKED');
    await writer.close();
    await writer.close(); // twice: harmless
    const next = await ImageStore.open(t.dir, { encoder: fakeEncoder() });
    await next.close();
  } finally {
    t.cleanup();
  }
});

test('a reader sees the writer\'s commits after refresh, writes nothing and refuses writes', async () => {
  const t = tempDir('ragdiff-reader-');
  try {
    let code = '';
    await ImageStore.open(join(t.dir, 'none'), { encoder: fakeEncoder(), readOnly: true }).catch((e: { code: string }) => (code = e.code));
    assert.is(code, 'STORE_NOT_FOUND');
    assert.not.ok(existsSync(join(t.dir, 'none')), 'a reader creates nothing');
    const writer = await ImageStore.open(t.dir, { encoder: fakeEncoder() });
    const first = await writer.add(await makeMany(5));
    const reader = await ImageStore.open(t.dir, { encoder: fakeEncoder(), readOnly: true });
    assert.ok(reader.readOnly);
    assert.is(reader.size, 5);
    const more = await writer.add(await makeMany(4, 5));
    assert.is(reader.size, 9, 'size catches up with the writer');
    const top = (await reader.query({ image: (await makeMany(1, 7))[0]!, k: 1 }))[0]!;
    assert.is(top.id, more.items[2]!.id, 'a row committed after the reader opened is found');
    await writer.remove(first.items[0]!.id!);
    const all = reader.search(reader.embeddingOf(first.items[1]!.id!)!, { k: reader.size });
    assert.is(all.length, 8);
    assert.ok(all.every((h) => h.id !== first.items[0]!.id), 'a removed row is never returned');
    for (const call of [() => reader.add([]), () => reader.remove(first.items[1]!.id!), () => reader.block(first.items[1]!.id!, 'x'), () => reader.rebuild()]) {
      code = '';
      await call().catch((e: { code: string }) => (code = e.code));
      assert.is(code, 'STORE_READ_ONLY');
    }
    await reader.close();
    await writer.close();
  } finally {
    t.cleanup();
  }
});

test('readers during another process\'s ingest see only committed rows, each with its bytes', async () => {
  const t = tempDir('ragdiff-ingest-');
  try {
    await (await ImageStore.open(t.dir, { encoder: fakeEncoder() })).close();
    const writer = child(['ingest', t.dir, '120', '0']);
    const reader = await ImageStore.open(t.dir, { encoder: fakeEncoder(), readOnly: true });
    const probe = (await makeMany(1, 500))[0]!;
    let checks = 0;
    let last = 0;
    let finished = false;
    void writer.exited.then(() => (finished = true));
    while (!finished || checks === 0) {
      const size = reader.size;
      assert.ok(size >= last, 'the reader never goes back in time');
      last = size;
      if (size > 0) {
        const hits = await reader.query({ image: probe, k: size });
        for (const h of hits) {
          assert.is(h.status, 'active');
          const bytes = reader.readImage(h.id);
          assert.is(createHash('sha256').update(bytes).digest('hex'), h.sha256, 'bytes of a returned row exist and match');
        }
        checks++;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    const r = await writer.exited;
    assert.match(r.out, /done/, r.out);
    assert.ok(checks > 1, `the reader queried during the ingest (${checks} times)`);
    assert.is(reader.size, 120, 'the reader ends with every committed row');
    assert.is(reader.stats().active, 120);
    await reader.close();
  } finally {
    t.cleanup();
  }
});

test('the saved index catches up with rows its graph lacks even when no row is newer than the file', async () => {
  const t = tempDir('ragdiff-reconcile-');
  try {
    let store = await ImageStore.open(t.dir, { encoder: fakeEncoder(), exactSearchBelow: 0 });
    await store.add(await makeMany(10));
    await store.close();
    const index = join(t.dir, 'index');
    const old = readdirSync(index).find((f) => f.endsWith('.hnsw'))!;
    copyFileSync(join(index, old), join(t.dir, 'old.hnsw'));
    store = await ImageStore.open(t.dir, { encoder: fakeEncoder(), exactSearchBelow: 0 });
    await store.add(await makeMany(5, 10));
    await store.close();
    // Put the 10-vector graph under the newest sequence number, as a second writer's save once did.
    const json = readdirSync(index).find((f) => f.endsWith('.json'))!;
    const side = JSON.parse(readFileSync(join(index, json), 'utf8')) as { size: number; sha256: string; count: number };
    const bytes = readFileSync(join(t.dir, 'old.hnsw'));
    writeFileSync(join(index, json.replace('.json', '.hnsw')), bytes);
    writeFileSync(join(index, json), JSON.stringify({ ...side, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex'), count: 10 }));
    store = await ImageStore.open(t.dir, { encoder: fakeEncoder(), exactSearchBelow: 0 });
    assert.is(store.size, 15);
    await store.close();
    const saved = JSON.parse(readFileSync(join(index, readdirSync(index).find((f) => f.endsWith('.json'))!), 'utf8')) as { count: number };
    assert.is(saved.count, 15, 'the graph was saved again with every row');
  } finally {
    t.cleanup();
  }
});

test('only the writer sweeps: a reader leaves bytes without a row alone (they may be a live writer\'s next commit)', async () => {
  const t = tempDir('ragdiff-sweep-');
  try {
    const writer = await ImageStore.open(t.dir, { encoder: fakeEncoder() });
    await writer.add(await makeMany(2));
    // Bytes written, row not yet committed: what a writer looks like between its two steps.
    const sha = 'ab'.padEnd(64, '0');
    mkdirSync(join(t.dir, 'blobs', 'ab'), { recursive: true });
    writeFileSync(join(t.dir, 'blobs', 'ab', sha), 'pending bytes');
    const reader = await ImageStore.open(t.dir, { encoder: fakeEncoder(), readOnly: true });
    await reader.close();
    assert.ok(existsSync(join(t.dir, 'blobs', 'ab', sha)), 'a reader never deletes bytes');
    await writer.close();
    const next = await ImageStore.open(t.dir, { encoder: fakeEncoder() });
    assert.not.ok(existsSync(join(t.dir, 'blobs', 'ab', sha)), 'the next writer, holding the lock, sweeps the orphan');
    assert.is(next.size, 2);
    await next.close();
  } finally {
    t.cleanup();
  }
});

test('bytes that vanish under a returned row give IMAGE_MISSING, not a raw ENOENT', async () => {
  const t = tempDir('ragdiff-missing-');
  try {
    const writer = await ImageStore.open(t.dir, { encoder: fakeEncoder() });
    const r = await writer.add(await makeMany(1));
    const row = writer.get(r.items[0]!.id!)!;
    rmSync(join(t.dir, 'blobs', row.sha256.slice(0, 2), row.sha256));
    let code = '';
    try {
      writer.readImage(row.id);
    } catch (e) {
      code = (e as { code: string }).code;
    }
    assert.is(code, 'IMAGE_MISSING');
    await writer.close();
  } finally {
    t.cleanup();
  }
});

test('two processes using the demo store for the first time at once: both succeed, a killed build\'s leftovers go', async () => {
  const t = tempDir('ragdiff-demo-race-');
  try {
    const leftover = join(t.dir, 'demo-twemoji-fake-grid-48.partial-999999-dead');
    mkdirSync(join(leftover, 'blobs'), { recursive: true });
    writeFileSync(join(leftover, 'store.sqlite'), 'half a build');
    const a = child(['demo', t.dir]);
    const b = child(['demo', t.dir]);
    const [ra, rb] = await Promise.all([a.exited, b.exited]);
    assert.is(ra.code, 0, ra.out);
    assert.is(rb.code, 0, rb.out);
    const sa = /size (\d+) readOnly true/.exec(ra.out)?.[1];
    assert.ok(sa && Number(sa) > 1000, ra.out);
    assert.is(/size (\d+)/.exec(rb.out)?.[1], sa, 'both see the same store');
    assert.equal(readdirSync(t.dir).filter((f) => f.includes('.partial-')), [], 'no partial build is left');
    const c = child(['demo', t.dir]);
    assert.match((await c.exited).out, new RegExp(`size ${sa}`), 'later use opens the cached store');
  } finally {
    t.cleanup();
  }
});

test.run();
