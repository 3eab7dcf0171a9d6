/**
 * Validation of the live-source part of `request.retrieval`: where to search
 * (`from`), the budget, and references given as URLs. Runs before any work;
 * an unknown source, a source the operator did not enable, a budget of 0 or a
 * bad URL is a typed error here.
 */
import { rangeError, typeError } from '../errors.js';
import { assertBoolean, assertInteger, assertPlainObject, assertString } from '../validate.js';
import { urlCandidate, type UrlReference } from './plain-url.js';
import { STORE_SOURCE, type SourceRegistry } from './registry.js';
import type { SourceCandidate } from './types.js';

export interface SourceChoice {
  source: string;
  /** Candidates asked of this source (default: the request's k). */
  k?: number;
  /** Fail the generation when this source fails (default: skip it and report). */
  required?: boolean;
}

export interface LiveBudget {
  ms: number;
  bytes: number;
  images: number;
}

export const DEFAULT_BUDGET: LiveBudget = { ms: 15_000, bytes: 64 * 1024 * 1024, images: 32 };

export interface NormalizedLive {
  /** Whether the store is searched. */
  store: boolean;
  online: { source: string; k: number; required: boolean }[];
  urls: SourceCandidate[];
  budget: LiveBudget;
}

/** Reads `from`, `budget` and the `{ url }` references; undefined when the request stays offline. */
export function normalizeLive(
  o: { from?: unknown; budget?: unknown },
  urlRefs: { ref: UrlReference; where: string }[],
  k: number,
  registry: () => SourceRegistry,
): NormalizedLive | undefined {
  const from = o.from ?? [STORE_SOURCE];
  if (!Array.isArray(from) || from.length === 0 || from.length > 16) throw typeError('INVALID_TYPE', 'retrieval.from must be a non-empty array of at most 16 source names or { source, k, required } objects');
  let store = false;
  const online: NormalizedLive['online'] = [];
  from.forEach((entry: unknown, i) => {
    const where = `retrieval.from[${i}]`;
    const c: SourceChoice = typeof entry === 'string' ? { source: entry } : (entry as SourceChoice);
    assertPlainObject(where, c);
    for (const key of Object.keys(c)) if (!['source', 'k', 'required'].includes(key)) throw rangeError('UNKNOWN_OPTION', `unknown option ${where}.${key}`);
    assertString(`${where}.source`, c.source, 100);
    if (c.k !== undefined) assertInteger(`${where}.k`, c.k, 1, 50);
    if (c.required !== undefined) assertBoolean(`${where}.required`, c.required);
    if (c.source === STORE_SOURCE) {
      store = true;
      return;
    }
    registry().get(c.source); // SOURCE_UNKNOWN / SOURCE_NOT_ENABLED
    if (online.some((x) => x.source === c.source)) throw rangeError('INVALID_VALUE', `${where}: source ${JSON.stringify(c.source)} is listed twice`);
    online.push({ source: c.source, k: c.k ?? k, required: c.required ?? false });
  });
  const allow = urlRefs.length ? registry().context.allowHosts : [];
  const urls = urlRefs.map(({ ref, where }) => urlCandidate(ref, where, allow));
  const budget = { ...DEFAULT_BUDGET };
  if (o.budget !== undefined) {
    assertPlainObject('retrieval.budget', o.budget);
    const b = o.budget as Record<string, unknown>;
    for (const key of Object.keys(b)) if (!['ms', 'bytes', 'images'].includes(key)) throw rangeError('UNKNOWN_OPTION', `unknown option retrieval.budget.${key}`);
    const limits = { ms: 600_000, bytes: 2 ** 31, images: 256 };
    for (const key of ['ms', 'bytes', 'images'] as const) {
      if (b[key] === undefined) continue;
      if (b[key] === 0) throw rangeError('OUT_OF_RANGE', `retrieval.budget.${key} is 0: nothing could be fetched (leave online sources out of retrieval.from instead)`);
      assertInteger(`retrieval.budget.${key}`, b[key], 1, limits[key]);
      budget[key] = b[key] as number;
    }
  }
  if (store && online.length === 0 && urls.length === 0) return undefined;
  return { store, online, urls, budget };
}
