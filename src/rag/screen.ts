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
      v = await screen({ kind: c.kind, id: c.id, sha256: c.sha256, source: c.source, licence: c.licence, tags: c.tags, pinned: c.pinned, embedding: c.embedding });
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
