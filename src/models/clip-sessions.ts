/**
 * The ONNX side of the CLIP-style encoders: opens a bundle's text and image
 * encoder sessions and runs them on the thread that calls it. onnxruntime-node's
 * `run` blocks that thread, so {@link ClipEncoders} normally hosts this class in
 * worker threads (encoder-worker.ts) and only `{ workers: 0 }` runs it on the
 * caller's thread. The bundle layout is described in encoders.ts.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import * as ort from 'onnxruntime-node';
import { RagdiffError, rangeError, typeError } from '../errors.js';
import { rgb8ToChw } from '../image/pixels.js';
import type { RgbImage } from './encoders.js';
import { clipEncoderId } from './encoder-id.js';
import { expectIO, openSession, type ExecutionProvider, type OpenedSession } from './session.js';
import { loadTokenizer, type PromptTokenizer } from './tokenizer.js';

export interface ClipSessionOptions {
  executionProviders?: ExecutionProvider[];
  /** Images or texts per ONNX call. Default 64. */
  batchSize?: number;
  intraOpNumThreads?: number;
  /** ONNX Runtime's spin-waiting intra-op threads (default: ONNX Runtime's choice, on). */
  allowSpinning?: boolean;
  onWarning?: (message: string) => void;
}

/** What a loaded pair of encoders is; structured-cloneable (a worker sends it to the main thread). */
export interface ClipInfo {
  dir: string;
  dim: number;
  id: string;
  imageSize: { width: number; height: number };
  tokenWidth: number;
  batchSize: number;
  preprocess: Preprocess;
  /** The providers the image encoder runs with. */
  providers: string[];
}

export interface Preprocess {
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

/** Throws the typed error a bad image gets; `i` is its index in the caller's array. */
export function checkImage(img: RgbImage, i: number): void {
  if (!img || !(img.rgb instanceof Uint8Array)) throw typeError('INVALID_TYPE', `images[${i}].rgb must be a Uint8Array`);
  if (!Number.isInteger(img.width) || !Number.isInteger(img.height) || img.width < 1 || img.height < 1) {
    throw rangeError('OUT_OF_RANGE', `images[${i}] has an invalid size ${img.width}×${img.height}`);
  }
  if (img.rgb.length !== img.width * img.height * 3) {
    throw rangeError('LENGTH_MISMATCH', `images[${i}].rgb must have ${img.width}×${img.height}×3 bytes, got ${img.rgb.length}`);
  }
}

/** Pixel normalisation of a preprocessor config as x·scale + shift on rgb8ToChw's x = b/127.5 − 1. */
function affine(pre: Preprocess): { scale: Float32Array; shift: Float32Array; identity: boolean } {
  // rgb8ToChw gives x = b/127.5 - 1; the model wants (b/255 - mean)/std = x/(2 std) + (0.5 - mean)/std.
  const scale = Float32Array.from(pre.std, (s) => 1 / (2 * s));
  const shift = Float32Array.from([0, 1, 2], (c) => (0.5 - pre.mean[c]!) / pre.std[c]!);
  const identity = [0, 1, 2].every((c) => Math.abs(scale[c]! - 1) < 1e-7 && Math.abs(shift[c]!) < 1e-7);
  return { scale, shift, identity };
}

/** Pixels for the image encoder, [3, H, W] normalised as the preprocessor config says (resized first if needed). */
export async function pixelValues(img: RgbImage, pre: Preprocess, out: Float32Array): Promise<void> {
  const { width, height } = pre;
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
  const { scale, shift, identity } = affine(pre);
  if (identity) return;
  const plane = width * height;
  for (let c = 0; c < 3; c++) {
    const a = scale[c]!, b = shift[c]!;
    const p = out.subarray(c * plane, (c + 1) * plane);
    for (let i = 0; i < plane; i++) p[i] = p[i]! * a + b;
  }
}

/** The sessions of one bundle's encoders, run on the calling thread (see the file comment). */
export class ClipSessions {
  readonly tokenizer: PromptTokenizer;
  private released = false;
  /** Calls under way: close() waits for them (releasing a session under a pending run aborts the process). */
  private readonly active = new Set<Promise<unknown>>();

  private constructor(
    readonly info: ClipInfo,
    private readonly text: OpenedSession,
    private readonly image: OpenedSession,
    tokenizer: PromptTokenizer,
  ) {
    this.tokenizer = tokenizer;
  }

  /** Opens the encoders of the bundle at `dir` (e.g. models/tiny-emoji). */
  static async open(dir: string, options: ClipSessionOptions = {}): Promise<ClipSessions> {
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
    const sessionOptions = { executionProviders: options.executionProviders, intraOpNumThreads: options.intraOpNumThreads, allowSpinning: options.allowSpinning, onWarning: options.onWarning };
    const text = await openSession(textPath, sessionOptions);
    let image: OpenedSession;
    try {
      image = await openSession(imagePath, sessionOptions);
    } catch (e) {
      await text.session.release();
      throw e;
    }
    try {
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
      const info: ClipInfo = { dir: root, dim, id, imageSize: { width: pre.width, height: pre.height }, tokenWidth, batchSize, preprocess: pre, providers: image.providers };
      return new ClipSessions(info, text, image, tokenizer);
    } catch (e) {
      await Promise.allSettled([text.session.release(), image.session.release()]);
      throw e;
    }
  }

  private live(): void {
    if (this.released) throw new RagdiffError('CLOSED', `the encoders of ${this.info.dir} were closed`);
  }

  /**
   * One L2-normalised embedding per image, in order. `first` is the index of
   * images[0] in the caller's array (a worker gets a slice), for error messages.
   */
  embedImages(images: readonly RgbImage[], first = 0): Promise<Float32Array[]> {
    return this.track(this.runImages(images, first));
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.active.add(p);
    const done = () => this.active.delete(p);
    p.then(done, done);
    return p;
  }

  private async runImages(images: readonly RgbImage[], first: number): Promise<Float32Array[]> {
    this.live();
    if (!Array.isArray(images)) throw typeError('INVALID_TYPE', 'images must be an array');
    images.forEach((img, i) => checkImage(img, first + i));
    const { batchSize, dim, preprocess: pre } = this.info;
    const { width, height } = pre;
    const per = 3 * width * height;
    const out: Float32Array[] = [];
    for (let start = 0; start < images.length; start += batchSize) {
      const batch = images.slice(start, start + batchSize);
      const pixels = new Float32Array(batch.length * per);
      for (let i = 0; i < batch.length; i++) await pixelValues(batch[i]!, pre, pixels.subarray(i * per, (i + 1) * per));
      const feeds = { pixel_values: new ort.Tensor('float32', pixels, [batch.length, 3, height, width]) };
      const result = await this.image.session.run(feeds);
      out.push(...normaliseRows(result.image_embeds!.data as Float32Array, batch.length, dim, this.image.path));
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

  /**
   * Text embeddings and (optionally) per-token hidden states [B, L, tokenWidth],
   * as the generator's cross-attention context wants them.
   */
  encodeText(texts: readonly string[], withHiddenStates = true): Promise<{ embeds: Float32Array[]; hiddenStates?: Float32Array }> {
    return this.track(this.runText(texts, withHiddenStates));
  }

  private async runText(texts: readonly string[], withHiddenStates: boolean): Promise<{ embeds: Float32Array[]; hiddenStates?: Float32Array }> {
    this.live();
    checkTexts(texts);
    const { batchSize, dim, tokenWidth } = this.info;
    const L = this.tokenizer.maxLength;
    const embeds: Float32Array[] = [];
    const hidden = withHiddenStates ? new Float32Array(texts.length * L * tokenWidth) : undefined;
    for (let start = 0; start < texts.length; start += batchSize) {
      const batch = texts.slice(start, start + batchSize);
      const feeds = { input_ids: new ort.Tensor('int64', this.tokenize(batch), [batch.length, L]) };
      const result = await this.text.session.run(feeds);
      embeds.push(...normaliseRows(result.text_embeds!.data as Float32Array, batch.length, dim, this.text.path));
      if (hidden) {
        const h = result.last_hidden_state;
        if (!h) throw new RagdiffError('MODEL_IO_MISMATCH', `${this.text.path} has no last_hidden_state output`);
        hidden.set(h.data as Float32Array, start * L * tokenWidth);
      }
    }
    return hidden ? { embeds, hiddenStates: hidden } : { embeds };
  }

  /** Refuses new calls (CLOSED), lets the calls under way finish, then releases the sessions. */
  async close(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await Promise.allSettled([...this.active]);
    await Promise.allSettled([this.text.session.release(), this.image.session.release()]);
  }
}

/** Throws the typed error a bad text list gets. */
export function checkTexts(texts: readonly string[]): void {
  if (!Array.isArray(texts)) throw typeError('INVALID_TYPE', 'texts must be an array of strings');
  texts.forEach((t, i) => {
    if (typeof t !== 'string') throw typeError('INVALID_TYPE', `texts[${i}] must be a string, got ${typeof t}`);
  });
}
