/**
 * `npm run eval:rag` — does retrieval carry a reference's identity into the
 * generated image? Every arm runs through the public API,
 * RagPipeline.generate({ retrieval }), on tiny-emoji:
 *
 *   held-out prompts (the 54 emoji of split.json's held-out subcategories,
 *   which the UNet never saw) × 4 noises, and 200 training prompts × 1 noise;
 *   arms: no retrieval; each mode with the full Twemoji database (held-out
 *   images included); the same database minus the target emoji; the
 *   generator-training database only; the Noto database.
 *
 * Per arm: recognition top-1/top-5 by the bundle's own encoders among all
 * 1,911 base names (as the model card), exact per-prompt sign tests between
 * arms (prompts are the units), the copy guard (PSNR and embedding cosine to
 * the references used and to the whole database; near-copy = PSNR > 20 dB to
 * any database image; beside it "near-copies (foreground)", the same 20 dB on
 * a PSNR over the union of the two images' non-near-white pixels — every
 * channel ≥ 240 is near-white — so a shared white background is not counted
 * as copying; definition in src/eval/copy-guard.ts and under the table), and
 * the database swap: the share of outputs a Twemoji-vs-Noto classifier calls
 * Noto, and — because that classifier was validated on VAE round-trips, not on
 * generated images — the same swap in pairs (src/eval/swap.ts): each Noto-db
 * output against the Twemoji-db output of the same prompt and noise, by the
 * classifier's margin and by the PSNR preference for the target's Noto image
 * over its Twemoji image, with per-prompt sign tests.
 *
 * Deterministic: fixed seeds, disjoint from the tuning seeds (checked), a
 * fixed training-prompt sample. Writes bench/eval-rag.json and the bench/RESULTS.md
 * section "Retrieval evaluation (concept transfer)". The README's picture grid
 * (docs/rag-grid.png, a chosen subset of arms and prompts) is bench/rag-grid.ts;
 * a --quick run leaves an every-arm grid in /tmp/rag-grid-quick.png.
 *
 *   npm run eval:rag                    # everything: every arm in one table (about 100 min on 2 cores)
 *   npm run eval:rag -- --quick         # 6 held-out prompts × 1 noise, 12 training prompts (smoke test)
 *   npm run eval:rag -- --arms a,b      # only these arms (labels as in the table)
 */
import { createProgress } from '../src/cli/progress.js';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RagPipeline, type RetrievalOptions } from '../src/rag/index.js';
import { demoInputs, loadClipEncoders, openDemoStore, type ImageStore } from '../src/store/index.js';
import { EVAL_SEED_BASE, EvalSuite, type ArmResult, type Sample } from '../src/eval/suite.js';
import { writeResultsSection } from './results.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = here.includes(join('dist', 'bench')) ? join(here, '..', '..') : join(here, '..');
const MODEL = join(root, 'models', 'tiny-emoji');

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = args.includes('--arms') ? new Set(args[args.indexOf('--arms') + 1]!.split(',')) : null;
/** With --arms: write the table as its own RESULTS.md section under this title (a partial run never replaces the full table). */
const section = args.includes('--section') ? args[args.indexOf('--section') + 1]! : null;

/** Seeds: the evaluation's (EVAL_SEED_BASE), the tuning script's (bench/tune-rag.ts) — never the same. */
const TRAIN_SEED_BASE = 30_000;
const NOISES = quick ? 1 : 4;
const TRAIN_PROMPTS = quick ? 12 : 200;
const STEPS = 25;

type Db = 'full' | 'minus-target' | 'generator' | 'noto';
interface Arm {
  label: string;
  db: Db | null;
  retrieval?: Omit<RetrievalOptions, 'store'>;
  /** Also run on the training prompts. */
  training?: boolean;
}

async function main(): Promise<void> {
  const t0 = Date.now();
  const suite = await EvalSuite.open(MODEL, { tuningFile: join(root, 'bench', 'eval-rag.tuning.json') });
  const tuned = suite.tuning.chosen as { strength?: number } | undefined;
  const strength = tuned?.strength ?? 0.5;
  const modes = ['tokens', 'mixture', 'interleaved', 'reference-init'] as const;
  const arms: Arm[] = [{ label: 'none', db: null, training: true }];
  for (const mode of modes) {
    // Each mode alone: the bundle's default reference attention is switched off (its arms are below).
    const retrieval: Arm['retrieval'] = mode === 'reference-init' ? { mode, referenceInit: { strength }, referenceAttention: false } : { mode, referenceAttention: false };
    for (const db of ['full', 'minus-target', 'generator', 'noto'] as Db[]) {
      if ((mode === 'mixture' || mode === 'interleaved') && (db === 'generator' || db === 'noto')) continue;
      arms.push({ label: `${mode}/${db}`, db, retrieval, training: db === 'full' && (mode === 'tokens' || mode === 'reference-init') });
    }
  }
  for (const db of ['full', 'minus-target', 'noto'] as Db[]) arms.push({ label: `reference-attention/${db}`, db, retrieval: { mode: 'reference-attention', referenceAttention: { fidelity: 1 } }, training: db === 'full' });
  // The bundle's default (tokens + reference attention on the prompt-carrying branches), with every control and the swap.
  for (const db of ['full', 'minus-target', 'generator', 'noto'] as Db[]) arms.push({ label: `tokens+attention/${db}`, db, retrieval: { mode: 'tokens', referenceAttention: { fidelity: 1, branches: 'prompt' } }, training: db === 'full' });
  // Reference attention on the text+retrieval branch only (s_r amplifies it; bench/tune-attention.ts).
  for (const db of ['full', 'minus-target', 'generator', 'noto'] as Db[]) arms.push({ label: `tokens+attention(retrieval)/${db}`, db, retrieval: { mode: 'tokens', referenceAttention: { fidelity: 1, branches: 'retrieval' } }, training: db === 'full' });
  // The default plus a reference-init start at 0.8: the strongest style transfer in the training-prompt probe
  // (tools/tiny_emoji/probe_swap.mjs); measured here as an arm, with its controls and the swap.
  for (const db of ['full', 'minus-target', 'noto'] as Db[]) arms.push({ label: `tokens+attention(retrieval)+init/${db}`, db, retrieval: { mode: 'tokens', referenceAttention: { fidelity: 1, branches: 'retrieval' }, referenceInit: { strength: 0.8 } }, training: db === 'full' });
  arms.push({ label: 'tokens+reflective/full', db: 'full', retrieval: { mode: 'tokens', reflective: { lambda: 0.5, draftSteps: 6, candidates: 16 }, referenceAttention: false } });
  arms.push({ label: `tokens+init/full`, db: 'full', retrieval: { mode: 'tokens', referenceInit: { strength }, referenceAttention: false } });
  arms.push({ label: `tokens+init/minus-target`, db: 'minus-target', retrieval: { mode: 'tokens', referenceInit: { strength }, referenceAttention: false } });
  const run = only ? arms.filter((a) => a.label === 'none' || only.has(a.label)) : arms;

  const encoder = await loadClipEncoders(MODEL);
  const twemoji = await openDemoStore({ dataset: 'twemoji', encoder });
  const noto = await openDemoStore({ dataset: 'noto', encoder });
  for (const s of [twemoji, noto]) suite.checkStore(s);
  suite.useSwapRenderings(twemoji, noto);
  const rag = await RagPipeline.load(MODEL);

  const held = suite.heldOut(twemoji).slice(0, quick ? 6 : undefined);
  const training = suite.trainingPrompts(twemoji, TRAIN_PROMPTS);
  const heldSeeds = held.map((_, i) => EVAL_SEED_BASE + i * 4);
  suite.checkSeeds([...heldSeeds.flatMap((s) => [s, s + 1, s + 2, s + 3]), ...training.map((_, i) => TRAIN_SEED_BASE + i)]);
  const heldIds = new Set(held.map((h) => h.id));
  const allHeldIds = suite.heldOut(twemoji).map((h) => h.id);

  const storeOf = (db: Db): ImageStore => (db === 'noto' ? noto : twemoji);
  const excludes = (db: Db, targetId: string): string[] | undefined =>
    db === 'minus-target' ? [targetId] : db === 'generator' ? allHeldIds : undefined;
  void heldIds;

  const results: Record<string, ArmResult> = {};
  const training_: Record<string, ArmResult> = {};
  const grid: Record<string, Uint8Array[]> = {};
  for (const arm of run) {
    const ta = Date.now();
    const samples: Sample[] = [];
    const bar = createProgress({ label: arm.label.padEnd(32) }); // a terminal only: a log file gets the summary lines
    for (let i = 0; i < held.length; i++) {
      bar.update(i, held.length, 'held-out prompts');
      const h = held[i]!;
      const retrieval = arm.db ? { ...arm.retrieval, store: storeOf(arm.db), excludeIds: excludes(arm.db, h.id) } : undefined;
      const r = await rag.generate({ prompt: h.name, seed: heldSeeds[i], batch: NOISES, steps: STEPS, ...(retrieval ? { retrieval } : {}) });
      r.images.forEach((im) => samples.push({ prompt: h.name, target: h.name, png: im.png, references: r.references.map((x) => (x.kind === 'stored' ? storeOf(arm.db!).readImage(x.id!) : Buffer.alloc(0))) }));
      if (i < 8) (grid[arm.label] ??= []).push(r.images[0]!.png);
    }
    bar.done();
    results[arm.label] = await suite.score(samples, arm.db === 'noto' ? noto : twemoji);
    console.log(`${arm.label}: ${JSON.stringify(results[arm.label]!.summary)} (${((Date.now() - ta) / 1000).toFixed(0)} s)`);
    if (arm.training) {
      const ts: Sample[] = [];
      for (let i = 0; i < training.length; i++) {
        const p = training[i]!;
        const retrieval = arm.db ? { ...arm.retrieval, store: storeOf(arm.db) } : undefined;
        const r = await rag.generate({ prompt: p.name, seed: TRAIN_SEED_BASE + i, steps: STEPS, ...(retrieval ? { retrieval } : {}) });
        ts.push({ prompt: p.name, target: p.name, png: r.images[0]!.png, references: [] });
      }
      training_[arm.label] = await suite.score(ts, twemoji, { copyGuard: false });
      console.log(`  training: ${JSON.stringify(training_[arm.label]!.summary)}`);
    }
  }
  // The references the grid shows: the top Twemoji and Noto reference of each grid prompt.
  const topRefs: Record<string, Uint8Array[]> = { 'top ref/Twemoji': [], 'top ref/Noto': [] };
  for (const h of held.slice(0, 8)) {
    for (const [label, s] of [['top ref/Twemoji', twemoji], ['top ref/Noto', noto]] as const) {
      const hit = (await s.query({ text: h.name, k: 1 }))[0]!;
      topRefs[label]!.push(s.readImage(hit.id));
    }
  }
  const report = suite.report({ held: results, training: training_, baseline: 'none', pairs: [
    ['reference-attention/full', 'reference-attention/minus-target'], ['tokens+attention/full', 'tokens+attention/minus-target'],
    ['tokens+attention(retrieval)/full', 'tokens+attention(retrieval)/minus-target'], ['tokens+attention(retrieval)/full', 'tokens+attention/full'],
    ['tokens+attention(retrieval)+init/full', 'tokens+attention(retrieval)+init/minus-target'],
    ['tokens/full', 'tokens/minus-target'], ['reference-init/full', 'reference-init/minus-target'], ['tokens+init/full', 'tokens+init/minus-target'],
    ['mixture/full', 'mixture/minus-target'], ['interleaved/full', 'interleaved/minus-target'], ['tokens+reflective/full', 'tokens/full'],
  ], swap: [['tokens/noto', 'tokens/full'], ['reference-init/noto', 'reference-init/full'], ['reference-attention/noto', 'reference-attention/full'],
    ['tokens+attention/noto', 'tokens+attention/full'], ['tokens+attention(retrieval)/noto', 'tokens+attention(retrieval)/full'],
    ['tokens+attention(retrieval)+init/noto', 'tokens+attention(retrieval)+init/full']] });
  const meta = { steps: STEPS, noises: NOISES, heldOutPrompts: held.length, trainingPrompts: training.length, seeds: { heldOut: EVAL_SEED_BASE, training: TRAIN_SEED_BASE }, referenceInitStrength: strength, quick, minutes: (Date.now() - t0) / 60000 };
  if (!quick && !only) {
    writeFileSync(join(root, 'bench', 'eval-rag.json'), JSON.stringify({ ...meta, ...report.json }, null, 1) + '\n');
    writeResultsSection('Retrieval evaluation (concept transfer)', report.markdown, 'npm run eval:rag');
  } else if (section && !quick) {
    writeResultsSection(section, report.markdown, `npm run eval:rag -- --arms ${[...only!].join(',')} --section "${section}"`);
    writeFileSync(join(root, 'bench', `eval-rag.${section.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}.json`), JSON.stringify({ ...meta, arms: [...only!], ...report.json }, null, 1) + '\n');
    console.log(report.markdown);
  } else {
    console.log(report.markdown);
    await suite.grid('/tmp/rag-grid-quick.png', held.slice(0, 8).map((h) => h.name), { ...grid, ...topRefs });
  }
  await rag.close();
  await twemoji.close();
  await noto.close();
  await encoder.close();
  await suite.close();
  console.log(`done in ${meta.minutes.toFixed(1)} min`);
}

void existsSync; void readFileSync; void demoInputs;
main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
