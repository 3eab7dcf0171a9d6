// The copy guard on real Twemoji, nothing generated: different emoji must not be near-copies of each
// other, and copies of an emoji (its round trip through the bundle's own VAE, a noisy copy) must be.
// The whole-image rule (PSNR > 20 dB) calls many different emoji copies because they share a
// white background; the foreground rule (src/eval/copy-guard.ts) must not, and must still catch copies.
// Over the whole database (1,911 emoji, each against the other 1,910) the whole-image rule flags 14.5%
// and the foreground rule 9.6% — 43 emoji have a pixel-identical twin (flags, family variants) and
// most others are near-identical variants (genders, faces sharing one disk, pale white shapes);
// the sample below holds distinct drawings plus one such variant pair.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { NEAR_COPY_PSNR_DB, PixelDatabase } from '../src/eval/copy-guard.js';
import { rgbOf } from '../src/eval/suite.js';
import { chwToRgb8, rgb8ToChw } from '../src/image/pixels.js';
import { readFileSync } from 'node:fs';
import { demoInputs } from '../src/store/index.js';
import { repoPath, seededRandom } from './helpers.js';

/** Distinct drawings; the first nine score > 20 dB whole-image to another one of them (shared white). */
const DISTINCT = [
  'sign of the horns', 'white up pointing index', 'victory hand', 'left speech bubble', 'light blue heart', 'ticket', 'cloud',
  'man walking', 'pedestrian', 'red apple', 'grapes', 'automobile', 'rose', 'pear', 'turkey', 'hyacinth',
];
/** Two emoji drawn almost alike (≈ 36 dB whole image): a copy of one is a copy of the other. */
const TWINS = ['man frowning', 'man pouting'];

const names = [...DISTINCT, ...TWINS];
let images: Uint8Array[] = [];
let db: PixelDatabase;

test.before(async () => {
  const byName = new Map(demoInputs('twemoji').map((i) => [(i as { meta: { name: string } }).meta.name, (i as { path: string }).path]));
  images = await Promise.all(names.map(async (n) => {
    const path = byName.get(n);
    if (!path) throw new Error(`no Twemoji named ${n}`);
    return rgbOf(readFileSync(path), 64);
  }));
  db = PixelDatabase.fromImages(images.map((rgb) => ({ rgb, width: 64, height: 64 })));
});

test('real emoji against the sample minus themselves: the whole-image rule flags different emoji, the foreground rule does not', () => {
  const flagged = { whole: [] as string[], foreground: [] as string[] };
  let maxFg = 0;
  DISTINCT.forEach((n, j) => {
    const r = db.nearestBoth(images[j]!, j);
    if (r.psnr > NEAR_COPY_PSNR_DB) flagged.whole.push(n);
    if (r.foregroundPsnr > NEAR_COPY_PSNR_DB) flagged.foreground.push(n);
    maxFg = Math.max(maxFg, r.foregroundPsnr);
  });
  assert.equal(flagged.whole, DISTINCT.slice(0, 9));
  assert.equal(flagged.foreground, []);
  assert.ok(maxFg < 19.5, `highest foreground PSNR between different emoji: ${maxFg}`);
  // The near-identical pair stays a near-copy by both rules.
  const t = db.nearestBoth(images[DISTINCT.length]!, DISTINCT.length);
  assert.is(t.foregroundIndex, DISTINCT.length + 1);
  assert.ok(t.psnr > 30 && t.foregroundPsnr > 30, `${t.psnr} / ${t.foregroundPsnr}`);
});

test('copies of real emoji — the bundle VAE round trip, ±16 levels of noise — are near-copies of their source by both rules', async () => {
  const bundle = repoPath('models/tiny-emoji');
  const enc = await ort.InferenceSession.create(join(bundle, 'vae_encoder/model.onnx'), { intraOpNumThreads: 1 });
  const dec = await ort.InferenceSession.create(join(bundle, 'vae_decoder/model.onnx'), { intraOpNumThreads: 1 });
  try {
    const n = images.length;
    const x = new Float32Array(n * 3 * 64 * 64);
    images.forEach((rgb, k) => x.set(rgb8ToChw(rgb, 64, 64), k * 3 * 64 * 64));
    const z = (await enc.run({ sample: new ort.Tensor('float32', x, [n, 3, 64, 64]) })).latent_sample!;
    const y = (await dec.run({ latent_sample: z })).sample!.data as Float32Array;
    const rand = seededRandom(16);
    const copies = {
      'VAE round trip': images.map((_, k) => chwToRgb8(Float32Array.from(y.subarray(k * 3 * 4096, (k + 1) * 3 * 4096), (v) => Math.max(-1, Math.min(1, v))), 64, 64)),
      'noise ±16': images.map((rgb) => Uint8Array.from(rgb, (v) => Math.max(0, Math.min(255, Math.round(v + (rand() * 2 - 1) * 16))))),
    };
    for (const [kind, list] of Object.entries(copies)) {
      list.forEach((c, k) => {
        const r = db.nearestBoth(c);
        // The twins are each other's near-copies, so either may be nearest to a copy of one.
        const sources = k >= DISTINCT.length ? [DISTINCT.length, DISTINCT.length + 1] : [k];
        assert.ok(sources.includes(r.index) && sources.includes(r.foregroundIndex), `${kind} of ${names[k]}: nearest ${names[r.index]} / ${names[r.foregroundIndex]}`);
        assert.ok(r.psnr > NEAR_COPY_PSNR_DB && r.foregroundPsnr > NEAR_COPY_PSNR_DB, `${kind} of ${names[k]}: ${r.psnr.toFixed(2)} / ${r.foregroundPsnr.toFixed(2)} dB`);
      });
    }
  } finally {
    await enc.release();
    await dec.release();
  }
});

test.run();
