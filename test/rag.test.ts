/**
 * Retrieval-augmented generation as one call: RagPipeline.generate({ retrieval })
 * retrieves from a store the user built (or takes their pinned and uploaded
 * references), conditions the tiny-emoji generator in every mode, and says on
 * every image which references shaped it. Bad input is a typed error and
 * changes nothing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import sharp from 'sharp';
import { demoInputs, ImageStore, loadClipEncoders, type AddInput, type ClipEncoders } from '../src/store/index.js';
import { RagPipeline, readProvenance, type RagResult } from '../src/rag/index.js';
import { fakeEncoder } from './fixtures/store/fake-encoder.js';
import { pngClaiming } from './fixtures/store/images.js';
import { hasErrorCode, rejects, repoPath, tempDir } from './helpers.js';

const NAMES = ['red apple', 'green apple', 'tomato', 'banana', 'grapes', 'cherries', 'strawberry', 'lemon', 'tangerine', 'pear',
  'grinning face', 'heavy black heart', 'cat face', 'dog face', 'automobile', 'earth globe europe-africa', 'black sun with rays', 'snowman', 'rocket', 'penguin'];
const META = { source: 'twemoji', licence: 'CC-BY-4.0', attribution: 'Twemoji © Twitter, Inc and other contributors, CC-BY 4.0' };
const t = tempDir('ragdiff-rag-');
let enc: ClipEncoders;
let store: ImageStore;
let small: ImageStore;
let rag: RagPipeline;
const steps = 6;

const inputs = (names: string[]): AddInput[] => demoInputs('twemoji').filter((i) => names.includes((i as { meta?: { name?: string } }).meta?.name ?? ''));

/** RGB on white, as the pipeline decodes references. */
async function pixels(png: Uint8Array): Promise<Buffer> {
  return sharp(png).flatten({ background: '#ffffff' }).removeAlpha().raw().toBuffer();
}
function psnr(a: Buffer, b: Buffer): number {
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i]! - b[i]!) ** 2;
  return 10 * Math.log10((255 * 255) / (se / a.length || 1e-12));
}
const idOf = (s: ImageStore, name: string) => s.list({ limit: 1000 }).find((r) => r.name === name)!.id;

test.before(async () => {
  enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  store = await ImageStore.open(`${t.dir}/store`, { encoder: enc });
  const report = await store.add(inputs(NAMES), META);
  assert.is(report.failed, 0);
  small = await ImageStore.open(`${t.dir}/small`, { encoder: enc });
  await small.add(inputs(['red apple', 'banana', 'automobile']), META);
  rag = await RagPipeline.load(repoPath('models/tiny-emoji'));
});

test.after(async () => {
  await rag.close();
  await store.close();
  await small.close();
  await enc.close();
  t.cleanup();
});

test('tokens (the bundle default): the k nearest references fill the neighbour slots, listed on every image and in its PNG', async () => {
  const r = await rag.generate({ prompt: 'red apple', seed: 3, steps, batch: 2, retrieval: { store } });
  assert.is(r.stats.retrieval!.mode, 'tokens');
  assert.is(r.references.length, 4);
  assert.is(r.references[0]!.name, 'red apple');
  assert.equal(r.references.map((x) => x.rank), [1, 2, 3, 4]);
  assert.equal(r.references.map((x) => (x.usage[0] as { slot: number }).slot).sort(), [0, 1, 2, 3]);
  for (const ref of r.references) {
    assert.is(ref.kind, 'stored');
    assert.is(ref.source, 'twemoji');
    assert.is(ref.licence, 'CC-BY-4.0');
    assert.match(ref.attribution, /Twemoji/);
  }
  // The bundle adds reference attention on the top reference by default (model_index.json; the model card's eval:rag table).
  assert.equal(r.references[0]!.usage.map((u) => u.as), ['token-slot', 'attention']);
  assert.ok(Math.abs(r.references[0]!.influence - (0.25 + 1) / 2) < 1e-9);
  for (const ref of r.references.slice(1)) assert.ok(Math.abs(ref.influence - 0.25 / 2) < 1e-9);
  assert.ok(Math.abs(r.references.reduce((a, x) => a + x.influence, 0) - 1) < 1e-9);
  const scores = r.references.map((x) => x.score);
  assert.equal(scores, [...scores].sort((a, b) => b - a));
  assert.is(r.images.length, 2);
  for (const im of r.images) {
    assert.equal(im.references, r.references);
    const e = readProvenance(im.png);
    assert.is(e.parameters.seed, im.seed);
    assert.is(e.provenance!.retrieval.mode, 'tokens');
    assert.equal(e.provenance!.retrieval.scales, { text: 3, retrieval: 4 });
    assert.is(e.provenance!.retrieval.store.encoderId, enc.id);
    assert.equal(e.provenance!.references.map((x) => x.id), r.references.map((x) => x.id));
    assert.match(e.parameters.guidance as string, /^tokens s_t=3 s_r=4/);
  }
  assert.is(r.stats.branches, 3);
  assert.is(r.parameters!.guidanceScale, 3, 'the parameters record the text scale the plan used');
  assert.ok(r.stats.retrieval!.totalMs > 0 && r.stats.retrieval!.searchMs >= 0);
});

test('retrieval scale 0 is exactly plain classifier-free guidance; a non-zero one changes the image', async () => {
  const plain = await rag.generate({ prompt: 'tomato', seed: 5, steps, guidanceScale: 3 });
  const zero = await rag.generate({ prompt: 'tomato', seed: 5, steps, retrieval: { store, scales: { text: 3, retrieval: 0 }, referenceAttention: false } });
  const four = await rag.generate({ prompt: 'tomato', seed: 5, steps, retrieval: { store, scales: { text: 3, retrieval: 4 }, referenceAttention: false } });
  assert.is(zero.stats.branches, 2);
  assert.ok((await pixels(plain.images[0]!.png)).equals(await pixels(zero.images[0]!.png)));
  assert.not.ok((await pixels(plain.images[0]!.png)).equals(await pixels(four.images[0]!.png)));
});

test('reference attention on the retrieval branch only: s_r scales it, so with s_r = 0 it has nowhere to act', async () => {
  const req = (branches: 'prompt' | 'retrieval', retrieval: number) =>
    rag.generate({ prompt: 'tomato', seed: 5, steps, retrieval: { store, scales: { text: 3, retrieval }, referenceAttention: { fidelity: 1, branches } } });
  const plain = await rag.generate({ prompt: 'tomato', seed: 5, steps, guidanceScale: 3 });
  const onRetrieval = await req('retrieval', 4);
  const onPrompt = await req('prompt', 4);
  const prunedRetrieval = await req('retrieval', 0);
  const prunedPrompt = await req('prompt', 0);
  const [p0, r4, p4, r0, q0] = await Promise.all([plain, onRetrieval, onPrompt, prunedRetrieval, prunedPrompt].map((x) => pixels(x.images[0]!.png)));
  assert.not.ok(r4.equals(p4), 'the choice of branches changes the image');
  assert.ok(r0.equals(p0), 'retrieval branch pruned (s_r = 0): plain CFG, the reference is not attended anywhere');
  assert.not.ok(q0.equals(p0), 'on the prompt branches the reference still acts with s_r = 0');
  assert.match(String(readProvenance(onRetrieval.images[0]!.png).parameters.guidance), /retrieval branch/);
  await rejects(
    rag.generate({ prompt: 'tomato', steps, retrieval: { store, referenceAttention: { branches: 'all' as never } } }),
    (e) => hasErrorCode('INVALID_VALUE')(e) && e instanceof RangeError,
    'branches: all',
  );
});

test('the database matters: the same prompt and seed with another store gives another image and other references', async () => {
  const a = await rag.generate({ prompt: 'banana', seed: 2, steps, retrieval: { store, k: 3 } });
  const b = await rag.generate({ prompt: 'banana', seed: 2, steps, retrieval: { store: small, k: 3 } });
  assert.not.equal(a.references.map((x) => x.id), b.references.map((x) => x.id));
  assert.not.ok((await pixels(a.images[0]!.png)).equals(await pixels(b.images[0]!.png)));
});

test('every mode runs and batches its branches into one denoiser call per step', async () => {
  const expect = { tokens: 3, mixture: 4, interleaved: 3, 'reference-init': 2, 'reference-attention': 2 } as const;
  for (const mode of rag.modes as (keyof typeof expect)[]) {
    const r = await rag.generate({ prompt: 'cherries', seed: 1, steps, retrieval: { store, mode } });
    assert.is(r.stats.branches, expect[mode], mode);
    assert.ok(r.stats.nfe! <= steps, `${mode}: ${r.stats.nfe} denoiser calls for ${steps} steps`);
    assert.ok(r.references.length >= 1, mode);
    assert.is(readProvenance(r.images[0]!.png).provenance!.retrieval.mode, mode);
  }
});

test('reference-init starts from the reference: at low strength the image stays close to it', async () => {
  const ref = await pixels(store.readImage(idOf(store, 'grapes')));
  const r = await rag.generate({ prompt: 'grapes', seed: 4, steps: 10, retrieval: { store, mode: 'reference-init', referenceInit: { strength: 0.3 }, referenceAttention: false } });
  assert.is(r.references.length, 1);
  assert.equal(r.references[0]!.usage, [{ as: 'init-latent', weight: 1, strength: 0.3 }]);
  assert.is(r.stats.stepsRun, 3);
  const none = await rag.generate({ prompt: 'grapes', seed: 4, steps: 10 });
  const near = psnr(await pixels(r.images[0]!.png), ref);
  const far = psnr(await pixels(none.images[0]!.png), ref);
  assert.ok(near > far + 3, `PSNR to the reference: ${near.toFixed(1)} dB with reference-init vs ${far.toFixed(1)} without`);
});

test('reference-init blends the top references in latent space with weights summing to one', async () => {
  const r = await rag.generate({ prompt: 'lemon', seed: 4, steps, retrieval: { store, mode: 'reference-init', k: 3, neighbourWeighting: 'score' } });
  assert.is(r.references.length, 3);
  const w = r.references.map((x) => (x.usage[0] as { weight: number }).weight);
  assert.ok(Math.abs(w.reduce((a, b) => a + b, 0) - 1) < 1e-12);
  assert.equal(w, [...w].sort((a, b) => b - a));
});

test('pinned ids are used even when retrieval would not pick them; excluded ids never are', async () => {
  const car = idOf(store, 'automobile');
  const apple = idOf(store, 'red apple');
  const r = await rag.generate({ prompt: 'red apple', seed: 1, steps, retrieval: { store, references: [{ id: car }], excludeIds: [apple] } });
  const ids = r.references.map((x) => x.id);
  assert.ok(ids.includes(car));
  assert.not.ok(ids.includes(apple));
  assert.ok(r.references.find((x) => x.id === car)!.pinned);
  assert.is(r.references.filter((x) => !x.pinned).length, 3);
});

test('an uploaded reference is embedded through the store gate, listed by hash, and not stored', async () => {
  const before = store.stats();
  const upload = await sharp({ create: { width: 40, height: 40, channels: 3, background: { r: 240, g: 200, b: 20 } } }).png().toBuffer();
  const r = await rag.generate({ prompt: 'lemon', seed: 1, steps, retrieval: { store, references: [{ image: upload, name: 'my lemon', licence: 'CC0-1.0' }] } });
  const up = r.references.find((x) => x.kind === 'upload')!;
  assert.ok(up);
  assert.is(up.name, 'my lemon');
  assert.is(up.licence, 'CC0-1.0');
  assert.match(up.sha256, /^[0-9a-f]{64}$/);
  assert.is(up.id, undefined);
  assert.equal(store.stats(), before);
  assert.ok(readProvenance(r.images[0]!.png).provenance!.references.some((x) => x.sha256 === up.sha256));
});

test('query-in-first-slot (RDM sample_with_query) puts the query embedding first and k − 1 references after it', async () => {
  const r = await rag.generate({ prompt: 'pear', seed: 1, steps, retrieval: { store, queryInFirstSlot: true } });
  assert.is(r.references.length, 3);
  assert.equal(r.references.map((x) => (x.usage[0] as { slot: number }).slot).sort(), [1, 2, 3]);
  await rejects(rag.generate({ prompt: 'pear', steps, retrieval: { store, queryInFirstSlot: true, k: 4 } }), hasErrorCode('OUT_OF_RANGE'));
});

test('a screen drops refused retrieved references (reported) and refuses pinned ones; it sees the retrieval embedding', async () => {
  const seen: number[] = [];
  const screened = new RagPipeline(rag.pipeline, {
    screen: (ref) => {
      seen.push(ref.embedding.length);
      return ref.source === 'twemoji' && ref.id === idOf(store, 'red apple') ? { allow: false, reason: 'test rule' } : { allow: true };
    },
  });
  const r = await screened.generate({ prompt: 'red apple', seed: 1, steps, retrieval: { store } });
  assert.not.ok(r.references.some((x) => x.name === 'red apple'));
  assert.equal(r.stats.retrieval!.screened, [{ ref: idOf(store, 'red apple'), reason: 'test rule' }]);
  assert.ok(seen.every((n) => n === store.width));
  await rejects(screened.generate({ prompt: 'x', steps, retrieval: { store, references: [{ id: idOf(store, 'red apple') }] } }), hasErrorCode('REFERENCE_BLOCKED'));
});

test('reflective re-ranking drafts without retrieval, then prefers references unlike the draft', async () => {
  const r = await rag.generate({ prompt: 'strawberry', seed: 1, steps, retrieval: { store, reflective: { lambda: 0.5, draftSteps: 3, candidates: 8 } } });
  assert.is(r.references.length, 4);
  assert.ok(r.stats.retrieval!.draftMs > 0);
  assert.is(r.stats.retrieval!.candidates, 8);
  assert.ok(readProvenance(r.images[0]!.png).provenance!.retrieval.reflective);
});

test('retrieve-only returns the stored image that answers the query, with or without a generated one', async () => {
  const only = await rag.generate({ prompt: 'snowman', steps, retrieval: { store, retrieveOnly: { above: 0.5 } } });
  assert.is(only.images.length, 0);
  assert.is(only.retrieved!.reference.name, 'snowman');
  assert.ok(only.retrieved!.png.equals(store.readImage(only.retrieved!.reference.id!)));
  const both = await rag.generate({ prompt: 'snowman', steps, seed: 1, retrieval: { store, retrieveOnly: { above: 0.5, alsoGenerate: true } } });
  assert.is(both.images.length, 1);
  assert.ok(both.retrieved);
  const below = await rag.generate({ prompt: 'snowman', steps, seed: 1, retrieval: { store, retrieveOnly: { above: 1 } } });
  assert.is(below.retrieved, undefined);
  assert.is(below.images.length, 1);
});

test('an empty store generates without retrieval and says so', async () => {
  const empty = await ImageStore.open(`${t.dir}/empty`, { encoder: enc });
  try {
    const r = await rag.generate({ prompt: 'automobile', seed: 1, steps, retrieval: { store: empty } });
    // Bad input is refused even when there is nothing to retrieve.
    await rejects(rag.generate({ prompt: 'x', steps, retrieval: { store: empty, query: new Float32Array(empty.width).fill(Number.NaN) } }), hasErrorCode('NON_FINITE'));
    assert.is(r.images.length, 1);
    assert.is(r.references.length, 0);
    assert.match(r.stats.retrieval!.skipped!, /no active images/);
    assert.match(readProvenance(r.images[0]!.png).provenance!.retrieval.skipped!, /no active images/);
    assert.is(r.stats.branches, 2);
  } finally {
    await empty.close();
  }
});

test('bad input: a typed error, and the store is unchanged', async () => {
  const before = store.stats();
  const bad = async (retrieval: Record<string, unknown>, code: string, ctor?: ErrorConstructor) => {
    await rejects(
      rag.generate({ prompt: 'red apple', steps, retrieval: { store, ...retrieval } as never }),
      (e) => hasErrorCode(code)(e) && (!ctor || e instanceof ctor),
      `${JSON.stringify(Object.keys(retrieval))} → ${code}`,
    );
  };
  await bad({ k: 0 }, 'OUT_OF_RANGE', RangeError);
  await bad({ k: 5 }, 'OUT_OF_RANGE', RangeError); // tiny-emoji has 4 neighbour slots
  await bad({ k: 2.5 }, 'INVALID_VALUE', RangeError);
  await bad({ mode: 'telepathy' }, 'INVALID_VALUE', RangeError);
  await bad({ references: [{ id: 'no-such-image' }] }, 'REFERENCE_NOT_FOUND');
  await bad({ references: [{ image: Buffer.from('not an image at all') }] }, 'IMAGE_UNSUPPORTED');
  await bad({ references: [{ image: pngClaiming(100_000, 100_000) }] }, 'IMAGE_TOO_LARGE');
  await bad({ references: [{ image: 'bytes' }] }, 'INVALID_TYPE', TypeError);
  await bad({ scales: { retrieval: Number.NaN } }, 'NON_FINITE', RangeError);
  await bad({ scales: { text: Infinity } }, 'NON_FINITE', RangeError);
  await bad({ referenceInit: { strength: 0 } }, 'OUT_OF_RANGE', RangeError);
  await bad({ mixture: { fine: { both: 1, text: Number.NaN, retrieval: 0 } } }, 'NON_FINITE', RangeError);
  await bad({ interleave: { textShare: 2 } }, 'OUT_OF_RANGE', RangeError);
  await bad({ colour: 'red' }, 'UNKNOWN_OPTION', RangeError);
  await bad({ query: 42 }, 'INVALID_TYPE', TypeError);
  await bad({ query: new Float32Array(3) }, 'LENGTH_MISMATCH', RangeError);
  await rejects(rag.generate({ prompt: 'x', steps, retrieval: { store: {} as never } }), hasErrorCode('INVALID_TYPE'));
  await rejects(rag.generate({ prompt: 'x', steps, retrieval: { store: small, k: 4 } }), hasErrorCode('OUT_OF_RANGE'), 'k larger than the store');
  await rejects(rag.generate({ prompt: 'x', steps, guidance: {} } as never), hasErrorCode('UNKNOWN_OPTION'));
  // The pipeline's latent blend: weights must be finite and sum to one.
  await rejects(rag.pipeline.generate({ prompt: 'x', steps, initImages: { images: [store.readImage(idOf(store, 'automobile'))], weights: [0.5] } }), hasErrorCode('INVALID_VALUE'));
  await rejects(rag.pipeline.generate({ prompt: 'x', steps, initImages: { images: [store.readImage(idOf(store, 'automobile'))], weights: [Number.NaN] } }), hasErrorCode('NON_FINITE'));
  assert.equal(store.stats(), before);
});

test('removed and blocked references are refused by name', async () => {
  const s = await ImageStore.open(`${t.dir}/states`, { encoder: enc });
  try {
    await s.add(inputs(['red apple', 'banana', 'automobile', 'black sun with rays', 'earth globe europe-africa', 'rocket']), META);
    const removed = idOf(s, 'banana');
    const blocked = idOf(s, 'automobile');
    await s.remove(removed);
    await s.block(blocked, 'policy test');
    await rejects(rag.generate({ prompt: 'x', steps, retrieval: { store: s, references: [{ id: removed }] } }), hasErrorCode('REFERENCE_REMOVED'));
    await rejects(rag.generate({ prompt: 'x', steps, retrieval: { store: s, references: [{ id: blocked }] } }), hasErrorCode('REFERENCE_BLOCKED'));
    const r = await rag.generate({ prompt: 'automobile', steps, seed: 1, retrieval: { store: s } });
    assert.not.ok(r.references.some((x) => x.id === removed || x.id === blocked));
  } finally {
    await s.close();
  }
});

test('a store embedded by another encoder is refused for the token modes, naming both encoders', async () => {
  const other = await ImageStore.open(`${t.dir}/other`, { encoder: fakeEncoder() });
  try {
    await rejects(
      rag.generate({ prompt: 'x', steps, retrieval: { store: other, mode: 'tokens' } }),
      (e) => hasErrorCode('ENCODER_MISMATCH')(e) && /fake-grid-48/.test((e as Error).message) && /tiny-emoji@/.test((e as Error).message),
    );
  } finally {
    await other.close();
  }
});

test('a bundle without neighbour slots supports only reference-init, and says so', async () => {
  const plain = await RagPipeline.load(repoPath('test/fixtures/pipeline/sd-fp16'));
  try {
    const modes = plain.modes;
    await rejects(
      plain.generate({ prompt: 'x', steps: 2, retrieval: { store, mode: 'tokens' } }),
      (e) => hasErrorCode('UNSUPPORTED')(e) && (e as Error).message.includes(`it supports: ${modes.join(', ') || 'none'}`),
    );
  } finally {
    await plain.close();
  }
});

test('without retrieval it is the plain pipeline', async () => {
  const a: RagResult = await rag.generate({ prompt: 'sun', seed: 9, steps });
  const b = await rag.pipeline.generate({ prompt: 'sun', seed: 9, steps });
  assert.ok(a.images[0]!.png.equals(b.images[0]!.png));
  assert.equal(a.references, []);
});

test.run();
