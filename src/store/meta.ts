/**
 * Provenance metadata supplied with images, validated before anything is
 * read or written: a bad field fails the whole call and leaves the store as it was.
 */
import { rangeError, typeError } from '../errors.js';

export interface ImageMeta {
  /** Where the image comes from (a collection, a user, a site). Filterable. */
  source?: string;
  /** Licence identifier, e.g. "CC-BY-4.0". Filterable. */
  licence?: string;
  /** Credit line to show with outputs that used the image. */
  attribution?: string;
  /** A caption or title. */
  name?: string;
  /** Free labels. Filterable. */
  tags?: readonly string[];
}

export interface NormalisedMeta {
  source: string;
  licence: string;
  attribution: string;
  name: string;
  tags: string[];
}

const LIMITS = { source: 200, licence: 100, attribution: 1000, name: 500 } as const;
export const MAX_TAGS = 64;
export const MAX_TAG_LENGTH = 100;
const KNOWN = new Set(['source', 'licence', 'attribution', 'name', 'tags']);

function text(where: string, key: keyof typeof LIMITS, v: unknown): string {
  if (v === undefined) return '';
  if (typeof v !== 'string') throw typeError('INVALID_TYPE', `${where}.${key} must be a string, got ${v === null ? 'null' : typeof v}`);
  if (v.length > LIMITS[key]) throw rangeError('OUT_OF_RANGE', `${where}.${key} must be at most ${LIMITS[key]} characters, got ${v.length}`);
  if (/[\u0000-\u001f\u007f]/.test(v)) throw rangeError('INVALID_VALUE', `${where}.${key} must not contain control characters`);
  return v.trim();
}

export function normaliseTags(where: string, v: unknown): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw typeError('INVALID_TYPE', `${where} must be an array of strings, got ${v === null ? 'null' : typeof v}`);
  if (v.length > MAX_TAGS) throw rangeError('OUT_OF_RANGE', `${where} may hold at most ${MAX_TAGS} tags, got ${v.length}`);
  const out: string[] = [];
  v.forEach((t, i) => {
    if (typeof t !== 'string') throw typeError('INVALID_TYPE', `${where}[${i}] must be a string, got ${t === null ? 'null' : typeof t}`);
    const s = t.trim();
    if (s.length === 0 || s.length > MAX_TAG_LENGTH) throw rangeError('OUT_OF_RANGE', `${where}[${i}] must be 1..${MAX_TAG_LENGTH} characters`);
    if (/[\u0000-\u001f\u007f]/.test(s)) throw rangeError('INVALID_VALUE', `${where}[${i}] must not contain control characters`);
    if (!out.includes(s)) out.push(s);
  });
  return out;
}

/** Checks and normalises metadata; `where` names the argument in messages. */
export function normaliseMeta(v: unknown, where = 'meta'): NormalisedMeta {
  if (v === undefined) return { source: '', licence: '', attribution: '', name: '', tags: [] };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw typeError('INVALID_TYPE', `${where} must be an object, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!KNOWN.has(k)) {
      const hint = k === 'license' ? ' (spelled "licence")' : '';
      throw rangeError('UNKNOWN_OPTION', `${where}.${k} is not a metadata field${hint}; known: ${[...KNOWN].join(', ')}`);
    }
  }
  return {
    source: text(where, 'source', o.source),
    licence: text(where, 'licence', o.licence),
    attribution: text(where, 'attribution', o.attribution),
    name: text(where, 'name', o.name),
    tags: normaliseTags(`${where}.tags`, o.tags),
  };
}

/** Per-item metadata overrides the call's: fields given per item win, tags are merged. */
export function mergeMeta(base: NormalisedMeta, item: NormalisedMeta | undefined): NormalisedMeta {
  if (!item) return base;
  return {
    source: item.source || base.source,
    licence: item.licence || base.licence,
    attribution: item.attribution || base.attribution,
    name: item.name || base.name,
    tags: [...new Set([...base.tags, ...item.tags])],
  };
}
