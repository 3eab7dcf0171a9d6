/**
 * A stateless queue worker: takes generation jobs from BullMQ and runs them on
 * its own Generator (a LocalGenerator: its own ONNX sessions and store),
 * reporting progress through the job, writing images to the blob directory
 * and returning their keys. Any number of them, on any machine, share one
 * queue; a worker killed mid-job leaves the job to BullMQ's stalled-job
 * check, which hands it to another.
 *
 * A job it must not run fails with a typed, unrecoverable reason: a
 * malformed payload (JOB_INVALID), another model (MODEL_MISMATCH), a job
 * cancelled before it started (ABORTED). The worker itself carries on.
 */
import { UnrecoverableError, Worker, type Job, type JobJson } from 'bullmq';
import type { Redis } from 'ioredis';
import { AbortError, RagdiffError } from '../errors.js';
import type { Generator } from '../generator/index.js';
import type { BlobDir } from './blob-dir.js';
import { isCancelled, listenForCancels } from './cancel.js';
import { failureReason } from './failure.js';
import { ANNOUNCE_TTL_S, keys } from './keys.js';
import { fromPayload, toWireResult, type WireResult } from './payload.js';
import { bullConnection, checkRedisPolicy, DEFAULT_QUEUE_NAME, openRedis } from './redis.js';

export interface QueueWorkerOptions {
  url: string;
  queue?: string;
  generator: Generator;
  blobs: BlobDir;
  concurrency?: number;
  /** BullMQ's lock and stall check (ms): how soon a dead worker's job is handed on. Defaults 30000 / 15000. */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
}

export interface QueueWorker {
  readonly worker: Worker;
  /** Jobs this worker finished (for tests and logs). */
  readonly completed: number;
  close(): Promise<void>;
}

/**
 * BullMQ parses a job's data before any processor sees it; data edited in
 * Redis to something that is not JSON would throw there, leaving the job
 * active until its lock expires and then looping through stalled recovery.
 * Such data reaches the processor as a marker instead, and fails JOB_INVALID.
 */
class PayloadSafeWorker extends Worker {
  protected override createJob(data: JobJson, jobId: string): Job {
    try {
      return super.createJob(data, jobId);
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw e;
      return super.createJob({ ...data, data: JSON.stringify({ unparseable: String(data.data).slice(0, 80) }) }, jobId);
    }
  }
}

export async function startQueueWorker(o: QueueWorkerOptions): Promise<QueueWorker> {
  const queue = o.queue ?? DEFAULT_QUEUE_NAME;
  const client = await openRedis(o.url);
  let subscriber: Redis | undefined;
  try {
    await checkRedisPolicy(client);
    subscriber = client.duplicate();
    await announce(client, queue, o.generator);
  } catch (e) {
    client.disconnect();
    subscriber?.disconnect();
    throw e;
  }
  const model = o.generator.info().id;
  const announcer = setInterval(() => void announce(client, queue, o.generator).catch(() => {}), (ANNOUNCE_TTL_S * 1000) / 3);
  announcer.unref();
  let completed = 0;

  const run = async (job: Job, signal?: AbortSignal): Promise<WireResult> => {
    let parsed;
    try {
      parsed = await fromPayload(job.data, o.blobs);
    } catch (e) {
      throw new UnrecoverableError(failureReason(e));
    }
    if (parsed.model !== model) {
      throw new UnrecoverableError(failureReason(new RagdiffError('MODEL_MISMATCH', `the job asks for model ${parsed.model}; this worker runs ${model}`)));
    }
    if (await isCancelled(client, queue, job.id!)) throw new UnrecoverableError(failureReason(new AbortError('cancelled before a worker started it')));
    try {
      const result = await o.generator.generate(parsed.request, {
        ...(signal ? { signal } : {}),
        onProgress: (e) => void job.updateProgress({ ...e }).catch(() => {}),
      });
      const wire = await toWireResult(result, o.blobs);
      completed++;
      return wire;
    } catch (e) {
      // Typed errors are final (bad input, refused, cancelled); retrying would give the same answer.
      throw new UnrecoverableError(failureReason(e));
    }
  };

  const worker = new PayloadSafeWorker(queue, (job, _token, signal) => run(job, signal), {
    connection: bullConnection(o.url),
    concurrency: o.concurrency ?? 1,
    ...(o.lockDurationMs !== undefined ? { lockDuration: o.lockDurationMs } : {}),
    ...(o.stalledIntervalMs !== undefined ? { stalledInterval: o.stalledIntervalMs } : {}),
  });
  worker.on('error', () => {}); // connection blips are retried by BullMQ; job failures are reported on the job
  const stopListening = await listenForCancels(subscriber, queue, (id) => {
    worker.cancelJob(id, 'cancelled by the client');
  });
  await worker.waitUntilReady();

  return {
    worker,
    get completed() {
      return completed;
    },
    async close() {
      clearInterval(announcer);
      await stopListening();
      await worker.close();
      subscriber.disconnect();
      client.disconnect();
    },
  };
}

async function announce(client: Redis, queue: string, g: Generator): Promise<void> {
  const info = g.info();
  const { dir: _local, ...shared } = info; // a worker's paths are nobody else's business
  await client.set(keys(queue).model(info.id), JSON.stringify({ ...shared, modes: g.modes }), 'EX', ANNOUNCE_TTL_S);
}
