/**
 * The safety policy document: what an operator writes in JSON, validated
 * field by field. A malformed document is a `POLICY_INVALID` error whose
 * `field` names the offending path (e.g. `concepts[2].threshold`); nothing is
 * half-applied. Compiling (embedding the concepts) lives in compile.ts.
 *
 *   {
 *     "version": "2026-11-29.1",
 *     "encoder": "<encoder id the thresholds were calibrated with>",   (optional)
 *     "concepts": [{ "id": "pistol", "text": ["pistol"], "images": ["anchors/pistol.png"],
 *                    "threshold": 0.55, "promptThreshold": 0.7, "action": "block",
 *                    "doors": ["ingest", "retrieval", "upload", "prompt", "output"] }],
 *     "hashes":   [{ "id": "known-bad-1", "phash": "f0e1d2c3b4a59687", "maxDistance": 6, "action": "block" }],
 *     "sources":  { "deny": ["evil.example/*"], "allow": ["twemoji", "noto"], "action": "block" },
 *     "licences": { "allow": ["CC-BY-4.0", "Apache-2.0"], "action": "block" },
 *     "poisoning": { "clusterCos": 0.97, "nearConcept": 0.1, "maxCluster": 5, "action": "flag" },
 *     "retrieval": { "maxPerSource": 2 },
 *     "benign":   { "text": ["red apple", "red heart"], "images": [], "margin": 0 }
 *   }
 *
 * Scores are SD-checker style: score = cos − threshold, and a rule fires when
 * score > 0. Source and licence rules apply to stored content (ingest and
 * retrieval); per-request uploads are the user's own and carry no licence.
 */
import { RagdiffError } from '../errors.js';

export type SafetyAction = 'block' | 'flag';
export type SafetyDoor = 'ingest' | 'retrieval' | 'upload' | 'prompt' | 'output';
export const SAFETY_DOORS: readonly SafetyDoor[] = ['ingest', 'retrieval', 'upload', 'prompt', 'output'];

export interface ConceptRule {
  id: string;
  /** Phrases embedded with the text encoder. */
  text: string[];
  /** Example images (paths relative to the policy file, or `npm:<package>/<path>`), embedded with the image encoder. */
  images: string[];
  /** Threshold on images: fires when max cos(image, anchor) − threshold > 0. */
  threshold: number;
  /**
   * Threshold for the example images' other views — flipped, turned, on black (default:
   * threshold). Turned pictures sit in a crowded part of the embedding space, so they get their
   * own, stricter threshold instead of raising the upright one.
   */
  variantThreshold: number;
  /**
   * Raised by this much at the output door (default 0): generated images are blurrier than the
   * drawings the thresholds were set on, and a red blob is nearer a drop of blood than any apple.
   */
  outputOffset: number;
  /** Threshold on prompts (default: threshold). */
  promptThreshold: number;
  /** Threshold on the short word windows of a prompt when `prompt.windows` is on (default: promptThreshold). */
  windowThreshold: number;
  action: SafetyAction;
  doors: SafetyDoor[];
}

export interface HashRule {
  id: string;
  /** 64-bit perceptual hash as 16 hex digits (src/store/phash.ts). */
  phash: string;
  /** Largest Hamming distance that still matches. Default 6 (the store's near-duplicate distance). */
  maxDistance: number;
  action: SafetyAction;
}

export interface PolicyDocument {
  version: string;
  name?: string;
  encoder?: string;
  concepts: ConceptRule[];
  hashes: HashRule[];
  sources: { allow?: string[]; deny: string[]; action: SafetyAction };
  licences: { allow?: string[]; action: SafetyAction };
  poisoning?: { clusterCos: number; nearConcept: number; maxCluster: number; action: SafetyAction };
  retrieval: { maxPerSource?: number };
  /** Prompt door: also score every run of 1..windows words (against dilution: "a cat with a pistol"). 0: the whole prompt only. */
  prompt: {
    windows: number;
    /**
     * Which concept anchors a prompt is compared with: 'all' (text and images) or 'text' (text
     * phrases only: text-to-image similarity in a small CLIP is mostly colour, so "red apple" or
     * "lime" would match a red drop or a green water pistol). Default 'all'.
     */
    anchors: 'all' | 'text';
  };
  /**
   * Benign anchors: everyday things that sit near a concept ("red apple" near blood). A concept
   * fires only when its best anchor is also closer than the best benign anchor by more than
   * `margin`. Text anchors apply at the prompt door, images at the image doors.
   */
  benign?: { text: string[]; images: string[]; margin: number };
}

/** A policy that fails validation; `field` is the JSON path of the first problem. */
export class PolicyError extends RagdiffError {
  constructor(readonly field: string, message: string, options?: { cause?: unknown }) {
    super('POLICY_INVALID', `policy ${field}: ${message}`, options);
    this.name = 'PolicyError';
  }
}

const TOP = new Set(['$schema', 'schema', 'version', 'name', 'description', 'encoder', 'concepts', 'hashes', 'sources', 'licences', 'poisoning', 'retrieval', 'prompt', 'benign', 'calibration']);

function obj(field: string, v: unknown): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new PolicyError(field, `must be an object, got ${v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v}`);
  return v as Record<string, unknown>;
}

function known(field: string, o: Record<string, unknown>, keys: string[]): void {
  for (const k of Object.keys(o)) if (!keys.includes(k)) throw new PolicyError(`${field}.${k}`, `unknown field (known: ${keys.join(', ')})`);
}

function str(field: string, v: unknown, max = 1000): string {
  if (typeof v !== 'string') throw new PolicyError(field, `must be a string, got ${typeof v}`);
  if (v.trim() === '') throw new PolicyError(field, 'must not be empty');
  if (v.length > max) throw new PolicyError(field, `must be at most ${max} characters`);
  return v;
}

function strList(field: string, v: unknown, max = 10_000): string[] {
  if (!Array.isArray(v)) throw new PolicyError(field, 'must be an array of strings');
  if (v.length > max) throw new PolicyError(field, `must have at most ${max} entries`);
  return v.map((s, i) => str(`${field}[${i}]`, s));
}

function num(field: string, v: unknown, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new PolicyError(field, `must be a finite number, got ${JSON.stringify(v)}`);
  if (v < min || v > max) throw new PolicyError(field, `must be in [${min}, ${max}], got ${v}`);
  return v;
}

function int(field: string, v: unknown, min: number, max: number): number {
  const n = num(field, v, min, max);
  if (!Number.isInteger(n)) throw new PolicyError(field, `must be an integer, got ${n}`);
  return n;
}

function action(field: string, v: unknown, fallback: SafetyAction = 'block'): SafetyAction {
  if (v === undefined) return fallback;
  if (v !== 'block' && v !== 'flag') throw new PolicyError(field, `must be "block" or "flag", got ${JSON.stringify(v)}`);
  return v;
}

/** Validates a parsed policy document; throws {@link PolicyError} naming the first bad field. */
export function validatePolicy(input: unknown): PolicyDocument {
  const o = obj('(document)', input);
  for (const k of Object.keys(o)) if (!TOP.has(k)) throw new PolicyError(k, `unknown field (known: ${[...TOP].join(', ')})`);
  const version = str('version', o.version, 200);
  const doc: PolicyDocument = {
    version,
    concepts: [],
    hashes: [],
    sources: { deny: [], action: 'block' },
    licences: { action: 'block' },
    retrieval: {},
    prompt: { windows: 0, anchors: 'all' },
  };
  if (o.name !== undefined) doc.name = str('name', o.name, 200);
  if (o.encoder !== undefined) doc.encoder = str('encoder', o.encoder, 500);

  if (o.concepts !== undefined) {
    if (!Array.isArray(o.concepts)) throw new PolicyError('concepts', 'must be an array');
    if (o.concepts.length > 1000) throw new PolicyError('concepts', 'must have at most 1000 concepts');
    const ids = new Set<string>();
    o.concepts.forEach((raw, i) => {
      const f = `concepts[${i}]`;
      const c = obj(f, raw);
      known(f, c, ['id', 'text', 'images', 'threshold', 'variantThreshold', 'outputOffset', 'promptThreshold', 'windowThreshold', 'action', 'doors', 'note']);
      const id = str(`${f}.id`, c.id, 100);
      if (ids.has(id)) throw new PolicyError(`${f}.id`, `duplicate concept id ${JSON.stringify(id)}`);
      ids.add(id);
      const text = c.text === undefined ? [] : strList(`${f}.text`, c.text, 100);
      const images = c.images === undefined ? [] : strList(`${f}.images`, c.images, 100);
      if (text.length + images.length === 0) throw new PolicyError(f, 'needs at least one text phrase or example image');
      const threshold = num(`${f}.threshold`, c.threshold, -1, 1);
      const outputOffset = c.outputOffset === undefined ? 0 : num(`${f}.outputOffset`, c.outputOffset, 0, 2);
      const variantThreshold = c.variantThreshold === undefined ? threshold : num(`${f}.variantThreshold`, c.variantThreshold, -1, 1);
      const promptThreshold = c.promptThreshold === undefined ? threshold : num(`${f}.promptThreshold`, c.promptThreshold, -1, 1);
      const windowThreshold = c.windowThreshold === undefined ? promptThreshold : num(`${f}.windowThreshold`, c.windowThreshold, -1, 1);
      let doors = [...SAFETY_DOORS];
      if (c.doors !== undefined) {
        doors = strList(`${f}.doors`, c.doors, 5) as SafetyDoor[];
        doors.forEach((d, j) => {
          if (!SAFETY_DOORS.includes(d)) throw new PolicyError(`${f}.doors[${j}]`, `must be one of ${SAFETY_DOORS.join(', ')}, got ${JSON.stringify(d)}`);
        });
      }
      doc.concepts.push({ id, text, images, threshold, variantThreshold, outputOffset, promptThreshold, windowThreshold, action: action(`${f}.action`, c.action), doors });
    });
  }

  if (o.hashes !== undefined) {
    if (!Array.isArray(o.hashes)) throw new PolicyError('hashes', 'must be an array');
    if (o.hashes.length > 1_000_000) throw new PolicyError('hashes', 'must have at most 1000000 entries');
    o.hashes.forEach((raw, i) => {
      const f = `hashes[${i}]`;
      const h = typeof raw === 'string' ? { phash: raw } : obj(f, raw);
      known(f, h, ['id', 'phash', 'maxDistance', 'action', 'note']);
      const phash = str(`${f}.phash`, h.phash, 16).toLowerCase();
      if (!/^[0-9a-f]{16}$/.test(phash)) throw new PolicyError(`${f}.phash`, 'must be 16 hex digits (a 64-bit perceptual hash)');
      doc.hashes.push({
        id: h.id === undefined ? phash : str(`${f}.id`, h.id, 100),
        phash,
        maxDistance: h.maxDistance === undefined ? 6 : int(`${f}.maxDistance`, h.maxDistance, 0, 64),
        action: action(`${f}.action`, h.action),
      });
    });
  }

  if (o.sources !== undefined) {
    const s = obj('sources', o.sources);
    known('sources', s, ['allow', 'deny', 'action']);
    if (s.allow !== undefined) doc.sources.allow = strList('sources.allow', s.allow);
    if (s.deny !== undefined) doc.sources.deny = strList('sources.deny', s.deny);
    doc.sources.action = action('sources.action', s.action);
  }
  if (o.licences !== undefined) {
    const l = obj('licences', o.licences);
    known('licences', l, ['allow', 'action']);
    if (l.allow !== undefined) doc.licences.allow = strList('licences.allow', l.allow);
    doc.licences.action = action('licences.action', l.action);
  }
  if (o.poisoning !== undefined) {
    const p = obj('poisoning', o.poisoning);
    known('poisoning', p, ['clusterCos', 'nearConcept', 'maxCluster', 'action']);
    doc.poisoning = {
      clusterCos: p.clusterCos === undefined ? 0.97 : num('poisoning.clusterCos', p.clusterCos, 0, 1),
      nearConcept: p.nearConcept === undefined ? 0.1 : num('poisoning.nearConcept', p.nearConcept, 0, 2),
      maxCluster: p.maxCluster === undefined ? 5 : int('poisoning.maxCluster', p.maxCluster, 2, 1_000_000),
      action: action('poisoning.action', p.action, 'flag'),
    };
  }
  if (o.prompt !== undefined) {
    const pr = obj('prompt', o.prompt);
    known('prompt', pr, ['windows', 'anchors']);
    if (pr.windows !== undefined) doc.prompt.windows = int('prompt.windows', pr.windows, 0, 8);
    if (pr.anchors !== undefined) {
      if (pr.anchors !== 'all' && pr.anchors !== 'text') throw new PolicyError('prompt.anchors', `must be "all" or "text", got ${JSON.stringify(pr.anchors)}`);
      doc.prompt.anchors = pr.anchors;
    }
  }
  if (o.benign !== undefined) {
    const b = obj('benign', o.benign);
    known('benign', b, ['text', 'images', 'margin', 'note']);
    doc.benign = {
      text: b.text === undefined ? [] : strList('benign.text', b.text, 10_000),
      images: b.images === undefined ? [] : strList('benign.images', b.images, 10_000),
      margin: b.margin === undefined ? 0 : num('benign.margin', b.margin, -2, 2),
    };
  }
  if (o.retrieval !== undefined) {
    const r = obj('retrieval', o.retrieval);
    known('retrieval', r, ['maxPerSource']);
    if (r.maxPerSource !== undefined) doc.retrieval.maxPerSource = int('retrieval.maxPerSource', r.maxPerSource, 1, 10_000);
  }
  return doc;
}

/** Matches a source against a pattern: exact, or a prefix when the pattern ends with `*`. */
export function sourceMatches(pattern: string, source: string): boolean {
  return pattern.endsWith('*') ? source.startsWith(pattern.slice(0, -1)) : source === pattern;
}

/** JSON with sorted keys: the same document always hashes the same. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).filter((k) => o[k] !== undefined).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}
