/**
 * Reads a diffusers-layout ONNX bundle's configuration (model_index.json, the
 * scheduler and VAE configs, the optional `ragdiff` block) into a plain,
 * structured-cloneable manifest. Opens no sessions: that happens in the worker.
 *
 * Every missing or malformed file is an error naming it.
 */
import { existsSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { hasCode, RagdiffError, typeError } from '../errors.js';
import { readUserFileSync } from '../io/user-file.js';
import { detectFamily } from './families/detect.js';
import { FAMILIES, type FamilyName } from './families/index.js';
import { MODEL_INDEX_KEYS, TEXT_ENCODER_KEYS, UNET_KEYS, unknownKeys, VAE_KEYS } from './config-keys.js';

/** SD 1.x/2.x VAE scaling factor, used when the bundle does not say. */
export const DEFAULT_SCALING_FACTOR = 0.18215;

export interface RagdiffBlock {
  image_size?: number;
  latent_channels?: number;
  latent_size?: number;
  text_max_length?: number;
  token_width?: number;
  retrieval?: { k?: number; image_proj?: string; uncond_neighbours?: string };
  /** The family adapter (families/), when detection from the published configs cannot tell (e.g. Turbo). */
  family?: string;
  uncond_text?: string;
  name?: string;
}

export interface BundleManifest {
  dir: string;
  /** A short display name: the `ragdiff.name`, else the folder name. */
  name: string;
  files: {
    textEncoder: string;
    unet: string;
    vaeDecoder: string;
    /** Absent when the bundle has no VAE encoder (then image-to-image is unavailable). */
    vaeEncoder?: string;
    imageProj?: string;
    /** A UNet variant with reference attention (ragdiff.variants.reference_attention.path). */
    unetReferenceAttention?: string;
    tokenizerDir: string;
    /** SDXL's second text encoder and tokenizer. */
    textEncoder2?: string;
    tokenizer2Dir?: string;
  };
  /** The family adapter's name (families/): which inputs the encoders and the UNet take. */
  family: FamilyName;
  /** unet/config.json, vae_decoder/config.json (or vae/), text_encoder{,_2}/config.json as published ({} when absent). */
  configs: { unet: Record<string, unknown>; vae: Record<string, unknown>; textEncoder: Record<string, unknown>; textEncoder2: Record<string, unknown> };
  /** model_index.json force_zeros_for_empty_prompt (SDXL: an unset negative prompt is zeros). */
  forceZerosForEmptyPrompt: boolean;
  /** The VAE config's force_upcast (diffusers decodes such an fp16 VAE in fp32). */
  forceUpcast: boolean;
  /** Keys of the published configs ragdiff does not read, and other things a user should know; never silent. */
  warnings: string[];
  /** scheduler/scheduler_config.json as parsed JSON. */
  schedulerConfig: Record<string, unknown>;
  scalingFactor: number;
  /** Number of neighbour-token slots after the text tokens in encoder_hidden_states (0 for plain SD). */
  neighbourSlots: number;
  ragdiff: RagdiffBlock | null;
}

/** Largest JSON file of a bundle read (tokenizer.json of large tokenizers is a few MB). */
export const MAX_BUNDLE_JSON_BYTES = 64 * 1024 * 1024;

/**
 * Reads a bundle file through the user-file gate (a FIFO or device in a bundle
 * must not hang the load): MODEL_FILE_MISSING when absent, MODEL_FILE_INVALID
 * when not a regular file or over MAX_BUNDLE_JSON_BYTES.
 */
export function readBundleText(path: string, what: string): string {
  try {
    return readUserFileSync(path, { maxBytes: MAX_BUNDLE_JSON_BYTES, what }).toString('utf8');
  } catch (e) {
    if (hasCode(e, 'FILE_NOT_FOUND')) throw new RagdiffError('MODEL_FILE_MISSING', `${what} not found: ${path}`, { cause: e });
    throw new RagdiffError('MODEL_FILE_INVALID', (e as Error).message, { cause: e });
  }
}

export function readJsonFile(path: string, what: string): Record<string, unknown> {
  const text = readBundleText(path, what);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new RagdiffError('MODEL_FILE_INVALID', `${what} is not valid JSON: ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RagdiffError('MODEL_FILE_INVALID', `${what} must hold a JSON object: ${path}`);
  }
  return value as Record<string, unknown>;
}

function requireFile(path: string, what: string): string {
  if (!existsSync(path)) throw new RagdiffError('MODEL_FILE_MISSING', `${what} not found: ${path}`);
  const st = statSync(path);
  if (!st.isFile()) throw new RagdiffError('MODEL_FILE_INVALID', `${what} is not a file: ${path}`);
  if (st.size === 0) throw new RagdiffError('MODEL_FILE_INVALID', `${what} is empty: ${path}`);
  return path;
}

/** tokenizer.json (a fast tokenizer), or vocab.json + merges.txt (a slow CLIP tokenizer, as the SD repositories publish). */
function requireTokenizer(dir: string, what: string): void {
  if (existsSync(join(dir, 'tokenizer.json')) || !existsSync(join(dir, 'vocab.json'))) {
    requireFile(join(dir, 'tokenizer.json'), what);
    return;
  }
  requireFile(join(dir, 'vocab.json'), `${what} vocabulary`);
  requireFile(join(dir, 'merges.txt'), `${what} merges`);
}

function positiveInt(v: unknown, path: string, key: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new RagdiffError('MODEL_FILE_INVALID', `${path}: ${key} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

export function readBundle(dir: string): BundleManifest {
  if (typeof dir !== 'string' || dir.length === 0) throw typeError('INVALID_TYPE', `model directory must be a non-empty string, got ${typeof dir}`);
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    throw new RagdiffError('MODEL_FILE_MISSING', `model bundle directory not found: ${root}`);
  }
  const indexPath = join(root, 'model_index.json');
  const index = readJsonFile(indexPath, 'model index');

  let ragdiff: RagdiffBlock | null = null;
  if (index.ragdiff !== undefined) {
    if (typeof index.ragdiff !== 'object' || index.ragdiff === null || Array.isArray(index.ragdiff)) {
      throw new RagdiffError('MODEL_FILE_INVALID', `${indexPath}: "ragdiff" must be an object`);
    }
    ragdiff = index.ragdiff as RagdiffBlock;
    for (const key of ['image_size', 'latent_channels', 'latent_size', 'text_max_length', 'token_width'] as const) {
      positiveInt(ragdiff[key], indexPath, `ragdiff.${key}`);
    }
    if (ragdiff.retrieval !== undefined) positiveInt(ragdiff.retrieval.k, indexPath, 'ragdiff.retrieval.k');
  }

  const component = (name: string) => join(root, name, 'model.onnx');
  const files: BundleManifest['files'] = {
    textEncoder: requireFile(component('text_encoder'), 'text encoder model'),
    unet: requireFile(component('unet'), 'UNet model'),
    vaeDecoder: requireFile(component('vae_decoder'), 'VAE decoder model'),
    tokenizerDir: join(root, 'tokenizer'),
  };
  if (existsSync(component('vae_encoder'))) files.vaeEncoder = requireFile(component('vae_encoder'), 'VAE encoder model');
  const projRel = ragdiff?.retrieval?.image_proj;
  if (projRel !== undefined) {
    if (typeof projRel !== 'string') throw new RagdiffError('MODEL_FILE_INVALID', `${indexPath}: ragdiff.retrieval.image_proj must be a path`);
    const p = resolve(root, projRel);
    if (existsSync(p)) files.imageProj = requireFile(p, 'image projection model');
  }
  const variants = (ragdiff as { variants?: Record<string, unknown> } | null)?.variants;
  const refAttn = variants?.reference_attention as { path?: unknown } | undefined;
  if (refAttn !== undefined) {
    if (typeof refAttn !== 'object' || refAttn === null || typeof refAttn.path !== 'string') {
      throw new RagdiffError('MODEL_FILE_INVALID', `${indexPath}: ragdiff.variants.reference_attention.path must be a path`);
    }
    files.unetReferenceAttention = requireFile(resolve(root, refAttn.path), 'reference-attention UNet');
  }
  requireTokenizer(files.tokenizerDir, 'tokenizer');

  const schedulerPath = join(root, 'scheduler', 'scheduler_config.json');
  const schedulerConfig = readJsonFile(schedulerPath, 'scheduler config');

  const warnings: string[] = unknownKeys(index, MODEL_INDEX_KEYS, indexPath);
  const config = (rel: string, what: string, known: ReadonlySet<string>) => {
    const p = join(root, rel);
    if (!existsSync(p)) return {};
    const c = readJsonFile(p, what);
    warnings.push(...unknownKeys(c, known, p));
    return c;
  };
  // diffusers ONNX exports copy the VAE config next to the decoder; SD's has scaling_factor 0.18215, SDXL's 0.13025.
  const vaePath = [join(root, 'vae_decoder', 'config.json'), join(root, 'vae', 'config.json')].find((p) => existsSync(p));
  const configs: BundleManifest['configs'] = {
    unet: config('unet/config.json', 'UNet config', UNET_KEYS),
    vae: vaePath ? config(relative(root, vaePath), 'VAE config', VAE_KEYS) : {},
    textEncoder: config('text_encoder/config.json', 'text encoder config', TEXT_ENCODER_KEYS),
    textEncoder2: config('text_encoder_2/config.json', 'text encoder 2 config', TEXT_ENCODER_KEYS),
  };
  let scalingFactor = DEFAULT_SCALING_FACTOR;
  const sf = configs.vae.scaling_factor;
  if (sf !== undefined) {
    if (typeof sf !== 'number' || !(sf > 0) || !Number.isFinite(sf)) {
      throw new RagdiffError('MODEL_FILE_INVALID', `${vaePath}: scaling_factor must be a positive number, got ${JSON.stringify(sf)}`);
    }
    scalingFactor = sf;
  }
  for (const [key, p] of [['shift_factor', vaePath], ['latents_mean', vaePath]] as const) {
    if (configs.vae[key] != null) throw new RagdiffError('UNSUPPORTED', `${p}: ${key} is set; ragdiff decodes SD-family VAEs (latent / scaling_factor) only`);
  }
  const bool = (v: unknown, p: string, key: string, dflt: boolean) => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') throw new RagdiffError('MODEL_FILE_INVALID', `${p}: ${key} must be a boolean, got ${JSON.stringify(v)}`);
    return v;
  };
  const forceUpcast = bool(configs.vae.force_upcast, vaePath ?? '', 'force_upcast', false);
  const forceZerosForEmptyPrompt = bool(index.force_zeros_for_empty_prompt, indexPath, 'force_zeros_for_empty_prompt', false);

  const names = [index, configs.unet, configs.vae, configs.textEncoder, configs.textEncoder2]
    .map((c) => c._name_or_path).filter((n): n is string => typeof n === 'string');
  const family = detectFamily({ indexPath, index, unetConfig: configs.unet, schedulerConfig, names });
  if (FAMILIES[family].textEncoders.some((t) => t.component === 'text_encoder_2')) {
    for (const [key, what] of [['text_encoder_2', 'second text encoder'], ['tokenizer_2', 'second tokenizer']] as const) {
      const listed = index[key];
      if (!Array.isArray(listed) || listed[0] == null) {
        throw new RagdiffError('MODEL_FILE_MISSING', `${indexPath}: a ${family} bundle needs ${key} (the ${what}), which model_index.json does not list`);
      }
    }
    files.textEncoder2 = requireFile(component('text_encoder_2'), 'second text encoder model (text_encoder_2)');
    files.tokenizer2Dir = join(root, 'tokenizer_2');
    requireTokenizer(files.tokenizer2Dir, 'second tokenizer (tokenizer_2)');
  }

  const name = typeof ragdiff?.name === 'string' ? ragdiff.name : root.split(/[\\/]/).filter(Boolean).pop() ?? 'model';
  return {
    dir: root,
    name,
    files,
    schedulerConfig,
    scalingFactor,
    neighbourSlots: ragdiff?.retrieval?.k ?? 0,
    ragdiff,
    family,
    configs,
    forceZerosForEmptyPrompt,
    forceUpcast,
    warnings,
  };
}
