/**
 * A pool of ragdiff worker threads, one job at a time per worker: the
 * mechanics the inference workers (pipeline/pipeline.ts) and the encoder
 * workers (models/encoder-pool.ts) share. Each owner keeps its own queue and
 * its own messages; the pool starts, feeds, replaces and closes the threads.
 *
 * Every worker speaks the same start and end protocol: it posts `ready`
 * (with its info) or `error` once its ONNX sessions are open or failed (and
 * then exits by itself), `warning` at any time, and after a `close` message
 * releases its sessions, posts `closed` and ends. A job's messages carry its
 * `id`; `result` and `error` end it.
 *
 * Never terminate a worker that is opening its sessions: Worker.terminate()
 * landing inside onnxruntime's InferenceSession.create aborts the whole
 * process. So a start waits for every worker to settle, and when any failed,
 * closes the ones that loaded (politely, through `close`) before it rejects
 * with the failure, typed as the worker threw it. A pool that closes while a
 * replacement is loading waits for it too, then closes it.
 *
 * An idle worker is unref'd, so a pool with nothing to do never keeps the
 * process alive. A worker lost while running a job (crash, exit) fails that
 * job and is replaced; the jobs waiting continue on the replacement.
 */
import type { Worker } from 'node:worker_threads';
import { RagdiffError } from './errors.js';
import { awaitWorkerReady, startWorker } from './worker-options.js';

/** The next job for an idle worker: the message that starts it and the buffers to transfer with it. */
export interface Dispatch<Job> {
  job: Job;
  message: unknown;
  transfer?: ArrayBuffer[];
}

/** What the owner of a pool answers (see {@link WorkerPool.serve}). */
export interface PoolHandlers<Job, Message> {
  /** The next job waiting, taken off the owner's queue; undefined when none waits. */
  next(): Dispatch<Job> | undefined;
  /** A message about `job` (not ready/warning/closed); after `result` or `error` the worker is already free for the next job. */
  message(job: Job, m: Message): void;
  /** The worker running `job` was lost (`why`: "exited with code 1", "crashed (…)"). */
  lost(job: Job, why: string): void;
  /** No worker is left and none could be started: the jobs waiting cannot run. */
  exhausted(error: unknown): void;
}

export interface WorkerPoolOptions<Data> {
  /** The worker's module. */
  url: URL;
  /** The worker's workerData, or a function of the worker's number (0, 1, …, replacements continuing the count). */
  workerData: Data | ((index: number) => Data);
  /** Workers (≥ 1). */
  size: number;
  /** The worker's name in messages: "inference worker". */
  what: string;
  onWarning: (message: string) => void;
  /** How long close() waits for a worker to release its sessions before terminating it (default 30 s). */
  closeTimeoutMs?: number;
}

export interface PoolSlot<Job> {
  readonly worker: Worker;
  job: Job | null;
}

interface JobMessage {
  type: string;
  id?: number | null;
  message?: string;
}

/**
 * Starts one worker and resolves once its sessions are open; rejects with its
 * load error (the worker then exits by itself) or WORKER_FAILED.
 */
function spawn<Info>(url: URL, data: unknown, what: string, warn: (m: string) => void): Promise<{ worker: Worker; info: Info }> {
  let worker: Worker;
  try {
    // Deliberate execArgv, argv and stack: see worker-options.ts.
    worker = startWorker(url, { workerData: data }, warn);
  } catch (e) {
    return Promise.reject(new RagdiffError('WORKER_FAILED', `${what} could not be created: ${(e as Error).message}`, { cause: e }));
  }
  return awaitWorkerReady<Info>(worker, what, warn).then((info) => ({ worker, info }));
}

/**
 * Asks a loaded worker to release its sessions and end; resolves once it has
 * (or, past `timeoutMs`, once it is terminated). Only for loaded workers.
 */
function closeWorker(worker: Worker, timeoutMs: number): Promise<void> {
  if (worker.threadId === -1) return Promise.resolve(); // already ended
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      worker.off('message', onMessage);
      worker.off('exit', done);
      resolve();
    };
    const onMessage = (m: JobMessage) => {
      if (m.type === 'closed') done();
    };
    const timer = setTimeout(done, timeoutMs);
    worker.on('message', onMessage);
    worker.on('exit', done);
    worker.ref();
    worker.postMessage({ type: 'close' });
  }).then(async () => {
    await worker.terminate();
  });
}

export class WorkerPool<Job extends { id: number }, Message extends JobMessage = JobMessage, Info = unknown> {
  /** The workers that are loaded, in the order they became ready. */
  readonly slots: PoolSlot<Job>[] = [];
  private handlers: PoolHandlers<Job, Message> | null = null;
  private readonly starting = new Set<Promise<unknown>>();
  private closing: Promise<void> | null = null;
  private spawned: number;

  private constructor(
    private readonly options: WorkerPoolOptions<unknown> & { closeTimeoutMs: number },
    workers: Worker[],
  ) {
    this.spawned = workers.length;
    for (const w of workers) this.attach(w);
  }

  /**
   * Starts `size` workers and resolves once every one has its sessions open,
   * with each one's info in order. If any fails, waits for the rest to settle,
   * closes those that loaded, and rejects with the first failure.
   */
  static async start<Job extends { id: number }, Message extends JobMessage = JobMessage, Info = unknown, Data = unknown>(
    options: WorkerPoolOptions<Data>,
  ): Promise<{ pool: WorkerPool<Job, Message, Info>; infos: Info[] }> {
    const opts = { ...options, closeTimeoutMs: options.closeTimeoutMs ?? 30_000 } as WorkerPoolOptions<unknown> & { closeTimeoutMs: number };
    const settled = await Promise.allSettled(Array.from({ length: options.size }, (_, i) => spawn<Info>(opts.url, dataFor(opts, i), opts.what, opts.onWarning)));
    const started = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) {
      await Promise.all(started.map((s) => closeWorker(s.worker, opts.closeTimeoutMs)));
      throw failed.reason;
    }
    return { pool: new WorkerPool<Job, Message, Info>(opts, started.map((s) => s.worker)), infos: started.map((s) => s.info) };
  }

  /** Connects the owner's queue and handlers; the pool starts dispatching. */
  serve(handlers: PoolHandlers<Job, Message>): void {
    this.handlers = handlers;
    this.pump();
  }

  /** Jobs running now. */
  get running(): Job[] {
    return this.slots.flatMap((s) => (s.job ? [s.job] : []));
  }

  /** Gives each idle worker the next job, first starting workers in place of any that are missing. */
  pump(): void {
    if (this.closing || !this.handlers) return;
    // Back to full size if a replacement could not start earlier.
    while (this.slots.length + this.starting.size < this.options.size) this.replace();
    for (const slot of this.slots) {
      if (slot.job) continue;
      const d = this.handlers.next();
      if (!d) return;
      slot.job = d.job;
      slot.worker.ref();
      slot.worker.postMessage(d.message, d.transfer ?? []);
    }
  }

  private attach(worker: Worker): void {
    const slot: PoolSlot<Job> = { worker, job: null };
    this.slots.push(slot);
    worker.on('message', (m: Message) => {
      if (m.type === 'warning') return this.options.onWarning(m.message!);
      const job = slot.job;
      if (m.type === 'ready' || m.type === 'closed' || !job || m.id !== job.id) return;
      if (m.type === 'result' || m.type === 'error') {
        slot.job = null;
        worker.unref();
        this.handlers?.message(job, m);
        this.pump();
      } else this.handlers?.message(job, m);
    });
    const lost = (why: string) => {
      const i = this.slots.indexOf(slot);
      if (i < 0) return;
      this.slots.splice(i, 1);
      const job = slot.job;
      slot.job = null;
      if (job) this.handlers?.lost(job, why);
      if (!this.closing) this.replace();
    };
    worker.on('error', (e) => lost(`crashed (${e.message})`));
    worker.on('exit', (code) => lost(`exited with code ${code}`));
    // After the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref();
  }

  /** Starts a worker in place of a lost one; the jobs waiting continue once it is ready. */
  private replace(): void {
    const index = this.spawned++;
    const o = this.options;
    const p: Promise<void> = spawn<Info>(o.url, dataFor(o, index), o.what, o.onWarning).then(
      async ({ worker }) => {
        this.starting.delete(p);
        if (this.closing) return closeWorker(worker, o.closeTimeoutMs);
        this.attach(worker);
        this.pump();
      },
      (e) => {
        this.starting.delete(p); // a worker that failed to load ends by itself
        if (this.slots.length === 0 && this.starting.size === 0) this.handlers?.exhausted(e);
      },
    );
    this.starting.add(p);
  }

  /**
   * Lets the jobs running finish (the owner aborts them first if it wants),
   * then has every worker release its sessions and end; workers still loading
   * are waited for and closed too. The owner fails its queued jobs itself.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    const loading = [...this.starting];
    this.closing = Promise.all([
      ...[...this.slots].map(async (slot) => {
        await closeWorker(slot.worker, this.options.closeTimeoutMs);
        const i = this.slots.indexOf(slot);
        if (i >= 0) this.slots.splice(i, 1);
      }),
      ...loading,
    ]).then(() => undefined);
    return this.closing;
  }
}

function dataFor(options: WorkerPoolOptions<unknown>, index: number): unknown {
  return typeof options.workerData === 'function' ? (options.workerData as (i: number) => unknown)(index) : options.workerData;
}
