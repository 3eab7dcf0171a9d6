/**
 * Admission control in front of the pipeline's bounded queue. The server
 * counts every generation request it has accepted (retrieval, queue wait and
 * denoising) and refuses beyond the pipeline's capacity at once with 429, so
 * load never grows memory or latency without bound. It also holds each
 * request's AbortController, so shutdown can cancel what is still running.
 */
import { HttpError } from './errors.js';

export class Admission {
  private inflightCount = 0;
  private readonly controllers = new Set<AbortController>();
  private drained: (() => void)[] = [];
  /** Smoothed seconds per generation, for Retry-After. */
  private ewmaSeconds = 1;
  closing = false;

  constructor(private readonly capacity: () => number) {}

  get inflight(): number {
    return this.inflightCount;
  }

  /** Takes a slot or throws 429 (full) / 503 (shutting down). The returned release must be called once. */
  admit(controller: AbortController): () => void {
    if (this.closing) throw new HttpError('SHUTTING_DOWN', 'the server is shutting down');
    if (this.inflightCount >= this.capacity()) throw this.busy();
    this.inflightCount++;
    this.controllers.add(controller);
    const started = performance.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inflightCount--;
      this.controllers.delete(controller);
      if (!controller.signal.aborted) this.ewmaSeconds = 0.8 * this.ewmaSeconds + 0.2 * ((performance.now() - started) / 1000);
      if (this.inflightCount === 0) for (const f of this.drained.splice(0)) f();
    };
  }

  /**
   * 429 with Retry-After: about one generation's time, when a running one
   * should have finished and freed a slot (an estimate, not a promise).
   */
  busy(message = 'the generation queue is full; retry later'): HttpError {
    return new HttpError('BUSY', message, { 'retry-after': String(this.retryAfterSeconds()) });
  }

  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.ewmaSeconds));
  }

  /** Resolves when nothing is in flight, or after `ms`; then true when drained. */
  waitIdle(ms: number): Promise<boolean> {
    if (this.inflightCount === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.inflightCount === 0), ms);
      this.drained.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** Cancels everything still in flight. */
  abortAll(reason: string): void {
    for (const c of this.controllers) c.abort(new Error(reason));
  }
}
