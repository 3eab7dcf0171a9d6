/**
 * A small pool of encoder workers (encoder-worker.ts) on the caller's side.
 *
 * A call is cut into pieces of whole ONNX batches (or, when a call is smaller
 * than a batch but large enough, into one piece per worker, so that an ingest
 * of 32 images uses both cores); pieces wait in a queue and each idle worker
 * takes the next one. Text pieces go before image pieces: a query should not
 * wait behind an ingest. Results are put back in input order.
 *
 * The threads (start, loss and replacement, close) are a {@link WorkerPool}.
 */
import { RagdiffError } from '../errors.js';
import { deserializeError } from '../worker-errors.js';
import { WorkerPool, type Dispatch } from '../worker-pool.js';
import type { ClipInfo, ClipSessionOptions } from './clip-sessions.js';
import type { RgbImage } from './encoders.js';
import type { EncoderWorkerData, FromEncoderWorker, ToEncoderWorker } from './encoder-protocol.js';

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

let nextId = 1;

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
  private readonly textQueue: Piece[] = [];
  private readonly imageQueue: Piece[] = [];
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly pool: WorkerPool<Piece, FromEncoderWorker, ClipInfo>,
    private readonly size: number,
    private readonly batchSize: number,
  ) {
    pool.serve({
      next: () => this.next(),
      message: (piece, m) => {
        if (m.type === 'result') this.fill(piece, m.embeds, m.hiddenStates);
        else if (m.type === 'error') this.fail(piece.call, deserializeError(m.error));
      },
      lost: (piece, why) => this.fail(piece.call, new RagdiffError('WORKER_FAILED', `encoder worker ${why} while embedding`)),
      exhausted: (e) => this.drop(e),
    });
  }

  /** Starts `size` workers on the bundle at `dir` and resolves once every one has its sessions open. */
  static async start(dir: string, size: number, options: ClipSessionOptions): Promise<{ pool: EncoderPool; info: ClipInfo }> {
    const { onWarning, ...rest } = options;
    const warn = onWarning ?? ((m: string) => console.warn(`ragdiff: ${m}`));
    const workerData: EncoderWorkerData = { dir, options: rest };
    const { pool, infos } = await WorkerPool.start<Piece, FromEncoderWorker, ClipInfo>({ url: WORKER_URL, workerData, size, what: 'encoder worker', onWarning: warn });
    const info = infos[0]!;
    return { pool: new EncoderPool(pool, size, info.batchSize), info };
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
    return new Promise((resolve, reject) => {
      const sizes = splitSizes(n, this.size, this.batchSize);
      const call: Call = { ...what, embeds: new Array<Float32Array>(n), remaining: sizes.length, settled: false, resolve, reject };
      const queue = what.texts ? this.textQueue : this.imageQueue;
      let start = 0;
      for (const s of sizes) {
        queue.push({ id: nextId++, call, start, end: start + s });
        start += s;
      }
      this.pool.pump();
    });
  }

  /** The next piece for an idle worker (text before images), packed into its message. */
  private next(): Dispatch<Piece> | undefined {
    let piece: Piece | undefined;
    while ((piece = this.textQueue.shift() ?? this.imageQueue.shift()) && piece.call.settled);
    if (!piece) return undefined;
    const { call, id, start, end } = piece;
    if (call.texts) {
      const message: ToEncoderWorker = { type: 'text', id, texts: call.texts.slice(start, end), hiddenStates: call.hiddenStates };
      return { job: piece, message };
    }
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
    const message: ToEncoderWorker = { type: 'images', id, rgb, sizes, first: start };
    return { job: piece, message, transfer: [rgb.buffer, sizes.buffer] };
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
    this.closing = this.pool.close();
    return this.closing;
  }
}
