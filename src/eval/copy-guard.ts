/**
 * Copy guard: is a generated image a (near-)copy of a reference it used or of any database image?
 * Retrieval that hands back a database image is not generation. Pixels: PSNR of 8-bit RGB (the PNG
 * the user gets), 10·log10(255² / MSE) over all 3·H·W values; identical images give +Infinity.
 * Embeddings: cosine of L2-normalised image embeddings (a dot product).
 *
 * The database is held as ONE Uint8Array (N × H·W·3) with each image's Σx² precomputed, so the
 * PSNR to every database image is Σa² + Σb² − 2Σab: one pass of integer multiply-adds over the
 * whole array per output, exact in doubles (Σab ≤ 12,288 · 255² < 2^53).
 */
import type { RgbImage } from '../models/encoders.js';
import { rangeError, typeError } from '../errors.js';

/** Near-copy threshold of the issue: PSNR above 20 dB to any database image. */
export const NEAR_COPY_PSNR_DB = 20;

function checkImage(img: RgbImage, width: number, height: number, what: string): void {
  if (!img || !(img.rgb instanceof Uint8Array)) throw typeError('INVALID_TYPE', `${what}.rgb must be a Uint8Array`);
  if (img.width !== width || img.height !== height || img.rgb.length !== width * height * 3) {
    throw rangeError('LENGTH_MISMATCH', `${what} must be ${width}×${height} RGB (${width * height * 3} bytes), got ${img.width}×${img.height} with ${img.rgb.length} bytes`);
  }
}

function psnrFromSse(sse: number, n: number): number {
  return sse === 0 ? Infinity : 10 * Math.log10((255 * 255 * n) / sse);
}

/** PSNR in dB between two 8-bit images of the same length (+Infinity when identical). */
export function psnr8(a: Uint8Array, b: Uint8Array): number {
  if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array)) throw typeError('INVALID_TYPE', 'psnr8 takes two Uint8Arrays');
  if (a.length !== b.length || a.length === 0) throw rangeError('LENGTH_MISMATCH', `images must have the same non-zero length, got ${a.length} and ${b.length}`);
  let sse = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i]! - b[i]!;
    sse += d * d;
  }
  return psnrFromSse(sse, a.length);
}

/** Cosine of two embeddings (their dot product divided by both norms). */
export function cosine(a: Float32Array, b: Float32Array): number {
  if (!(a instanceof Float32Array) || !(b instanceof Float32Array) || a.length !== b.length || a.length === 0) {
    throw rangeError('LENGTH_MISMATCH', 'cosine takes two Float32Arrays of the same non-zero length');
  }
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i]! * b[i]!;
    aa += a[i]! * a[i]!;
    bb += b[i]! * b[i]!;
  }
  return aa === 0 || bb === 0 ? 0 : ab / Math.sqrt(aa * bb);
}

/** All database images' pixels in one array, for PSNR against every one of them at once. */
export class PixelDatabase {
  readonly count: number;
  readonly imageBytes: number;
  private readonly sq: Float64Array;

  /** `pixels`: count × width·height·3 bytes, image after image. */
  constructor(readonly pixels: Uint8Array, readonly width = 64, readonly height = 64) {
    if (!(pixels instanceof Uint8Array)) throw typeError('INVALID_TYPE', 'pixels must be a Uint8Array');
    if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) throw rangeError('OUT_OF_RANGE', 'width and height must be positive integers');
    this.imageBytes = width * height * 3;
    if (pixels.length === 0 || pixels.length % this.imageBytes !== 0) {
      throw rangeError('LENGTH_MISMATCH', `pixels must hold a whole, non-zero number of ${width}×${height} RGB images, got ${pixels.length} bytes`);
    }
    this.count = pixels.length / this.imageBytes;
    this.sq = new Float64Array(this.count);
    for (let j = 0; j < this.count; j++) {
      let s = 0;
      const o = j * this.imageBytes;
      for (let i = 0; i < this.imageBytes; i++) s += pixels[o + i]! * pixels[o + i]!;
      this.sq[j] = s;
    }
  }

  static fromImages(images: readonly RgbImage[], width = 64, height = 64): PixelDatabase {
    if (!Array.isArray(images) || images.length === 0) throw typeError('INVALID_TYPE', 'images must be a non-empty array');
    const per = width * height * 3;
    const all = new Uint8Array(images.length * per);
    images.forEach((img, j) => {
      checkImage(img, width, height, `images[${j}]`);
      all.set(img.rgb, j * per);
    });
    return new PixelDatabase(all, width, height);
  }

  /** PSNR (dB) of `image` to every database image, in database order. */
  psnrAll(image: Uint8Array): Float64Array {
    if (!(image instanceof Uint8Array) || image.length !== this.imageBytes) throw rangeError('LENGTH_MISMATCH', `image must have ${this.imageBytes} bytes`);
    const n = this.imageBytes;
    let aa = 0;
    for (let i = 0; i < n; i++) aa += image[i]! * image[i]!;
    const out = new Float64Array(this.count);
    const P = this.pixels;
    for (let j = 0; j < this.count; j++) {
      let ab = 0;
      const o = j * n;
      for (let i = 0; i < n; i++) ab += image[i]! * P[o + i]!;
      out[j] = psnrFromSse(aa + this.sq[j]! - 2 * ab, n);
    }
    return out;
  }

  /** The most similar database image by PSNR. */
  nearest(image: Uint8Array): { index: number; psnr: number } {
    const all = this.psnrAll(image);
    let index = 0;
    for (let j = 1; j < all.length; j++) if (all[j]! > all[index]!) index = j;
    return { index, psnr: all[index]! };
  }
}

/** All database image embeddings in one [N × E] array (L2-normalised rows, as the store keeps them). */
export class EmbeddingDatabase {
  readonly count: number;

  constructor(readonly embeddings: Float32Array, readonly dim: number) {
    if (!(embeddings instanceof Float32Array)) throw typeError('INVALID_TYPE', 'embeddings must be a Float32Array');
    if (!Number.isInteger(dim) || dim < 1 || embeddings.length === 0 || embeddings.length % dim !== 0) {
      throw rangeError('LENGTH_MISMATCH', `embeddings must hold a whole, non-zero number of rows of width ${dim}`);
    }
    this.count = embeddings.length / dim;
  }

  static fromRows(rows: readonly Float32Array[]): EmbeddingDatabase {
    if (!Array.isArray(rows) || rows.length === 0) throw typeError('INVALID_TYPE', 'rows must be a non-empty array');
    const dim = rows[0]!.length;
    const all = new Float32Array(rows.length * dim);
    rows.forEach((r, j) => {
      if (!(r instanceof Float32Array) || r.length !== dim) throw rangeError('LENGTH_MISMATCH', `rows[${j}] must be a Float32Array of ${dim}`);
      all.set(r, j * dim);
    });
    return new EmbeddingDatabase(all, dim);
  }

  /** The most similar database image by embedding dot product (= cosine for normalised rows). */
  nearest(embedding: Float32Array): { index: number; cosine: number } {
    if (!(embedding instanceof Float32Array) || embedding.length !== this.dim) throw rangeError('LENGTH_MISMATCH', `embedding must be a Float32Array of ${this.dim}`);
    let index = 0;
    let best = -Infinity;
    const E = this.embeddings;
    for (let j = 0; j < this.count; j++) {
      let s = 0;
      const o = j * this.dim;
      for (let d = 0; d < this.dim; d++) s += embedding[d]! * E[o + d]!;
      if (s > best) { best = s; index = j; }
    }
    return { index, cosine: best };
  }
}

export interface CopyGuardItem {
  /** PSNR to each reference this output used (in the order given). */
  psnrToReferences: number[];
  /** Embedding cosine to each reference (when embeddings are given). */
  cosineToReferences?: number[];
  /** Highest PSNR to any database image, and which. */
  maxPsnrToDatabase: number;
  nearestDatabaseIndex: number;
  /** Highest embedding cosine to any database image, and which (when embeddings are given). */
  maxCosineToDatabase?: number;
  nearestDatabaseIndexByEmbedding?: number;
  /** maxPsnrToDatabase > threshold. */
  nearCopy: boolean;
}

export interface CopyGuardReport {
  items: CopyGuardItem[];
  /** Share of outputs that are near-copies of some database image. */
  nearCopyShare: number;
  /** Share of outputs whose PSNR to one of their own references is above the threshold. */
  referenceCopyShare: number;
  thresholdDb: number;
}

export interface CopyGuardInput {
  /** Generated images (all width × height of the database). */
  outputs: readonly RgbImage[];
  /** Per output: the reference images it used (may be empty). */
  references?: readonly (readonly RgbImage[])[];
  database: PixelDatabase;
  /** Image embeddings of the outputs, of their references, and of the database (same encoder). */
  embeddings?: {
    outputs: readonly Float32Array[];
    references?: readonly (readonly Float32Array[])[];
    database: EmbeddingDatabase;
  };
  /** Near-copy threshold in dB. Default 20. */
  thresholdDb?: number;
}

/** Runs the copy guard over a set of outputs. */
export function copyGuard(input: CopyGuardInput): CopyGuardReport {
  if (!input || typeof input !== 'object') throw typeError('INVALID_TYPE', 'copyGuard takes an options object');
  const { outputs, references, database, embeddings } = input;
  const threshold = input.thresholdDb ?? NEAR_COPY_PSNR_DB;
  if (typeof threshold !== 'number' || !Number.isFinite(threshold)) throw rangeError('OUT_OF_RANGE', `thresholdDb must be a finite number, got ${threshold}`);
  if (!(database instanceof PixelDatabase)) throw typeError('INVALID_TYPE', 'database must be a PixelDatabase');
  if (!Array.isArray(outputs)) throw typeError('INVALID_TYPE', 'outputs must be an array');
  outputs.forEach((o, i) => checkImage(o, database.width, database.height, `outputs[${i}]`));
  if (references !== undefined && (!Array.isArray(references) || references.length !== outputs.length)) {
    throw rangeError('LENGTH_MISMATCH', 'references must hold one list per output');
  }
  const refLists: readonly (readonly RgbImage[])[] = references ?? [];
  refLists.forEach((refs, i) => refs.forEach((r: RgbImage, k: number) => checkImage(r, database.width, database.height, `references[${i}][${k}]`)));
  if (embeddings) {
    if (!(embeddings.database instanceof EmbeddingDatabase)) throw typeError('INVALID_TYPE', 'embeddings.database must be an EmbeddingDatabase');
    if (!Array.isArray(embeddings.outputs) || embeddings.outputs.length !== outputs.length) throw rangeError('LENGTH_MISMATCH', 'embeddings.outputs must hold one embedding per output');
    if (embeddings.references !== undefined) {
      if (!references || embeddings.references.length !== outputs.length || embeddings.references.some((r, i) => r.length !== references[i]!.length)) {
        throw rangeError('LENGTH_MISMATCH', 'embeddings.references must match references one for one');
      }
    }
  }
  let near = 0;
  let refCopies = 0;
  const items = outputs.map((o, i): CopyGuardItem => {
    const refs: readonly RgbImage[] = refLists[i] ?? [];
    const psnrToReferences = refs.map((r: RgbImage) => psnr8(o.rgb, r.rgb));
    const db = database.nearest(o.rgb);
    const item: CopyGuardItem = { psnrToReferences, maxPsnrToDatabase: db.psnr, nearestDatabaseIndex: db.index, nearCopy: db.psnr > threshold };
    if (embeddings) {
      const e = embeddings.outputs[i]!;
      const de = embeddings.database.nearest(e);
      item.maxCosineToDatabase = de.cosine;
      item.nearestDatabaseIndexByEmbedding = de.index;
      const refEmb: readonly Float32Array[] | undefined = embeddings.references?.[i];
      if (refEmb) item.cosineToReferences = refEmb.map((r: Float32Array) => cosine(e, r));
    }
    if (item.nearCopy) near++;
    if (psnrToReferences.some((p: number) => p > threshold)) refCopies++;
    return item;
  });
  const n = Math.max(1, outputs.length);
  return { items, nearCopyShare: near / n, referenceCopyShare: refCopies / n, thresholdDb: threshold };
}
