/**
 * `ragdiff generate` with retrieval, run as a user would (a child process):
 * the tiny-emoji bundle with the Twemoji demo store. The store is built once
 * per checkout into .cache/cli-test (about 30 s the first time) so it does not
 * share a lock with a demo or benchmark using the default cache.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { cpSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { readProvenance } from '../src/rag/index.js';
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

const { dir, cleanup } = tempDir('ragdiff-cli-rag-');
test.after(cleanup);

const FAST = ['--steps', '4', '--seed', '7'];

test('generate --demo-store --json: the references used, in order, with provenance; the PNG carries the same', async () => {
  const out = join(dir, 'apple.png');
  const r = await ragdiff(['generate', 'red apple', '-o', out, '--demo-store', 'twemoji', '-k', '4', ...FAST, '--json']);
  assert.is(r.code, 0, r.stderr);
  const refs = r.json.references as any[];
  assert.is(refs.length, 4);
  assert.equal(refs.map((x) => x.rank), [1, 2, 3, 4]);
  for (const x of refs) {
    assert.match(x.id, /^[0-9a-f]{16}$/);
    assert.match(x.sha256, /^[0-9a-f]{64}$/);
    assert.is(x.source, 'twemoji');
    assert.is(x.licence, 'CC-BY-4.0');
    assert.match(x.attribution, /Twemoji/);
    assert.is(x.usage[0].as, 'token-slot');
    assert.ok(x.score > -1 && x.score <= 1);
  }
  // Text retrieval of "red apple" finds the apple first (the model card: top-1 0.994 over the base names).
  assert.is(refs[0].name, 'red apple');
  assert.ok(Math.abs(refs.reduce((a, x) => a + x.influence, 0) - 1) < 1e-6, 'influence sums to 1');
  assert.equal(refs.map((x) => x.usage[0].slot).sort(), [0, 1, 2, 3]);
  const st = r.json.stats.retrieval;
  assert.is(st.mode, 'tokens');
  assert.is(st.k, 4);
  assert.ok(st.totalMs >= st.searchMs && st.searchMs >= 0);
  assert.equal(r.json.files, [out]);

  const png = readFileSync(out);
  const e = readProvenance(png);
  assert.is(e.parameters.prompt, 'red apple');
  assert.is(e.provenance!.retrieval.mode, 'tokens');
  assert.equal(e.provenance!.references.map((x) => x.id), refs.map((x) => x.id));
  assert.equal(e.provenance!.references.map((x) => x.licence), refs.map((x) => x.licence));
});

test('human output lists the references; --ref pins a stored image and --ref-image adds an upload (by hash, not stored)', async () => {
  const first = await ragdiff(['generate', 'tulip', '-o', join(dir, 'probe.png'), '--demo-store', 'twemoji', '-k', '1', ...FAST, '--json']);
  assert.is(first.code, 0, first.stderr);
  const tulipId = first.json.references[0].id as string;
  const upload = join(dir, 'green.png');
  writeFileSync(upload, await sharp({ create: { width: 40, height: 40, channels: 3, background: { r: 20, g: 200, b: 40 } } }).png().toBuffer());

  const out = join(dir, 'pinned.png');
  const r = await ragdiff(['generate', 'penguin', '-o', out, '--demo-store', 'twemoji', '--ref', tulipId, '--ref-image', upload, '-k', '3', ...FAST]);
  assert.is(r.code, 0, r.stderr);
  assert.ok(r.stdout.includes(out));
  assert.match(r.stdout, /^references:$/m);
  assert.ok(r.stdout.includes(tulipId), 'the pinned id is listed');
  assert.match(r.stdout, /green\.png {2}upload [0-9a-f]{16}/, 'the upload is listed by name and hash');
  assert.match(r.stdout, /CC-BY-4\.0/);

  const refs = readProvenance(readFileSync(out)).provenance!.references;
  assert.is(refs.length, 3);
  const pinned = refs.filter((x) => x.pinned);
  assert.is(pinned.length, 2);
  assert.ok(pinned.some((x) => x.id === tulipId));
  const up = pinned.find((x) => x.kind === 'upload')!;
  assert.is(up.id, undefined);
  assert.is(up.source, 'upload');
  assert.is(up.name, 'green.png');
  assert.is(refs.filter((x) => !x.pinned).length, 1, 'k − pinned retrieved');
});

test('retrieve-only: a stored image that answers the query is written as <output>-retrieved.png, nothing generated', async () => {
  const out = join(dir, 'answer.png');
  const r = await ragdiff(['generate', 'red apple', '-o', out, '--demo-store', 'twemoji', '--retrieve-only-above', '0.5', ...FAST, '--json']);
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.json.files, []);
  assert.not.ok(existsSync(out));
  assert.is(r.json.retrieved.reference.name, 'red apple');
  assert.equal(r.json.retrieved.reference.usage, [{ as: 'retrieved-answer' }]);
  const file = join(dir, 'answer-retrieved.png');
  assert.is(r.json.retrieved.file, file);
  assert.is((await sharp(readFileSync(file)).metadata()).format, 'png');
  const e = readProvenance(readFileSync(file));
  assert.is(e.provenance!.references[0]!.id, r.json.retrieved.reference.id);
});

test('bad input: typed errors with their codes, non-zero exit, no output written', async () => {
  const out = join(dir, 'bad.png');
  const run = (...args: string[]) => ragdiff(['generate', 'red apple', '-o', out, ...FAST, '--json', ...args]);

  const unknown = await run('--demo-store', 'twemoji', '--ref', 'ffffffffffffffff');
  assert.is.not(unknown.code, 0);
  assert.is(unknown.json.error.code, 'REFERENCE_NOT_FOUND');
  assert.match(unknown.json.error.message, /ffffffffffffffff/);
  assert.match(unknown.stderr, /\[REFERENCE_NOT_FOUND\]/);

  const notImage = join(dir, 'notes.png');
  writeFileSync(notImage, 'this is text, not an image');
  const upload = await run('--demo-store', 'twemoji', '--ref-image', notImage);
  assert.is.not(upload.code, 0);
  assert.is(upload.json.error.code, 'IMAGE_UNSUPPORTED');
  const noFile = await run('--demo-store', 'twemoji', '--ref-image', join(dir, 'absent.png'));
  assert.is.not(noFile.code, 0);
  assert.is(noFile.json.error.code, 'FILE_NOT_FOUND');

  const k = await run('--demo-store', 'twemoji', '-k', '9');
  assert.is.not(k.code, 0);
  assert.is(k.json.error.name, 'RangeError');
  assert.is(k.json.error.code, 'OUT_OF_RANGE');
  assert.match(k.json.error.message, /k must be in 1\.\.4/);

  const noStore = await run('-k', '2', '--mode', 'tokens');
  assert.is.not(noStore.code, 0);
  assert.is(noStore.json.error.code, 'INVALID_ARGUMENT');
  assert.match(noStore.json.error.message, /-k, --mode need a store/);

  const both = await run('--demo-store', 'twemoji', '--store', dir);
  assert.is(both.json.error.code, 'INVALID_ARGUMENT');

  const noSuchStore = await run('--store', join(dir, 'no-store'));
  assert.is(noSuchStore.json.error.code, 'STORE_NOT_FOUND');

  const onOff = await run('--demo-store', 'twemoji', '--no-attention', '--attention-branches', 'retrieval');
  assert.is(onOff.json.error.code, 'INVALID_ARGUMENT');
  assert.match(onOff.json.error.message, /--attention-branches .* --no-attention/);
  const branches = await run('--demo-store', 'twemoji', '--attention-branches', 'all');
  assert.is.not(branches.code, 0);
  assert.match(branches.stderr, /attention-branches must be one of prompt, retrieval/);

  const bogus = await ragdiff(['generate', 'x', '-o', out, '--demo-store', 'twemoji', '--mode', 'telepathy']);
  assert.is.not(bogus.code, 0);
  assert.match(bogus.stderr, /mode must be one of tokens, mixture, interleaved, reference-init/);

  assert.not.ok(existsSync(out));
});

test('a mode the bundle cannot run is UNSUPPORTED (naming the modes it supports); a store of another encoder is ENCODER_MISMATCH', async () => {
  // The synthetic bundle without its VAE encoder: token modes only (its image_proj is 32 wide, the demo store 128).
  const bundle = join(dir, 'no-vae-encoder');
  cpSync(repoPath('test/fixtures/pipeline/tiny-bundle'), bundle, { recursive: true });
  rmSync(join(bundle, 'vae_encoder'), { recursive: true });
  const out = join(dir, 'unsupported.png');
  const r = await ragdiff(['generate', 'red apple', '-o', out, '-m', bundle, '--demo-store', 'twemoji', '--mode', 'reference-init', ...FAST, '--json']);
  assert.is.not(r.code, 0);
  assert.is(r.json.error.code, 'UNSUPPORTED');
  assert.match(r.json.error.message, /reference-init.*supports: tokens, mixture, interleaved/);

  const m = await ragdiff(['generate', 'red apple', '-o', out, '-m', bundle, '--demo-store', 'twemoji', '--mode', 'tokens', ...FAST, '--json']);
  assert.is.not(m.code, 0);
  assert.is(m.json.error.code, 'ENCODER_MISMATCH');
  assert.not.ok(existsSync(out));
});

test('plain image-to-image (--init-image, --strength) works without a store; with a store, --strength is the reference-init strength', async () => {
  const init = join(dir, 'init-source.png');
  writeFileSync(init, await sharp({ create: { width: 64, height: 64, channels: 3, background: { r: 250, g: 200, b: 0 } } }).png().toBuffer());
  const out = join(dir, 'img2img.png');
  const r = await ragdiff(['generate', 'sun', '-o', out, '--init-image', init, '--strength', '0.5', ...FAST, '--json']);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.json.parameters.strength, 0.5);
  assert.equal(r.json.references, []);

  const t = await ragdiff(['generate', 'sun', '-o', join(dir, 'tok-init.png'), '--demo-store', 'twemoji', '--mode', 'tokens', '-k', '2', '--strength', '0.8', ...FAST, '--json']);
  assert.is(t.code, 0, t.stderr);
  const usage = t.json.references[0].usage.map((u: any) => u.as);
  assert.equal(usage.slice(0, 2), ['token-slot', 'init-latent'], 'tokens mode plus the reference-init start (and the bundle default reference attention)');
  assert.is(t.json.references[0].usage[1].strength, 0.8);
});

test('demo: held-out concepts without and with retrieval, the references used as thumbnails with names and licences', async () => {
  const out = join(dir, 'demo');
  const r = await ragdiff(['demo', '--out', out, '--seeds', '1', '--steps', '2', '-p', 'cat face', '--held-out', 'red apple']);
  assert.is(r.code, 0, r.stderr);
  const d = join(out, 'demo');
  for (const arm of ['plain', 'tokens', 'reference-init']) assert.ok(existsSync(join(d, `heldout-01-red-apple-${arm}-seed1.png`)), arm);
  assert.ok(existsSync(join(d, 'retrieval-grid.png')));
  const html = readFileSync(join(d, 'index.html'), 'utf8');
  assert.match(html, /<h2>Retrieval on held-out concepts<\/h2>/);
  assert.match(html, /no retrieval \(CFG 3\)/);
  assert.match(html, /retrieval: tokens/);
  assert.match(html, /retrieval: reference-init/);
  // The apple retrieved for itself: its thumbnail is written and shown with its name and licence.
  const thumbs = [...html.matchAll(/<img class="ref" src="(ref-[0-9a-f]{16}\.png)" alt="([^"]*)">/g)];
  assert.ok(thumbs.length >= 5, `4 tokens references + 1 reference-init, got ${thumbs.length}`);
  assert.ok(thumbs.some((m) => m[2] === 'red apple'));
  for (const m of thumbs) assert.ok(existsSync(join(d, m[1]!)), m[1]);
  assert.match(html, /CC-BY-4\.0 · twemoji · score/);
  assert.match(html, /Twemoji © Twitter/);
  assert.match(r.stdout, /red apple — retrieval: tokens .*references: red apple/);

  // A bundle without its own CLIP encoders skips the section and says why.
  const plain = await ragdiff(['demo', '--out', join(dir, 'demo-synthetic'), '-m', repoPath('test/fixtures/pipeline/tiny-bundle'), '--seeds', '1', '--steps', '1', '-p', 'x']);
  assert.is(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /retrieval section skipped: the bundle has no CLIP encoders/);
  assert.match(readFileSync(join(dir, 'demo-synthetic', 'demo', 'index.html'), 'utf8'), /Retrieval section skipped/);
});

test.run();
