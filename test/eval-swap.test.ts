/**
 * The paired database swap (src/eval/swap.ts): rendering preference is a difference of PSNRs, pairs are
 * matched output by output, prompts are the sign test's units, and mismatched arms are refused.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { pairedSwap, renderingPreference } from '../src/eval/swap.js';
import { psnr8 } from '../src/eval/copy-guard.js';
import { hasErrorCode } from './helpers.js';

const img = (v: number, n = 12) => new Uint8Array(n).fill(v);

test('renderingPreference: positive nearer the Noto image, negative nearer the Twemoji one, capped for identical images', () => {
  const noto = img(200);
  const tw = img(100);
  assert.ok(renderingPreference(img(190), noto, tw) > 0);
  assert.ok(renderingPreference(img(110), noto, tw) < 0);
  assert.is(renderingPreference(img(150), noto, tw), 0);                      // equidistant
  assert.is(renderingPreference(noto, noto, tw), 99 - psnr8(noto, tw));      // ∞ counted as 99
  assert.throws(() => renderingPreference(img(1, 9), noto, tw), hasErrorCode('LENGTH_MISMATCH'));
});

test('pairedSwap: shares, pair counts and per-prompt sign test; NaNs skipped; arms must match', () => {
  const prompts = ['a', 'a', 'b', 'b', 'c', 'c'];
  const notoArm = { prompts, notoMargin: [1, 2, -1, 0.5, 3, NaN], renderingPref: [1, 1, 1, 1, -1, -1] };
  const twArm = { prompts, notoMargin: [0, 0, 0, 0, 4, 1], renderingPref: [-1, -1, -1, -1, -1, -1] };
  const r = pairedSwap(notoArm, twArm);
  const m = r.styleMargin!;
  assert.is(m.outputs, 5);                                   // the NaN pair is skipped
  assert.is(m.pairsTowardNoto, 3 / 5);                       // 1>0, 2>0, 0.5>0; -1<0, 3<4
  assert.is(m.positiveNotoDb, 4 / 5);
  assert.is(m.positiveTwemojiDb, 1 / 5);
  assert.equal([m.prompts.better, m.prompts.worse, m.prompts.ties], [1, 2, 0]);   // a: 1.5>0, b: -0.25<0, c: 3<4
  const q = r.renderingPreference!;
  assert.is(q.pairsTowardNoto, 4 / 6);
  assert.equal([q.prompts.better, q.prompts.worse, q.prompts.ties], [2, 0, 1]);
  assert.is(q.meanTwemojiDb, -1);
  // no classifier ran: only the rendering measure
  assert.is(pairedSwap({ ...notoArm, notoMargin: prompts.map(() => NaN) }, twArm).styleMargin, undefined);
  assert.throws(() => pairedSwap(notoArm, { ...twArm, prompts: ['a', 'a', 'b', 'b', 'c', 'd'] }), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => pairedSwap(notoArm, { ...twArm, renderingPref: [1] }), hasErrorCode('LENGTH_MISMATCH'));
});

test.run();
