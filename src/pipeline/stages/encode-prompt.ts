/**
 * Stage 1, encode prompt: every distinct text through the family's text encoders
 * (one call each for all texts and their 77-token windows; one row at a time for
 * exports with a fixed batch of 1). The hidden states each encoder contributes
 * (last or penultimate) are concatenated along the width in the family's order, the
 * windows along the sequence; the pooled projection (SDXL's text_embeds) comes from
 * each text's first window, as compel does.
 */
import { RagdiffError } from '../../errors.js';
import type { OpenedSession } from '../../models/session.js';
import type { TextEncoderSpec } from '../families/family.js';
import { FloatBoundary, floatTypeOf, integerTensor, type FloatType } from '../tensor-io.js';
import { dim, outputName, tensorMeta, type Timed } from '../session-meta.js';

export interface TextEncoder {
  spec: TextEncoderSpec;
  session: OpenedSession;
  /** The output whose hidden states feed the UNet. */
  hiddenOut: string;
  hiddenType: FloatType;
  width: number;
  /** text_embeds of a CLIPTextModelWithProjection export, when spec.pooled. */
  pooledOut: string | null;
  pooledType: FloatType;
  pooledWidth: number;
  idsType: string;
  /** Token positions per window. */
  length: number;
  batch: 'dynamic' | 1;
}

/** Reads what one text encoder export offers for its spec; errors name the file and what it lacks. */
export function describeTextEncoder(session: OpenedSession, spec: TextEncoderSpec, fallback: { length?: number; width?: number }): TextEncoder {
  expectInput(session, 'input_ids');
  let hiddenOut = outputName(session, 'last_hidden_state');
  if (spec.hidden === 'penultimate') {
    const layers = session.session.outputNames.map((n) => /^hidden_states\.(\d+)$/.exec(n)).filter((m) => m !== null).map((m) => Number(m![1]));
    if (layers.length < 2) {
      throw new RagdiffError('MODEL_IO_MISMATCH', `${session.path}: the penultimate hidden state is needed, but the export has no hidden_states.N outputs (has ${session.session.outputNames.join(', ')}); export it with output_hidden_states as optimum does for SDXL`);
    }
    hiddenOut = `hidden_states.${Math.max(...layers) - 1}`;
  }
  const ids = tensorMeta(session, 'input_ids', 'input');
  if (!['int64', 'int32'].includes(ids.type)) {
    throw new RagdiffError('MODEL_IO_MISMATCH', `${session.path}: input_ids has type ${ids.type}; expected int64 or int32`);
  }
  const idsBatch = ids.shape[0];
  if (typeof idsBatch === 'number' && idsBatch > 1) {
    throw new RagdiffError('UNSUPPORTED', `${session.path}: the text encoder has a fixed batch of ${idsBatch}; re-export it with a dynamic batch axis`);
  }
  const hidden = tensorMeta(session, hiddenOut, 'output');
  const width = dim(hidden.shape[2]) ?? fallback.width;
  if (!width) throw new RagdiffError('MODEL_IO_MISMATCH', `${session.path}: cannot tell the token width (${hiddenOut} has shape ${JSON.stringify(hidden.shape)})`);
  let pooledOut: string | null = null;
  let pooledWidth = 0;
  let pooledType: FloatType = 'float32';
  if (spec.pooled) {
    if (!session.session.outputNames.includes('text_embeds')) {
      throw new RagdiffError('MODEL_IO_MISMATCH', `${session.path}: the pooled projection text_embeds is needed (CLIPTextModelWithProjection), the export has ${session.session.outputNames.join(', ')}`);
    }
    pooledOut = 'text_embeds';
    const m = tensorMeta(session, pooledOut, 'output');
    pooledWidth = dim(m.shape[1]) ?? 0;
    pooledType = floatTypeOf(m.type, `${session.path}: text_embeds`);
  }
  return {
    spec, session, hiddenOut, hiddenType: floatTypeOf(hidden.type, `${session.path}: ${hiddenOut}`), width,
    pooledOut, pooledType, pooledWidth, idsType: ids.type,
    length: dim(ids.shape[1]) ?? fallback.length ?? 77, batch: typeof idsBatch === 'number' ? 1 : 'dynamic',
  };
}

function expectInput(s: OpenedSession, name: string): void {
  if (!s.session.inputNames.includes(name)) {
    throw new RagdiffError('MODEL_IO_MISMATCH', `${s.path} does not have the expected I/O: missing inputs ${name} (has ${s.session.inputNames.join(', ')})`);
  }
}

export interface EncodedPrompts {
  /** [texts][chunks × length][width], width the sum of the encoders' widths. */
  states: Float32Array;
  /** [texts][pooledWidth], or null when no encoder is pooled. */
  pooled: Float32Array | null;
  /** Token positions per text (chunks × length). */
  sequence: number;
}

/**
 * texts[e] are the token ids for encoder e ([texts][chunks × length] each), `zero` the
 * text indices to leave as zeros. `width` is the concatenated width.
 */
export async function encodePrompts(timed: Timed, encoders: readonly TextEncoder[], texts: readonly (readonly BigInt64Array[])[], width: number, zero: readonly number[] = []): Promise<EncodedPrompts> {
  const T = texts[0]!.length;
  const L = encoders[0]!.length;
  const sequence = texts[0]![0]!.length;
  const chunks = sequence / L;
  const rows = T * chunks;
  const states = new Float32Array(T * sequence * width);
  let pooled: Float32Array | null = null;
  let offset = 0;
  for (let e = 0; e < encoders.length; e++) {
    const enc = encoders[e]!;
    const We = enc.width;
    // One encoder alone writes straight into the result; several write their own slab, interleaved below.
    const own = encoders.length === 1 ? states : new Float32Array(rows * L * We);
    const pooledRows = enc.pooledOut ? new Float32Array(rows * enc.pooledWidth) : null;
    const perCall = enc.batch === 'dynamic' ? rows : 1;
    for (let first = 0; first < rows; first += perCall) {
      const ids: number[] = [];
      for (let r = first; r < first + perCall; r++) {
        const t = Math.floor(r / chunks), c = r % chunks;
        for (const id of texts[e]![t]!.subarray(c * L, (c + 1) * L)) ids.push(Number(id));
      }
      const out = new FloatBoundary(enc.hiddenType, [perCall, L, We], own.subarray(first * L * We, (first + perCall) * L * We));
      const fetches = { [enc.hiddenOut]: out.tensor };
      let pool: FloatBoundary | null = null;
      if (pooledRows && enc.pooledOut) {
        pool = new FloatBoundary(enc.pooledType, [perCall, enc.pooledWidth], pooledRows.subarray(first * enc.pooledWidth, (first + perCall) * enc.pooledWidth));
        fetches[enc.pooledOut] = pool.tensor;
      }
      await timed(enc.session, { input_ids: integerTensor(enc.idsType, ids, [perCall, L]) }, fetches);
      out.fromModel();
      pool?.fromModel();
    }
    if (own !== states) {
      for (let p = 0; p < rows * L; p++) states.set(own.subarray(p * We, (p + 1) * We), p * width + offset);
    }
    if (pooledRows) {
      const P = enc.pooledWidth;
      pooled = new Float32Array(T * P);
      for (let t = 0; t < T; t++) pooled.set(pooledRows.subarray(t * chunks * P, (t * chunks + 1) * P), t * P);
    }
    offset += We;
  }
  for (const t of zero) {
    states.fill(0, t * sequence * width, (t + 1) * sequence * width);
    if (pooled) pooled.fill(0, t * (pooled.length / T), (t + 1) * (pooled.length / T));
  }
  return { states, pooled, sequence };
}
