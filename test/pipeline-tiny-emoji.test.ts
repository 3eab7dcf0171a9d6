// The embedded default bundle (models/tiny-emoji) end to end: the demo's
// prompts give images its own CLIP recognises as those prompts.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Pipeline } from '../src/pipeline/index.js';
import { DEMO_PROMPTS } from '../src/cli/generate.js';
import { clipTop1 } from '../src/pipeline/evaluate.js';
import { repoPath } from './helpers.js';

const BUNDLE = repoPath('models/tiny-emoji');
const complete = ['unet', 'vae_decoder', 'text_encoder', 'image_encoder'].every((d) => existsSync(join(BUNDLE, d, 'model.onnx')));

if (complete) {
  test('demo prompts give images the bundle\'s CLIP recognises (top-1 among the prompts)', async () => {
    const pipeline = await Pipeline.load(BUNDLE);
    const out: { png: Buffer; prompt: string }[] = [];
    try {
      assert.equal(pipeline.info.image, { channels: 3, height: 64, width: 64 });
      for (const prompt of DEMO_PROMPTS) {
        const r = await pipeline.generate({ prompt, seed: 1, batch: 2 });
        for (const im of r.images) out.push({ png: im.png, prompt });
      }
    } finally {
      await pipeline.close();
    }
    const acc = await clipTop1(BUNDLE, out, DEMO_PROMPTS);
    console.log(`tiny-emoji: CLIP top-1 over ${DEMO_PROMPTS.length} demo prompts = ${(acc * 100).toFixed(0)}% (chance ${(100 / DEMO_PROMPTS.length).toFixed(0)}%)`);
    assert.ok(acc >= 0.5, `recognised ${(acc * 100).toFixed(0)}%`);
  });
} else {
  test('an incomplete tiny-emoji bundle is a clear load error naming the missing file', async () => {
    let err: unknown;
    try {
      await Pipeline.load(BUNDLE);
    } catch (e) {
      err = e;
    }
    assert.is((err as { code?: string })?.code, 'MODEL_FILE_MISSING');
    assert.match(String((err as Error).message), /model\.onnx/);
  });
}

test.run();
