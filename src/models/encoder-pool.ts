/**
 * A small pool of encoder workers (encoder-worker.ts) on the caller's side.
 *
 * A call is cut into pieces of whole ONNX batches (or, when a call is smaller
 * than a batch but large enough, into one piece per worker, so that an ingest
 * of 32 images uses both cores); pieces wait in a queue and each idle worker
 * takes the next one. Text pieces go before image pieces: a query should not
 * wait behind an ingest. Results are put back in input order.
 *
 * A worker is unref'd while it has nothing to do, so an idle encoder never
 * keeps the process alive. A worker that dies fails the calls it was serving
 * with WORKER_FAILED and is replaced; queued calls continue on the new one.
 */
import { Worker } from 'node:worker_threads';
import { RagdiffError } from '../errors.js';
import { deserializeError } from '../worker-errors.js';
import type { ClipInfo, ClipSessionOptions } from './clip-sessions.js';
import type { RgbImage } from './encoders.js';
import type { EncoderWorkerData, FromEncoderWorker, ToEncoderWorker } from './encoder-protocol.js';
import { awaitWorkerReady, startWorker } from '../worker-options.js';

const WORKER_URL = new URL('./encoder-worker.js', import.meta.url);

/** A call below this many inputs per worker is not split (the message round trip would cost more). */
const MIN_SPLIT = 8;

interface Call {
  images?: readonly RgbImage[];
  texts?: readonly string[];
  hiddenStates: boolean;
  embeds: Float32Array[];
  hidden?: Float32Array;
  remaining: number;
  settled: boolean;
  resolve(r: { embeds: Float32Array[]; hiddenStates?: Float32Array }): void;
  reject(e: unknown): void;
}

interface Piece {
  id: number;
  call: Call;
  start: number;
  end: number;
}

interface Slot {
  worker: Worker;
  piece: Piece | null;
  closed?: () => void;
}

let nextId = 1;

/** Ends a loaded, idle worker: it releases its sessions and its thread ends (see encoder-worker.ts). */
function retire(worker: Worker): void {
  worker.postMessage({ type: 'close' } satisfies ToEncoderWorker);
}

/**
 * How a call of n inputs is cut: whole batches of `batchSize` (the same ONNX
 * batches as in-process) when there are at least as many batches as workers;
 * otherwise one piece per worker of at least MIN_SPLIT inputs.
 */
export function splitSizes(n: number, workers: number, batchSize: number): number[] {
  const batches = Math.ceil(n / batchSize);
  const pieces = Math.max(batches, Math.min(workers, Math.floor(n / MIN_SPLIT)), 1);
  const size = pieces === batches ? batchSize : Math.ceil(n / pieces);
  const out: number[] = [];
  for (let start = 0; start < n; start += size) out.push(Math.min(size, n - start));
  return out;
}

export class EncoderPool {
  private readonly slots: Slot[] = [];
  private readonly textQueue: Piece[] = [];
  private readonly imageQueue: Piece[] = [];
  private closing: Promise<void> | null = null;
  private starting = 0;

  private constructor(
    private readonly data: EncoderWorkerData,
    private readonly size: number,
    private readonly batchSize: number,
    private readonly warn: (m: string) => void,
  ) {}

  /** Starts `size` workers on the bundle at `dir` and resolves once every one has its sessions open. */
  static async start(dir: string, size: number, options: ClipSessionOptions): Promise<{ pool: EncoderPool; info: ClipInfo }> {
    const { onWarning, ...rest } = options;
    const warn = onWarning ?? ((m: string) => console.warn(`ragdiff: ${m}`));
    const data: EncoderWorkerData = { dir, options: rest };
    // Every start is waited for: terminating a worker inside InferenceSession.create aborts the process.
    const settled = await Promise.allSettled(Array.from({ length: size }, () => EncoderPool.spawn(data, warn)));
    const started = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) {
      for (const s of started) retire(s.worker);
      throw failed.reason;
    }
    const info = started[0]!.info;
    const pool = new EncoderPool(data, size, info.batchSize, warn);
    for (const s of started) pool.attach(s.worker);
    return { pool, info };
  }

  /** Starts one worker; resolves with its info once its sessions are open. */
  private static spawn(data: EncoderWorkerData, warn: (m: string) => void): Promise<{ worker: Worker; info: ClipInfo }> {
    let worker: Worker;
    try {
      worker = startWorker(WORKER_URL, { workerData: data }, warn);
    } catch (e) {
      return Promise.reject(new RagdiffError('WORKER_FAILED', `encoder worker could not be created: ${(e as Error).message}`, { cause: e }));
    }
    return awaitWorkerReady<ClipInfo>(worker, 'encoder worker', warn).then((info) => ({ worker, info }));
  }

  private attach(worker: Worker): void {
    const slot: Slot = { worker, piece: null };
    this.slots.push(slot);
    worker.on('message', (m: FromEncoderWorker) => {
      if (m.type === 'warning') return this.warn(m.message);
      if (m.type === 'closed') return slot.closed?.();
      const piece = slot.piece;
      if (m.type === 'ready' || !piece || m.id !== piece.id) return;
      slot.piece = null;
      worker.unref();
      if (m.type === 'result') this.fill(piece, m.embeds, m.hiddenStates);
      else this.fail(piece.call, deserializeError(m.error));
      this.pump();
    });
    const lost = (why: string) => {
      const i = this.slots.indexOf(slot);
      if (i < 0) return;
      this.slots.splice(i, 1);
      if (slot.piece) this.fail(slot.piece.call, new RagdiffError('WORKER_FAILED', `encoder worker ${why} while embedding`));
      slot.piece = null;
      slot.closed?.();
      if (!this.closing) this.replace();
    };
    worker.on('error', (e) => lost(`crashed (${e.message})`));
    worker.on('exit', (code) => lost(`exited with code ${code}`));
    // After the listeners: adding a 'message' listener refs the worker's port again.
    worker.unref();
  }

  /** Starts a worker in place of a lost one; queued pieces continue once it is ready. */
  private replace(): void {
    this.starting++;
    EncoderPool.spawn(this.data, this.warn).then(
      ({ worker }) => {
        this.starting--;
        if (this.closing) retire(worker);
        else {
          this.attach(worker);
          this.pump();
        }
      },
      (e) => {
        this.starting--; // a worker that failed to load ends by itself
        if (this.slots.length === 0 && this.starting === 0) this.drop(e);
      },
    );
  }

  embedImages(images: readonly RgbImage[]): Promise<Float32Array[]> {
    return this.submit({ images, hiddenStates: false }, images.length).then((r) => r.embeds);
  }

  encodeText(texts: readonly string[], hiddenStates: boolean): Promise<{ embeds: Float32Array[]; hiddenStates?: Float32Array }> {
    return this.submit({ texts, hiddenStates }, texts.length);
  }

  private submit(what: Pick<Call, 'images' | 'texts' | 'hiddenStates'>, n: number): Promise<{ embeds: Float32Array[]; hiddenStates?: Float32Array }> {
    if (this.closing) return Promise.reject(new RagdiffError('CLOSED', 'the encoders were closed'));
    if (n === 0) return Promise.resolve(what.hiddenStates ? { embeds: [], hiddenStates: new Float32Array(0) } : { embeds: [] });
    // Back to full size if a replacement could not start earlier.
    while (this.slots.length + this.starting < this.size) this.replace();
    return new Promise((resolve, reject) => {
      const sizes = splitSizes(n, this.size, this.batchSize);
      const call: Call = { ...what, embeds: new Array<Float32Array>(n), remaining: sizes.length, settled: false, resolve, reject };
      const queue = what.texts ? this.textQueue : this.imageQueue;
      let start = 0;
      for (const s of sizes) {
        queue.push({ id: nextId++, call, start, end: start + s });
        start += s;
      }
      this.pump();
    });
  }

  /** Gives each idle worker the next piece. */
  private pump(): void {
    for (const slot of this.slots) {
      if (slot.piece) continue;
      let piece: Piece | undefined;
      while ((piece = this.textQueue.shift() ?? this.imageQueue.shift()) && piece.call.settled);
      if (!piece) return;
      slot.piece = piece;
      slot.worker.ref();
      const { call, id, start, end } = piece;
      if (call.texts) {
        const msg: ToEncoderWorker = { type: 'text', id, texts: call.texts.slice(start, end), hiddenStates: call.hiddenStates };
        slot.worker.postMessage(msg);
      } else {
        // One copy into a fresh buffer that is then transferred: the caller's arrays stay theirs,
        // and only these pixels travel (a cloned view would carry its whole backing buffer).
        const images = call.images!;
        const sizes = new Uint32Array(2 * (end - start));
        let bytes = 0;
        for (let i = start; i < end; i++) {
          sizes[2 * (i - start)] = images[i]!.width;
          sizes[2 * (i - start) + 1] = images[i]!.height;
          bytes += images[i]!.rgb.length;
        }
        const rgb = new Uint8Array(bytes);
        for (let i = start, at = 0; i < end; at += images[i]!.rgb.length, i++) rgb.set(images[i]!.rgb, at);
        const msg: ToEncoderWorker = { type: 'images', id, rgb, sizes, first: start };
        slot.worker.postMessage(msg, [rgb.buffer, sizes.buffer]);
      }
    }
  }

  private fill(piece: Piece, embeds: Float32Array, hidden: Float32Array | undefined): void {
    const call = piece.call;
    if (call.settled) return;
    const n = piece.end - piece.start;
    const dim = embeds.length / n;
    // Each embedding gets its own buffer, as in-process (a view would keep the whole reply alive).
    for (let i = 0; i < n; i++) call.embeds[piece.start + i] = embeds.slice(i * dim, (i + 1) * dim);
    if (call.hiddenStates && hidden) {
      const per = hidden.length / n;
      call.hidden ??= new Float32Array(per * call.embeds.length);
      call.hidden.set(hidden, piece.start * per);
    }
    if (--call.remaining === 0) {
      call.settled = true;
      call.resolve(call.hiddenStates ? { embeds: call.embeds, hiddenStates: call.hidden } : { embeds: call.embeds });
    }
  }

  private fail(call: Call, e: unknown): void {
    if (call.settled) return;
    call.settled = true; // its queued pieces are skipped by pump
    call.reject(e);
  }

  /** Fails every queued call (no worker is left to run them). */
  private drop(e: unknown): void {
    for (const p of [...this.textQueue.splice(0), ...this.imageQueue.splice(0)]) this.fail(p.call, e);
  }

  /**
   * Fails queued calls with CLOSED, lets the pieces being embedded finish,
   * then releases every worker's sessions and ends the workers.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.drop(new RagdiffError('CLOSED', 'the encoders were closed before this call ran'));
    this.closing = Promise.all(
        [...this.slots].map(async (slot) => {
          const closed = new Promise<void>((r) => (slot.closed = r));
          slot.worker.ref();
          slot.worker.postMessage({ type: 'close' } satisfies ToEncoderWorker);
          const timer = setTimeout(() => slot.closed?.(), 30_000);
          await closed;
          clearTimeout(timer);
          const i = this.slots.indexOf(slot);
          if (i >= 0) this.slots.splice(i, 1);
          await slot.worker.terminate();
        }),
    ).then(() => undefined);
    return this.closing;
  }
}
