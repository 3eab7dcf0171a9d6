/**
 * Loading a policy: parse → validate → embed every concept's phrases (text
 * encoder) and example images (image encoder) once → a compiled, immutable
 * {@link SafetyPolicy} with its content hash. The hash covers the validated
 * document and the bytes of every example image, so editing an anchor image
 * changes the hash that goes into provenance and the audit log.
 *
 * Example images are also embedded in the eight orientations of the square
 * (flips, 90° rotations) and, when they have alpha, composited on black as
 * well as on white: a flipped copy, or the object re-encoded on black without
 * its alpha, then meets an anchor drawn the same way. These variants serve the
 * image doors only (a prompt is never "rotated"); they cost dot products, not
 * encoder calls, at screening time.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { decodeImage } from '../image/decode.js';
import { dihedralAll } from '../image/dihedral.js';
import type { ImageTextEncoder, RgbImage } from '../models/encoders.js';
import { canonicalJson, PolicyError, validatePolicy, type ConceptRule, type PolicyDocument } from './policy.js';

export interface CompiledConcept extends ConceptRule {
  /** L2-normalised anchors: the text phrases first, then the images (upright, on white). */
  anchors: Float32Array[];
  /**
   * The images' other orientations and backgrounds, L2-normalised and packed row by row (dim
   * values each; views within cos 0.999 of one already kept are left out): image doors only.
   */
  variants: Float32Array;
}

export interface SafetyPolicy {
  readonly doc: PolicyDocument;
  readonly version: string;
  /** sha256 (hex) of the canonical document plus the anchor images' bytes. */
  readonly hash: string;
  readonly concepts: readonly CompiledConcept[];
  /** The embedding width the concepts were embedded at. */
  readonly dim: number;
  /** Benign anchors, packed row by row (dim values each): text for the prompt door, images for the image doors. */
  readonly benign: { readonly text: Float32Array; readonly images: Float32Array; readonly margin: number };
  /** Where the policy came from (a path, or "object"). */
  readonly origin: string;
}

export interface LoadPolicyOptions {
  encoder: ImageTextEncoder;
  /** Folder relative image paths are resolved against. Default: the policy file's folder, else the working directory. */
  baseDir?: string;
}

/** Resolves an anchor image path: `npm:<package>/<file>` from an installed package, else relative to baseDir. */
export function resolveAnchorPath(p: string, baseDir: string): string {
  if (p.startsWith('npm:')) {
    const rest = p.slice(4);
    const parts = rest.split('/');
    const pkgLen = rest.startsWith('@') ? 2 : 1;
    const pkg = parts.slice(0, pkgLen).join('/');
    const root = dirname(createRequire(import.meta.url).resolve(`${pkg}/package.json`));
    return join(root, ...parts.slice(pkgLen));
  }
  return isAbsolute(p) ? p : resolve(baseDir, p);
}

function normalise(v: Float32Array, dim: number, field: string): Float32Array {
  if (!(v instanceof Float32Array) || v.length !== dim) throw new PolicyError(field, `the encoder returned ${v?.length ?? 'no'} values, expected ${dim}`);
  let s = 0;
  for (const x of v) {
    if (!Number.isFinite(x)) throw new PolicyError(field, 'the encoder returned a non-finite embedding');
    s += x * x;
  }
  if (s === 0) throw new PolicyError(field, 'the encoder returned an all-zero embedding');
  const inv = 1 / Math.sqrt(s);
  return Float32Array.from(v, (x) => x * inv);
}

/**
 * Loads and compiles a policy from a JSON file path or an already parsed
 * object. Every failure (unreadable file, bad JSON, bad field, missing image,
 * encoder failure, encoder mismatch) is a {@link PolicyError} (`POLICY_INVALID`).
 */
export async function loadPolicy(source: string | object, options: LoadPolicyOptions): Promise<SafetyPolicy> {
  const encoder = options?.encoder;
  if (!encoder || typeof encoder.embedText !== 'function' || typeof encoder.embedImages !== 'function') {
    throw new PolicyError('(options)', 'loadPolicy needs { encoder } (an ImageTextEncoder: the bundle\'s encoders)');
  }
  let raw: unknown = source;
  let baseDir = options.baseDir ?? process.cwd();
  let origin = 'object';
  if (typeof source === 'string') {
    origin = source;
    if (options.baseDir === undefined) baseDir = dirname(resolve(source));
    let text: string;
    try {
      text = readFileSync(source, 'utf8');
    } catch (e) {
      throw new PolicyError('(file)', `cannot read ${source}: ${(e as Error).message}`, { cause: e });
    }
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new PolicyError('(file)', `${source} is not valid JSON: ${(e as Error).message}`, { cause: e });
    }
  }
  const doc = validatePolicy(raw);
  if (doc.encoder !== undefined && encoder.id !== undefined && encoder.id !== doc.encoder) {
    throw new PolicyError('encoder', `the policy was calibrated with encoder ${doc.encoder}, but the encoder given is ${encoder.id}: its thresholds would mean nothing`);
  }
  const dim = encoder.dim;
  const size = encoder.imageSize ?? { width: 224, height: 224 };
  const imageHashes: Record<string, string> = {};
  const concepts: CompiledConcept[] = [];
  for (const [i, c] of doc.concepts.entries()) {
    const anchors: Float32Array[] = [];
    if (c.text.length > 0) {
      let out: Float32Array[];
      try {
        out = await encoder.embedText(c.text);
      } catch (e) {
        throw new PolicyError(`concepts[${i}].text`, `the text encoder failed: ${(e as Error).message}`, { cause: e });
      }
      c.text.forEach((_, j) => anchors.push(normalise(out[j]!, dim, `concepts[${i}].text[${j}]`)));
    }
    let variants: Float32Array = new Float32Array(0);
    if (c.images.length > 0) {
      const upright: RgbImage[] = [];
      const others: RgbImage[] = [];
      for (const [j, p] of c.images.entries()) {
        const field = `concepts[${i}].images[${j}]`;
        let bytes: Buffer;
        try {
          bytes = readFileSync(resolveAnchorPath(p, baseDir));
        } catch (e) {
          throw new PolicyError(field, `cannot read the example image ${p}: ${(e as Error).message}`, { cause: e });
        }
        imageHashes[p] = createHash('sha256').update(bytes).digest('hex');
        try {
          const views = await anchorViews(bytes, size);
          upright.push(views[0]!);
          others.push(...views.slice(1));
        } catch (e) {
          throw new PolicyError(field, `the example image ${p} does not decode: ${(e as Error).message}`, { cause: e });
        }
      }
      let out: Float32Array[];
      try {
        out = await encoder.embedImages([...upright, ...others]);
      } catch (e) {
        throw new PolicyError(`concepts[${i}].images`, `the image encoder failed: ${(e as Error).message}`, { cause: e });
      }
      upright.forEach((_, j) => anchors.push(normalise(out[j]!, dim, `concepts[${i}].images[${j}]`)));
      const views = others.map((_, j) => normalise(out[upright.length + j]!, dim, `concepts[${i}].images`));
      variants = pack(distinctViews(anchors, views), dim);
    }
    concepts.push({ ...c, anchors, variants });
  }
  const benign: { text: Float32Array; images: Float32Array; margin: number } = { text: new Float32Array(0), images: new Float32Array(0), margin: doc.benign?.margin ?? 0 };
  if (doc.benign && doc.benign.text.length > 0) {
    let out: Float32Array[];
    try {
      out = [];
      for (let j = 0; j < doc.benign.text.length; j += 256) out.push(...(await encoder.embedText(doc.benign.text.slice(j, j + 256))));
    } catch (e) {
      throw new PolicyError('benign.text', `the text encoder failed: ${(e as Error).message}`, { cause: e });
    }
    benign.text = pack(out.map((v, j) => normalise(v, dim, `benign.text[${j}]`)), dim);
  }
  if (doc.benign && doc.benign.images.length > 0) {
    const pixels: RgbImage[] = [];
    for (const [j, p] of doc.benign.images.entries()) {
      const field = `benign.images[${j}]`;
      try {
        const bytes = readFileSync(resolveAnchorPath(p, baseDir));
        imageHashes[`benign:${p}`] = createHash('sha256').update(bytes).digest('hex');
        const d = await decodeImage(bytes, { width: size.width, height: size.height, fit: 'cover' });
        pixels.push({ rgb: d.rgb, width: d.width, height: d.height });
      } catch (e) {
        throw new PolicyError(field, `cannot read or decode the benign image ${p}: ${(e as Error).message}`, { cause: e });
      }
    }
    let out: Float32Array[];
    try {
      out = await encoder.embedImages(pixels);
    } catch (e) {
      throw new PolicyError('benign.images', `the image encoder failed: ${(e as Error).message}`, { cause: e });
    }
    benign.images = pack(out.map((v, j) => normalise(v, dim, `benign.images[${j}]`)), dim);
  }
  const hash = createHash('sha256').update(canonicalJson({ doc, imageHashes })).digest('hex');
  return Object.freeze({ doc, version: doc.version, hash, concepts: Object.freeze(concepts), dim, benign: Object.freeze(benign), origin });
}

function pack(rows: Float32Array[], dim: number): Float32Array {
  const out = new Float32Array(rows.length * dim);
  rows.forEach((r, i) => out.set(r, i * dim));
  return out;
}

/**
 * Views close to one already kept add cost, not reach: a view within cos
 * VIEW_MERGE_COS of a kept anchor is dropped (an exact copy of it still meets
 * the kept one at ≥ 0.95, above any variantThreshold the calibration sets).
 */
export const VIEW_MERGE_COS = 0.95;
export function distinctViews(kept: readonly Float32Array[], views: readonly Float32Array[]): Float32Array[] {
  const out: Float32Array[] = [];
  const dot = (a: Float32Array, b: Float32Array) => a.reduce((s, x, k) => s + x * b[k]!, 0);
  for (const v of views) if (![...kept, ...out].some((a) => dot(a, v) >= VIEW_MERGE_COS)) out.push(v);
  return out;
}

/**
 * The views of an example image the image doors compare against: upright on
 * white first, then the other seven orientations, then (when it has alpha)
 * all eight on black. Orientations are taken after the square centre crop, so
 * they are exactly what the encoder sees of a flipped or rotated copy.
 */
export async function anchorViews(bytes: Uint8Array, size: { width: number; height: number }): Promise<RgbImage[]> {
  const views: RgbImage[] = [];
  const square = size.width === size.height;
  for (const background of [{ r: 255, g: 255, b: 255 }, { r: 0, g: 0, b: 0 }]) {
    const d = await decodeImage(bytes, { width: size.width, height: size.height, fit: 'cover', background });
    const turned = square ? dihedralAll(d.rgb, d.width) : [d.rgb];
    views.push(...turned.map((rgb) => ({ rgb, width: d.width, height: d.height })));
    if (!d.source.hadAlpha) break; // opaque: the background changes nothing
  }
  return views;
}
