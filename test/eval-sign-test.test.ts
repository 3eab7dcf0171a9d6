// The per-prompt exact sign test of tools/tiny_emoji/metrics.py: p-values against the Python
// reference (tools/tiny_emoji/golden_eval.json), ties dropped, prompts as the units.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { pairedSignTest, perPromptMeans, signTest, signTestP } from '../src/eval/sign-test.js';
import { hasErrorCode, repoPath } from './helpers.js';

const golden = JSON.parse(readFileSync(repoPath('tools/tiny_emoji/golden_eval.json'), 'utf8'));

test('p-values equal metrics.sign_test (rounded there to 5 decimals)', () => {
  for (const g of golden.sign_tests as Array<{ wins: number; losses: number; p: number }>) {
    const p = signTestP(g.wins, g.losses);
    assert.ok(Math.abs(p - g.p) <= 5e-6, `${g.wins}/${g.losses}: ${p} vs ${g.p}`);
    assert.is(signTestP(g.losses, g.wins), p, 'two-sided: symmetric');
  }
});

test('closed forms: 10 wins of 10 give 2/1024; nothing to compare gives 1; large n stays finite', () => {
  assert.is(signTestP(10, 0), 2 / 1024);
  assert.is(signTestP(0, 0), 1);
  assert.is(signTestP(5, 5), 1);
  const big = signTestP(1100, 900);
  assert.ok(big > 0 && big < 1e-5, `p = ${big}`);
  assert.is(signTestP(1000, 1000), 1);
});

test('ties are dropped and counted apart', () => {
  const r = signTest([1, 0.5, 0.5, 0, 1], [0, 0.5, 0.25, 0, 0]);
  assert.equal(r, { better: 3, worse: 0, ties: 2, p: 0.25 });
});

test('per-prompt means over noises (samples laid out seed-major as metrics.py) feed the paired test', () => {
  const prompts = ['a', 'b', 'c'];
  const layout = [...prompts, ...prompts];               // 2 noises per prompt
  const armA = perPromptMeans([1, 1, 0, 1, 0, 0], layout);
  const armB = perPromptMeans([0, 1, 0, 0, 1, 0], layout);
  assert.equal([...armA], [['a', 1], ['b', 0.5], ['c', 0]]);
  assert.equal([...armB], [['a', 0], ['b', 1], ['c', 0]]);
  const r = pairedSignTest(armA, armB);
  assert.is(r.better, 1);
  assert.is(r.worse, 1);
  assert.is(r.ties, 1);
  assert.is(r.p, 1);
});

test('bad input: arms over different prompts, different lengths, non-finite scores', () => {
  assert.throws(() => pairedSignTest(new Map([['a', 1]]), new Map([['b', 1]])), hasErrorCode('EVAL_PROMPTS_MISMATCH'));
  assert.throws(() => signTest([1, 2], [1]), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => signTest([NaN], [1]), hasErrorCode('NON_FINITE'));
  assert.throws(() => perPromptMeans([1, 2], ['a']), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => signTestP(-1, 2), hasErrorCode('OUT_OF_RANGE'));
  assert.throws(() => signTestP(1.5, 2), hasErrorCode('OUT_OF_RANGE'));
});

test.run();
