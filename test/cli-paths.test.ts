// Every path the CLI reads goes through the file gate: bad paths (missing, a
// directory, a FIFO, a symlink loop, a dangling symlink, unreadable, a file where
// a directory belongs) end at once with a closed-set code, never a hang and never
// a raw Node error (ENOENT, EISDIR, EACCES, ELOOP, …).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isErrorCode } from '../src/error-codes.js';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const BUNDLE = repoPath('test/fixtures/pipeline/tiny-bundle');
const t = tempDir('ragdiff-cli-paths-');
test.after(t.cleanup);
const p = (name: string) => join(t.dir, name);

const RAW = /\b(ENOENT|EISDIR|EACCES|EPERM|ELOOP|ENOTDIR|EEXIST|EINVAL|ENXIO|EBADF)\b/;

function run(args: string[]): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000, cwd: t.dir, input: '' });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 1 at once, `[CODE]` of the closed set (not INTERNAL, and `expect` when given), no raw Node code anywhere. */
function typed(args: string[], expect?: string): void {
  const what = args.join(' ').replaceAll(t.dir, '');
  const r = run([...args, '--json']);
  assert.is(r.signal, null, `${what}: killed (a hang?)`);
  assert.is(r.status, 1, `${what}: exit ${r.status}: ${r.stderr}`);
  const m = /^ragdiff: \[([A-Za-z_.]+)\] (.*)$/m.exec(r.stderr);
  assert.ok(m, `${what}: no [CODE] line: ${r.stderr}`);
  assert.ok(isErrorCode(m![1]), `${what}: ${m![1]} is not in the closed set`);
  assert.is.not(m![1], 'INTERNAL', `${what}: ${r.stderr}`);
  if (expect) assert.is(m![1], expect, `${what}: ${r.stderr}`);
  assert.not.match(r.stderr + r.stdout, RAW, `${what}: a raw Node code reached the user: ${r.stderr}`);
  assert.is((JSON.parse(r.stdout) as { error: { code: string } }).error.code, m![1], `${what}: the JSON error`);
}

// The bad paths, by kind.
mkdirSync(p('adir'));
writeFileSync(p('plain.txt'), 'cat\n');
symlinkSync(p('loop-b'), p('loop-a'));
symlinkSync(p('loop-a'), p('loop-b'));
symlinkSync(p('nowhere'), p('dangling'));
let fifo: string | null = p('fifo');
try {
  execFileSync('mkfifo', [fifo]);
} catch {
  fifo = null;
}
// Root reads through any mode: the unreadable case only means something for other users.
const asRoot = process.getuid?.() === 0;
writeFileSync(p('unreadable.json'), '{}');
chmodSync(p('unreadable.json'), 0o000);

interface Kind { path: string; file?: string }
/** Each kind of bad path, with the code a place that needs a *file* answers. */
const kinds: Kind[] = [
  { path: p('missing'), file: 'FILE_NOT_FOUND' },
  { path: p('adir'), file: 'IS_DIRECTORY' },
  { path: p('loop-a'), file: 'FILE_UNREADABLE' },
  { path: p('dangling'), file: 'FILE_NOT_FOUND' },
  ...(fifo ? [{ path: fifo, file: 'FILE_NOT_REGULAR' }] : []),
  ...(asRoot ? [] : [{ path: p('unreadable.json'), file: 'FILE_UNREADABLE' }]),
];
const out = p('out.png');
const gen = (...more: string[]) => ['generate', 'cat', '-o', out, '-m', BUNDLE, '--steps', '1', ...more];

test('files the CLI reads: --policy, --kb, --init-image, --ref-image, explain, --image, --encoder, --prompts, kb info', () => {
  for (const k of kinds) {
    typed(gen('--policy', k.path), k.file);
    typed(['index', 'add', p('plain.txt'), '--store', p('s1'), '--policy', k.path], k.file);
    if (k.path === fifo || k.path === p('adir')) typed(['serve', '--without-store', '-m', BUNDLE, '--port', '0', '--policy', k.path], k.file);
    typed(gen('--init-image', k.path), k.file);
    typed(gen('--store', p('nostore'), '--ref-image', k.path), k.file);
    typed(['explain', k.path], k.file);
    typed(['index', 'query', '--image', k.path, '--store', p('nostore')], k.file);
    typed(['index', 'info', '--store', p('s1'), '--encoder', k.path], k.file);
    typed(['kb', 'build', '--prompts', k.path, '--seeds', '1', '--out', p('k.kb'), '-m', BUNDLE], k.file);
    // A knowledge base that is not there is KB_NOT_FOUND; every other kind is the gate's code.
    const kb = k.file === 'FILE_NOT_FOUND' ? 'KB_NOT_FOUND' : k.file;
    typed(['kb', 'info', k.path], kb);
    typed(gen('--kb', k.path), kb);
  }
});

test('a directory as a knowledge base is IS_DIRECTORY (it was a raw [EISDIR]); a FIFO one never blocks', () => {
  typed(['kb', 'info', p('adir')], 'IS_DIRECTORY');
  typed(gen('--kb', p('adir')), 'IS_DIRECTORY');
  if (fifo) typed(['kb', 'info', fifo], 'FILE_NOT_REGULAR');
});

test('store directories: a file, a FIFO, a symlink loop or a dangling symlink where the store belongs', () => {
  const notDirs = [p('plain.txt'), p('loop-a'), p('dangling'), ...(fifo ? [fifo] : [])];
  for (const d of notDirs) {
    // A writer creates the directory (and cannot); a reader finds no store.
    typed(['index', 'add', p('plain.txt'), '--store', d], 'OUTPUT_NOT_WRITABLE');
    typed(['index', 'info', '--store', d], 'STORE_NOT_FOUND');
    typed(gen('--store', d), 'STORE_NOT_FOUND');
    if (d === fifo || d === p('loop-a')) typed(['serve', '--store', d, '--port', '0'], 'OUTPUT_NOT_WRITABLE');
    if (d === fifo) typed(['serve', '--store', d, '--read-only', '--port', '0'], 'STORE_NOT_FOUND');
  }
  typed(['serve', '--store', p('missing'), '--read-only', '--port', '0'], 'STORE_NOT_FOUND');
  typed(gen('--store', p('missing')), 'STORE_NOT_FOUND');
});

test('output paths: kb build --out and demo --out on a directory, a FIFO, a loop', () => {
  const prompts = p('plain.txt');
  typed(['kb', 'build', '--prompts', prompts, '--seeds', '1', '--steps', '10', '-m', BUNDLE, '--out', p('adir')], 'IS_DIRECTORY');
  if (fifo) typed(['kb', 'build', '--prompts', prompts, '--seeds', '1', '--steps', '10', '-m', BUNDLE, '--out', fifo], 'FILE_NOT_REGULAR');
  typed(['kb', 'build', '--prompts', prompts, '--seeds', '1', '--steps', '10', '-m', BUNDLE, '--out', p('loop-a')]);
  typed(['kb', 'build', '--prompts', prompts, '--seeds', '1', '--steps', '10', '-m', BUNDLE, '--out', join(p('plain.txt'), 'k.kb')]);
  typed(['demo', '--out', p('loop-a'), '-m', BUNDLE, '--seeds', '1', '--steps', '1']);
  typed(['demo', '--out', p('plain.txt'), '-m', BUNDLE, '--seeds', '1', '--steps', '1']);
});

test.run();
