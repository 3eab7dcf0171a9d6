/**
 * The spec of "runs SD 1.5, SD 2.1-v, SDXL, LCM and SD-Turbo": each fixture built
 * like an optimum export (test/fixtures/sd/, tools/sd_fixtures/) goes through
 * Pipeline.load + generate as a user would call it, and the final latents equal
 * what diffusers' pipeline computes on the same weights (the PyTorch oracle):
 * max abs error ≤ 1e-4 in fp32, ≤ 5e-2 for the fp16 export. Also: the token ids,
 * long prompts in 77-token windows, SDXL's prompt_2, image-to-image, and bad
 * external data.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpSync, readFileSync, rmSync, truncateSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ImageStore, Pipeline, RagPipeline, type GenerateRequest } from '../src/index.js';
import { fakeEncoder } from './fixtures/store/fake-encoder.js';
import { loadTokenizer } from '../src/models/tokenizer.js';
import { bundleDir, maxAbsDiff, oracleTensor, readOracle, type SdFamily } from './fixtures/sd/oracle.js';
import { hasErrorCode, rejects, tempDir } from './helpers.js';

const FAMILY: Record<SdFamily | 'sdturbo' | 'sd15-fp16', string> = {
  sd15: 'sd1', 'sd15-sdpa': 'sd1', 'sd15-fp16': 'sd1', sd21v: 'sd2', sdxl: 'sdxl', lcm: 'lcm', sdturbo: 'sd-turbo',
};
const quiet = { onWarning: () => {} };
const t = tempDir('ragdiff-sd-oracle-');
test.after(() => t.cleanup());

/** The oracle's request, and the latent after its last UNet call. */
async function finalLatents(p: Pipeline, fam: SdFamily, extra: Partial<GenerateRequest> = {}): Promise<Float32Array> {
  const o = readOracle(fam);
  const r = await p.generate({
    prompt: o.prompt, seed: o.seed, steps: o.steps, guidanceScale: o.guidance_scale,
    ...(o.negative_prompt !== null ? { negativePrompt: o.negative_prompt } : {}),
    captureLatents: [o.unet_calls - 1], ...extra,
  });
  assert.is(r.stats.nfe, o.unet_calls, `${fam}: UNet calls`);
  assert.is(r.stats.branches, o.cfg ? 2 : 1, `${fam}: CFG branches`);
  return r.latents.at(-1)!.latent;
}

for (const fam of Object.keys(FAMILY) as SdFamily[]) {
  test(`${fam}: Pipeline's final latents equal the PyTorch oracle's (≤ its tolerance)`, async () => {
    const o = readOracle(fam);
    const p = await Pipeline.load(bundleDir(fam), quiet);
    try {
      assert.is(p.info.family, FAMILY[fam]);
      assert.equal(p.info.warnings.filter((w) => w.includes('unknown key')), [], 'the published configs hold no key ragdiff does not know');
      assert.equal([p.info.image.height, p.info.image.width], [o.height, o.width]);
      const got = await finalLatents(p, fam);
      const err = maxAbsDiff(got, oracleTensor(fam, o, 'final_latents').data);
      assert.ok(err <= o.tolerance.final_latents_max_abs, `${fam}: max abs error ${err} > ${o.tolerance.final_latents_max_abs}`);
    } finally {
      await p.close();
    }
  });
}

test("token ids are the oracle's: CLIP BPE from vocab.json + merges.txt, pad from special_tokens_map.json", () => {
  for (const fam of ['sd15', 'sd21v', 'sdxl'] as const) {
    const o = readOracle(fam);
    const cond = o.token_ids.cond;
    const rows = Array.isArray(cond[0]) ? (cond as number[][]) : [cond as number[]];
    rows.forEach((row, k) => {
      const tok = loadTokenizer(join(bundleDir(fam), k === 0 ? 'tokenizer' : 'tokenizer_2'));
      assert.equal(Array.from(tok.encode(o.prompt).ids, Number), row, `${fam} tokenizer ${k + 1}`);
    });
  }
});

test('SDXL: prompt_2 defaults to the prompt; another prompt_2 or an explicit "" negative changes the latents', async () => {
  const p = await Pipeline.load(bundleDir('sdxl'), quiet);
  try {
    const o = readOracle('sdxl');
    const base = await finalLatents(p, 'sdxl');
    assert.equal(await finalLatents(p, 'sdxl', { prompt2: o.prompt }), base, 'prompt2 = prompt is the default');
    assert.ok(maxAbsDiff(await finalLatents(p, 'sdxl', { prompt2: 'a pencil sketch' }), base) > 1e-3);
    // force_zeros_for_empty_prompt applies to an unset negative prompt only (diffusers).
    assert.ok(maxAbsDiff(await finalLatents(p, 'sdxl', { negativePrompt: '' }), base) > 1e-3);
    // time ids are conditioning: another original size moves the result.
    assert.ok(maxAbsDiff(await finalLatents(p, 'sdxl', { sizeConditioning: { originalSize: [512, 512] } }), base) > 1e-4);
  } finally {
    await p.close();
  }
});

test('prompts longer than 77 tokens: 77-token windows concatenated (A1111/compel), truncatePrompt cuts to one', async () => {
  const p = await Pipeline.load(bundleDir('sd15'), quiet);
  try {
    const long = Array.from({ length: 30 }, () => 'a photo of an astronaut').join(' '); // over 75 tokens
    const req = { prompt: long, seed: 1, steps: 2, guidanceScale: 7.5, sampler: 'ddim' as const };
    const windows = await p.generate(req);
    assert.ok(windows.stats.prompt.chunks >= 2, `${windows.stats.prompt.chunks} windows for ${windows.stats.prompt.tokens} tokens`);
    assert.is(windows.stats.prompt.chunks, Math.ceil((windows.stats.prompt.tokens - 2) / 75));
    assert.is(windows.stats.prompt.truncated, false);
    const cut = await p.generate({ ...req, truncatePrompt: true });
    assert.is(cut.stats.prompt.chunks, 1);
    assert.is(cut.stats.prompt.truncated, true);
    assert.not.ok(windows.images[0]!.png.equals(cut.images[0]!.png), 'the second window reaches the UNet');
    // A prompt that fits one window is the same either way.
    const short = await p.generate({ ...req, prompt: 'a photo of an astronaut' });
    const shortCut = await p.generate({ ...req, prompt: 'a photo of an astronaut', truncatePrompt: true });
    assert.ok(short.images[0]!.png.equals(shortCut.images[0]!.png));
    // SDXL's own options are refused on an SD 1.x model, not ignored.
    await rejects(p.generate({ ...req, prompt2: 'x' }), (e) => hasErrorCode('INVALID_VALUE')(e) && /prompt2 applies to SDXL/.test((e as Error).message));
    await rejects(p.generate({ ...req, sizeConditioning: { originalSize: [64, 64] } }), hasErrorCode('INVALID_VALUE'));
    // The negative prompt is padded to the same number of windows.
    const neg = await p.generate({ ...req, negativePrompt: long });
    assert.is(neg.stats.negativePrompt.chunks, windows.stats.prompt.chunks);
  } finally {
    await p.close();
  }
});

for (const fam of ['sd21v', 'sdxl', 'sdturbo'] as const) {
  test(`${fam}: image-to-image (strength 0.5) equals the oracle's img2img latents`, async () => {
    const o = readOracle(fam) as ReturnType<typeof readOracle> & { img2img: { strength: number; init_image: string; unet_calls: number } };
    const p = await Pipeline.load(bundleDir(fam), quiet);
    try {
      const r = await p.generate({
        prompt: o.prompt, seed: o.seed, steps: o.steps, guidanceScale: o.guidance_scale,
        ...(o.negative_prompt !== null ? { negativePrompt: o.negative_prompt } : {}),
        initImage: readFileSync(join(bundleDir(fam), o.img2img.init_image)), strength: o.img2img.strength,
        captureLatents: [o.steps - 1],
      });
      assert.is(r.stats.nfe, o.img2img.unet_calls);
      const err = maxAbsDiff(r.latents.at(-1)!.latent, oracleTensor(fam, o, 'img2img_final_latents').data);
      assert.ok(err <= 1e-4, `${fam}: img2img max abs error ${err}`);
    } finally {
      await p.close();
    }
  });
}

test('reference-init (RagPipeline) runs on every family with a VAE encoder; modes it cannot run are UNSUPPORTED naming what adds them', async () => {
  const store = await ImageStore.open(join(t.dir, 'store'), { encoder: fakeEncoder() });
  try {
    const ref = readFileSync(join(bundleDir('sd15'), 'oracle', 'init_image.png'));
    await store.add([{ bytes: ref, meta: { name: 'init' } }], { source: 'test' });
    for (const fam of ['sd15', 'sd21v', 'sdxl', 'lcm', 'sdturbo'] as const) {
      const rag = await RagPipeline.load(bundleDir(fam), quiet);
      try {
        assert.equal(rag.modes, ['reference-init'], fam);
        const o = readOracle(fam);
        const req = { prompt: o.prompt, seed: 3, steps: o.steps };
        const r = await rag.generate({ ...req, retrieval: { store, mode: 'reference-init', references: [{ image: ref }], referenceInit: { strength: 0.5 } } });
        assert.is(r.images.length, 1, fam);
        assert.is(r.stats.branches, fam === 'lcm' || fam === 'sdturbo' ? 1 : 2, `${fam}: the family's guidance (LCM embedded, Turbo off at scale 0)`);
        assert.is(r.references[0]!.usage[0]!.as, 'init-latent', fam);
        await rejects(rag.generate({ ...req, retrieval: { store, mode: 'tokens' } }), (e) => hasErrorCode('UNSUPPORTED')(e) && /ragdiff convert ip-adapter/.test((e as Error).message), `${fam} tokens`);
        await rejects(rag.generate({ ...req, retrieval: { store, mode: 'reference-attention' } }), (e) => hasErrorCode('UNSUPPORTED')(e) && /ragdiff convert reference-attention/.test((e as Error).message), `${fam} reference-attention`);
      } finally {
        await rag.close();
      }
    }
  } finally {
    await store.close();
  }
});

test('LCM: more steps than its scheduler was distilled over (original_inference_steps) is OUT_OF_RANGE, named', async () => {
  const p = await Pipeline.load(bundleDir('lcm'), quiet);
  try {
    await rejects(p.generate({ prompt: 'a red car', steps: 51 }), (e) => hasErrorCode('OUT_OF_RANGE')(e) && /original_inference_steps \(50\)/.test((e as Error).message));
  } finally {
    await p.close();
  }
});

test('external data: a missing model.onnx_data is MODEL_FILE_MISSING naming it; a truncated one MODEL_FILE_INVALID', async () => {
  const dir = join(t.dir, 'ext');
  cpSync(bundleDir('sdxl'), dir, { recursive: true });
  const data = join(dir, 'text_encoder_2', 'model.onnx_data');
  truncateSync(data, Math.floor(statSync(data).size / 2));
  await rejects(Pipeline.load(dir, quiet), (e) => hasErrorCode('MODEL_FILE_INVALID')(e) && /external data .*text_encoder_2.*truncated/.test((e as Error).message));
  rmSync(data);
  await rejects(Pipeline.load(dir, quiet), (e) => hasErrorCode('MODEL_FILE_MISSING')(e) && (e as Error).message.includes(data));
});

test("a text encoder of another width than the UNet's cross-attention is MODEL_IO_MISMATCH naming both", async () => {
  const dir = join(t.dir, 'width');
  cpSync(bundleDir('sd15'), dir, { recursive: true });
  // SDXL's text_encoder_2 (width 48, external data beside it) in place of SD 1.5's (32).
  for (const f of ['model.onnx', 'model.onnx_data', 'config.json']) cpSync(join(bundleDir('sdxl'), 'text_encoder_2', f), join(dir, 'text_encoder', f));
  await rejects(Pipeline.load(dir, quiet), (e) => hasErrorCode('MODEL_IO_MISMATCH')(e) && /32 differs from the text encoders' width 48/.test((e as Error).message));
});

test.run();
