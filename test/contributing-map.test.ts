// CONTRIBUTING.md is the map a newcomer reads first: it must name every source
// directory, and every file or folder it names must exist (it once named a
// `sampler_step.cc` that had long been split up, and omitted five directories).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { repoPath, repoRoot } from './helpers.js';

const map = readFileSync(repoPath('CONTRIBUTING.md'), 'utf8');
const ROOTS = ['src', 'native', 'test', 'bench', 'tools', 'models', 'web', 'policies', 'docs'];
const GENERATED = ['dist/', 'build/', 'node_modules/', 'out/'];

/** Every file in the repository's own directories (no dependencies or build outputs), by base name. */
function walk(dir: string, into: Set<string>): Set<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(p, into);
    else into.add(e.name);
  }
  return into;
}
const baseNames = ROOTS.filter((r) => existsSync(repoPath(r))).reduce((s, r) => walk(repoPath(r), s), new Set<string>(readdirSync(repoRoot)));

test('every directory under src/ is named in the layout', () => {
  const missing: string[] = [];
  const visit = (rel: string) => {
    for (const e of readdirSync(repoPath(rel), { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const dir = `${rel}/${e.name}/`;
      if (!map.includes(dir)) missing.push(dir);
      visit(`${rel}/${e.name}`);
    }
  };
  visit('src');
  assert.equal(missing, [], `CONTRIBUTING.md does not name: ${missing.join(', ')}`);
});

test('every path the map names exists', () => {
  const tokens = [...map.matchAll(/`([^`\s]+)`/g)].map((m) => m[1]!);
  const stale: string[] = [];
  for (const t of tokens) {
    if (t.startsWith('../') || GENERATED.some((g) => t.startsWith(g)) || t.includes('*') || t.includes('<')) continue;
    const clean = t.replace(/[:,]$/, '');
    const rooted = ROOTS.some((r) => clean.startsWith(`${r}/`)) || ['CMakeLists.txt', 'binding.gyp', 'package.json', 'README.md', '.ci/run'].includes(clean);
    if (rooted) {
      if (!existsSync(repoPath(clean))) stale.push(clean);
      else if (clean.endsWith('/') && !statSync(repoPath(clean)).isDirectory()) stale.push(clean);
    } else if (/^[\w.-]+\.(ts|mjs|cc|cu|h|cuh|py|json|md|txt)$/.test(clean) && !baseNames.has(basename(clean))) {
      stale.push(clean); // a bare file name (in a row about its folder) must be a real file somewhere
    }
  }
  assert.equal(stale, [], `CONTRIBUTING.md names paths that do not exist: ${stale.join(', ')}`);
});

test.run();
