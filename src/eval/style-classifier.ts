/**
 * The Twemoji-vs-Noto style classifier of the database-swap check
 * (models/tiny-emoji/eval/style_classifier.onnx, trained by tools/tiny_emoji/style_classifier.py on
 * VAE round-trips; its held-back accuracy is in the JSON beside it). Input: 64×64 RGB, normalised as
 * the bundle's feature extractor ((x/255 − 0.5)/0.5); output: logits [B, 2], classes in the JSON.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { RagdiffError, rangeError, typeError } from '../errors.js';
import type { RgbImage } from '../models/encoders.js';
import { rgb8ToChw } from '../image/pixels.js';

const SIZE = 64;

/** models/tiny-emoji/eval/style_classifier.onnx of this package. */
export function defaultStyleClassifierPath(): string {
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'models', 'tiny-emoji', 'eval', 'style_classifier.onnx');
}

export interface StyleClassifierInfo {
  classes: string[];
  accuracy: { held_back_round_trips: number; [k: string]: unknown };
  [k: string]: unknown;
}

export interface StyleResult {
  /** Softmax probability of 'noto' per image. */
  probNoto: Float32Array;
  /** Raw logits, [images.length × 2] row-major, classes in the order of `info.classes`. */
  logits: Float32Array;
  /** argmax = 'noto' per image. */
  isNoto: boolean[];
  /** Share of images classified Noto. */
  notoShare: number;
}

export class StyleClassifier {
  private readonly notoIndex: number;

  private constructor(private readonly session: ort.InferenceSession, readonly info: StyleClassifierInfo, readonly path: string) {
    this.notoIndex = info.classes.indexOf('noto');
  }

  /** Opens the ONNX file and the JSON beside it (same name, .json). */
  static async load(path: string = defaultStyleClassifierPath(), options: { intraOpNumThreads?: number } = {}): Promise<StyleClassifier> {
    if (typeof path !== 'string' || path.length === 0) throw typeError('INVALID_TYPE', 'path must be a non-empty string');
    const jsonPath = path.replace(/\.onnx$/, '.json');
    for (const p of [path, jsonPath]) if (!existsSync(p)) throw new RagdiffError('MODEL_FILE_MISSING', `style classifier file not found: ${p}`);
    let info: StyleClassifierInfo;
    try {
      info = JSON.parse(readFileSync(jsonPath, 'utf8')) as StyleClassifierInfo;
    } catch (e) {
      throw new RagdiffError('MODEL_FILE_INVALID', `${jsonPath} is not valid JSON`, { cause: e });
    }
    if (!Array.isArray(info.classes) || info.classes.length !== 2 || !info.classes.includes('noto')) {
      throw new RagdiffError('MODEL_FILE_INVALID', `${jsonPath}: classes must be two names including "noto"`);
    }
    const session = await ort.InferenceSession.create(path, { executionProviders: ['cpu'], ...(options.intraOpNumThreads !== undefined ? { intraOpNumThreads: options.intraOpNumThreads } : {}) });
    if (!session.inputNames.includes('pixel_values') || !session.outputNames.includes('logits')) {
      throw new RagdiffError('MODEL_IO_MISMATCH', `${path} must take pixel_values and give logits`);
    }
    return new StyleClassifier(session, info, path);
  }

  /** Classifies 64×64 RGB images (in batches of `batchSize`). */
  async classify(images: readonly RgbImage[], batchSize = 64): Promise<StyleResult> {
    if (!Array.isArray(images)) throw typeError('INVALID_TYPE', 'images must be an array');
    if (!Number.isInteger(batchSize) || batchSize < 1) throw rangeError('OUT_OF_RANGE', `batchSize must be a positive integer, got ${batchSize}`);
    images.forEach((img, i) => {
      if (!img || !(img.rgb instanceof Uint8Array) || img.width !== SIZE || img.height !== SIZE || img.rgb.length !== SIZE * SIZE * 3) {
        throw rangeError('LENGTH_MISMATCH', `images[${i}] must be ${SIZE}×${SIZE} RGB`);
      }
    });
    const per = 3 * SIZE * SIZE;
    const probNoto = new Float32Array(images.length);
    const allLogits = new Float32Array(images.length * 2);
    for (let s = 0; s < images.length; s += batchSize) {
      const batch = images.slice(s, s + batchSize);
      const px = new Float32Array(batch.length * per);
      // rgb8ToChw gives b/127.5 − 1 = (b/255 − 0.5)/0.5, the classifier's normalisation.
      batch.forEach((img, i) => rgb8ToChw(img.rgb, SIZE, SIZE, 3, px.subarray(i * per, (i + 1) * per)));
      const out = await this.session.run({ pixel_values: new ort.Tensor('float32', px, [batch.length, 3, SIZE, SIZE]) });
      const logits = out.logits!.data as Float32Array;
      allLogits.set(logits.subarray(0, 2 * batch.length), 2 * s);
      for (let i = 0; i < batch.length; i++) {
        const a = logits[2 * i]!, b = logits[2 * i + 1]!;
        const m = Math.max(a, b);
        const ea = Math.exp(a - m), eb = Math.exp(b - m);
        probNoto[s + i] = (this.notoIndex === 1 ? eb : ea) / (ea + eb);
      }
    }
    const isNoto = Array.from(probNoto, (p) => p > 0.5);
    return { probNoto, logits: allLogits, isNoto, notoShare: images.length ? isNoto.filter(Boolean).length / images.length : 0 };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
