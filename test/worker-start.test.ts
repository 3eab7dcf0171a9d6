// Workers start with a deliberate execArgv, no argv and a stack sized for the
// command line: a pipeline starts under `node --input-type=module -e` (it failed
// with WORKER_FAILED: the worker inherited --input-type) and with a 64 KB argv
// (onnxruntime's environment creation overflowed the worker's 4 MiB stack: SIGSEGV).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { workerExecArgv, workerOptions, workerStackSizeMb, commandLineBytes, startWorker } from '../src/worker-options.js';
import { repoPath, tempDir } from './helpers.js';

const BUNDLE = repoPath('test/fixtures/pipeline/tiny-bundle');
const INDEX = pathToFileURL(repoPath('dist/src/index.js')).href;

const SCRIPT = `
const { Pipeline } = await import(${JSON.stringify(INDEX)});
const p = await Pipeline.load(${JSON.stringify(BUNDLE)}, { threads: 1 });
try {
  const r = await p.generate({ prompt: 'a red cat', steps: 2, seed: 3 });
  console.log('generated', r.images.length, typeof gc);
} finally {
  await p.close();
}
`;

// The same script as a file, for the long-argv cases (which must not depend on --input-type).
const t = tempDir('ragdiff-worker-start-');
test.after(t.cleanup);
const SCRIPT_FILE = join(t.dir, 'start.mjs');
writeFileSync(SCRIPT_FILE, SCRIPT);

function node(args: string[]) {
  return spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 120_000, maxBuffer: 1 << 20 });
}

test('execArgv: entry-point, debugger and per-process flags are dropped, module flags kept', () => {
  assert.equal(workerExecArgv(['--input-type=module', '-e', 'code here']).execArgv, []);
  assert.equal(workerExecArgv(['-p', '1+1']).execArgv, []);
  assert.equal(workerExecArgv(['--test', '--test-reporter', 'spec', '--watch']).execArgv, []);
  assert.equal(workerExecArgv(['--inspect-brk=9229', '--inspect', '--expose-gc', '--expose_gc', '--title=x', '--stack-size=2000']).execArgv, []);
  const r = workerExecArgv(['--conditions', 'dev', '--enable-source-maps', '-r', './set_up.js', '--import=tsx', '--max-old-space-size=300', '--no-warnings', '--', 'script-arg']);
  assert.equal(r.execArgv, ['--conditions', 'dev', '--enable-source-maps', '-r', './set_up.js', '--import=tsx', '--no-warnings']);
  assert.is(r.maxOldGenerationSizeMb, 300, '--max-old-space-size becomes the worker heap limit');
});

test('the stack grows with the command line: 4 MiB plus ~320 bytes per byte', () => {
  assert.is(workerStackSizeMb(0), 4);
  assert.ok(workerStackSizeMb(15_000) >= 8, 'a 15 KB argv needs more than the default 4 MiB (measured: it crashed)');
  assert.ok(workerStackSizeMb(64 * 1024) >= 22, 'a 64 KB argv: ~18 MiB measured need');
  assert.ok(commandLineBytes() > 0);
  const o = workerOptions({ workerData: 1 });
  assert.equal(o.argv, []);
  assert.ok((o.resourceLimits?.stackSizeMb ?? 0) >= 4);
  assert.is(o.workerData, 1);
});

test('a flag Node refuses in a worker (e.g. the V8 flag --harmony) is dropped with a warning, the rest kept', async () => {
  const saved = process.execArgv;
  process.execArgv = ['--harmony', '--enable-source-maps', '--no-warnings'];
  const warnings: string[] = [];
  try {
    const w = startWorker("require('node:worker_threads').parentPort.postMessage(process.execArgv)", { eval: true }, (m) => warnings.push(m));
    const got = await new Promise((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
    await w.terminate();
    assert.equal(got, ['--enable-source-maps', '--no-warnings']);
    assert.is(warnings.length, 1);
    assert.match(warnings[0]!, /--harmony/);
  } finally {
    process.execArgv = saved;
  }
});

test('a pipeline starts under node --input-type=module -e (and --expose-gc), and gc reaches the worker', () => {
  const r = node(['--expose-gc', '--input-type=module', '-e', SCRIPT]);
  assert.is(r.signal, null, r.stderr);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /generated 1 function/);
});

test('a pipeline starts in a process with a 64 KB argv (no SIGSEGV)', () => {
  const big = 'a'.repeat(64 * 1024);
  const r = node([SCRIPT_FILE, big]);
  assert.is(r.signal, null, `killed by ${r.signal}: ${r.stderr.slice(-500)}`);
  assert.is(r.status, 0, r.stderr.slice(-2000));
  assert.match(r.stdout, /generated 1/);
});

test('a pipeline starts with a 64 KB argv of many small arguments', () => {
  const many = Array.from({ length: 4096 }, (_, i) => `file-${String(i).padStart(9, '0')}.png`);
  const r = node([SCRIPT_FILE, ...many]);
  assert.is(r.signal, null, `killed by ${r.signal}`);
  assert.is(r.status, 0, r.stderr.slice(-2000));
});

test.run();
