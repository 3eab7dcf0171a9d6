/**
 * Orientation and format bypasses (issue 23.2): the policy's own blocked
 * images (policies/anchors), vertically flipped, turned 90°, re-encoded as a
 * TIFF on black without alpha, or hidden as the second frame of a GIF, at
 * every image door — ingest, uploads, pinned references, retrieval results
 * and the output — and against a perceptual-hash blocklist.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { demoInputs, ImageStore, loadClipEncoders, type ClipEncoders } from '../src/store/index.js';
import { RagPipeline } from '../src/rag/index.js';
import type { GenerateRequest, GenerateResult } from '../src/pipeline/index.js';
import { SafetyGuard, type SafetyPolicy } from '../src/safety/index.js';
import { loadPolicy } from '../src/safety/load.js';
import { dihedral, dihedralAll } from '../src/image/dihedral.js';
import { hashDistance, orientationHashes, perceptualHash } from '../src/store/phash.js';
import { decodeRgbPng } from '../src/image/png-rgb.js';
import { encodeRgbPng } from '../src/pipeline/png.js';
import { pngChunk, pngChunks } from '../src/image/png-text.js';
import { hasErrorCode, rejects, repoPath, tempDir } from './helpers.js';

/** An APNG: default image `first` (IDAT, also frame 0), then `second` as frame 1 (fdAT). Both 64×64, flattened to RGB. */
async function animatedPng(first: Buffer, second: Buffer): Promise<Buffer> {
  const rgbPng = async (b: Buffer) => Buffer.from(encodeRgbPng(new Uint8Array(await sharp(b).flatten({ background: '#ffffff' }).resize(64, 64).removeAlpha().raw().toBuffer()), 64, 64));
  const a = pngChunks(await rgbPng(first));
  const b = pngChunks(await rgbPng(second));
  const u32 = (...v: number[]) => { const x = Buffer.alloc(4 * v.length); v.forEach((n, i) => x.writeUInt32BE(n, 4 * i)); return x; };
  const fctl = (seq: number) => Buffer.concat([u32(seq, 64, 64, 0, 0), Buffer.from([0, 1, 0, 10, 0, 0])]);
  const idat = a.filter((c) => c.type === 'IDAT').map((c) => pngChunk('IDAT', c.data));
  const fdat = b.filter((c) => c.type === 'IDAT').map((c, i) => pngChunk('fdAT', Buffer.concat([u32(3 + i), c.data])));
  return Buffer.concat([Buffer.from(first.subarray(0, 0)), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), pngChunk('IHDR', a[0]!.data), pngChunk('acTL', u32(2, 0)), pngChunk('fcTL', fctl(0)), ...idat, pngChunk('fcTL', fctl(2)), ...fdat, pngChunk('IEND', new Uint8Array(0))]);
}

const META = { source: 'twemoji', licence: 'CC-BY-4.0' };
const t = tempDir('ragdiff-safety-images-');
const steps = 2;
const anchor = (f: string) => readFileSync(repoPath(`policies/anchors/${f}`));
const BLOCKED = { pistol: anchor('pistol-twemoji-1f52b.png'), bomb: anchor('bomb-noto-1f4a3.png'), knife: anchor('kitchen-knife-twemoji-1f52a.png') };
const banana = readFileSync((demoInputs('twemoji').find((i) => (i as { meta?: { name?: string } }).meta?.name === 'banana') as { path: string }).path);

let enc: ClipEncoders;
let policy: SafetyPolicy;
let rag: RagPipeline;
const calls: GenerateRequest[] = [];
/** name → bytes: every bypass of every blocked fixture. */
const bypasses: Record<string, Buffer> = {};
let gif: Buffer; // banana, then the pistol

test.before(async () => {
  enc = await loadClipEncoders(repoPath('models/tiny-emoji'));
  policy = await loadPolicy(repoPath('policies/default.json'), { encoder: enc });
  for (const [name, png] of Object.entries(BLOCKED)) {
    bypasses[`${name} flipped`] = await sharp(png).flip().png().toBuffer();
    bypasses[`${name} rot90`] = await sharp(png).rotate(90).png().toBuffer();
    bypasses[`${name} tiff on black`] = await sharp(png).flatten({ background: '#000000' }).removeAlpha().tiff().toBuffer();
  }
  gif = await sharp([banana, BLOCKED.pistol], { join: { animated: true } }).gif().toBuffer();
  assert.is((await sharp(gif).metadata()).pages, 2);
  rag = await RagPipeline.load(repoPath('models/tiny-emoji'));
  const original = rag.pipeline.generate.bind(rag.pipeline);
  rag.pipeline.generate = (req: GenerateRequest): Promise<GenerateResult> => {
    calls.push(req);
    return original(req);
  };
});

test.after(async () => {
  await rag.close();
  await enc.close();
  t.cleanup();
});

test('dihedral: the eight transforms are distinct and each is a permutation of the pixels', () => {
  const n = 4;
  const rgb = Uint8Array.from({ length: n * n * 3 }, (_, i) => Math.floor(i / 3));
  const all = dihedralAll(rgb, n);
  assert.is(all.length, 8);
  assert.is(new Set(all.map((a) => a.join())).size, 8);
  for (const a of all) assert.equal([...a].sort((x, y) => x - y), [...rgb].sort((x, y) => x - y));
  // rot90 is clockwise: the top-left pixel moves to the top-right.
  assert.is(dihedral(rgb, n, 'rot90')[(0 * n + 3) * 3], rgb[0]);
  assert.equal(dihedral(dihedral(rgb, n, 'rot90'), n, 'rot270'), rgb);
});

test('orientationHashes (one DCT, signed permutations) equals the hash of each turned picture', async () => {
  for (const png of [...Object.values(BLOCKED), banana]) {
    const { data } = await sharp(png).flatten({ background: '#ffffff' }).resize(32, 32).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const small = new Uint8Array(data);
    const direct = dihedralAll(small, 32).map((px) => perceptualHash(px).hash);
    const derived = orientationHashes(small);
    assert.is(derived[0], perceptualHash(small).hash);
    direct.forEach((h, i) => assert.ok(hashDistance(h, derived[i]!) <= 1, `orientation ${i}: ${h} vs ${derived[i]}`));
    assert.ok(new Set(derived).size > 1, 'the orientations hash differently');
  }
});

test("decodeRgbPng reads the pipeline's PNGs exactly as sharp does, and declines everything else", async () => {
  const w = 64, h = 48;
  const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 7919 + (i >> 5) * 31) & 0xff);
  const png = encodeRgbPng(rgb, w, h, 6, { parameters: 'x' });
  const d = decodeRgbPng(png, 1e6)!;
  assert.equal([d.width, d.height], [w, h]);
  assert.ok(Buffer.compare(Buffer.from(d.rgb), Buffer.from(rgb)) === 0);
  assert.ok(Buffer.compare(Buffer.from(d.rgb), await sharp(png).raw().toBuffer()) === 0);
  assert.is(decodeRgbPng(png, w * h - 1), null, 'over the pixel cap');
  assert.is(decodeRgbPng(png.subarray(0, png.length - 30), 1e6), null, 'truncated');
  assert.is(decodeRgbPng(await sharp(BLOCKED.pistol).png().toBuffer(), 1e6), null, 'RGBA');
  assert.is(decodeRgbPng(await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).png({ progressive: true }).toBuffer(), 1e6), null, 'interlaced');
  assert.is(decodeRgbPng(await sharp(rgb, { raw: { width: w, height: h, channels: 3 } }).withIccProfile('p3').png().toBuffer(), 1e6), null, 'colour profile');
});

test('every bypass is blocked by the concepts at ingest, and stored as blocked, never searchable', async () => {
  const guard = await SafetyGuard.create(policy, { encoder: enc });
  const store = await ImageStore.open(`${t.dir}/ingest`, { encoder: enc, screen: guard.imageScreen(), nearDuplicates: false });
  try {
    const names = Object.keys(bypasses);
    const r = await store.add(names.map((n) => ({ bytes: bypasses[n]!, meta: { name: n } })), META);
    assert.equal(r.items.map((i) => i.status), names.map(() => 'blocked'), JSON.stringify(r.items.map((i, j) => [names[j], i.status, i.reason])));
    for (const [j, n] of names.entries()) assert.match(r.items[j]!.reason!, new RegExp(`rule concept:${n.startsWith('knife') ? 'kitchen-knife' : n.split(' ')[0]}`), n);
  } finally {
    await store.close();
  }
});

test('uploads, pinned ids and retrieval results: every bypass is refused before any model call', async () => {
  const guard = await SafetyGuard.create(policy, { encoder: enc });
  const open = await ImageStore.open(`${t.dir}/open`, { encoder: enc, nearDuplicates: false }); // no screen: everything active
  const screened = await ImageStore.open(`${t.dir}/screened`, { encoder: enc, screen: guard.imageScreen() });
  try {
    await open.add([{ bytes: banana, meta: { name: 'banana' } }, ...Object.entries(bypasses).map(([n, b]) => ({ bytes: b, meta: { name: n } }))], META);
    const guarded = new RagPipeline(rag.pipeline, guard.ragOptions());
    const from = calls.length;
    for (const [name, bytes] of Object.entries(bypasses)) {
      await rejects(guarded.generate({ prompt: 'banana', steps, retrieval: { store: open, references: [{ image: bytes }] } }), hasErrorCode('REFERENCE_BLOCKED'), `upload ${name}`);
      await rejects(screened.embedReference(bytes), hasErrorCode('IMAGE_BLOCKED'), `store upload ${name}`);
      const id = open.list({ limit: 100 }).find((x) => x.name === name)!.id;
      await rejects(guarded.generate({ prompt: 'banana', steps, retrieval: { store: open, references: [{ id }] } }), hasErrorCode('REFERENCE_BLOCKED'), `pinned ${name}`);
    }
    assert.is(calls.length, from, 'nothing reached the pipeline');
    // Retrieval results: the query is the flipped pistol's own embedding; every bypass is screened out and replaced.
    const q = open.embeddingOf(open.list({ limit: 100 }).find((x) => x.name === 'pistol flipped')!.id)!;
    const r = await guarded.generate({ prompt: 'banana', seed: 1, steps, retrieval: { store: open, k: 1, query: q } });
    assert.equal(r.references.map((x) => x.name), ['banana']);
    assert.ok(r.stats.retrieval!.screened.some((s) => /concept:pistol/.test(s.reason)));
  } finally {
    await open.close();
    await screened.close();
  }
});

test('the output door blocks every bypass (what the generator would draw from it)', async () => {
  const guard = await SafetyGuard.create(policy, { encoder: enc });
  const screen = guard.ragOptions().outputScreen;
  for (const [name, bytes] of Object.entries(bypasses)) {
    const png = await sharp(bytes).png().toBuffer();
    assert.is((await screen(png, { seed: 1, index: 0 })).allow, false, name);
    // As the pipeline writes them (8-bit RGB at the encoder's size: the synchronous decode).
    const { data } = await sharp(bytes).flatten({ background: '#ffffff' }).resize(64, 64).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const own = encodeRgbPng(new Uint8Array(data), 64, 64);
    assert.ok(decodeRgbPng(own, 1e6), 'the fast path applies');
    assert.is((await screen(Buffer.from(own), { seed: 1, index: 0 })).allow, false, `${name} (pipeline PNG)`);
  }
  assert.is((await screen(banana, { seed: 1, index: 0 })).allow, true, 'control: a benign output passes');
});

test('an animation keeps only the frame that was screened: stored, served and sent to the model', async () => {
  const guard = await SafetyGuard.create(policy, { encoder: enc });
  const store = await ImageStore.open(`${t.dir}/gif`, { encoder: enc, screen: guard.imageScreen(), nearDuplicates: false });
  try {
    const r = await store.add([{ bytes: gif, meta: { name: 'banana gif' } }], META);
    assert.is(r.items[0]!.status, 'added');
    const id = store.list({ limit: 10 })[0]!.id;
    const kept = store.readImage(id);
    const meta = await sharp(kept).metadata();
    assert.is(meta.pages ?? 1, 1, 'the stored image has one frame');
    assert.is(store.get(id)!.format, 'png');
    const px = async (b: Uint8Array) => (await sharp(b, { pages: 1 }).flatten({ background: '#ffffff' }).removeAlpha().raw().toBuffer());
    assert.ok(Buffer.compare(await px(kept), await px(await sharp(gif, { pages: 1 }).png().toBuffer())) === 0, 'it is the first frame');
    // An APNG whose animation shows the pistol (libvips decodes only the default image, the banana).
    const apng = await animatedPng(banana, BLOCKED.pistol);
    assert.is((await sharp(apng).metadata()).pages ?? 1, 1, 'sharp sees one page');
    const a = await store.add([{ bytes: apng, meta: { name: 'banana apng' } }], META);
    assert.is(a.items[0]!.status, 'added');
    const aid = store.list({ limit: 10 }).find((x) => x.name === 'banana apng')!.id;
    assert.not.ok(pngChunks(store.readImage(aid)).some((c) => c.type === 'acTL' || c.type === 'fdAT'), 'the animation is not kept');
    // The blocked frame first: refused.
    const bad = await sharp([BLOCKED.pistol, banana], { join: { animated: true } }).gif().toBuffer();
    assert.is((await store.add([{ bytes: bad, meta: { name: 'pistol gif' } }], META)).items[0]!.status, 'blocked');
    // As an upload the model is handed the screened frame only, never the animation.
    const from = calls.length;
    const guarded = new RagPipeline(rag.pipeline, guard.ragOptions());
    await guarded.generate({ prompt: 'banana', seed: 1, steps, retrieval: { store, k: 1, references: [{ image: gif }], referenceInit: { strength: 0.5, blend: 1 } } });
    const sent = calls.slice(from).flatMap((c) => [...(c.initImages?.images ?? []), ...(c.initImage ? [c.initImage] : [])]);
    assert.ok(sent.length > 0, 'the upload reached the model as an init image');
    for (const im of sent) assert.is((await sharp(im).metadata()).pages ?? 1, 1);
  } finally {
    await store.close();
  }
});

test('a perceptual-hash blocklist matches every orientation at ingest, uploads and the output', async () => {
  const open = await ImageStore.open(`${t.dir}/hash-probe`, { encoder: enc, nearDuplicates: false });
  let hash: string;
  try {
    await open.add([{ bytes: BLOCKED.pistol, meta: { name: 'pistol' } }], META);
    hash = open.list({ limit: 1 })[0]!.phash;
  } finally {
    await open.close();
  }
  const guard = await SafetyGuard.create({ version: 'hash-only', hashes: [{ id: 'known-pistol', phash: hash, maxDistance: 4 }] }, { encoder: enc });
  const store = await ImageStore.open(`${t.dir}/hash`, { encoder: enc, screen: guard.imageScreen(), nearDuplicates: false });
  try {
    const turned = [await sharp(BLOCKED.pistol).flip().png().toBuffer(), await sharp(BLOCKED.pistol).rotate(90).png().toBuffer(), await sharp(BLOCKED.pistol).rotate(270).flop().png().toBuffer()];
    const r = await store.add(turned.map((b, i) => ({ bytes: b, meta: { name: `turned ${i}` } })), META);
    assert.equal(r.items.map((i) => i.status), ['blocked', 'blocked', 'blocked'], JSON.stringify(r.items));
    for (const i of r.items) assert.match(i.reason!, /rule hash:known-pistol/);
    for (const b of turned) {
      await rejects(store.embedReference(b), hasErrorCode('IMAGE_BLOCKED'));
      assert.is((await guard.checkImage(b, 'output', 'turned')).rule, 'hash:known-pistol');
      const { data } = await sharp(b).flatten({ background: '#ffffff' }).resize(64, 64).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      assert.is((await guard.checkImage(encodeRgbPng(new Uint8Array(data), 64, 64), 'output', 'turned, pipeline PNG')).rule, 'hash:known-pistol');
    }
    assert.is((await guard.checkImage(banana, 'output', 'banana')).action, 'allow');
  } finally {
    await store.close();
  }
});

test.run();
