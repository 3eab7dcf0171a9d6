/**
 * Zero-shot recognition of generated images by the bundle's own encoders, as
 * tools/tiny_emoji/metrics.py measures it: each image is embedded by the image encoder and scored
 * by dot product against the text embeddings of ALL base emoji names (the bare lower-cased name,
 * no template); its rank is the number of names that score strictly higher than the target's
 * name (ties count in the target's favour), so rank 0 is a top-1 hit and rank < 5 a top-5 hit.
 */
import type { ImageTextEncoder, RgbImage } from '../models/encoders.js';
import { RagdiffError, rangeError, typeError } from '../errors.js';

export interface RecognitionResult {
  /** Share of images whose target name ranks first. */
  top1: number;
  /** Share of images whose target name is among the 5 best. */
  top5: number;
  n: number;
  /** Per image: how many names scored strictly higher than its target. */
  ranks: Int32Array;
  /** Per image: the index of the best-scoring name. */
  best: Int32Array;
}

/** Share of ranks below k (rank 0 = top-1). */
export function hitRate(ranks: ArrayLike<number>, k: number): number {
  if (!Number.isInteger(k) || k < 1) throw rangeError('OUT_OF_RANGE', `k must be a positive integer, got ${k}`);
  if (ranks.length === 0) return 0;
  let h = 0;
  for (let i = 0; i < ranks.length; i++) if (ranks[i]! < k) h++;
  return h / ranks.length;
}

/** The name embeddings of one encoder, held as one [N × E] Float32Array. */
export class NameRanker {
  private readonly byName = new Map<string, number>();

  private constructor(readonly names: readonly string[], readonly embeddings: Float32Array, readonly dim: number, readonly encoderId: string) {
    // The first occurrence wins, as an index lookup in the Python list would.
    names.forEach((n, i) => { if (!this.byName.has(n)) this.byName.set(n, i); });
  }

  /** Embeds every name once with `encoder.embedText`. */
  static async build(encoder: ImageTextEncoder, names: readonly string[]): Promise<NameRanker> {
    if (!encoder || typeof encoder.embedText !== 'function' || typeof encoder.embedImages !== 'function') {
      throw typeError('INVALID_TYPE', 'encoder must implement ImageTextEncoder');
    }
    if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string')) {
      throw typeError('INVALID_TYPE', 'names must be a non-empty array of strings');
    }
    const dim = encoder.dim;
    const rows = await encoder.embedText(names);
    if (rows.length !== names.length) throw new RagdiffError('EMBEDDING_INVALID', `the encoder returned ${rows.length} text embeddings for ${names.length} names`);
    const emb = new Float32Array(names.length * dim);
    rows.forEach((r, i) => {
      if (r.length !== dim) throw new RagdiffError('EMBEDDING_INVALID', `text embedding ${i} has width ${r.length}, expected ${dim}`);
      emb.set(r, i * dim);
    });
    return new NameRanker(names.slice(), emb, dim, encoder.id ?? `anonymous-${dim}`);
  }

  /** Index of a name; throws EVAL_UNKNOWN_NAME for a name that is not in the list. */
  indexOf(name: string): number {
    const i = this.byName.get(name);
    if (i === undefined) throw new RagdiffError('EVAL_UNKNOWN_NAME', `"${name}" is not one of the ${this.names.length} names`);
    return i;
  }

  /** Rank of `target` (a name index) for one image embedding, and the best-scoring name. */
  rank(imageEmbedding: Float32Array, target: number): { rank: number; best: number } {
    const { dim, embeddings: E } = this;
    if (!(imageEmbedding instanceof Float32Array) || imageEmbedding.length !== dim) {
      throw rangeError('LENGTH_MISMATCH', `image embedding must be a Float32Array of ${dim}`);
    }
    if (!Number.isInteger(target) || target < 0 || target >= this.names.length) throw rangeError('OUT_OF_RANGE', `target must be a name index in 0..${this.names.length - 1}, got ${target}`);
    const n = this.names.length;
    // Scores in float32 like the reference's matmul; the sum order differs, so a near-exact tie
    // (|difference| ~1e-7) can rank differently from PyTorch.
    const scores = new Float32Array(n);
    let best = 0;
    for (let j = 0; j < n; j++) {
      let s = 0;
      const o = j * dim;
      for (let d = 0; d < dim; d++) s += imageEmbedding[d]! * E[o + d]!;
      scores[j] = s;
      if (s > scores[best]!) best = j;
    }
    const t = scores[target]!;
    let rank = 0;
    for (let j = 0; j < n; j++) if (scores[j]! > t) rank++;
    return { rank, best };
  }

  /** Ranks precomputed image embeddings against their targets (name strings or indices). */
  rankEmbeddings(imageEmbeddings: readonly Float32Array[], targets: readonly (string | number)[]): RecognitionResult {
    if (!Array.isArray(imageEmbeddings) || !Array.isArray(targets)) throw typeError('INVALID_TYPE', 'embeddings and targets must be arrays');
    if (imageEmbeddings.length !== targets.length) throw rangeError('LENGTH_MISMATCH', `${imageEmbeddings.length} images but ${targets.length} targets`);
    const idx = targets.map((t) => (typeof t === 'string' ? this.indexOf(t) : t));
    const ranks = new Int32Array(idx.length);
    const best = new Int32Array(idx.length);
    idx.forEach((t, i) => {
      const r = this.rank(imageEmbeddings[i]!, t);
      ranks[i] = r.rank;
      best[i] = r.best;
    });
    return { top1: hitRate(ranks, 1), top5: hitRate(ranks, 5), n: idx.length, ranks, best };
  }

  /** Embeds the images with the same encoder (64×64 RGB for tiny-emoji) and ranks them. */
  async recognise(encoder: ImageTextEncoder, images: readonly RgbImage[], targets: readonly (string | number)[]): Promise<RecognitionResult> {
    if (!Array.isArray(images)) throw typeError('INVALID_TYPE', 'images must be an array');
    if (images.length !== targets.length) throw rangeError('LENGTH_MISMATCH', `${images.length} images but ${targets.length} targets`);
    const id = encoder.id ?? `anonymous-${encoder.dim}`;
    if (id !== this.encoderId || encoder.dim !== this.dim) {
      throw new RagdiffError('EVAL_ENCODER_MISMATCH', `names were embedded by ${this.encoderId} (width ${this.dim}); images by ${id} (width ${encoder.dim})`);
    }
    // Resolve names first so a bad target fails before any encoder work.
    const idx = targets.map((t) => (typeof t === 'string' ? this.indexOf(t) : t));
    return this.rankEmbeddings(await encoder.embedImages(images), idx);
  }
}
