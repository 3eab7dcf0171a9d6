/**
 * The retrieval modes as plan builders: each turns references into guidance
 * branches and a steps × branches weight table, the formulas of the papers
 * (see ../../shared/METHODS.md), with no model involved.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { interleavedPlan, mixturePlan, REMODIFFUSE_FINE, textCfgPlan, tokensPlan } from '../src/rag/index.js';

const embeds = new Float32Array(4 * 8).fill(0.1);
const weights = Float32Array.of(1, 1, 0.5, 0);
const input = (timesteps: number[], textScale = 3, retrievalScale = 4) => ({
  timesteps, numTrainTimesteps: 1000, textScale, retrievalScale, neighbours: { embeds, weights },
});
const row = (w: Float32Array, n: number, i: number) => Array.from(w.subarray(i * n, (i + 1) * n));
const close = (a: number[], b: number[], msg?: string) => a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) < 1e-6, `${msg ?? ''} ${a} vs ${b}`));

test('tokens: eps = e(∅,0) + s_t·(e(T,0) − e(∅,0)) + s_r·(e(T,R) − e(T,0)) at every step', () => {
  const p = tokensPlan(input([900, 500, 100], 3, 4));
  assert.equal(p.branches.map((b) => [b.text, b.neighbourEmbeds === embeds]), [[1, false], [0, false], [0, true]]);
  assert.is(p.branches[2]!.neighbourWeights, weights);
  for (let i = 0; i < 3; i++) close(row(p.weights, 3, i), [1 - 3, 3 - 4, 4]);
  assert.match(p.label, /tokens s_t=3 s_r=4/);
});

test('mixture: four branches, weights summing to one at every step, coarse pairs alternating above t = 100', () => {
  const ts = [981, 901, 801, 501, 101, 61, 21];
  const p = mixturePlan(input(ts), { coarseScale: 6.5, fineBelow: 100, fine: REMODIFFUSE_FINE });
  assert.equal(p.branches.map((b) => [b.text, Boolean(b.neighbourEmbeds)]), [[0, true], [0, false], [1, true], [1, false]]);
  ts.forEach((t, i) => {
    const r = row(p.weights, 4, i);
    assert.ok(Math.abs(r.reduce((a, b) => a + b, 0) - 1) < 1e-5, `step ${i} sums to ${r}`);
    if (t > 100) {
      const w = (t / 1000) * 6.5 + 1;
      close(r, i % 2 === 0 ? [w, 0, 1 - w, 0] : [0, w, 0, 1 - w], `step ${i}`);
    } else {
      close(r, [REMODIFFUSE_FINE.both, REMODIFFUSE_FINE.text, REMODIFFUSE_FINE.retrieval, 1 - REMODIFFUSE_FINE.both - REMODIFFUSE_FINE.text - REMODIFFUSE_FINE.retrieval]);
    }
  });
});

test('interleaved: text steps and retrieval steps in the given share, spread evenly', () => {
  const ts = Array.from({ length: 8 }, (_, i) => 900 - i * 100);
  const half = interleavedPlan(input(ts, 3, 5), 0.5);
  const kinds = ts.map((_, i) => (row(half.weights, 3, i)[2] === 0 ? 'T' : 'R'));
  assert.is(kinds.join(''), 'RTRTRTRT');
  assert.is(kinds.filter((k) => k === 'T').length, 4);
  ts.forEach((_, i) => {
    const r = row(half.weights, 3, i);
    close([r.reduce((a, b) => a + b, 0)], [1]);
    close(r, kinds[i] === 'T' ? [3, 1 - 3, 0] : [5, 0, 1 - 5]);
  });
  const quarter = interleavedPlan(input(ts), 0.25);
  assert.is(ts.filter((_, i) => row(quarter.weights, 3, i)[2] === 0).length, 2);
  const none = interleavedPlan(input(ts), 0);
  assert.is(ts.filter((_, i) => row(none.weights, 3, i)[2] === 0).length, 0);
});

test('reference-init guides on text only (the references enter as the start latent)', () => {
  const p = textCfgPlan(input([10, 5], 7.5));
  assert.equal(p.branches.map((b) => b.text), [1, 0]);
  assert.ok(p.branches.every((b) => !b.neighbourEmbeds));
  close(row(p.weights, 2, 1), [1 - 7.5, 7.5]);
});

test.run();
