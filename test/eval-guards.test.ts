// The evaluation refuses what would make its numbers meaningless: a bundle without its held-out
// split, a store embedded by another encoder, evaluation seeds that were used to tune scales.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireDisjointSeeds, requireSameEncoder, requireSplit } from '../src/eval/guards.js';
import { loadClipEncoders } from '../src/models/encoders.js';
import { ImageStore } from '../src/store/store.js';
import { hasErrorCode, repoPath, tempDir } from './helpers.js';

test('the bundle split loads: 3 held-out subcategories, 54 images', () => {
  const s = requireSplit(repoPath('models/tiny-emoji'));
  assert.equal(s.heldoutSubcategories, ['animal-bird', 'food-fruit', 'plant-flower']);
  assert.is(s.heldout.length, 54);
});

test('a bundle without split.json, or with a malformed one, is refused', () => {
  const t = tempDir();
  try {
    assert.throws(() => requireSplit(t.dir), hasErrorCode('EVAL_SPLIT_MISSING'));
    writeFileSync(join(t.dir, 'split.json'), '{"heldout": []');
    assert.throws(() => requireSplit(t.dir), hasErrorCode('EVAL_SPLIT_INVALID'));
    writeFileSync(join(t.dir, 'split.json'), JSON.stringify({ heldout_subcategories: ['x'], heldout: [] }));
    assert.throws(() => requireSplit(t.dir), hasErrorCode('EVAL_SPLIT_INVALID'));
  } finally {
    t.cleanup();
  }
});

test('a store embedded by another encoder is refused (id or width); the same encoder passes', async () => {
  const enc = await loadClipEncoders(repoPath('models/tiny-emoji'), { intraOpNumThreads: 1 });
  const t = tempDir();
  try {
    const store = await ImageStore.open(join(t.dir, 'store'), { encoder: enc });
    const stats = store.stats();
    requireSameEncoder(stats, enc);                                   // same encoder: no throw
    assert.throws(() => requireSameEncoder(stats, { dim: enc.dim, id: 'other@0000' }), hasErrorCode('EVAL_ENCODER_MISMATCH'));
    assert.throws(() => requireSameEncoder(stats, { dim: 64, id: enc.id }), hasErrorCode('EVAL_ENCODER_MISMATCH'));
    // The id is the bundle's name and a hash of the encoder weights: a copy under the same name
    // is the same encoder; the same weights under another name count as another encoder.
    const copy = join(t.dir, 'tiny-emoji');
    for (const rel of ['model_index.json', 'feature_extractor/preprocessor_config.json', 'tokenizer/tokenizer.json', 'tokenizer/tokenizer_config.json', 'text_encoder/model.onnx']) {
      mkdirSync(join(copy, rel, '..'), { recursive: true });
      copyFileSync(repoPath(join('models/tiny-emoji', rel)), join(copy, rel));
    }
    mkdirSync(join(copy, 'image_encoder'), { recursive: true });
    copyFileSync(repoPath('models/tiny-emoji/image_encoder/model.onnx'), join(copy, 'image_encoder/model.onnx'));
    const same = await loadClipEncoders(copy, { intraOpNumThreads: 1 });
    requireSameEncoder(stats, same);
    await same.close();
    const renamed = join(t.dir, 'renamed');
    mkdirSync(renamed);
    cpSync(copy, renamed, { recursive: true });
    const other = await loadClipEncoders(renamed, { intraOpNumThreads: 1 });
    assert.throws(() => requireSameEncoder(stats, other), hasErrorCode('EVAL_ENCODER_MISMATCH'));
    await other.close();
    await store.close();
  } finally {
    await enc.close();
    t.cleanup();
  }
  assert.throws(() => requireSameEncoder({ dim: 0 }, { dim: 128 }), hasErrorCode('INVALID_TYPE'));
  // Encoders without an id are identified by width, as the store records them.
  requireSameEncoder({ dim: 128, encoderId: 'anonymous-128' }, { dim: 128 });
});

test('evaluation seeds that overlap the tuning seeds are refused', () => {
  requireDisjointSeeds([0, 2, 3], [1]);
  assert.throws(() => requireDisjointSeeds([0, 1, 2], [1]), hasErrorCode('EVAL_SEED_OVERLAP'));
  assert.throws(() => requireDisjointSeeds([], [1]), hasErrorCode('OUT_OF_RANGE'));
  assert.throws(() => requireDisjointSeeds([0, -1], [1]), hasErrorCode('OUT_OF_RANGE'));
  assert.throws(() => requireDisjointSeeds([0.5], [1]), hasErrorCode('OUT_OF_RANGE'));
  assert.throws(() => requireDisjointSeeds('0' as unknown as number[], [1]), hasErrorCode('INVALID_TYPE'));
});

test.run();
