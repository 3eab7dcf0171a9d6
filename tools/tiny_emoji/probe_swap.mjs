// Probe: which retrieval settings carry the DATABASE'S STYLE further (the database swap), on TRAINING
// prompts with the tuning seeds (never the evaluation's held-out prompts or seeds). For each setting the
// same prompts and seeds run with the Twemoji and with the Noto demo store; measured as in the evaluation
// (src/eval/swap.ts): the paired style-classifier margin and the paired PSNR preference for the target's
// Noto over its Twemoji image, plus recognition with each store (identity must not be lost).
//   nice -n 19 node tools/tiny_emoji/probe_swap.mjs [prompts=40]   -> tools/tiny_emoji/probe_swap.json
import { writeFileSync } from 'node:fs';
import { RagPipeline } from '../../dist/src/rag/index.js';
import { loadClipEncoders, openDemoStore } from '../../dist/src/store/index.js';
import { EvalSuite } from '../../dist/src/eval/suite.js';
import { pairedSwap } from '../../dist/src/eval/swap.js';

const MODEL = new URL('../../models/tiny-emoji', import.meta.url).pathname;
const N = Number(process.argv[2] ?? 40);
const SETTINGS = {
  'default (tokens + attention on the retrieval branch, s_r 4)': {},
  's_r 6': { scales: { retrieval: 6 } },
  'attention blend 2': { referenceAttention: { blend: 2 } },
  'attention + reference-init 0.8': { referenceInit: { strength: 0.8 } },
  'reference-attention mode (k 4, blend 4)': { mode: 'reference-attention' },
};
const t0 = Date.now();
const suite = await EvalSuite.open(MODEL);
const encoder = await loadClipEncoders(MODEL);
const open = (dataset) => openDemoStore({ dataset, encoder, store: { readOnly: true } }).catch(() => openDemoStore({ dataset, encoder }));
const stores = { twemoji: await open('twemoji'), noto: await open('noto') };
suite.useSwapRenderings(stores.twemoji, stores.noto);
const rag = await RagPipeline.load(MODEL);
const prompts = suite.trainingPrompts(stores.twemoji, 200 + N).slice(200);
const out = { what: 'database swap probe on training prompts (tuning slice 200.., seeds 10000+i), 25 steps', prompts: N, settings: {} };
for (const [label, extra] of Object.entries(SETTINGS)) {
  const arms = {};
  for (const [db, store] of Object.entries(stores)) {
    const samples = [];
    for (let i = 0; i < prompts.length; i++) {
      const r = await rag.generate({ prompt: prompts[i].name, seed: 10000 + i, steps: 25, retrieval: { store, ...extra } });
      samples.push({ prompt: prompts[i].name, target: prompts[i].name, png: r.images[0].png, references: [] });
    }
    arms[db] = await suite.score(samples, store, { copyGuard: false });
  }
  const p = pairedSwap(arms.noto.swap, arms.twemoji.swap);
  const row = {
    top5: { twemoji: arms.twemoji.summary.top5, noto: arms.noto.summary.top5 },
    classifiedNoto: { twemoji: arms.twemoji.summary.noto, noto: arms.noto.summary.noto },
    styleMarginTowardNoto: p.styleMargin && { pairs: +p.styleMargin.pairsTowardNoto.toFixed(3), prompts: p.styleMargin.prompts, meanGap: +(p.styleMargin.meanNotoDb - p.styleMargin.meanTwemojiDb).toFixed(3) },
    nearerNotoImage: p.renderingPreference && { twemoji: +p.renderingPreference.positiveTwemojiDb.toFixed(3), noto: +p.renderingPreference.positiveNotoDb.toFixed(3), pairs: +p.renderingPreference.pairsTowardNoto.toFixed(3), prompts: p.renderingPreference.prompts },
  };
  out.settings[label] = row;
  console.log(label, JSON.stringify(row), `${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
out.seconds = Math.round((Date.now() - t0) / 1000);
writeFileSync(new URL('probe_swap.json', import.meta.url), JSON.stringify(out, null, 1) + '\n');
await rag.close(); await stores.twemoji.close(); await stores.noto.close(); await encoder.close(); await suite.close();
process.exit(0);
