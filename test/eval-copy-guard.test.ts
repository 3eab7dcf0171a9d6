// The copy guard: PSNR of 8-bit RGB and embedding cosine of each output against its references and
// the whole database (held as one array), and the share of near-copies (PSNR > 20 dB).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RgbImage } from '../src/models/encoders.js';
import { EmbeddingDatabase, PixelDatabase, copyGuard, cosine, psnr8 } from '../src/eval/copy-guard.js';
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
});

test.run();
