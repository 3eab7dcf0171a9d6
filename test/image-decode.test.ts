// Spec: the one decode path every untrusted image takes (files, uploads, URLs, init images).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { decodeImage } from '../src/image/decode.js';
import { repoPath, rejects, hasErrorCode } from './helpers.js';
import { pngClaiming } from './fixtures/store/images.js';

const apple = readFileSync(repoPath('node_modules/emoji-datasource-twitter/img/twitter/64/1f34e.png'));

const rejectsWith = (p: Promise<unknown>, code: string) => rejects(p, hasErrorCode(code), `expected ${code}`);

test('decodes a PNG with alpha to RGB composited on white', async () => {
  const img = await decodeImage(apple);
  assert.is(img.width, 64);
  assert.is(img.height, 64);
  assert.is(img.rgb.length, 64 * 64 * 3);
  assert.ok(img.source.hadAlpha);
  assert.equal([img.rgb[0], img.rgb[1], img.rgb[2]], [255, 255, 255], 'transparent corner becomes white');
  const centre = (32 * 64 + 32) * 3;
  assert.ok(img.rgb[centre]! > 150 && img.rgb[centre + 1]! < 100, 'the apple is red in the middle');
});

test('resizes to a requested size and says so', async () => {
  const img = await decodeImage(apple, { width: 16, height: 24 });
  assert.is(img.rgb.length, 16 * 24 * 3);
  assert.ok(img.source.resized);
  assert.is(img.source.width, 64);
});

test('converts CMYK JPEG, 16-bit PNG and greyscale to 8-bit sRGB', async () => {
  const base = sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 200, g: 40, b: 40 } } });
  const cmyk = await base.clone().jpeg().toColourspace('cmyk').toBuffer();
  const png16 = await base.clone().png().toColourspace('rgb16').toBuffer();
  const grey = await base.clone().greyscale().png().toBuffer();
  for (const [name, buf] of [['cmyk', cmyk], ['png16', png16], ['grey', grey]] as const) {
    const img = await decodeImage(buf);
    assert.is(img.rgb.length, 8 * 8 * 3, name);
    if (name !== 'grey') assert.ok(img.rgb[0]! > 150 && img.rgb[1]! < 100, `${name} keeps its colour: ${img.rgb.slice(0, 3)}`);
  }
});

test('takes the first frame of an animated image', async () => {
  const frames = Buffer.concat([Buffer.alloc(4 * 4 * 4, 255), Buffer.alloc(4 * 4 * 4, 0)]);
  const gif = await sharp(frames, { raw: { width: 4, height: 8, channels: 4, pageHeight: 4 } as never }).gif().toBuffer();
  const img = await decodeImage(gif);
  assert.is(img.height, 4, 'one frame, not the whole strip');
});

test('rejects empty, non-image, truncated and bomb-shaped inputs with typed errors', async () => {
  await rejectsWith(decodeImage(new Uint8Array(0)), 'IMAGE_EMPTY');
  await rejectsWith(decodeImage(Buffer.from('GIF89a? no, just text pretending to be an image')), 'IMAGE_UNSUPPORTED');
  await rejectsWith(decodeImage(apple.subarray(0, 300)), 'IMAGE_CORRUPT');
  await rejectsWith(decodeImage(pngClaiming(100000, 100000)), 'IMAGE_TOO_LARGE');
  await rejectsWith(decodeImage(apple, { maxPixels: 64 * 63 }), 'IMAGE_TOO_LARGE');
});

test('refuses SVG by default (it can reference external resources)', async () => {
  const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>');
  await rejectsWith(decodeImage(svg), 'IMAGE_UNSUPPORTED');
});

test('argument errors are TypeError/RangeError', async () => {
  try {
    await decodeImage('not bytes' as unknown as Uint8Array);
    assert.unreachable();
  } catch (e) {
    assert.instance(e, TypeError);
  }
  try {
    await decodeImage(apple, { width: 0, height: 10 });
    assert.unreachable();
  } catch (e) {
    assert.instance(e, RangeError);
  }
});

test.run();
