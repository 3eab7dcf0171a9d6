// `--policy FILE` on `ragdiff generate` and `ragdiff index add`, run as a user would (a child process).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readProvenance } from '../src/rag/index.js';
import { resolveAnchorPath } from '../src/safety/load.js';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const MODEL = repoPath('models/tiny-emoji');
const POLICY = repoPath('policies/default.json');

function ragdiff(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: repoPath('.'), env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const { dir, cleanup } = tempDir('ragdiff-safety-cli-');
test.after(cleanup);

test('generate --policy: a blocked prompt writes nothing and says which rule; an allowed one carries the policy hash in its PNG', async () => {
  const audit = join(dir, 'audit.log');
  const bad = await ragdiff(['generate', 'water pistol', '-o', join(dir, 'bad.png'), '-m', MODEL, '--steps', '2', '--policy', POLICY], { RAGDIFF_AUDIT_LOG: audit });
  assert.is.not(bad.code, 0);
  assert.match(bad.stderr, /PROMPT_BLOCKED/);
  assert.match(bad.stderr, /concept:pistol/);
  assert.not.ok(existsSync(join(dir, 'bad.png')));
  assert.match(readFileSync(audit, 'utf8'), /"door":"prompt".*"action":"block"/);
  const ok = await ragdiff(['generate', 'automobile', '-o', join(dir, 'car.png'), '-m', MODEL, '--steps', '4', '--seed', '1', '--policy', POLICY]);
  assert.is(ok.code, 0, ok.stderr);
  const policy = readProvenance(readFileSync(join(dir, 'car.png'))).policy!;
  assert.is(policy.version, 'emoji-default-2');
  assert.match(policy.hash, /^[0-9a-f]{64}$/);
  const broken = join(dir, 'broken.json');
  writeFileSync(broken, JSON.stringify({ version: 'x', concepts: [{ id: 'a', text: ['a'], threshold: 5 }] }));
  const invalid = await ragdiff(['generate', 'automobile', '-o', join(dir, 'x.png'), '-m', MODEL, '--steps', '2', '--policy', broken]);
  assert.is.not(invalid.code, 0);
  assert.match(invalid.stderr, /POLICY_INVALID.*concepts\[0\]\.threshold/);
});

test('index add --policy: matching images are stored as blocked with rule and score', async () => {
  const files = ['1f34e.png', '1f52b.png'].map((f) => resolveAnchorPath(`npm:emoji-datasource-twitter/img/twitter/64/${f}`, '.'));
  const r = await ragdiff(['index', 'add', ...files, '--store', join(dir, 'store'), '--model', MODEL, '--source', 'twemoji', '--licence', 'CC-BY-4.0', '--policy', POLICY, '--json']);
  assert.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { added: number; items: { status: string; reason?: string }[] };
  assert.equal(report.items.map((i) => i.status), ['added', 'blocked']);
  assert.match(report.items[1]!.reason!, /rule concept:pistol score 0\.\d+/);
});

test.run();
