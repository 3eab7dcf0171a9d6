/**
 * Reference attention ("reference-only", diffusers examples/community/stable_diffusion_reference.py)
 * grafted onto an exported UNet by graph surgery, with the input/output contract of tiny-emoji's
 * variant (inputs sample, timestep, encoder_hidden_states, ref_sample, ref_weight → out_sample):
 *
 * - the reference latent (noised by the caller to the same timestep) runs through the UNet in the
 *   same batch as the main rows ([sample; ref_sample], every other batched input repeated), so each
 *   block's reference hidden states — the bank — are ready when the main rows need them;
 * - every self-attention of a main row i becomes
 *       w_i · Attn(q = x_i, kv = [x_i ; bank_i]) + (1 − w_i) · Attn(q = x_i, kv = x_i)
 *   (mixed before the output projection, which is affine with weights summing to one, so equal to
 *   mixing the outputs as the community pipeline does); reference rows keep plain self-attention;
 * - the community pipeline's style_fidelity s is the per-row weight: conditional rows w = 1,
 *   unconditional rows w = 1 − s (which branches attend at all = which rows get w > 0);
 * - out_sample is the main rows only.
 */
import { RagdiffError } from '../errors.js';
import { type AttentionBlock, assertConvertible } from './attention.js';
import { floatScalar, GraphIndex } from './graph.js';
import type { ModelJson, NodeJson, TensorJson, ValueInfoJson } from './onnx-model.js';

export const CONVERTED_MARK = 'ragdiff.converted';

class Builder {
  private n = 0;
  readonly nodes: NodeJson[] = [];
  readonly inits: TensorJson[] = [];
  constructor(private readonly prefix: string) {}
  name(s: string): string { return `${this.prefix}/${s}_${this.n++}`; }
  ints(values: number[]): string {
    const name = this.name('const');
    this.inits.push({ name, dims: [String(values.length)], data_type: 7, int64_data: values.map(String) });
    return name;
  }
  float(value: number, elemType: number): string {
    const name = this.name('const');
    this.inits.push(floatScalar(name, value, elemType));
    return name;
  }
  op(op_type: string, input: string[], attrs: NodeJson['attribute'] = []): string {
    const out = this.name(op_type);
    this.nodes.push({ op_type, input, output: [out], name: out, ...(attrs.length ? { attribute: attrs } : {}) });
    return out;
  }
}

const perm = (p: number[]) => [{ name: 'perm', type: 'INTS', ints: p.map(String) }];
const axis = (a: number) => [{ name: 'axis', type: 'INT', i: String(a) }];

/** The rewired self-attention of one block; returns the heads-merged output [2B, N, inner]. */
function sharedSelfAttention(b: Builder, blk: AttentionBlock, batch: string, w4: string, elemType: number): string {
  const x = blk.queryInput;
  const d = blk.inner / blk.heads;
  const split = b.ints([0, 0, blk.heads, d]);
  const heads = (wt: string, p: number[]) => b.op('Transpose', [b.op('Reshape', [b.op('MatMul', [x, wt]), split])], perm(p));
  const q = heads(blk.wq, [0, 2, 1, 3]);                         // [2B,h,N,d]
  const kT = heads(blk.wk, [0, 2, 3, 1]);                        // [2B,h,d,N]
  const v = heads(blk.wv, [0, 2, 1, 3]);                         // [2B,h,N,d]
  const scale = b.float(blk.scale, elemType);
  const own = b.op('Mul', [b.op('MatMul', [q, kT]), scale]);     // [2B,h,N,N]
  const plain = b.op('MatMul', [b.op('Softmax', [own], axis(-1)), v]);
  const zero = b.ints([0]);
  const end = b.ints([Number.MAX_SAFE_INTEGER]);
  const ax0 = b.ints([0]);
  const main = (t: string) => b.op('Slice', [t, zero, batch, ax0]);
  const refs = (t: string) => b.op('Slice', [t, batch, end, ax0]);
  const cross = b.op('Mul', [b.op('MatMul', [main(q), refs(kT)]), scale]);   // [B,h,N,N]
  const p = b.op('Softmax', [b.op('Concat', [main(own), cross], axis(-1))], axis(-1));
  const shared = b.op('MatMul', [p, b.op('Concat', [main(v), refs(v)], axis(2))]);
  const one = b.float(1, elemType);
  const mixed = b.op('Add', [b.op('Mul', [shared, w4]), b.op('Mul', [main(plain), b.op('Sub', [one, w4])])]);
  const y = b.op('Concat', [mixed, refs(plain)], axis(0));
  return b.op('Reshape', [b.op('Transpose', [y], perm([0, 2, 1, 3])), b.ints([0, 0, -1])]);
}

function dim0(v: ValueInfoJson | undefined): string | undefined {
  const t = (v?.type as { tensor_type?: { shape?: { dim?: { dim_param?: string; dim_value?: string }[] } } } | undefined)?.tensor_type;
  const d = t?.shape?.dim?.[0];
  return d?.dim_param ?? d?.dim_value;
}

export interface ReferenceAttentionResult {
  model: ModelJson;
  /** The self-attention blocks rewired, in graph order (count, heads, widths). */
  blocks: { heads: number; inner: number }[];
}

/** Options for tests and experiments; the CLI always converts every block. */
export interface ReferenceAttentionOptions {
  /** Graph-order indices of self-attention blocks to leave plain (tests: one skipped block must show). */
  skip?: number[];
}

/** Rewrites `source` (not modified) into the reference-attention variant. */
export function referenceAttentionGraph(source: ModelJson, what: string, opts: ReferenceAttentionOptions = {}): ReferenceAttentionResult {
  const model = structuredClone(source);
  const g = model.graph;
  const inputs = new Map((g.input ?? []).map((v) => [v.name, v]));
  if (inputs.has('ref_sample') || (model.metadata_props ?? []).some((p) => p.key === CONVERTED_MARK)) {
    throw new RagdiffError('CONVERT_REFUSED', `${what}: already converted (it has a ref_sample input or the ${CONVERTED_MARK} mark); convert the plain UNet instead`);
  }
  for (const name of ['sample', 'timestep']) {
    if (!inputs.has(name)) throw new RagdiffError('MODEL_IO_MISMATCH', `${what}: no ${name} input (inputs: ${[...inputs.keys()].join(', ')})`);
  }
  if ((g.output ?? []).length !== 1) throw new RagdiffError('MODEL_IO_MISMATCH', `${what}: expected one output, found ${(g.output ?? []).length}`);
  const idx = new GraphIndex(g);
  const self = assertConvertible(idx, what).filter((blk) => blk.kind === 'self');
  const b = new Builder('/ragdiff_ref');

  // batch plumbing: [sample; ref_sample], other batched inputs repeated, timestep broadcast to B then repeated
  const renames = new Map<string, string>();
  const shape = b.op('Shape', ['sample']);
  const batch = b.op('Slice', [shape, b.ints([0]), b.ints([1]), b.ints([0])]);   // [B]
  renames.set('sample', b.op('Concat', ['sample', 'ref_sample'], axis(0)));
  const tB = b.op('Expand', ['timestep', batch]);
  renames.set('timestep', b.op('Concat', [tB, tB], axis(0)));
  const batchDim = dim0(inputs.get('sample'));
  for (const v of g.input ?? []) {
    if (v.name === 'sample' || v.name === 'timestep' || idx.initializers.has(v.name)) continue;
    if (batchDim !== undefined && dim0(v) === batchDim) renames.set(v.name, b.op('Concat', [v.name, v.name], axis(0)));
  }
  // ref_weight is float32 whatever the UNet's precision; cast inside into each block's arithmetic type
  const w32 = b.op('Reshape', ['ref_weight', b.ints([-1, 1, 1, 1])]);
  const wCast = new Map<number, string>([[1, w32]]);
  const weightIn = (t: number) => {
    if (!wCast.has(t)) wCast.set(t, b.op('Cast', [w32], [{ name: 'to', type: 'INT', i: String(t) }]));
    return wCast.get(t)!;
  };
  for (const n of g.node) n.input = (n.input ?? []).map((i) => renames.get(i) ?? i);

  const skip = new Set(opts.skip ?? []);
  self.forEach((blk, i) => {
    if (skip.has(i)) return;
    const t = idx.weightElemType(blk.wq);
    blk.outProj.input![0] = sharedSelfAttention(b, blk, batch, weightIn(t), t);
  });

  // out_sample = main rows only
  const out = g.output![0];
  const inner = `${out.name}/ragdiff_both`;
  for (const n of g.node) n.output = (n.output ?? []).map((o) => (o === out.name ? inner : o));
  for (const n of g.node) n.input = (n.input ?? []).map((i) => (i === out.name ? inner : i));
  b.nodes.push({ op_type: 'Slice', input: [inner, b.ints([0]), batch, b.ints([0])], output: [out.name], name: '/ragdiff_ref/out_main' });

  const sample = inputs.get('sample')!;
  g.input = [...(g.input ?? []),
    { name: 'ref_sample', type: structuredClone(sample.type) },
    { name: 'ref_weight', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_param: 'weight_batch' }] } } } }];
  g.node = [...g.node, ...b.nodes];
  g.initializer = [...(g.initializer ?? []), ...b.inits];
  g.value_info = [];   // shapes changed (batch 2B inside); onnxruntime infers them again
  pruneDead(model);
  model.metadata_props = [...(model.metadata_props ?? []), { key: CONVERTED_MARK, value: `reference-attention;blocks=${self.length - skip.size}` }];
  return { model, blocks: self.filter((_, i) => !skip.has(i)).map((blk) => ({ heads: blk.heads, inner: blk.inner })) };
}

/** Removes nodes whose outputs nothing uses (the replaced q/k/v paths), then unused initializers. */
function pruneDead(model: ModelJson): void {
  const g = model.graph;
  const live = new Set((g.output ?? []).map((o) => o.name));
  const keep: NodeJson[] = [];
  const ordered = topologicalOrder(g.node);
  for (let i = ordered.length - 1; i >= 0; i--) {
    const n = ordered[i];
    if ((n.output ?? []).some((o) => live.has(o))) {
      keep.push(n);
      for (const x of n.input ?? []) if (x) live.add(x);
    }
  }
  g.node = keep.reverse();
  g.initializer = (g.initializer ?? []).filter((t) => live.has(t.name!));
}

/** Nodes ordered so each comes after the producers of its inputs (stable: original order where free). */
function topologicalOrder(nodes: NodeJson[]): NodeJson[] {
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => { for (const o of n.output ?? []) producer.set(o, i); });
  const state = new Uint8Array(nodes.length);   // 0 new, 1 on stack, 2 emitted
  const out: NodeJson[] = [];
  for (let root = 0; root < nodes.length; root++) {
    if (state[root]) continue;
    const stack: [number, number][] = [[root, 0]];
    state[root] = 1;
    while (stack.length) {
      const top = stack[stack.length - 1];
      const ins = nodes[top[0]].input ?? [];
      if (top[1] < ins.length) {
        const p = producer.get(ins[top[1]++]);
        if (p === undefined || state[p] === 2) continue;
        if (state[p] === 1) throw new RagdiffError('INTERNAL', `graph cycle at ${nodes[p].name}`);
        state[p] = 1;
        stack.push([p, 0]);
      } else {
        state[top[0]] = 2;
        out.push(nodes[top[0]]);
        stack.pop();
      }
    }
  }
  return out;
}
