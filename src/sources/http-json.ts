/**
 * GET a search API's JSON answer through the SSRF-checked fetcher: the same
 * address checks as images, a byte cap enforced while reading (a 50 MB answer
 * is cut off at the cap, never buffered whole), a deadline, and one retry
 * after a 429 when its Retry-After fits the caller's time.
 */
import { RagdiffError } from '../errors.js';
import { fetchImage } from '../net/index.js';
import { sleep } from './politeness.js';
import type { SourceContext } from './types.js';

const JSON_TYPES = ['application/json', 'application/vnd.api+json', 'text/json'];
/** Longest Retry-After honoured, in ms (longer waits report SOURCE_RATE_LIMITED). */
const MAX_RETRY_WAIT_MS = 10_000;

/** Seconds or an HTTP date → ms to wait; undefined when absent or unreadable. */
export function retryAfterMs(value: unknown, now = Date.now()): number | undefined {
  if (typeof value !== 'string' || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export interface JsonAnswer {
  body: unknown;
  bytes: number;
}

export async function getJson(url: string, ctx: SourceContext, signal?: AbortSignal, deadlineMs?: number): Promise<JsonAnswer> {
  for (let attempt = 0; ; attempt++) {
    try {
      const got = await ctx.limiter.run(url, signal, () =>
        fetchImage(url, {
          allowHosts: ctx.allowHosts, allowedContentTypes: JSON_TYPES, sniffImage: false, maxBytes: ctx.maxAnswerBytes,
          timeoutMs: ctx.timeoutMs, userAgent: ctx.userAgent, signal, resolve: ctx.resolve, connect: ctx.connect,
        }),
      );
      try {
        return { body: JSON.parse(got.bytes.toString('utf8')), bytes: got.bytes.length };
      } catch (e) {
        throw new RagdiffError('SOURCE_BAD_ANSWER', `${url} answered malformed JSON: ${(e as Error).message}`);
      }
    } catch (e) {
      const err = e as RagdiffError & { status?: number; retryAfter?: unknown };
      if (err.code === 'FETCH_STATUS' && err.status === 429) {
        const wait = retryAfterMs(err.retryAfter) ?? 1000;
        const left = deadlineMs === undefined ? Infinity : deadlineMs - Date.now();
        if (attempt > 0 || wait > MAX_RETRY_WAIT_MS || wait >= left) {
          throw new RagdiffError('SOURCE_RATE_LIMITED', `${new URL(url).host} answered 429 (Retry-After ${String(err.retryAfter ?? 'absent')}); not retried within the budget`, { cause: e });
        }
        await sleep(wait, signal);
        continue;
      }
      if (err.code === 'FETCH_CONTENT_TYPE') throw new RagdiffError('SOURCE_BAD_ANSWER', err.message.replace('not an accepted image type', 'not JSON'), { cause: e });
      throw e;
    }
  }
}

/** Reads `a.b.0.c` from a parsed answer; undefined when any step is missing. */
export function readPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const step of path.split('.')) {
    if (cur === null || typeof cur !== 'object') return undefined;
    if (!Object.prototype.hasOwnProperty.call(cur, step)) return undefined;
    cur = (cur as Record<string, unknown>)[step];
  }
  return cur;
}

export const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');
