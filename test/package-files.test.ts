/**
 * What `npm pack` ships (package.json `files`): the runtime a project that
 * installs the tarball needs — the compiled library and CLI, what the install
 * script builds the addon from, the default model bundle, the web page and the
 * policies — and not the tests, benchmarks or training tools.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, relative, sep } from 'node:path';
import { repoPath, repoRoot } from './helpers.js';

interface Packed {
  files: { path: string; size: number }[];
  size: number;
}

const pkg = JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as {
  main: string;
  types: string;
  bin: Record<string, string>;
  exports: Record<string, string | Record<string, string>>;
  scripts: Record<string, string>;
};

let packed: Set<string>;

test.before(() => {
  // --ignore-scripts: no `prepare` (tsc has built dist/ before the tests run).
  const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repoRoot, encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.is(r.status, 0, `npm pack failed: ${r.error?.message ?? r.stderr}`);
  const list = JSON.parse(r.stdout) as Packed[];
  packed = new Set(list[0]!.files.map((f) => f.path));
});

const norm = (p: string) => posix.normalize(p.replaceAll('\\', '/')).replace(/^\.\//, '');
const has = (p: string, why: string) => assert.ok(packed.has(norm(p)), `${norm(p)} is missing from the package (${why})`);

/** Every file on disk under `dir` (repo-relative, posix), dotfiles and caches left out. */
function walk(dir: string): string[] {
  const out: string[] = [];
  const visit = (abs: string) => {
    for (const e of readdirSync(abs)) {
      if (e.startsWith('.') || e === '__pycache__') continue;
      const p = join(abs, e);
      if (statSync(p).isDirectory()) visit(p);
      else out.push(relative(repoRoot, p).split(sep).join('/'));
    }
  };
  visit(repoPath(dir));
  return out;
}

test('the entry points: main, types, every export and the CLI', () => {
  has('package.json', 'always');
  has('README.md', 'always');
  has(pkg.main, 'main');
  has(pkg.types, 'types');
  for (const [key, target] of Object.entries(pkg.exports)) {
    for (const p of typeof target === 'string' ? [target] : Object.values(target)) has(p, `exports["${key}"]`);
  }
  for (const [name, p] of Object.entries(pkg.bin)) has(p, `bin ${name}`);
});

test('what the install script builds the addon from', () => {
  const install = /^node (\S+)/.exec(pkg.scripts.install!)?.[1];
  assert.ok(install, `the install script runs a node script: ${pkg.scripts.install}`);
  has(install!, 'the install script');
  for (const f of ['CMakeLists.txt', 'binding.gyp', 'native/sources.txt']) has(f, 'read by the addon build');
  // binding.gyp lists its sources through a node script.
  for (const m of readFileSync(repoPath('binding.gyp'), 'utf8').matchAll(/node (tools\/[\w.-]+\.mjs)/g)) has(m[1]!, 'run by binding.gyp');
  const sources = readFileSync(repoPath('native/sources.txt'), 'utf8').split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
  assert.ok(sources.length > 10);
  for (const s of sources) has(s, 'listed in native/sources.txt');
  // Headers and the CUDA twins (CMake globs native/cuda/*.cu).
  for (const f of walk('native')) has(f, 'native source');
});

test('the helpers the runtime spawns: ragdiff convert\'s ONNX bridge', () => {
  // src/convert/onnx-model.ts runs tools/convert/onnx_io.py (Debian's python3-onnx) for every conversion.
  assert.match(readFileSync(repoPath('src/convert/onnx-model.ts'), 'utf8'), /'tools', 'convert', 'onnx_io\.py'/);
  has('tools/convert/onnx_io.py', 'run by ragdiff convert');
});

test('the runtime data: the default model bundle, the web page, the policies', () => {
  for (const dir of ['models/tiny-emoji', 'web', 'policies']) {
    const files = walk(dir);
    assert.ok(files.length > 0, dir);
    for (const f of files) has(f, `read at run time from ${dir}`);
  }
});

test('every module the compiled library imports is shipped', () => {
  const modules = [...packed].filter((p) => p.startsWith('dist/src/') && p.endsWith('.js'));
  assert.ok(modules.length > 50);
  for (const m of modules) {
    const text = readFileSync(repoPath(m), 'utf8');
    // Static and dynamic imports, and worker URLs (`new URL('./worker.js', import.meta.url)`).
    for (const match of text.matchAll(/(?:from\s+|import\s*\(\s*|new URL\(\s*)'(\.{1,2}\/[^']+)'/g)) {
      const target = posix.normalize(posix.join(dirname(m), match[1]!));
      if (target.endsWith('package.json')) continue; // always shipped, checked above
      has(target, `imported by ${m}`);
    }
  }
});

test('no tests, benchmarks, training tools, TypeScript sources or source maps', () => {
  const banned = [/^test\//, /^dist\/test\//, /^dist\/bench\//, /^bench\//, /^tools\/tiny_emoji\//, /^tools\/safety\//, /^src\//, /^\.ci\//, /^docs\//, /\.map$/, /(?<!\.d)\.ts$/];
  const wrong = [...packed].filter((p) => banned.some((re) => re.test(p)));
  assert.equal(wrong, [], `shipped but not part of the runtime: ${wrong.slice(0, 10).join(', ')}`);
});

test.run();
