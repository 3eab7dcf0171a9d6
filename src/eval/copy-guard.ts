/**
 * Copy guard: is a generated image a (near-)copy of a reference it used or of any database image?
 * Retrieval that hands back a database image is not generation. Pixels: PSNR of 8-bit RGB (the PNG
 * the user gets), 10·log10(255² / MSE) over all 3·H·W values; identical images give +Infinity.
 * Embeddings: cosine of L2-normalised image embeddings (a dot product).
 *
 * The database is held as ONE Uint8Array (N × H·W·3) with each image's Σx² precomputed, so the
 * PSNR to every database image is Σa² + Σb² − 2Σab: one pass of integer multiply-adds over the
 * whole array per output, exact in doubles (Σab ≤ 12,288 · 255² < 2^53).
 *
 * Foreground PSNR (the background-aware rule beside the issue's whole-image one). Emoji sit on
 * white: two DIFFERENT emoji with small drawings already score > 20 dB whole-image, because the
 * white background they share dominates the mean (bench/RESULTS.md: 6% of outputs made without
 * retrieval are "near-copies"). So:
 *  - a pixel is NEAR-WHITE when all three channels are ≥ NEAR_WHITE_MIN (240, i.e. within 15 levels
 *    of white). Why 240: the tiny-emoji VAE leaves 99.9% of the pure-white background pixels of real
 *    Twemoji within 12 levels of white after a round trip (99% within 5), so 15 covers the decoder's
 *    background noise with margin, and a 15-level tint on white is not visible content;
 *  - the FOREGROUND of an image is its pixels that are not near-white; the pair's mask is the UNION of
 *    both foregrounds (symmetric: a drawing missing from either image counts as error);
 *  - near-white pixels are snapped to pure white (255,255,255) in both images, and the PSNR is taken
 *    over the 3·|mask| values of the mask: 10·log10(255²·3|mask| / SSE). Outside the mask both snapped
 *    images are white, so SSE is the whole snapped images' SSE and the database pass stays one dot
 *    product per image (on the snapped copy) plus a popcount over the two masks (128 words at 64×64) for |fgA ∩ fgB|. Approximation:
 *    where one image is foreground and the other near-white, the latter counts as 255, which moves
 *    that pixel's error by at most 15 levels per channel;
 *  - empty mask (both images entirely near-white): nothing to copy; scored 0 dB, never a near-copy;
 *    identical foregrounds: +Infinity.
 * A near-copy by foreground is foreground PSNR > 20 dB (the issue's threshold) to some database image.
 */
import type { RgbImage } from '../models/encoders.js';
import { rangeError, typeError } from '../errors.js';

/** Near-copy threshold of the issue: PSNR above 20 dB to any database image. */
export const NEAR_COPY_PSNR_DB = 20;

/** A pixel is near-white (background) when every channel is at least this (see the file comment). */
export const NEAR_WHITE_MIN = 240;

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

/** An image's foreground: near-white pixels snapped to white, and its foreground pixels as a bitset. */
export interface Foreground {
  /** The image with every near-white pixel set to (255,255,255). */
  snapped: Uint8Array;
  /** One bit per pixel (pixel p → word p>>5, bit p&31): set where the pixel is foreground. */
  mask: Uint32Array;
  /** Number of foreground pixels. */
  count: number;
  /** Σ snapped². */
  sq: number;
}

/** The foreground of an 8-bit RGB image (length 3·pixels). */
export function foregroundOf(rgb: Uint8Array, nearWhiteMin = NEAR_WHITE_MIN): Foreground {
  if (!(rgb instanceof Uint8Array) || rgb.length === 0 || rgb.length % 3 !== 0) throw rangeError('LENGTH_MISMATCH', 'an RGB image must be a non-empty Uint8Array of 3 bytes per pixel');
  const pixels = rgb.length / 3;
  const snapped = new Uint8Array(rgb.length);
  const mask = new Uint32Array(Math.ceil(pixels / 32));
  let count = 0;
  let sq = 0;
  for (let p = 0; p < pixels; p++) {
    const r = rgb[3 * p]!, g = rgb[3 * p + 1]!, b = rgb[3 * p + 2]!;
    if (r >= nearWhiteMin && g >= nearWhiteMin && b >= nearWhiteMin) {
      snapped[3 * p] = 255; snapped[3 * p + 1] = 255; snapped[3 * p + 2] = 255;
      sq += 3 * 255 * 255;
    } else {
      snapped[3 * p] = r; snapped[3 * p + 1] = g; snapped[3 * p + 2] = b;
      sq += r * r + g * g + b * b;
      mask[p >>> 5]! |= 1 << (p & 31);
      count++;
    }
  }
  return { snapped, mask, count, sq };
}

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24);
}

/** Foreground PSNR from the snapped SSE and the two masks' sizes and overlap (see the file comment). */
function foregroundPsnr(sse: number, union: number): number {
  if (union === 0) return 0;
  return sse === 0 ? Infinity : 10 * Math.log10((255 * 255 * 3 * union) / sse);
}

/**
 * Foreground PSNR in dB between two 8-bit RGB images of the same size: PSNR over the union of their
 * non-near-white pixels, near-white snapped to white (file comment); 0 when both are all near-white.
 */
export function foregroundPsnr8(a: Uint8Array, b: Uint8Array, nearWhiteMin = NEAR_WHITE_MIN): number {
  if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array)) throw typeError('INVALID_TYPE', 'foregroundPsnr8 takes two Uint8Arrays');
  if (a.length !== b.length || a.length === 0 || a.length % 3 !== 0) throw rangeError('LENGTH_MISMATCH', `images must have the same non-zero length (3 bytes per pixel), got ${a.length} and ${b.length}`);
  const fa = foregroundOf(a, nearWhiteMin);
  const fb = foregroundOf(b, nearWhiteMin);
  let sse = 0;
  for (let i = 0; i < a.length; i++) {
    const d = fa.snapped[i]! - fb.snapped[i]!;
    sse += d * d;
  }
  let both = 0;
  for (let w = 0; w < fa.mask.length; w++) both += popcount32(fa.mask[w]! & fb.mask[w]!);
  return foregroundPsnr(sse, fa.count + fb.count - both);
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
  /** Foreground of every image: snapped pixels (image after image), their Σx², masks and counts. */
  private readonly fgPixels: Uint8Array;
  private readonly fgSq: Float64Array;
  private readonly fgMasks: Uint32Array;
  private readonly fgCount: Uint32Array;
  private readonly maskWords: number;

  /** `pixels`: count × width·height·3 bytes, image after image. */
  constructor(readonly pixels: Uint8Array, readonly width = 64, readonly height = 64, readonly nearWhiteMin = NEAR_WHITE_MIN) {
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
    if (!Number.isInteger(nearWhiteMin) || nearWhiteMin < 1 || nearWhiteMin > 255) throw rangeError('OUT_OF_RANGE', `nearWhiteMin must be an integer in 1..255, got ${nearWhiteMin}`);
    this.maskWords = Math.ceil((width * height) / 32);
    this.fgPixels = new Uint8Array(pixels.length);
    this.fgSq = new Float64Array(this.count);
    this.fgMasks = new Uint32Array(this.count * this.maskWords);
    this.fgCount = new Uint32Array(this.count);
    for (let j = 0; j < this.count; j++) {
      const o = j * this.imageBytes;
      const f = foregroundOf(pixels.subarray(o, o + this.imageBytes), nearWhiteMin);
      this.fgPixels.set(f.snapped, o);
      this.fgMasks.set(f.mask, j * this.maskWords);
      this.fgSq[j] = f.sq;
      this.fgCount[j] = f.count;
    }
  }

  static fromImages(images: readonly RgbImage[], width = 64, height = 64, nearWhiteMin = NEAR_WHITE_MIN): PixelDatabase {
    if (!Array.isArray(images) || images.length === 0) throw typeError('INVALID_TYPE', 'images must be a non-empty array');
    const per = width * height * 3;
    const all = new Uint8Array(images.length * per);
    images.forEach((img, j) => {
      checkImage(img, width, height, `images[${j}]`);
      all.set(img.rgb, j * per);
    });
    return new PixelDatabase(all, width, height, nearWhiteMin);
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

  /** Foreground PSNR (dB) of `image` to every database image, in database order (file comment). */
  foregroundPsnrAll(image: Uint8Array): Float64Array {
    return this.scan(image, false).fg;
  }

  /** The most similar database image by PSNR. */
  nearest(image: Uint8Array): { index: number; psnr: number } {
    const all = this.psnrAll(image);
    const index = argmax(all);
    return { index, psnr: all[index]! };
  }

  /**
   * The most similar database image by whole-image PSNR and by foreground PSNR, in one pass over the
   * database (both dot products per byte). `exclude`: a database index left out (e.g. the image itself).
   */
  nearestBoth(image: Uint8Array, exclude = -1): { index: number; psnr: number; foregroundIndex: number; foregroundPsnr: number } {
    const { whole, fg } = this.scan(image, true);
    if (exclude >= 0 && exclude < this.count) { whole[exclude] = -Infinity; fg[exclude] = -Infinity; }
    const index = argmax(whole);
    const foregroundIndex = argmax(fg);
    return { index, psnr: whole[index]!, foregroundIndex, foregroundPsnr: fg[foregroundIndex]! };
  }

  private scan(image: Uint8Array, withWhole: boolean): { whole: Float64Array; fg: Float64Array } {
    if (!(image instanceof Uint8Array) || image.length !== this.imageBytes) throw rangeError('LENGTH_MISMATCH', `image must have ${this.imageBytes} bytes`);
    const n = this.imageBytes;
    const f = foregroundOf(image, this.nearWhiteMin);
    const A = f.snapped;
    let aa = 0;
    for (let i = 0; i < n; i++) aa += image[i]! * image[i]!;
    const whole = new Float64Array(withWhole ? this.count : 0);
    const fg = new Float64Array(this.count);
    const P = this.pixels;
    const S = this.fgPixels;
    const M = this.fgMasks;
    const W = this.maskWords;
    for (let j = 0; j < this.count; j++) {
      const o = j * n;
      let sab = 0;
      if (withWhole) {
        let ab = 0;
        for (let i = 0; i < n; i++) {
          ab += image[i]! * P[o + i]!;
          sab += A[i]! * S[o + i]!;
        }
        whole[j] = psnrFromSse(aa + this.sq[j]! - 2 * ab, n);
      } else {
        for (let i = 0; i < n; i++) sab += A[i]! * S[o + i]!;
      }
      let both = 0;
      const mo = j * W;
      for (let w = 0; w < W; w++) both += popcount32(f.mask[w]! & M[mo + w]!);
      fg[j] = foregroundPsnr(f.sq + this.fgSq[j]! - 2 * sab, f.count + this.fgCount[j]! - both);
    }
    return { whole, fg };
  }
}

function argmax(a: Float64Array): number {
  let index = 0;
  for (let j = 1; j < a.length; j++) if (a[j]! > a[index]!) index = j;
  return index;
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
  /** Foreground PSNR (file comment) to each reference, and the highest to any database image, and which. */
  foregroundPsnrToReferences: number[];
  maxForegroundPsnrToDatabase: number;
  nearestDatabaseIndexByForeground: number;
  /** maxForegroundPsnrToDatabase > threshold: a near-copy by foreground. */
  nearCopyForeground: boolean;
}

export interface CopyGuardReport {
  items: CopyGuardItem[];
  /** Share of outputs that are near-copies of some database image. */
  nearCopyShare: number;
  /** Share of outputs whose PSNR to one of their own references is above the threshold. */
  referenceCopyShare: number;
  /** The same two shares by foreground PSNR (near-white pixels of both images left out; file comment). */
  nearCopyForegroundShare: number;
  referenceCopyForegroundShare: number;
  thresholdDb: number;
  nearWhiteMin: number;
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
  let nearFg = 0;
  let refCopiesFg = 0;
  const nw = database.nearWhiteMin;
  const items = outputs.map((o, i): CopyGuardItem => {
    const refs: readonly RgbImage[] = refLists[i] ?? [];
    const psnrToReferences = refs.map((r: RgbImage) => psnr8(o.rgb, r.rgb));
    const foregroundPsnrToReferences = refs.map((r: RgbImage) => foregroundPsnr8(o.rgb, r.rgb, nw));
    const db = database.nearestBoth(o.rgb);
    const item: CopyGuardItem = {
      psnrToReferences, maxPsnrToDatabase: db.psnr, nearestDatabaseIndex: db.index, nearCopy: db.psnr > threshold,
      foregroundPsnrToReferences, maxForegroundPsnrToDatabase: db.foregroundPsnr, nearestDatabaseIndexByForeground: db.foregroundIndex, nearCopyForeground: db.foregroundPsnr > threshold,
    };
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
    if (item.nearCopyForeground) nearFg++;
    if (foregroundPsnrToReferences.some((p: number) => p > threshold)) refCopiesFg++;
    return item;
  });
  const n = Math.max(1, outputs.length);
  return {
    items, nearCopyShare: near / n, referenceCopyShare: refCopies / n,
    nearCopyForegroundShare: nearFg / n, referenceCopyForegroundShare: refCopiesFg / n,
    thresholdDb: threshold, nearWhiteMin: nw,
  };
}
