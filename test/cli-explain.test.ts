/**
 * `ragdiff explain <png>`: the parameters and references a generated PNG
 * carries, read back in a child process as a user would. Images come from
 * `ragdiff generate` with the Twemoji demo store (built once per checkout
 * into .cache/cli-test, shared with cli-rag.test).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const CACHE = repoPath('.cache/cli-test');

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
}

function ragdiff(args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: repoPath('.'), env: { ...process.env, RAGDIFF_CACHE_DIR: CACHE }, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {
        json = undefined;
      }
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr, json });
    });
  });
}

const { dir, cleanup } = tempDir('ragdiff-cli-explain-');
test.after(cleanup);

const FAST = ['--steps', '4', '--seed', '7'];

test('explain round-trip: parameters and references (stored ids and upload hashes) back from the PNG, text and --json', async () => {
  const upload = join(dir, 'yellow.png');
  writeFileSync(upload, await sharp({ create: { width: 48, height: 48, channels: 3, background: { r: 250, g: 220, b: 40 } } }).png().toBuffer());
  const out = join(dir, 'init.png');
  const g = await ragdiff(['generate', 'banana', '-o', out, '--demo-store', 'twemoji', '--mode', 'reference-init', '-k', '2', '--strength', '0.6', '--ref-image', upload, ...FAST, '--json']);
  assert.is(g.code, 0, g.stderr);
  const refs = g.json.references as any[];
  assert.is(refs.length, 2);
  for (const x of refs) assert.equal(x.usage, [{ as: 'init-latent', weight: 0.5, strength: 0.6 }]);
  const up = refs.find((x) => x.kind === 'upload');
  const stored = refs.find((x) => x.kind === 'stored');
  assert.ok(up && stored);

  const j = await ragdiff(['explain', out, '--json']);
  assert.is(j.code, 0, j.stderr);
  assert.is(j.json.parameters.prompt, 'banana');
  assert.is(j.json.parameters.seed, 7);
  assert.is(j.json.parameters.strength, 0.6);
  assert.match(j.json.parameters.modelHash, /^[0-9a-f]{64}$/);
  assert.is(j.json.retrieval.mode, 'reference-init');
  assert.equal(j.json.retrieval.referenceInit, { strength: 0.6, blend: 2 });
  const fields = (x: any) => [x.kind, x.id, x.sha256, x.name, x.source, x.licence, x.attribution, x.usage, x.pinned];
  assert.equal(j.json.references.map(fields), refs.map(fields));

  const t = await ragdiff(['explain', out]);
  assert.is(t.code, 0, t.stderr);
  assert.match(t.stdout, /prompt\s+banana/);
  assert.match(t.stdout, /retrieval: mode reference-init; k 2/);
  assert.ok(t.stdout.includes(stored.id) && t.stdout.includes(stored.name), 'the stored reference by id and name');
  assert.ok(t.stdout.includes(`upload ${up.sha256.slice(0, 16)}`), 'the upload by its hash');
  assert.ok(t.stdout.includes('yellow.png'));
  assert.match(t.stdout, /\[twemoji, CC-BY-4\.0\]/);
  assert.match(t.stdout, /\[upload, unknown\]/);
  assert.match(t.stdout, /init latent 50% @ strength 0\.6/);
});

test('explain: a PNG without provenance is NO_PROVENANCE with a non-zero exit; a plain ragdiff PNG has parameters and no references', async () => {
  const bare = join(dir, 'bare.png');
  writeFileSync(bare, await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 1, g: 2, b: 3 } } }).png().toBuffer());
  const r = await ragdiff(['explain', bare]);
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /\[NO_PROVENANCE\].*no ragdiff chunk/);
  const j = await ragdiff(['explain', bare, '--json']);
  assert.is.not(j.code, 0);
  assert.is(j.json.error.code, 'NO_PROVENANCE');
  const missing = await ragdiff(['explain', join(dir, 'nope.png'), '--json']);
  assert.is(missing.json.error.code, 'FILE_NOT_FOUND');

  const plain = join(dir, 'plain.png');
  const g = await ragdiff(['generate', 'cat face', '-o', plain, ...FAST]);
  assert.is(g.code, 0, g.stderr);
  const e = await ragdiff(['explain', plain, '--json']);
  assert.is(e.code, 0, e.stderr);
  assert.is(e.json.parameters.prompt, 'cat face');
  assert.equal(e.json.references, []);
  assert.is(e.json.retrieval, null);
});

test.run();
