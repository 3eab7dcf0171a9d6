/**
 * Indexes over an ONNX graph (JSON form, src/convert/onnx-model.ts) for structural matching:
 * who produces and who consumes each tensor, which tensors are weights, and scalar constants.
 */
import { RagdiffError } from '../errors.js';
import type { GraphJson, NodeJson, TensorJson } from './onnx-model.js';

export class GraphIndex {
  readonly producer = new Map<string, NodeJson>();
  readonly consumers = new Map<string, NodeJson[]>();
  readonly initializers = new Map<string, TensorJson>();

  constructor(readonly graph: GraphJson) {
    for (const t of graph.initializer ?? []) if (t.name) this.initializers.set(t.name, t);
    for (const n of graph.node) {
      for (const o of n.output ?? []) this.producer.set(o, n);
      for (const i of n.input ?? []) {
        if (!i) continue;
        const list = this.consumers.get(i);
        if (list) list.push(n); else this.consumers.set(i, [n]);
      }
    }
  }

  /** A weight matrix: an initializer or Constant, possibly through Transpose (torch Linear un-folded). */
  isWeight(name: string): boolean {
    if (this.initializers.has(name)) return true;
    const p = this.producer.get(name);
    if (!p) return false;
    if (p.op_type === 'Constant') return true;
    return (p.op_type === 'Transpose' || p.op_type === 'Cast') && this.isWeight(p.input![0]);
  }

  /** The ONNX element type a weight has where it is used (after any Cast: fp16 storage, fp32 math). */
  weightElemType(name: string): number {
    const t = this.initializers.get(name);
    if (t) return t.data_type ?? 1;
    const p = this.producer.get(name);
    if (p?.op_type === 'Constant') return p.attribute?.find((a) => a.name === 'value')?.t?.data_type ?? 1;
    if (p?.op_type === 'Cast') return Number(p.attribute?.find((a) => a.name === 'to')?.i ?? 1);
    if (p?.op_type === 'Transpose') return this.weightElemType(p.input![0]);
    return 1;
  }

  /** [in, out] of a weight matrix, when its dims are known. */
  weightDims(name: string): number[] | undefined {
    const t = this.initializers.get(name);
    if (t) return (t.dims ?? []).map(Number);
    const p = this.producer.get(name);
    if (p?.op_type === 'Constant') return (p.attribute?.find((a) => a.name === 'value')?.t?.dims ?? []).map(Number);
    if (p?.op_type === 'Cast') return this.weightDims(p.input![0]);
    if (p?.op_type === 'Transpose') {
      const d = this.weightDims(p.input![0]);
      const perm = (p.attribute?.find((a) => a.name === 'perm')?.ints ?? []).map(Number);
      return d && (perm.length ? perm.map((i) => d[i]) : [...d].reverse());
    }
    return undefined;
  }

  /** The value of a scalar (one-element) float or int constant, else undefined. */
  scalar(name: string): number | undefined {
    const t = this.initializers.get(name) ?? this.producer.get(name)?.attribute?.find((a) => a.name === 'value' && this.producer.get(name)?.op_type === 'Constant')?.t;
    if (!t) return undefined;
    const count = (t.dims ?? []).reduce((a, b) => a * Number(b), 1);
    if (count !== 1) return undefined;
    if (t.float_data?.length) return t.float_data[0];
    if (t.int64_data?.length) return Number(t.int64_data[0]);
    if (t.int32_data?.length) return t.int32_data[0];
    if (!t.raw_data) return undefined;
    const b = Buffer.from(t.raw_data, 'base64');
    switch (t.data_type) {
      case 1: return b.readFloatLE(0);
      case 11: return b.readDoubleLE(0);
      case 7: return Number(b.readBigInt64LE(0));
      case 6: return b.readInt32LE(0);
      case 10: return halfToFloat(b.readUInt16LE(0));
      default: return undefined;
    }
  }
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** float32 → IEEE half bits, round to nearest even (constants for fp16 graphs). */
export function floatToHalfBits(v: number): number {
  const f = new Float32Array([v]);
  const x = new Uint32Array(f.buffer)[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  e = h >>> 10;
  return sign | h;
}

/** A scalar constant of ONNX float type `elemType` (1 float32, 10 float16, 11 double). */
export function floatScalar(name: string, value: number, elemType: number): TensorJson {
  if (elemType === 10) {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(floatToHalfBits(value));
    return { name, dims: [], data_type: 10, raw_data: b.toString('base64') };
  }
  if (elemType === 11) return { name, dims: [], data_type: 11, double_data: [value] } as TensorJson;
  if (elemType !== 1) throw new RagdiffError('UNSUPPORTED', `float type ${elemType} is not supported for conversion (float32, float16, double)`);
  return { name, dims: [], data_type: 1, float_data: [value] };
}

/** The element type of a graph input (1 float32, 10 float16, …). */
export function elemTypeOf(v: { type?: unknown } | undefined): number {
  return Number((v?.type as { tensor_type?: { elem_type?: number } } | undefined)?.tensor_type?.elem_type ?? 1);
}
