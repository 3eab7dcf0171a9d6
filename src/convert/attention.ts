/**
 * Finds attention blocks in an exported UNet by structure, not by node names: every Softmax whose
 * scores are MatMul(q, kᵀ) and whose probabilities multiply v, where q, k and v each trace back
 * (through reshapes, transposes, casts and scalar scalings) to a MatMul of some tensor by a weight.
 * Self-attention: q, k and v are projections of the same tensor. Both export styles are covered:
 * diffusers' baddbmm/softmax/bmm (scale after the scores) and the SDPA decomposition (√scale on q
 * and on k). The scale gives the head width, hence the head count.
 */
import { RagdiffError } from '../errors.js';
import { GraphIndex } from './graph.js';
import type { NodeJson } from './onnx-model.js';

export interface AttentionBlock {
  readonly kind: 'self' | 'cross';
  /** The tensor the query is projected from ([batch, tokens, width]). */
  readonly queryInput: string;
  /** The tensor keys and values are projected from (= queryInput for self-attention). */
  readonly contextInput: string;
  /** Weight tensors [in, inner] of the q, k, v projections (MatMul's second inputs). */
  readonly wq: string;
  readonly wk: string;
  readonly wv: string;
  readonly inner: number;
  readonly heads: number;
  readonly scale: number;
  /** The MatMul applying the output projection; its input 0 is the heads-merged attention. */
  readonly outProj: NodeJson;
}

const PASS = new Set(['Transpose', 'Reshape', 'Cast', 'Identity', 'Squeeze', 'Unsqueeze']);
export const FUSED_ATTENTION_OPS = new Set(['Attention', 'MultiHeadAttention', 'PackedAttention', 'PackedMultiHeadAttention', 'GroupQueryAttention']);

interface Traced { proj: NodeJson; scale: number }

/** Walks back from a tensor to the projection MatMul it comes from, multiplying scalar scalings. */
function traceToProjection(g: GraphIndex, tensor: string): Traced | undefined {
  let scale = 1;
  let t = tensor;
  for (let steps = 0; steps < 64; steps++) {
    const p = g.producer.get(t);
    if (!p) return undefined;
    const ins = p.input ?? [];
    if (p.op_type === 'MatMul' && g.isWeight(ins[1]) && !g.isWeight(ins[0])) return { proj: p, scale };
    if (PASS.has(p.op_type)) { t = ins[0]; continue; }
    if (p.op_type === 'Mul' || p.op_type === 'Div') {
      const c1 = g.scalar(ins[1]);
      const c0 = p.op_type === 'Mul' ? g.scalar(ins[0]) : undefined;
      if (c1 !== undefined) { scale = p.op_type === 'Mul' ? scale * c1 : scale / c1; t = ins[0]; continue; }
      if (c0 !== undefined) { scale *= c0; t = ins[1]; continue; }
    }
    return undefined;
  }
  return undefined;
}

/** From a Softmax's input back to the scores MatMul, multiplying scalings; Add of a zero/bias branch is skipped. */
function traceToScores(g: GraphIndex, tensor: string): { scores: NodeJson; scale: number } | undefined {
  let scale = 1;
  let t = tensor;
  for (let steps = 0; steps < 16; steps++) {
    const p = g.producer.get(t);
    if (!p) return undefined;
    const ins = p.input ?? [];
    if (p.op_type === 'MatMul' && !g.isWeight(ins[1])) return { scores: p, scale };
    if (p.op_type === 'Cast' || p.op_type === 'Identity') { t = ins[0]; continue; }
    if (p.op_type === 'Mul' || p.op_type === 'Div') {
      const c = g.scalar(ins[1]) ?? (p.op_type === 'Mul' ? g.scalar(ins[0]) : undefined);
      if (c === undefined) return undefined;
      scale = p.op_type === 'Mul' ? scale * c : scale / c;
      t = g.scalar(ins[1]) !== undefined ? ins[0] : ins[1];
      continue;
    }
    if (p.op_type === 'Add') {
      // baddbmm(beta=0) exports add (zeros * beta); an attention mask would also enter here
      const a = g.producer.get(ins[0]);
      t = a && (a.op_type === 'MatMul' || a.op_type === 'Mul' || a.op_type === 'Div') && !isZeroBranch(g, ins[0]) ? ins[0] : ins[1];
      continue;
    }
    return undefined;
  }
  return undefined;
}

function isZeroBranch(g: GraphIndex, t: string): boolean {
  const p = g.producer.get(t);
  if (!p) return false;
  if (p.op_type === 'ConstantOfShape') return true;
  if (p.op_type === 'Mul') return (p.input ?? []).some((i) => isZeroBranch(g, i) || g.scalar(i) === 0);
  return false;
}

function forwardToOutProjection(g: GraphIndex, tensor: string): NodeJson | undefined {
  let t = tensor;
  for (let steps = 0; steps < 16; steps++) {
    const cs = (g.consumers.get(t) ?? []).filter((c) => c.op_type !== 'Shape');
    if (cs.length !== 1) return undefined;
    const c = cs[0];
    if (c.op_type === 'MatMul' && c.input![0] === t && g.isWeight(c.input![1])) return c;
    if (!PASS.has(c.op_type)) return undefined;
    t = c.output![0];
  }
  return undefined;
}

/** Every attention block the structure reveals, in graph order. */
export function findAttention(g: GraphIndex): AttentionBlock[] {
  const out: AttentionBlock[] = [];
  for (const sm of g.graph.node) {
    if (sm.op_type !== 'Softmax') continue;
    const s = traceToScores(g, sm.input![0]);
    if (!s) continue;
    const q = traceToProjection(g, s.scores.input![0]);
    const k = traceToProjection(g, s.scores.input![1]);
    let probs = sm.output![0];
    let pv: NodeJson | undefined;
    for (let i = 0; i < 4 && !pv; i++) {
      const cs = g.consumers.get(probs) ?? [];
      pv = cs.find((c) => c.op_type === 'MatMul' && c.input![0] === probs);
      const cast = cs.find((c) => c.op_type === 'Cast');
      if (!pv && cast) probs = cast.output![0];
    }
    if (!q || !k || !pv) continue;
    const v = traceToProjection(g, pv.input![1]);
    const outProj = forwardToOutProjection(g, pv.output![0]);
    if (!v || !outProj) continue;
    const qin = q.proj.input![0];
    const kin = k.proj.input![0];
    if (v.proj.input![0] !== kin) continue;
    const dims = g.weightDims(q.proj.input![1]);
    const inner = dims?.[1];
    const scale = s.scale * q.scale * k.scale;
    if (!inner || !(scale > 0)) continue;
    const headDim = 1 / (scale * scale);
    const heads = Math.round(inner / headDim);
    if (heads < 1 || Math.abs(heads * headDim - inner) > 1e-3 * inner) continue;
    out.push({
      kind: qin === kin ? 'self' : 'cross',
      queryInput: qin, contextInput: kin,
      wq: q.proj.input![1], wk: k.proj.input![1], wv: v.proj.input![1],
      inner, heads, scale, outProj,
    });
  }
  return out;
}

/** Refuses graphs whose attention ragdiff cannot rewrite, saying what was found. */
export function assertConvertible(g: GraphIndex, what: string): AttentionBlock[] {
  const fused = g.graph.node.filter((n) => FUSED_ATTENTION_OPS.has(n.op_type));
  if (fused.length) {
    throw new RagdiffError('CONVERT_REFUSED', `${what}: ${fused.length} fused attention node(s) (${fused[0].op_type}, ONNX Runtime's transformer optimiser); convert the unoptimised export (optimum-cli export onnx without --optimize), then optimise the converted model if you wish`);
  }
  const blocks = findAttention(g);
  if (!blocks.some((b) => b.kind === 'self')) {
    const sm = g.graph.node.filter((n) => n.op_type === 'Softmax').length;
    throw new RagdiffError('CONVERT_REFUSED', `${what}: no recognisable self-attention (${sm} Softmax node(s), ${blocks.length} attention block(s) matched); ragdiff needs q, k and v as MatMul projections of one tensor (a fused qkv projection is not supported)`);
  }
  return blocks;
}
