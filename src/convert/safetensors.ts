/**
 * A safetensors reader (https://github.com/huggingface/safetensors, format: 8-byte little-endian
 * header length N, N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}`,
 * then the raw little-endian tensor bytes; offsets are relative to the end of the header).
 *
 * The header is checked before any tensor is read, as the reference implementation does: a header
 * over 100 MB, offsets outside the data, overlapping tensors, holes, or a byte length that is not
 * shape × dtype size are refused (WEIGHTS_INVALID). Pickled files are refused by name and by magic
 * bytes (WEIGHTS_PICKLED): unpickling is code execution. Tensors are read one at a time from the
 * file descriptor, so a multi-gigabyte file is never held in memory.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { basename, extname } from 'node:path';
import { RagdiffError } from '../errors.js';

export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const DTYPE_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1, U16: 2, U32: 4, U64: 8,
  F8_E4M3: 1, F8_E5M2: 1,
};

export interface TensorInfo {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Absolute byte range in the file. */
  readonly begin: number;
  readonly end: number;
}

export interface SafetensorsFile {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  /** A tensor's values as float32 (F32, F16 and BF16 are accepted). */
  readFloat32(name: string): { shape: readonly number[]; data: Float32Array };
  close(): void;
}

const PICKLE_EXT = new Set(['.bin', '.pt', '.pth', '.ckpt', '.pkl', '.pickle']);

function pickled(path: string, why: string): RagdiffError {
  return new RagdiffError('WEIGHTS_PICKLED',
    `${basename(path)}: ${why}; ragdiff never unpickles (loading a pickle runs code). Convert it once where you trust the file, e.g. ` +
    `python -c "import torch; from safetensors.torch import save_file; sd = torch.load('${basename(path)}', weights_only=True); ` +
    `save_file({f'{k}.{n}' if isinstance(v, dict) else k: t for k, v in sd.items() for n, t in (v.items() if isinstance(v, dict) else [('', v)])}, 'out.safetensors')" ` +
    `(IP-Adapter's .bin nests image_proj/ip_adapter dicts; the keys become image_proj.* and ip_adapter.*)`);
}

function invalid(path: string, msg: string): RagdiffError {
  return new RagdiffError('WEIGHTS_INVALID', `${basename(path)}: ${msg}`);
}

function isCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Opens and validates a safetensors file; tensors are read on demand. */
export function openSafetensors(path: string): SafetensorsFile {
  if (PICKLE_EXT.has(extname(path).toLowerCase())) throw pickled(path, `a ${extname(path)} file is a PyTorch pickle`);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new RagdiffError(code === 'ENOENT' ? 'FILE_NOT_FOUND' : code === 'EISDIR' ? 'IS_DIRECTORY' : 'FILE_UNREADABLE', `${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return parse(path, fd);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

function readExactly(fd: number, len: number, pos: number): Buffer {
  const b = Buffer.alloc(len);
  let got = 0;
  while (got < len) {
    const n = readSync(fd, b, got, len - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got === len ? b : b.subarray(0, got);
}

function parse(path: string, fd: number): SafetensorsFile {
  const st = fstatSync(fd);
  if (!st.isFile()) throw new RagdiffError('FILE_NOT_REGULAR', `${path}: not a regular file`);
  const size = st.size;
  const head = readExactly(fd, 8, 0);
  if (head.length >= 2 && head[0] === 0x80 && head[1] >= 2 && head[1] <= 5) throw pickled(path, 'the bytes are a Python pickle');
  if (head.length >= 4 && head.readUInt32LE(0) === 0x04034b50) throw pickled(path, 'the bytes are a zip archive (torch.save format, pickles inside)');
  if (head.length < 8) throw invalid(path, `truncated: ${size} bytes, no 8-byte header length`);
  const n64 = head.readBigUInt64LE(0);
  if (n64 > BigInt(MAX_HEADER_BYTES)) throw invalid(path, `header length ${n64} bytes is over the 100 MB limit`);
  const n = Number(n64);
  if (8 + n > size) throw invalid(path, `truncated: header says ${n} bytes but the file has ${size - 8} after the length`);
  const text = readExactly(fd, n, 8).toString('utf8');
  if (!text.startsWith('{')) throw invalid(path, 'header is not a JSON object');
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (e) {
    throw invalid(path, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw invalid(path, 'header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = size - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, v] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string')) {
        throw invalid(path, '__metadata__ must map strings to strings');
      }
      metadata = v as Record<string, string>;
      continue;
    }
    const t = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof t !== 'object' || t === null) throw invalid(path, `tensor ${name}: entry is not an object`);
    if (typeof t.dtype !== 'string' || !(t.dtype in DTYPE_BYTES)) throw invalid(path, `tensor ${name}: unknown dtype ${JSON.stringify(t.dtype)}`);
    if (!Array.isArray(t.shape) || !t.shape.every(isCount)) throw invalid(path, `tensor ${name}: shape must be an array of non-negative integers`);
    const off = t.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !isCount(off[0]) || !isCount(off[1]) || off[1] < off[0]) {
      throw invalid(path, `tensor ${name}: data_offsets must be [begin, end] with 0 <= begin <= end`);
    }
    let count = 1;
    for (const d of t.shape as number[]) {
      count *= d;
      if (!Number.isSafeInteger(count)) throw invalid(path, `tensor ${name}: shape ${JSON.stringify(t.shape)} overflows`);
    }
    const want = count * DTYPE_BYTES[t.dtype];
    if (off[1] - off[0] !== want) {
      throw invalid(path, `tensor ${name}: ${t.dtype} ${JSON.stringify(t.shape)} needs ${want} bytes but data_offsets span ${off[1] - off[0]}`);
    }
    if (off[1] > dataLen) throw invalid(path, `tensor ${name}: data_offsets end ${off[1]} is past the data (${dataLen} bytes; truncated file?)`);
    tensors.set(name, { name, dtype: t.dtype, shape: t.shape as number[], begin: dataStart + off[0], end: dataStart + off[1] });
  }
  const sorted = [...tensors.values()].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = dataStart;
  for (const t of sorted) {
    if (t.begin < at) throw invalid(path, `tensor ${t.name} overlaps the tensor before it`);
    if (t.begin > at) throw invalid(path, `${t.begin - at} bytes before tensor ${t.name} belong to no tensor`);
    at = t.end;
  }
  if (at !== size) throw invalid(path, `${size - at} bytes after the last tensor belong to no tensor`);
  let open = true;
  return {
    path,
    metadata,
    tensors,
    readFloat32(name) {
      if (!open) throw new RagdiffError('INVALID_STATE', `${basename(path)}: read after close()`);
      const t = tensors.get(name);
      if (!t) throw new RagdiffError('WEIGHTS_MISMATCH', `${basename(path)}: no tensor ${name}`);
      const raw = readExactly(fd, t.end - t.begin, t.begin);
      if (raw.length !== t.end - t.begin) throw invalid(path, `tensor ${name}: file shrank while reading`);
      return { shape: t.shape, data: toFloat32(raw, t.dtype, path, name) };
    },
    close() {
      if (open) { open = false; closeSync(fd); }
    },
  };
}

function toFloat32(raw: Buffer, dtype: string, path: string, name: string): Float32Array {
  const out = new Float32Array(raw.length / (DTYPE_BYTES[dtype] ?? 1));
  if (dtype === 'F32') {
    for (let i = 0; i < out.length; i++) out[i] = raw.readFloatLE(4 * i);
  } else if (dtype === 'F16') {
    for (let i = 0; i < out.length; i++) out[i] = half(raw.readUInt16LE(2 * i));
  } else if (dtype === 'BF16') {
    const u = new Uint32Array(1);
    const f = new Float32Array(u.buffer);
    for (let i = 0; i < out.length; i++) { u[0] = raw.readUInt16LE(2 * i) << 16; out[i] = f[0]; }
  } else {
    throw new RagdiffError('WEIGHTS_MISMATCH', `${basename(path)}: tensor ${name} is ${dtype}; only F32, F16 and BF16 weights are read`);
  }
  return out;
}

function half(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Writes a safetensors file (tests and fixtures): tensors in the given order, F32. */
export function encodeSafetensors(tensors: Record<string, { shape: number[]; data: Float32Array }>, metadata?: Record<string, string>): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.length * 4] };
    off += t.data.length * 4;
  }
  let json = Buffer.from(JSON.stringify(header));
  const pad = (8 - (json.length % 8)) % 8;
  json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, ...Object.values(tensors).map((t) => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength))]);
}
