/**
 * Rule evaluation against a compiled policy. Every rule yields a hit with an
 * SD-checker-style score (> 0 fires):
 *   concept  max cos(embedding, anchor) − threshold (promptThreshold for prompts). At the
 *            image doors the example images' flips, turns and on-black composites (load.ts)
 *            count too, against their own variantThreshold; with `prompt.anchors: "text"`
 *            prompts meet the text phrases only. With benign anchors, a concept that clears
 *            its threshold must also beat the closest benign anchor by the policy's margin:
 *            the score is then min(cos − threshold, cos − benign − margin). At the output
 *            door the image thresholds are raised by the concept's outputOffset.
 *   hash     (maxDistance + 1 − Hamming distance) / 64
 *   source / licence   1
 * A decision blocks when any blocking rule fires (the first of hash, source,
 * licence, concept by score), flags when only flagging rules fire.
 */
import { RagdiffError } from '../errors.js';
import { hashDistance } from '../store/phash.js';
import type { SafetyPolicy } from './load.js';
import { sourceMatches, type SafetyAction, type SafetyDoor } from './policy.js';

export interface RuleHit {
  /** `concept:<id>`, `hash:<id>`, `source:deny`, `source:allow`, `licence:allow` or `poisoning:<source>`. */
  rule: string;
  score: number;
  action: SafetyAction;
}

export interface SafetyDecision {
  action: 'allow' | 'block' | 'flag';
  /** The deciding rule (for allow: the closest concept, when any was scored). */
  rule?: string;
  score?: number;
  /** Every rule that fired. */
  hits: RuleHit[];
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** The largest dot product of `x` with the rows of `packed` (rows of x.length values). */
function maxDot(packed: Float32Array, x: Float32Array): number {
  const dim = x.length;
  let best = -Infinity;
  for (let o = 0; o < packed.length; o += dim) {
    // Four partial sums: independent additions pipeline better than one chain.
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    let i = 0;
    for (; i + 3 < dim; i += 4) {
      s0 += packed[o + i]! * x[i]!;
      s1 += packed[o + i + 1]! * x[i + 1]!;
      s2 += packed[o + i + 2]! * x[i + 2]!;
      s3 += packed[o + i + 3]! * x[i + 3]!;
    }
    for (; i < dim; i++) s0 += packed[o + i]! * x[i]!;
    const s = s0 + s1 + s2 + s3;
    if (s > best) best = s;
  }
  return best;
}

/** Concept scores of an L2-normalised embedding at a door: the hits, and the closest concept even when none fired. */
export function conceptHits(policy: SafetyPolicy, embedding: Float32Array, door: SafetyDoor, window = false): { hits: RuleHit[]; closest?: { rule: string; score: number } } {
  if (policy.concepts.length > 0 && embedding.length !== policy.dim) {
    throw new RagdiffError('POLICY_MISMATCH', `the embedding has ${embedding.length} values but the policy's concepts were embedded at ${policy.dim} (another encoder)`);
  }
  const hits: RuleHit[] = [];
  let closest: { rule: string; score: number } | undefined;
  const prompt = door === 'prompt';
  const textOnly = prompt && policy.doc.prompt.anchors === 'text';
  const benign = prompt ? policy.benign?.text : policy.benign?.images;
  let benignBest: number | undefined; // computed only when a concept clears its threshold
  for (const c of policy.concepts) {
    if (!c.doors.includes(door)) continue;
    const n = textOnly ? c.text.length : c.anchors.length;
    if (n === 0) continue;
    let best = -Infinity;
    for (let j = 0; j < n; j++) {
      const s = dot(c.anchors[j]!, embedding);
      if (s > best) best = s;
    }
    const raise = door === 'output' ? c.outputOffset : 0;
    let score = best - (!prompt ? c.threshold + raise : window ? c.windowThreshold : c.promptThreshold);
    if (!prompt && c.variants.length > 0) {
      const v = maxDot(c.variants, embedding);
      if (v - c.variantThreshold - raise > score) {
        score = v - c.variantThreshold - raise;
        best = v;
      }
    }
    if (score > 0 && benign && benign.length > 0) {
      benignBest ??= maxDot(benign, embedding) + policy.benign.margin;
      score = Math.min(score, best - benignBest);
    }
    const rule = `concept:${c.id}`;
    if (!closest || score > closest.score) closest = { rule, score };
    if (score > 0) hits.push({ rule, score, action: c.action });
  }
  hits.sort((a, b) => b.score - a.score);
  return { hits, closest };
}

/** The runs of 1..n words of a prompt (within the first `maxWords` words), for the windowed prompt check. */
export function promptWindows(prompt: string, n: number, maxWords = 32): string[] {
  const words = (prompt.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).slice(0, maxWords);
  const out = new Set<string>();
  for (let len = 1; len <= n; len++) for (let i = 0; i + len <= words.length; i++) out.add(words.slice(i, i + len).join(' '));
  return [...out];
}

/** Source deny/allow and licence allow rules (stored content). */
export function metaHits(policy: SafetyPolicy, meta: { source?: string; licence?: string }): RuleHit[] {
  const hits: RuleHit[] = [];
  const { sources, licences } = policy.doc;
  const source = meta.source ?? '';
  if (sources.deny.some((p) => sourceMatches(p, source))) hits.push({ rule: 'source:deny', score: 1, action: sources.action });
  else if (sources.allow && !sources.allow.some((p) => sourceMatches(p, source))) hits.push({ rule: 'source:allow', score: 1, action: sources.action });
  if (licences.allow && !licences.allow.includes(meta.licence ?? '')) hits.push({ rule: 'licence:allow', score: 1, action: licences.action });
  return hits;
}

/**
 * Perceptual-hash blocklist hits (the closest entry). `phash` is one hash or
 * the hashes of the image's eight orientations (then the closest of them counts).
 */
export function hashHits(policy: SafetyPolicy, phash: string | readonly string[] | undefined): RuleHit[] {
  const list = typeof phash === 'string' ? [phash] : (phash ?? []);
  if (list.length === 0 || policy.doc.hashes.length === 0) return [];
  let best: RuleHit | undefined;
  for (const h of policy.doc.hashes) {
    let d = Infinity;
    for (const x of list) d = Math.min(d, hashDistance(h.phash, x));
    if (d > h.maxDistance) continue;
    const score = (h.maxDistance + 1 - d) / 64;
    if (!best || score > best.score) best = { rule: `hash:${h.id}`, score, action: h.action };
  }
  return best ? [best] : [];
}

/** Combines hits (in priority order) into one decision. */
export function decide(hits: RuleHit[], closest?: { rule: string; score: number }): SafetyDecision {
  const block = hits.find((h) => h.action === 'block');
  if (block) return { action: 'block', rule: block.rule, score: block.score, hits };
  if (hits.length > 0) return { action: 'flag', rule: hits[0]!.rule, score: hits[0]!.score, hits };
  return { action: 'allow', ...(closest ? { rule: closest.rule, score: closest.score } : {}), hits };
}

/** The reason string recorded with a blocked image (the store keeps it). */
export function reasonOf(d: SafetyDecision, policy: SafetyPolicy): string {
  return `safety policy ${policy.version} (${policy.hash.slice(0, 12)}): rule ${d.rule} score ${d.score?.toFixed(4)}`;
}
