// The CLI against hostile arguments, run as a user would (child processes):
// every case ends with a typed error or success, never a signal or a hang.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { readPngText } from '../src/image/png-text.js';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const BUNDLE = repoPath('test/fixtures/pipeline/tiny-bundle');
const t = tempDir('ragdiff-cli-hard-');
test.after(t.cleanup);

function ragdiff(args: string[], timeout = 120_000): { status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout, maxBuffer: 8 << 20, cwd: t.dir });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Exit 1 with `[CODE]` on stderr, no signal (a timeout shows as SIGTERM). */
function typedFailure(args: string[], code: string, timeout = 60_000): void {
  const r = ragdiff(args, timeout);
  assert.is(r.signal, null, `${args.join(' ').slice(0, 80)}: signal ${r.signal}`);
  assert.is(r.status, 1, r.stderr.slice(0, 500));
  assert.ok(r.stderr.includes(`[${code}]`), `expected [${code}], got: ${r.stderr.slice(0, 500)}`);
}

mkdirSync(join(t.dir, 'adir'));
let fifo: string | null = join(t.dir, 'fifo');
try {
  execFileSync('mkfifo', [fifo]);
} catch {
  fifo = null;
}
const urandom = existsSync('/dev/urandom') ? join(t.dir, 'urandom.png') : null;
if (urandom) symlinkSync('/dev/urandom', urandom);
const out = join(t.dir, 'out.png');
const gen = (...more: string[]) => ['generate', 'cat', '-m', BUNDLE, '--steps', '1', ...more];

test('--init-image: missing, directory, FIFO, symlink to /dev/urandom are typed errors, at once', () => {
  typedFailure(gen('-o', out, '--init-image', join(t.dir, 'missing.png')), 'FILE_NOT_FOUND');
  typedFailure(gen('-o', out, '--init-image', join(t.dir, 'adir')), 'IS_DIRECTORY');
  if (fifo) typedFailure(gen('-o', out, '--init-image', fifo), 'FILE_NOT_REGULAR', 20_000);
  if (urandom) typedFailure(gen('-o', out, '--init-image', urandom), 'FILE_NOT_REGULAR', 20_000);
});

test('index query --image FIFO is refused before the store opens', () => {
  if (!fifo) return;
  typedFailure(['index', 'query', '--image', fifo, '--store', join(t.dir, 'nostore')], 'FILE_NOT_REGULAR', 20_000);
  assert.not.ok(existsSync(join(t.dir, 'nostore')), 'nothing created');
});

test('-o: a directory, /proc/nope/x.png, a path below a file: typed errors, no spin', () => {
  typedFailure(gen('-o', join(t.dir, 'adir')), 'IS_DIRECTORY');
  if (existsSync('/proc/self')) typedFailure(gen('-o', '/proc/nope/x.png'), 'OUTPUT_NOT_WRITABLE', 20_000);
  typedFailure(gen('-o', join(BUNDLE, 'model_index.json', 'x.png')), 'OUTPUT_NOT_WRITABLE');
});

test('a 15 KB prompt is accepted and truncated (it used to end in SIGSEGV)', () => {
  const p = join(t.dir, 'long.png');
  const r = ragdiff(['generate', 'red '.repeat(3750), '-o', p, '-m', BUNDLE, '--steps', '2', '--seed', '1']);
  assert.is(r.signal, null);
  assert.is(r.status, 0, r.stderr.slice(-1000));
  assert.match(r.stderr, /prompt truncated to \d+ tokens/);
  assert.ok(readPngText(readFileSync(p)).parameters!.startsWith('red red'), 'the PNG records the prompt as given');
});

test('-n <15 KB> and demo -p <15 KB>: success, no signal', () => {
  const r = ragdiff(['generate', 'cat', '-n', 'x'.repeat(15_000), '-o', join(t.dir, 'neg.png'), '-m', BUNDLE, '--steps', '2']);
  assert.is(r.signal, null);
  assert.is(r.status, 0, r.stderr.slice(-1000));
  const d = ragdiff(['demo', '-p', 'y'.repeat(15_000), '--seeds', '1', '--steps', '1', '-m', BUNDLE, '--out', join(t.dir, 'demo')]);
  assert.is(d.signal, null);
  assert.is(d.status, 0, d.stderr.slice(-1000));
});

test('a prompt over MAX_PROMPT_CHARS is PROMPT_TOO_LONG, not a crash', () => {
  typedFailure(['generate', 'z'.repeat(40_000), '-o', out, '-m', BUNDLE], 'PROMPT_TOO_LONG');
});

test('index query "<30 KB>": the encoders open on the main thread, a typed answer, no signal', () => {
  // 30 KB of command line overflowed the main thread's 8 MiB stack inside onnxruntime.
  const r = ragdiff(['index', 'query', 'w'.repeat(30_000), '--store', join(t.dir, 'store')]);
  assert.is(r.signal, null, `signal ${r.signal}`);
  assert.is(r.status, 1);
  assert.match(r.stderr, /^ragdiff: \[[A-Z_]+\]/);
});

test('index add with ~64 KB of file names (4096 arguments): per-item errors, no signal', () => {
  // The encoders open on the main thread; its 8 MiB stack overflowed at ~29 KB of command line.
  const names = Array.from({ length: 4096 }, (_, i) => join(t.dir, `missing-${String(i).padStart(5, '0')}.png`));
  const r = ragdiff(['index', 'add', ...names, '--store', join(t.dir, 'addstore'), '--json']);
  assert.is(r.signal, null, `signal ${r.signal}`);
  assert.is(r.status, 1, r.stderr.slice(-500));
  const report = JSON.parse(r.stdout) as { failed: number; items: { error?: { code: string } }[] };
  assert.is(report.failed, 4096);
  assert.is(report.items[0]!.error!.code, 'FILE_NOT_FOUND');
});

test.run();
