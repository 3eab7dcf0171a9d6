/**
 * Indexes over an ONNX graph (JSON form, src/convert/onnx-model.ts) for structural matching:
 * who produces and who consumes each tensor, which tensors are weights, and scalar constants.
 */
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
    return p.op_type === 'Transpose' && this.isWeight(p.input![0]);
  }

  /** [in, out] of a weight matrix, when its dims are known. */
  weightDims(name: string): number[] | undefined {
    const t = this.initializers.get(name);
    if (t) return (t.dims ?? []).map(Number);
    const p = this.producer.get(name);
    if (p?.op_type === 'Constant') return (p.attribute?.find((a) => a.name === 'value')?.t?.dims ?? []).map(Number);
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
