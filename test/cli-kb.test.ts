// `ragdiff kb build` / `kb info` and `ragdiff generate --kb`, run as a user
// would (child processes), on the synthetic test bundle.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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

test('kb build, kb info, generate --kb (jump and fallback), and typed errors', async () => {
  const prompts = join(dir, 'prompts.txt');
  writeFileSync(prompts, 'a red cat\n\na blue dog\n');
  const kb = join(dir, 'base.rdkb');
  const common = ['-m', BUNDLE, '--steps', '6', '-g', '3', '--sampler', 'dpmpp-2m'];
  const b = await ragdiff(['kb', 'build', '--prompts', prompts, '--seeds', '2', '--out', kb, '--key-step', '2', '--value-steps', '4', ...common]);
  assert.is(b.code, 0, b.stderr);
  assert.match(b.stdout, /4 trajectories added, 4 in the base/);
  const again = await ragdiff(['kb', 'build', '--prompts', prompts, '--seeds', '1', '--seed-base', '10', '--out', kb, '--key-step', '2', '--value-steps', '4', ...common]);
  assert.match(again.stdout, /2 trajectories added, 6 in the base/);
  const info = await ragdiff(['kb', 'info', kb]);
  assert.is(info.code, 0, info.stderr);
  const h = JSON.parse(info.stdout) as { trajectories: number; keyStep: number; valueSteps: number[]; sampler: string; steps: number };
  assert.equal([h.trajectories, h.keyStep, h.valueSteps, h.sampler, h.steps], [6, 2, [4], 'dpmpp-2m', 6]);

  const out = join(dir, 'x.png');
  const g = await ragdiff(['generate', 'a green frog', '-o', out, '--seed', '99', '--kb', kb, '--kb-k', '3', '--json', ...common]);
  assert.is(g.code, 0, g.stderr);
  const stats = (JSON.parse(g.stdout) as { stats: { nfe: number; trajectory: { jumped: boolean; denoiserCalls: number; denoiserCallsSaved: number } } }).stats;
  assert.ok(stats.trajectory.jumped);
  assert.is(stats.trajectory.denoiserCalls, 2 + 2);
  assert.is(stats.trajectory.denoiserCallsSaved, 2);
  assert.ok(existsSync(out));
  const f = await ragdiff(['generate', 'a green frog', '-o', out, '--seed', '99', '--kb', kb, '--max-distance', '0', ...common]);
  assert.is(f.code, 0, f.stderr);
  assert.match(f.stderr, /trajectory: no jump \(image 0's nearest key is at distance .* beyond maxDistance 0/);

  const steps = await ragdiff(['generate', 'x', '-o', out, '--kb', kb, '-m', BUNDLE, '--steps', '7', '-g', '3', '--sampler', 'dpmpp-2m']);
  assert.is(steps.code, 1);
  assert.match(steps.stderr, /\[KB_MISMATCH\] .* steps = 6, this generation uses 7/);
  const order = await ragdiff(['generate', 'x', '-o', out, '--kb', kb, '--key-step', '4', '--value-step', '2', ...common]);
  assert.match(order.stderr, /\[INVALID_VALUE\] trajectory.keyStep \(4\) must come before trajectory.valueStep \(2\)/);
  const notKb = await ragdiff(['generate', 'x', '-o', out, '--kb', prompts, ...common]);
  assert.match(notKb.stderr, /\[KB_NOT_A_BASE\]/);
  const mismatch = await ragdiff(['kb', 'build', '--prompts', prompts, '--seeds', '1', '--out', kb, '--key-step', '3', '--value-steps', '4', ...common]);
  assert.match(mismatch.stderr, /\[KB_MISMATCH\] .*keys at step 2, not 3/);
});

test.run();
