/**
 * Conditioning fusion: the UNet's batched encoder_hidden_states for every
 * guidance branch, written in one native pass (native/core/context_fusion.h)
 * into one caller-owned buffer. Each output row is one (branch, image) pair,
 * branch-major; a row is its text's token states followed by its neighbour
 * slots: projected neighbour tokens scaled by per-slot weights, or zeros.
 *
 * The TypeScript assembly this replaces lives on as the tests' reference
 * (test/reference/context.ts); the two agree bit for bit.
 */
import { rangeError, typeError } from '../errors.js';
import { native } from '../native.js';
import type { GuidanceBranch } from './guidance.js';

/** The shape of one encoder_hidden_states row. */
export interface FusionLayout {
  /** Text tokens per sequence. */
  textLength: number;
  /** Neighbour slots after the text tokens (0 for plain SD). */
  slots: number;
  /** Token width. */
  width: number;
}

export interface ContextLayout extends FusionLayout {
  /** Images per branch. */
  batch: number;
}

/** What each output row holds. */
export interface FusionRows {
  /** Per row, the index of its text sequence in textStates. */
  text: Int32Array | readonly number[];
  /** Per row, the index of its neighbour set in neighbourTokens, or -1 for zeros; absent/null: zeros everywhere. */
  neighbours?: Int32Array | readonly number[] | null;
}

const MAX_DIM = 2 ** 31 - 1;

function dim(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number') throw typeError('INVALID_TYPE', `${name} must be an integer, got ${typeof v}`);
  if (!Number.isInteger(v) || v < min || v > MAX_DIM) throw rangeError('OUT_OF_RANGE', `${name} must be an integer in ${min}..${MAX_DIM}, got ${v}`);
  return v;
}

// Index lists arrive as Int32Array (no copy) or plain arrays (checked to be integers, then converted).
function indices(name: string, v: unknown): Int32Array {
  if (v instanceof Int32Array) return v;
  if (!Array.isArray(v)) throw typeError('INVALID_TYPE', `${name} must be an Int32Array or an array of integers`);
  v.forEach((x, i) => {
    if (!Number.isInteger(x) || x < -1 || x > MAX_DIM) throw rangeError('OUT_OF_RANGE', `${name}[${i}] must be an integer index, got ${String(x)}`);
  });
  return Int32Array.from(v as number[]);
}

/**
 * Writes `out` = [rows][textLength + slots][width] in place and returns it.
 * `textStates` is [texts][textLength][width]; `neighbourTokens` [sets][slots][width]
 * (null when no row has neighbours); `weights` [rows][slots] scales each slot
 * (0 drops it to zeros, 1 copies it; null: all ones).
 * Bad input (types, lengths, indices out of range, non-finite weights, `out`
 * overlapping an input) throws TypeError / RangeError with a code before anything is written.
 */
export function fuseContext(
  out: Float32Array,
  layout: FusionLayout,
  rows: FusionRows,
  textStates: Float32Array,
  neighbourTokens: Float32Array | null,
  weights?: Float32Array | null,
): Float32Array {
  if (!(out instanceof Float32Array)) throw typeError('INVALID_TYPE', 'out must be a Float32Array');
  if (typeof layout !== 'object' || layout === null) throw typeError('INVALID_TYPE', 'layout must be an object { textLength, slots, width }');
  const textLength = dim('layout.textLength', layout.textLength, 1);
  const slots = dim('layout.slots', layout.slots, 0);
  const width = dim('layout.width', layout.width, 1);
  if (typeof rows !== 'object' || rows === null) throw typeError('INVALID_TYPE', 'rows must be an object { text, neighbours? }');
  const text = indices('rows.text', rows.text);
  const sets = rows.neighbours == null ? null : indices('rows.neighbours', rows.neighbours);
  if (sets && sets.length !== text.length) {
    throw rangeError('LENGTH_MISMATCH', `rows.neighbours must have one entry per row (${text.length}), got ${sets.length}`);
  }
  if (!(textStates instanceof Float32Array)) throw typeError('INVALID_TYPE', 'textStates must be a Float32Array');
  if (neighbourTokens != null && !(neighbourTokens instanceof Float32Array)) throw typeError('INVALID_TYPE', 'neighbourTokens must be a Float32Array or null');
  if (weights != null && !(weights instanceof Float32Array)) throw typeError('INVALID_TYPE', 'weights must be a Float32Array or null');
  // Lengths, index ranges, finiteness and overlap are checked by the binding with
  // messages naming the argument and the value; nothing is written before they pass.
  return native().fuseContext(out, text.length, textLength, slots, width, textStates, text, neighbourTokens ?? null, sets, weights ?? null);
}

/** The inputs of fuseContext for a list of guidance branches (rows branch-major, image-minor). */
export interface BranchContext {
  rows: { text: Int32Array; neighbours: Int32Array | null };
  /** [sets][slots][width]: the neighbour tokens of each branch that has them, in branch order; null when none has. */
  neighbourTokens: Float32Array | null;
  /** [rows][slots], or null when no branch with neighbours carries neighbourWeights. */
  weights: Float32Array | null;
}

/**
 * Maps branches to fusion rows. Each branch with `neighbours` contributes one
 * neighbour set (packed, one copy of slots × width floats); a branch without
 * neighbours gets zeros in its slots and its `neighbourWeights` are unused.
 */
export function branchContext(branches: readonly GuidanceBranch[], batch: number, layout: FusionLayout): BranchContext {
  dim('batch', batch, 1);
  const { slots, width } = layout;
  const setSize = slots * width;
  const rowsN = branches.length * batch;
  const text = new Int32Array(rowsN);
  const withSets = slots > 0 ? branches.filter((b) => b.neighbours != null) : [];
  const sets = withSets.length > 0 ? new Int32Array(rowsN).fill(-1) : null;
  const neighbourTokens = withSets.length > 0 ? new Float32Array(withSets.length * setSize) : null;
  const weighted = withSets.some((b) => b.neighbourWeights != null);
  const weights = weighted ? new Float32Array(rowsN * slots).fill(1) : null;
  let set = 0;
  branches.forEach((b, i) => {
    text.fill(b.text, i * batch, (i + 1) * batch);
    if (slots === 0 || b.neighbours == null) return;
    if (b.neighbours.length !== setSize) {
      throw rangeError('LENGTH_MISMATCH', `branch ${i}: neighbours must have slots × width = ${setSize} elements, got ${b.neighbours.length}`);
    }
    neighbourTokens!.set(b.neighbours, set * setSize);
    sets!.fill(set, i * batch, (i + 1) * batch);
    if (b.neighbourWeights != null) {
      if (b.neighbourWeights.length !== slots) {
        throw rangeError('LENGTH_MISMATCH', `branch ${i}: neighbourWeights must have one weight per slot (${slots}), got ${b.neighbourWeights.length}`);
      }
      for (let r = i * batch; r < (i + 1) * batch; r++) weights!.set(b.neighbourWeights, r * slots);
    }
    set++;
  });
  return { rows: { text, neighbours: sets }, neighbourTokens, weights };
}

/**
 * Writes encoder_hidden_states for all branches, branch-major
 * ([branch][image][textLength + slots][width]), the order the UNet batch and
 * the guided step share. `textStates` holds the text encoder's outputs,
 * [texts][textLength][width]. Built once per generation, natively.
 */
export function buildEncoderHiddenStates(
  out: Float32Array,
  layout: ContextLayout,
  branches: readonly GuidanceBranch[],
  textStates: Float32Array,
): Float32Array {
  const { rows, neighbourTokens, weights } = branchContext(branches, layout.batch, layout);
  return fuseContext(out, layout, rows, textStates, neighbourTokens, weights);
}
