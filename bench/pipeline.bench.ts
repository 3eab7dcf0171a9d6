/**
 * Generation pipeline benchmark (issue 4): images per second and per-stage time
 * for the default bundle at its native size, the orchestration overhead
 * (generate() wall time / time inside ONNX Runtime runs; target ≤ 1.03), the
 * main thread's event-loop delay while images are generated, abort latency,
 * and the alternative a user would otherwise write: the same models run on
 * the main thread (no worker).
 *
 *   npm run bench pipeline                # models/tiny-emoji (or the synthetic bundle if its UNet is missing)
 *   npm run bench pipeline -- <bundle-dir> [--quick]
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Bench } from 'tinybench';
import { Pipeline, type GenerateResult } from '../src/pipeline/index.js';
import { readBundle } from '../src/pipeline/bundle.js';
import { ModelRunner, type Job } from '../src/pipeline/runner.js';
import { cfgPlan } from '../src/pipeline/guidance.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { clipTop1 } from '../src/pipeline/evaluate.js';
import { writeResultsSection } from './results.js';
import { DEMO_PROMPTS } from '../src/cli/generate.js';

const root = join(import.meta.dirname, '..', '..');
const args = process.argv.slice(2);
const quick = args.includes('--quick');
const dirArg = args.find((a) => !a.startsWith('--'));
const tiny = join(root, 'models', 'tiny-emoji');
const bundle = dirArg ?? (existsSync(join(tiny, 'unet', 'model.onnx')) ? tiny : join(root, 'test', 'fixtures', 'pipeline', 'tiny-bundle'));
const STEPS = 25;
const GUIDANCE = 7.5;
const PROMPTS = DEMO_PROMPTS;
/** A broader, fixed set of emoji names (the sweep the demo prompts were picked from). */
const BROAD = ['grinning face', 'red heart', 'heart', 'rocket', 'ghost', 'cat face', 'fire', 'thumbsup', 'sunny', 'star', 'pizza', 'dog face',
  'snowman', 'rainbow', 'crescent moon', 'car', 'house', 'christmas tree', 'soccer ball', 'umbrella', 'alarm clock', 'crying face',
  'sunglasses', 'pile of poo', 'skull', 'jack o lantern', 'birthday cake', 'sparkles', 'panda face', 'robot face', 'hamburger', 'crown',
  'smiling face with heart eyes', 'face with tears of joy', 'see no evil monkey', 'unicorn face', 'frog face', 'pig face', 'green heart',
  'blue heart', 'sun with face', 'cloud', 'snowflake', 'globe', 'earth globe europe africa'];

const ms = (h: IntervalHistogram, p: number) => h.percentile(p) / 1e6;
const f1 = (x: number) => x.toFixed(1);
const f2 = (x: number) => x.toFixed(2);
const f3 = (x: number) => x.toFixed(3);
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

function stageRow(label: string, rs: GenerateResult[], images: number): string {
  const t = (k: keyof GenerateResult['stats']['timings']) => mean(rs.map((r) => r.stats.timings[k]));
  const ratio = mean(rs.map((r) => r.stats.timings.wallMs / r.stats.timings.ortMs));
  const workerRatio = mean(rs.map((r) => r.stats.timings.totalMs / r.stats.timings.ortMs));
  return `| ${label} | ${f2((1000 * images) / t('wallMs'))} | ${f1(t('wallMs'))} | ${f1(t('textEncodeMs'))} | ${f1(t('unetMs'))} (${f2(t('unetMs') / STEPS)}/call) | ${f2(t('samplerMs'))} | ${f1(t('vaeDecodeMs'))} | ${f2(t('toRgbMs'))} | ${f1(t('pngMs'))} | ${f2(t('prepareMs') + t('queueMs'))} | **${f3(ratio)}** | ${f3(workerRatio)} |`;
}

async function main(): Promise<void> {
  console.log(`bundle: ${bundle}`);
  let t0 = performance.now();
  const pipeline = await Pipeline.load(bundle);
  const loadMs = performance.now() - t0;
  const { info } = pipeline;
  console.log(`loaded in ${f1(loadMs)} ms: ${info.name} ${info.image.width}×${info.image.height}, latent ${info.latent.channels}×${info.latent.height}×${info.latent.width}, ${info.dtype}`);
  for (let i = 0; i < 2; i++) await pipeline.generate({ prompt: PROMPTS[i]!, seed: i, steps: STEPS, guidanceScale: GUIDANCE });

  // 1. Sequential generations, batch 1 and 4: throughput, stages, overhead, event-loop delay.
  const rows: string[] = [];
  const loopRows: string[] = [];
  for (const batch of [1, 4]) {
    const results: GenerateResult[] = [];
    const h = monitorEventLoopDelay({ resolution: 1 });
    let n = 0;
    const bench = new Bench({ iterations: quick ? 3 : batch === 1 ? 16 : 6, time: 0, warmup: false });
    bench.add(`generate batch ${batch}`, async () => {
      results.push(await pipeline.generate({ prompt: PROMPTS[n % PROMPTS.length]!, seed: n++, batch, steps: STEPS, guidanceScale: GUIDANCE }));
    }, { beforeAll: () => { h.enable(); }, afterAll: () => { h.disable(); } });
    await bench.run();
    rows.push(stageRow(`batch ${batch}`, results, batch));
    loopRows.push(`| sequential generate(), batch ${batch} (worker) | ${results.length} | ${f1(ms(h, 50))} | ${f1(ms(h, 99))} | ${f1(h.max / 1e6)} |`);
    console.log(rows[rows.length - 1]);
  }

  // 2. A burst: 8 generations submitted at once (queued behind one worker).
  {
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    t0 = performance.now();
    const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => pipeline.generate({ prompt: PROMPTS[i % PROMPTS.length]!, seed: 100 + i, steps: STEPS, guidanceScale: GUIDANCE })));
    const wall = performance.now() - t0;
    h.disable();
    loopRows.push(`| burst of 8 concurrent generate() calls (worker, queued) | ${burst.length} | ${f1(ms(h, 50))} | ${f1(ms(h, 99))} | ${f1(h.max / 1e6)} |`);
    loopRows.push(`| ↳ burst throughput: ${f2((1000 * burst.length) / wall)} images/s | | | | |`);
  }

  // 2b. The same burst on two workers (each with its own sessions; intra-op threads split between them).
  {
    const two = await Pipeline.load(bundle, { concurrency: 2 });
    await Promise.all([0, 1].map((i) => two.generate({ prompt: PROMPTS[i]!, seed: i, steps: STEPS, guidanceScale: GUIDANCE })));
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    t0 = performance.now();
    const burst = await Promise.all(Array.from({ length: 8 }, (_, i) => two.generate({ prompt: PROMPTS[i % PROMPTS.length]!, seed: 100 + i, steps: STEPS, guidanceScale: GUIDANCE })));
    const wall = performance.now() - t0;
    h.disable();
    await two.close();
    loopRows.push(`| burst of 8 on 2 workers (concurrency 2) | ${burst.length} | ${f1(ms(h, 50))} | ${f1(ms(h, 99))} | ${f1(h.max / 1e6)} |`);
    loopRows.push(`| ↳ burst throughput: ${f2((1000 * burst.length) / wall)} images/s | | | | |`);
  }

  // 3. Abort latency: abort after step 5 of a long run; time until the promise rejects.
  const abortMs: number[] = [];
  const unetCallMs: number[] = [];
  for (let i = 0; i < (quick ? 2 : 5); i++) {
    const c = new AbortController();
    let abortedAt = 0;
    const p = pipeline.generate({ prompt: 'rocket', seed: i, steps: 200, guidanceScale: GUIDANCE, signal: c.signal, onProgress: (e) => {
      if (e.stage === 'denoise' && e.step === 5) {
        abortedAt = performance.now();
        c.abort();
      }
    } });
    await p.catch(() => undefined);
    abortMs.push(performance.now() - abortedAt);
  }
  {
    const r = await pipeline.generate({ prompt: 'rocket', seed: 1, steps: STEPS, guidanceScale: GUIDANCE });
    unetCallMs.push(r.stats.timings.unetMs / r.stats.nfe);
  }
  // 4. Recognisability: the bundle's own CLIP classifies each image among the prompts of its set.
  let recog = '';
  if (existsSync(join(bundle, 'image_encoder', 'model.onnx'))) {
    const score = async (prompts: readonly string[], g: number, perPrompt: number) => {
      const imgs: { png: Buffer; prompt: string }[] = [];
      for (const prompt of prompts) {
        const r = await pipeline.generate({ prompt, seed: 1, batch: perPrompt, steps: STEPS, guidanceScale: g });
        imgs.push(...r.images.map((im) => ({ png: im.png, prompt })));
      }
      return `**${f1(100 * (await clipTop1(bundle, imgs, prompts)))}%** of ${imgs.length}`;
    };
    const n = quick ? 2 : 4;
    recog = `\nRecognisability, zero-shot top-1 with the bundle's own CLIP (image_encoder vs text_encoder), each image classified among its set's prompts, seeds 1..${n} per prompt:\n` +
      `- the ${PROMPTS.length} demo prompts (chance ${f1(100 / PROMPTS.length)}%): CFG ${GUIDANCE} ${await score(PROMPTS, GUIDANCE, n)}; CFG 1 ${await score(PROMPTS, 1, n)}\n` +
      `- ${BROAD.length} common emoji names the demo set was picked from (chance ${f1(100 / BROAD.length)}%): CFG ${GUIDANCE} ${await score(BROAD, GUIDANCE, n)}`;
  }
  await pipeline.close();

  // 5. The alternative: the same runner on the main thread (what a user without workers would write).
  const manifest = readBundle(bundle);
  const runner = await ModelRunner.open(manifest);
  const tok = loadTokenizer(manifest.files.tokenizerDir, { maxLength: runner.info.textLength });
  const job = (seed: number): Job => ({
    texts: [tok.encode('rocket').ids, tok.encode('').ids],
    plan: cfgPlan(GUIDANCE, STEPS),
    steps: STEPS,
    sampler: info.defaults.sampler,
    seeds: [seed],
  });
  await runner.run(job(0));
  const h = monitorEventLoopDelay({ resolution: 1 });
  const inproc: number[] = [];
  const inprocOrt: number[] = [];
  h.enable();
  for (let i = 0; i < (quick ? 3 : 8); i++) {
    t0 = performance.now();
    const r = await runner.run(job(i));
    inproc.push(performance.now() - t0);
    inprocOrt.push(r.timings.ortMs);
  }
  h.disable();
  await runner.close();
  loopRows.push(`| same models on the main thread (no worker) | ${inproc.length} | ${f1(ms(h, 50))} | ${f1(ms(h, 99))} | ${f1(h.max / 1e6)} |`);

  const md = `Bundle \`${bundle.replace(root + '/', '')}\` (${info.name}, ${info.image.width}×${info.image.height}, latent ${info.latent.channels}×${info.latent.height}×${info.latent.width}, ${info.dtype}, hash ${info.hash.slice(0, 10)}); ${STEPS} steps ${info.defaults.sampler}, CFG ${GUIDANCE} (2 branches batched into one UNet call per step), 1 worker, ONNX Runtime CPU. Load: ${f1(loadMs)} ms.

Per generation (means). *Overhead* = generate() wall time (validation, tokenizing, queue, worker messages, sampler steps, PNG encoding included) / time inside ONNX Runtime runs; *worker-side* = the worker's job time / ORT time. Target ≤ 1.03.

| | images/s | wall ms | text enc ms | UNet ms | sampler ms | VAE dec ms | to RGB ms | PNG ms | prep+queue ms | overhead | worker-side |
|---|---|---|---|---|---|---|---|---|---|---|---|
${rows.join('\n')}

Main-thread event-loop delay (\`monitorEventLoopDelay\`, 1 ms resolution) while generating:

| scenario | images | p50 ms | p99 ms | max ms |
|---|---|---|---|---|
${loopRows.join('\n')}

Abort: the promise rejects ${f1(mean(abortMs))} ms (mean of ${abortMs.length}, max ${f1(Math.max(...abortMs))}) after \`abort()\`; one UNet call takes ${f1(mean(unetCallMs))} ms — the worker stops before its next model call.
Main-thread baseline: ${f1(mean(inproc))} ms per image, overhead ${f3(mean(inproc) / mean(inprocOrt))}, but the event loop is blocked for each ONNX run (p99 above).${recog}`;
  writeResultsSection('Generation pipeline', md, `npm run bench pipeline${dirArg ? ` -- ${dirArg}` : ''}${quick ? ' --quick' : ''}`);
  console.log(md);
}

await main();
