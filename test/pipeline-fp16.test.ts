// A Stable-Diffusion-style export (test/fixtures/pipeline/sd-fp16): no ragdiff
// block, 77 tokens, int32 input_ids, float16 tensors and a float16 timestep at
// every boundary, no VAE config (default scaling factor 0.18215).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sharp from 'sharp';
import { Pipeline } from '../src/pipeline/index.js';
import { readPngText } from '../src/image/png-text.js';
import { repoPath, rejects } from './helpers.js';



let pipeline: Pipeline;
test.before(async () => {
  pipeline = await Pipeline.load(repoPath('test/fixtures/pipeline/sd-fp16'));
});
test.after(async () => {
  await pipeline.close();
});

test('SD conventions are read from the sessions: fp16, float timestep, int32 ids, 77 tokens, no neighbour slots', () => {
  const i = pipeline.info;
  assert.is(i.dtype, 'float16');
  assert.is(i.timestepType, 'float16');
  assert.is(i.idsType, 'int32');
  assert.is(i.textLength, 77);
  assert.is(i.neighbourSlots, 0);
  assert.is(i.scalingFactor, 0.18215);
  assert.equal(i.image, { channels: 3, height: 64, width: 64 });
  assert.is(i.name, 'sd-fp16');
  assert.is(i.textBatch, 1, 'text encoder exported with a fixed batch of one');
});

test('fp16 generation works, is deterministic and converts at the boundary', async () => {
  const req = { prompt: 'a yellow star', seed: 3, steps: 5, sampler: 'euler' as const };
  const a = await pipeline.generate(req);
  const b = await pipeline.generate(req);
  assert.ok(a.images[0]!.png.equals(b.images[0]!.png));
  const { data, info } = await sharp(a.images[0]!.png).raw().toBuffer({ resolveWithObject: true });
  assert.equal([info.width, info.height], [64, 64]);
  assert.ok(new Set(data).size > 4, 'not a constant image: the fp16 outputs were read back');
  assert.match(readPngText(a.images[0]!.png).parameters!, /Model: sd-fp16/);
  assert.equal(a.stats.prompt, { tokens: 5, maxTokens: 77, truncated: false, chunks: 1 });
});

test('image-to-image through an fp16 VAE encoder', async () => {
  const init = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#c03030' } }).png().toBuffer();
  const r = await pipeline.generate({ prompt: 'red heart', seed: 1, steps: 4, initImage: init, strength: 0.5 });
  assert.is(r.stats.stepsRun, 2);
  assert.is(r.stats.initImage?.resized, false);
});

test('neighbour tokens are refused when the UNet has no slots for them', async () => {
  await rejects(
    pipeline.generate({ prompt: 'x', steps: 2, guidance: { branches: [{ text: 0, neighbours: new Float32Array(4) }], weights: new Float32Array(2).fill(1) } }),
    (e: unknown) => (e as { code?: string }).code === 'UNSUPPORTED',
  );
});

test.run();
