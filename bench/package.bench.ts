/**
 * What the npm package weighs (package.json `files`): `npm pack --dry-run`,
 * the tarball and unpacked sizes and what takes the room. Writes the
 * "npm package" section of bench/RESULTS.md.
 */
import { spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineDescription, writeResultsSection } from './results.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = here.includes(join('dist', 'bench')) ? join(here, '..', '..') : join(here, '..');

const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
if (r.status !== 0) throw new Error(`npm pack failed: ${r.error?.message ?? r.stderr}`);
const pack = (JSON.parse(r.stdout) as { size: number; unpackedSize: number; entryCount: number; files: { path: string; size: number }[] }[])[0]!;
const npmVersion = spawnSync('npm', ['--version'], { encoding: 'utf8' }).stdout.trim();

const mb = (n: number) => (n >= 1e5 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(1)} kB`);
const groups = new Map<string, number>();
for (const f of pack.files) {
  const parts = f.path.split('/');
  const key =
    parts[0] === 'models' ? (parts.length > 3 ? parts.slice(0, 3).join('/') : `${parts.slice(0, 2).join('/')} (top-level files)`)
    : parts[0] === 'dist' ? parts.slice(0, 2).join('/')
    : parts.length > 1 ? parts[0]!
    : '(top level: package.json, README, build files)';
  groups.set(key, (groups.get(key) ?? 0) + f.size);
}
const rows = [...groups].sort((a, b) => b[1] - a[1]).map(([k, v]) => `| ${k} | ${mb(v)} |`);

const markdown = `
| tarball | unpacked | files |
|---|---|---|
| **${mb(pack.size)}** | ${mb(pack.unpackedSize)} | ${pack.entryCount} |

| unpacked, by part | |
|---|---|
${rows.join('\n')}

Before the \`files\` field (2026-12-08, same machine) the package also carried the tests, benchmarks, training tools, TypeScript sources and source maps: 28.3 MB tarball, 35.1 MB unpacked, 1048 files. With it, a fresh project that installed the tarball (\`npm install ragdiff-0.1.0.tgz\` with \`npm_config_nodedir=/usr ONNXRUNTIME_NODE_INSTALL=skip\`; 4 min 10 s, the addon and the two native dependencies compiled) generated with \`npx ragdiff generate\` (also with \`--policy node_modules/ragdiff/policies/default.json\`) and with \`Pipeline.load\` from a script, and served the web page with \`npx ragdiff serve\`. \`test/package-files.test.ts\` checks the file list.
`;
writeResultsSection('npm package', markdown, 'npm run bench package', `${machineDescription()}, npm ${npmVersion}`);
console.log(`npm ${npmVersion}: tarball ${mb(pack.size)}, unpacked ${mb(pack.unpackedSize)}, ${pack.entryCount} files`);
