// A knowledge base cut by an interrupted append is repaired from the command
// line, as its error message says: `ragdiff kb build --out KB` with the base's
// settings cuts the torn tail, keeps every complete chunk before it and appends.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { copyFileSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { KnowledgeBase } from '../src/trajectory/kb-file.js';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const BUNDLE = repoPath('test/fixtures/pipeline/tiny-bundle');
const { dir, cleanup } = tempDir('ragdiff-kb-repair-');
test.after(cleanup);

function ragdiff(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: dir, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const prompts = join(dir, 'prompts.txt');
writeFileSync(prompts, 'a red cat\na blue dog\n');
const settings = ['-m', BUNDLE, '--steps', '6', '-g', '3', '--sampler', 'dpmpp-2m', '--key-step', '2', '--value-steps', '4'];
const build = (kb: string, seedBase: number) => ragdiff(['kb', 'build', '--prompts', prompts, '--seeds', '1', '--seed-base', String(seedBase), '--out', kb, ...settings, '--json']);
const whole = join(dir, 'whole.rdkb');

/** Where each chunk starts, and the end of the last one. */
function layout(path: string): { chunks: number[]; end: number } {
  const kb = KnowledgeBase.open(path);
  try {
    return { chunks: kb.chunks.map((c) => c.offset), end: kb.end };
  } finally {
    kb.close();
  }
}

test.before(async () => {
  // Two appends: two chunks of two trajectories each.
  for (const base of [0, 10]) {
    const r = await build(whole, base);
    assert.is(r.code, 0, r.stderr);
  }
  assert.is(layout(whole).chunks.length, 2);
});

/** The cut base: kb info says KB_TRUNCATED and how to repair; kb build repairs it and appends; kb info verifies. */
async function repairs(name: string, cut: (path: string, l: { chunks: number[]; end: number }) => void, kept: number): Promise<void> {
  const kb = join(dir, `${name}.rdkb`);
  copyFileSync(whole, kb);
  cut(kb, layout(whole));
  const before = await ragdiff(['kb', 'info', kb, '--json']);
  assert.is(before.code, 1, `${name}: ${before.stdout}`);
  const e = JSON.parse(before.stdout) as { error: { code: string; message: string } };
  assert.is(e.error.code, 'KB_TRUNCATED', name);
  assert.match(e.error.message, /ragdiff kb build --out/, `${name}: the message says how to repair it`);
  assert.match(e.error.message, new RegExp(`keeping the ${kept} trajectories`), name);
  const b = await build(kb, 20);
  assert.is(b.code, 0, `${name}: kb build refused: ${b.stderr}`);
  const r = JSON.parse(b.stdout) as { added: number; count: number };
  assert.equal([r.added, r.count], [2, kept + 2], name);
  const after = await ragdiff(['kb', 'info', kb]);
  assert.is(after.code, 0, `${name}: ${after.stderr}`);
  assert.is((JSON.parse(after.stdout) as { trajectories: number }).trajectories, kept + 2, name);
}

test('cut inside the last chunk\'s header', () => repairs('in-chunk-header', (p, l) => truncateSync(p, l.chunks[1]! + 10), 2));
test('cut 3 bytes into the last chunk (a partial magic)', () => repairs('in-magic', (p, l) => truncateSync(p, l.chunks[1]! + 3), 2));
test('cut inside the last chunk\'s payload', () => repairs('in-payload', (p, l) => truncateSync(p, l.end - 8), 2));
test('cut inside the first chunk (nothing complete is left)', () => repairs('in-first', (p, l) => truncateSync(p, l.chunks[0]! + 40), 0));
test('a whole chunk never committed (magic still zero: killed before the commit)', () => repairs('uncommitted', (p, l) => {
  const bytes = readFileSync(p);
  bytes.fill(0, l.chunks[1]!, l.chunks[1]! + 4);
  writeFileSync(p, bytes);
}, 2));

test('a cut header cannot be appended to, and the message says so instead of promising a repair', async () => {
  const kb = join(dir, 'header.rdkb');
  copyFileSync(whole, kb);
  truncateSync(kb, 20);
  const info = await ragdiff(['kb', 'info', kb, '--json']);
  const e = JSON.parse(info.stdout) as { error: { code: string; message: string } };
  assert.is(e.error.code, 'KB_TRUNCATED');
  assert.match(e.error.message, /delete it and build it again/);
  assert.not.match(e.error.message, /repairs/);
  const b = await build(kb, 20);
  assert.is(b.code, 1);
  assert.is((JSON.parse(b.stdout) as { error: { code: string } }).error.code, 'KB_TRUNCATED');
});

test.run();
