#!/usr/bin/env node
// Builds the native addon into build/Release/ragdiff.node.
//
//   node tools/build-addon.mjs            build unless the addon is newer than every native source
//   node tools/build-addon.mjs --force    always rebuild
//   options: --cuda=on|off (default: cmake decides: on when nvcc is found), --gyp (force node-gyp)
//   env:     RAGDIFF_WITH_CUDA=ON|OFF, RAGDIFF_BUILD_JOBS=N
//
// cmake-js + CMakeLists.txt when `cmake` is on PATH (CUDA twins compiled when nvcc is
// found); otherwise node-gyp + binding.gyp, CPU only. Both read native/sources.txt.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const addon = join(root, 'build', 'Release', 'ragdiff.node');
const args = process.argv.slice(2);
const force = args.includes('--force');
const cudaArg = args.find((a) => a.startsWith('--cuda='))?.slice(7) ?? process.env.RAGDIFF_WITH_CUDA;
const forceGyp = args.includes('--gyp');

function onPath(cmd) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, cmd))) return join(dir, cmd);
  }
  return null;
}

function newestSource() {
  let newest = 0;
  const visit = (p) => {
    const st = statSync(p);
    if (st.isDirectory()) for (const e of readdirSync(p)) visit(join(p, e));
    else newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of ['native', 'CMakeLists.txt', 'binding.gyp']) if (existsSync(join(root, p))) visit(join(root, p));
  return newest;
}

function fail(message) {
  console.error(`\nragdiff: the native addon could not be built.\n${message}\n` +
    'Install a C++17 compiler (g++ or clang), CMake >= 3.18 (or python3 for node-gyp), then run `npm run build:addon`.');
  process.exit(1);
}

function run(cmd, argv, what, env = process.env) {
  console.log(`ragdiff: ${what}: ${[cmd, ...argv].join(' ')}`);
  const r = spawnSync(cmd, argv, { cwd: root, stdio: 'inherit', env });
  if (r.error) fail(`${what} could not start: ${r.error.message}`);
  if (r.status !== 0) fail(`${what} exited with status ${r.status ?? r.signal}; the compiler output above says why.`);
}

if (!force && existsSync(addon) && statSync(addon).mtimeMs >= newestSource()) {
  console.log(`ragdiff: ${addon} is up to date (use --force to rebuild)`);
  process.exit(0);
}

const jobs = String(process.env.RAGDIFF_BUILD_JOBS ?? Math.max(1, availableParallelism()));
const started = Date.now();
if (!forceGyp && onPath('cmake')) {
  const require = createRequire(import.meta.url);
  let cmakeJs;
  try {
    cmakeJs = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  } catch {
    fail('cmake-js is missing from node_modules; run `npm install` first.');
  }
  // 'rebuild' starts from a clean tree (fresh clones, --force); 'build' reuses an existing one.
  const verb = force || !existsSync(join(root, 'build', 'cmake', 'CMakeCache.txt')) ? 'rebuild' : 'build';
  const argv = [cmakeJs, verb, '--directory', root, '--out', join(root, 'build', 'cmake'), '--config', 'Release', '--parallel', jobs];
  if (onPath('ninja')) argv.push('--generator', 'Ninja');
  if (cudaArg !== undefined) argv.push(`--CDWITH_CUDA=${/^(1|on|true|yes)$/i.test(cudaArg) ? 'ON' : 'OFF'}`);
  // cmake-js takes Node-API headers from the node-api-headers package when package.json
  // declares binary.napi_versions; otherwise it would download Node's headers. Point it
  // at the running Node's own headers when they are installed, so no download is needed.
  const env = { ...process.env };
  const prefix = join(dirname(process.execPath), '..');
  if (!env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node.h'))) env.npm_config_nodedir = prefix;
  run(process.execPath, argv, 'cmake-js', env);
} else {
  // node-gyp: npm exposes its bundled copy to install scripts; fall back to the one beside npm or on PATH.
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ].filter((p) => p && existsSync(p));
  const nodeDir = join(dirname(process.execPath), '..');
  const gypArgs = ['rebuild', '--release', `--jobs=${jobs}`];
  // Use the running Node's own headers when they are installed (no download needed).
  if (existsSync(join(nodeDir, 'include', 'node', 'node_api.h'))) gypArgs.push(`--nodedir=${nodeDir}`);
  if (candidates.length > 0) run(process.execPath, [candidates[0], ...gypArgs], 'node-gyp');
  else if (onPath('node-gyp')) run('node-gyp', gypArgs, 'node-gyp');
  else fail('Neither CMake nor node-gyp was found.');
}
if (!existsSync(addon)) fail(`the build finished but ${addon} is missing.`);
console.log(`ragdiff: built ${addon} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
