import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crc32 } from 'node:zlib';
import sharp from 'sharp';
import { pngChunks, readPngText, textChunk, withPngText } from '../src/image/png-text.js';

async function smallPng(): Promise<Buffer> {
  return sharp({ create: { width: 3, height: 2, channels: 3, background: { r: 10, g: 200, b: 30 } } }).png().toBuffer();
}

test('a Latin-1 entry is written as tEXt right after IHDR and reads back', async () => {
  const png = await smallPng();
  const out = withPngText(png, { parameters: 'a red cat\nSteps: 25, Seed: 7' });
  const chunks = pngChunks(out);
  assert.is(chunks[0]!.type, 'IHDR');
  assert.is(chunks[1]!.type, 'tEXt');
  assert.equal(readPngText(out), { parameters: 'a red cat\nSteps: 25, Seed: 7' });
});

test('text outside Latin-1 goes in an uncompressed UTF-8 iTXt chunk', async () => {
  const out = withPngText(await smallPng(), { parameters: 'chat rouge 🐱 — 猫' });
  assert.ok(pngChunks(out).some((c) => c.type === 'iTXt'));
  assert.is(readPngText(out).parameters, 'chat rouge 🐱 — 猫');
});

test('chunk CRCs are valid and the image still decodes to the same pixels', async () => {
  const png = await smallPng();
  const out = withPngText(png, { parameters: 'x', ragdiff: '{"seed":1}' });
  for (const c of pngChunks(out)) {
    const stored = Buffer.from(out.buffer, out.byteOffset, out.byteLength).readUInt32BE(c.offset + 8 + c.data.length);
    assert.is(stored, crc32(out.subarray(c.offset + 4, c.offset + 8 + c.data.length)), `CRC of ${c.type}`);
  }
  const a = await sharp(png).raw().toBuffer();
  const b = await sharp(out).raw().toBuffer();
  assert.ok(a.equals(b));
});

test('re-tagging replaces an entry instead of duplicating it', async () => {
  const once = withPngText(await smallPng(), { parameters: 'first' });
  const twice = withPngText(once, { parameters: 'second' });
  assert.is(pngChunks(twice).filter((c) => c.type === 'tEXt').length, 1);
  assert.is(readPngText(twice).parameters, 'second');
});

test('the same input gives the same bytes', async () => {
  const png = await smallPng();
  assert.ok(withPngText(png, { parameters: 'p' }).equals(withPngText(png, { parameters: 'p' })));
});

test('bad keywords and non-PNG input are typed errors', async () => {
  const png = await smallPng();
  assert.throws(() => withPngText(png, { '': 'x' }), (e: RangeError & { code?: string }) => e instanceof RangeError && e.code === 'INVALID_VALUE');
  assert.throws(() => textChunk(' lead', 'x'), (e: RangeError) => e instanceof RangeError);
  assert.throws(() => textChunk('k'.repeat(80), 'x'), (e: RangeError) => e instanceof RangeError);
  assert.throws(() => readPngText(Buffer.from('not a png at all')), (e: { code?: string }) => e.code === 'IMAGE_CORRUPT');
  assert.throws(() => readPngText(png.subarray(0, png.length - 6)), (e: { code?: string }) => e.code === 'IMAGE_CORRUPT');
});

test.run();
