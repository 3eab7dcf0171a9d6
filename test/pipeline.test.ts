// The generation pipeline's contract, on a tiny synthetic bundle with random
// weights (test/fixtures/pipeline/tiny-bundle, made by tools/make_test_bundle.py):
// shapes from session metadata, PNG output with parameters, determinism,
// progress, guidance branches, image-to-image, latent hooks and resume.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import sharp from 'sharp';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { MAX_PROMPT_CHARS, Pipeline, type GenerateRequest } from '../src/pipeline/index.js';
import { readPngText } from '../src/image/png-text.js';
import { repoPath, rejects, hasErrorCode } from './helpers.js';



const BUNDLE = repoPath('test/fixtures/pipeline/tiny-bundle');
let pipeline: Pipeline;

async function pixels(png: Buffer): Promise<Buffer> {
  return sharp(png).raw().toBuffer();
}
const base: GenerateRequest = { prompt: 'a red cat', seed: 7, steps: 6, guidanceScale: 4 };

test.before(async () => {
  pipeline = await Pipeline.load(BUNDLE);
});
test.after(async () => {
  await pipeline.close();
});

test('load reads shapes and types from the sessions and configs', () => {
  const i = pipeline.info;
  assert.equal(i.image, { channels: 3, height: 32, width: 32 });
  assert.equal(i.latent, { channels: 4, height: 8, width: 8 });
  assert.is(i.textLength, 16);
  assert.is(i.tokenWidth, 32);
  assert.is(i.neighbourSlots, 4);
  assert.is(i.scalingFactor, 0.5);
  assert.is(i.dtype, 'float32');
  assert.is(i.timestepType, 'int64');
  assert.ok(i.canImg2Img);
  assert.match(i.hash, /^[0-9a-f]{64}$/);
  assert.equal(i.providers, ['cpu']);
});

test('text-to-image returns PNGs of the model size carrying the parameters', async () => {
  const r = await pipeline.generate({ ...base, negativePrompt: 'blue dog', batch: 2 });
  assert.is(r.images.length, 2);
  assert.equal(r.images.map((im) => im.seed), [7, 8]);
  const meta = await sharp(r.images[0]!.png).metadata();
  assert.equal([meta.format, meta.width, meta.height, meta.channels], ['png', 32, 32, 3]);
  const text = readPngText(r.images[1]!.png);
  assert.match(text.parameters!, /^a red cat\nNegative prompt: blue dog\nSteps: 6, Sampler: DDIM, CFG scale: 4, Seed: 8, Size: 32x32, Model hash: [0-9a-f]{10}, Model: synthetic-test-bundle/);
  const json = JSON.parse(text.ragdiff!);
  assert.equal([json.prompt, json.seed, json.steps, json.sampler, json.guidanceScale, json.modelHash], ['a red cat', 8, 6, 'ddim', 4, pipeline.info.hash]);
  assert.is(r.stats.nfe, 6, 'one denoiser call per step, all branches and images batched');
  assert.is(r.stats.branches, 2);
  assert.is(r.stats.stepsRun, 6);
  assert.ok(r.stats.timings.ortMs > 0 && r.stats.timings.unetMs <= r.stats.timings.ortMs);
});

test('same inputs and seed give byte-identical PNGs; another seed does not', async () => {
  const a = await pipeline.generate(base);
  const b = await pipeline.generate(base);
  const c = await pipeline.generate({ ...base, seed: 8 });
  assert.ok(a.images[0]!.png.equals(b.images[0]!.png));
  assert.not.ok((await pixels(a.images[0]!.png)).equals(await pixels(c.images[0]!.png)));
});

test('the prompt and the guidance scale change the image', async () => {
  const a = await pixels((await pipeline.generate(base)).images[0]!.png);
  const b = await pixels((await pipeline.generate({ ...base, prompt: 'a green dog' })).images[0]!.png);
  const c = await pixels((await pipeline.generate({ ...base, guidanceScale: 1 })).images[0]!.png);
  assert.not.ok(a.equals(b));
  assert.not.ok(a.equals(c));
});

test('every sampler runs, and stochastic samplers are deterministic per seed', async () => {
  for (const sampler of ['ddim', 'euler', 'euler-ancestral', 'dpmpp-2m'] as const) {
    const a = await pipeline.generate({ ...base, sampler, steps: 4 });
    const b = await pipeline.generate({ ...base, sampler, steps: 4 });
    assert.is(a.stats.sampler, sampler);
    assert.ok(a.images[0]!.png.equals(b.images[0]!.png), sampler);
    assert.match(readPngText(a.images[0]!.png).parameters!, { ddim: 'Sampler: DDIM', euler: 'Sampler: Euler,', 'euler-ancestral': 'Sampler: Euler a', 'dpmpp-2m': 'Sampler: DPM++ 2M' }[sampler]);
  }
});

test('each image of a batch has its own noise stream: image i matches a single generation with seed + i', async () => {
  for (const sampler of ['ddim', 'euler-ancestral'] as const) {
    const batch = await pipeline.generate({ ...base, seed: 10, batch: 3, sampler });
    const single = await pipeline.generate({ ...base, seed: 12, sampler });
    const a = await pixels(batch.images[2]!.png);
    const b = await pixels(single.images[0]!.png);
    let worst = 0;
    for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
    assert.ok(worst <= 2, `${sampler}: max pixel difference ${worst}`); // batched kernels may round differently
  }
});

test('onProgress reports each stage and every denoising step in order', async () => {
  const events: string[] = [];
  await pipeline.generate({ ...base, steps: 3, batch: 2, onProgress: (e) => events.push(`${e.stage} ${e.step}/${e.total}`) });
  assert.equal(events, [
    'queued 0/0', 'encode-text 0/1', 'denoise 0/3', 'denoise 1/3', 'denoise 2/3', 'denoise 3/3',
    'decode 0/2', 'decode 1/2', 'decode 2/2', 'png 1/2', 'png 2/2',
  ]);
});

test('guidance scale 1 evaluates only the conditional branch', async () => {
  const r = await pipeline.generate({ ...base, guidanceScale: 1 });
  assert.is(r.stats.branches, 1);
  assert.is(r.stats.nfe, base.steps);
});

test('explicit guidance branches: a split of the same branch equals that branch alone', async () => {
  const steps = base.steps!;
  // Two identical conditional branches weighted 0.5 + 0.5 (not pruned) == CFG at scale 1 (one branch).
  const half = new Float32Array(steps * 2).fill(0.5);
  const split = await pipeline.generate({ ...base, guidance: { branches: [{ text: 0 }, { text: 0 }], weights: half } });
  const single = await pipeline.generate({ ...base, guidanceScale: 1 });
  assert.is(split.stats.branches, 2);
  assert.ok((await pixels(split.images[0]!.png)).equals(await pixels(single.images[0]!.png)));
  // Per-step weights of a three-branch plan, one branch always zero: pruned to two.
  const w = new Float32Array(steps * 3);
  for (let i = 0; i < steps; i++) w.set([1 - 4, 4, 0], i * 3);
  const three = await pipeline.generate({ ...base, guidance: { texts: ['a red cat', '', 'unused'], branches: [{ text: 1 }, { text: 0 }, { text: 2 }], weights: w } });
  const cfg = await pipeline.generate(base);
  assert.is(three.stats.branches, 2);
  assert.ok((await pixels(three.images[0]!.png)).equals(await pixels(cfg.images[0]!.png)));
});

test('neighbour tokens fill the slots after the text tokens and change the image', async () => {
  const { neighbourSlots, tokenWidth } = pipeline.info;
  const nb = Float32Array.from({ length: neighbourSlots * tokenWidth }, (_, i) => Math.sin(i));
  const w = new Float32Array(base.steps!).fill(1);
  const withNb = await pipeline.generate({ ...base, guidance: { branches: [{ text: 0, neighbours: nb }], weights: w } });
  const zeros = await pipeline.generate({ ...base, guidance: { branches: [{ text: 0, neighbours: null }], weights: w } });
  const cond = await pipeline.generate({ ...base, guidanceScale: 1 });
  assert.not.ok((await pixels(withNb.images[0]!.png)).equals(await pixels(zeros.images[0]!.png)));
  assert.ok((await pixels(zeros.images[0]!.png)).equals(await pixels(cond.images[0]!.png)), 'absent neighbours are zeros');
});

test('neighbour image embeddings are projected by the bundle\'s image_proj, as if the tokens were given', async () => {
  const { neighbourSlots: S, embedDim: E, tokenWidth: W } = pipeline.info;
  assert.is(E, 32);
  const embeds = Float32Array.from({ length: S * E }, (_, i) => Math.cos(i * 0.7));
  const proj = await ort.InferenceSession.create(join(BUNDLE, 'image_proj', 'model.onnx'));
  const tokens = (await proj.run({ image_embeds: new ort.Tensor('float32', embeds, [1, S, E]) })).image_prompt_embeds!.data as Float32Array;
  assert.is(tokens.length, S * W);
  const w = new Float32Array(base.steps! * 2);
  for (let i = 0; i < base.steps!; i++) w.set([-3, 4], 2 * i);
  const viaEmbeds = await pipeline.generate({ ...base, guidance: { branches: [{ text: 1 }, { text: 0, neighbourEmbeds: embeds }], weights: w } });
  const viaTokens = await pipeline.generate({ ...base, guidance: { branches: [{ text: 1 }, { text: 0, neighbours: tokens }], weights: w } });
  const plain = await pipeline.generate({ ...base, guidance: { branches: [{ text: 1 }, { text: 0 }], weights: w } });
  assert.ok((await pixels(viaEmbeds.images[0]!.png)).equals(await pixels(viaTokens.images[0]!.png)));
  assert.not.ok((await pixels(viaEmbeds.images[0]!.png)).equals(await pixels(plain.images[0]!.png)));
});

test('latent hook and resume: restarting from a captured latent reproduces the full run', async () => {
  for (const sampler of ['ddim', 'dpmpp-2m', 'euler'] as const) {
    const seen: number[] = [];
    const full = await pipeline.generate({ ...base, sampler, captureLatents: [2], onLatent: (e) => seen.push(e.step) });
    assert.equal(seen, [2]);
    assert.is(full.latents.length, 1);
    const { latent, history } = full.latents[0]!;
    assert.is(history !== null, sampler === 'dpmpp-2m', 'DPM-Solver++ hands over its history');
    const resumed = await pipeline.generate({ ...base, sampler, startFrom: { step: 3, latent, history } });
    assert.is(resumed.stats.nfe, base.steps! - 3);
    assert.ok((await pixels(resumed.images[0]!.png)).equals(await pixels(full.images[0]!.png)), sampler);
  }
});

test('image-to-image: init image resized to the model size, about steps × strength run', async () => {
  const init = await sharp({ create: { width: 50, height: 40, channels: 3, background: { r: 200, g: 30, b: 30 } } }).png().toBuffer();
  const r = await pipeline.generate({ ...base, steps: 10, initImage: init, strength: 0.5 });
  assert.is(r.stats.stepsRun, 5);
  assert.is(r.stats.nfe, 5);
  assert.equal(r.stats.initImage, { sourceWidth: 50, sourceHeight: 40, format: 'png', resized: true });
  assert.match(readPngText(r.images[0]!.png).parameters!, /Denoising strength: 0.5/);
  const again = await pipeline.generate({ ...base, steps: 10, initImage: init, strength: 0.5 });
  assert.ok(r.images[0]!.png.equals(again.images[0]!.png));
  const exact = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#123456' } }).jpeg().toBuffer();
  const e = await pipeline.generate({ ...base, initImage: exact });
  assert.equal(e.stats.initImage, { sourceWidth: 32, sourceHeight: 32, format: 'jpeg', resized: false });
});

test('bad init images are typed errors: corrupt, not an image, over the pixel limit, too few steps', async () => {
  const png = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#888' } }).png().toBuffer();
  await rejects(pipeline.generate({ ...base, initImage: png.subarray(0, 60) }), (e: unknown) => ['IMAGE_CORRUPT', 'IMAGE_UNSUPPORTED'].includes((e as { code: string }).code));
  await rejects(pipeline.generate({ ...base, initImage: Buffer.from('hello, not an image') }), hasErrorCode('IMAGE_UNSUPPORTED'));
  await rejects(pipeline.generate({ ...base, initImage: new Uint8Array(0) }), hasErrorCode('IMAGE_EMPTY'));
  await rejects(pipeline.generate({ ...base, steps: 2, initImage: png, strength: 0.2 }), hasErrorCode('OUT_OF_RANGE'));
  const small = await Pipeline.load(BUNDLE, { maxInitImagePixels: 1000 });
  try {
    await rejects(small.generate({ ...base, initImage: png }), hasErrorCode('IMAGE_TOO_LARGE'));
  } finally {
    await small.close();
  }
});

test('prompts: empty is allowed; enormous ones are truncated to the encoder length, said in stats; over MAX_PROMPT_CHARS rejected', async () => {
  const empty = await pipeline.generate({ ...base, prompt: '' });
  assert.equal(empty.stats.prompt, { tokens: 2, maxTokens: 16, truncated: false, chunks: 1 });
  const huge = 'red cat '.repeat(MAX_PROMPT_CHARS / 8); // exactly the cap: accepted
  await rejects(pipeline.generate({ ...base, prompt: huge + 'x' }), hasErrorCode('PROMPT_TOO_LONG'));
  await rejects(pipeline.generate({ ...base, negativePrompt: huge + 'x' }), hasErrorCode('PROMPT_TOO_LONG'));
  const r = await pipeline.generate({ ...base, prompt: huge });
  assert.is(r.stats.prompt.truncated, true);
  assert.is(r.stats.prompt.maxTokens, 16);
  // Truncation keeps the first 15 tokens + end-of-sequence: the same image as the first 14 words.
  const cut = await pipeline.generate({ ...base, prompt: 'red cat '.repeat(7).trim() });
  assert.ok((await pixels(r.images[0]!.png)).equals(await pixels(cut.images[0]!.png)));
});

test('bad arguments reject before anything is queued', async () => {
  await rejects(pipeline.generate({ ...base, steps: 0 }), hasErrorCode('OUT_OF_RANGE'));
  await rejects(pipeline.generate({ ...base, steps: 1001 }), hasErrorCode('OUT_OF_RANGE'));
  await rejects(pipeline.generate({ ...base, seed: 0.5 }), hasErrorCode('INVALID_VALUE'));
  // 1000 'leading' steps with steps_offset 1 would need timestep 1000: refused by the scheduler, before queueing.
  await rejects(pipeline.generate({ ...base, steps: 1000 }), (e) => e instanceof RangeError);
  await rejects(pipeline.generate({ ...base, startFrom: { step: 1, latent: new Float32Array(3) } }), hasErrorCode('LENGTH_MISMATCH'));
  await rejects(pipeline.generate({ ...base, guidance: { branches: [{ text: 0, neighbours: new Float32Array(5) }], weights: new Float32Array(6) } }), hasErrorCode('LENGTH_MISMATCH'));
  assert.is(pipeline.queueState.running + pipeline.queueState.queued, 0);
});

test('the main event loop stays responsive while images are generated', async () => {
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  await pipeline.generate({ ...base, steps: 60, batch: 4 });
  h.disable();
  // Generous bound (the figure to watch is in bench/RESULTS.md): a blocked loop would show the whole run.
  assert.ok(h.percentile(99) / 1e6 < 250, `event-loop delay p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms`);
});

test.run();
