/**
 * Cancelling a queued job wherever it is: a mark in Redis (read by a worker
 * before it starts the job, and again after a stall) and a message on a
 * channel every worker listens to (the worker running it aborts its signal).
 */
import type { Redis } from 'ioredis';
import { CANCEL_TTL_S, keys } from './keys.js';

export async function requestCancel(client: Redis, queue: string, jobId: string): Promise<void> {
  const k = keys(queue);
  await client.set(k.cancelled(jobId), '1', 'EX', CANCEL_TTL_S);
  await client.publish(k.cancelChannel, jobId);
}

export async function isCancelled(client: Redis, queue: string, jobId: string): Promise<boolean> {
  return (await client.exists(keys(queue).cancelled(jobId))) === 1;
}

/** Calls `onCancel(jobId)` for every cancel published; resolves once subscribed. The returned function stops listening. */
export async function listenForCancels(subscriber: Redis, queue: string, onCancel: (jobId: string) => void): Promise<() => Promise<void>> {
  const channel = keys(queue).cancelChannel;
  const handler = (ch: string, message: string) => {
    if (ch === channel) onCancel(message);
  };
  subscriber.on('message', handler);
  await subscriber.subscribe(channel);
  return async () => {
    subscriber.off('message', handler);
    await subscriber.unsubscribe(channel).catch(() => {});
  };
}
