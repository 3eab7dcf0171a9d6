#!/usr/bin/env node
// Runs every compiled benchmark (dist/bench/*.bench.js), or those whose name contains argv[2].
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dir = join(root, 'dist', 'bench');
const filter = process.argv[2];
let failed = 0;
for (const f of readdirSync(dir).filter((f) => f.endsWith('.bench.js') && (!filter || f.includes(filter))).sort()) {
  console.log(`\n# ${f}`);
  const r = spawnSync(process.execPath, ['--expose-gc', join(dir, f), ...process.argv.slice(3)], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) failed++;
}
process.exitCode = failed ? 1 : 0;
