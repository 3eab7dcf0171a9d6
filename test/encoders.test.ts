/**
 * The CLIP-style encoders of models/tiny-emoji: widths from the bundle, L2-normalised
 * outputs, batching that does not change results, preprocessing as the
 * preprocessor config says, and errors that name the missing file.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { decodeImage } from '../src/image/decode.js';
import { loadClipEncoders, readPreprocessConfig, type ClipEncoders } from '../src/models/encoders.js';
import { repoPath, tempDir } from './helpers.js';

const bundle = repoPath('models/tiny-emoji');
const emojiPng = (code: string) => readFileSync(repoPath(`node_modules/emoji-datasource-twitter/img/twitter/64/${code}.png`));
let enc: ClipEncoders;

const norm = (v: Float32Array) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, i) => s + x * b[i]!, 0);

test.before(async () => {
  enc = await loadClipEncoders(bundle, { batchSize: 3 });
});

test.after(async () => {
  await enc.close();
});

test('widths and sizes come from the bundle', () => {
  const index = JSON.parse(readFileSync(join(bundle, 'model_index.json'), 'utf8')) as { ragdiff: { embed_dim: number } };
  assert.is(enc.dim, index.ragdiff.embed_dim);
  assert.equal(enc.imageSize, { width: 64, height: 64 });
  assert.is(enc.tokenizer.maxLength, 16);
  assert.match(enc.id, /^tiny-emoji@[0-9a-f]{16}$/);
});

test('image and text embeddings are L2-normalised and batching does not change them', async () => {
  const codes = ['1f34e', '1f436', '1f355', '2764-fe0f', '1f680'];
  const imgs = await Promise.all(codes.map(async (c) => decodeImage(emojiPng(c), { width: 64, height: 64 })));
  const batched = await enc.embedImages(imgs); // batches of 3 + 2
  assert.is(batched.length, 5);
  for (const v of batched) {
    assert.is(v.length, enc.dim);
    assert.ok(Math.abs(norm(v) - 1) < 1e-5);
  }
  for (let i = 0; i < imgs.length; i++) {
    const [single] = await enc.embedImages([imgs[i]!]);
    assert.ok(dot(single!, batched[i]!) > 0.99999, `image ${i} alone = in a batch`);
  }
  const texts = await enc.embedText(['red apple', 'dog', 'pizza', 'a rocket', '']);
  assert.is(texts.length, 5);
  for (const v of texts) assert.ok(Math.abs(norm(v) - 1) < 1e-5);
  const [again] = await enc.embedText(['red apple']);
  assert.ok(dot(again!, texts[0]!) > 0.99999);
  const { hiddenStates, embeds } = await enc.encodeText(['red apple', 'dog']);
  assert.is(embeds.length, 2);
  assert.is(hiddenStates!.length, 2 * 16 * enc.tokenWidth);
});

test('images of another size are resized (shortest edge, centre crop) before embedding', async () => {
  const small = await decodeImage(emojiPng('1f34e'), { width: 64, height: 64 });
  const large = await decodeImage(emojiPng('1f34e'), { width: 160, height: 160 });
  const [a, b] = await enc.embedImages([small, large]);
  assert.ok(dot(a!, b!) > 0.95, `cos ${dot(a!, b!)}`);
});

test('pixel values follow the preprocessor config (white → 1, black → -1 for mean = std = 0.5)', async () => {
  const out = new Float32Array(3 * 64 * 64);
  await enc.pixelValues({ rgb: new Uint8Array(64 * 64 * 3).fill(255), width: 64, height: 64 }, out);
  assert.ok(out.every((x) => Math.abs(x - 1) < 1e-6));
  await enc.pixelValues({ rgb: new Uint8Array(64 * 64 * 3), width: 64, height: 64 }, out);
  assert.ok(out.every((x) => Math.abs(x + 1) < 1e-6));
});

test('a custom mean/std is applied per channel: (b/255 - mean) / std', async () => {
  const t = tempDir();
  try {
    cpSync(bundle, t.dir, { recursive: true, filter: (src) => !src.includes('unet') && !src.includes('vae') && !src.endsWith('.onnx.data') });
    const cfgPath = join(t.dir, 'feature_extractor', 'preprocessor_config.json');
    const cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
    cfg.image_mean = [0.48145466, 0.4578275, 0.40821073];
    cfg.image_std = [0.26862954, 0.26130258, 0.27577711];
    writeFileSync(cfgPath, JSON.stringify(cfg));
    const pre = readPreprocessConfig(cfgPath);
    assert.equal(pre.mean, cfg.image_mean);
    const e2 = await loadClipEncoders(t.dir);
    const rgb = new Uint8Array(64 * 64 * 3);
    for (let i = 0; i < 64 * 64; i++) rgb.set([200, 100, 0], i * 3);
    const out = new Float32Array(3 * 64 * 64);
    await e2.pixelValues({ rgb, width: 64, height: 64 }, out);
    const m = cfg.image_mean as number[];
    const s = cfg.image_std as number[];
    [200, 100, 0].forEach((b, c) => assert.ok(Math.abs(out[c * 4096 + 17]! - (b / 255 - m[c]!) / s[c]!) < 1e-5, `channel ${c}`));
    await e2.close();
    rmSync(join(t.dir, 'image_encoder'), { recursive: true });
    let code = '';
    let message = '';
    await loadClipEncoders(t.dir).catch((e: { code: string; message: string }) => ((code = e.code), (message = e.message)));
    assert.is(code, 'MODEL_FILE_MISSING');
    assert.match(message, /image_encoder/);
  } finally {
    t.cleanup();
  }
});

test('bad arguments are typed errors', async () => {
  let code = '';
  await enc.embedImages([{ rgb: new Uint8Array(10), width: 64, height: 64 }]).catch((e: { code: string }) => (code = e.code));
  assert.is(code, 'LENGTH_MISMATCH');
  code = '';
  await enc.embedText([42 as never]).catch((e: { code: string }) => (code = e.code));
  assert.is(code, 'INVALID_TYPE');
  code = '';
  await loadClipEncoders(join(tempDir().dir, 'nothing')).catch((e: { code: string }) => (code = e.code));
  assert.is(code, 'MODEL_FILE_MISSING');
});

test.run();
