// Unit tests of the pipeline's pieces that need no model: the fp16 boundary,
// guidance plans and the encoder_hidden_states builder, request validation,
// the parameters text and the bundle reader's errors.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toHalf, fromHalf, floatsToHalf, halfToFloats } from '../src/pipeline/tensor-io.js';
import { buildEncoderHiddenStates, cfgPlan, checkPlan, pruneZeroBranches } from '../src/pipeline/guidance.js';
import { normalizeRequest } from '../src/pipeline/params.js';
import { formatParameters } from '../src/pipeline/output.js';
import { readBundle, DEFAULT_SCALING_FACTOR } from '../src/pipeline/bundle.js';
import { AbortError } from '../src/errors.js';
import { repoPath, tempDir, seededRandom, hasErrorCode } from './helpers.js';

const defaults = { steps: 25, guidanceScale: 7.5, sampler: 'ddim' as const };

test('fp16: exact values, round-to-nearest-even, subnormals, overflow and NaN', () => {
  for (const x of [0, 1, -2, 0.5, 65504, -65504, 2 ** -14, 2 ** -24, 1 + 2 ** -10]) assert.is(fromHalf(toHalf(x)), x, String(x));
  assert.is(toHalf(1 + 2 ** -11), toHalf(1)); // tie → even mantissa
  assert.is(fromHalf(toHalf(1 + 3 * 2 ** -11)), 1 + 2 * 2 ** -10); // tie → even (up)
  assert.is(fromHalf(toHalf(70000)), Infinity);
  assert.is(fromHalf(toHalf(-1e9)), -Infinity);
  assert.is(fromHalf(toHalf(2 ** -26)), 0);
  assert.ok(Number.isNaN(fromHalf(toHalf(NaN))));
  assert.is(toHalf(-0), 0x8000);
  // Round trip of random values: relative error within half an ulp (2^-11).
  const rnd = seededRandom(3);
  const src = Float32Array.from({ length: 1000 }, () => (rnd() - 0.5) * 20);
  const back = halfToFloats(floatsToHalf(src, new Uint16Array(src.length)), new Float32Array(src.length));
  for (let i = 0; i < src.length; i++) assert.ok(Math.abs(back[i]! - src[i]!) <= Math.abs(src[i]!) * 2 ** -11 + 2 ** -25, `${src[i]} → ${back[i]}`);
});

test('CFG is the two-branch plan [uncond: 1 − g, cond: g] at every step', () => {
  const p = cfgPlan(7.5, 3);
  assert.equal(p.branches.map((b) => [b.text, b.label]), [[1, 'uncond'], [0, 'cond']]);
  assert.equal(Array.from(p.weights), [-6.5, 7.5, -6.5, 7.5, -6.5, 7.5]);
});

test('branches that are zero at every step are pruned (CFG at scale 1 runs one branch)', () => {
  const p = pruneZeroBranches(cfgPlan(1, 4));
  assert.is(p.branches.length, 1);
  assert.is(p.branches[0]!.label, 'cond');
  assert.equal(Array.from(p.weights), [1, 1, 1, 1]);
  // A branch used at one step only is kept, with its column intact.
  const w = Float32Array.from([1, 0, 0, 0, 0.5, 0.5]);
  const q = pruneZeroBranches({ branches: [{ text: 0 }, { text: 1 }], weights: w });
  assert.is(q.branches.length, 2);
  assert.throws(() => pruneZeroBranches({ branches: [{ text: 0 }], weights: new Float32Array(3) }), hasErrorCode('INVALID_VALUE'));
});

test('plans are checked against the schedule, the texts and the neighbour slots', () => {
  const lim = (steps: number, texts: number, neighbourLength: number, embedLength = 0) => ({ steps, texts, neighbourLength, embedLength });
  const ok = cfgPlan(5, 4);
  checkPlan(ok, lim(4, 2, 0));
  assert.throws(() => checkPlan(ok, lim(5, 2, 0)), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => checkPlan(ok, lim(4, 1, 0)), hasErrorCode('OUT_OF_RANGE'));
  const nb = { branches: [{ text: 0, neighbours: new Float32Array(8) }], weights: new Float32Array([1]) };
  assert.throws(() => checkPlan(nb, lim(1, 1, 0)), hasErrorCode('UNSUPPORTED'));
  assert.throws(() => checkPlan(nb, lim(1, 1, 6)), hasErrorCode('LENGTH_MISMATCH'));
  checkPlan(nb, lim(1, 1, 8));
  const emb = { branches: [{ text: 0, neighbourEmbeds: new Float32Array(12) }], weights: new Float32Array([1]) };
  assert.throws(() => checkPlan(emb, lim(1, 1, 8, 0)), hasErrorCode('UNSUPPORTED'));
  assert.throws(() => checkPlan(emb, lim(1, 1, 8, 10)), hasErrorCode('LENGTH_MISMATCH'));
  checkPlan(emb, lim(1, 1, 8, 12));
  const both = { branches: [{ text: 0, neighbours: new Float32Array(8), neighbourEmbeds: new Float32Array(12) }], weights: new Float32Array([1]) };
  assert.throws(() => checkPlan(both, lim(1, 1, 8, 12)), hasErrorCode('INVALID_VALUE'));
  assert.throws(() => checkPlan({ branches: [{ text: 0 }], weights: Float32Array.of(NaN) }, lim(1, 1, 0)), hasErrorCode('NON_FINITE'));
});

test('encoder_hidden_states are branch-major: text tokens, then neighbours or zeros', () => {
  const layout = { batch: 2, textLength: 2, slots: 1, width: 2 };
  const texts = Float32Array.from([1, 1, 2, 2, /* text 1 */ 3, 3, 4, 4]);
  const out = new Float32Array(2 * 2 * 3 * 2).fill(NaN);
  buildEncoderHiddenStates(out, layout, [{ text: 1 }, { text: 0, neighbours: Float32Array.of(9, 8) }], texts);
  assert.equal(Array.from(out), [
    3, 3, 4, 4, 0, 0, /* branch 0 image 0 */ 3, 3, 4, 4, 0, 0, /* image 1 */
    1, 1, 2, 2, 9, 8, /* branch 1 image 0 */ 1, 1, 2, 2, 9, 8,
  ]);
});

test('requests: defaults, and typed errors for bad values', () => {
  const r = normalizeRequest({ prompt: 'a cat', seed: 3 }, defaults);
  assert.equal([r.steps, r.guidanceScale, r.sampler, r.batch, r.seed, r.negativePrompt], [25, 7.5, 'ddim', 1, 3, '']);
  assert.ok(Number.isInteger(normalizeRequest({ prompt: '' }, defaults).seed), 'a random seed is chosen when none is given');
  const bad: [Record<string, unknown>, string, 'type' | 'range'][] = [
    [{ prompt: 1 }, 'INVALID_TYPE', 'type'],
    [{ prompt: 'x', steps: 0 }, 'OUT_OF_RANGE', 'range'],
    [{ prompt: 'x', steps: 1001 }, 'OUT_OF_RANGE', 'range'],
    [{ prompt: 'x', steps: 2.5 }, 'INVALID_VALUE', 'range'],
    [{ prompt: 'x', seed: 1.5 }, 'INVALID_VALUE', 'range'],
    [{ prompt: 'x', seed: -1 }, 'OUT_OF_RANGE', 'range'],
    [{ prompt: 'x', seed: '7' }, 'INVALID_TYPE', 'type'],
    [{ prompt: 'x', seed: 2 ** 53 }, 'OUT_OF_RANGE', 'range'],
    [{ prompt: 'x', guidanceScale: NaN }, 'NON_FINITE', 'range'],
    [{ prompt: 'x', batch: 0 }, 'OUT_OF_RANGE', 'range'],
    [{ prompt: 'x', batch: 17 }, 'OUT_OF_RANGE', 'range'],
    [{ prompt: 'x', sampler: 'plms' }, 'INVALID_VALUE', 'range'],
    [{ prompt: 'x', strength: 0.5 }, 'INVALID_VALUE', 'range'],
    [{ prompt: 'x', initImage: new Uint8Array(4), strength: 0 }, 'OUT_OF_RANGE', 'range'],
    [{ prompt: 'x', initImage: new Uint8Array(4), strength: 1.5 }, 'OUT_OF_RANGE', 'range'],
    [{ prompt: 'x', initImage: 'file.png' }, 'INVALID_TYPE', 'type'],
    [{ prompt: 'x', stepz: 3 }, 'UNKNOWN_OPTION', 'range'],
    [{ prompt: 'x', onProgress: 3 }, 'INVALID_TYPE', 'type'],
  ];
  for (const [req, c, kind] of bad) {
    assert.throws(() => normalizeRequest(req, defaults), (e: Error & { code?: string }) =>
      e.code === c && (kind === 'type' ? e instanceof TypeError : e instanceof RangeError), JSON.stringify(req));
  }
});

test('an already-aborted signal is an AbortError before anything runs', () => {
  const c = new AbortController();
  c.abort();
  assert.throws(() => normalizeRequest({ prompt: 'x', signal: c.signal }, defaults), (e: unknown) => e instanceof AbortError && (e as AbortError).code === 'ABORTED');
});

test('parameters text follows the A1111 layout', () => {
  const text = formatParameters({
    prompt: 'red heart', negativePrompt: 'blurry', steps: 20, sampler: 'euler-ancestral', karras: false, guidanceScale: 5,
    seed: 42, width: 64, height: 64, model: 'tiny-emoji', modelHash: '0123456789abcdef',
  });
  const [p, n, fields] = text.split('\n');
  assert.is(p, 'red heart');
  assert.is(n, 'Negative prompt: blurry');
  assert.match(fields!, /^Steps: 20, Sampler: Euler a, CFG scale: 5, Seed: 42, Size: 64x64, Model hash: 0123456789, Model: tiny-emoji, Version: ragdiff /);
});

test('bundle reader: every missing or malformed file is an error naming it', () => {
  const m = readBundle(repoPath('test/fixtures/pipeline/tiny-bundle'));
  assert.is(m.scalingFactor, 0.5);
  assert.is(m.neighbourSlots, 4);
  assert.is(readBundle(repoPath('test/fixtures/pipeline/sd-fp16')).scalingFactor, DEFAULT_SCALING_FACTOR);

  const { dir, cleanup } = tempDir();
  try {
    const b = join(dir, 'b');
    const fresh = () => {
      rmSync(b, { recursive: true, force: true });
      cpSync(repoPath('test/fixtures/pipeline/tiny-bundle'), b, { recursive: true });
    };
    const expect = (c: string, file: string) => (e: unknown) => (e as { code?: string }).code === c && String((e as Error).message).includes(file);
    assert.throws(() => readBundle(join(dir, 'nope')), hasErrorCode('MODEL_FILE_MISSING'));
    fresh(); rmSync(join(b, 'model_index.json'));
    assert.throws(() => readBundle(b), expect('MODEL_FILE_MISSING', 'model_index.json'));
    fresh(); writeFileSync(join(b, 'model_index.json'), '{ "unet": ');
    assert.throws(() => readBundle(b), expect('MODEL_FILE_INVALID', 'model_index.json'));
    fresh(); rmSync(join(b, 'unet', 'model.onnx'));
    assert.throws(() => readBundle(b), expect('MODEL_FILE_MISSING', join('unet', 'model.onnx')));
    fresh(); writeFileSync(join(b, 'vae_decoder', 'model.onnx'), '');
    assert.throws(() => readBundle(b), expect('MODEL_FILE_INVALID', join('vae_decoder', 'model.onnx')));
    fresh(); rmSync(join(b, 'scheduler', 'scheduler_config.json'));
    assert.throws(() => readBundle(b), expect('MODEL_FILE_MISSING', 'scheduler_config.json'));
    fresh(); writeFileSync(join(b, 'vae_decoder', 'config.json'), '{"scaling_factor": -1}');
    assert.throws(() => readBundle(b), expect('MODEL_FILE_INVALID', 'config.json'));
    fresh(); rmSync(join(b, 'tokenizer', 'tokenizer.json'));
    assert.throws(() => readBundle(b), expect('MODEL_FILE_MISSING', 'tokenizer.json'));
  } finally {
    cleanup();
  }
});

test.run();
