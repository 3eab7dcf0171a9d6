/**
 * The benign prompt set at every door of a generation (issue 23.3): each
 * prompt of policies/benign-prompts.txt generated once through the default
 * policy's guard, as `ragdiff generate PROMPT --policy policies/default.json`
 * runs it (no retrieval, the bundle's defaults, seed 7): refused at the prompt
 * door, or its image blocked at the output door.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/safety-benign-outputs.js [--limit N]
 */
import { join } from 'node:path';
import { loadClipEncoders } from '../src/models/encoders.js';
import { RagPipeline } from '../src/rag/index.js';
import { SafetyGuard } from '../src/safety/index.js';
import { readPromptList } from '../src/safety/evaluate.js';
import { writeResultsSection } from './results.js';

const root = join(import.meta.dirname, '..', '..');
const limitAt = process.argv.indexOf('--limit');
const all = readPromptList(join(root, 'policies/benign-prompts.txt'));
const prompts = limitAt > 0 ? all.slice(0, Number(process.argv[limitAt + 1])) : all;

const enc = await loadClipEncoders(join(root, 'models/tiny-emoji'));
const guard = await SafetyGuard.create(join(root, 'policies/default.json'), { encoder: enc });
const rag = await RagPipeline.load(join(root, 'models/tiny-emoji'));
const guarded = new RagPipeline(rag.pipeline, guard.ragOptions());
const refused: string[] = [];
const blocked: string[] = [];
const t0 = performance.now();
for (const [i, prompt] of prompts.entries()) {
  try {
    const r = await guarded.generate({ prompt, seed: 7 });
    for (const b of r.blocked ?? []) blocked.push(`"${prompt}" (${b.rule} ${b.score.toFixed(3)})`);
  } catch (e) {
    if ((e as { code?: string }).code !== 'PROMPT_BLOCKED') throw e;
    refused.push(`"${prompt}" (${(e as { rule?: string }).rule})`);
  }
  if ((i + 1) % 100 === 0) console.error(`${i + 1}/${prompts.length}: ${refused.length} refused, ${blocked.length} blocked`);
}
const minutes = (performance.now() - t0) / 60_000;
const pct = (n: number) => `${((100 * n) / prompts.length).toFixed(2)}%`;
const md = [
  `Each of the ${prompts.length} prompts of \`policies/benign-prompts.txt\`${prompts.length < all.length ? ` (the first ${prompts.length} of ${all.length})` : ''} generated once through the default policy (\`policies/default.json\`, ${guard.policy.version}) as \`ragdiff generate PROMPT --policy policies/default.json --seed 7\` runs it: tiny-emoji, the bundle's defaults (${rag.info.defaults.steps} steps), no retrieval; ${minutes.toFixed(1)} min on CPU.`,
  '',
  '| door | benign prompts refused or blocked |',
  '|---|---|',
  `| prompt | ${refused.length} (${pct(refused.length)}) |`,
  `| output (the generated image) | ${blocked.length} (${pct(blocked.length)}) |`,
  `| **any door** | **${refused.length + blocked.length} (${pct(refused.length + blocked.length)})** |`,
  '',
  `Refused: ${refused.join(', ') || 'none'}. Blocked at the output door: ${blocked.join(', ') || 'none'}.`,
].join('\n');
writeResultsSection('Safety: benign prompts at every door', md, `npx tsc -p tsconfig.json && node dist/bench/safety-benign-outputs.js${prompts.length < all.length ? ` --limit ${prompts.length}` : ''}`);
console.log(md);
await rag.close();
guard.close();
await enc.close();
