/**
 * Safety at every door, through one SafetyGuard: ingest (the store's screen
 * hooks), retrieval (re-checked against the policy in force, so a policy
 * change applies to an existing store at the next query), uploads and pinned
 * references, the prompt, and the generated image. Proved by instrumenting the
 * pipeline call — what actually reaches the model — not by reading the code.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { demoInputs, ImageStore, loadClipEncoders, type AddInput, type ClipEncoders } from '../src/store/index.js';
import { RagPipeline, readProvenance } from '../src/rag/index.js';
import type { GenerateRequest, GenerateResult } from '../src/pipeline/index.js';
import { SafetyGuard, type SafetyPolicy } from '../src/safety/index.js';
import { loadPolicy } from '../src/safety/load.js';
import { hasErrorCode, rejects, repoPath, tempDir } from './helpers.js';

const BENIGN = ['red apple', 'banana', 'grinning face', 'cat face', 'automobile', 'snowman', 'rocket', 'penguin'];
const BAD = ['pistol', 'bomb', 'skull'];
const META = { source: 'twemoji', licence: 'CC-BY-4.0', attribution: 'Twemoji © Twitter, Inc and other contributors, CC-BY 4.0' };
const t = tempDir('ragdiff-safety-doors-');
const steps = 4;
let enc: ClipEncoders;
let rag: RagPipeline;
let defaultPolicy: SafetyPolicy;
let open: ImageStore; // built without any screen: everything active
const calls: GenerateRequest[] = [];

const inputs = (names: string[]): AddInput[] => demoInputs('twemoji').filter((i) => names.includes((i as { meta?: { name?: string } }).meta?.name ?? ''));
const pathOf = (name: string) => (inputs([name])[0] as { path: string }).path;
const idOf = (s: ImageStore, name: string) => s.list({ limit: 1000 }).find((r) => r.name === name)!.id;
const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);

/** Every embedding slot and init image that entered a pipeline call since `from`. */
function sentSince(from: number): { embeds: Float32Array[]; images: Uint8Array[] } {
  const embeds: Float32Array[] = [];
  const images: Uint8Array[] = [];
  for (const req of calls.slice(from)) {
    for (const b of req.guidance?.branches ?? []) {
      const e = b.neighbourEmbeds;
      if (e) for (let i = 0; i < e.length; i += 128) embeds.push(e.slice(i, i + 128));
    }
    for (const im of req.initImages?.images ?? []) images.push(im);
    for (const im of req.referenceAttention?.images ?? []) images.push(im);
    if (req.initImage) images.push(req.initImage);
  }
  return { embeds, images };
}
const reached = (from: number, embedding: Float32Array, bytes: Uint8Array): boolean => {
  const s = sentSince(from);
  return s.embeds.some((e) => dot(e, embedding) > 0.999) || s.images.some((im) => Buffer.compare(Buffer.from(im), Buffer.from(bytes)) === 0);
};

test.before(async () => {
  enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  defaultPolicy = await loadPolicy(repoPath('policies/default.json'), { encoder: enc });
  open = await ImageStore.open(`${t.dir}/open`, { encoder: enc });
  assert.is((await open.add(inputs([...BENIGN, ...BAD]), META)).added, BENIGN.length + BAD.length);
  rag = await RagPipeline.load(repoPath('models/tiny-emoji'));
  // The instrument: every request that reaches the pipeline (and so the worker and the UNet).
  const pipeline = rag.pipeline;
  const original = pipeline.generate.bind(pipeline);
  pipeline.generate = (req: GenerateRequest): Promise<GenerateResult> => {
    calls.push(req);
    return original(req);
  };
});

test.after(async () => {
  await rag.close();
  await open.close();
  await enc.close();
  t.cleanup();
});

test('ingest: images matching a concept are stored as blocked with the rule and score, never searchable; the rest are added', async () => {
  const guard = await SafetyGuard.create(defaultPolicy, { encoder: enc });
  const store = await ImageStore.open(`${t.dir}/ingest`, { encoder: enc, screen: guard.imageScreen() });
  try {
    const report = await store.add(inputs([...BENIGN, ...BAD]), META);
    const blocked = report.items.filter((i) => i.status === 'blocked');
    assert.is(blocked.length, BAD.length, JSON.stringify(report.items.map((i) => [i.input.split('/').pop(), i.status, i.reason])));
    assert.is(report.added, BENIGN.length);
    for (const [name, rule] of [['pistol', 'concept:pistol'], ['bomb', 'concept:bomb'], ['skull', 'concept:skull']]) {
      const img = store.list({ status: 'blocked', limit: 100 }).find((r) => r.name === name)!;
      assert.ok(img, name);
      assert.match(img.reason!, new RegExp(`rule ${rule} score 0\\.\\d+`));
      assert.match(img.reason!, new RegExp(defaultPolicy.hash.slice(0, 12)));
    }
    assert.is(store.stats().blocked, BAD.length);
    const hits = await store.query({ text: 'pistol', k: store.size });
    assert.not.ok(hits.some((h) => BAD.includes(h.name)), 'a blocked image is never a search result');
  } finally {
    await store.close();
  }
});

test("a blocked image's embedding and pixels never reach the model (instrumented pipeline call); without the guard they do", async () => {
  const pistol = open.embeddingOf(idOf(open, 'pistol'))!;
  const pistolBytes = open.readImage(idOf(open, 'pistol'));
  const request = { prompt: 'gun', seed: 2, steps, retrieval: { store: open, k: 4, referenceInit: { strength: 0.5, blend: 4 } } };

  // Control: with no guard, the pistol is the top reference and enters both as a token embedding and as init pixels.
  let from = calls.length;
  const plain = await rag.generate(request);
  assert.ok(plain.references.some((r) => r.name === 'pistol'));
  assert.ok(reached(from, pistol, pistolBytes), 'the instrument sees the pistol when nothing screens it');

  // The same request through a guard whose prompt door is off for this concept (the prompt passes), so retrieval runs.
  const policy = { version: 'retrieval-only', concepts: [{ id: 'pistol', text: ['pistol'], images: ['npm:emoji-datasource-twitter/img/twitter/64/1f52b.png'], threshold: 0.572, doors: ['retrieval', 'upload', 'ingest', 'output'] }] };
  const guard = await SafetyGuard.create(policy, { encoder: enc });
  const guarded = new RagPipeline(rag.pipeline, { screen: guard.referenceScreen() });
  from = calls.length;
  const r = await guarded.generate(request);
  assert.is(calls.length, from + 1);
  assert.not.ok(reached(from, pistol, pistolBytes), 'neither the embedding nor the pixels of the blocked image reached the pipeline');
  assert.not.ok(r.references.some((x) => x.name === 'pistol'));
  assert.ok(r.stats.retrieval!.screened.some((s) => s.ref === idOf(open, 'pistol') && /rule concept:pistol/.test(s.reason)));
  assert.is(r.references.length, 4, 'a refused reference is replaced by the next one');
});

test('a policy change blocks already-stored images at the next query, with no re-ingest', async () => {
  const guard = await SafetyGuard.create({ version: 'empty', concepts: [] }, { encoder: enc });
  const guarded = new RagPipeline(rag.pipeline, guard.ragOptions());
  const before = await guarded.generate({ prompt: 'bomb', seed: 1, steps, retrieval: { store: open, k: 2 } });
  assert.ok(before.references.some((r) => r.name === 'bomb'));
  const seq = open.stats().seq;
  await guard.update(defaultPolicy);
  const from = calls.length;
  // The bomb's own embedding as the retrieval query (a text query would meet the prompt door first).
  const after = await guarded.generate({ prompt: 'banana', seed: 1, steps, retrieval: { store: open, k: 2, query: open.embeddingOf(idOf(open, 'bomb'))! } });
  assert.not.ok(after.references.some((r) => BAD.includes(r.name)), JSON.stringify(after.references.map((r) => r.name)));
  assert.ok(after.stats.retrieval!.screened.some((s) => s.ref === idOf(open, 'bomb')));
  assert.not.ok(reached(from, open.embeddingOf(idOf(open, 'bomb'))!, open.readImage(idOf(open, 'bomb'))));
  assert.is(open.stats().seq, seq, 'the store was not touched');
  assert.is(open.get(idOf(open, 'bomb'))!.status, 'active');
});

test('uploads and user-picked references: refused with REFERENCE_BLOCKED before any model call', async () => {
  const guard = await SafetyGuard.create(defaultPolicy, { encoder: enc });
  const guarded = new RagPipeline(rag.pipeline, guard.ragOptions());
  const from = calls.length;
  await rejects(guarded.generate({ prompt: 'banana', steps, retrieval: { store: open, references: [{ id: idOf(open, 'pistol') }] } }), hasErrorCode('REFERENCE_BLOCKED'));
  await rejects(guarded.generate({ prompt: 'banana', steps, retrieval: { store: open, references: [{ image: readFileSync(pathOf('bomb')) }] } }), hasErrorCode('REFERENCE_BLOCKED'));
  // A store opened with the guard's hooks refuses the upload already while embedding it.
  const screened = await ImageStore.open(`${t.dir}/uploads`, { encoder: enc, screen: guard.imageScreen() });
  try {
    await rejects(screened.embedReference(readFileSync(pathOf('skull'))), hasErrorCode('IMAGE_BLOCKED'));
  } finally {
    await screened.close();
  }
  assert.is(calls.length, from, 'nothing reached the pipeline');
  const ok = await guarded.generate({ prompt: 'banana', seed: 1, steps, retrieval: { store: open, k: 2, references: [{ image: readFileSync(pathOf('banana')) }] } });
  assert.is(ok.references.filter((r) => r.kind === 'upload').length, 1);
});

test('the prompt door: PROMPT_BLOCKED naming the rule, before retrieval or any model call; paraphrases too', async () => {
  const guard = await SafetyGuard.create(defaultPolicy, { encoder: enc });
  const guarded = new RagPipeline(rag.pipeline, guard.ragOptions());
  const from = calls.length;
  for (const [prompt, rule] of [['water pistol', 'concept:pistol'], ['skull and crossbones', 'concept:skull'], ['knife', 'concept:kitchen-knife']]) {
    await rejects(guarded.generate({ prompt, steps, retrieval: { store: open } }), (e) => hasErrorCode('PROMPT_BLOCKED')(e) && (e as { rule?: string }).rule === rule && new RegExp(rule).test((e as Error).message), prompt);
    await rejects(guarded.generate({ prompt, steps }), hasErrorCode('PROMPT_BLOCKED'), `${prompt} without retrieval`);
    // A text query steers retrieval and may fill a neighbour slot: it passes the same door.
    await rejects(guarded.generate({ prompt: 'banana', steps, retrieval: { store: open, query: prompt } }), hasErrorCode('PROMPT_BLOCKED'), `${prompt} as retrieval.query`);
  }
  // An embedding query placed in the first neighbour slot is screened like an upload.
  await rejects(guarded.generate({ prompt: 'banana', steps, retrieval: { store: open, k: 2, query: open.embeddingOf(idOf(open, 'pistol'))!, queryInFirstSlot: true } }), hasErrorCode('REFERENCE_BLOCKED'));
  assert.is(calls.length, from);
});

test('the output door: a generated image of a blocked concept is not returned even when the prompt slipped through; the result names the rule', async () => {
  // tiny-emoji draws "red heart" recognisably; this policy screens hearts at the output door only, so the prompt passes.
  const policy = { version: 'hearts', concepts: [{ id: 'heart', text: ['red heart'], images: ['npm:emoji-datasource-twitter/img/twitter/64/2764-fe0f.png'], threshold: 0.6, doors: ['output'] }] };
  const guard = await SafetyGuard.create(policy, { encoder: enc });
  assert.is((await guard.checkPrompt('red heart')).action, 'allow', 'the prompt door lets it through');
  const guarded = new RagPipeline(rag.pipeline, guard.ragOptions());
  const r = await guarded.generate({ prompt: 'red heart', seed: 1, steps: 10, batch: 2, captureLatents: [5] });
  assert.is(r.images.length, 0);
  assert.is(r.blocked!.length, 2);
  for (const b of r.blocked!) {
    assert.is(b.rule, 'concept:heart');
    assert.ok(b.score > 0);
  }
  assert.equal(r.blocked!.map((b) => b.seed), [1, 2]);
  assert.equal(r.latents, [], 'latents would decode to the blocked images');
  // Control: another prompt under the same policy is returned.
  const ok = await guarded.generate({ prompt: 'automobile', seed: 1, steps: 10 });
  assert.is(ok.images.length, 1);
  assert.equal(ok.blocked, []);
});

test("the policy's version and hash are in every output's provenance, with and without retrieval", async () => {
  const guard = await SafetyGuard.create(defaultPolicy, { encoder: enc });
  const guarded = new RagPipeline(rag.pipeline, guard.ragOptions());
  const withRetrieval = await guarded.generate({ prompt: 'banana', seed: 1, steps, retrieval: { store: open, k: 2 } });
  const plain = await guarded.generate({ prompt: 'banana', seed: 1, steps });
  for (const r of [withRetrieval, plain]) {
    assert.equal(r.policy, { version: 'emoji-default-2', hash: defaultPolicy.hash });
    assert.equal(readProvenance(r.images[0]!.png).policy, { version: 'emoji-default-2', hash: defaultPolicy.hash });
  }
  assert.is(readProvenance(withRetrieval.images[0]!.png).provenance!.policy!.hash, defaultPolicy.hash);
});

test('per-source caps in retrieval results (policy retrieval.maxPerSource)', async () => {
  const store = await ImageStore.open(`${t.dir}/sources`, { encoder: enc });
  try {
    const names = ['red apple', 'green apple', 'tomato', 'cherries', 'strawberry', 'banana'];
    for (const [i, n] of names.entries()) await store.add(inputs([n]), { ...META, source: i < 4 ? 'orchard' : 'market' });
    const guard = await SafetyGuard.create({ version: 'cap', retrieval: { maxPerSource: 2 } }, { encoder: enc });
    const guarded = new RagPipeline(rag.pipeline, guard.ragOptions());
    const r = await guarded.generate({ prompt: 'red apple', seed: 1, steps, retrieval: { store, k: 4 } });
    const per = r.references.reduce<Record<string, number>>((m, x) => ((m[x.source] = (m[x.source] ?? 0) + 1), m), {});
    assert.equal(per, { orchard: 2, market: 2 });
    assert.ok(r.stats.retrieval!.screened.some((s) => /source cap/.test(s.reason)));
    const uncapped = await rag.generate({ prompt: 'red apple', seed: 1, steps, retrieval: { store, k: 4 } });
    assert.ok(uncapped.references.filter((x) => x.source === 'orchard').length > 2, 'without the cap the orchard fills more slots');
  } finally {
    await store.close();
  }
});

test('poisoning: a source contributing many near-identical images close to a concept is reported, and refused with action block', async () => {
  const policy = {
    version: 'poison',
    // The concept alone does not fire on these images (threshold 0.99) — the cluster does.
    concepts: [{ id: 'pistol', text: ['pistol'], threshold: 0.99 }],
    poisoning: { clusterCos: 0.97, nearConcept: 0.3, maxCluster: 3, action: 'block' },
  };
  const guard = await SafetyGuard.create(policy, { encoder: enc });
  const store = await ImageStore.open(`${t.dir}/poison`, { encoder: enc, screen: guard.imageScreen(), nearDuplicates: false });
  try {
    const base = await sharp(readFileSync(pathOf('pistol'))).flatten({ background: '#ffffff' }).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const variants: AddInput[] = [];
    for (let i = 0; i < 5; i++) {
      const px = Buffer.from(base.data);
      px[i * 3] = (px[i * 3]! + 7) % 256; // one pixel differs: a new file, the same picture
      variants.push({ bytes: await sharp(px, { raw: { width: base.info.width, height: base.info.height, channels: 3 } }).png().toBuffer(), meta: { name: `surrogate ${i}` } });
    }
    const report = await store.add(variants, { source: 'evil.example', licence: 'CC0' });
    assert.equal(report.items.map((i) => i.status), ['added', 'added', 'blocked', 'blocked', 'blocked']);
    assert.match(report.items[2]!.reason!, /rule poisoning:evil\.example/);
    const good = await store.add(inputs(['red apple', 'banana']), { source: 'good', licence: 'CC0' });
    assert.is(good.added, 2);
    const rep = guard.poisoningReport();
    assert.is(rep[0]!.source, 'evil.example');
    assert.is(rep[0]!.largestCluster, 5);
    assert.is(rep[0]!.fired, 3);
    assert.equal(rep[0]!.concepts, ['concept:pistol']);
    assert.not.ok(rep.some((s) => s.source === 'good' && s.largestCluster > 1));
  } finally {
    await store.close();
  }
});

test('perceptual-hash blocklist: the listed picture and its near copies are blocked at ingest and as uploads', async () => {
  const apple = open.get(idOf(open, 'red apple'))!;
  const guard = await SafetyGuard.create({ version: 'hashes', hashes: [{ id: 'known-apple', phash: apple.phash, maxDistance: 4 }] }, { encoder: enc });
  const store = await ImageStore.open(`${t.dir}/hashes`, { encoder: enc, screen: guard.imageScreen() });
  try {
    const bytes = readFileSync(pathOf('red apple'));
    const resized = await sharp(bytes).resize(60, 60).png().toBuffer(); // other bytes, the same picture
    const r = await store.add([{ bytes: resized, meta: { name: 'apple copy' } }, ...inputs(['banana'])], META);
    assert.equal(r.items.map((i) => i.status), ['blocked', 'added']);
    assert.match(r.items[0]!.reason!, /rule hash:known-apple score 0\.\d+/);
    await rejects(store.embedReference(bytes), hasErrorCode('IMAGE_BLOCKED'));
    // Retrieval door: the stored original in the open store is refused by the reference screen (it sees the pHash).
    const guarded = new RagPipeline(rag.pipeline, guard.ragOptions());
    await rejects(guarded.generate({ prompt: 'banana', steps, retrieval: { store: open, references: [{ id: apple.id }] } }), hasErrorCode('REFERENCE_BLOCKED'));
  } finally {
    await store.close();
  }
});

test('action "flag": recorded and let through at every door', async () => {
  const audit = `${t.dir}/flag-audit.log`;
  const policy = { version: 'flags', concepts: [{ id: 'heart', text: ['red heart'], images: ['npm:emoji-datasource-twitter/img/twitter/64/2764-fe0f.png'], threshold: 0.6, action: 'flag' }] };
  const guard = await SafetyGuard.create(policy, { encoder: enc, audit: { path: audit } });
  const guarded = new RagPipeline(rag.pipeline, guard.ragOptions());
  const d = await guard.checkPrompt('red heart');
  assert.is(d.action, 'flag');
  assert.is(d.rule, 'concept:heart');
  const r = await guarded.generate({ prompt: 'red heart', seed: 1, steps: 10 });
  assert.is(r.images.length, 1, 'a flagged output is returned');
  assert.equal(r.blocked, []);
  const lines = readFileSync(audit, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { door: string; action: string });
  assert.ok(lines.some((l) => l.door === 'output' && l.action === 'flag'));
  assert.ok(lines.some((l) => l.door === 'prompt' && l.action === 'flag'));
  guard.close();
});

test('source and licence rules: applied at ingest and, after a policy change, at retrieval (store hook, synchronous)', async () => {
  const guard = await SafetyGuard.create({ version: 'open' }, { encoder: enc });
  const store = await ImageStore.open(`${t.dir}/meta`, { encoder: enc, screen: guard.imageScreen() });
  try {
    await store.add(inputs(['red apple']), { source: 'orchard', licence: 'CC0' });
    await store.add(inputs(['banana']), { source: 'scraper.example/x', licence: 'unknown' });
    assert.is(store.size, 2);
    await guard.update({ version: 'strict', sources: { deny: ['scraper.example/*'] }, licences: { allow: ['CC0', 'CC-BY-4.0'] } });
    const hits = await store.query({ text: 'banana', k: 1 });
    assert.is(hits[0]!.name, 'red apple', 'the denied source is skipped at query time');
    const r = await store.add(inputs(['tomato']), { source: 'orchard', licence: 'all rights reserved' });
    assert.is(r.items[0]!.status, 'blocked');
    assert.match(r.items[0]!.reason!, /rule licence:allow/);
  } finally {
    await store.close();
  }
});

test.run();
