// readUserFile / readUserFileSync: the one gate for files a user names. Only a
// regular file, only up to maxBytes, never a read that blocks or runs without end.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readUserFile, readUserFileSync } from '../src/io/user-file.js';
import { readBundle } from '../src/pipeline/bundle.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { tempDir } from './helpers.js';

const t = tempDir('ragdiff-userfile-');
test.after(t.cleanup);

const file = join(t.dir, 'ok.bin');
writeFileSync(file, Buffer.from([1, 2, 3, 4, 5]));
mkdirSync(join(t.dir, 'dir'));
symlinkSync(join(t.dir, 'nowhere'), join(t.dir, 'dangling'));
symlinkSync(file, join(t.dir, 'link-to-file'));
const hasDevices = existsSync('/dev/urandom') && existsSync('/dev/zero');
if (hasDevices) {
  symlinkSync('/dev/urandom', join(t.dir, 'urandom'));
  symlinkSync('/dev/zero', join(t.dir, 'zero'));
}
let fifo: string | null = join(t.dir, 'fifo');
try {
  execFileSync('mkfifo', [fifo]);
} catch {
  fifo = null; // no FIFOs on this platform
}

type Reader = (path: string, o: { maxBytes: number; what?: string }) => Promise<Buffer>;
const readers: [string, Reader][] = [
  ['sync', async (p, o) => readUserFileSync(p, o)],
  ['async', readUserFile],
];

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return 'NO_ERROR';
}

for (const [kind, read] of readers) {
  test(`${kind}: a regular file (directly or through a symlink) is read whole`, async () => {
    assert.equal([...(await read(file, { maxBytes: 5 }))], [1, 2, 3, 4, 5]);
    assert.equal([...(await read(join(t.dir, 'link-to-file'), { maxBytes: 100 }))], [1, 2, 3, 4, 5]);
  });

  test(`${kind}: over maxBytes is FILE_TOO_LARGE, checked before reading`, async () => {
    assert.is(await codeOf(read(file, { maxBytes: 4 })), 'FILE_TOO_LARGE');
  });

  test(`${kind}: missing, dangling, directory: typed errors naming the path`, async () => {
    assert.is(await codeOf(read(join(t.dir, 'missing.png'), { maxBytes: 10 })), 'FILE_NOT_FOUND');
    assert.is(await codeOf(read(join(t.dir, 'dangling'), { maxBytes: 10 })), 'FILE_NOT_FOUND');
    assert.is(await codeOf(read(join(t.dir, 'ok.bin', 'below'), { maxBytes: 10 })), 'FILE_NOT_FOUND');
    try {
      await read(join(t.dir, 'dir'), { maxBytes: 10, what: 'init image' });
      assert.unreachable();
    } catch (e) {
      assert.is((e as { code?: string }).code, 'IS_DIRECTORY');
      assert.match((e as Error).message, /^init image .*dir is a directory/);
    }
  });

  test(`${kind}: a FIFO is refused at once (it used to block the read forever)`, async () => {
    if (!fifo) return;
    try {
      await read(fifo, { maxBytes: 10, what: 'query image' });
      assert.unreachable();
    } catch (e) {
      assert.is((e as { code?: string }).code, 'FILE_NOT_REGULAR');
      assert.match((e as Error).message, /FIFO/);
    }
  });

  test(`${kind}: a symlink to /dev/urandom or /dev/zero is refused, never read without end`, async () => {
    if (!hasDevices) return;
    assert.is(await codeOf(read(join(t.dir, 'urandom'), { maxBytes: 1 << 20 })), 'FILE_NOT_REGULAR');
    assert.is(await codeOf(read(join(t.dir, 'zero'), { maxBytes: 1 << 20 })), 'FILE_NOT_REGULAR');
    assert.is(await codeOf(read('/dev/null', { maxBytes: 10 })), 'FILE_NOT_REGULAR');
  });

  test(`${kind}: a file whose size lies (procfs reports 0) is read only up to maxBytes + 1`, async () => {
    if (!existsSync('/proc/self/maps')) return;
    // /proc/self/maps is a "regular file" of size 0 with kilobytes of content.
    const whole = await read('/proc/self/maps', { maxBytes: 1 << 20 });
    assert.ok(whole.length > 200, `read ${whole.length} bytes`);
    assert.is(await codeOf(read('/proc/self/maps', { maxBytes: 100 })), 'FILE_TOO_LARGE');
  });

  test(`${kind}: bad arguments are typed errors`, async () => {
    assert.is(await codeOf(read('', { maxBytes: 10 })), 'INVALID_VALUE');
    assert.is(await codeOf(read('a\0b', { maxBytes: 10 })), 'INVALID_VALUE');
    assert.is(await codeOf(read(42 as unknown as string, { maxBytes: 10 })), 'INVALID_TYPE');
    assert.is(await codeOf(read(file, { maxBytes: 0 })), 'OUT_OF_RANGE');
    assert.is(await codeOf(read(file, { maxBytes: 1.5 })), 'OUT_OF_RANGE');
  });
}

test('bundle JSON files go through the gate: a FIFO model_index.json or tokenizer.json is MODEL_FILE_INVALID, not a hang', () => {
  if (!fifo) return;
  const bundle = join(t.dir, 'bundle');
  mkdirSync(join(bundle, 'tokenizer'), { recursive: true });
  execFileSync('mkfifo', [join(bundle, 'model_index.json'), join(bundle, 'tokenizer', 'tokenizer.json')]);
  assert.throws(() => readBundle(bundle), (e: { code?: string; message?: string }) => e.code === 'MODEL_FILE_INVALID' && /FIFO/.test(e.message ?? ''));
  assert.throws(() => loadTokenizer(join(bundle, 'tokenizer')), (e: { code?: string }) => e.code === 'MODEL_FILE_INVALID');
  assert.throws(() => readBundle(join(t.dir, 'no-bundle-here')), (e: { code?: string }) => e.code !== undefined);
});

test.run();
