/**
 * A per-host politeness limit shared by every request of a process: at most
 * `concurrency` requests in flight to one host, and starts spaced at least
 * `1000 / perSecond` ms apart. Waiting honours the caller's signal.
 */
import { AbortError } from '../errors.js';

export interface HostLimits {
  concurrency?: number;
  perSecond?: number;
}

interface HostState {
  active: number;
  nextStart: number;
  queue: (() => void)[];
}

export class HostLimiter {
  private readonly hosts = new Map<string, HostState>();
  readonly concurrency: number;
  readonly interval: number;

  constructor(limits: HostLimits = {}) {
    this.concurrency = Math.max(1, Math.floor(limits.concurrency ?? 8));
    this.interval = limits.perSecond && limits.perSecond > 0 ? 1000 / limits.perSecond : 0;
  }

  /** Runs `fn` when the host has room; the slot is released when it settles. */
  async run<T>(url: string, signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    let host: string;
    try {
      host = new URL(url).host;
    } catch {
      return fn(); // the fetcher reports the bad URL
    }
    const st = this.hosts.get(host) ?? { active: 0, nextStart: 0, queue: [] };
    this.hosts.set(host, st);
    while (st.active >= this.concurrency) await this.wait(st, signal);
    st.active++;
    try {
      const delay = st.nextStart - Date.now();
      st.nextStart = Math.max(Date.now(), st.nextStart) + this.interval;
      if (delay > 0) await sleep(delay, signal);
      return await fn();
    } finally {
      st.active--;
      st.queue.shift()?.();
      if (st.active === 0 && st.queue.length === 0 && st.nextStart <= Date.now()) this.hosts.delete(host);
    }
  }

  private wait(st: HostState, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new AbortError('aborted while waiting for a host slot'));
      const go = () => {
        signal?.removeEventListener('abort', stop);
        resolve();
      };
      const stop = () => {
        st.queue.splice(st.queue.indexOf(go), 1);
        reject(new AbortError('aborted while waiting for a host slot'));
      };
      st.queue.push(go);
      signal?.addEventListener('abort', stop, { once: true });
    });
  }
}

/** Sleeps `ms`, rejecting with AbortError when the signal fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new AbortError('aborted'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', stop);
      resolve();
    }, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(new AbortError('aborted'));
    };
    signal?.addEventListener('abort', stop, { once: true });
  });
}

/** The process-wide limiter every source shares unless given its own. */
export const sharedHostLimiter = new HostLimiter({ concurrency: 8, perSecond: 20 });
