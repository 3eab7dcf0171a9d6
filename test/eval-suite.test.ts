/**
 * The concept-transfer evaluation's suite (src/eval/suite.ts, driven by
 * `npm run eval:rag`): its refusals keep the evaluation honest — no split, a
 * store of another encoder, seeds reused from tuning — and it scores an arm
 * the way the model card does. The primitives it uses have their own tests
 * (eval-recognition, eval-copy-guard, eval-sign-test, eval-guards).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EvalSuite } from '../src/eval/suite.js';
import { demoInputs, ImageStore, loadClipEncoders } from '../src/store/index.js';
import { fakeEncoder } from './fixtures/store/fake-encoder.js';
import { hasErrorCode, rejects, repoPath, tempDir } from './helpers.js';

test('refuses a bundle without its split file, a store of another encoder, and seeds used for tuning; scores real emoji as themselves', async () => {
  const t = tempDir('ragdiff-eval-');
  try {
    const copy = join(t.dir, 'bundle');
    cpSync(repoPath('models/tiny-emoji'), copy, { recursive: true });
    rmSync(join(copy, 'split.json'));
    await rejects(EvalSuite.open(copy), hasErrorCode('EVAL_SPLIT_MISSING'));

    const tuning = join(t.dir, 'tuning.json');
    writeFileSync(tuning, JSON.stringify({ seeds: [10, 11, 12] }));
    const suite = await EvalSuite.open(repoPath('models/tiny-emoji'), { tuningFile: tuning });
    const foreign = await ImageStore.open(join(t.dir, 'foreign'), { encoder: fakeEncoder() });
    const enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
    const own = await ImageStore.open(join(t.dir, 'own'), { encoder: enc });
    try {
      assert.throws(() => suite.checkSeeds([5, 11]), hasErrorCode('EVAL_SEED_OVERLAP'));
      suite.checkSeeds([13, 14]);
      assert.throws(() => suite.checkStore(foreign), hasErrorCode('EVAL_ENCODER_MISMATCH'));
      const names = ['red apple', 'grapes', 'automobile'];
      await own.add(demoInputs('twemoji').filter((i) => names.includes((i as { meta: { name: string } }).meta.name)));
      suite.checkStore(own);
      // The real images, scored as outputs: recognised as themselves, and exact copies of the database.
      const rows = own.list({ limit: 10 });
      const r = await suite.score(rows.map((x) => ({ prompt: x.name, target: x.name, png: own.readImage(x.id), references: [own.readImage(x.id)] })), own);
      assert.is(r.summary.n, 3);
      assert.is(r.summary.top5, 1);
      assert.is(r.summary.nearCopy, 1);
      assert.is(r.summary.nearCopyForeground, 1);
      assert.is(r.summary.meanRefPsnrForeground, 99);                   // ∞ (identical) counted as 99
      // The background-aware column sits beside the rule in the table, is defined under it, and lands in the JSON.
      const rep = suite.report({ held: { own: r }, training: {}, baseline: 'own', pairs: [], swap: [] });
      assert.ok(rep.markdown.includes('| near-copies | near-copies (foreground) |'));
      assert.ok(rep.markdown.includes('all three channels are ≥ 240'));
      assert.is((rep.json.held as Record<string, { nearCopyForeground: number }>).own!.nearCopyForeground, 1);
      assert.is((rep.json.copyGuard as { nearWhiteMin: number }).nearWhiteMin, 240);
      assert.equal(r.perPrompt.prompts.sort(), [...names].sort());

      // The paired swap: the Noto images of the same emoji, scored as the Noto-database arm, against the
      // Twemoji images as the Twemoji-database arm. Each Noto image IS the target's Noto rendering.
      const notoStore = await ImageStore.open(join(t.dir, 'noto'), { encoder: enc });
      try {
        await notoStore.add(demoInputs('noto').filter((i) => names.includes((i as { meta: { name: string } }).meta.name)));
        suite.useSwapRenderings(own, notoStore);
        const byName = (s: ImageStore) => s.list({ limit: 10 }).sort((a, b) => (a.name < b.name ? -1 : 1));
        const arm = async (s: ImageStore) => suite.score(byName(s).map((x) => ({ prompt: x.name, target: x.name, png: s.readImage(x.id), references: [] })), s, { copyGuard: false });
        const rn = await arm(notoStore);
        const rt = await arm(own);
        assert.equal(rn.swap!.renderingPref.map((v) => v > 50), [true, true, true]);    // itself: 99 dB vs < 49
        assert.equal(rt.swap!.renderingPref.map((v) => v < -50), [true, true, true]);
        assert.ok(rn.swap!.notoMargin.every(Number.isFinite));
        const sw = suite.report({ held: { none: rt, noto: rn, tw: rt }, training: {}, baseline: 'none', pairs: [], swap: [['noto', 'tw']] });
        const paired = (sw.json.swap as Record<string, { paired: { renderingPreference: { pairsTowardNoto: number; positiveNotoDb: number; positiveTwemojiDb: number; prompts: { better: number } } } }>)['noto vs tw']!.paired;
        assert.is(paired.renderingPreference.pairsTowardNoto, 1);
        assert.is(paired.renderingPreference.positiveNotoDb, 1);
        assert.is(paired.renderingPreference.positiveTwemojiDb, 0);
        assert.is(paired.renderingPreference.prompts.better, 3);
        assert.ok(sw.markdown.includes('| noto vs tw |'));
        assert.ok(sw.markdown.includes('rendering preference toward Noto'));
      } finally {
        await notoStore.close();
      }
    } finally {
      await own.close();
      await enc.close();
      await foreign.close();
      await suite.close();
    }
  } finally {
    t.cleanup();
  }
});

test.run();
