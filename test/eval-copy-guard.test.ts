// The copy guard: PSNR of 8-bit RGB and embedding cosine of each output against its references and
// the whole database (held as one array), and the share of near-copies (PSNR > 20 dB) — by the whole
// image (the rule) and by the foreground (near-white pixels of both images left out), which
// does not call two different emoji on the same white background copies.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RgbImage } from '../src/models/encoders.js';
import { EmbeddingDatabase, NEAR_WHITE_MIN, PixelDatabase, copyGuard, cosine, foregroundOf, foregroundPsnr8, psnr8 } from '../src/eval/copy-guard.js';
import { hasErrorCode, seededRandom } from './helpers.js';

const N = 64 * 64 * 3;
const rand = seededRandom(14);
const noise = (): Uint8Array => Uint8Array.from({ length: N }, () => Math.floor(rand() * 256));
const img = (rgb: Uint8Array): RgbImage => ({ rgb, width: 64, height: 64 });

test('psnr8: identical is +Infinity; off by one level everywhere is 10·log10(255²) dB; black vs white is 0 dB', () => {
  const a = noise();
  assert.is(psnr8(a, a.slice()), Infinity);
  const b = Uint8Array.from(a, (v) => (v === 255 ? 254 : v + 1));
  assert.ok(Math.abs(psnr8(a, b) - 10 * Math.log10(255 * 255)) < 1e-9);
  assert.ok(Math.abs(psnr8(new Uint8Array(N), new Uint8Array(N).fill(255))) < 1e-12);
});

test('the vectorised database PSNR equals psnr8 against every row; nearest finds the copy', () => {
  const rows = Array.from({ length: 7 }, noise);
  const db = PixelDatabase.fromImages(rows.map(img));
  assert.is(db.count, 7);
  const q = rows[4]!.map((v, i) => (i % 7 === 0 ? 255 - v : v));    // a damaged copy of row 4
  const all = db.psnrAll(q);
  rows.forEach((r, j) => assert.ok(Math.abs(all[j]! - psnr8(q, r)) < 1e-9, `row ${j}`));
  assert.is(db.nearest(q).index, 4);
  assert.is(db.nearest(rows[2]!).psnr, Infinity);
});

test('copyGuard: near-copy share, PSNR and cosine to references and to the database', () => {
  const rows = Array.from({ length: 5 }, noise);
  const db = PixelDatabase.fromImages(rows.map(img));
  const slight = rows[1]!.map((v) => Math.min(255, v + 3));            // ~40 dB: a near-copy
  const fresh = noise();                                               // ~8 dB to everything
  const emb = (k: number) => { const e = new Float32Array(4); e[k % 4] = 1; return e; };
  const report = copyGuard({
    outputs: [img(slight), img(fresh)],
    references: [[img(rows[1]!), img(rows[2]!)], [img(rows[3]!)]],
    database: db,
    embeddings: {
      outputs: [emb(1), Float32Array.from([0.6, 0.8, 0, 0])],
      references: [[emb(1), emb(2)], [emb(3)]],
      database: EmbeddingDatabase.fromRows(rows.map((_, j) => emb(j))),
    },
  });
  assert.is(report.nearCopyShare, 0.5);
  assert.is(report.referenceCopyShare, 0.5);
  const [a, b] = report.items;
  assert.ok(a!.nearCopy && !b!.nearCopy);
  assert.is(a!.nearestDatabaseIndex, 1);
  assert.ok(a!.psnrToReferences[0]! > 35 && a!.psnrToReferences[1]! < 12, String(a!.psnrToReferences));
  assert.ok(b!.maxPsnrToDatabase < 12);
  assert.equal(a!.cosineToReferences, [1, 0]);
  assert.is(a!.nearestDatabaseIndexByEmbedding, 1);
  assert.ok(Math.abs(b!.maxCosineToDatabase! - 0.8) < 1e-6);
  assert.is(b!.nearestDatabaseIndexByEmbedding, 1);
  assert.is(copyGuard({ outputs: [img(slight)], database: db, thresholdDb: 50 }).nearCopyShare, 0);
});

/** White 64×64 with a w×h rectangle of `color` at (x, y). */
function drawing(rects: { x: number; y: number; w: number; h: number; color: [number, number, number] }[]): Uint8Array {
  const rgb = new Uint8Array(N).fill(255);
  for (const r of rects) for (let y = r.y; y < r.y + r.h; y++) for (let x = r.x; x < r.x + r.w; x++) rgb.set(r.color, (y * 64 + x) * 3);
  return rgb;
}

test('foreground PSNR: two different small drawings on white are > 20 dB whole-image but not by foreground', () => {
  const red = drawing([{ x: 20, y: 20, w: 6, h: 6, color: [255, 0, 0] }]);
  const blue = drawing([{ x: 20, y: 20, w: 6, h: 6, color: [0, 0, 255] }]);
  // 36 pixels differ by 255 in two channels: whole image 10·log10(255²·12288 / (36·2·255²)) ≈ 22.3 dB.
  assert.ok(Math.abs(psnr8(red, blue) - 10 * Math.log10(12288 / 72)) < 1e-9);
  // Over the union of the foregrounds (the same 36 pixels): 10·log10(3/2) ≈ 1.8 dB.
  assert.ok(Math.abs(foregroundPsnr8(red, blue) - 10 * Math.log10(3 / 2)) < 1e-9);
  // A drawing against blank white: the mask is the drawing's pixels, all off by 255 → 0 dB.
  const black = drawing([{ x: 5, y: 5, w: 10, h: 10, color: [0, 0, 0] }]);
  assert.ok(Math.abs(foregroundPsnr8(black, new Uint8Array(N).fill(255))) < 1e-12);
});

test('foreground PSNR: near-white noise is background; two all-white images score 0 dB (nothing to copy)', () => {
  const a = drawing([{ x: 10, y: 30, w: 20, h: 8, color: [200, 40, 90] }]);
  const b = Uint8Array.from(a, (v) => (v === 255 ? 255 - Math.floor(rand() * (256 - NEAR_WHITE_MIN)) : v)); // background tinted 240..255
  assert.is(foregroundPsnr8(a, b), Infinity);
  assert.ok(psnr8(a, b) < 40);
  assert.is(foregroundOf(b).count, 160);
  assert.is(foregroundPsnr8(new Uint8Array(N).fill(255), new Uint8Array(N).fill(NEAR_WHITE_MIN)), 0);
  // Just below the cut a pixel is foreground.
  assert.is(foregroundOf(Uint8Array.from([NEAR_WHITE_MIN - 1, 255, 255, 255, 255, 255])).count, 1);
});

test('the database foreground PSNR equals foregroundPsnr8 against every row; nearestBoth leaves out an index', () => {
  // Images with large near-white areas and some drawing, so masks differ row to row.
  const rows = Array.from({ length: 6 }, () => Uint8Array.from({ length: N }, (_, i) => (Math.floor(i / 3) % 7 < 4 ? 240 + Math.floor(rand() * 16) : Math.floor(rand() * 256))));
  rows.push(new Uint8Array(N).fill(255));
  const db = PixelDatabase.fromImages(rows.map(img));
  const q = rows[3]!.map((v, i) => (i % 11 === 0 ? Math.floor(rand() * 256) : v));
  const fg = db.foregroundPsnrAll(q);
  rows.forEach((r, j) => assert.ok(Math.abs(fg[j]! - foregroundPsnr8(q, r)) < 1e-9, `row ${j}: ${fg[j]} vs ${foregroundPsnr8(q, r)}`));
  const both = db.nearestBoth(q);
  assert.is(both.index, 3);
  assert.is(both.foregroundIndex, 3);
  const without = db.nearestBoth(rows[3]!, 3);
  assert.ok(without.index !== 3 && without.foregroundIndex !== 3);
  assert.is(db.nearestBoth(rows[3]!).foregroundPsnr, Infinity);
});

test('copyGuard reports the foreground shares beside the whole-image ones', () => {
  const red = drawing([{ x: 20, y: 20, w: 6, h: 6, color: [255, 0, 0] }]);
  const blue = drawing([{ x: 20, y: 20, w: 6, h: 6, color: [0, 0, 255] }]);
  const db = PixelDatabase.fromImages([img(red)]);
  const copy = red.slice();                                              // red with a tinted background
  for (let p = 0; p < N; p += 3) if (copy[p] === 255 && copy[p + 1] === 255 && copy[p + 2] === 255) copy.fill(250, p, p + 3);
  const r = copyGuard({ outputs: [img(blue), img(copy)], references: [[img(red)], [img(red)]], database: db });
  assert.is(r.nearCopyShare, 1);                                        // both > 20 dB whole-image
  assert.is(r.nearCopyForegroundShare, 0.5);                            // only the real copy by foreground
  assert.is(r.referenceCopyForegroundShare, 0.5);
  assert.ok(!r.items[0]!.nearCopyForeground && r.items[1]!.nearCopyForeground);
  assert.is(r.items[1]!.maxForegroundPsnrToDatabase, Infinity);
  assert.ok(r.items[0]!.foregroundPsnrToReferences[0]! < 5);
  assert.is(r.nearWhiteMin, NEAR_WHITE_MIN);
});

test('cosine is scale-free', () => {
  assert.ok(Math.abs(cosine(Float32Array.from([1, 2]), Float32Array.from([2, 4])) - 1) < 1e-12);
  assert.is(cosine(Float32Array.from([1, 0]), Float32Array.from([0, 3])), 0);
});

test('bad input: wrong sizes, partial databases, reference lists that do not match', () => {
  assert.throws(() => psnr8(new Uint8Array(3), new Uint8Array(4)), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => new PixelDatabase(new Uint8Array(N + 1)), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => new EmbeddingDatabase(new Float32Array(5), 2), hasErrorCode('LENGTH_MISMATCH'));
  const db = PixelDatabase.fromImages([img(noise())]);
  assert.throws(() => copyGuard({ outputs: [{ rgb: new Uint8Array(12), width: 2, height: 2 }], database: db }), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => copyGuard({ outputs: [img(noise())], references: [], database: db }), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => copyGuard({ outputs: [img(noise())], database: db, thresholdDb: NaN }), hasErrorCode('OUT_OF_RANGE'));
  assert.throws(() => db.psnrAll(new Uint8Array(10)), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => db.nearestBoth(new Uint8Array(10)), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => foregroundPsnr8(new Uint8Array(6), new Uint8Array(9)), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => foregroundOf(new Uint8Array(4)), hasErrorCode('LENGTH_MISMATCH'));
  assert.throws(() => new PixelDatabase(new Uint8Array(N), 64, 64, 0), hasErrorCode('OUT_OF_RANGE'));
});

test.run();
