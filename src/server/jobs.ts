/**
 * Streamed generations: `POST /v1/images/generations` with `"stream": true`
 * answers 202 with a job id at once; `GET /v1/generations/:id/events` follows
 * the job as server-sent events (`progress`, then `result` or `error`).
 *
 * A job belongs to whoever listens: when the last listener disconnects before
 * the end, the job is cancelled; a job nobody subscribes to within
 * `orphanMs` is cancelled too. Finished jobs are kept `keepMs` for late
 * readers (`GET /v1/generations/:id`).
 */
import { randomUUID } from 'node:crypto';

export interface JobEvent {
  event: 'progress' | 'result' | 'error';
  data: unknown;
}

export class Job {
  readonly id = `gen_${randomUUID().replace(/-/g, '')}`;
  readonly controller = new AbortController();
  readonly created = Math.floor(Date.now() / 1000);
  /** The latest progress event (replayed to late subscribers). */
  last?: JobEvent;
  final?: JobEvent;
  private readonly listeners = new Set<(e: JobEvent) => void>();
  private everSubscribed = false;

  get done(): boolean {
    return this.final !== undefined;
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  emit(e: JobEvent): void {
    if (this.final) return;
    if (e.event === 'progress') this.last = e;
    else this.final = e;
    for (const f of this.listeners) f(e);
    if (this.final) this.listeners.clear();
  }

  /** Replays the state so far, then follows. The returned function unsubscribes (and cancels when it was the last listener). */
  subscribe(f: (e: JobEvent) => void): () => void {
    this.everSubscribed = true;
    if (this.last) f(this.last);
    if (this.final) {
      f(this.final);
      return () => {};
    }
    this.listeners.add(f);
    return () => {
      if (!this.listeners.delete(f)) return;
      if (this.listeners.size === 0 && !this.final) this.controller.abort(new Error('the client disconnected'));
    };
  }

  get subscribed(): boolean {
    return this.everSubscribed;
  }
}

/**
 * Where streamed jobs live: the port the routes use. MemoryJobStore (below)
 * keeps them in this process; a shared store (Redis) would let any server of
 * a deployment answer for a job.
 */
export interface JobStore {
  readonly size: number;
  /** Registers a job whose work `run` does; events go through job.emit. */
  start(run: (job: Job) => Promise<void>): Job;
  get(id: string): Job | undefined;
  cancelAll(reason: string): void;
}

export class MemoryJobStore implements JobStore {
  private readonly jobs = new Map<string, Job>();

  constructor(private readonly options: { keepMs: number; orphanMs: number }) {}

  get size(): number {
    return this.jobs.size;
  }

  /** Registers a job whose work `run` does; events go through job.emit. */
  start(run: (job: Job) => Promise<void>): Job {
    const job = new Job();
    this.jobs.set(job.id, job);
    const orphan = setTimeout(() => {
      if (!job.subscribed && !job.done) job.controller.abort(new Error('nobody subscribed to the job\'s events'));
    }, this.options.orphanMs);
    orphan.unref();
    void run(job).finally(() => {
      clearTimeout(orphan);
      const t = setTimeout(() => this.jobs.delete(job.id), this.options.keepMs);
      t.unref();
    });
    return job;
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  cancelAll(reason: string): void {
    for (const j of this.jobs.values()) if (!j.done) j.controller.abort(new Error(reason));
  }
}

/** The old name of MemoryJobStore. */
export const JobRegistry = MemoryJobStore;
export type JobRegistry = MemoryJobStore;
