/**
 * Live references for one generation: every chosen source is searched, and
 * every candidate image fetched, in parallel, through the SSRF-checked fetcher
 * (per-host politeness limit shared by the process). Each image then takes the
 * store's own door — decode gate (size and pixel caps), blocklists, the
 * operator's screens, the store's encoder — so it can be ranked by the same
 * similarity as stored hits. A source that fails is skipped and reported,
 * unless the request marked it required. The budget (wall time, bytes, images)
 * bounds the whole stage; cancelling the request cancels its fetches.
 */
import { AbortError, RagdiffError } from '../errors.js';
import { fetchImage } from '../net/index.js';
import type { Candidate } from '../rag/references.js';
import type { ReferenceSource } from '../rag/types.js';
import { licenceAllowed, requiresAttribution } from './licence.js';
import type { SourceRegistry } from './registry.js';
import type { NormalizedLive } from './request.js';
import type { SourceCandidate } from './types.js';

/** What one source did for one request (`stats.retrieval.sources`). */
export interface SourceStats {
  source: string;
  /** Candidates asked for. */
  asked: number;
  /** Candidates the source answered with (after its own licence filter). */
  answered: number;
  /** Images fetched and decoded. */
  fetched: number;
  /** Refused: by licence, missing attribution, the gate or a screen (`reasons` says which). */
  screenedOut: number;
  /** Used in the generation (filled in by the pipeline). */
  used: number;
  ms: number;
  /** The error code when the source (or all its fetches) failed. */
  error?: string;
  /** Why candidates were left out (code or reason → count). */
  reasons?: Record<string, number>;
}

export interface LiveGathered {
  pinned: Candidate[];
  retrieved: Candidate[];
  stats: SourceStats[];
}

function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

const codeOf = (e: unknown): string => (e as { code?: string })?.code ?? 'FETCH_FAILED';

export async function gatherLive(
  live: NormalizedLive,
  queryText: string,
  queryVector: Float32Array,
  store: ReferenceSource,
  registry: SourceRegistry,
  licences: readonly string[] | undefined,
  outer?: AbortSignal,
): Promise<LiveGathered> {
  const ctx = registry.context;
  const deadline = Date.now() + live.budget.ms;
  const budgetSignal = AbortSignal.timeout(live.budget.ms);
  // Aborted when the stage fails (a bad URL reference, a required source): the other fetches stop too.
  const failed = new AbortController();
  const signal = AbortSignal.any([...(outer ? [outer] : []), budgetSignal, failed.signal]);
  let bytesLeft = live.budget.bytes;
  let imagesLeft = live.budget.images;
  const seen = new Set<string>();
  /** An abort caused by the budget's clock is a timeout, not the caller's cancel. */
  const overBudget = (e: unknown): unknown =>
    budgetSignal.aborted && !outer?.aborted && codeOf(e) === 'ABORTED' ? new RagdiffError('FETCH_TIMEOUT', `live sources ran past the budget of ${live.budget.ms} ms`, { cause: e }) : e;
  const cancelled = () => {
    if (outer?.aborted) throw new AbortError('generation aborted while fetching live references', { cause: outer.reason });
  };

  /** Fetches, gates, screens and embeds one candidate; throws with a code when it cannot be used. */
  const admit = async (c: SourceCandidate, pinned: boolean): Promise<Candidate> => {
    if (imagesLeft <= 0) throw new RagdiffError('OUT_OF_RANGE', 'budget: images');
    imagesLeft--;
    const url = c.thumbnailUrl ?? c.url;
    const got = await ctx.limiter.run(url, signal, () =>
      fetchImage(url, {
        allowHosts: ctx.allowHosts, userAgent: ctx.userAgent, signal, maxBytes: Math.max(1, Math.min(20 * 1024 * 1024, bytesLeft)),
        timeoutMs: Math.max(1, Math.min(ctx.timeoutMs, deadline - Date.now())), resolve: ctx.resolve, connect: ctx.connect,
      }),
    );
    bytesLeft -= got.bytes.length;
    if (bytesLeft < 0) throw new RagdiffError('FETCH_TOO_LARGE', 'budget: bytes');
    // The store's door: decode gate, blocklists and screens, then its encoder.
    const e = await store.embedReference(got.bytes, { purpose: 'reference' });
    // Remote text is clipped before it reaches the result and the PNG's provenance chunk.
    const clip = (s: string, n: number) => s.slice(0, n);
    return {
      kind: 'upload', sha256: e.sha256, score: dot(queryVector, e.embedding), pinned, source: c.source, licence: c.licence, attribution: clip(c.attribution, 1000),
      name: clip(c.title || url, 500), tags: [], phash: e.phash, embedding: e.embedding, bytes: () => got.bytes,
      origin: {
        url: clip(c.url, 4096), ...(c.landingUrl ? { landingUrl: clip(c.landingUrl, 4096) } : {}), creator: clip(c.creator, 500),
        ...(c.licenceUrl ? { licenceUrl: clip(c.licenceUrl, 4096) } : {}),
      },
    };
  };

  const note = (st: SourceStats, reason: string) => {
    st.screenedOut++;
    st.reasons = { ...st.reasons, [reason]: (st.reasons?.[reason] ?? 0) + 1 };
  };

  // Plain URLs: the user chose them, so a failure is an error, not a skip.
  const urlStats: SourceStats = { source: 'url', asked: live.urls.length, answered: live.urls.length, fetched: 0, screenedOut: 0, used: 0, ms: 0 };
  const t0 = performance.now();
  const pinnedP = Promise.all(live.urls.map(async (c) => {
    const cand = await admit(c, true).catch((e) => {
      cancelled();
      throw overBudget(e);
    });
    urlStats.fetched++;
    return cand;
  }));

  const searches = live.online.map(async (o): Promise<{ st: SourceStats; kept: Candidate[] }> => {
    const st: SourceStats = { source: o.source, asked: o.k, answered: 0, fetched: 0, screenedOut: 0, used: 0, ms: 0 };
    const t = performance.now();
    const kept: Candidate[] = [];
    try {
      const found = await registry.get(o.source).search(queryText, { k: o.k, licences, signal });
      st.answered = found.length;
      const usable: SourceCandidate[] = [];
      for (const c of found) {
        // The request's licence filter applies to every source; unknown licences are never used unasked.
        if (!licenceAllowed(c.licence, licences) || (c.licence === 'unknown' && !licences?.includes('unknown'))) note(st, 'licence');
        else if (requiresAttribution(c.licence) && !c.creator.trim()) note(st, 'no-attribution');
        else usable.push(c);
      }
      const results = await Promise.allSettled(usable.map((c) => admit(c, false)));
      let failures = 0;
      for (const r of results) {
        if (r.status === 'fulfilled') {
          st.fetched++;
          kept.push(r.value);
        } else {
          const code = codeOf(overBudget(r.reason));
          if (code === 'IMAGE_BLOCKED') {
            st.fetched++;
            note(st, code);
          } else {
            failures++;
            note(st, code);
          }
        }
      }
      cancelled();
      const firstFailure = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (usable.length > 0 && failures === usable.length && firstFailure) st.error = codeOf(firstFailure.reason);
    } catch (e) {
      cancelled();
      st.error = codeOf(overBudget(e));
      if (o.required) throw new RagdiffError('SOURCE_FAILED', `the required source ${o.source} failed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
    } finally {
      st.ms = performance.now() - t;
    }
    if (o.required && st.error) throw new RagdiffError('SOURCE_FAILED', `the required source ${o.source} gave no usable image (${st.error})`);
    return { st, kept };
  });

  let pinned: Candidate[];
  let answers: { st: SourceStats; kept: Candidate[] }[];
  try {
    [pinned, answers] = await Promise.all([pinnedP, Promise.all(searches)]);
  } catch (e) {
    failed.abort();
    throw e;
  }
  urlStats.ms = performance.now() - t0;
  // The same image found twice (across sources, or as a URL too) is used once: the first place wins.
  for (const p of pinned) seen.add(p.sha256);
  const retrieved: Candidate[] = [];
  for (const { st, kept } of answers) {
    for (const c of kept) {
      if (seen.has(c.sha256)) {
        note(st, 'duplicate');
        continue;
      }
      seen.add(c.sha256);
      retrieved.push(c);
    }
  }
  return { pinned, retrieved, stats: [...(live.urls.length ? [urlStats] : []), ...answers.map((a) => a.st)] };
}

/** Store hits and live candidates ranked together by the same similarity; an image the store holds is used from the store. */
export function rankTogether(storeHits: Candidate[], live: LiveGathered): Candidate[] {
  const inStore = new Set(storeHits.map((h) => h.sha256));
  const fresh = live.retrieved.filter((c) => {
    if (!inStore.has(c.sha256)) return true;
    const st = live.stats.find((s) => s.source === c.source);
    if (st) {
      st.screenedOut++;
      st.reasons = { ...st.reasons, duplicate: (st.reasons?.duplicate ?? 0) + 1 };
    }
    return false;
  });
  return [...storeHits, ...fresh].sort((a, b) => b.score - a.score);
}

/** Counts, per source, the references the generation used. */
export function countUsed(stats: SourceStats[], used: readonly { source: string; kind: string; pinned: boolean; url?: string }[]): void {
  for (const st of stats) st.used = used.filter((u) => u.source === st.source && u.url !== undefined).length;
}
