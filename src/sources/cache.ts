/**
 * Opt-in caching of live references (`retrieval.cache`): the references a
 * generation used are written into a store with their provenance — the image
 * URL as the origin, the source, the licence, the credit line with the page
 * to check it — so an operator can grow a curated store from the web. The
 * store deduplicates by content hash, and an image its owner had removed
 * (`index remove`) stays removed. Nothing is written unless asked.
 */
import { typeError } from '../errors.js';
import type { Candidate } from '../rag/references.js';
import type { AddReport, ImageMeta } from '../store/index.js';

/** What caching needs of a store: ImageStore.add. */
export interface CacheTarget {
  add(inputs: readonly { bytes: Uint8Array; origin?: string; meta?: ImageMeta }[]): Promise<AddReport>;
}

export function isCacheTarget(s: unknown): s is CacheTarget {
  return typeof s === 'object' && s !== null && typeof (s as CacheTarget).add === 'function';
}

export function checkCacheOption(v: unknown, retrievalStore: unknown): CacheTarget | undefined {
  if (v === undefined || v === false) return undefined;
  const target = v === true ? retrievalStore : v;
  if (!isCacheTarget(target)) throw typeError('INVALID_TYPE', 'retrieval.cache must be true (the retrieval store) or a writable ImageStore');
  return target;
}

export interface CacheReport {
  added: number;
  /** Already held (same bytes or near-duplicates), removed by their owner, or blocked. */
  skipped: number;
  failed: number;
}

/** Writes the live references among `used` into `target`. */
export async function cacheLive(target: CacheTarget, used: readonly Candidate[]): Promise<CacheReport> {
  const live = used.filter((c) => c.origin !== undefined);
  if (live.length === 0) return { added: 0, skipped: 0, failed: 0 };
  const report = await target.add(live.map((c) => {
    const page = c.origin!.landingUrl ?? c.origin!.url;
    const credit = [c.attribution || (c.origin!.creator ? `by ${c.origin!.creator}` : ''), page].filter(Boolean).join(' — ');
    return {
      bytes: c.bytes(), origin: c.origin!.url.slice(0, 4096),
      meta: { source: c.source.slice(0, 200), licence: c.licence.slice(0, 100), attribution: credit.slice(0, 1000), name: c.name.slice(0, 500) },
    };
  }));
  return { added: report.added, skipped: report.skipped, failed: report.failed };
}
