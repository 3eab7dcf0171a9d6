/**
 * Text and image embedders over a CLIP-style pair of ONNX encoders in a
 * diffusers-layout bundle:
 *
 *   text_encoder/model.onnx   input_ids int64 [B, L] → last_hidden_state [B, L, W], text_embeds [B, E]
 *   image_encoder/model.onnx  pixel_values float32 [B, 3, H, W] → image_embeds [B, E]
 *   tokenizer/                tokenizer.json + tokenizer_config.json
 *   feature_extractor/preprocessor_config.json   size / crop_size, image_mean, image_std
 *
 * Both embeddings live in one space and come out L2-normalised, so a text can
 * query images by cosine similarity. The store accepts any object with the
 * {@link ImageTextEncoder} shape; this file is the default implementation.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import sharp from 'sharp';
import * as ort from 'onnxruntime-node';
import { RagdiffError, rangeError, typeError } from '../errors.js';
import { rgb8ToChw } from '../image/pixels.js';
import { clipEncoderId } from './encoder-id.js';
import { expectIO, openSession, type ExecutionProvider, type OpenedSession } from './session.js';
import { loadTokenizer, type PromptTokenizer } from './tokenizer.js';

/** Interleaved 8-bit RGB pixels. */
export interface RgbImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}

/** What the image store needs from an encoder: any implementation of this shape works. */
export interface ImageTextEncoder {
  /** Embedding width E. */
  readonly dim: number;
  /**
   * Identifies the weights (a store refuses to mix embeddings of two encoders).
   * Optional; encoders without one are identified by their width only.
   */
  readonly id?: string;
  /** The pixel size the encoder wants; the store decodes images straight to it. */
  readonly imageSize?: { width: number; height: number };
  /** One L2-normalised embedding per image, in order. */
  embedImages(images: readonly RgbImage[]): Promise<Float32Array[]>;
  /** One L2-normalised embedding per text, in order. */
  embedText(texts: readonly string[]): Promise<Float32Array[]>;
}

export interface ClipEncoderOptions {
  executionProviders?: ExecutionProvider[];
  /** Images or texts per ONNX call. Default 64. */
  batchSize?: number;
  intraOpNumThreads?: number;
  onWarning?: (message: string) => void;
}

interface Preprocess {
  width: number;
  height: number;
  mean: [number, number, number];
  std: [number, number, number];
}

function readJson(path: string, what: string): Record<string, unknown> {
  if (!existsSync(path)) throw new RagdiffError('MODEL_FILE_MISSING', `${what} not found: ${path}`);
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new RagdiffError('MODEL_FILE_INVALID', `${what} is not valid: ${path}: ${(e as Error).message}`, { cause: e });
  }
}

function triple(v: unknown, path: string, key: string, fallback: number): [number, number, number] {
  if (v === undefined) return [fallback, fallback, fallback];
  if (typeof v === 'number') return [v, v, v];
  if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'number' && Number.isFinite(x))) return v as [number, number, number];
  throw new RagdiffError('MODEL_FILE_INVALID', `${path}: ${key} must be a number or 3 numbers, got ${JSON.stringify(v)}`);
}

function side(v: unknown): { width: number; height: number } | undefined {
  if (typeof v === 'number') return { width: v, height: v };
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (typeof o.height === 'number' && typeof o.width === 'number') return { width: o.width, height: o.height };
    if (typeof o.shortest_edge === 'number') return { width: o.shortest_edge, height: o.shortest_edge };
  }
  return undefined;
}

/** Reads preprocessor_config.json (CLIPImageProcessor fields). */
export function readPreprocessConfig(path: string): Preprocess {
  const c = readJson(path, 'image preprocessor config');
  const size = (c.do_center_crop !== false ? side(c.crop_size) : undefined) ?? side(c.size);
  if (!size || !Number.isInteger(size.width) || !Number.isInteger(size.height) || size.width < 1 || size.height < 1) {
    throw new RagdiffError('MODEL_FILE_INVALID', `${path}: crop_size/size must give a positive integer image size`);
  }
  const normalize = c.do_normalize !== false;
  const std = normalize ? triple(c.image_std, path, 'image_std', 1) : ([1, 1, 1] as [number, number, number]);
  if (std.some((s) => s <= 0)) throw new RagdiffError('MODEL_FILE_INVALID', `${path}: image_std must be positive`);
  return { ...size, mean: normalize ? triple(c.image_mean, path, 'image_mean', 0) : [0, 0, 0], std };
}

function normaliseRows(data: Float32Array, rows: number, dim: number, what: string): Float32Array[] {
  const out: Float32Array[] = [];
  for (let r = 0; r < rows; r++) {
    const v = data.slice(r * dim, (r + 1) * dim);
    let s = 0;
    for (let i = 0; i < dim; i++) s += v[i]! * v[i]!;
    if (!Number.isFinite(s) || s === 0) throw new RagdiffError('EMBEDDING_INVALID', `${what} produced a zero or non-finite embedding`);
    const inv = 1 / Math.sqrt(s);
    for (let i = 0; i < dim; i++) v[i]! *= inv;
    out.push(v);
  }
  return out;
}

function checkImage(img: RgbImage, i: number): void {
  if (!img || !(img.rgb instanceof Uint8Array)) throw typeError('INVALID_TYPE', `images[${i}].rgb must be a Uint8Array`);
  if (!Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width < 1 || img.height < 1) {
    throw rangeError('OUT_OF_RANGE', `images[${i}] has an invalid size ${img.width}×${img.height}`);
  }
  if (img.rgb.length !== img.width * img.height * 3) {
    throw rangeError('LENGTH_MISMATCH', `images[${i}].rgb must have ${img.width}×${img.height}×3 bytes, got ${img.rgb.length}`);
  }
}

/** CLIP-style encoders of an ONNX bundle (see the file comment). */
export class ClipEncoders implements ImageTextEncoder {
  readonly dim: number;
  readonly id: string;
  readonly imageSize: { width: number; height: number };
  /** Width of the text encoder's per-token hidden states. */
  readonly tokenWidth: number;
  readonly tokenizer: PromptTokenizer;
  private readonly batchSize: number;
  private readonly scale: Float32Array;
  private readonly shift: Float32Array;
  private readonly identityNorm: boolean;

  private constructor(
    readonly dir: string,
    private readonly text: OpenedSession,
    private readonly image: OpenedSession,
    tokenizer: PromptTokenizer,
    pre: Preprocess,
    dim: number,
    tokenWidth: number,
    id: string,
    batchSize: number,
  ) {
    this.tokenizer = tokenizer;
    this.imageSize = { width: pre.width, height: pre.height };
    this.dim = dim;
    this.tokenWidth = tokenWidth;
    this.id = id;
    this.batchSize = batchSize;
    // rgb8ToChw gives x = b/127.5 - 1; the model wants (b/255 - mean)/std = x/(2 std) + (0.5 - mean)/std.
    this.scale = Float32Array.from(pre.std, (s) => 1 / (2 * s));
    this.shift = Float32Array.from([0, 1, 2], (c) => (0.5 - pre.mean[c]!) / pre.std[c]!);
    this.identityNorm = [0, 1, 2].every((c) => Math.abs(this.scale[c]! - 1) < 1e-7 && Math.abs(this.shift[c]!) < 1e-7);
  }

  /** Opens the encoders of the bundle at `dir` (e.g. models/tiny-emoji). */
  static async load(dir: string, options: ClipEncoderOptions = {}): Promise<ClipEncoders> {
    if (typeof dir !== 'string' || dir.length === 0) throw typeError('INVALID_TYPE', 'model directory must be a non-empty string');
    const root = resolve(dir);
    const batchSize = options.batchSize ?? 64;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 4096) throw rangeError('OUT_OF_RANGE', `batchSize must be an integer in 1..4096, got ${batchSize}`);
    const index = existsSync(join(root, 'model_index.json')) ? readJson(join(root, 'model_index.json'), 'model_index.json') : {};
    const ragdiff = (index.ragdiff ?? {}) as Record<string, unknown>;
    const pre = readPreprocessConfig(join(root, 'feature_extractor', 'preprocessor_config.json'));
    const tokenizer = loadTokenizer(join(root, 'tokenizer'));
    const textPath = join(root, 'text_encoder', 'model.onnx');
    const imagePath = join(root, 'image_encoder', 'model.onnx');
    const sessionOptions = { executionProviders: options.executionProviders, intraOpNumThreads: options.intraOpNumThreads, onWarning: options.onWarning };
    const text = await openSession(textPath, sessionOptions);
    const image = await openSession(imagePath, sessionOptions);
    expectIO(text, ['input_ids'], ['text_embeds']);
    expectIO(image, ['pixel_values'], ['image_embeds']);

    // The embedding width: declared in the bundle and checked against the models' output shapes.
    const shapeOf = (s: OpenedSession, output: string): readonly (number | string)[] | undefined => {
      const meta = (s.session.outputMetadata as unknown as Array<{ name: string; shape?: readonly (number | string)[] }>).find((m) => m.name === output);
      return meta?.shape;
    };
    const textDim = shapeOf(text, 'text_embeds')?.at(-1);
    const imageDim = shapeOf(image, 'image_embeds')?.at(-1);
    const declared = typeof ragdiff.embed_dim === 'number' ? ragdiff.embed_dim : undefined;
    const dim = declared ?? (typeof imageDim === 'number' ? imageDim : undefined);
    if (dim === undefined || !Number.isInteger(dim) || dim < 1) {
      throw new RagdiffError('MODEL_FILE_INVALID', `${root}: cannot tell the embedding width (set ragdiff.embed_dim in model_index.json)`);
    }
    for (const [what, d] of [['text_embeds', textDim], ['image_embeds', imageDim]] as const) {
      if (typeof d === 'number' && d !== dim) throw new RagdiffError('MODEL_IO_MISMATCH', `${root}: ${what} has width ${d}, expected ${dim}`);
    }
    const hidden = shapeOf(text, 'last_hidden_state')?.at(-1);
    const tokenWidth = typeof hidden === 'number' ? hidden : typeof ragdiff.token_width === 'number' ? ragdiff.token_width : dim;
    const id = clipEncoderId(root)!;
    return new ClipEncoders(root, text, image, tokenizer, pre, dim, tokenWidth, id, batchSize);
  }

  /** Pixels for the image encoder, [3, H, W] normalised as the preprocessor config says. */
  async pixelValues(img: RgbImage, out: Float32Array): Promise<void> {
    const { width, height } = this.imageSize;
    let rgb = img.rgb;
    if (img.width !== width || img.height !== height) {
      // CLIPImageProcessor: shortest edge to size, bicubic, then centre crop.
      rgb = new Uint8Array(
        await sharp(img.rgb, { raw: { width: img.width, height: img.height, channels: 3 } })
          .resize(width, height, { fit: 'cover', kernel: 'cubic' })
          .raw()
          .toBuffer(),
      );
    }
    rgb8ToChw(rgb, width, height, 3, out);
    if (this.identityNorm) return;
    const plane = width * height;
    for (let c = 0; c < 3; c++) {
      const a = this.scale[c]!, b = this.shift[c]!;
      const p = out.subarray(c * plane, (c + 1) * plane);
      for (let i = 0; i < plane; i++) p[i] = p[i]! * a + b;
    }
  }

  async embedImages(images: readonly RgbImage[]): Promise<Float32Array[]> {
    if (!Array.isArray(images)) throw typeError('INVALID_TYPE', 'images must be an array');
    images.forEach(checkImage);
    const { width, height } = this.imageSize;
    const per = 3 * width * height;
    const out: Float32Array[] = [];
    for (let start = 0; start < images.length; start += this.batchSize) {
      const batch = images.slice(start, start + this.batchSize);
      const pixels = new Float32Array(batch.length * per);
      for (let i = 0; i < batch.length; i++) await this.pixelValues(batch[i]!, pixels.subarray(i * per, (i + 1) * per));
      const feeds = { pixel_values: new ort.Tensor('float32', pixels, [batch.length, 3, height, width]) };
      const result = await this.image.session.run(feeds);
      out.push(...normaliseRows(result.image_embeds!.data as Float32Array, batch.length, this.dim, this.image.path));
    }
    return out;
  }

  /** Token ids for texts, [B, L] row-major. */
  tokenize(texts: readonly string[]): BigInt64Array {
    const L = this.tokenizer.maxLength;
    const ids = new BigInt64Array(texts.length * L);
    texts.forEach((t, i) => ids.set(this.tokenizer.encode(t).ids, i * L));
    return ids;
  }

  async embedText(texts: readonly string[]): Promise<Float32Array[]> {
    return (await this.encodeText(texts, false)).embeds;
  }

  /**
   * Text embeddings and (optionally) per-token hidden states [B, L, tokenWidth],
   * as the generator's cross-attention context wants them.
   */
  async encodeText(texts: readonly string[], withHiddenStates = true): Promise<{ embeds: Float32Array[]; hiddenStates?: Float32Array }> {
    if (!Array.isArray(texts)) throw typeError('INVALID_TYPE', 'texts must be an array of strings');
    texts.forEach((t, i) => {
      if (typeof t !== 'string') throw typeError('INVALID_TYPE', `texts[${i}] must be a string, got ${typeof t}`);
    });
    const L = this.tokenizer.maxLength;
    const embeds: Float32Array[] = [];
    const hidden = withHiddenStates ? new Float32Array(texts.length * L * this.tokenWidth) : undefined;
    for (let start = 0; start < texts.length; start += this.batchSize) {
      const batch = texts.slice(start, start + this.batchSize);
      const feeds = { input_ids: new ort.Tensor('int64', this.tokenize(batch), [batch.length, L]) };
      const result = await this.text.session.run(feeds);
      embeds.push(...normaliseRows(result.text_embeds!.data as Float32Array, batch.length, this.dim, this.text.path));
      if (hidden) {
        const h = result.last_hidden_state;
        if (!h) throw new RagdiffError('MODEL_IO_MISMATCH', `${this.text.path} has no last_hidden_state output`);
        hidden.set(h.data as Float32Array, start * L * this.tokenWidth);
      }
    }
    return hidden ? { embeds, hiddenStates: hidden } : { embeds };
  }

  async close(): Promise<void> {
    await this.text.session.release();
    await this.image.session.release();
  }
}

/** Opens the CLIP-style encoders of a bundle; shorthand for {@link ClipEncoders.load}. */
export function loadClipEncoders(dir: string, options?: ClipEncoderOptions): Promise<ClipEncoders> {
  return ClipEncoders.load(dir, options);
}
