/**
 * The README's picture grid: held-out prompts (never seen by the UNet) ×
 * (no retrieval | each token mode alone with the Twemoji database | the
 * bundle default, tokens + reference attention, with Twemoji, without the
 * target, with Noto | the top references), first evaluation seed, through
 * RagPipeline.generate. Writes docs/rag-grid.png.
 *
 *   npm run build && node dist/bench/rag-grid.js
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RagPipeline, type RetrievalOptions } from '../src/rag/index.js';
import { loadClipEncoders, openDemoStore, type ImageStore } from '../src/store/index.js';
import { EVAL_SEED_BASE, EvalSuite } from '../src/eval/suite.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = here.includes(join('dist', 'bench')) ? join(here, '..', '..') : join(here, '..');
const MODEL = join(root, 'models', 'tiny-emoji');

async function main(): Promise<void> {
  const suite = await EvalSuite.open(MODEL);
  const encoder = await loadClipEncoders(MODEL);
  const twemoji = await openDemoStore({ dataset: 'twemoji', encoder });
  const noto = await openDemoStore({ dataset: 'noto', encoder });
  const rag = await RagPipeline.load(MODEL);
  const all = suite.heldOut(twemoji);
  const picks = [0, 8, 9, 14, 20, 27, 33, 45].map((i) => ({ ...all[i]!, seed: EVAL_SEED_BASE + i * 4 }));
  const arms: [string, ((id: string) => Omit<RetrievalOptions, 'store'> & { store: ImageStore }) | null][] = [
    ['no retrieval', null],
    ['tokens/Twemoji', () => ({ store: twemoji, mode: 'tokens', referenceAttention: false })],
    ['mixture/Twemoji', () => ({ store: twemoji, mode: 'mixture', referenceAttention: false })],
    ['interleaved/Twemoji', () => ({ store: twemoji, mode: 'interleaved', referenceAttention: false })],
    ['+attention/Twemoji', () => ({ store: twemoji, mode: 'tokens' })],
    ['+attention/no target', (id) => ({ store: twemoji, mode: 'tokens', excludeIds: [id] })],
    ['+attention/Noto', () => ({ store: noto, mode: 'tokens' })],
  ];
  const columns: Record<string, Uint8Array[]> = {};
  for (const [label, retrieval] of arms) {
    columns[label] = [];
    for (const p of picks) {
      const r = await rag.generate({ prompt: p.name, seed: p.seed, steps: 25, ...(retrieval ? { retrieval: retrieval(p.id) } : {}) });
      columns[label]!.push(r.images[0]!.png);
    }
  }
  for (const [label, s] of [['top ref/Twemoji', twemoji], ['top ref/Noto', noto]] as const) {
    columns[label] = [];
    for (const p of picks) columns[label]!.push(s.readImage((await s.query({ text: p.name, k: 1 }))[0]!.id));
  }
  await suite.grid(join(root, 'docs', 'rag-grid.png'), picks.map((p) => p.name), columns);
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
