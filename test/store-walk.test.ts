/**
 * Adding directories: symlink loops end at once without duplicates, and
 * every entry that is not read — dangling symlinks, FIFOs, loops — is
 * reported; a FIFO is never opened for reading (the test would hang).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageStore, type AddReport } from '../src/store/index.js';
import { fakeEncoder } from './fixtures/store/fake-encoder.js';
import { makeMany } from './fixtures/store/images.js';
import { tempDir } from './helpers.js';

async function addTo(dir: string, inputs: string[]): Promise<AddReport> {
  const t = tempDir('ragdiff-walk-store-');
  const store = await ImageStore.open(t.dir, { encoder: fakeEncoder() });
  try {
    return await store.add(inputs);
  } finally {
    await store.close();
    t.cleanup();
  }
}

function mkfifo(path: string): boolean {
  try {
    execFileSync('mkfifo', [path]);
    return true;
  } catch {
    return false;
  }
}

test('symlink loops (sub/up -> .., self -> DIR) end at once, each image added once, each loop reported', async () => {
  const t = tempDir('ragdiff-walk-');
  try {
    const [a, b] = await makeMany(2);
    mkdirSync(join(t.dir, 'sub'));
    writeFileSync(join(t.dir, 'a.png'), a!);
    writeFileSync(join(t.dir, 'sub', 'b.png'), b!);
    symlinkSync('..', join(t.dir, 'sub', 'up'));
    symlinkSync(t.dir, join(t.dir, 'self'));
    const r = await addTo(t.dir, [t.dir]);
    assert.is(r.added, 2);
    assert.is(r.items.filter((i) => i.status === 'duplicate').length, 0, 'nothing listed twice');
    const loops = r.items.filter((i) => i.status === 'skipped').map((i) => [i.input.slice(t.dir.length + 1), i.error?.code]);
    assert.equal(loops.sort(), [['self', 'SYMLINK_LOOP'], [join('sub', 'up'), 'SYMLINK_LOOP']]);
    assert.is(r.failed, 0);
  } finally {
    t.cleanup();
  }
});

test('a second link to a directory is listed once; a directory given twice is listed once', async () => {
  const t = tempDir('ragdiff-walk-');
  try {
    const [a] = await makeMany(1);
    mkdirSync(join(t.dir, 'real'));
    writeFileSync(join(t.dir, 'real', 'a.png'), a!);
    symlinkSync(join(t.dir, 'real'), join(t.dir, 'alias'));
    const r = await addTo(t.dir, [t.dir, join(t.dir, 'real')]);
    assert.is(r.added, 1);
    assert.is(r.items.filter((i) => i.status === 'duplicate').length, 0);
    assert.equal(r.items.filter((i) => i.status === 'skipped').map((i) => i.error?.code), ['PATH_REPEATED', 'PATH_REPEATED']);
  } finally {
    t.cleanup();
  }
});

test('dangling symlinks and self-referencing links in a directory are reported as skipped', async () => {
  const t = tempDir('ragdiff-walk-');
  try {
    const [a] = await makeMany(1);
    writeFileSync(join(t.dir, 'a.png'), a!);
    symlinkSync(join(t.dir, 'gone.png'), join(t.dir, 'dangling.png'));
    symlinkSync(join(t.dir, 'me'), join(t.dir, 'me'));
    const r = await addTo(t.dir, [t.dir]);
    assert.is(r.added, 1);
    const skipped = Object.fromEntries(r.items.filter((i) => i.status === 'skipped').map((i) => [i.input.slice(t.dir.length + 1), i.error?.code]));
    assert.equal(skipped, { 'dangling.png': 'FILE_NOT_FOUND', me: 'SYMLINK_LOOP' });
    assert.is(r.skipped, 2);
    assert.is(r.failed, 0);
  } finally {
    t.cleanup();
  }
});

test('a FIFO in an added directory is reported, not read; a FIFO given by path fails without hanging', async () => {
  const t = tempDir('ragdiff-walk-');
  try {
    if (!mkfifo(join(t.dir, 'pipe.png'))) {
      console.log('  (mkfifo unavailable: skipped)');
      return;
    }
    mkfifo(join(t.dir, 'pipe-no-ext'));
    const [a] = await makeMany(1);
    writeFileSync(join(t.dir, 'a.png'), a!);
    const r = await addTo(t.dir, [t.dir]);
    assert.is(r.added, 1);
    const skipped = r.items.filter((i) => i.status === 'skipped');
    assert.equal(skipped.map((i) => [i.input.slice(t.dir.length + 1), i.error?.code]), [['pipe-no-ext', 'FILE_NOT_REGULAR'], ['pipe.png', 'FILE_NOT_REGULAR']]);
    const direct = await addTo(t.dir, [join(t.dir, 'pipe.png')]);
    assert.is(direct.failed, 1);
    assert.is(direct.items[0]!.error?.code, 'FILE_NOT_REGULAR');
  } finally {
    t.cleanup();
  }
});

test('a device given by path or linked from a directory is refused without reading it', async () => {
  const t = tempDir('ragdiff-walk-');
  try {
    symlinkSync('/dev/zero', join(t.dir, 'zero.png'));
    const r = await addTo(t.dir, [t.dir, '/dev/urandom']);
    assert.equal(r.items.map((i) => [i.status, i.error?.code]), [['skipped', 'FILE_NOT_REGULAR'], ['failed', 'FILE_NOT_REGULAR']]);
  } finally {
    t.cleanup();
  }
});

test.run();
