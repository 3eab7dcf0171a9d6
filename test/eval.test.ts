/**
 * The concept-transfer evaluation's measures and guards: the exact sign test,
 * PSNR and the nearest database image, and the refusals that keep the
 * evaluation honest (no split, a foreign store, seeds reused from tuning).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { signTest } from '../src/eval/sign-test.js';
import { PixelDatabase, psnr, rgbOf } from '../src/eval/image-metrics.js';
import { EvalSuite } from '../src/eval/suite.js';
import { hasErrorCode, rejects, repoPath, tempDir } from './helpers.js';

test('sign test: exact two-sided binomial p over prompts where the arms differ, ties dropped', () => {
  const three = signTest([1, 1, 1, 0.5], [0, 0, 0, 0.5]);
  assert.equal([three.better, three.worse], [3, 0]);
  assert.ok(Math.abs(three.p - 0.25) < 1e-12);
  // 9 of 10 better: p = 2 · (1 + 10) / 1024
  const t = signTest([...Array(9).fill(1), 0], [...Array(9).fill(0), 1]);
  assert.is(t.better, 9);
  assert.ok(Math.abs(t.p - 22 / 1024) < 1e-12);
  assert.is(signTest([0.5], [0.5]).p, 1);
  assert.throws(() => signTest([1], [1, 2]), RangeError);
});

test('PSNR and the nearest database image by pixels', async () => {
  const a = new Uint8Array(12).fill(100);
  const b = new Uint8Array(12).fill(110);
  assert.ok(Math.abs(psnr(a, b) - 10 * Math.log10(255 * 255 / 100)) < 1e-9);
  assert.is(psnr(a, a), Infinity);
  const red = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#ff0000' } }).png().toBuffer();
  const blue = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#0000ff' } }).png().toBuffer();
  const db = await PixelDatabase.build([{ id: 'r', bytes: red }, { id: 'b', bytes: blue }], 8);
  const near = db.nearest(await rgbOf(blue, 8));
  assert.is(near.id, 'b');
  assert.is(near.psnr, Infinity);
});

test('refuses a bundle without its split file, a store of another encoder, and seeds used for tuning', async () => {
  const t = tempDir('ragdiff-eval-');
  try {
    const copy = join(t.dir, 'bundle');
    cpSync(repoPath('models/tiny-emoji'), copy, { recursive: true });
    rmSync(join(copy, 'split.json'));
    await rejects(EvalSuite.open(copy), hasErrorCode('EVAL_SPLIT_MISSING'));
    const tuning = join(t.dir, 'tuning.json');
    (await import('node:fs')).writeFileSync(tuning, JSON.stringify({ seeds: [10, 11, 12] }));
    const suite = await EvalSuite.open(repoPath('models/tiny-emoji'), { tuningFile: tuning });
    try {
      assert.throws(() => suite.checkSeeds([5, 11]), hasErrorCode('EVAL_SEED_OVERLAP'));
      suite.checkSeeds([13, 14]);
      assert.throws(() => suite.checkStore('fake-grid-48', 'tiny-emoji@0123'), hasErrorCode('ENCODER_MISMATCH'));
      suite.checkStore('tiny-emoji@0123', 'tiny-emoji@0123');
    } finally {
      await suite.close();
    }
  } finally {
    t.cleanup();
  }
});

test.run();
