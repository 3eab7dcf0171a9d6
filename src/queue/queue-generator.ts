/**
 * QueueGenerator: the Generator port over a BullMQ queue. `generate` checks
 * the queue's depth (BUSY beyond `maxQueued`, so the server answers 429 with
 * Retry-After), enqueues a JSON payload (uploads as blob keys), follows the
 * job's progress and outcome through QueueEvents, and reads the PNGs back
 * from the blob directory. Aborting the signal cancels the job on whichever
 * worker holds it (cancel.ts).
 */
import { Queue, QueueEvents, Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { AbortError, BusyError, RagdiffError } from '../errors.js';
import type { CapacityState, GenerateControls, GenerationRequest, Generator, GeneratorInfo } from '../generator/index.js';
import type { ProgressEvent } from '../pipeline/index.js';
import type { RagResult } from '../rag/index.js';
import type { BlobDir } from './blob-dir.js';
import { requestCancel } from './cancel.js';
import { errorOfFailure } from './failure.js';
import { keys, CANCEL_TTL_S } from './keys.js';
import { fromWireResult, toPayload, type WireResult } from './payload.js';
import { bullConnection, checkRedisPolicy, DEFAULT_QUEUE_NAME, openRedis } from './redis.js';

export interface QueueGeneratorOptions {
  url: string;
  queue?: string;
  /** The model id the jobs ask for (GeneratorInfo.id of the workers' bundle). */
  model: string;
  blobs: BlobDir;
  /** Jobs waiting or running, queue-wide, beyond which generate throws BUSY (default 64). */
  maxQueued?: number;
  /** How long open() waits for a worker to announce the model (default 30 s). */
  waitForWorkerMs?: number;
}

interface Pending {
  resolve(w: WireResult): void;
  reject(e: unknown): void;
  onProgress?: (e: ProgressEvent) => void;
}

export class QueueGenerator implements Generator {
  private readonly pending = new Map<string, Pending>();
  private counts = { waiting: 0, active: 0 };
  private readonly poll: NodeJS.Timeout;

  private constructor(
    private readonly o: Required<Omit<QueueGeneratorOptions, 'waitForWorkerMs'>>,
    private readonly described: GeneratorInfo,
    readonly modes: string[],
    private readonly client: Redis,
    private readonly queue: Queue,
    private readonly events: QueueEvents,
  ) {
    events.on('progress', ({ jobId, data }) => this.pending.get(jobId)?.onProgress?.(data as unknown as ProgressEvent));
    events.on('completed', ({ jobId, returnvalue }) => this.settle(jobId, { returnvalue }));
    events.on('failed', ({ jobId, failedReason }) => this.settle(jobId, { failedReason }));
    this.poll = setInterval(() => void this.refreshCounts(), 250);
    this.poll.unref();
  }

  static async open(options: QueueGeneratorOptions): Promise<QueueGenerator> {
    const o = { queue: DEFAULT_QUEUE_NAME, maxQueued: 64, ...options };
    const client = await openRedis(o.url);
    let queue: Queue | undefined;
    let events: QueueEvents | undefined;
    try {
      await checkRedisPolicy(client);
      const announced = await waitForModel(client, o.queue, o.model, options.waitForWorkerMs ?? 30_000);
      queue = new Queue(o.queue, { connection: bullConnection(o.url) });
      queue.on('error', () => {});
      events = new QueueEvents(o.queue, { connection: bullConnection(o.url) });
      events.on('error', () => {});
      await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
      const { modes, ...info } = announced;
      const g = new QueueGenerator({ url: o.url, queue: o.queue, model: o.model, blobs: o.blobs, maxQueued: o.maxQueued }, info, modes, client, queue, events);
      await g.refreshCounts();
      return g;
    } catch (e) {
      await events?.close().catch(() => {});
      await queue?.close().catch(() => {});
      client.disconnect();
      throw e;
    }
  }

  info(): GeneratorInfo {
    return this.described;
  }

  capacity(): CapacityState {
    return { running: this.counts.active, queued: this.counts.waiting, capacity: this.o.maxQueued };
  }

  /** The queue's depth as BullMQ counts it (for /metrics and tests). */
  async jobCounts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed', 'prioritized');
  }

  async generate(request: GenerationRequest, controls: GenerateControls = {}): Promise<RagResult> {
    const { signal, onProgress } = controls;
    if (signal?.aborted) throw new AbortError('generation aborted before it was queued', { cause: signal.reason });
    await this.refreshCounts();
    if (this.counts.waiting + this.counts.active >= this.o.maxQueued) {
      throw new BusyError(`the generation queue holds ${this.counts.waiting + this.counts.active} jobs (limit ${this.o.maxQueued}); retry later`);
    }
    const payload = await toPayload(this.o.model, request, this.o.blobs);
    const job = await this.queue.add('generate', payload, {
      // Results and reasons are kept an hour for late readers, then BullMQ drops them; the PNGs expire with the blob directory.
      removeOnComplete: { age: CANCEL_TTL_S },
      removeOnFail: { age: CANCEL_TTL_S },
    });
    const id = job.id!;
    const wire = new Promise<WireResult>((resolve, reject) => this.pending.set(id, { resolve, reject, ...(onProgress ? { onProgress } : {}) }));
    const onAbort = () => void this.cancel(id, signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    // A job that finished before we listened (a fast failure) is read from its hash instead.
    void this.readFinished(id);
    try {
      return await fromWireResult(await wire, this.o.blobs);
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.pending.delete(id);
    }
  }

  /** Cancels the job wherever it is: removed while waiting, aborted by its worker while running. */
  async cancel(id: string, reason?: unknown): Promise<void> {
    await requestCancel(this.client, this.o.queue, id).catch(() => {});
    const job = await Job.fromId(this.queue, id).catch(() => undefined);
    if (job && (await job.getState().catch(() => '')) === 'waiting') {
      await job.remove().catch(() => {});
      this.settle(id, { failedReason: `[ABORTED] ${reason instanceof Error ? reason.message : 'cancelled while queued'}` });
    }
  }

  async close(): Promise<void> {
    clearInterval(this.poll);
    for (const [id, p] of this.pending) p.reject(new RagdiffError('CLOSED', `the queue client closed while job ${id} was pending`));
    this.pending.clear();
    await this.events.close();
    await this.queue.close();
    this.client.disconnect();
  }

  private settle(id: string, outcome: { returnvalue?: unknown; failedReason?: string }): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    if (outcome.failedReason !== undefined) p.reject(errorOfFailure(outcome.failedReason));
    else p.resolve((typeof outcome.returnvalue === 'string' ? JSON.parse(outcome.returnvalue) : outcome.returnvalue) as WireResult);
  }

  private async readFinished(id: string): Promise<void> {
    const job = await Job.fromId(this.queue, id).catch(() => undefined);
    if (!job) return;
    if (job.finishedOn && job.failedReason) this.settle(id, { failedReason: job.failedReason });
    else if (job.finishedOn) this.settle(id, { returnvalue: job.returnvalue });
  }

  private async refreshCounts(): Promise<void> {
    const c = await this.queue.getJobCounts('waiting', 'active', 'prioritized', 'delayed').catch(() => undefined);
    if (c) this.counts = { waiting: (c.waiting ?? 0) + (c.prioritized ?? 0) + (c.delayed ?? 0), active: c.active ?? 0 };
  }
}

/** The model's announcement by a worker; NO_WORKER when none comes within `ms`. */
async function waitForModel(client: Redis, queue: string, model: string, ms: number): Promise<GeneratorInfo & { modes: string[] }> {
  const deadline = Date.now() + ms;
  for (;;) {
    const raw = await client.get(keys(queue).model(model));
    if (raw) return JSON.parse(raw) as GeneratorInfo & { modes: string[] };
    if (Date.now() >= deadline) throw new RagdiffError('NO_WORKER', `no worker on queue "${queue}" has announced model ${model} within ${Math.round(ms / 1000)} s; start one with \`ragdiff worker --queue … --model <the same bundle>\``);
    await new Promise((r) => setTimeout(r, 200));
  }
}
