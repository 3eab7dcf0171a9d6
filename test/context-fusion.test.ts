// Conditioning fusion: the native kernel that assembles encoder_hidden_states for
// every guidance branch (native/core/context_fusion.cc, src/pipeline/context.ts)
// against the TypeScript assembly it replaced (test/reference/context.ts) — bit
// for bit, over many shapes, weights and thread-pool sizes; the typed errors for
// bad arguments (nothing written); neighbour weights through a real generation;
// and, where a CUDA device is usable, the CUDA twin against the CPU kernel.
import { test } from 'uvu';
import sharp from 'sharp';
import * as assert from 'uvu/assert';
import { native } from '../src/native.js';
import { branchContext, buildEncoderHiddenStates, fuseContext } from '../src/pipeline/context.js';
import { checkPlan, type GuidanceBranch } from '../src/pipeline/guidance.js';
import { Pipeline, type GenerateRequest } from '../src/pipeline/index.js';
import { referenceEncoderHiddenStates, referenceFuse } from './reference/context.js';
import { hasErrorCode, repoPath, seededRandom } from './helpers.js';

const n = native();
const rand = seededRandom(1010);
const randomArray = (len: number) => {
  const a = Float32Array.from({ length: len }, () => rand() * 4 - 2);
  // Signed zeros and tiny values too: a dropped slot must be +0, never w * -0.
  for (let i = 0; i < len; i += 17) a[i] = i % 2 ? -0 : 1e-39;
  return a;
};
const randInt = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));

function bitsEqual(a: Float32Array, b: Float32Array, what: string): void {
  assert.is(a.length, b.length, `${what}: length`);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length), y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) assert.unreachable(`${what}: element ${i} differs: ${a[i]} (0x${x[i]!.toString(16)}) vs ${b[i]} (0x${y[i]!.toString(16)})`);
  }
}

type WeightKind = 'none' | 'ones' | 'zeros' | 'fractional' | 'mixed';
function slotWeights(kind: WeightKind, slots: number): Float32Array | undefined {
  if (kind === 'none') return undefined;
  return Float32Array.from({ length: slots }, (_, s) => {
    if (kind === 'ones') return 1;
    if (kind === 'zeros') return 0;
    if (kind === 'fractional') return rand() * 1.5 + 0.01;
    return [0, 1, 0.37, -2.5, 1e-3][s % 5]!; // drop, copy, scale, negate-and-scale, tiny
  });
}

/** Random branches: some with neighbours (and weights of `kind`), some without. */
function randomCase(kind: WeightKind, shape?: { branches: number; batch: number; textLength: number; slots: number; width: number; texts: number }) {
  const s = shape ?? { branches: randInt(1, 5), batch: randInt(1, 5), textLength: randInt(1, 20), slots: randInt(0, 6), width: [1, 3, 4, 7, 16, 33, 128][randInt(0, 6)]!, texts: randInt(1, 4) };
  const textStates = randomArray(s.texts * s.textLength * s.width);
  const branches: GuidanceBranch[] = Array.from({ length: s.branches }, (_, b) => {
    const withNb = s.slots > 0 && (b % 2 === 1 || rand() < 0.5);
    const w = withNb ? slotWeights(kind, s.slots) : undefined;
    return { text: randInt(0, s.texts - 1), ...(withNb ? { neighbours: randomArray(s.slots * s.width) } : {}), ...(w ? { neighbourWeights: w } : {}) };
  });
  const layout = { batch: s.batch, textLength: s.textLength, slots: s.slots, width: s.width };
  const len = s.branches * s.batch * (s.textLength + s.slots) * s.width;
  return { s, layout, branches, textStates, len };
}

test('native fusion equals the TypeScript assembly bit for bit (random shapes, slots 0..6, batch > 1, every kind of weights)', () => {
  let cases = 0;
  for (const kind of ['none', 'ones', 'zeros', 'fractional', 'mixed'] as const) {
    for (let k = 0; k < 40; k++) {
      const { s, layout, branches, textStates, len } = randomCase(kind);
      const got = new Float32Array(len).fill(NaN), want = new Float32Array(len).fill(NaN);
      buildEncoderHiddenStates(got, layout, branches, textStates);
      referenceEncoderHiddenStates(want, layout, branches, textStates);
      bitsEqual(got, want, `${kind} ${JSON.stringify(s)}`);
      cases++;
    }
  }
  // Plain SD: no slots at all.
  const { layout, branches, textStates, len } = randomCase('none', { branches: 2, batch: 3, textLength: 77, slots: 0, width: 40, texts: 2 });
  const got = new Float32Array(len), want = new Float32Array(len);
  bitsEqual(buildEncoderHiddenStates(got, layout, branches, textStates), referenceEncoderHiddenStates(want, layout, branches, textStates), 'slots = 0');
  assert.ok(cases === 200);
});

test('large outputs split over the thread pool give the same bits at every pool size', () => {
  const before = n.threadCount();
  try {
    // 4 branches × batch 16 × (77 + 4) tokens × 1024 = 5.3M floats, past the pool's threshold (2^22).
    const { s, layout, branches, textStates, len } = randomCase('mixed', { branches: 4, batch: 16, textLength: 77, slots: 4, width: 1024, texts: 3 });
    const want = referenceEncoderHiddenStates(new Float32Array(len), layout, branches, textStates);
    for (const threads of [1, 2, 3, 8]) {
      n.setThreadCount(threads);
      const got = buildEncoderHiddenStates(new Float32Array(len).fill(NaN), layout, branches, textStates);
      bitsEqual(got, want, `${threads} threads ${JSON.stringify(s)}`);
    }
  } finally {
    n.setThreadCount(before);
  }
});

test('weights: 0 writes +0, 1 copies, other values scale in float32; set -1 and null weights', () => {
  const layout = { textLength: 1, slots: 4, width: 2 };
  const texts = Float32Array.of(1, 2, /* text 1 */ 3, 4);
  const tokens = Float32Array.of(-0, 5, 6, 7, 0.1, -3, 8, 9, /* set 1 */ 10, 11, 12, 13, 14, 15, 16, 17);
  const weights = Float32Array.of(0, 1, 0.5, -2, /* row 1 */ 1, 1, 1, 1, /* row 2 */ 3, 3, 3, 3);
  const out = new Float32Array(3 * 5 * 2).fill(NaN);
  fuseContext(out, layout, { text: [1, 0, 1], neighbours: [0, -1, 1] }, texts, tokens, weights);
  assert.equal(Array.from(out), [
    3, 4, /* set 0 × [0, 1, 0.5, -2] */ 0, 0, 6, 7, Math.fround(0.05), -1.5, -16, -18,
    1, 2, /* set -1 */ 0, 0, 0, 0, 0, 0, 0, 0,
    3, 4, /* set 1 × 3 */ 30, 33, 36, 39, 42, 45, 48, 51,
  ]);
  assert.ok(Object.is(out[2], 0), 'a dropped slot is +0 even over -0');
  // Null weights copy every slot; null neighbour indices give zeros everywhere.
  const copy = fuseContext(new Float32Array(30), layout, { text: [0, 0, 0], neighbours: [1, 0, 1] }, texts, tokens);
  assert.equal(Array.from(copy.subarray(12, 20)), [-0, 5, 6, 7, 0.1, -3, 8, 9].map(Math.fround));
  const none = fuseContext(new Float32Array(30).fill(NaN), layout, { text: [0, 1, 0] }, texts, null);
  assert.equal(Array.from(none.subarray(2, 10)), [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(Array.from(none.subarray(10, 12)), [3, 4]);
});

test('row-level fusion takes any mapping of rows to texts and neighbour sets (Int32Array or arrays)', () => {
  for (let k = 0; k < 30; k++) {
    const L = randInt(1, 9), S = randInt(0, 5), W = randInt(1, 20), texts = randInt(1, 3), sets = randInt(0, 3), rows = randInt(0, 12);
    const textStates = randomArray(texts * L * W), tokens = sets > 0 ? randomArray(sets * S * W) : null;
    const text = Int32Array.from({ length: rows }, () => randInt(0, texts - 1));
    const nb = sets > 0 && S > 0 ? Int32Array.from({ length: rows }, () => randInt(-1, sets - 1)) : null;
    const weights = rand() < 0.5 ? Float32Array.from({ length: rows * S }, () => [0, 1, rand() * 3 - 1][randInt(0, 2)]!) : null;
    const len = rows * (L + S) * W;
    const got = fuseContext(new Float32Array(len).fill(NaN), { textLength: L, slots: S, width: W }, { text: k % 2 ? text : Array.from(text), neighbours: nb }, textStates, tokens, weights);
    const want = referenceFuse(new Float32Array(len), { textLength: L, slots: S, width: W }, text, nb, textStates, tokens, weights);
    bitsEqual(got, want, `rows=${rows} L=${L} S=${S} W=${W} sets=${sets}`);
  }
});

test('branchContext packs one neighbour set per branch with neighbours and per-row weights', () => {
  const a = Float32Array.of(1, 2, 3, 4), b = Float32Array.of(5, 6, 7, 8);
  const ctx = branchContext([{ text: 1 }, { text: 0, neighbours: a }, { text: 0, neighbours: b, neighbourWeights: Float32Array.of(0.5, 0) }], 2, { textLength: 3, slots: 2, width: 2 });
  assert.equal(Array.from(ctx.rows.text), [1, 1, 0, 0, 0, 0]);
  assert.equal(Array.from(ctx.rows.neighbours!), [-1, -1, 0, 0, 1, 1]);
  assert.equal(Array.from(ctx.neighbourTokens!), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(Array.from(ctx.weights!), [1, 1, 1, 1, 1, 1, 1, 1, 0.5, 0, 0.5, 0]);
  const plain = branchContext([{ text: 1 }, { text: 0 }], 3, { textLength: 3, slots: 0, width: 2 });
  assert.is(plain.neighbourTokens, null);
  assert.is(plain.weights, null);
  assert.is(plain.rows.neighbours, null);
  assert.throws(() => branchContext([{ text: 0, neighbours: a, neighbourWeights: Float32Array.of(1) }], 1, { textLength: 3, slots: 2, width: 2 }), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => branchContext([{ text: 0, neighbours: Float32Array.of(1, 2) }], 1, { textLength: 3, slots: 2, width: 2 }), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => branchContext([{ text: 0 }], 0, { textLength: 3, slots: 2, width: 2 }), hasErrorCode('OUT_OF_RANGE'));
});

// One valid call (rows 3, L 2, S 2, W 4, texts 2, sets 2) that each bad case below breaks in one place.
function validArgs(): Args {
  return {
    out: new Float32Array(3 * 4 * 4),
    rows: 3, L: 2, S: 2, W: 4,
    textStates: randomArray(2 * 2 * 4),
    textIndex: Int32Array.of(0, 1, 1),
    tokens: randomArray(2 * 2 * 4),
    setIndex: Int32Array.of(-1, 0, 1),
    weights: Float32Array.of(1, 1, 0.5, 0, 2, 3),
  };
}
interface Args { out: Float32Array; rows: number; L: number; S: number; W: number; textStates: Float32Array; textIndex: Int32Array; tokens: Float32Array | null; setIndex: Int32Array | null; weights: Float32Array | null }
const callNative = (f: typeof n.fuseContext, a: Args) => f(a.out, a.rows, a.L, a.S, a.W, a.textStates, a.textIndex, a.tokens, a.setIndex, a.weights);

const BAD: [string, (a: Args) => void, 'type' | 'range', string][] = [
  ['out is a Float64Array', (a) => (a.out = new Float64Array(48) as unknown as Float32Array), 'type', 'INVALID_TYPE'],
  ['textStates is a plain array', (a) => (a.textStates = [1, 2] as unknown as Float32Array), 'type', 'INVALID_TYPE'],
  ['textIndex is a Float32Array', (a) => (a.textIndex = Float32Array.of(0, 1, 1) as unknown as Int32Array), 'type', 'INVALID_TYPE'],
  ['neighbourIndex is a Uint32Array', (a) => (a.setIndex = Uint32Array.of(0, 0, 0) as unknown as Int32Array), 'type', 'INVALID_TYPE'],
  ['weights is a Float64Array', (a) => (a.weights = new Float64Array(6) as unknown as Float32Array), 'type', 'INVALID_TYPE'],
  ['width is a string', (a) => (a.W = '4' as unknown as number), 'type', 'INVALID_TYPE'],
  ['width is 0', (a) => (a.W = 0), 'range', 'OUT_OF_RANGE'],
  ['textLength is 1.5', (a) => (a.L = 1.5), 'range', 'OUT_OF_RANGE'],
  ['rows is negative', (a) => (a.rows = -1), 'range', 'OUT_OF_RANGE'],
  ['out too short', (a) => (a.out = new Float32Array(47)), 'range', 'LENGTH_MISMATCH'],
  ['textStates not whole sequences', (a) => (a.textStates = randomArray(17)), 'range', 'LENGTH_MISMATCH'],
  ['textStates empty', (a) => (a.textStates = new Float32Array(0)), 'range', 'LENGTH_MISMATCH'],
  ['neighbourTokens not whole sets', (a) => (a.tokens = randomArray(9)), 'range', 'LENGTH_MISMATCH'],
  ['textIndex one short', (a) => (a.textIndex = Int32Array.of(0, 1)), 'range', 'LENGTH_MISMATCH'],
  ['neighbourIndex one long', (a) => (a.setIndex = Int32Array.of(0, 0, 0, 0)), 'range', 'LENGTH_MISMATCH'],
  ['weights one short', (a) => (a.weights = Float32Array.of(1, 1, 1, 1, 1)), 'range', 'LENGTH_MISMATCH'],
  ['text index -1', (a) => (a.textIndex = Int32Array.of(0, -1, 0)), 'range', 'OUT_OF_RANGE'],
  ['text index = texts', (a) => (a.textIndex = Int32Array.of(0, 2, 0)), 'range', 'OUT_OF_RANGE'],
  ['neighbour index -2', (a) => (a.setIndex = Int32Array.of(-2, 0, 0)), 'range', 'OUT_OF_RANGE'],
  ['neighbour index = sets', (a) => (a.setIndex = Int32Array.of(0, 2, 0)), 'range', 'OUT_OF_RANGE'],
  ['neighbour index without tokens', (a) => (a.tokens = null), 'range', 'OUT_OF_RANGE'],
  ['NaN weight', (a) => (a.weights![3] = NaN), 'range', 'NON_FINITE'],
  ['Infinity weight', (a) => (a.weights![0] = -Infinity), 'range', 'NON_FINITE'],
  ['out aliases textStates', (a) => { const buf = new Float32Array(64); a.out = buf.subarray(0, 48); a.textStates = buf.subarray(40, 56); }, 'range', 'INVALID_VALUE'],
  ['out aliases weights', (a) => { const buf = new Float32Array(54); a.out = buf.subarray(0, 48); a.weights = buf.subarray(46, 52); }, 'range', 'INVALID_VALUE'],
];

function expectRefused(f: () => unknown, kind: 'type' | 'range', code: string, what: string): void {
  try {
    f();
  } catch (e) {
    assert.ok(kind === 'type' ? e instanceof TypeError : e instanceof RangeError, `${what}: ${String(e)} should be a ${kind === 'type' ? 'TypeError' : 'RangeError'}`);
    assert.is((e as { code?: string }).code, code, `${what}: code`);
    return;
  }
  assert.unreachable(`${what}: accepted`);
}

test('bad arguments to the native kernel are typed errors, and out is left untouched', () => {
  const ok = validArgs();
  const want = referenceFuse(new Float32Array(48), { textLength: 2, slots: 2, width: 4 }, ok.textIndex, ok.setIndex, ok.textStates, ok.tokens, ok.weights);
  bitsEqual(callNative(n.fuseContext, ok), want, 'the valid call');
  for (const [what, breakIt, kind, code] of BAD) {
    const a = validArgs();
    breakIt(a);
    const sentinel = a.out instanceof Float32Array ? a.out.slice() : null;
    if (a.out instanceof Float32Array) a.out.fill(-7);
    expectRefused(() => callNative(n.fuseContext, a), kind, code, what);
    if (sentinel && a.out instanceof Float32Array && !what.startsWith('out aliases')) assert.ok(a.out.every((v) => v === -7), `${what}: out was written`);
  }
  expectRefused(() => (n.fuseContext as unknown as () => void)(), 'type', 'INVALID_TYPE', 'no arguments');
});

test('the TypeScript API refuses the same calls with the same codes', () => {
  for (const [what, breakIt, kind, code] of BAD) {
    if (what.startsWith('rows is')) continue; // rows are the index list's length here
    const a = validArgs();
    breakIt(a);
    if (a.out instanceof Float32Array) a.out.fill(-7);
    expectRefused(() => fuseContext(a.out, { textLength: a.L, slots: a.S, width: a.W }, { text: a.textIndex, neighbours: a.setIndex }, a.textStates, a.tokens, a.weights), kind, code, what);
    if (a.out instanceof Float32Array && !what.startsWith('out aliases')) assert.ok(a.out.every((v) => v === -7), `${what}: out was written`);
  }
  expectRefused(() => fuseContext(new Float32Array(4), { textLength: 1, slots: 0, width: 4 }, { text: [0.5] }, new Float32Array(4), null), 'range', 'OUT_OF_RANGE', 'fractional row index');
  expectRefused(() => fuseContext(new Float32Array(4), null as unknown as { textLength: 1; slots: 0; width: 4 }, { text: [0] }, new Float32Array(4), null), 'type', 'INVALID_TYPE', 'layout null');
});

test('plans check neighbourWeights: a Float32Array of one finite weight per slot, on a model with slots', () => {
  const lim = { steps: 1, texts: 1, neighbourLength: 8, embedLength: 0, slots: 2 };
  const plan = (w: unknown) => ({ branches: [{ text: 0, neighbours: new Float32Array(8), neighbourWeights: w as Float32Array }], weights: Float32Array.of(1) });
  checkPlan(plan(Float32Array.of(0.5, 0)), lim);
  checkPlan(plan(null), lim);
  assert.throws(() => checkPlan(plan([1, 1]), lim), hasErrorCode('INVALID_TYPE'));
  assert.throws(() => checkPlan(plan(Float32Array.of(1)), lim), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => checkPlan(plan(Float32Array.of(1, NaN)), lim), hasErrorCode('NON_FINITE'));
  assert.throws(() => checkPlan({ branches: [{ text: 0, neighbourWeights: Float32Array.of(1, 1) }], weights: Float32Array.of(1) }, { ...lim, neighbourLength: 0, slots: 0 }), hasErrorCode('UNSUPPORTED'));
});

test('generation: neighbour weights of ones change nothing, zeros equal no neighbours, halves equal halved tokens', async () => {
  const pipeline = await Pipeline.load(repoPath('test/fixtures/pipeline/tiny-bundle'));
  try {
    const { neighbourSlots: S, tokenWidth: W } = pipeline.info;
    const base: GenerateRequest = { prompt: 'a red cat', seed: 7, steps: 4, guidanceScale: 4, batch: 2 };
    const nb = Float32Array.from({ length: S * W }, (_, i) => Math.sin(i));
    const w = new Float32Array(base.steps! * 2);
    for (let i = 0; i < base.steps!; i++) w.set([-3, 4], 2 * i);
    const run = async (cond: GuidanceBranch) => {
      const r = await pipeline.generate({ ...base, guidance: { branches: [{ text: 1 }, cond], weights: w } });
      return Buffer.concat(await Promise.all(r.images.map((im) => sharp(im.png).raw().toBuffer())));
    };
    const plain = await run({ text: 0, neighbours: nb });
    const ones = await run({ text: 0, neighbours: nb, neighbourWeights: new Float32Array(S).fill(1) });
    const zeros = await run({ text: 0, neighbours: nb, neighbourWeights: new Float32Array(S) });
    const none = await run({ text: 0 });
    const half = await run({ text: 0, neighbours: nb, neighbourWeights: new Float32Array(S).fill(0.5) });
    const halved = await run({ text: 0, neighbours: nb.map((x) => x * 0.5) });
    assert.ok(ones.equals(plain), 'weights of one are the plain neighbours');
    assert.ok(zeros.equals(none), 'weights of zero are no neighbours');
    assert.ok(half.equals(halved), 'weights scale the tokens');
    assert.not.ok(half.equals(plain), 'a weight of one half changes the image');
    const bad = { ...base, guidance: { branches: [{ text: 0, neighbours: nb, neighbourWeights: Float32Array.of(1) }], weights: new Float32Array(base.steps!).fill(1) } };
    await pipeline.generate(bad).then(() => assert.unreachable('accepted'), (e) => assert.is((e as { code?: string }).code, 'LENGTH_MISMATCH'));
  } finally {
    await pipeline.close();
  }
});

// ---- CUDA twin --------------------------------------------------------------------------------
const gpu = n.cuda.available();
if (!gpu) console.log(`CUDA fusion tests skipped: ${n.cuda.reason()}`);
const gpuTest: (name: string, fn: () => void) => void = gpu ? (name, fn) => test(name, fn) : () => {};

test('without a usable device, cuda.fuseContext checks its arguments, then refuses with CUDA_UNAVAILABLE', () => {
  if (gpu) return; // covered by the GPU tests below
  const a = validArgs();
  a.textIndex = Int32Array.of(0, 5, 0);
  expectRefused(() => callNative(n.cuda.fuseContext, a), 'range', 'OUT_OF_RANGE', 'bad index on the CUDA path');
  try {
    callNative(n.cuda.fuseContext, validArgs());
    assert.unreachable('accepted without a device');
  } catch (e) {
    assert.is((e as { code?: string }).code, 'CUDA_UNAVAILABLE');
  }
});

gpuTest('the CUDA twin equals the CPU kernel bit for bit (vectorised and scalar widths, all weight kinds)', () => {
  for (const kind of ['none', 'ones', 'zeros', 'fractional', 'mixed'] as const) {
    for (let k = 0; k < 12; k++) {
      const shape = k === 0 ? { branches: 4, batch: 8, textLength: 77, slots: 4, width: 768, texts: 2 } : undefined;
      const { s, layout, branches, textStates, len } = randomCase(kind, shape);
      const { rows, neighbourTokens, weights } = branchContext(branches, layout.batch, layout);
      const cpu = n.fuseContext(new Float32Array(len).fill(NaN), rows.text.length, s.textLength, s.slots, s.width, textStates, rows.text, neighbourTokens, rows.neighbours, weights);
      const dev = n.cuda.fuseContext(new Float32Array(len).fill(NaN), rows.text.length, s.textLength, s.slots, s.width, textStates, rows.text, neighbourTokens, rows.neighbours, weights);
      bitsEqual(dev, cpu, `${kind} ${JSON.stringify(s)}`);
    }
  }
});

gpuTest('the CUDA twin refuses bad arguments like the CPU kernel', () => {
  for (const [what, breakIt, kind, code] of BAD) {
    const a = validArgs();
    breakIt(a);
    expectRefused(() => callNative(n.cuda.fuseContext, a), kind, code, `cuda: ${what}`);
  }
});

test.run();
