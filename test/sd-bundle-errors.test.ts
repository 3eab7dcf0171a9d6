/**
 * Stable Diffusion family bundles as published: the family is read from
 * model_index.json and the configs, unknown keys are named in info.warnings, and
 * every kind of bad bundle is a typed error naming the file and what is wrong.
 * Built on copies of the SD-style fp16 fixture (test/fixtures/pipeline/sd-fp16).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Pipeline, readBundle } from '../src/index.js';
import { hasErrorCode, rejects, repoPath, tempDir } from './helpers.js';

const SD = repoPath('test/fixtures/pipeline/sd-fp16');
const TINY = repoPath('test/fixtures/pipeline/tiny-bundle');
const t = tempDir('ragdiff-sd-errors-');
let n = 0;
/** A copy of the SD fixture, changed by `edit` (paths relative to the copy). */
function variant(edit: (dir: string, json: (rel: string, f: (j: Record<string, unknown>) => void) => void) => void): string {
  const dir = join(t.dir, `b${n++}`);
  cpSync(SD, dir, { recursive: true });
  edit(dir, (rel, f) => {
    const p = join(dir, rel);
    const j = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    f(j);
    writeFileSync(p, JSON.stringify(j));
  });
  return dir;
}
const quiet = { onWarning: () => {} };
const says = (code: string, ...parts: (string | RegExp)[]) => (e: unknown) =>
  hasErrorCode(code)(e) && parts.every((p) => (typeof p === 'string' ? (e as Error).message.includes(p) : p.test((e as Error).message)));

test.after(() => t.cleanup());

test('family read from model_index.json: OnnxStableDiffusionPipeline is sd1; ragdiff bundles are tiny-emoji', () => {
  assert.is(readBundle(SD).family, 'sd1');
  assert.is(readBundle(TINY).family, 'tiny-emoji');
  assert.is(readBundle(repoPath('models/tiny-emoji')).family, 'tiny-emoji');
  const v = variant((_, json) => json('scheduler/scheduler_config.json', (j) => (j.prediction_type = 'v_prediction')));
  assert.is(readBundle(v).family, 'sd2', 'v_prediction: SD 2.x');
  const turbo = variant((_, json) => json('model_index.json', (j) => (j._name_or_path = 'stabilityai/sd-turbo')));
  assert.is(readBundle(turbo).family, 'sd-turbo');
});

test('unknown keys of the published configs are named in info.warnings, not ignored', async () => {
  const dir = variant((d, json) => {
    json('model_index.json', (j) => (j.mystery_component = ['x', 'Y']));
    writeFileSync(join(d, 'unet', 'config.json'), JSON.stringify({ _class_name: 'UNet2DConditionModel', sample_size: 8, upcast_attentionn: true }));
  });
  const m = readBundle(dir);
  assert.equal(m.warnings.length, 2);
  assert.ok(m.warnings.some((w) => w.includes('model_index.json') && w.includes('"mystery_component"')));
  assert.ok(m.warnings.some((w) => w.includes(join('unet', 'config.json')) && w.includes('"upcast_attentionn"')));
  const p = await Pipeline.load(dir, quiet);
  try {
    assert.equal(p.info.warnings.filter((w) => w.includes('unknown key')).length, 2);
  } finally {
    await p.close();
  }
  assert.equal(readBundle(SD).warnings, [], 'the plain fixture has none');
});

test('a config file that is not JSON is MODEL_FILE_INVALID naming it', () => {
  for (const rel of ['unet/config.json', 'vae_decoder/config.json', 'text_encoder/config.json', 'model_index.json', 'scheduler/scheduler_config.json']) {
    const dir = variant((d) => writeFileSync(join(d, rel), '{ "in_channels": 4,'));
    assert.throws(() => readBundle(dir), says('MODEL_FILE_INVALID', join(...rel.split('/')), 'not valid JSON'), rel);
  }
});

test('an SDXL model_index.json without text_encoder_2 is MODEL_FILE_MISSING naming it; listed but absent names the file', () => {
  const xl = variant((_, json) => json('model_index.json', (j) => (j._class_name = 'ORTStableDiffusionXLPipeline')));
  assert.throws(() => readBundle(xl), says('MODEL_FILE_MISSING', 'model_index.json', 'text_encoder_2', 'sdxl'));
  const listed = variant((_, json) => json('model_index.json', (j) => {
    j._class_name = 'StableDiffusionXLPipeline';
    j.text_encoder_2 = ['transformers', 'CLIPTextModelWithProjection'];
    j.tokenizer_2 = ['transformers', 'CLIPTokenizer'];
  }));
  assert.throws(() => readBundle(listed), says('MODEL_FILE_MISSING', join('text_encoder_2', 'model.onnx')));
});

test('a pipeline class ragdiff does not run is UNSUPPORTED, named', () => {
  const dir = variant((_, json) => json('model_index.json', (j) => (j._class_name = 'StableDiffusion3Pipeline')));
  assert.throws(() => readBundle(dir), says('UNSUPPORTED', 'StableDiffusion3Pipeline'));
});

test('a scheduler class ragdiff does not implement is UNSUPPORTED_SCHEDULER, named', async () => {
  const dir = variant((_, json) => json('scheduler/scheduler_config.json', (j) => (j._class_name = 'HeunDiscreteScheduler')));
  await rejects(Pipeline.load(dir, quiet), says('UNSUPPORTED_SCHEDULER', 'HeunDiscreteScheduler'));
});

test("a UNet whose inputs are not the family's is MODEL_IO_MISMATCH naming the missing inputs", async () => {
  // The LCM class needs timestep_cond, which this SD 1.x UNet does not take.
  const lcm = variant((_, json) => json('model_index.json', (j) => (j._class_name = 'LatentConsistencyModelPipeline')));
  assert.is(readBundle(lcm).family, 'lcm');
  await rejects(Pipeline.load(lcm, quiet), says('MODEL_IO_MISMATCH', join('unet', 'model.onnx'), 'missing inputs timestep_cond', 'lcm'));
});

test("mismatched widths between the text encoder and the UNet's cross-attention are MODEL_IO_MISMATCH", async () => {
  const dir = variant((d) => writeFileSync(join(d, 'unet', 'config.json'), JSON.stringify({ _class_name: 'UNet2DConditionModel', cross_attention_dim: 768 })));
  await rejects(Pipeline.load(dir, quiet), says('MODEL_IO_MISMATCH', 'cross_attention_dim 768', "text encoders' width 32"));
});

test("text_encoder/config.json's hidden_size must be the graph's width (a config from another model is named)", async () => {
  const dir = variant((d) => writeFileSync(join(d, 'text_encoder', 'config.json'), JSON.stringify({ architectures: ['CLIPTextModel'], hidden_size: 768 })));
  await rejects(Pipeline.load(dir, quiet), says('MODEL_IO_MISMATCH', join('text_encoder', 'config.json'), 'hidden_size 768', 'width 32'));
});

test('Turbo: more steps than it is distilled for is OUT_OF_RANGE; 1 step runs without CFG by default', async () => {
  const dir = variant((_, json) => json('model_index.json', (j) => (j.ragdiff = { family: 'sd-turbo' })));
  const p = await Pipeline.load(dir, quiet);
  try {
    assert.is(p.info.family, 'sd-turbo');
    assert.equal(p.info.defaults.steps, 1);
    await rejects(p.generate({ prompt: 'red cat', steps: 5 }), says('OUT_OF_RANGE', 'steps 5', 'sd-turbo', '1..4'));
    const r = await p.generate({ prompt: 'red cat', seed: 1 });
    assert.is(r.stats.branches, 1, 'guidance scale 0: the conditional branch alone');
    assert.is(r.stats.nfe, 1);
    const cfg = await p.generate({ prompt: 'red cat', seed: 1, guidanceScale: 2, steps: 2 });
    assert.is(cfg.stats.branches, 2, 'a scale above 1 turns CFG on, as diffusers');
  } finally {
    await p.close();
  }
});

test('an fp16 UNet with an fp32 VAE decoder runs: latents are cast at the boundary, and info says so', async () => {
  // tiny-bundle's decoder is fp32 and takes the same 4×8×8 latents (to 32×32 pixels).
  const dir = variant((d) => {
    cpSync(join(TINY, 'vae_decoder', 'model.onnx'), join(d, 'vae_decoder', 'model.onnx'));
    rmSync(join(d, 'vae_encoder'), { recursive: true });
  });
  const p = await Pipeline.load(dir, quiet);
  try {
    assert.is(p.info.dtype, 'float16');
    assert.ok(p.info.warnings.some((w) => /float16.*float32.*converted at the boundary/.test(w)), p.info.warnings.join('\n'));
    const r = await p.generate({ prompt: 'red cat', seed: 2, steps: 2 });
    assert.is(r.images[0]!.width, 32);
  } finally {
    await p.close();
  }
});

test.run();
