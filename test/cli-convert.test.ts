// `ragdiff convert reference-attention`: writes the variant and its manifest outside the source
// bundle, shares the weights (hard links), and refuses an output inside the source bundle (also
// through a symlink) without creating anything there.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { copyFileSync, mkdirSync } from 'node:fs';
import { writeOnnxModel } from '../src/convert/onnx-model.js';
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

test('a UNet that cannot be converted leaves no output directory behind', () => {
  const bad = join(dir, 'converted-bundle');
  mkdirSync(join(bad, 'unet'), { recursive: true });
  copyFileSync(repoPath('models/tiny-emoji/unet/refattn.onnx'), join(bad, 'unet/model.onnx'));
  const out = join(dir, 'refused');
  const r = ragdiff(['convert', 'reference-attention', bad, '--out', out]);
  assert.is(r.status, 1);
  assert.match(r.stderr, /\[CONVERT_REFUSED\].*already converted/);
  assert.not.ok(existsSync(out));
});

test('a directory without unet/model.onnx is a typed error', () => {
  const r = ragdiff(['convert', 'reference-attention', dir, '--out', join(dir, 'x')]);
  assert.is(r.status, 1);
  assert.match(r.stderr, /\[MODEL_FILE_MISSING\]/);
  assert.not.ok(existsSync(join(dir, 'x')));
});

/** A stand-in vision tower: an Identity graph whose image_embeds output is `width` wide. */
function encoder(name: string, width: number): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  const vi = (n: string) => ({ name: n, type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_param: 'batch' }, { dim_value: String(width) }] } } } });
  writeOnnxModel({ dir: d, model: { ir_version: '8', opset_import: [{ version: '17' }], graph: { node: [{ op_type: 'Identity', input: ['pixel_values'], output: ['image_embeds'] }], input: [vi('pixel_values')], output: [vi('image_embeds')] } } }, join(d, 'model.onnx'));
  return d;
}

test('convert ip-adapter: writes the UNet, the projection and a manifest with both hashes; a vision tower of another width is named', () => {
  const weights = repoPath('test/fixtures/convert/ip_adapter_sd15.safetensors');
  const out = join(dir, 'ip');
  const r = ragdiff(['convert', 'ip-adapter', repoPath('test/fixtures/sd/sd15'), '--weights', weights, '--image-encoder', encoder('enc24', 24), '--out', out, '--json']);
  assert.is(r.status, 0, r.stderr);
  const doc = JSON.parse(r.stdout);
  assert.is(doc.cross_attention_blocks, 4);
  assert.match(doc.adapter.sha256, /^[0-9a-f]{64}$/);
  assert.ok(existsSync(join(out, 'unet/ip_adapter.onnx')) && existsSync(join(out, 'unet/image_proj.onnx')));
  const bad = ragdiff(['convert', 'ip-adapter', repoPath('test/fixtures/sd/sd15'), '--weights', weights, '--image-encoder', encoder('enc20', 20), '--out', join(dir, 'ip2')]);
  assert.is(bad.status, 1);
  assert.match(bad.stderr, /\[WEIGHTS_MISMATCH\].*20-wide embeddings but image_proj\.proj\.weight takes 24/);
  const pickle = ragdiff(['convert', 'ip-adapter', repoPath('test/fixtures/sd/sd15'), '--weights', join(dir, 'ip-adapter_sd15.bin'), '--image-encoder', encoder('enc24', 24), '--out', join(dir, 'ip3')]);
  assert.match(pickle.stderr, /\[WEIGHTS_PICKLED\].*save_file/);
});

test.run();
