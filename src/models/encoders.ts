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
 *
 * onnxruntime-node's `run` blocks the thread it runs on, so by default the
 * sessions live in worker threads (encoder-pool.ts) and the caller's event
 * loop stays free; `{ workers: 0 }` runs them in-process (clip-sessions.ts).
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { RagdiffError, rangeError, typeError } from '../errors.js';
import { checkImage, checkTexts, ClipSessions, pixelValues, type ClipInfo, type ClipSessionOptions, type Preprocess } from './clip-sessions.js';
import { EncoderPool } from './encoder-pool.js';
import type { ExecutionProvider } from './session.js';
import { loadTokenizer, type PromptTokenizer } from './tokenizer.js';

export { readPreprocessConfig } from './clip-sessions.js';

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
  /**
   * Worker threads hosting the ONNX sessions (each has its own copy). Default 1.
   * 0 runs them on the caller's thread, blocking its event loop during every
   * model call (for tools and tests that want that).
   */
  workers?: number;
  executionProviders?: ExecutionProvider[];
  /** Images or texts per ONNX call. Default 64. */
  batchSize?: number;
  /**
   * Intra-op threads per session. Default: with workers, the machine's cores
   * shared among them (at least 1 each); in-process, ONNX Runtime's choice.
   */
  intraOpNumThreads?: number;
  /**
   * ONNX Runtime's spin-waiting intra-op threads. Default: off in workers (an idle
   * worker then leaves the cores to the event loop), ONNX Runtime's default in-process.
   */
  spinning?: boolean;
  onWarning?: (message: string) => void;
}

/** Where the sessions run: in-process, or a pool of workers. */
interface Backend {
  embedImages(images: readonly RgbImage[]): Promise<Float32Array[]>;
  encodeText(texts: readonly string[], hiddenStates: boolean): Promise<{ embeds: Float32Array[]; hiddenStates?: Float32Array }>;
  close(): Promise<void>;
}

/** CLIP-style encoders of an ONNX bundle (see the file comment). */
export class ClipEncoders implements ImageTextEncoder {
  readonly dir: string;
  readonly dim: number;
  readonly id: string;
  readonly imageSize: { width: number; height: number };
  /** Width of the text encoder's per-token hidden states. */
  readonly tokenWidth: number;
  readonly batchSize: number;
  /** Worker threads hosting the sessions (0: in-process). */
  readonly workers: number;
  /** The execution providers the image encoder runs with. */
  readonly providers: readonly string[];
  readonly tokenizer: PromptTokenizer;
  private readonly pre: Preprocess;
  private closing: Promise<void> | null = null;

  private constructor(info: ClipInfo, tokenizer: PromptTokenizer, private readonly backend: Backend, workers: number) {
    this.dir = info.dir;
    this.dim = info.dim;
    this.id = info.id;
    this.imageSize = { ...info.imageSize };
    this.tokenWidth = info.tokenWidth;
    this.batchSize = info.batchSize;
    this.providers = info.providers;
    this.pre = info.preprocess;
    this.tokenizer = tokenizer;
    this.workers = workers;
  }

  /** Opens the encoders of the bundle at `dir` (e.g. models/tiny-emoji). */
  static async load(dir: string, options: ClipEncoderOptions = {}): Promise<ClipEncoders> {
    if (typeof options !== 'object' || options === null) throw typeError('INVALID_TYPE', 'options must be an object');
    const workers = options.workers ?? 1;
    if (!Number.isInteger(workers) || workers < 0 || workers > 16) throw rangeError('OUT_OF_RANGE', `workers must be an integer in 0..16, got ${workers}`);
    const so: ClipSessionOptions = {
      executionProviders: options.executionProviders,
      batchSize: options.batchSize,
      intraOpNumThreads: options.intraOpNumThreads,
      allowSpinning: options.spinning,
      onWarning: options.onWarning,
    };
    if (workers === 0) {
      const local = await ClipSessions.open(dir, so);
      return new ClipEncoders(local.info, local.tokenizer, local, 0);
    }
    // Checked here so that bad arguments fail before any worker starts.
    if (typeof dir !== 'string' || dir.length === 0) throw typeError('INVALID_TYPE', 'model directory must be a non-empty string');
    const batchSize = options.batchSize ?? 64;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 4096) throw rangeError('OUT_OF_RANGE', `batchSize must be an integer in 1..4096, got ${batchSize}`);
    so.intraOpNumThreads ??= Math.max(1, Math.floor(availableParallelism() / workers));
    so.allowSpinning ??= false;
    const { pool, info } = await EncoderPool.start(dir, workers, so);
    let tokenizer: PromptTokenizer;
    try {
      tokenizer = loadTokenizer(join(info.dir, 'tokenizer'));
    } catch (e) {
      await pool.close();
      throw e;
    }
    return new ClipEncoders(info, tokenizer, pool, workers);
  }

  private live(): void {
    if (this.closing) throw new RagdiffError('CLOSED', `the encoders of ${this.dir} were closed`);
  }

  /** Pixels for the image encoder, [3, H, W] normalised as the preprocessor config says (on this thread). */
  pixelValues(img: RgbImage, out: Float32Array): Promise<void> {
    return pixelValues(img, this.pre, out);
  }

  async embedImages(images: readonly RgbImage[]): Promise<Float32Array[]> {
    this.live();
    if (!Array.isArray(images)) throw typeError('INVALID_TYPE', 'images must be an array');
    images.forEach(checkImage);
    return this.backend.embedImages(images);
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
    this.live();
    checkTexts(texts);
    return this.backend.encodeText(texts, withHiddenStates);
  }

  /** Releases the sessions and ends the workers; later calls fail with CLOSED. */
  close(): Promise<void> {
    this.closing ??= this.backend.close();
    return this.closing;
  }
}

/** Opens the CLIP-style encoders of a bundle; shorthand for {@link ClipEncoders.load}. */
export function loadClipEncoders(dir: string, options?: ClipEncoderOptions): Promise<ClipEncoders> {
  return ClipEncoders.load(dir, options);
}
