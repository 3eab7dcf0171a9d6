// issue 24, "RagPipeline on converted bundles": `ragdiff convert reference-attention` on the sd15
// fixture writes a bundle RagPipeline loads (the source's files linked, the variant declared in
// model_index.json), mode reference-attention runs on it with a pinned reference, changes the
// image, and at fidelity 0 equals the plain generation; the unconverted bundle answers UNSUPPORTED.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageStore, RagPipeline } from '../src/index.js';
import { readProvenance } from '../src/rag/index.js';
import { fakeEncoder } from './fixtures/store/fake-encoder.js';
import { bundleDir } from './fixtures/sd/oracle.js';
import { hasErrorCode, rejects, repoPath, tempDir } from './helpers.js';

const quiet = { onWarning: () => {} };
const t = tempDir('ragdiff-convert-rag-');
test.after(() => t.cleanup());
const ref = readFileSync(join(bundleDir('sd15'), 'oracle', 'init_image.png'));
const req = { prompt: 'a red circle', seed: 7, steps: 3, captureLatents: [2] };
const last = (r: { latents: { latent: Float32Array }[] }) => r.latents.at(-1)!.latent;
const maxAbs = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

for (const fam of ['sd15', 'sd15-fp16', 'sdxl'] as const) {
const src = bundleDir(fam);
const out = join(t.dir, `${fam}-refattn`);

test(`${fam}: the converted bundle declares its variant and shares the weights`, () => {
  const r = spawnSync(process.execPath, [repoPath('dist/src/cli/main.js'), 'convert', 'reference-attention', src, '--out', out], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  const index = JSON.parse(readFileSync(join(out, 'model_index.json'), 'utf8'));
  assert.equal(index.ragdiff.variants.reference_attention, { path: 'unet/refattn.onnx' });
  assert.is(index.ragdiff.family, fam === 'sdxl' ? 'sdxl' : 'sd1', 'the family stays the source\'s (a bare ragdiff block reads as tiny-emoji)');
  assert.is(index._class_name, JSON.parse(readFileSync(join(src, 'model_index.json'), 'utf8'))._class_name);
  for (const f of ['unet/model.onnx', 'unet/model.onnx_data', 'text_encoder/model.onnx', 'vae_encoder/model.onnx']) {
    assert.is(statSync(join(out, f)).ino, statSync(join(src, f)).ino, `${f} is linked, not copied`);
  }
  assert.not.ok('ragdiff' in JSON.parse(readFileSync(join(src, 'model_index.json'), 'utf8')), 'the source bundle is untouched');
});

test(`${fam}: RagPipeline runs reference-attention on the converted bundle; fidelity 0 is the plain generation`, async () => {
  const store = await ImageStore.open(join(t.dir, `store-${fam}`), { encoder: fakeEncoder() });
  const rag = await RagPipeline.load(out, quiet);
  try {
    await store.add([{ bytes: ref, meta: { name: 'ref' } }], { source: 'test' });
    assert.ok(rag.modes.includes('reference-attention'), `modes: ${rag.modes.join(', ')}`);
    assert.is(rag.pipeline.info.family, fam === 'sdxl' ? 'sdxl' : 'sd1');
    const attend = await rag.generate({ ...req, retrieval: { store, mode: 'reference-attention', references: [{ image: ref }] } });
    assert.is(attend.images.length, 1);
    const use = attend.references[0]!.usage.find((u) => u.as === 'attention');
    assert.ok(use, `the reference is used as attention: ${JSON.stringify(attend.references[0]!.usage)}`);
    const inPng = readProvenance(attend.images[0]!.png).provenance!.references[0]!;
    assert.ok(inPng.usage.some((u) => u.as === 'attention'), 'the PNG provenance says so too');
    const plain = await rag.generate(req);
    assert.is(last(plain).length, last(attend).length);
    const moved = maxAbs(last(attend), last(plain));
    assert.ok(moved > 1e-3, `attention changes the latents (max abs ${moved})`);
    const zero = await rag.generate({ ...req, retrieval: { store, mode: 'reference-attention', references: [{ image: ref }], referenceAttention: { fidelity: 0 } } });
    const err = maxAbs(last(zero), last(plain));
    assert.ok(err <= 1e-5, `fidelity 0 equals the plain generation (max abs ${err})`);
    // added to another mode, as on tiny-emoji: reference-init with the reference also as attention
    const both = await rag.generate({ ...req, retrieval: { store, mode: 'reference-init', references: [{ image: ref }], referenceInit: { strength: 0.6 }, referenceAttention: { fidelity: 1 } } });
    assert.equal(both.references[0]!.usage.map((u) => u.as).sort(), ['attention', 'init-latent']);
  } finally {
    await rag.close();
    await store.close();
  }
});

}

test('converting again into an earlier output replaces its stale files with the source\'s', () => {
  const src = bundleDir('sd15');
  const again = join(t.dir, 'again');
  mkdirSync(join(again, 'tokenizer'), { recursive: true });
  writeFileSync(join(again, 'tokenizer', 'vocab.json'), '{}');
  const r = spawnSync(process.execPath, [repoPath('dist/src/cli/main.js'), 'convert', 'reference-attention', src, '--out', again], { encoding: 'utf8' });
  assert.is(r.status, 0, r.stderr);
  assert.is(statSync(join(again, 'tokenizer', 'vocab.json')).ino, statSync(join(src, 'tokenizer', 'vocab.json')).ino);
  assert.ok(statSync(join(again, 'unet', 'refattn.onnx')).size > 0);
});

test('the unconverted sd15 bundle answers UNSUPPORTED naming the converter', async () => {
  const src = bundleDir('sd15');
  const store = await ImageStore.open(join(t.dir, 'store2'), { encoder: fakeEncoder() });
  const rag = await RagPipeline.load(src, quiet);
  try {
    assert.not.ok(rag.modes.includes('reference-attention'));
    await rejects(rag.generate({ ...req, retrieval: { store, mode: 'reference-attention', references: [{ image: ref }] } }),
      (e) => hasErrorCode('UNSUPPORTED')(e) && /ragdiff convert reference-attention/.test((e as Error).message));
  } finally {
    await rag.close();
    await store.close();
  }
});

test.run();
