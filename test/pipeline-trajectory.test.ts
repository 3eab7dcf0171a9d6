// Trajectory retrieval through the pipeline on the tiny-emoji bundle: a base
// built with buildKnowledgeBase; a query that is itself in the base jumps onto
// its own trajectory and reproduces full sampling; beyond maxDistance the
// sampler continues untouched (bit-identical to full sampling); the stats count
// denoiser calls made and saved; bad requests are typed errors naming the field.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Pipeline } from '../src/pipeline/index.js';
import { buildKnowledgeBase } from '../src/trajectory/build.js';
import { KnowledgeBase } from '../src/trajectory/kb-file.js';
import { repoPath, tempDir } from './helpers.js';

const BUNDLE = repoPath('models/tiny-emoji');
const complete = ['unet', 'vae_decoder', 'text_encoder'].every((d) => existsSync(join(BUNDLE, d, 'model.onnx')));

async function pixels(png: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await sharp(png).removeAlpha().raw().toBuffer());
}
function maxDiff(a: Uint8Array, b: Uint8Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}
async function rejectsWith(p: Promise<unknown>): Promise<{ code?: string; field?: string }> {
  try {
    await p;
  } catch (e) {
    return e as { code?: string; field?: string };
  }
  return { code: 'no error' };
}

if (complete) {
  test('build a base, jump along it, fall back beyond maxDistance, and refuse mismatches', async () => {
    const { dir, cleanup } = tempDir();
    const pipeline = await Pipeline.load(BUNDLE, { concurrency: 1 });
    try {
      const kbPath = join(dir, 'kb');
      const common = { steps: 10, guidanceScale: 5, sampler: 'dpmpp-2m' as const };
      const built = await buildKnowledgeBase(pipeline, { prompts: ['cat face', 'red heart', 'car'], seeds: 2, out: kbPath, keyStep: 2, valueSteps: [5, 7], chunkSize: 4, ...common });
      assert.is(built.count, 6);
      const kb = KnowledgeBase.open(kbPath);
      assert.is(kb.chunks.length, 2);
      assert.is(kb.header.history, true);
      kb.close();

      // In the base (prompt 'red heart', seed 1): the query is a stored key; the jump lands on its own trajectory.
      const full = await pipeline.generate({ prompt: 'red heart', seed: 1, ...common });
      const jumped = await pipeline.generate({ prompt: 'red heart', seed: 1, ...common, trajectory: { kb: kbPath, k: 3 } });
      const t = jumped.stats.trajectory!;
      assert.ok(t.jumped);
      assert.is(t.keyStep, 2);
      assert.is(t.valueStep, 5);
      assert.is(t.denoiserCalls, 2 + (10 - 5));
      assert.is(t.denoiserCallsSaved, 3);
      assert.is(jumped.stats.nfe, 7);
      assert.ok(t.distance[0]! < 1e-3, `distance to itself ${t.distance[0]}`);
      assert.ok(Math.abs(t.neighbours[0]![0]!.weight - 1) < 1e-3);
      const d = maxDiff(await pixels(full.images[0]!.png), await pixels(jumped.images[0]!.png));
      assert.ok(d <= 2, `jumping onto its own trajectory (with DPM-Solver++ history) reproduces full sampling: max pixel diff ${d}`);

      // A seed not in the base, maxDistance 0: no jump, and exactly full sampling.
      const fullNew = await pipeline.generate({ prompt: 'cat face', seed: 77, ...common });
      const fallback = await pipeline.generate({ prompt: 'cat face', seed: 77, ...common, trajectory: { kb: kbPath, maxDistance: 0 } });
      const f = fallback.stats.trajectory!;
      assert.is(f.jumped, false);
      assert.match(f.fallback!, /beyond maxDistance/);
      assert.is(f.denoiserCalls, 10);
      assert.is(f.denoiserCallsSaved, 0);
      assert.equal(await pixels(fallback.images[0]!.png), await pixels(fullNew.images[0]!.png));
      // Later value step, batch of two.
      const later = await pipeline.generate({ prompt: 'cat face', seed: 77, batch: 2, ...common, trajectory: { kb: kbPath, valueStep: 7, k: 2 } });
      assert.is(later.stats.trajectory!.denoiserCalls, 2 + 3);
      assert.is(later.stats.trajectory!.distance.length, 2);

      // The approximate path (IVF lists in the worker), and a base read a window at a time when its keys exceed the
      // worker's memory limit (a second pipeline whose workers see RAGDIFF_KB_MEMORY_BYTES=1): same jump either way.
      const ivf = await pipeline.generate({ prompt: 'red heart', seed: 1, ...common, trajectory: { kb: kbPath, k: 3, nlist: 2, nprobe: 2 } });
      assert.is(ivf.stats.trajectory!.search, 'ivf');
      assert.equal(ivf.stats.trajectory!.neighbours, t.neighbours);
      process.env.RAGDIFF_KB_MEMORY_BYTES = '1';
      const streaming = await Pipeline.load(BUNDLE, { concurrency: 1 });
      delete process.env.RAGDIFF_KB_MEMORY_BYTES;
      try {
        const st = await streaming.generate({ prompt: 'red heart', seed: 1, ...common, trajectory: { kb: kbPath, k: 3 } });
        assert.equal(st.stats.trajectory!.neighbours, t.neighbours);
        assert.equal(await pixels(st.images[0]!.png), await pixels(jumped.images[0]!.png));
      } finally {
        await streaming.close();
      }

      // Stylisation: the style prompt takes over at the value step; before it, the same CFG as the base.
      const styled = await pipeline.generate({ prompt: 'red heart', seed: 1, ...common, trajectory: { kb: kbPath, k: 3, prompt: 'car' } });
      assert.is(styled.stats.branches, 3);
      assert.equal(styled.stats.trajectory!.neighbours, t.neighbours, 'the same query: identical steps before the jump');
      assert.ok(maxDiff(await pixels(styled.images[0]!.png), await pixels(jumped.images[0]!.png)) > 20, 'the style prompt changes the image');
      assert.is((await rejectsWith(pipeline.generate({ prompt: 'x', ...common, trajectory: { kb: kbPath, prompt: 3 as never } }))).code, 'INVALID_TYPE');

      // Bad requests: typed, before anything runs.
      const cases: [Record<string, unknown>, string, string?][] = [
        [{ ...common, steps: 12 }, 'KB_MISMATCH', 'steps'],
        [{ ...common, guidanceScale: 7 }, 'KB_MISMATCH', 'guidance.scale'],
        [{ ...common, sampler: 'ddim' }, 'KB_MISMATCH', 'sampler'],
        [{ ...common, negativePrompt: 'blurry' }, 'KB_MISMATCH', 'guidance.negativePrompt'],
      ];
      for (const [req, code, field] of cases) {
        const e = await rejectsWith(pipeline.generate({ prompt: 'cat face', seed: 3, ...req, trajectory: { kb: kbPath } }));
        assert.is(e.code, code, JSON.stringify(req));
        assert.is(e.field, field);
      }
      const bad: [Record<string, unknown>, string][] = [
        [{ keyStep: 5, valueStep: 5 }, 'INVALID_VALUE'],
        [{ keyStep: 6, valueStep: 5 }, 'INVALID_VALUE'],
        [{ keyStep: 3 }, 'KB_MISMATCH'],
        [{ valueStep: 6 }, 'KB_MISMATCH'],
        [{ valueStep: 10 }, 'OUT_OF_RANGE'],
        [{ k: 7 }, 'K_TOO_LARGE'],
        [{ maxDistance: -1 }, 'OUT_OF_RANGE'],
        [{ nope: 1 }, 'UNKNOWN_OPTION'],
      ];
      for (const [tr, code] of bad) {
        const e = await rejectsWith(pipeline.generate({ prompt: 'cat face', seed: 3, ...common, trajectory: { kb: kbPath, ...tr } as never }));
        assert.is(e.code, code, JSON.stringify(tr));
      }
      const notKb = join(dir, 'not-a-kb');
      writeFileSync(notKb, 'hello');
      assert.is((await rejectsWith(pipeline.generate({ prompt: 'x', ...common, trajectory: { kb: notKb } }))).code, 'KB_NOT_A_BASE');
      assert.is((await rejectsWith(pipeline.generate({ prompt: 'x', ...common, trajectory: { kb: kbPath }, startFrom: { step: 1, latent: new Float32Array(1024) } }))).code, 'INVALID_VALUE');
    } finally {
      await pipeline.close();
      cleanup();
    }
  });

  test('PNDM and LCM sample through the pipeline: one model call per timestep (PNDM: N + 9 with its Runge-Kutta warm-up)', async () => {
    const pipeline = await Pipeline.load(BUNDLE);
    try {
      const r = await pipeline.generate({ prompt: 'cat face', seed: 1, steps: 10, sampler: 'pndm' });
      // tiny-emoji's config has no skip_prk_steps: diffusers' default (false) runs the Runge-Kutta warm-up
      assert.is(r.stats.nfe, 10 - 3 + 12);
      assert.is(r.images.length, 1);
      const l = await pipeline.generate({ prompt: 'cat face', seed: 1, steps: 4, sampler: 'lcm' });
      assert.is(l.stats.nfe, 4);
    } finally {
      await pipeline.close();
    }
  });
}

test.run();
