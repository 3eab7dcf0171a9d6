/**
 * The emoji records and the base-name list that recognition ranks against, built exactly as
 * tools/tiny_emoji/prep_data.py builds them: emoji.json of emoji-datasource-twitter sorted by
 * sort_order, one base record per emoji (then its skin-tone variants), name = lower-cased `name`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { RagdiffError } from '../errors.js';

export interface EmojiRecord {
  /** Index of the base emoji (0-based, in sort order); variants share their base's index. */
  base: number;
  unified: string;
  /** PNG file name inside img/<set>/64/. */
  image: string;
  name: string;
  category: string;
  subcategory: string;
  /** Skin-tone key (e.g. '1F3FB') for a variant, null for the base image. */
  variant: string | null;
}

interface RawEmoji {
  name?: unknown; unified?: unknown; image?: unknown; category?: unknown; subcategory?: unknown; sort_order?: unknown;
  skin_variations?: Record<string, { unified?: unknown; image?: unknown }>;
}

/** Path of emoji.json in the installed emoji-datasource-twitter package. */
export function defaultEmojiJson(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve('emoji-datasource-twitter/package.json')), 'emoji.json');
}

/** Every image record (3,786 for emoji-datasource-twitter 16), in the training data's order. */
export function loadEmojiRecords(emojiJsonPath: string = defaultEmojiJson()): EmojiRecord[] {
  if (!existsSync(emojiJsonPath)) throw new RagdiffError('EVAL_DATA_MISSING', `emoji.json not found: ${emojiJsonPath}`);
  let raw: RawEmoji[];
  try {
    raw = JSON.parse(readFileSync(emojiJsonPath, 'utf8')) as RawEmoji[];
    if (!Array.isArray(raw)) throw new Error('not an array');
  } catch (e) {
    throw new RagdiffError('EVAL_DATA_INVALID', `emoji.json is not valid: ${emojiJsonPath}: ${(e as Error).message}`, { cause: e });
  }
  // Python's sort is stable, and so is Array.prototype.sort.
  const sorted = raw.slice().sort((a, b) => Number(a.sort_order) - Number(b.sort_order));
  const out: EmojiRecord[] = [];
  sorted.forEach((e, b) => {
    if (typeof e.name !== 'string' || typeof e.image !== 'string' || typeof e.unified !== 'string') {
      throw new RagdiffError('EVAL_DATA_INVALID', `emoji.json entry ${b} lacks name/image/unified`);
    }
    const base = { base: b, name: e.name.toLowerCase(), category: String(e.category), subcategory: String(e.subcategory) };
    out.push({ ...base, unified: e.unified, image: e.image, variant: null });
    // Python iterates sorted(skin_variations.items()): keys in code-point order.
    for (const key of Object.keys(e.skin_variations ?? {}).sort()) {
      const v = e.skin_variations![key]!;
      out.push({ ...base, unified: String(v.unified), image: String(v.image), variant: key });
    }
  });
  return out;
}

/** The 1,911 base names recognition ranks against (index = base emoji index). */
export function baseEmojiNames(records: readonly EmojiRecord[]): string[] {
  return records.filter((r) => r.variant === null).map((r) => r.name);
}
