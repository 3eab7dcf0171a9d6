// Output paths: checked before any work, created one level at a time, typed errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureOutputDir, prepareOutputFile, writeOutputFile } from '../src/io/output-path.js';
import { tempDir } from './helpers.js';

const t = tempDir('ragdiff-out-');
test.after(t.cleanup);

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as { code?: string }).code;
  }
  return 'NO_ERROR';
}

test('missing levels are created and the file written', () => {
  const p = join(t.dir, 'a', 'b', 'c', 'x.png');
  assert.is(prepareOutputFile(p), p);
  assert.ok(statSync(join(t.dir, 'a', 'b', 'c')).isDirectory());
  writeOutputFile(p, Buffer.from('hi'));
  assert.is(readFileSync(p, 'utf8'), 'hi');
  assert.is(ensureOutputDir(join(t.dir, 'a', 'b')), join(t.dir, 'a', 'b'), 'an existing directory is fine');
});

test('a directory as the output file is IS_DIRECTORY', () => {
  mkdirSync(join(t.dir, 'isdir'));
  assert.is(codeOf(() => prepareOutputFile(join(t.dir, 'isdir'))), 'IS_DIRECTORY');
  assert.is(codeOf(() => writeOutputFile(join(t.dir, 'isdir'), 'x')), 'IS_DIRECTORY');
});

test('a regular file where a directory is needed is OUTPUT_NOT_WRITABLE', () => {
  writeFileSync(join(t.dir, 'plain'), 'x');
  assert.is(codeOf(() => prepareOutputFile(join(t.dir, 'plain', 'x.png'))), 'OUTPUT_NOT_WRITABLE');
  assert.is(codeOf(() => prepareOutputFile(join(t.dir, 'plain', 'deeper', 'x.png'))), 'OUTPUT_NOT_WRITABLE');
  assert.is(codeOf(() => ensureOutputDir(join(t.dir, 'plain'))), 'OUTPUT_NOT_WRITABLE');
});

test('a path under /proc fails at once (recursive mkdir used to spin forever there)', () => {
  if (!existsSync('/proc/self')) return;
  assert.is(codeOf(() => prepareOutputFile('/proc/nope/x.png')), 'OUTPUT_NOT_WRITABLE');
  assert.is(codeOf(() => ensureOutputDir('/proc/nope/deeper')), 'OUTPUT_NOT_WRITABLE');
  assert.not.ok(existsSync('/proc/nope'));
});

test('a FIFO as the output file is refused (a write would block)', () => {
  const fifo = join(t.dir, 'fifo');
  try {
    execFileSync('mkfifo', [fifo]);
  } catch {
    return;
  }
  assert.is(codeOf(() => prepareOutputFile(fifo)), 'FILE_NOT_REGULAR');
});

test.run();
