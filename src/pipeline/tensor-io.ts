/**
 * The boundary between the pipeline's float32 working buffers and a model's
 * declared input/output types. The pipeline computes in float32 throughout;
 * fp16 models get their tensors converted here (round-to-nearest-even), int64
 * and int32 ids and timesteps likewise. Each boundary tensor is allocated once
 * per generation and refilled in place on every step.
 */
import * as ort from 'onnxruntime-node';
import { RagdiffError } from '../errors.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 → IEEE half bits, round to nearest even; overflow → ±Inf, NaN kept. */
export function toHalf(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++; // may carry into the exponent: still correct
  return sign | half;
}

/** IEEE half bits → number. */
export function fromHalf(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function floatsToHalf(src: Float32Array, dst: Uint16Array): Uint16Array {
  for (let i = 0; i < src.length; i++) dst[i] = toHalf(src[i]!);
  return dst;
}

export function halfToFloats(src: Uint16Array, dst: Float32Array): Float32Array {
  for (let i = 0; i < src.length; i++) dst[i] = fromHalf(src[i]!);
  return dst;
}

export type FloatType = 'float32' | 'float16';

export function floatTypeOf(type: string | undefined, where: string): FloatType {
  if (type === 'float32' || type === 'float16') return type;
  throw new RagdiffError('MODEL_IO_MISMATCH', `${where} has type ${type ?? 'unknown'}; expected float32 or float16`);
}

/**
 * A float tensor at a model boundary: `data` is the float32 working buffer the
 * pipeline reads and writes; `tensor` is what ONNX Runtime sees (the same
 * memory for float32 models, a half-precision mirror for float16 ones).
 */
export class FloatBoundary {
  readonly data: Float32Array;
  readonly tensor: ort.Tensor;
  private readonly half: Uint16Array | null;

  constructor(readonly type: FloatType, dims: readonly number[], data?: Float32Array) {
    const n = dims.reduce((a, b) => a * b, 1);
    this.data = data ?? new Float32Array(n);
    if (this.data.length !== n) throw new RagdiffError('INTERNAL', `boundary buffer has ${this.data.length} elements, dims ${dims.join('×')} need ${n}`);
    this.half = type === 'float16' ? new Uint16Array(n) : null;
    this.tensor = new ort.Tensor(type, this.half ?? this.data, dims);
  }

  /** Before a run, for inputs: float32 working data → model dtype. */
  toModel(): ort.Tensor {
    if (this.half) floatsToHalf(this.data, this.half);
    return this.tensor;
  }

  /** After a run, for outputs: model dtype → float32 working data. */
  fromModel(): Float32Array {
    if (this.half) halfToFloats(this.half, this.data);
    return this.data;
  }
}

/** An integer tensor (ids, timesteps) of type int64, int32 or a float type for float-timestep exports. */
export function integerTensor(type: string, values: ArrayLike<number>, dims: readonly number[]): ort.Tensor {
  switch (type) {
    case 'int64': {
      const a = new BigInt64Array(values.length);
      for (let i = 0; i < values.length; i++) a[i] = BigInt(Math.trunc(values[i]!));
      return new ort.Tensor('int64', a, dims);
    }
    case 'int32':
      return new ort.Tensor('int32', Int32Array.from(values, (v) => Math.trunc(v)), dims);
    case 'float32':
      return new ort.Tensor('float32', Float32Array.from(values), dims);
    case 'float16':
      return new ort.Tensor('float16', Uint16Array.from(values, (v) => toHalf(v)), dims);
    default:
      throw new RagdiffError('MODEL_IO_MISMATCH', `unsupported integer input type ${type}`);
  }
}

/** Refills a tensor made by integerTensor with one value everywhere (timesteps), without allocating. */
export function fillScalar(tensor: ort.Tensor, value: number): void {
  const d = tensor.data;
  if (d instanceof BigInt64Array) d.fill(BigInt(Math.trunc(value)));
  else if (d instanceof Int32Array) d.fill(Math.trunc(value));
  else if (tensor.type === 'float16') (d as Uint16Array).fill(toHalf(value));
  else (d as Float32Array).fill(value);
}
