// `ragdiff convert reference-attention`: writes the variant and its manifest outside the source
// bundle, shares the weights (hard links), and refuses an output inside the source bundle (also
// through a symlink) without creating anything there.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { repoPath, tempDir } from './helpers.js';

const MAIN = repoPath('dist/src/cli/main.js');
const bundle = repoPath('test/fixtures/sd/sd15-sdpa');
const { dir, cleanup } = tempDir('ragdiff-cli-convert-');
test.after(cleanup);
const ragdiff = (args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });

test('converts an optimum export into DIR/unet/refattn.onnx with a manifest naming the base UNet hash', () => {
  const out = join(dir, 'out');
  const r = ragdiff(['convert', 'reference-attention', bundle, '--out', out, '--json']);
  assert.is(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.is(doc.self_attention_blocks, 4);
  assert.match(doc.base_unet.sha256, /^[0-9a-f]{64}$/);
  const manifest = JSON.parse(readFileSync(join(out, 'unet/ragdiff_convert.json'), 'utf8'));
  assert.is(manifest.base_unet.sha256, doc.base_unet.sha256);
  assert.is(statSync(join(out, 'unet/model.onnx_data')).ino, statSync(join(bundle, 'unet/model.onnx_data')).ino);
  assert.ok(!readdirSync(join(out, 'unet')).some((f) => f.endsWith('.partial')));
});

test('an output inside the source bundle is refused, directly or through a symlink, creating nothing', () => {
  const before = readdirSync(bundle).sort();
  const r = ragdiff(['convert', 'reference-attention', bundle, '--out', join(bundle, 'converted')]);
  assert.is(r.status, 1);
  assert.match(r.stderr, /\[CONVERT_REFUSED\].*inside the source bundle/);
  symlinkSync(bundle, join(dir, 'link'));
  const r2 = ragdiff(['convert', 'reference-attention', bundle, '--out', join(dir, 'link', 'converted')]);
  assert.match(r2.stderr, /\[CONVERT_REFUSED\]/);
  assert.equal(readdirSync(bundle).sort(), before);
});

test('a directory without unet/model.onnx is a typed error', () => {
  const r = ragdiff(['convert', 'reference-attention', dir, '--out', join(dir, 'x')]);
  assert.is(r.status, 1);
  assert.match(r.stderr, /\[MODEL_FILE_MISSING\]/);
  assert.not.ok(existsSync(join(dir, 'x')));
});

test.run();
