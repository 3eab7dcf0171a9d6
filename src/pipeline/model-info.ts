/**
 * What a loaded bundle takes and makes (ModelInfo), read from the shapes and types
 * its sessions declare, with symbolic dimensions filled from the published configs;
 * and the checks that the parts fit together: the UNet's inputs are the family's,
 * its cross-attention width is the text encoders' (concatenated) width.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { RagdiffError } from '../errors.js';
import type { OpenedSession } from '../models/session.js';
import type { BundleManifest } from './bundle.js';
import { FAMILIES, unetInputs } from './families/index.js';
import { floatTypeOf } from './tensor-io.js';
import { dim, outputName, tensorMeta } from './session-meta.js';
import type { TextEncoder } from './stages/encode-prompt.js';
import type { ModelInfo } from './job.js';

/** sha256 over every file of the bundle's component folders, in a fixed order (path, then bytes). */
export function hashBundle(manifest: BundleManifest): string {
  const h = createHash('sha256');
  const dirs = ['text_encoder', 'text_encoder_2', 'unet', 'vae_decoder', 'vae_encoder', 'image_proj', 'tokenizer', 'tokenizer_2', 'scheduler'];
  const files: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) files.push(p);
    }
  };
  for (const d of dirs) if (existsSync(join(manifest.dir, d))) walk(join(manifest.dir, d));
  files.sort();
  const buf = Buffer.allocUnsafe(1 << 20);
  for (const f of files) {
    h.update(relative(manifest.dir, f).replaceAll('\\', '/') + '\0' + statSync(f).size + '\0');
    const fd = openSync(f, 'r');
    try {
      for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
    } finally {
      closeSync(fd);
    }
  }
  return h.digest('hex');
}

/** The UNet's inputs are exactly the family's: a missing one cannot be fed, an extra one would be left unfed. */
export function checkUnetInputs(manifest: BundleManifest, unet: OpenedSession): void {
  const want = unetInputs(FAMILIES[manifest.family]);
  const has = unet.session.inputNames;
  const missing = want.filter((n) => !has.includes(n));
  const extra = has.filter((n) => !want.includes(n));
  if (missing.length || extra.length) {
    throw new RagdiffError('MODEL_IO_MISMATCH',
      `${unet.path}: the UNet's inputs (${has.join(', ')}) are not those of a ${manifest.family} model (${want.join(', ')})` +
      (missing.length ? `: missing inputs ${missing.join(', ')}` : '') + (extra.length ? `${missing.length ? ';' : ':'} unexpected inputs ${extra.join(', ')}` : '') +
      ` — the family was read from ${join(manifest.dir, 'model_index.json')} (_class_name, ragdiff.family) and unet/config.json`);
  }
}

export function resolveInfo(manifest: BundleManifest, encoders: readonly TextEncoder[], unet: OpenedSession, dec: OpenedSession, enc: OpenedSession | null): ModelInfo {
  const rd = manifest.ragdiff ?? {};
  const family = FAMILIES[manifest.family];
  const unetConfig = manifest.configs.unet;
  const vaeConfig = manifest.configs.vae;
  const decOut = outputName(dec, 'sample');

  const sample = tensorMeta(unet, 'sample', 'input');
  const ehsMeta = tensorMeta(unet, 'encoder_hidden_states', 'input');
  const ts = tensorMeta(unet, 'timestep', 'input');
  const decOutMeta = tensorMeta(dec, decOut, 'output');

  const num = (v: unknown) => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined);
  const latentC = dim(sample.shape[1]) ?? num(unetConfig.in_channels) ?? rd.latent_channels ?? 4;
  const latentH = dim(sample.shape[2]) ?? num(unetConfig.sample_size) ?? rd.latent_size ?? 64;
  const latentW = dim(sample.shape[3]) ?? num(unetConfig.sample_size) ?? rd.latent_size ?? 64;
  const blocks = Array.isArray(vaeConfig.block_out_channels) ? vaeConfig.block_out_channels.length : 0;
  const factor = rd.image_size && rd.latent_size ? rd.image_size / rd.latent_size : blocks > 0 ? 2 ** (blocks - 1) : 8;
  const imageH = dim(decOutMeta.shape[2]) ?? latentH * factor;
  const imageW = dim(decOutMeta.shape[3]) ?? latentW * factor;
  const first = encoders[0]!;
  const textLength = first.length;
  for (const e of encoders) {
    if (e.length !== textLength) throw new RagdiffError('MODEL_IO_MISMATCH', `${e.session.path}: takes ${e.length} tokens, ${first.session.path} ${textLength}; the encoders must agree`);
  }
  // One encoder: its width (else the UNet's or the ragdiff block's, see describeTextEncoder); several add up (SDXL 768 + 1280).
  const tokenWidth = encoders.reduce((a, e) => a + e.width, 0);
  // The UNet's cross-attention width, as its graph declares it and as unet/config.json says: both must be the encoders'.
  const parts = encoders.map((e) => `${e.spec.component} ${e.width}`).join(' + ');
  const widths: [number | undefined, string][] = [
    [dim(ehsMeta.shape[2]), `${unet.path}: encoder_hidden_states width`],
    [num(unetConfig.cross_attention_dim), `${join(manifest.dir, 'unet', 'config.json')}: cross_attention_dim`],
  ];
  for (const [width, where] of widths) {
    if (width !== undefined && width !== tokenWidth) {
      throw new RagdiffError('MODEL_IO_MISMATCH', `${where} ${width} differs from the text encoders' width ${tokenWidth} (${parts}): the UNet and text encoder(s) are from different models`);
    }
  }
  const fixedSeq = dim(ehsMeta.shape[1]);
  const seq = fixedSeq ?? textLength + manifest.neighbourSlots;
  const slots = seq - textLength;
  if (slots < 0) {
    throw new RagdiffError('MODEL_IO_MISMATCH', `${unet.path}: encoder_hidden_states holds ${seq} tokens, fewer than the text encoder's ${textLength}`);
  }
  if (slots > 0 && !family.retrievalSlots) {
    throw new RagdiffError('MODEL_IO_MISMATCH', `${unet.path}: encoder_hidden_states holds ${seq} tokens, more than the text encoder's ${textLength}; a ${family.name} UNet takes the text alone`);
  }
  const batchDim = sample.shape[0];
  if (typeof batchDim === 'number' && batchDim > 0) {
    throw new RagdiffError('UNSUPPORTED', `${unet.path}: the UNet has a fixed batch of ${batchDim}; re-export it with a dynamic batch axis`);
  }
  if (!['int64', 'int32', 'float32', 'float16'].includes(ts.type)) {
    throw new RagdiffError('MODEL_IO_MISMATCH', `${unet.path}: timestep has type ${ts.type}; expected int64, int32, float32 or float16`);
  }
  const dtype = floatTypeOf(sample.type, `${unet.path}: sample`);
  floatTypeOf(tensorMeta(unet, outputName(unet, 'out_sample'), 'output').type, `${unet.path}: output`);
  const pooled = encoders.find((e) => e.pooledOut);

  const warnings = [...manifest.warnings];
  const decType = floatTypeOf(tensorMeta(dec, 'latent_sample', 'input').type, `${dec.path}: latent_sample`);
  if (decType !== dtype) warnings.push(`${unet.path} is ${dtype}, ${dec.path} ${decType}: latents are converted at the boundary (ragdiff computes in float32 between models)`);
  if (manifest.forceUpcast && decType === 'float16') {
    warnings.push(`${dec.path}: the VAE config sets force_upcast (diffusers decodes it in fp32) but the export is fp16; decoding may overflow — export vae_decoder in fp32`);
  }

  return {
    name: manifest.name,
    dir: manifest.dir,
    hash: '',
    image: { channels: 3, height: imageH, width: imageW },
    latent: { channels: latentC, height: latentH, width: latentW },
    textLength,
    tokenWidth,
    neighbourSlots: slots,
    embedDim: 0,
    scalingFactor: manifest.scalingFactor,
    dtype,
    timestepType: ts.type,
    idsType: first.idsType,
    textBatch: first.batch,
    canImg2Img: enc !== null,
    referenceAttention: false,
    providers: [],
    schedulerConfig: manifest.schedulerConfig,
    family: family.name,
    guidance: family.guidance,
    maxSteps: family.maxSteps ?? 0,
    // A UNet with a symbolic sequence axis takes any number of 77-token windows (A1111/compel long prompts).
    maxTextChunks: fixedSeq === undefined && slots === 0 ? MAX_TEXT_CHUNKS : 1,
    pooledWidth: pooled?.pooledWidth ?? 0,
    warnings,
  };
}

/** Most 77-token windows one prompt may span (8 × 75 = 600 tokens of text); beyond, the prompt is truncated and says so. */
export const MAX_TEXT_CHUNKS = 8;
