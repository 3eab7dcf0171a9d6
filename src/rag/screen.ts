/**
 * The screening seam between retrieval and generation: every reference —
 * retrieved, pinned or uploaded — passes the screen before its pixels or its
 * embedding reach a model. The safety module plugs its policy in here; without
 * one, everything the store returns passes (the store never returns blocked or
 * removed images, and pinned ids in those states are refused earlier).
 */
import { RagdiffError } from '../errors.js';
import type { Candidate } from './references.js';

export type ReferenceVerdict = { allow: true } | { allow: false; reason: string };

/** What a screen sees of a reference (the embedding is the one retrieval computed: screening reuses it). */
export interface ScreenedReference {
  kind: 'stored' | 'upload';
  id?: string;
  sha256: string;
  source: string;
  licence: string;
  tags: readonly string[];
  pinned: boolean;
  embedding: Float32Array;
  /** The 64-bit perceptual hash (16 hex digits), when known. */
  phash?: string;
  /** Uploads: the hashes of the picture's eight orientations (identity first), for blocklists. */
  orientedHashes?: readonly string[];
}

/** What the prompt and output screens decide: a refusal names the rule and its score (> 0). */
export type SafetyVerdict = { allow: true; flagged?: { rule: string; score: number }[] } | { allow: false; rule: string; score: number; reason: string };

/** Checks the prompt before any retrieval or generation (refused: PROMPT_BLOCKED). */
export type PromptScreen = (prompt: string) => SafetyVerdict | Promise<SafetyVerdict>;

/** Checks each generated image; a refused image is not returned (result.blocked says why). */
export type OutputScreen = (png: Buffer, info: { seed: number; index: number }) => SafetyVerdict | Promise<SafetyVerdict>;

/** The safety policy in force, recorded in every output's provenance. */
export interface PolicyStamp {
  version: string;
  hash: string;
}

export type ReferenceScreen = (ref: ScreenedReference) => ReferenceVerdict | Promise<ReferenceVerdict>;

/**
 * Applies the screen: refused retrieved references are dropped and reported;
 * a refused pinned reference or upload is an error (the user asked for it).
 * A screen that throws refuses.
 */
export async function screenReferences(screen: ReferenceScreen | undefined, list: Candidate[]): Promise<{ kept: Candidate[]; refused: { ref: string; reason: string }[] }> {
  if (!screen) return { kept: list, refused: [] };
  const kept: Candidate[] = [];
  const refused: { ref: string; reason: string }[] = [];
  for (const c of list) {
    let v: ReferenceVerdict;
    try {
      v = await screen({ kind: c.kind, id: c.id, sha256: c.sha256, source: c.source, licence: c.licence, tags: c.tags, pinned: c.pinned, embedding: c.embedding, ...(c.phash ? { phash: c.phash } : {}), ...(c.orientedHashes ? { orientedHashes: c.orientedHashes } : {}) });
    } catch (e) {
      v = { allow: false, reason: `the screen failed: ${(e as Error)?.message ?? String(e)}` };
    }
    if (v.allow) {
      kept.push(c);
      continue;
    }
    const ref = c.id ?? `upload:${c.sha256.slice(0, 16)}`;
    if (c.pinned) throw new RagdiffError('REFERENCE_BLOCKED', `reference ${ref} was refused by the screen: ${v.reason}`);
    refused.push({ ref, reason: v.reason });
  }
  return { kept, refused };
}

/** At most `max` references per source: pinned ones always stay (and count), retrieved ones past the cap are dropped. */
export function capPerSource(pinned: readonly Candidate[], retrieved: Candidate[], max: number | undefined): { kept: Candidate[]; refused: { ref: string; reason: string }[] } {
  if (max === undefined) return { kept: retrieved, refused: [] };
  const count = new Map<string, number>();
  for (const p of pinned) count.set(p.source, (count.get(p.source) ?? 0) + 1);
  const kept: Candidate[] = [];
  const refused: { ref: string; reason: string }[] = [];
  for (const c of retrieved) {
    const n = count.get(c.source) ?? 0;
    if (n >= max) {
      refused.push({ ref: c.id ?? `upload:${c.sha256.slice(0, 16)}`, reason: `source cap: at most ${max} references from source ${JSON.stringify(c.source)}` });
      continue;
    }
    count.set(c.source, n + 1);
    kept.push(c);
  }
  return { kept, refused };
}
