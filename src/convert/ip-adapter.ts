/**
 * IP-Adapter (tencent-ailab/IP-Adapter, ip_adapter/attention_processor.py IPAttnProcessor, read for
 * its semantics) grafted onto an exported UNet: every cross-attention block gets a decoupled second
 * attention over image tokens,
 *     out = Attn(q, to_k(text), to_v(text)) + ip_scale · Attn(q, to_k_ip(ip), to_v_ip(ip))
 * (same heads and scale; added before the output projection, as the processor does). The image
 * tokens are a separate input `ip_tokens` [B, T, cross_dim] (IP-Adapter itself appends them to
 * encoder_hidden_states; a separate input keeps the text side untouched and lets T vary: several
 * references = their tokens concatenated). They come from image_proj.onnx (plain IP-Adapter's
 * ImageProjModel: linear → [T, cross_dim] → LayerNorm).
 *
 * Weight keys are the published file's: ip_adapter.{N}.to_k_ip.weight / to_v_ip.weight, N odd,
 * numbered over diffusers' `unet.attn_processors` order — down blocks, then UP blocks, then the mid
 * block (UNet2DConditionModel registers down_blocks and up_blocks before mid_block), attn1 and attn2
 * alternating — while the graph runs down, mid, up; `processorIndex` maps one to the other.
 * Adapter weights are not copied either: the initializers are external data pointing into the
 * .safetensors file (row-major little-endian, as ONNX wants), transposed and cast by graph nodes.
 */
import { basename, relative } from 'node:path';
import { RagdiffError } from '../errors.js';
import { assertConvertible } from './attention.js';
import { floatScalar, GraphIndex } from './graph.js';
import type { ModelJson, NodeJson, TensorJson } from './onnx-model.js';
import { CONVERTED_MARK } from './reference-attention.js';
import type { SafetensorsFile, TensorInfo } from './safetensors.js';

const ONNX_DTYPE: Record<string, number> = { F32: 1, F16: 10, BF16: 16 };

export interface UnetLayout { down: number; mid: number; up: number }

/** Cross-attention block counts per part of the UNet, from its diffusers config. */
export function crossAttentionLayout(config: Record<string, unknown>): UnetLayout {
  const downTypes = (config.down_block_types as string[]) ?? [];
  const upTypes = (config.up_block_types as string[]) ?? [];
  const n = downTypes.length;
  const per = (v: unknown, d: number) => (Array.isArray(v) ? (v as number[]) : Array(n).fill(v ?? d));
  const lpb = per(config.layers_per_block, 2);
  const tl = per(config.transformer_layers_per_block, 1);
  let down = 0;
  downTypes.forEach((t, i) => { if (t.startsWith('CrossAttn')) down += lpb[i] * tl[i]; });
  const rlpb = [...lpb].reverse();
  const rtl = [...tl].reverse();
  let up = 0;
  upTypes.forEach((t, i) => { if (t.startsWith('CrossAttn')) up += (rlpb[i] + 1) * rtl[i]; });
  const midType = (config.mid_block_type as string | null | undefined) ?? 'UNetMidBlock2DCrossAttn';
  const mid = midType === 'UNetMidBlock2DCrossAttn' ? tl[n - 1] : 0;
  return { down, mid, up };
}

/** The attn_processors index (0-based over cross-attention blocks) of graph-order cross block g. */
export function processorIndex(g: number, l: UnetLayout): number {
  if (g < l.down) return g;
  if (g < l.down + l.mid) return l.down + l.up + (g - l.down);
  return g - l.mid;
}

function externalInit(name: string, t: TensorInfo, file: SafetensorsFile, modelDir: string): TensorJson {
  const dt = ONNX_DTYPE[t.dtype];
  if (!dt) throw new RagdiffError('WEIGHTS_MISMATCH', `${basename(file.path)}: ${t.name} is ${t.dtype}; F32, F16 or BF16 expected`);
  return {
    name, dims: t.shape.map(String), data_type: dt, data_location: 'EXTERNAL',
    external_data: [{ key: 'location', value: relative(modelDir, file.path) }, { key: 'offset', value: String(t.begin) }, { key: 'length', value: String(t.end - t.begin) }],
  };
}

function need(file: SafetensorsFile, key: string): TensorInfo {
  const t = file.tensors.get(key);
  if (!t) throw new RagdiffError('WEIGHTS_MISMATCH', `${basename(file.path)}: no ${key} (is this a plain IP-Adapter file? "plus" adapters with a Resampler are not supported yet)`);
  return t;
}

export interface IpAdapterGraph { model: ModelJson; crossBlocks: number; crossDim: number }

/**
 * Rewrites `source` with IP-Adapter attention. `weightsDir` is the directory the output model will
 * sit in (external data locations are relative to it; the caller hard-links the .safetensors there).
 */
export function ipAdapterGraph(source: ModelJson, what: string, config: Record<string, unknown>, file: SafetensorsFile, weightsDir: string): IpAdapterGraph {
  const model = structuredClone(source);
  const g = model.graph;
  const mark = (model.metadata_props ?? []).find((p) => p.key === CONVERTED_MARK)?.value;
  if ((g.input ?? []).some((v) => v.name === 'ip_tokens' || v.name === 'ref_sample') || mark) {
    throw new RagdiffError('CONVERT_REFUSED', `${what}: already converted (${mark ?? 'it has ip_tokens or ref_sample inputs'}); convert the plain UNet instead (combining both conversions in one graph is not supported yet)`);
  }
  const idx = new GraphIndex(g);
  const cross = assertConvertible(idx, what).filter((b) => b.kind === 'cross');
  const layout = crossAttentionLayout(config);
  if (layout.down + layout.mid + layout.up !== cross.length) {
    throw new RagdiffError('CONVERT_REFUSED', `${what}: ${cross.length} cross-attention blocks in the graph but its config implies ${layout.down}+${layout.mid}+${layout.up}`);
  }
  const keys = [...file.tensors.keys()].filter((k) => /^ip_adapter\.\d+\.to_k_ip\.weight$/.test(k));
  if (keys.length !== cross.length) {
    throw new RagdiffError('WEIGHTS_MISMATCH', `${basename(file.path)}: ${keys.length} cross-attention blocks (ip_adapter.*.to_k_ip) but the UNet has ${cross.length} (an adapter for another UNet family?)`);
  }
  const inits: TensorJson[] = [];
  const nodes: NodeJson[] = [];
  let n = 0;
  const op = (op_type: string, input: string[], attribute?: NodeJson['attribute']): string => {
    const out = `/ragdiff_ip/${op_type}_${n++}`;
    nodes.push({ op_type, input, output: [out], name: out, ...(attribute ? { attribute } : {}) });
    return out;
  };
  const ints = (v: number[]) => { const name = `/ragdiff_ip/const_${n++}`; inits.push({ name, dims: [String(v.length)], data_type: 7, int64_data: v.map(String) }); return name; };
  const float = (v: number, type: number) => { const name = `/ragdiff_ip/const_${n++}`; inits.push(floatScalar(name, v, type)); return name; };
  const casts = new Map<string, string>();
  /** `t` (float32 input or adapter weight) in element type `type`, one Cast per tensor and type. */
  const toFloat = (t: string, type: number) => {
    const key = `${t}|${type}`;
    if (!casts.has(key)) casts.set(key, op('Cast', [t], [{ name: 'to', type: 'INT', i: String(type) }]));
    return casts.get(key)!;
  };
  const perm = (p: number[]) => [{ name: 'perm', type: 'INTS', ints: p.map(String) }];
  const weight = (key: string, t: TensorInfo, type: number) => {
    inits.push(externalInit(key, t, file, weightsDir));
    const wT = op('Transpose', [key], perm([1, 0]));
    return ONNX_DTYPE[t.dtype] === type ? wT : toFloat(wT, type);
  };
  // ip_scale and ip_tokens are float32 inputs (image_proj's output as is); each block casts them into
  // its arithmetic type (the type its q weight is used in)
  const s32 = op('Reshape', ['ip_scale', ints([-1, 1, 1])]);
  const inType = (t: string, type: number) => (type === 1 ? t : toFloat(t, type));
  let crossDim = 0;
  cross.forEach((blk, gi) => {
    const key = `ip_adapter.${2 * processorIndex(gi, layout) + 1}`;
    const tk = need(file, `${key}.to_k_ip.weight`);
    const tv = need(file, `${key}.to_v_ip.weight`);
    const kvIn = idx.weightDims(blk.wk)?.[0];
    for (const t of [tk, tv]) {
      if (t.shape.length !== 2 || t.shape[0] !== blk.inner || t.shape[1] !== kvIn) {
        throw new RagdiffError('WEIGHTS_MISMATCH', `${basename(file.path)}: ${t.name} is [${t.shape}] but cross-attention block ${gi} (graph order) needs [${blk.inner}, ${kvIn}] (inner width, cross-attention width); an adapter for another model?`);
      }
    }
    crossDim = kvIn!;
    const type = idx.weightElemType(blk.wq);
    const tokens = inType('ip_tokens', type);
    const d = blk.inner / blk.heads;
    const split = ints([0, 0, blk.heads, d]);
    const heads = (x: string, w: string, p: number[]) => op('Transpose', [op('Reshape', [op('MatMul', [x, w]), split])], perm(p));
    const q = heads(blk.queryInput, blk.wq, [0, 2, 1, 3]);
    const k = heads(tokens, weight(`${key}.to_k_ip.weight`, tk, type), [0, 2, 3, 1]);
    const v = heads(tokens, weight(`${key}.to_v_ip.weight`, tv, type), [0, 2, 1, 3]);
    const p = op('Softmax', [op('Mul', [op('MatMul', [q, k]), float(blk.scale, type)])], [{ name: 'axis', type: 'INT', i: '-1' }]);
    const ip = op('Reshape', [op('Transpose', [op('MatMul', [p, v])], perm([0, 2, 1, 3])), ints([0, 0, -1])]);
    blk.outProj.input![0] = op('Add', [blk.outProj.input![0], op('Mul', [ip, inType(s32, type)])]);
  });
  g.input = [...(g.input ?? []),
    { name: 'ip_tokens', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_param: 'batch_size' }, { dim_param: 'ip_tokens' }, { dim_value: String(crossDim) }] } } } },
    { name: 'ip_scale', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_param: 'scale_batch' }] } } } }];
  g.node = [...g.node, ...nodes];
  g.initializer = [...(g.initializer ?? []), ...inits];
  model.metadata_props = [...(model.metadata_props ?? []), { key: CONVERTED_MARK, value: `ip-adapter;blocks=${cross.length}` }];
  return { model, crossBlocks: cross.length, crossDim };
}

/** image_proj.onnx: image_embeds [B, clip_dim] → ip_tokens [B, T, cross_dim] (plain IP-Adapter). */
export function imageProjGraph(file: SafetensorsFile, crossDim: number, weightsDir: string): ModelJson {
  const w = need(file, 'image_proj.proj.weight');
  const b = need(file, 'image_proj.proj.bias');
  const nw = need(file, 'image_proj.norm.weight');
  const nb = need(file, 'image_proj.norm.bias');
  const [rows, clipDim] = w.shape;
  if (nw.shape[0] !== crossDim || rows % crossDim !== 0) {
    throw new RagdiffError('WEIGHTS_MISMATCH', `${basename(file.path)}: image_proj.norm.weight is [${nw.shape}] and image_proj.proj.weight [${w.shape}], but the UNet's cross-attention width is ${crossDim} (an SDXL adapter on an SD 1.5 UNet, or the reverse?)`);
  }
  const tokens = rows / crossDim;
  const cast = (name: string, t: TensorInfo): NodeJson[] => (t.dtype === 'F32' ? [] : [{ op_type: 'Cast', input: [name], output: [`${name}/f32`], name: `${name}/cast`, attribute: [{ name: 'to', type: 'INT', i: '1' }] }]);
  const f = (name: string, t: TensorInfo) => (t.dtype === 'F32' ? name : `${name}/f32`);
  const nodes: NodeJson[] = [
    ...cast('image_proj.proj.weight', w), ...cast('image_proj.proj.bias', b), ...cast('image_proj.norm.weight', nw), ...cast('image_proj.norm.bias', nb),
    { op_type: 'Gemm', input: ['image_embeds', f('image_proj.proj.weight', w), f('image_proj.proj.bias', b)], output: ['proj'], name: 'proj', attribute: [{ name: 'transB', type: 'INT', i: '1' }] },
    { op_type: 'Reshape', input: ['proj', 'shape'], output: ['tokens'], name: 'reshape' },
    { op_type: 'LayerNormalization', input: ['tokens', f('image_proj.norm.weight', nw), f('image_proj.norm.bias', nb)], output: ['ip_tokens'], name: 'norm', attribute: [{ name: 'axis', type: 'INT', i: '-1' }, { name: 'epsilon', type: 'FLOAT', f: 1e-5 }] },
  ];
  return {
    ir_version: '8',
    opset_import: [{ domain: '', version: '17' }],
    producer_name: 'ragdiff convert ip-adapter',
    graph: {
      name: 'image_proj',
      node: nodes,
      initializer: [
        externalInit('image_proj.proj.weight', w, file, weightsDir), externalInit('image_proj.proj.bias', b, file, weightsDir),
        externalInit('image_proj.norm.weight', nw, file, weightsDir), externalInit('image_proj.norm.bias', nb, file, weightsDir),
        { name: 'shape', dims: ['3'], data_type: 7, int64_data: ['0', String(tokens), String(crossDim)] },
      ],
      input: [{ name: 'image_embeds', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_param: 'batch_size' }, { dim_value: String(clipDim) }] } } } }],
      output: [{ name: 'ip_tokens', type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_param: 'batch_size' }, { dim_value: String(tokens) }, { dim_value: String(crossDim) }] } } } }],
    },
  };
}
