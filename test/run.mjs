#!/usr/bin/env node
// Runs every compiled test file (dist/test/*.test.js) in its own Node process,
// so a crash in one file is reported as a failure instead of ending the run,
// and sums uvu's per-file counts into the `N passed, N failed` line CI reads.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'dist', 'test');
const filter = process.argv[2];
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.test.js') && (!filter || f.includes(filter)))
  .sort();

// Files run one at a time: the machines are small and several tests start workers.
const perFileTimeoutMs = Number(process.env.RAGDIFF_TEST_TIMEOUT_MS ?? 600_000);
const stripAnsi = (s) => s.replace(/\u001b\[[0-9;]*m/g, '');

function runFile(file) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(process.execPath, [join(dir, file)], { cwd: root, env: { ...process.env, FORCE_COLOR: '0' } });
    let out = '';
    child.stdout.on('data', (d) => { out += d; process.stdout.write(d); });
    child.stderr.on('data', (d) => { out += d; process.stderr.write(d); });
    const timer = setTimeout(() => { out += `\n${file}: timed out after ${perFileTimeoutMs} ms\n`; child.kill('SIGKILL'); }, perFileTimeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const text = stripAnsi(out);
      const total = Number(/Total:\s+(\d+)/.exec(text)?.[1] ?? NaN);
      const passed = Number(/Passed:\s+(\d+)/.exec(text)?.[1] ?? NaN);
      const skipped = Number(/Skipped:\s+(\d+)/.exec(text)?.[1] ?? 0);
      resolve({ file, code, signal, total, passed, skipped, ms: Date.now() - started });
    });
  });
}

let passed = 0;
let failed = 0;
const summary = [];
for (const file of files) {
  const r = await runFile(file);
  if (Number.isNaN(r.total) || Number.isNaN(r.passed)) {
    // The file died before uvu could report (crash, timeout, load error): count it as one failure.
    failed += 1;
    summary.push(`${file}: FAILED to report (exit ${r.code ?? r.signal})`);
    continue;
  }
  const f = r.total - r.passed; // uvu's Total already leaves skipped tests out
  // uvu exits non-zero on failure; a non-zero exit with no failed test (e.g. an
  // error after the suite finished) still counts as one failure.
  const extra = f === 0 && r.code !== 0 ? 1 : 0;
  passed += r.passed;
  failed += f + extra;
  summary.push(`${file}: ${r.passed} passed, ${f + extra} failed${r.skipped ? `, ${r.skipped} skipped` : ''} (${(r.ms / 1000).toFixed(1)} s)`);
}
console.log('\n' + summary.join('\n'));
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed === 0 && files.length > 0 ? 0 : 1;
