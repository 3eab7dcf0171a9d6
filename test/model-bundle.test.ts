// The embedded tiny-emoji bundle (models/tiny-emoji): every ONNX part loads in
// onnxruntime-node with the diffusers/ragdiff I/O names and dynamic batch, matches the
// golden outputs the PyTorch code produced, the tokenizer gives the training ids, and
// model_index.json agrees with the tensors. Regenerate the goldens with
// `/usr/bin/python3 tools/tiny_emoji/onnx_weights.py` after retraining.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { Tokenizer } from '@huggingface/tokenizers';
import { repoPath } from './helpers.js';

const bundle = process.env.TINY_EMOJI_BUNDLE ?? repoPath('models/tiny-emoji');
const readJson = (p: string): any => JSON.parse(readFileSync(p, 'utf8'));
const index = readJson(join(bundle, 'model_index.json'));
const rd = index.ragdiff;
const golden = readJson(repoPath('tools/tiny_emoji/golden.json'));
const ctxLen = rd.text_max_length + rd.retrieval.k;

type Feed = Record<string, ort.Tensor>;
interface Part {
  dir: string;
  inputs: string[];
  outputs: string[];
  feed(batch: number): Feed;
  /** Expected output shapes for a batch. */
  shapes(batch: number): Record<string, number[]>;
}

const f32 = (dims: number[], fill: (i: number) => number = () => 0) => {
  const n = dims.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = fill(i);
  return new ort.Tensor('float32', data, dims);
};
const i64 = (dims: number[], values: number[]) => new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), dims);
const pattern = (scale: number, phase = 0) => (i: number) => scale * Math.sin(0.37 * i + phase);

const img = rd.image_size;
const lat = rd.latent_size;
const lc = rd.latent_channels;
const parts: Part[] = [
  {
    dir: 'text_encoder', inputs: ['input_ids'], outputs: ['last_hidden_state', 'text_embeds'],
    feed: (b) => ({ input_ids: i64([b, rd.text_max_length], new Array(b * rd.text_max_length).fill(0)) }),
    shapes: (b) => ({ last_hidden_state: [b, rd.text_max_length, rd.token_width], text_embeds: [b, rd.embed_dim] }),
  },
  {
    dir: 'image_encoder', inputs: ['pixel_values'], outputs: ['image_embeds'],
    feed: (b) => ({ pixel_values: f32([b, 3, img, img]) }),
    shapes: (b) => ({ image_embeds: [b, rd.embed_dim] }),
  },
  {
    dir: 'image_proj', inputs: ['image_embeds'], outputs: ['image_prompt_embeds'],
    feed: (b) => ({ image_embeds: f32([b, rd.retrieval.k, rd.embed_dim]) }),
    shapes: (b) => ({ image_prompt_embeds: [b, rd.retrieval.k, rd.token_width] }),
  },
  {
    dir: 'unet', inputs: ['sample', 'timestep', 'encoder_hidden_states'], outputs: ['out_sample'],
    feed: (b) => ({
      sample: f32([b, lc, lat, lat]),
      timestep: i64([b], new Array(b).fill(500)),
      encoder_hidden_states: f32([b, ctxLen, rd.token_width]),
    }),
    shapes: (b) => ({ out_sample: [b, lc, lat, lat] }),
  },
  {
    dir: 'vae_encoder', inputs: ['sample'], outputs: ['latent_sample'],
    feed: (b) => ({ sample: f32([b, 3, img, img]) }),
    shapes: (b) => ({ latent_sample: [b, lc, lat, lat] }),
  },
  {
    dir: 'vae_decoder', inputs: ['latent_sample'], outputs: ['sample'],
    feed: (b) => ({ latent_sample: f32([b, lc, lat, lat]) }),
    shapes: (b) => ({ sample: [b, 3, img, img] }),
  },
];

const sessions = new Map<string, ort.InferenceSession>();
async function session(dir: string): Promise<ort.InferenceSession> {
  let s = sessions.get(dir);
  if (!s) {
    s = await ort.InferenceSession.create(join(bundle, dir, 'model.onnx'), { executionProviders: ['cpu'] });
    sessions.set(dir, s);
  }
  return s;
}

function assertClose(t: ort.Tensor, g: { shape: number[]; first: number[]; sum: number; abs_sum: number }, what: string) {
  assert.equal(Array.from(t.dims), g.shape, `${what} shape`);
  const d = t.data as Float32Array;
  g.first.forEach((v, i) => assert.ok(Math.abs(d[i]! - v) < 1e-3 + 1e-3 * Math.abs(v), `${what}[${i}] = ${d[i]}, golden ${v}`));
  let sum = 0;
  let abs = 0;
  for (const v of d) { sum += v; abs += Math.abs(v); }
  assert.ok(Math.abs(abs - g.abs_sum) <= 1e-3 * g.abs_sum + 1e-2, `${what} sum|x| = ${abs}, golden ${g.abs_sum}`);
  assert.ok(Math.abs(sum - g.sum) <= 1e-3 * g.abs_sum + 1e-2, `${what} sum = ${sum}, golden ${g.sum}`);
}

for (const part of parts) {
  test(`${part.dir}/model.onnx loads with the expected I/O names and runs at batch 1 and 2`, async () => {
    const s = await session(part.dir);
    assert.equal([...s.inputNames].sort(), [...part.inputs].sort());
    assert.equal([...s.outputNames].sort(), [...part.outputs].sort());
    for (const b of [1, 2]) {
      const out = await s.run(part.feed(b));
      for (const [name, shape] of Object.entries(part.shapes(b))) {
        assert.equal(Array.from(out[name]!.dims), shape, `${part.dir} ${name} at batch ${b}`);
        assert.ok((out[name]!.data as Float32Array).every(Number.isFinite), `${part.dir} ${name} finite`);
      }
    }
  });
}

test('unet accepts a timestep of shape [1] broadcast over the batch (as SD ONNX pipelines pass it)', async () => {
  const s = await session('unet');
  const feed = parts.find((p) => p.dir === 'unet')!.feed(2);
  const perItem = await s.run(feed);
  const shared = await s.run({ ...feed, timestep: i64([1], [500]) });
  assert.equal(Array.from(shared.out_sample!.dims), [2, lc, lat, lat]);
  const a = perItem.out_sample!.data as Float32Array;
  const b = shared.out_sample!.data as Float32Array;
  assert.ok(a.every((v, i) => Math.abs(v - b[i]!) < 1e-5));
});

test('ONNX outputs match the PyTorch golden values (tools/tiny_emoji/golden.json)', async () => {
  const ids = golden.prompt_ids as number[];
  const te = await (await session('text_encoder')).run({ input_ids: i64([1, ids.length], ids) });
  assertClose(te.last_hidden_state!, golden.text_encoder.last_hidden_state, 'last_hidden_state');
  assertClose(te.text_embeds!, golden.text_encoder.text_embeds, 'text_embeds');
  const ie = await (await session('image_encoder')).run({ pixel_values: f32([2, 3, img, img], pattern(0.9)) });
  assertClose(ie.image_embeds!, golden.image_encoder.image_embeds, 'image_embeds');
  const ve = await (await session('vae_encoder')).run({ sample: f32([2, 3, img, img], pattern(0.9)) });
  assertClose(ve.latent_sample!, golden.vae_encoder.latent_sample, 'vae latent_sample');
  const vd = await (await session('vae_decoder')).run({ latent_sample: f32([2, lc, lat, lat], pattern(0.9)) });
  assertClose(vd.sample!, golden.vae_decoder.sample, 'vae sample');
  const ip = await (await session('image_proj')).run({ image_embeds: f32([2, rd.retrieval.k, rd.embed_dim], pattern(0.9)) });
  assertClose(ip.image_prompt_embeds!, golden.image_proj.image_prompt_embeds, 'image_prompt_embeds');
  const un = await (await session('unet')).run({
    sample: f32([2, lc, lat, lat], pattern(0.9)),
    timestep: i64([1], golden.unet.timestep),
    encoder_hidden_states: f32([2, ctxLen, rd.token_width], pattern(1.0, 1.0)),
  });
  assertClose(un.out_sample!, golden.unet.out_sample, 'out_sample');
});

test('text embeddings and image embeddings are L2-normalised', async () => {
  const ids = golden.prompt_ids as number[];
  const te = await (await session('text_encoder')).run({ input_ids: i64([1, ids.length], ids) });
  const ie = await (await session('image_encoder')).run({ pixel_values: f32([2, 3, img, img], pattern(0.9)) });
  for (const [t, n] of [[te.text_embeds!, 1], [ie.image_embeds!, 2]] as const) {
    const d = t.data as Float32Array;
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let i = 0; i < rd.embed_dim; i++) s += d[r * rd.embed_dim + i]! ** 2;
      assert.ok(Math.abs(Math.sqrt(s) - 1) < 1e-4, `norm ${Math.sqrt(s)}`);
    }
  }
});

test('the tokenizer loads with @huggingface/tokenizers and gives the ids used in training', () => {
  const dir = join(bundle, 'tokenizer');
  const config = readJson(join(dir, 'tokenizer_config.json'));
  const tok = new Tokenizer(readJson(join(dir, 'tokenizer.json')), config);
  assert.is(config.model_max_length, rd.text_max_length);
  const ids = Array.from(tok.encode(golden.prompt).ids, Number);
  const padId = tok.token_to_id(config.pad_token);
  const padded = [...ids, ...new Array(rd.text_max_length - ids.length).fill(padId)];
  assert.equal(padded, golden.prompt_ids);
  assert.is(ids[0], tok.token_to_id('[BOS]'));
  assert.is(ids[ids.length - 1], tok.token_to_id('[EOS]'));
  // Accents are stripped the same way as in training (NFD + StripAccents + Lowercase).
  assert.equal(Array.from(tok.encode('CURAÇAO Flag').ids), Array.from(tok.encode('curacao flag').ids));
  assert.ok(!tok.encode('curacao flag').ids.includes(tok.token_to_id('[UNK]')!));
});

test('model_index.json, the configs and the tensors agree', async () => {
  assert.is(rd.retrieval.uncond_neighbours, 'zeros');
  assert.is(rd.uncond_text, 'empty_prompt');
  assert.is(rd.prediction_type, 'epsilon');
  assert.ok(existsSync(join(bundle, rd.retrieval.image_proj)));
  for (const key of ['text_encoder', 'unet', 'vae_decoder', 'vae_encoder', 'scheduler', 'tokenizer', 'feature_extractor']) {
    assert.ok(Array.isArray(index[key]), `model_index.json lists ${key}`);
  }
  const sched = readJson(join(bundle, 'scheduler', 'scheduler_config.json'));
  assert.is(sched.prediction_type, rd.prediction_type);
  assert.is(sched.num_train_timesteps, 1000);
  const vae = readJson(join(bundle, 'vae_decoder', 'config.json'));
  assert.is(vae.latent_channels, rd.latent_channels);
  assert.ok(vae.scaling_factor > 0 && vae.scaling_factor < 10);
  const pre = readJson(join(bundle, 'feature_extractor', 'preprocessor_config.json'));
  assert.is(pre.crop_size.height, rd.image_size);
  assert.is(pre.image_mean.length, 3);
  assert.is(pre.image_std.length, 3);
  const split = readJson(join(bundle, 'split.json'));
  assert.ok(split.heldout_subcategories.length >= 2);
  assert.ok(split.heldout.length > 0);
});

test('the whole bundle is at most 30 MB', () => {
  let total = 0;
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else total += st.size;
    }
  };
  walk(bundle);
  assert.ok(total <= 30 * 1024 * 1024, `bundle is ${(total / 1e6).toFixed(1)} MB`);
});

test.run();
