/**
 * The knowledge-base file of trajectory retrieval (ReDi, METHODS.md §4): per
 * sampled trajectory the latent at the key step (the lookup key), the latent at
 * one or more value steps (with the sampler history a resume needs), the prompt
 * embedding, the seed and the prompt.
 *
 * Layout (little-endian):
 *   header   'RDKB' | version u32 | json length u32 | crc32(json) u32 | json (KbHeader) | zero pad to 8
 *   chunk*   'RDCH' | count u32 | payload length u64 | crc32(keys) u32 | crc32(rest) u32 | crc32(chunk header bytes 0..23) u32 | reserved u32
 *            payload: keys f32[count × D] | value crc32 u32[count] | values f32[count × VS]
 *                     | embeddings f32[count × E] | seeds f64[count] | prompts (JSON array, utf8) | zero pad to 8
 *   D = latent size, VS = valueSteps × D × (history ? 2 : 1), E = embeddingDim.
 *
 * Bases are appendable. An appender holds `<file>.lock` (pid, created
 * exclusively; a dead owner's lock is taken over), writes the chunk with its
 * magic zeroed, fsyncs, then writes the magic: a chunk is visible only once
 * complete, so a reader never sees a torn chunk; a zeroed or short tail left
 * by a crashed appender is cut by the next appender and is an error for
 * readers when nobody holds the lock. Readers keep only the chunk index in
 * memory; keys are read a chunk window at a time and values per record, so a
 * base larger than RAM is never loaded whole. Every read is checksummed.
 */
import { closeSync, existsSync, fstatSync, fsyncSync, ftruncateSync, openSync, readFileSync, readSync, rmSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { RagdiffError, type ErrorCode } from '../errors.js';
import { fsReason, openUserFileSync } from '../io/user-file.js';

export const KB_VERSION = 1;
const MAGIC = 0x424b4452; // 'RDKB'
const CHUNK_MAGIC = 0x48434452; // 'RDCH'
const CHUNK_HEADER = 32;

/** Everything a trajectory depends on; a base is valid only for an identical binding. */
export interface KbBinding {
  /** sha256 of the model bundle (ModelInfo.hash). */
  modelHash: string;
  sampler: string;
  /** The resolved diffusers scheduler config (Scheduler.config). */
  scheduler: Record<string, unknown>;
  steps: number;
  guidance: { mode: 'cfg'; scale: number; negativePrompt: string };
  width: number;
  height: number;
  /** [channels, height, width] of one latent. */
  latentShape: [number, number, number];
}

export interface KbHeader extends KbBinding {
  format: 'ragdiff-kb';
  version: number;
  /** Step index whose input latent is the key (latent after keyStep denoising steps). */
  keyStep: number;
  /** Step indices whose input latents are stored as values (ascending, each > keyStep). */
  valueSteps: number[];
  /** Values carry the sampler's history (DPM-Solver++: the data prediction of step v − 1). */
  history: boolean;
  embeddingDim: number;
  createdAt: string;
}

export interface TrajectoryRecord {
  key: Float32Array;
  /** One latent per value step. */
  values: Float32Array[];
  /** One history per value step when the header says history, else absent. */
  histories?: (Float32Array | null)[];
  embedding?: Float32Array;
  seed: number;
  prompt: string;
}

export interface KbChunk {
  offset: number;
  count: number;
  /** Index of the chunk's first record in the base. */
  first: number;
  payloadLength: number;
  keysCrc: number;
  restCrc: number;
}

export class KbMismatchError extends RagdiffError {
  constructor(readonly field: string, message: string) {
    super('KB_MISMATCH', message);
    this.name = 'KbMismatchError';
  }
}

const err = (code: ErrorCode, msg: string) => new RagdiffError(code, msg);
const notWritable = (path: string, e: unknown) => new RagdiffError('OUTPUT_NOT_WRITABLE', `cannot write the knowledge base ${path}: ${fsReason(e)}`, { cause: e });

function latentSize(h: Pick<KbHeader, 'latentShape'>): number {
  return h.latentShape[0] * h.latentShape[1] * h.latentShape[2];
}
function valueStride(h: KbHeader): number {
  return h.valueSteps.length * latentSize(h) * (h.history ? 2 : 1);
}

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${stable((v as Record<string, unknown>)[k])}`).join(',')}}`;
  }
  if (typeof v === 'number' && !Number.isFinite(v)) return JSON.stringify(String(v)); // as the header stores it
  return JSON.stringify(v);
}

/** Throws KbMismatchError naming the first field of `expected` that differs from the base's header. */
export function checkBinding(header: KbHeader, expected: KbBinding, path = 'the knowledge base'): void {
  const fields: [string, unknown, unknown][] = [
    ['modelHash', header.modelHash, expected.modelHash],
    ['sampler', header.sampler, expected.sampler],
    ['scheduler', header.scheduler, expected.scheduler],
    ['steps', header.steps, expected.steps],
    ['guidance.mode', header.guidance.mode, expected.guidance.mode],
    ['guidance.scale', header.guidance.scale, expected.guidance.scale],
    ['guidance.negativePrompt', header.guidance.negativePrompt, expected.guidance.negativePrompt],
    ['width', header.width, expected.width],
    ['height', header.height, expected.height],
    ['latentShape', header.latentShape, expected.latentShape],
  ];
  for (const [name, have, want] of fields) {
    if (stable(have) !== stable(want)) {
      const show = (v: unknown) => { const s = stable(v); return s.length > 80 ? `${s.slice(0, 77)}...` : s; };
      throw new KbMismatchError(name, `${path} was built with ${name} = ${show(have)}, this generation uses ${show(want)}; a trajectory base is valid only for the exact model, sampler, steps, guidance and shape it was sampled with`);
    }
  }
}

function validateHeader(h: KbHeader): void {
  const bad = (m: string) => { throw err('KB_INVALID', `invalid knowledge-base header: ${m}`); };
  if (h.format !== 'ragdiff-kb') bad('format must be "ragdiff-kb"');
  if (typeof h.modelHash !== 'string' || typeof h.sampler !== 'string') bad('modelHash and sampler must be strings');
  if (!Number.isInteger(h.steps) || h.steps < 1) bad('steps must be a positive integer');
  if (!Array.isArray(h.latentShape) || h.latentShape.length !== 3 || !h.latentShape.every((v) => Number.isInteger(v) && v > 0)) bad('latentShape must be 3 positive integers');
  if (!Number.isInteger(h.keyStep) || h.keyStep < 1) bad('keyStep must be an integer ≥ 1');
  if (!Array.isArray(h.valueSteps) || h.valueSteps.length < 1) bad('valueSteps must list at least one step');
  let prev = h.keyStep;
  for (const v of h.valueSteps) {
    if (!Number.isInteger(v) || v <= prev) bad('valueSteps must be ascending integers above keyStep');
    prev = v;
  }
  if (!Number.isInteger(h.embeddingDim) || h.embeddingDim < 0) bad('embeddingDim must be a non-negative integer');
  if (typeof h.history !== 'boolean') bad('history must be a boolean');
}

function readExactly(fd: number, buf: Uint8Array, offset: number): number {
  let done = 0;
  while (done < buf.length) {
    const n = readSync(fd, buf, done, buf.length - done, offset + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

function aligned(n: number): Uint8Array {
  return new Uint8Array(new ArrayBuffer(n));
}
const pad8 = (n: number) => (n + 7) & ~7;

// --- lock ------------------------------------------------------------------------------------

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
const lockPath = (path: string) => `${path}.lock`;

/** The pid of a live process holding the base's append lock, or null. */
export function kbLockOwner(path: string): number | null {
  let pid = NaN;
  try {
    pid = Number(readFileSync(lockPath(path), 'utf8').trim());
  } catch {
    return null;
  }
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : null;
}

function acquire(path: string): () => void {
  const lp = lockPath(path);
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(lp, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(lp, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw notWritable(lp, e);
      const owner = kbLockOwner(path);
      if (owner !== null) throw err('KB_LOCKED', `${path} is being appended to by process ${owner} (${lp})`);
      rmSync(lp, { force: true }); // stale: its owner is gone
    }
  }
  throw err('KB_LOCKED', `cannot take the append lock ${lp}`);
}

// --- writing ----------------------------------------------------------------------------------

function encodeHeader(h: KbHeader): Uint8Array {
  // JSON has no ±Infinity / NaN (diffusers' lambda_min_clipped is -Infinity): stored as strings.
  const json = Buffer.from(JSON.stringify(h, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)), 'utf8');
  const total = pad8(16 + json.length);
  const out = aligned(total);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, KB_VERSION, true);
  dv.setUint32(8, json.length, true);
  dv.setUint32(12, crc32(json), true);
  out.set(json, 16);
  return out;
}

/** Creates an empty base (header only). Fails with KB_EXISTS when the file exists. */
export function createKnowledgeBase(path: string, header: Omit<KbHeader, 'format' | 'version' | 'createdAt'> & { createdAt?: string }): KbHeader {
  const h: KbHeader = { format: 'ragdiff-kb', version: KB_VERSION, createdAt: new Date().toISOString(), ...header };
  validateHeader(h);
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw err('KB_EXISTS', `${path} already exists; append to it or choose another path`);
    throw notWritable(path, e);
  }
  try {
    writeSync(fd, encodeHeader(h));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return h;
}

function encodeChunk(h: KbHeader, recs: readonly TrajectoryRecord[]): Uint8Array {
  const D = latentSize(h), VS = valueStride(h), E = h.embeddingDim, n = recs.length;
  const prompts = Buffer.from(JSON.stringify(recs.map((r) => r.prompt)), 'utf8');
  const keysBytes = 4 * n * D;
  const restBytes = 4 * n + 4 * n * VS + 4 * n * E + 8 * n + prompts.length;
  const payload = pad8(keysBytes + restBytes);
  const out = aligned(CHUNK_HEADER + payload);
  const body = out.subarray(CHUNK_HEADER);
  const keys = new Float32Array(out.buffer, CHUNK_HEADER, n * D);
  const vcrc = new Uint32Array(out.buffer, CHUNK_HEADER + keysBytes, n);
  const valuesOff = CHUNK_HEADER + keysBytes + 4 * n;
  const values = new Float32Array(out.buffer, valuesOff, n * VS);
  const emb = new Float32Array(out.buffer, valuesOff + 4 * n * VS, n * E);
  const seedsOff = valuesOff + 4 * n * VS + 4 * n * E;
  const dv = new DataView(out.buffer);
  recs.forEach((r, i) => {
    const where = `record ${i}`;
    if (!(r.key instanceof Float32Array) || r.key.length !== D) throw err('KB_INVALID', `${where}: key must be a Float32Array of ${D} floats`);
    keys.set(r.key, i * D);
    if (!Array.isArray(r.values) || r.values.length !== h.valueSteps.length) throw err('KB_INVALID', `${where}: needs one value per value step (${h.valueSteps.length})`);
    r.values.forEach((v, j) => {
      if (!(v instanceof Float32Array) || v.length !== D) throw err('KB_INVALID', `${where}: values[${j}] must be a Float32Array of ${D} floats`);
      const base = i * VS + j * D * (h.history ? 2 : 1);
      values.set(v, base);
      if (h.history) {
        const hist = r.histories?.[j];
        if (!(hist instanceof Float32Array) || hist.length !== D) throw err('KB_INVALID', `${where}: histories[${j}] must be a Float32Array of ${D} floats (the base stores sampler history)`);
        values.set(hist, base + D);
      }
    });
    for (const a of [r.key, ...r.values, ...(h.history ? r.histories ?? [] : [])]) {
      for (let k = 0; k < a!.length; k++) if (!Number.isFinite(a![k])) throw err('KB_INVALID', `${where}: tensors must be finite`);
    }
    vcrc[i] = crc32(new Uint8Array(out.buffer, valuesOff + 4 * i * VS, 4 * VS));
    if (E > 0) {
      if (!(r.embedding instanceof Float32Array) || r.embedding.length !== E) throw err('KB_INVALID', `${where}: embedding must be a Float32Array of ${E} floats`);
      emb.set(r.embedding, i * E);
    }
    if (!Number.isSafeInteger(r.seed) || r.seed < 0) throw err('KB_INVALID', `${where}: seed must be a non-negative safe integer`);
    dv.setFloat64(seedsOff + 8 * i, r.seed, true);
  });
  out.set(prompts, seedsOff + 8 * n);
  dv.setUint32(0, 0, true); // magic written last (commit)
  dv.setUint32(4, n, true);
  dv.setBigUint64(8, BigInt(payload), true);
  dv.setUint32(16, crc32(body.subarray(0, keysBytes)), true);
  dv.setUint32(20, crc32(body.subarray(keysBytes, keysBytes + restBytes)), true);
  return out;
}

function chunkHeaderCrc(hdr: Uint8Array): number {
  const tmp = hdr.slice(0, 24);
  new DataView(tmp.buffer).setUint32(0, CHUNK_MAGIC, true);
  return crc32(tmp);
}

export interface AppendOptions {
  /** Test seam: runs after the chunk body is durable and before it is committed (the lock is held). */
  beforeCommit?: () => void;
}

/**
 * Appends trajectories as one chunk under the append lock (KB_LOCKED when
 * another live process holds it). A torn tail left by a crashed appender is cut first.
 */
export function appendTrajectories(path: string, records: readonly TrajectoryRecord[], options: AppendOptions = {}): number {
  if (!Array.isArray(records) || records.length === 0) throw err('KB_INVALID', 'records must be a non-empty array');
  const release = acquire(path);
  try {
    const kb = KnowledgeBase.open(path, { repairTail: true });
    const chunk = encodeChunk(kb.header, records);
    kb.close();
    let fd: number;
    try {
      fd = openSync(path, 'r+');
    } catch (e) {
      throw notWritable(path, e);
    }
    try {
      const end = kb.end;
      if (fstatSync(fd).size !== end) ftruncateSync(fd, end);
      writeSync(fd, chunk, 0, chunk.length, end);
      fsyncSync(fd);
      options.beforeCommit?.();
      const magic = aligned(4);
      new DataView(magic.buffer).setUint32(0, CHUNK_MAGIC, true);
      const crcb = aligned(4);
      new DataView(crcb.buffer).setUint32(0, chunkHeaderCrc(chunk), true);
      writeSync(fd, crcb, 0, 4, end + 24);
      writeSync(fd, magic, 0, 4, end);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    return kb.count + records.length;
  } finally {
    release();
  }
}

// --- reading ----------------------------------------------------------------------------------

export interface OpenOptions {
  /** Check the header against this binding (KB_MISMATCH naming the field). */
  expect?: KbBinding;
  /** The appender and `kb build` (which appends next): stop at a torn tail instead of failing; the append cuts it. */
  repairTail?: boolean;
}

export interface KeyWindow {
  /** Index of the window's first record. */
  first: number;
  count: number;
  /** count × latent size floats. */
  keys: Float32Array;
}

export class KnowledgeBase {
  readonly header: KbHeader;
  readonly chunks: KbChunk[] = [];
  /** Records in complete chunks. */
  count = 0;
  /** File offset just past the last complete chunk. */
  end = 0;
  /** True when an appender (another live process) was writing a chunk past `end` when the index was read. */
  appendInProgress = false;
  #fd: number | null;
  readonly #dataStart: number;

  private constructor(readonly path: string, fd: number, header: KbHeader, dataStart: number) {
    this.#fd = fd;
    this.header = header;
    this.#dataStart = dataStart;
    this.end = dataStart;
  }

  /** Opens a base: reads the header and the chunk index (not the data). */
  static open(path: string, options: OpenOptions = {}): KnowledgeBase {
    if (typeof path !== 'string' || path === '') throw new RagdiffError('INVALID_TYPE', 'path must be a non-empty string');
    let fd: number;
    try {
      // Through the file gate: a FIFO or device never blocks the open, a directory is IS_DIRECTORY.
      fd = openUserFileSync(path, 'knowledge base');
    } catch (e) {
      if ((e as { code?: string }).code === 'FILE_NOT_FOUND') throw err('KB_NOT_FOUND', `${path}: no such knowledge base`);
      throw e;
    }
    try {
      const size = fstatSync(fd).size;
      const head = aligned(16);
      if (readExactly(fd, head, 0) < 16) throw err('KB_NOT_A_BASE', `${path} is not a ragdiff knowledge base (too short for a header)`);
      const dv = new DataView(head.buffer);
      if (dv.getUint32(0, true) !== MAGIC) throw err('KB_NOT_A_BASE', `${path} is not a ragdiff knowledge base (no RDKB signature)`);
      const version = dv.getUint32(4, true);
      if (version !== KB_VERSION) throw err('KB_VERSION', `${path} is knowledge-base format version ${version}; this ragdiff reads version ${KB_VERSION}`);
      const len = dv.getUint32(8, true);
      if (16 + len > size) throw err('KB_TRUNCATED', `${path}: the header is cut short, so the base holds no trajectory and cannot be appended to; delete it and build it again`);
      const json = aligned(len);
      readExactly(fd, json, 16);
      if (crc32(json) !== dv.getUint32(12, true)) throw err('KB_CORRUPT', `${path}: the header checksum does not match (corrupted file)`);
      let header: KbHeader;
      try {
        header = JSON.parse(Buffer.from(json).toString('utf8')) as KbHeader;
      } catch {
        throw err('KB_CORRUPT', `${path}: the header is not valid JSON`);
      }
      validateHeader(header);
      const kb = new KnowledgeBase(path, fd, header, pad8(16 + len));
      kb.#scan(options.repairTail === true);
      if (options.expect) checkBinding(header, options.expect, path);
      return kb;
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  /** Re-reads the chunk index past the known end (picks up chunks appended since). */
  refresh(): void {
    this.#scan(false);
  }

  #scan(tolerateTail: boolean): void {
    const fd = this.#requireOpen();
    const size = fstatSync(fd).size;
    let off = this.end;
    this.appendInProgress = false;
    const hdr = aligned(CHUNK_HEADER);
    while (off < size) {
      const got = readExactly(fd, hdr, off);
      const dv = new DataView(hdr.buffer);
      const magic = got >= 4 ? dv.getUint32(0, true) : 0;
      const count = got >= CHUNK_HEADER ? dv.getUint32(4, true) : 0;
      const payload = got >= CHUNK_HEADER ? Number(dv.getBigUint64(8, true)) : 0;
      const complete = got === CHUNK_HEADER && magic === CHUNK_MAGIC && off + CHUNK_HEADER + payload <= size;
      if (!complete || dv.getUint32(24, true) !== chunkHeaderCrc(hdr)) {
        const tail = magic === 0 || got < CHUNK_HEADER || (magic === CHUNK_MAGIC && off + CHUNK_HEADER + payload > size);
        if (tail && tolerateTail) break; // the appender itself (holding the lock): the tail is cut
        if (tail && kbLockOwner(this.path) !== null) {
          this.appendInProgress = true; // an appender (another process, or another thread of this one) is writing this chunk
          break;
        }
        if (tail) throw err('KB_TRUNCATED', `${this.path}: the chunk at byte ${off} is incomplete (an interrupted append); the next append repairs it, keeping the ${this.count} trajectories before it: run \`ragdiff kb build --out ${this.path}\` with the base's settings`);
        throw err('KB_CORRUPT', `${this.path}: the chunk header at byte ${off} fails its checksum (corrupted file)`);
      }
      this.chunks.push({ offset: off, count, first: this.count, payloadLength: payload, keysCrc: dv.getUint32(16, true), restCrc: dv.getUint32(20, true) });
      this.count += count;
      off += CHUNK_HEADER + payload;
      this.end = off;
    }
  }

  #requireOpen(): number {
    if (this.#fd === null) throw err('KB_CLOSED', `${this.path}: the knowledge base is closed`);
    return this.#fd;
  }

  /**
   * The keys, one window of whole chunks at a time (at most maxRecords records
   * per window unless a single chunk is larger). Each chunk's keys are checksummed.
   */
  *keyWindows(maxRecords = 65536): Generator<KeyWindow> {
    const D = latentSize(this.header);
    let i = 0;
    while (i < this.chunks.length) {
      let n = 0, j = i;
      while (j < this.chunks.length && (n === 0 || n + this.chunks[j]!.count <= maxRecords)) n += this.chunks[j++]!.count;
      const keys = new Float32Array(n * D);
      let at = 0;
      for (let c = i; c < j; c++) {
        const ch = this.chunks[c]!;
        const bytes = new Uint8Array(keys.buffer, at * D * 4, ch.count * D * 4);
        this.#readChecked(bytes, ch.offset + CHUNK_HEADER, ch.keysCrc, `keys of the chunk at byte ${ch.offset}`);
        at += ch.count;
      }
      yield { first: this.chunks[i]!.first, count: n, keys };
      i = j;
    }
  }

  /** All keys in memory (count × latent size); for bases that fit. */
  readAllKeys(): Float32Array {
    const D = latentSize(this.header);
    const out = new Float32Array(this.count * D);
    for (const w of this.keyWindows()) out.set(w.keys, w.first * D);
    return out;
  }

  #readChecked(dst: Uint8Array, offset: number, crc: number, what: string): void {
    const fd = this.#requireOpen();
    if (readExactly(fd, dst, offset) !== dst.length) throw err('KB_TRUNCATED', `${this.path}: ${what} is cut short`);
    if (crc32(dst) !== crc) throw err('KB_CORRUPT', `${this.path}: ${what} fails its checksum (corrupted file)`);
  }

  #locate(index: number): [KbChunk, number] {
    if (!Number.isInteger(index) || index < 0 || index >= this.count) throw new RagdiffError('OUT_OF_RANGE', `record ${index} is outside 0..${this.count - 1}`);
    let lo = 0, hi = this.chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.chunks[mid]!.first <= index) lo = mid; else hi = mid - 1;
    }
    const ch = this.chunks[lo]!;
    return [ch, index - ch.first];
  }

  /** Position of `valueStep` in the header's valueSteps (KB_MISMATCH naming valueStep when absent). */
  valueSlot(valueStep: number): number {
    const j = this.header.valueSteps.indexOf(valueStep);
    if (j < 0) throw new KbMismatchError('valueStep', `${this.path} stores values at steps ${this.header.valueSteps.join(', ')}, not at ${valueStep}`);
    return j;
  }

  /** The value latent (and history) of record `index` at `valueStep`, checksummed per record. */
  readValue(index: number, valueStep: number): { latent: Float32Array; history: Float32Array | null } {
    const j = this.valueSlot(valueStep);
    const [ch, row] = this.#locate(index);
    const h = this.header, D = latentSize(h), VS = valueStride(h);
    const keysBytes = 4 * ch.count * D;
    const crcBuf = aligned(4);
    const fd = this.#requireOpen();
    readExactly(fd, crcBuf, ch.offset + CHUNK_HEADER + keysBytes + 4 * row);
    const rec = aligned(4 * VS);
    this.#readChecked(rec, ch.offset + CHUNK_HEADER + keysBytes + 4 * ch.count + 4 * row * VS, new DataView(crcBuf.buffer).getUint32(0, true), `record ${index}'s values`);
    const f = new Float32Array(rec.buffer);
    const base = j * D * (h.history ? 2 : 1);
    return { latent: f.slice(base, base + D), history: h.history ? f.slice(base + D, base + 2 * D) : null };
  }

  /** Seed, prompt and embedding of record `index` (reads and checksums its chunk's metadata). */
  readMeta(index: number): { seed: number; prompt: string; embedding: Float32Array } {
    const [ch, row] = this.#locate(index);
    const h = this.header, D = latentSize(h), VS = valueStride(h), E = h.embeddingDim, n = ch.count;
    const keysBytes = 4 * n * D;
    const rest = aligned(ch.payloadLength - keysBytes);
    const fd = this.#requireOpen();
    readExactly(fd, rest, ch.offset + CHUNK_HEADER + keysBytes);
    const promptsOff = 4 * n + 4 * n * VS + 4 * n * E + 8 * n;
    let promptsEnd = rest.length;
    while (promptsEnd > promptsOff && rest[promptsEnd - 1] === 0) promptsEnd--;
    if (crc32(rest.subarray(0, promptsEnd)) !== ch.restCrc) throw err('KB_CORRUPT', `${this.path}: the metadata of the chunk at byte ${ch.offset} fails its checksum`);
    const dv = new DataView(rest.buffer);
    const prompts = JSON.parse(Buffer.from(rest.subarray(promptsOff, promptsEnd)).toString('utf8')) as string[];
    const embOff = 4 * n + 4 * n * VS;
    return {
      seed: dv.getFloat64(embOff + 4 * n * E + 8 * row, true),
      prompt: prompts[row]!,
      embedding: new Float32Array(rest.buffer.slice(embOff + 4 * row * E, embOff + 4 * (row + 1) * E)),
    };
  }

  /** Reads every chunk and checks every checksum (KB_CORRUPT / KB_TRUNCATED on failure). */
  verify(): void {
    for (const _ of this.keyWindows()) { /* keys checked while reading */ }
    for (const ch of this.chunks) {
      this.readMeta(ch.first);
      for (let r = 0; r < ch.count; r++) this.readValue(ch.first + r, this.header.valueSteps[0]!);
    }
  }

  close(): void {
    if (this.#fd !== null) closeSync(this.#fd);
    this.#fd = null;
  }
}
