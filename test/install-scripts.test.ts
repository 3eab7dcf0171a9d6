/**
 * The install stays ready for npm's next major, which skips the install
 * scripts of dependencies a project has not reviewed: every installed
 * dependency's install script is approved or denied in package.json's
 * `allowScripts`, the native dependencies ragdiff loads are approved, and npm
 * reads no project config key it would stop honouring (the old `.npmrc`
 * `onnxruntime-node-install`).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { repoPath, repoRoot } from './helpers.js';

const npm = (args: string[]) => spawnSync('npm', args, { cwd: repoRoot, encoding: 'utf8' });

test('every dependency install script is covered by allowScripts, and npm warns about nothing', () => {
  const r = npm(['install-scripts', 'ls', '--json']);
  assert.is(r.status, 0, r.error?.message ?? r.stderr);
  const pending = (JSON.parse(r.stdout) as { allowScripts: { name: string }[] }).allowScripts.map((p) => p.name);
  assert.equal(pending, [], `install scripts not covered by allowScripts: ${pending.join(', ')}`);
  assert.not.match(r.stderr, /Unknown project config|will stop working|not yet covered/, r.stderr);
});

test('the native dependencies are approved; onnxruntime-node\'s CUDA download is denied', () => {
  const allow = (JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { allowScripts?: Record<string, boolean> }).allowScripts ?? {};
  const entry = (name: string) => Object.entries(allow).find(([k]) => k === name || k.startsWith(`${name}@`))?.[1];
  // Without their install scripts these have no compiled binding and ragdiff cannot load them.
  assert.is(entry('better-sqlite3'), true, 'better-sqlite3');
  assert.is(entry('hnswlib-node'), true, 'hnswlib-node');
  // Its postinstall only downloads CUDA libraries (offline installs would fail); the CPU runtime ships in the package.
  assert.is(entry('onnxruntime-node'), false, 'onnxruntime-node');
});

test.run();
