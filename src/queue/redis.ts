/**
 * The queue's Redis: one URL, checked once at start. BullMQ needs
 * `maxmemory-policy noeviction` — any evicting policy may silently drop job
 * hashes and locks under memory pressure, so a job accepted with 202 could
 * vanish. We refuse to start on such a Redis rather than warn.
 */
import { Redis } from 'ioredis';
import { RagdiffError } from '../errors.js';

export interface QueueConnection {
  url: string;
  /** The BullMQ queue name (default "ragdiff"); servers and workers of one deployment share it. */
  name: string;
}

export const DEFAULT_QUEUE_NAME = 'ragdiff';

/** BullMQ's connection options for `url` (blocking commands must never give up, hence maxRetriesPerRequest null). */
export function bullConnection(url: string) {
  return { url, maxRetriesPerRequest: null };
}

/** A plain client for our own keys and pub/sub. Fails fast when Redis cannot be reached. */
export async function openRedis(url: string): Promise<Redis> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RagdiffError('URL_INVALID', `--queue must be a redis:// URL, got ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw new RagdiffError('URL_SCHEME', `--queue must be a redis:// or rediss:// URL, got ${parsed.protocol}`);
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5_000, retryStrategy: () => null });
  client.on('error', () => {}); // surfaced by connect() below, not as an unhandled event
  try {
    await client.connect();
  } catch (e) {
    client.disconnect();
    throw new RagdiffError('QUEUE_UNAVAILABLE', `cannot reach Redis at ${parsed.host}: ${(e as Error).message}`, { cause: e });
  }
  return client;
}

/** Throws QUEUE_MISCONFIGURED unless Redis keeps every key under memory pressure. */
export async function checkRedisPolicy(client: Redis): Promise<void> {
  const reply = (await client.config('GET', 'maxmemory-policy')) as string[];
  const policy = reply[1];
  if (policy !== 'noeviction') {
    throw new RagdiffError('QUEUE_MISCONFIGURED', `Redis maxmemory-policy is ${JSON.stringify(policy)}; the queue needs "noeviction" (an evicting Redis may drop accepted jobs): run CONFIG SET maxmemory-policy noeviction, or set it in redis.conf`);
  }
}
