// Generates the style classifier's calibration images (once; cached under /tmp): TRAINING prompts only
// (EvalSuite.trainingPrompts slice 200..300, the tuning slice bench/tune-rag.ts uses), seeds 10000+i
// (never the evaluation's held-out prompts or its 20000+ seeds), 25 steps, default guidance.
//   nice -n 19 node tools/tiny_emoji/style_calibration_gen.mjs none|noto [outDir] [n]
// none: no retrieval (Pipeline); noto: RagPipeline with the Noto demo store, the bundle's default mode.
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Pipeline } from '../../dist/src/pipeline/index.js';
import { RagPipeline } from '../../dist/src/rag/index.js';
import { loadClipEncoders, openDemoStore } from '../../dist/src/store/index.js';
import { EvalSuite } from '../../dist/src/eval/suite.js';

const MODEL = 'models/tiny-emoji';
const kind = process.argv[2] ?? 'none';
const out = process.argv[3] ?? `/tmp/ragdiff-style-calib/${kind}`;
const n = Number(process.argv[4] ?? 100);
mkdirSync(out, { recursive: true });
const suite = await EvalSuite.open(MODEL);
const encoder = await loadClipEncoders(MODEL);
const twemoji = await openDemoStore({ dataset: 'twemoji', encoder });
const prompts = suite.trainingPrompts(twemoji, 200 + n).slice(200);
writeFileSync(join(out, 'prompts.json'), JSON.stringify(prompts.map((p, i) => ({ name: p.name, seed: 10000 + i }))));
let gen;
if (kind === 'none') {
  const p = await Pipeline.load(MODEL);
  gen = (prompt, seed) => p.generate({ prompt, seed, steps: 25 });
} else {
  const store = await openDemoStore({ dataset: 'noto', encoder });
  const rag = await RagPipeline.load(MODEL);
  gen = (prompt, seed) => rag.generate({ prompt, seed, steps: 25, retrieval: { store } });
}
for (let i = 0; i < prompts.length; i++) {
  const f = join(out, `${String(i).padStart(3, '0')}.png`);
  if (existsSync(f)) continue;
  const r = await gen(prompts[i].name, 10000 + i);
  writeFileSync(f, r.images[0].png);
  console.log(i, prompts[i].name);
}
process.exit(0);
