/**
 * Chooses which guidance branches attend to the reference (tokens + reference
 * attention, the tiny-emoji default) on TRAINING prompts only, with the tuning
 * seeds of bench/tune-rag.ts (never the evaluation's):
 *   'prompt'    — every prompt-carrying branch (text and text+retrieval);
 *   'retrieval' — only the text+retrieval branch, so s_r amplifies the reference.
 * Per choice: the full Twemoji database, the same minus the target emoji, and
 * the Noto database. Transfer on training prompts = full − minus-target
 * recognition; style transfer = share classified Noto with the Noto database.
 * The rule: the choice with the larger (full − minus-target) gap (top-1 + top-5)
 * whose outputs with the Noto database are near-copies (foreground rule) at most
 * 5% of the time. (With the Twemoji database a training prompt's reference is
 * the very image the UNet was trained on, so copies there say little.)
 *
 *   npm run tune:attention      → bench/tune-attention.json
 */
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RagPipeline } from '../src/rag/index.js';
import { loadClipEncoders, openDemoStore, type ImageStore } from '../src/store/index.js';
import { EvalSuite, type Sample } from '../src/eval/suite.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = here.includes(join('dist', 'bench')) ? join(here, '..', '..') : join(here, '..');
const MODEL = join(root, 'models', 'tiny-emoji');
const TUNE_SEED_BASE = 10_000;
const PROMPTS = Number(process.env.TUNE_PROMPTS ?? 60);
const CHOICES = ['prompt', 'retrieval'] as const;

async function main(): Promise<void> {
  const t0 = Date.now();
  const suite = await EvalSuite.open(MODEL);
  const encoder = await loadClipEncoders(MODEL);
  const twemoji = await openDemoStore({ dataset: 'twemoji', encoder });
  const noto = await openDemoStore({ dataset: 'noto', encoder });
  const rag = await RagPipeline.load(MODEL);
  // The slice of training prompts bench/tune-rag.ts uses (the evaluation uses the first 200).
  const prompts = suite.trainingPrompts(twemoji, 200 + PROMPTS).slice(200);
  const seeds = prompts.map((_, i) => TUNE_SEED_BASE + i);
  const run = async (branches: (typeof CHOICES)[number] | null, db: 'full' | 'minus-target' | 'noto') => {
    const store: ImageStore = db === 'noto' ? noto : twemoji;
    const samples: Sample[] = [];
    for (let i = 0; i < prompts.length; i++) {
      const retrieval = branches === null ? undefined : {
        store, mode: 'tokens' as const, referenceAttention: { fidelity: 1, branches },
        ...(db === 'minus-target' ? { excludeIds: [prompts[i]!.id] } : {}),
      };
      const r = await rag.generate({ prompt: prompts[i]!.name, seed: seeds[i], steps: 25, ...(retrieval ? { retrieval } : {}) });
      samples.push({ prompt: prompts[i]!.name, target: prompts[i]!.name, png: r.images[0]!.png, references: [] });
    }
    const s = (await suite.score(samples, store)).summary;
    console.log(`${branches ?? 'none'} / ${db}: ${JSON.stringify(s)} (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
    return s;
  };
  const none = await run(null, 'full');
  const table: Record<string, unknown>[] = [{ branches: null, db: 'none', ...none }];
  const scored: { branches: string; gap: number; ok: boolean }[] = [];
  for (const b of CHOICES) {
    const full = await run(b, 'full');
    const minus = await run(b, 'minus-target');
    const nt = await run(b, 'noto');
    table.push({ branches: b, db: 'full', ...full }, { branches: b, db: 'minus-target', ...minus }, { branches: b, db: 'noto', ...nt });
    scored.push({ branches: b, gap: full.top1 + full.top5 - minus.top1 - minus.top5, ok: (nt.nearCopyForeground ?? 1) <= 0.05 });
  }
  const ok = scored.filter((s) => s.ok).sort((a, b) => b.gap - a.gap);
  const out = {
    description: 'which guidance branches attend to the reference, chosen on training prompts (never held-out ones) with the tuning seeds of tune-rag',
    command: 'npm run tune:attention',
    prompts: prompts.map((p) => p.name),
    seeds,
    table,
    scored,
    chosen: ok[0]?.branches ?? null,
    rule: 'largest full − minus-target gap (top-1 + top-5) with foreground near-copies <= 5% against the Noto database',
    seconds: Math.round((Date.now() - t0) / 1000),
  };
  writeFileSync(join(root, 'bench', 'tune-attention.json'), JSON.stringify(out, null, 1) + '\n');
  console.log('chosen', out.chosen);
  await rag.close();
  await twemoji.close();
  await noto.close();
  await encoder.close();
  await suite.close();
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
