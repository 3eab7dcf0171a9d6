/**
 * The README's picture strip for trajectory retrieval (run after `npm run eval:redi`,
 * which leaves its bases in REDI_DIR): per query prompt (not in the base, new seed),
 * full sampling | the jump | plain sampling with the jump's denoiser calls.
 *   node dist/bench/redi.strip.js [KB] [valueStep]
 */
import { join } from 'node:path';
import sharp, { type OverlayOptions } from 'sharp';
import { Pipeline } from '../src/pipeline/index.js';
import { KnowledgeBase } from '../src/trajectory/kb-file.js';
import { emojiPrompts } from './redi-prompts.js';

const root = join(import.meta.dirname, '..', '..');
const kbPath = process.argv[2] ?? '/tmp/ragdiff-redi-eval/kb-key6-400.rdkb';
const valueStep = Number(process.argv[3] ?? 10);
const out = join(root, 'bench', 'redi-strip.png');
// Prompts not in the base (the eval's base is the first REDI_BASE_PROMPTS names).
const basePrompts = Number(process.env.REDI_BASE_PROMPTS ?? 100);
const queries = emojiPrompts(join(root, 'models', 'tiny-emoji')).slice(basePrompts, basePrompts + 6);

const kb = KnowledgeBase.open(kbPath);
const { keyStep, steps } = kb.header;
kb.close();
const calls = keyStep + steps - valueStep;
const pipeline = await Pipeline.load(join(root, 'models', 'tiny-emoji'));
const rows: Uint8Array[][] = [];
try {
  for (const [i, prompt] of queries.entries()) {
    const seed = 9000 + i;
    const full = await pipeline.generate({ prompt, seed, steps });
    const jump = await pipeline.generate({ prompt, seed, steps, trajectory: { kb: kbPath, valueStep, k: 5 } });
    const few = await pipeline.generate({ prompt, seed, steps: calls });
    rows.push([full, jump, few].map((r) => r.images[0]!.png));
  }
} finally {
  await pipeline.close();
}
const s = 64, gap = 4;
const composites: OverlayOptions[] = [];
rows.forEach((row, r) => row.forEach((png, c) => composites.push({ input: Buffer.from(png), left: gap + r * (s + gap), top: gap + c * (s + gap) })));
await sharp({ create: { width: gap + rows.length * (s + gap), height: gap + 3 * (s + gap), channels: 3, background: { r: 255, g: 255, b: 255 } } })
  .composite(composites).png({ compressionLevel: 9, palette: true, quality: 90 }).toFile(out);
console.log(`${out}: rows = full ${steps} steps | jump ${keyStep}→${valueStep} (${calls} calls) | full ${calls} steps; columns = ${queries.join(', ')}`);
