// `ragdiff generate` and `ragdiff demo`, run as a user would (a child process),
// on the synthetic test bundle.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { readPngText } from '../src/image/png-text.js';
import { progressBar, DEMO_PROMPTS } from '../src/cli/generate.js';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const BUNDLE = repoPath('test/fixtures/pipeline/tiny-bundle');

function ragdiff(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: repoPath('.') }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const { dir, cleanup } = tempDir();
test.after(cleanup);

test('generate writes a PNG with its parameters and prints where', async () => {
  const out = join(dir, 'cat.png');
  const r = await ragdiff(['generate', 'a red cat', '-o', out, '-m', BUNDLE, '--seed', '5', '--steps', '4', '--guidance', '3', '--sampler', 'ddim']);
  assert.is(r.code, 0, r.stderr);
  assert.ok(r.stdout.includes(out));
  assert.not.ok(r.stderr.includes('\r'), 'no progress bar when stderr is not a TTY');
  const png = readFileSync(out);
  assert.is((await sharp(png).metadata()).width, 32);
  assert.match(readPngText(png).parameters!, /^a red cat\nSteps: 4, Sampler: DDIM, CFG scale: 3, Seed: 5, /);
  const again = join(dir, 'cat2.png');
  await ragdiff(['generate', 'a red cat', '-o', again, '-m', BUNDLE, '--seed', '5', '--steps', '4', '--guidance', '3']);
  assert.ok(readFileSync(again).equals(png), 'same arguments, same bytes');
});

test('a batch writes numbered files', async () => {
  const r = await ragdiff(['generate', 'blue star', '-o', join(dir, 'star.png'), '-m', BUNDLE, '--steps', '2', '--batch', '2', '--seed', '1']);
  assert.is(r.code, 0, r.stderr);
  assert.ok(existsSync(join(dir, 'star-1.png')) && existsSync(join(dir, 'star-2.png')));
  assert.match(readPngText(readFileSync(join(dir, 'star-2.png'))).parameters!, /Seed: 2,/);
});

test('bad arguments exit non-zero with a message naming the parameter', async () => {
  const bad = await ragdiff(['generate', 'x', '-o', join(dir, 'x.png'), '-m', BUNDLE, '--steps', 'many']);
  assert.is.not(bad.code, 0);
  assert.match(bad.stderr, /steps must be an integer/);
  const range = await ragdiff(['generate', 'x', '-o', join(dir, 'x.png'), '-m', BUNDLE, '--steps', '0']);
  assert.is.not(range.code, 0);
  assert.match(range.stderr, /\[OUT_OF_RANGE\] steps must be in 1\.\.1000, got 0/);
  const missing = await ragdiff(['generate', 'x', '-o', join(dir, 'x.png'), '-m', join(dir, 'no-such-model')]);
  assert.is.not(missing.code, 0);
  assert.match(missing.stderr, /MODEL_FILE_MISSING.*no-such-model/);
  assert.not.ok(existsSync(join(dir, 'x.png')));
});

test('demo writes a grid, an index page and one PNG per prompt and seed', async () => {
  const out = join(dir, 'demo-out');
  const r = await ragdiff(['demo', '--out', out, '-m', BUNDLE, '--seeds', '2', '--steps', '2']);
  assert.is(r.code, 0, r.stderr);
  const files = readdirSync(join(out, 'demo'));
  assert.is(files.filter((f) => /^\d\d-.*-seed\d+\.png$/.test(f)).length, DEMO_PROMPTS.length * 2);
  assert.ok(files.includes('grid.png') && files.includes('index.html'));
  const grid = await sharp(join(out, 'demo', 'grid.png')).metadata();
  assert.equal([grid.width, grid.height], [4 + 2 * (64 + 4), 4 + DEMO_PROMPTS.length * (64 + 4)]);
  assert.ok(r.stdout.includes(join(out, 'demo')));
  const custom = await ragdiff(['demo', '--out', join(dir, 'custom'), '-m', BUNDLE, '--seeds', '1', '--steps', '1', '-p', 'red cat', 'blue dog']);
  assert.is(custom.code, 0, custom.stderr);
  assert.equal(readdirSync(join(dir, 'custom', 'demo')).filter((f) => f.endsWith('.png') && f !== 'grid.png').sort(), ['01-red-cat-seed1.png', '02-blue-dog-seed1.png']);
});

test('the progress bar draws on a TTY only', () => {
  let written = '';
  const tty = { isTTY: true, write: (s: string) => ((written += s), true) } as unknown as NodeJS.WriteStream;
  const bar = progressBar(tty);
  bar.update({ step: 5, total: 10, stage: 'denoise' });
  bar.done();
  assert.ok(written.includes('5/10 denoise'));
  assert.ok(written.includes('#'.repeat(15) + '.'.repeat(15)));
  let other = '';
  const pipe = { isTTY: false, write: (s: string) => ((other += s), true) } as unknown as NodeJS.WriteStream;
  progressBar(pipe).update({ step: 1, total: 2, stage: 'denoise' });
  assert.is(other, '');
});

test.run();
