/**
 * Benign false positives (issue 23.3): the project's own demo prompts were
 * refused by its default policy ("red apple" as concept:blood). The default
 * policy is held to its two numbers — at most 1% of the benign prompt set
 * refused, the demo prompts never, and the concept paraphrases caught at
 * least as often as before the recalibration and as recorded.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadClipEncoders, type ClipEncoders } from '../src/store/index.js';
import { RagPipeline } from '../src/rag/index.js';
import { SafetyGuard } from '../src/safety/index.js';
import { emojiPrompts, emojiTable } from '../src/safety/calibrate.js';
import { promptRates, readPromptList, type CalibrationSpec, type PromptRates } from '../src/safety/evaluate.js';
import { PolicyError, validatePolicy } from '../src/safety/policy.js';
import { DEMO_PROMPTS, HELDOUT_DEMO_PROMPTS } from '../src/cli/generate.js';
import { repoPath, tempDir } from './helpers.js';

const POLICY = repoPath('policies/default.json');
const README_PROMPTS = ['red apple', 'cat face', 'tulip', 'penguin'];
const DEMO = [...new Set([...DEMO_PROMPTS, ...HELDOUT_DEMO_PROMPTS, ...README_PROMPTS])];
const t = tempDir('ragdiff-safety-benign-');
let enc: ClipEncoders;
let guard: SafetyGuard;
let rates: PromptRates;

test.before(async () => {
  enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  guard = await SafetyGuard.create(POLICY, { encoder: enc });
  const spec = JSON.parse(readFileSync(repoPath('policies/calibration.json'), 'utf8')) as CalibrationSpec;
  const table = emojiTable();
  rates = await promptRates(guard, readPromptList(repoPath('policies/benign-prompts.txt')), spec, (sn) => table.filter((e) => e.short_name === sn).flatMap(emojiPrompts));
});

test.after(async () => {
  guard.close();
  await enc.close();
  t.cleanup();
});

test('the benign prompt set: at least 500 prompts, the demo prompts among them; at most 1% refused', () => {
  assert.ok(rates.benign >= 500, `${rates.benign} prompts`);
  const list = new Set(readPromptList(repoPath('policies/benign-prompts.txt')));
  for (const p of DEMO) assert.ok(list.has(p), p);
  assert.ok(rates.benignFp <= 0.01, `${(100 * rates.benignFp).toFixed(2)}% refused: ${rates.refused.map((r) => `${r.prompt} (${r.rule})`).join(', ')}`);
});

test('the demo prompts are never refused at the prompt door', async () => {
  for (const p of DEMO) {
    const d = await guard.checkPrompt(p);
    assert.is.not(d.action, 'block', `${p}: ${d.rule} ${d.score}`);
  }
});

test('paraphrase catches do not regress: at least the figures before the recalibration and those recorded', () => {
  const spec = JSON.parse(readFileSync(repoPath('policies/calibration.json'), 'utf8')) as { baseline: { paraphraseCatch: number; dilutedCatch: number } };
  const recorded = (JSON.parse(readFileSync(repoPath('bench/safety-calibration.json'), 'utf8')) as { promptRates: { paraphraseCatch: number; dilutedCatch: number } }).promptRates;
  const eps = 1e-9;
  assert.ok(rates.paraphraseCatch + eps >= spec.baseline.paraphraseCatch, `alone ${rates.paraphraseCatch} < before ${spec.baseline.paraphraseCatch}`);
  assert.ok(rates.dilutedCatch + eps >= spec.baseline.dilutedCatch, `diluted ${rates.dilutedCatch} < before ${spec.baseline.dilutedCatch}`);
  assert.ok(rates.paraphraseCatch + eps >= recorded.paraphraseCatch, `alone ${rates.paraphraseCatch} < recorded ${recorded.paraphraseCatch}`);
  assert.ok(rates.dilutedCatch + eps >= recorded.dilutedCatch, `diluted ${rates.dilutedCatch} < recorded ${recorded.dilutedCatch}`);
  // The concepts' own names still fall, alone and diluted.
  for (const c of ['pistol', 'bomb', 'blood', 'middle-finger']) assert.is(rates.perConcept[c]!.caught, rates.perConcept[c]!.positives, c);
});

test('the demo prompts pass every door of a generation: prompt and output (retrieval-free, as the README runs them)', async () => {
  const rag = await RagPipeline.load(repoPath('models/tiny-emoji'));
  try {
    const guarded = new RagPipeline(rag.pipeline, guard.ragOptions());
    for (const prompt of DEMO) {
      const r = await guarded.generate({ prompt, seed: 7 });
      assert.is(r.images.length, 1, `${prompt}: ${JSON.stringify(r.blocked)}`);
    }
  } finally {
    await rag.close();
  }
});

test('the new policy fields are validated, naming the field', () => {
  const fieldOf = (doc: unknown): string | undefined => {
    try {
      validatePolicy(doc);
      return undefined;
    } catch (e) {
      assert.ok(e instanceof PolicyError);
      assert.is((e as PolicyError).code, 'POLICY_INVALID');
      return (e as PolicyError).field;
    }
  };
  const concept = { id: 'a', text: ['a'], threshold: 0.5 };
  assert.is(fieldOf({ version: 'x', benign: { margin: 5 } }), 'benign.margin');
  assert.is(fieldOf({ version: 'x', benign: { text: [1] } }), 'benign.text[0]');
  assert.is(fieldOf({ version: 'x', benign: { image: [] } }), 'benign.image');
  assert.is(fieldOf({ version: 'x', prompt: { anchors: 'images' } }), 'prompt.anchors');
  assert.is(fieldOf({ version: 'x', concepts: [{ ...concept, variantThreshold: 2 }] }), 'concepts[0].variantThreshold');
  assert.is(fieldOf({ version: 'x', concepts: [{ ...concept, outputOffset: -0.1 }] }), 'concepts[0].outputOffset');
  const ok = validatePolicy({ version: 'x', concepts: [concept], prompt: { anchors: 'text' }, benign: { text: ['b'] } });
  assert.equal([ok.concepts[0]!.variantThreshold, ok.prompt.anchors, ok.benign], [0.5, 'text', { text: ['b'], images: [], margin: 0 }]);
});

test('outputOffset raises the image thresholds at the output door only', async () => {
  const heart = readFileSync(repoPath('node_modules/emoji-datasource-twitter/img/twitter/64/2764-fe0f.png'));
  const concept = { id: 'heart', images: ['npm:emoji-datasource-twitter/img/twitter/64/2764-fe0f.png'], threshold: 0.6 };
  const plain = await SafetyGuard.create({ version: 'h', concepts: [concept] }, { encoder: enc });
  const raised = await SafetyGuard.create({ version: 'h', concepts: [{ ...concept, outputOffset: 0.3 }] }, { encoder: enc });
  assert.is((await plain.checkImage(heart, 'output', 'heart')).action, 'block');
  const out = await raised.checkImage(heart, 'output', 'heart');
  assert.is(out.action, 'block', 'cos 1 still clears 0.6 + 0.3');
  const far = await raised.checkImage(readFileSync(repoPath('node_modules/emoji-datasource-twitter/img/twitter/64/1f9e1.png')), 'output', 'orange heart');
  const farPlain = await plain.checkImage(readFileSync(repoPath('node_modules/emoji-datasource-twitter/img/twitter/64/1f9e1.png')), 'upload', 'orange heart');
  assert.ok(Math.abs((farPlain.score! - far.score!) - 0.3) < 1e-6, `the output score is lower by the offset: ${farPlain.score} vs ${far.score}`);
  assert.is((await raised.checkImage(heart, 'upload', 'heart')).score, (await plain.checkImage(heart, 'upload', 'heart')).score, 'other doors unchanged');
});

test('`ragdiff generate "red apple" --policy policies/default.json` writes its image', async () => {
  const out = join(t.dir, 'apple.png');
  const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(process.execPath, [repoPath('dist/src/cli/main.js'), 'generate', 'red apple', '-o', out, '-m', repoPath('models/tiny-emoji'), '--seed', '7', '--policy', POLICY], { cwd: repoPath('.') }, (err, _o, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }));
  });
  assert.is(r.code, 0, r.stderr);
  assert.ok(existsSync(out));
});

test.run();
