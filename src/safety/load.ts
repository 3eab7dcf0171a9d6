/**
 * Loading a policy: parse → validate → embed every concept's phrases (text
 * encoder) and example images (image encoder) once → a compiled, immutable
 * {@link SafetyPolicy} with its content hash. The hash covers the validated
 * document and the bytes of every example image, so editing an anchor image
 * changes the hash that goes into provenance and the audit log.
 */
import { createHash } from 'node:crypto';
import { DEFAULT_MAX_USER_FILE_BYTES, readUserFileSync } from '../io/user-file.js';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { decodeImage } from '../image/decode.js';
import type { ImageTextEncoder } from '../models/encoders.js';
import { canonicalJson, PolicyError, validatePolicy, type ConceptRule, type PolicyDocument } from './policy.js';

/** A policy file larger than this is refused unread (a real one is a few KB). */
export const MAX_POLICY_BYTES = 16 * 1024 * 1024;

export interface CompiledConcept extends ConceptRule {
  /** L2-normalised anchors: the text phrases first, then the images. */
  anchors: Float32Array[];
}

export interface SafetyPolicy {
  readonly doc: PolicyDocument;
  readonly version: string;
  /** sha256 (hex) of the canonical document plus the anchor images' bytes. */
  readonly hash: string;
  readonly concepts: readonly CompiledConcept[];
  /** The embedding width the concepts were embedded at. */
  readonly dim: number;
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
      // Through the file gate: a FIFO or device is refused, never read (a read would block).
      text = readUserFileSync(source, { maxBytes: MAX_POLICY_BYTES, what: 'policy' }).toString('utf8');
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
    if (c.images.length > 0) {
      const pixels = [];
      for (const [j, p] of c.images.entries()) {
        const field = `concepts[${i}].images[${j}]`;
        let bytes: Buffer;
        try {
          bytes = readUserFileSync(resolveAnchorPath(p, baseDir), { maxBytes: DEFAULT_MAX_USER_FILE_BYTES, what: 'example image' });
        } catch (e) {
          throw new PolicyError(field, `cannot read the example image ${p}: ${(e as Error).message}`, { cause: e });
        }
        imageHashes[p] = createHash('sha256').update(bytes).digest('hex');
        try {
          const d = await decodeImage(bytes, { width: size.width, height: size.height, fit: 'cover' });
          pixels.push({ rgb: d.rgb, width: d.width, height: d.height });
        } catch (e) {
          throw new PolicyError(field, `the example image ${p} does not decode: ${(e as Error).message}`, { cause: e });
        }
      }
      let out: Float32Array[];
      try {
        out = await encoder.embedImages(pixels);
      } catch (e) {
        throw new PolicyError(`concepts[${i}].images`, `the image encoder failed: ${(e as Error).message}`, { cause: e });
      }
      c.images.forEach((_, j) => anchors.push(normalise(out[j]!, dim, `concepts[${i}].images[${j}]`)));
    }
    concepts.push({ ...c, anchors });
  }
  const hash = createHash('sha256').update(canonicalJson({ doc, imageHashes })).digest('hex');
  return Object.freeze({ doc, version: doc.version, hash, concepts: Object.freeze(concepts), dim, origin });
}
