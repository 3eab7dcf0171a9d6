// SDXL's second prompt, and prompt truncation, as the CLI (`--prompt-2`, `--negative-prompt-2`,
// `--truncate-prompt`) and the HTTP API (`prompt_2`, `negative_prompt_2`, `truncate_prompt`)
// expose them, on the SD fixtures (test/fixtures/sd): prompt_2 reaches SDXL's second encoder,
// a one-encoder model refuses it by name, and truncation turns a long prompt's windows into one.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { RagPipeline } from '../src/rag/index.js';
import { createServer, type RagServer } from '../src/server/index.js';
import { loadClipEncoders } from '../src/store/index.js';
import type { GenerateRequest } from '../src/pipeline/index.js';
import { buildSmallStore } from './fixtures/server/small-store.js';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const SDXL = repoPath('test/fixtures/sd/sdxl');
const SD15 = repoPath('test/fixtures/sd/sd15');
// > 77 CLIP tokens: two windows when chunked.
const LONG = Array.from({ length: 50 }, (_, i) => `red${i % 7} cat`).join(' ');

function ragdiff(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args], { cwd: repoPath('.') }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const { dir, cleanup } = tempDir();
let xlRag: RagPipeline | undefined;
let sdRag: RagPipeline | undefined;
let xl: RagServer | undefined;
let sd: RagServer | undefined;
let xlBase = '';
let sdBase = '';

test.before(async () => {
  xlRag = await RagPipeline.load(SDXL);
  sdRag = await RagPipeline.load(SD15);
  xl = await createServer({ rag: xlRag });
  sd = await createServer({ rag: sdRag });
  xlBase = await xl.listen();
  sdBase = await sd.listen();
});
test.after(async () => {
  await xl?.close();
  await sd?.close();
  await xlRag?.close();
  await sdRag?.close();
  cleanup();
});

const COMMON = ['--seed', '3', '--steps', '2', '--guidance', '5'];
// Pixels, not PNG bytes: the PNG's text chunks record the prompts.
const pixels = (png: Buffer) => sharp(png).raw().toBuffer();

test('CLI: --prompt-2 reaches SDXL\'s second encoder (the image changes); --negative-prompt-2 too', async () => {
  const outs = ['same', 'p2', 'np2'].map((n) => join(dir, `xl-${n}.png`));
  const base = await ragdiff(['generate', 'a red cat', '-o', outs[0]!, '-m', SDXL, ...COMMON]);
  assert.is(base.code, 0, base.stderr);
  const p2 = await ragdiff(['generate', 'a red cat', '-o', outs[1]!, '-m', SDXL, ...COMMON, '--prompt-2', 'a blue dog']);
  assert.is(p2.code, 0, p2.stderr);
  const np2 = await ragdiff(['generate', 'a red cat', '-o', outs[2]!, '-m', SDXL, ...COMMON, '-n', 'green', '--negative-prompt-2', 'a blue dog']);
  const n = await ragdiff(['generate', 'a red cat', '-o', join(dir, 'xl-n.png'), '-m', SDXL, ...COMMON, '-n', 'green']);
  assert.is(n.code, 0, n.stderr);
  assert.is(np2.code, 0, np2.stderr);
  const [a, b, c, d] = await Promise.all([...outs, join(dir, 'xl-n.png')].map((p) => pixels(readFileSync(p))));
  assert.not.ok(a!.equals(b!), '--prompt-2 changed nothing');
  // (As in diffusers, a second negative prompt needs a first one: without it SDXL's unconditional branch is zeros.)
  assert.not.ok(d!.equals(c!), '--negative-prompt-2 changed nothing');
});

test('CLI: --prompt-2 on a one-encoder model is a typed error naming it; --negative and --negative-prompt conflict', async () => {
  const r = await ragdiff(['generate', 'a red cat', '-o', join(dir, 'sd-p2.png'), '-m', SD15, ...COMMON, '--prompt-2', 'a blue dog', '--json']);
  assert.is(r.code, 1);
  const e = JSON.parse(r.stdout) as { error: { code: string; message: string } };
  assert.is(e.error.code, 'INVALID_VALUE');
  assert.match(e.error.message, /prompt2 applies to SDXL/);
  const both = await ragdiff(['generate', 'x', '-o', join(dir, 'both.png'), '-m', SD15, '-n', 'a', '--negative-prompt', 'b']);
  assert.is(both.code, 1);
  assert.match(both.stderr, /\[INVALID_ARGUMENT\].*--negative-prompt/);
});

test('CLI: --negative-prompt is --negative', async () => {
  const a = join(dir, 'neg-a.png');
  const b = join(dir, 'neg-b.png');
  assert.is((await ragdiff(['generate', 'a red cat', '-o', a, '-m', SD15, ...COMMON, '-n', 'blue'])).code, 0);
  assert.is((await ragdiff(['generate', 'a red cat', '-o', b, '-m', SD15, ...COMMON, '--negative-prompt', 'blue'])).code, 0);
  assert.ok((await pixels(readFileSync(a))).equals(await pixels(readFileSync(b))));
});

test('CLI: --truncate-prompt encodes a > 77-token prompt in one window', async () => {
  const chunked = await ragdiff(['generate', LONG, '-o', join(dir, 'long-a.png'), '-m', SD15, ...COMMON, '--json']);
  assert.is(chunked.code, 0, chunked.stderr);
  const cut = await ragdiff(['generate', LONG, '-o', join(dir, 'long-b.png'), '-m', SD15, ...COMMON, '--json', '--truncate-prompt']);
  assert.is(cut.code, 0, cut.stderr);
  const stats = (r: { stdout: string }) => (JSON.parse(r.stdout) as { stats: { prompt: { chunks: number; truncated: boolean } } }).stats.prompt;
  assert.ok(stats(chunked).chunks > 1, `chunked: ${JSON.stringify(stats(chunked))}`);
  assert.is(stats(cut).chunks, 1);
  assert.is(stats(cut).truncated, true);
});

const post = (base: string, body: unknown) => fetch(`${base}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
async function image(base: string, body: Record<string, unknown>): Promise<Buffer> {
  const res = await post(base, { seed: 3, steps: 2, guidance_scale: 5, ...body });
  const text = await res.text();
  assert.is(res.status, 200, text);
  return pixels(Buffer.from((JSON.parse(text) as { data: { b64_json: string }[] }).data[0]!.b64_json, 'base64'));
}
async function error(res: Response): Promise<{ status: number; code: string; message: string }> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  return { status: res.status, ...body.error };
}

test('HTTP: prompt_2 and negative_prompt_2 change an SDXL image; the same body repeats exactly', async () => {
  const plain = await image(xlBase, { prompt: 'a red cat' });
  assert.ok(plain.equals(await image(xlBase, { prompt: 'a red cat' })), 'not deterministic');
  assert.not.ok(plain.equals(await image(xlBase, { prompt: 'a red cat', prompt_2: 'a blue dog' })), 'prompt_2 changed nothing');
  const neg = await image(xlBase, { prompt: 'a red cat', negative_prompt: 'green' });
  assert.not.ok(neg.equals(await image(xlBase, { prompt: 'a red cat', negative_prompt: 'green', negative_prompt_2: 'a blue dog' })), 'negative_prompt_2 changed nothing');
});

test('HTTP: prompt_2 on a one-encoder model is 400 INVALID_VALUE; bad types are refused by the schema', async () => {
  const e = await error(await post(sdBase, { prompt: 'a red cat', steps: 2, prompt_2: 'a blue dog' }));
  assert.is(e.status, 400);
  assert.is(e.code, 'INVALID_VALUE');
  assert.match(e.message, /prompt2 applies to SDXL/);
  const t = await error(await post(sdBase, { prompt: 'a red cat', truncate_prompt: 'yes' }));
  assert.is(t.status, 400);
  assert.match(t.message, /truncate_prompt/);
  const p = await error(await post(xlBase, { prompt: 'a red cat', prompt_2: 7 }));
  assert.is(p.status, 400);
  assert.match(p.message, /prompt_2/);
});

test('HTTP: truncate_prompt on a > 77-token prompt changes the image (one window instead of two)', async () => {
  const chunked = await image(sdBase, { prompt: LONG });
  const cut = await image(sdBase, { prompt: LONG, truncate_prompt: true });
  assert.not.ok(chunked.equals(cut), 'truncate_prompt changed nothing');
  assert.ok(cut.equals(await image(sdBase, { prompt: LONG.split(' ').slice(0, 60).join(' '), truncate_prompt: true })), 'only the first window counts');
});

test('RagPipeline: a reflective draft is encoded with the request\'s prompt options too', async () => {
  const enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  const store = await buildSmallStore(join(dir, 'store'), enc);
  const seen: GenerateRequest[] = [];
  const p = sdRag!.pipeline;
  const original = p.generate.bind(p);
  p.generate = ((req: GenerateRequest) => { seen.push(req); return original(req); }) as typeof p.generate;
  try {
    await sdRag!.generate({ prompt: LONG, seed: 1, steps: 4, sampler: 'ddim', truncatePrompt: true, retrieval: { store, k: 2, reflective: { lambda: 0.5, draftSteps: 1, candidates: 4 } } });
  } finally {
    p.generate = original;
    await store.close();
    await enc.close();
  }
  assert.is(seen.length, 2, 'a draft, then the generation');
  assert.ok(seen.every((r) => r.truncatePrompt === true), JSON.stringify(seen.map((r) => r.truncatePrompt)));
});

test.run();
