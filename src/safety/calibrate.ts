/**
 * Calibration of a concept policy on the emoji data (Twemoji and Noto, base
 * emoji and skin-tone variants), used by tools/safety/calibrate.mjs to build
 * policies/default.json and its table.
 *
 * Per concept, the anchors are its text phrases plus example images. The
 * image threshold is the lowest one keeping false positives at or under
 * `targetFp` on the calibration half of the negatives (emoji that are no
 * concept of the policy, split by position into halves); the false-positive
 * rate reported is on the other half. True positives are the images of the
 * concept: since each concept has one base emoji per set, "TP rate" means the
 * share of that concept's few images (base + skin tones, both sets) caught —
 * reported in-sample (every image may be an anchor) and held out (anchors
 * from Twemoji only, tested on Noto and on the Twemoji skin-tone variants).
 * Prompts are calibrated the same way: negatives are the names and short
 * names of all other emoji; positives are the concept's names plus
 * paraphrases inside the vocabulary.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { decodeImage } from '../image/decode.js';
import type { ImageTextEncoder, RgbImage } from '../models/encoders.js';

export interface ConceptSpec {
  id: string;
  /** Emoji short names whose images are this concept (base emoji and their skin tones). */
  emoji: string[];
  /** Text anchors. */
  text: string[];
  /** Prompts that should be caught beyond the emoji's own names (paraphrases). */
  paraphrases: string[];
  action?: 'block' | 'flag';
  why: string;
}

export interface EmojiImage {
  set: 'twemoji' | 'noto';
  shortName: string;
  /** Index of the base emoji in emoji.json (negatives are split by its parity). */
  index: number;
  variant: boolean;
  path: string;
  embedding?: Float32Array;
}

interface RawEmoji {
  name: string | null;
  short_name: string;
  short_names: string[];
  image: string;
  has_img_twitter?: boolean;
  has_img_google?: boolean;
  skin_variations?: Record<string, { image: string; has_img_twitter?: boolean; has_img_google?: boolean }>;
}

const SETS = {
  twemoji: { pkg: 'emoji-datasource-twitter', dir: 'img/twitter/64', flag: 'has_img_twitter' as const },
  noto: { pkg: 'emoji-datasource-google', dir: 'img/google/64', flag: 'has_img_google' as const },
};

export function emojiTable(): RawEmoji[] {
  const root = dirname(createRequire(import.meta.url).resolve('emoji-datasource-twitter/package.json'));
  return JSON.parse(readFileSync(join(root, 'emoji.json'), 'utf8')) as RawEmoji[];
}

/** Every image of a set, base emoji and skin-tone variants. */
export function emojiImages(set: 'twemoji' | 'noto'): EmojiImage[] {
  const info = SETS[set];
  const root = dirname(createRequire(import.meta.url).resolve(`${info.pkg}/package.json`));
  const table = JSON.parse(readFileSync(join(root, 'emoji.json'), 'utf8')) as RawEmoji[];
  const out: EmojiImage[] = [];
  table.forEach((e, index) => {
    if (e[info.flag]) out.push({ set, shortName: e.short_name, index, variant: false, path: join(root, info.dir, e.image) });
    for (const v of Object.values(e.skin_variations ?? {})) if (v[info.flag]) out.push({ set, shortName: e.short_name, index, variant: true, path: join(root, info.dir, v.image) });
  });
  return out;
}

export async function embedImages(encoder: ImageTextEncoder, images: EmojiImage[], batch = 256): Promise<void> {
  const size = encoder.imageSize ?? { width: 64, height: 64 };
  for (let i = 0; i < images.length; i += batch) {
    const part = images.slice(i, i + batch);
    const px: RgbImage[] = [];
    for (const im of part) {
      const d = await decodeImage(readFileSync(im.path), { width: size.width, height: size.height, fit: 'cover' });
      px.push({ rgb: d.rgb, width: d.width, height: d.height });
    }
    const em = await encoder.embedImages(px);
    part.forEach((im, j) => (im.embedding = em[j]));
  }
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export function maxCos(x: Float32Array, anchors: readonly Float32Array[]): number {
  let best = -Infinity;
  for (const a of anchors) best = Math.max(best, dot(x, a));
  return best;
}

/** Lowest threshold t (fires when s − t > 0) with FP ≤ target on `neg`; rounded up to 1e-3. */
export function thresholdFor(neg: number[], target: number): number {
  const sorted = [...neg].sort((a, b) => b - a);
  const allowed = Math.floor(target * sorted.length);
  const t = sorted[allowed] ?? -1; // the first score that must not fire
  return Math.ceil(t * 1000) / 1000;
}

export const rate = (scores: number[], t: number) => (scores.length === 0 ? NaN : scores.filter((s) => s > t).length / scores.length);

/** Words of `text` the tokenizer does not know (they become [UNK]). */
export function unknownWords(vocab: ReadonlySet<string>, text: string): string[] {
  const words = text.normalize('NFD').replace(/\p{Mn}/gu, '').toLowerCase().match(/\w+|[^\w\s]/gu) ?? [];
  return words.filter((w) => !vocab.has(w));
}

export function readVocabulary(tokenizerDir: string): Set<string> {
  const t = JSON.parse(readFileSync(join(tokenizerDir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  return new Set(Object.keys(t.model.vocab));
}

/** Prompts naming an emoji: its name and its short names with "_" → " ". */
export function emojiPrompts(e: RawEmoji): string[] {
  const s = new Set<string>();
  if (e.name) s.add(e.name.toLowerCase());
  for (const n of e.short_names) s.add(n.replace(/_/g, ' ').toLowerCase());
  return [...s];
}
