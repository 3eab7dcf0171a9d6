/**
 * The TypeScript encoder_hidden_states assembly that the native fusion
 * (native/core/context_fusion.cc) replaced, kept as its reference and extended
 * with per-slot weights: a slot with weight 0 is zeros, weight 1 a copy,
 * otherwise w·x rounded once to float32 (a Float32Array store of the exact
 * double product, the same bits as a float32 multiply).
 */
import type { GuidanceBranch } from '../../src/pipeline/guidance.js';

export interface ReferenceLayout {
  batch: number;
  textLength: number;
  slots: number;
  width: number;
}

/** Branch-major rows; `branch.neighbourWeights` (length slots) scales each slot. */
export function referenceEncoderHiddenStates(
  out: Float32Array,
  layout: ReferenceLayout,
  branches: readonly GuidanceBranch[],
  textStates: Float32Array,
): Float32Array {
  const { batch, textLength, slots, width } = layout;
  const textSize = textLength * width;
  const seqSize = (textLength + slots) * width;
  if (out.length !== branches.length * batch * seqSize) throw new Error(`reference: out has ${out.length} elements, expected ${branches.length * batch * seqSize}`);
  branches.forEach((branch, b) => {
    const text = textStates.subarray(branch.text * textSize, (branch.text + 1) * textSize);
    for (let i = 0; i < batch; i++) {
      const at = (b * batch + i) * seqSize;
      out.set(text, at);
      if (slots === 0) continue;
      if (!branch.neighbours) {
        out.fill(0, at + textSize, at + seqSize);
        continue;
      }
      const w = branch.neighbourWeights;
      if (!w) {
        out.set(branch.neighbours, at + textSize);
        continue;
      }
      for (let s = 0; s < slots; s++) writeSlot(out, at + textSize + s * width, branch.neighbours, s * width, width, w[s]!);
    }
  });
  return out;
}

/** The row-level form: per row a text index and a neighbour-set index (-1: zeros), weights [rows][slots] or null. */
export function referenceFuse(
  out: Float32Array,
  layout: { textLength: number; slots: number; width: number },
  text: ArrayLike<number>,
  neighbours: ArrayLike<number> | null,
  textStates: Float32Array,
  neighbourTokens: Float32Array | null,
  weights: Float32Array | null,
): Float32Array {
  const { textLength: L, slots: S, width: W } = layout;
  const seq = (L + S) * W;
  for (let r = 0; r < text.length; r++) {
    out.set(textStates.subarray(text[r]! * L * W, (text[r]! + 1) * L * W), r * seq);
    const set = neighbours ? neighbours[r]! : -1;
    for (let s = 0; s < S; s++) {
      const at = r * seq + (L + s) * W;
      if (set < 0) out.fill(0, at, at + W);
      else writeSlot(out, at, neighbourTokens!, (set * S + s) * W, W, weights ? weights[r * S + s]! : 1);
    }
  }
  return out;
}

function writeSlot(out: Float32Array, at: number, src: Float32Array, from: number, width: number, w: number): void {
  if (w === 0) out.fill(0, at, at + width);
  else if (w === 1) out.set(src.subarray(from, from + width), at);
  else for (let c = 0; c < width; c++) out[at + c] = w * src[from + c]!;
}
