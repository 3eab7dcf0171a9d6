/**
 * The one path every image takes before its pixels or its embedding reach a
 * model — stored images at ingest, per-request uploads, query images:
 *
 *   bytes → size cap → decode (header checked first, pixel cap, first frame,
 *   sRGB 8-bit, alpha on white) → SHA-256 + perceptual hash (and the hashes of
 *   the picture's eight orientations, for blocklists) → screen
 *   (before embedding) → embed → screen (after embedding) → caller
 *
 * Screening is a seam for operator policies (hash blocklists, source and
 * licence rules, concept embeddings): the store calls the hooks, it does not
 * define the policies.
 */
import { createHash } from 'node:crypto';
import { RagdiffError, rangeError, typeError } from '../errors.js';
import sharp from 'sharp';
import { decodeImage, DEFAULT_MAX_PIXELS } from '../image/decode.js';
import { pngChunks } from '../image/png-text.js';
import type { ImageTextEncoder, RgbImage } from '../models/encoders.js';
import type { NormalisedMeta } from './meta.js';
import { orientationHashes, perceptualHash, PHASH_SIZE, type PerceptualHash } from './phash.js';

/** What a screen decides. `reason` is recorded with blocked images. */
export type ScreenVerdict = { allow: true } | { allow: false; reason: string };

export type ImagePurpose = 'ingest' | 'reference' | 'query';

export interface ScreenCandidate {
  purpose: ImagePurpose;
  sha256: string;
  phash: PerceptualHash;
  /** The 64-bit hashes of the picture in the eight orientations of the square (identity first). */
  orientedHashes?: readonly string[];
  width: number;
  height: number;
  format: string;
  meta: NormalisedMeta;
  /** Where the bytes came from (path, URL or "buffer"). */
  origin: string;
}

/** Operator policy hooks. Each may be sync or async; a throw counts as a block. */
export interface ImageScreen {
  /** Before any model sees the pixels: hash blocklists, source and licence rules. */
  beforeEmbed?(c: ScreenCandidate): ScreenVerdict | Promise<ScreenVerdict>;
  /** With the embedding (the one retrieval uses): concept similarity checks. */
  afterEmbed?(c: ScreenCandidate & { embedding: Float32Array }): ScreenVerdict | Promise<ScreenVerdict>;
  /**
   * At retrieval time, for stored images (policies change after ingest).
   * Synchronous and cheap: it runs inside queries.
   */
  atRetrieval?(c: { id: string; source: string; licence: string; tags: readonly string[]; phash: string }): boolean;
}

export interface GateOptions {
  maxPixels?: number;
  /** Largest input accepted, in bytes. Default 50 MiB. */
  maxBytes?: number;
}

export const DEFAULT_MAX_INPUT_BYTES = 50 * 1024 * 1024;

export interface DecodedCandidate {
  /** The bytes kept: the input, or for an animation (or a multi-page file) a PNG of the one frame screened. */
  bytes: Uint8Array;
  sha256: string;
  phash: PerceptualHash;
  /** Hashes of the eight orientations (identity first), for orientation-proof blocklists. */
  orientedHashes: string[];
  /** Pixels at the encoder's size. */
  pixels: RgbImage;
  width: number;
  height: number;
  format: string;
}

/**
 * The working size an image is decoded to: the encoder's size, scaled up by
 * a whole factor when it is smaller than the hash's 32×32 (so both the
 * encoder's pixels and the hash come from the one decode).
 */
function workingSize(encoder: ImageTextEncoder): { width: number; height: number; factor: number } {
  const size = encoder.imageSize ?? { width: 224, height: 224 };
  const factor = Math.max(1, Math.ceil(PHASH_SIZE / Math.min(size.width, size.height)));
  return { width: size.width * factor, height: size.height * factor, factor };
}

/** Averages f×f blocks (a whole-factor downscale). */
function boxDownscale(rgb: Uint8Array, width: number, height: number, f: number): Uint8Array {
  if (f === 1) return rgb;
  const w = width / f;
  const h = height / f;
  const out = new Uint8Array(w * h * 3);
  const n = f * f;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        let s = 0;
        for (let dy = 0; dy < f; dy++) for (let dx = 0; dx < f; dx++) s += rgb[((y * f + dy) * width + x * f + dx) * 3 + c]!;
        out[(y * w + x) * 3 + c] = Math.round(s / n);
      }
    }
  }
  return out;
}

/** Area-average resize (each output pixel is the mean of the input area it covers). */
export function areaResize(rgb: Uint8Array, width: number, height: number, W: number, H: number): Uint8Array {
  const out = new Uint8Array(W * H * 3);
  const sx = width / W;
  const sy = height / H;
  for (let Y = 0; Y < H; Y++) {
    const y0 = Y * sy;
    const y1 = y0 + sy;
    for (let X = 0; X < W; X++) {
      const x0 = X * sx;
      const x1 = x0 + sx;
      let r = 0, g = 0, b = 0, wsum = 0;
      for (let y = Math.floor(y0); y < Math.ceil(y1); y++) {
        const wy = Math.min(y + 1, y1) - Math.max(y, y0);
        for (let x = Math.floor(x0); x < Math.ceil(x1); x++) {
          const w = wy * (Math.min(x + 1, x1) - Math.max(x, x0));
          const o = (y * width + x) * 3;
          r += rgb[o]! * w;
          g += rgb[o + 1]! * w;
          b += rgb[o + 2]! * w;
          wsum += w;
        }
      }
      const o = (Y * W + X) * 3;
      out[o] = Math.round(r / wsum);
      out[o + 1] = Math.round(g / wsum);
      out[o + 2] = Math.round(b / wsum);
    }
  }
  return out;
}

/**
 * Decodes and hashes untrusted bytes, decoding once: the image is decoded
 * (header checked first, see image/decode.ts) straight to the working size;
 * the encoder's pixels and the 32×32 image of the perceptual hash are both
 * derived from that one buffer. (The hash therefore describes the encoder's
 * centre-cropped view: for non-square images the margins the encoder never
 * sees do not count towards near-duplicates either.)
 * Throws RagdiffErrors with IMAGE_* codes.
 */
export async function decodeCandidate(bytes: Uint8Array, encoder: ImageTextEncoder, options: GateOptions = {}): Promise<DecodedCandidate> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_INPUT_BYTES;
  if (bytes.byteLength > maxBytes) throw new RagdiffError('IMAGE_TOO_LARGE', `image input is ${bytes.byteLength} bytes, over the limit of ${maxBytes}`);
  const maxPixels = options.maxPixels ?? DEFAULT_MAX_PIXELS;
  const work = workingSize(encoder);
  const decoded = await decodeImage(bytes, { maxPixels, width: work.width, height: work.height, fit: 'cover' });
  const pixels = boxDownscale(decoded.rgb, work.width, work.height, work.factor);
  const small = work.width === PHASH_SIZE && work.height === PHASH_SIZE ? decoded.rgb : areaResize(decoded.rgb, work.width, work.height, PHASH_SIZE, PHASH_SIZE);
  // Only the first frame is decoded, screened and embedded: an animation keeps only that frame,
  // so no unscreened frame is ever stored or served. (An APNG reads as one page: its frames are chunks.)
  const kept = decoded.source.pages > 1 || (decoded.source.format === 'png' && isApng(bytes)) ? await firstFrame(bytes, maxPixels) : bytes;
  return {
    bytes: kept,
    sha256: createHash('sha256').update(kept).digest('hex'),
    phash: perceptualHash(small),
    orientedHashes: orientationHashes(small),
    pixels: { rgb: pixels, width: work.width / work.factor, height: work.height / work.factor },
    width: decoded.source.width,
    height: decoded.source.height,
    format: kept === bytes ? decoded.source.format : 'png',
  };
}


/** An animated PNG: frames in fdAT chunks that decoders without APNG support (libvips) never show. */
function isApng(bytes: Uint8Array): boolean {
  try {
    return pngChunks(bytes).some((c) => c.type === 'acTL' || c.type === 'fdAT');
  } catch {
    return true; // sharp read it, this parser did not: keep only what sharp decoded
  }
}

/** A lossless PNG of the first frame (page) of an animated or multi-page image. */
async function firstFrame(bytes: Uint8Array, maxPixels: number): Promise<Uint8Array> {
  try {
    const png = await sharp(bytes, { pages: 1, limitInputPixels: maxPixels, failOn: 'warning' }).rotate().png().toBuffer();
    return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
  } catch (e) {
    throw new RagdiffError('IMAGE_CORRUPT', `the first frame could not be re-encoded: ${(e as Error).message}`, { cause: e });
  }
}

/** Runs a screen hook; a hook that throws blocks (fail closed) with its message as the reason. */
export async function runScreen<T>(hook: ((c: T) => ScreenVerdict | Promise<ScreenVerdict>) | undefined, c: T): Promise<ScreenVerdict> {
  if (!hook) return { allow: true };
  try {
    const v = await hook(c);
    if (v && v.allow === false) return { allow: false, reason: String(v.reason || 'blocked by policy') };
    if (v && v.allow === true) return v;
    return { allow: false, reason: 'screen returned no verdict' };
  } catch (e) {
    return { allow: false, reason: `screen failed: ${(e as Error)?.message ?? String(e)}` };
  }
}

/** Embeds candidates in one encoder call, checking what comes back. */
export async function embedCandidates(encoder: ImageTextEncoder, images: readonly RgbImage[]): Promise<Float32Array[]> {
  if (images.length === 0) return [];
  let out: Float32Array[];
  try {
    out = await encoder.embedImages(images);
  } catch (e) {
    throw new RagdiffError('EMBED_FAILED', `the image encoder failed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
  if (!Array.isArray(out) || out.length !== images.length) {
    throw new RagdiffError('EMBED_FAILED', `the image encoder returned ${Array.isArray(out) ? out.length : 'no'} embeddings for ${images.length} images`);
  }
  try {
    return out.map((v, i) => normaliseEmbedding(v, encoder.dim, `image embedding ${i}`));
  } catch (e) {
    throw new RagdiffError('EMBED_FAILED', `the image encoder returned a bad embedding: ${(e as Error).message}`, { cause: e });
  }
}

/** Copies, checks (width, finite, non-zero) and L2-normalises an embedding. */
export function normaliseEmbedding(v: ArrayLike<number>, dim: number, what = 'embedding'): Float32Array {
  if (!(v instanceof Float32Array) && !Array.isArray(v)) throw typeError('INVALID_TYPE', `${what} must be a Float32Array or number[]`);
  if (v.length !== dim) throw rangeError('LENGTH_MISMATCH', `${what} must have ${dim} values (the store's width), got ${v.length}`);
  const out = Float32Array.from(v);
  let s = 0;
  for (let i = 0; i < dim; i++) {
    const x = out[i]!;
    if (typeof x !== 'number' || !Number.isFinite(x)) throw rangeError('NON_FINITE', `${what}[${i}] is ${x}; embeddings must be finite`);
    s += x * x;
  }
  if (s === 0) throw rangeError('INVALID_VALUE', `${what} is all zeros; it has no direction to search`);
  const inv = 1 / Math.sqrt(s);
  for (let i = 0; i < dim; i++) out[i]! *= inv;
  return out;
}

/** An accepted candidate on its way to the catalogue (local or PostgreSQL). */
export interface EmbeddingCandidate {
  i: number;
  c: DecodedCandidate;
  screenInfo: ScreenCandidate;
  embedding?: Float32Array;
  blocked?: string;
}

/**
 * Embeds a batch (one by one if the batch call fails, to find the culprit; a
 * failure goes to `fail`), then runs the post-embedding screen. Shared by both
 * backends' ingest so they screen exactly alike.
 */
export async function embedAndScreen(encoder: ImageTextEncoder, screen: ImageScreen | undefined, batch: readonly EmbeddingCandidate[], fail: (i: number, e: unknown) => void): Promise<void> {
  const toEmbed = batch.filter((a) => !a.blocked);
  try {
    const vecs = await embedCandidates(encoder, toEmbed.map((a) => a.c.pixels));
    toEmbed.forEach((a, j) => (a.embedding = vecs[j]));
  } catch {
    for (const a of toEmbed) {
      try {
        a.embedding = (await embedCandidates(encoder, [a.c.pixels]))[0];
      } catch (e) {
        fail(a.i, e);
      }
    }
  }
  for (const a of toEmbed) {
    if (!a.embedding) continue;
    const v = await runScreen(screen?.afterEmbed?.bind(screen), { ...a.screenInfo, embedding: a.embedding });
    if (!v.allow) a.blocked = v.reason;
  }
}

/** The retrieval door's synchronous check of a stored image (a throwing hook refuses). */
export function passesAtRetrieval(screen: ImageScreen | undefined, image: { id: string; source: string; licence: string; tags: readonly string[]; phash: string }): boolean {
  const hook = screen?.atRetrieval;
  if (!hook) return true;
  try {
    return hook.call(screen, { id: image.id, source: image.source, licence: image.licence, tags: image.tags, phash: image.phash }) === true;
  } catch {
    return false;
  }
}
