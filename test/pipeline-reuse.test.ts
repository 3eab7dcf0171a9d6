// A ModelRunner builds one scheduler per (sampler, karras) and reuses it for later
// jobs (instead of one per request): a job gives the same bytes whatever ran before
// it on the runner, as on a fresh runner. Guards the reuse: setTimesteps must reset
// the step index and the DPM-Solver++ history.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readBundle } from '../src/pipeline/bundle.js';
import { cfgPlan } from '../src/pipeline/guidance.js';
import { ModelRunner, type Job } from '../src/pipeline/runner.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import type { SamplerName } from '../src/scheduler/index.js';
import { repoPath } from './helpers.js';

const manifest = readBundle(repoPath('test/fixtures/pipeline/tiny-bundle'));

async function jobFor(runner: ModelRunner, sampler: SamplerName, seed: number, karras?: boolean): Promise<Job> {
  const tok = loadTokenizer(manifest.files.tokenizerDir, { maxLength: runner.info.textLength });
  const steps = 4;
  return { texts: [tok.encode('a red cat').ids, tok.encode('').ids], plan: cfgPlan(5, steps), steps, sampler, seeds: [seed, seed + 1], ...(karras !== undefined ? { karras } : {}) };
}

test('a job gives the same PNG bytes after other jobs on the same runner as on a fresh one', async () => {
  const fresh = await ModelRunner.open(manifest, { threads: 1 });
  const expected = (await fresh.run(await jobFor(fresh, 'dpmpp-2m', 11))).images.map((b) => Buffer.from(b));
  const expectedEuler = (await fresh.run(await jobFor(fresh, 'euler', 5, true))).images.map((b) => Buffer.from(b));
  await fresh.close();

  const used = await ModelRunner.open(manifest, { threads: 1 });
  try {
    for (const s of ['euler-ancestral', 'dpmpp-2m', 'ddim', 'euler'] as const) await used.run(await jobFor(used, s, 3));
    await used.run(await jobFor(used, 'euler', 5, false));
    const again = (await used.run(await jobFor(used, 'dpmpp-2m', 11))).images;
    again.forEach((png, i) => assert.ok(Buffer.from(png).equals(expected[i]!), `image ${i}: dpmpp-2m after other jobs`));
    const euler = (await used.run(await jobFor(used, 'euler', 5, true))).images;
    euler.forEach((png, i) => assert.ok(Buffer.from(png).equals(expectedEuler[i]!), `image ${i}: euler karras`));
  } finally {
    await used.close();
  }
});

test.run();
