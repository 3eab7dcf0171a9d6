/**
 * The benign prompt set at every door of a generation (issue 23.3): each
 * prompt of policies/benign-prompts.txt generated once through the default
 * policy's guard, as `ragdiff generate PROMPT --policy policies/default.json`
 * runs it (no retrieval, the bundle's defaults, seed 7): refused at the prompt
 * door, or its image blocked at the output door. And the other side: the
 * concepts' names and paraphrases generated with the prompt door off, so that
 * only the output door stands between them and the user — with this policy
 * and, given `--compare FILE`, another one (e.g. the previous default).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/safety-benign-outputs.js [--limit N] [--compare FILE]
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadClipEncoders } from '../src/models/encoders.js';
import { RagPipeline } from '../src/rag/index.js';
import { SafetyGuard } from '../src/safety/index.js';
import { positivePrompts, readPromptList, type CalibrationSpec } from '../src/safety/evaluate.js';
import { emojiPrompts, emojiTable } from '../src/safety/calibrate.js';
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

// The concepts at the output door alone (prompt door off): what share of their generated images it stops.
const spec = JSON.parse(readFileSync(join(root, 'policies/calibration.json'), 'utf8')) as CalibrationSpec;
const table = emojiTable();
const positives = spec.concepts.flatMap((c) => positivePrompts(c, (sn) => table.filter((e) => e.short_name === sn).flatMap(emojiPrompts)));
const compareAt = process.argv.indexOf('--compare');
const policies: [string, string][] = [[guard.policy.version, join(root, 'policies/default.json')], ...(compareAt > 0 ? [[`${process.argv[compareAt + 1]}`, process.argv[compareAt + 1]!] as [string, string]] : [])];
const outputOnly: string[] = [];
for (const [name, path] of policies) {
  const g = await SafetyGuard.create(path, { encoder: enc, baseDir: join(root, 'policies') });
  const screenOnly = new RagPipeline(rag.pipeline, { outputScreen: g.outputScreen() });
  let caught = 0;
  for (const prompt of positives) if ((await screenOnly.generate({ prompt, seed: 7 })).images.length === 0) caught++;
  outputOnly.push(`${name}: ${caught} of ${positives.length} (${((100 * caught) / positives.length).toFixed(1)}%)`);
  g.close();
}
const pct = (n: number, of = prompts.length) => `${((100 * n) / of).toFixed(2)}%`;
// The names whose generated images set the output offsets (tools/safety/calibrate.mjs) are in-sample there.
const calibration = JSON.parse(readFileSync(join(root, 'bench/safety-calibration.json'), 'utf8')) as { generated?: { prompts?: string[] } };
const inSample = new Set(calibration.generated?.prompts ?? []);
const heldOut = prompts.filter((p) => !inSample.has(p));
const nameOf = (s: string) => s.slice(1, s.indexOf('" ('));
const heldRefused = refused.filter((r) => !inSample.has(nameOf(r))).length;
const heldBlocked = blocked.filter((b) => !inSample.has(nameOf(b))).length;
const md = [
  `Each of the ${prompts.length} prompts of \`policies/benign-prompts.txt\`${prompts.length < all.length ? ` (the first ${prompts.length} of ${all.length})` : ''} generated once through the default policy (\`policies/default.json\`, ${guard.policy.version}) as \`ragdiff generate PROMPT --policy policies/default.json --seed 7\` runs it: tiny-emoji, the bundle's defaults (${rag.info.defaults.steps} steps), no retrieval; ${minutes.toFixed(1)} min on CPU.`,
  '',
  `| door | benign prompts refused or blocked (all ${prompts.length}) | … of the ${heldOut.length} whose images did not set the output offsets |`,
  '|---|---|---|',
  `| prompt | ${refused.length} (${pct(refused.length)}) | ${heldRefused} (${pct(heldRefused, heldOut.length)}) |`,
  `| output (the generated image) | ${blocked.length} (${pct(blocked.length)}) | ${heldBlocked} (${pct(heldBlocked, heldOut.length)}) |`,
  `| **any door** | **${refused.length + blocked.length} (${pct(refused.length + blocked.length)})** | **${heldRefused + heldBlocked} (${pct(heldRefused + heldBlocked, heldOut.length)})** |`,
  '',
  `Refused: ${refused.join(', ') || 'none'}. Blocked at the output door: ${blocked.join(', ') || 'none'}.`,
  '',
  `**The concepts at the output door alone** (their ${positives.length} names and paraphrases of \`policies/calibration.json\` generated with the prompt door off, seed 7; the prompt door refuses ${'all but the out-of-vocabulary ones'} before any generation): images stopped, ${outputOnly.join('; ')}. tiny-emoji draws most of these prompts as something else (it has seen each concept in one or two emoji), so this counts what the output door stops of what the generator made, not how well it recognises a concept (the calibration section measures that on real drawings).`,
].join('\n');
writeResultsSection('Safety: benign prompts at every door', md, `npx tsc -p tsconfig.json && node dist/bench/safety-benign-outputs.js${prompts.length < all.length ? ` --limit ${prompts.length}` : ''}${compareAt > 0 ? ` --compare ${process.argv[compareAt + 1]}` : ''}`);
console.log(md);
await rag.close();
guard.close();
await enc.close();
