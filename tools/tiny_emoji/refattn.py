"""Reference attention ("reference-only", training-free) for the tiny-emoji UNet, and its ONNX export.

  /usr/bin/python3 tools/tiny_emoji/refattn.py     # writes models/tiny-emoji/unet/refattn.onnx
                                                   # and golden values in tools/tiny_emoji/golden_refattn.json

The file holds the graph only (about 0.3 MB): its weights are the base UNet's, so every large
initializer is ONNX external data pointing at the identical bytes inside `model.onnx` of the same
directory (location "model.onnx", offset, length). That keeps the bundle under its 30 MB cap
(test/model-bundle.test.ts) instead of adding a 13 MB copy. onnxruntime only reads external data
from the model's own directory, hence unet/ rather than a directory of its own. The variant is
valid only with the exact unet/model.onnx it was made from: its sha256 is recorded in
model_index.json (ragdiff.variants.reference_attention.weights) and the export must be rerun
whenever the UNet is re-exported.

The variant has the base UNet's weights and two extra inputs:
  ref_sample  [B,4,16,16]  the reference's latent (x scaling_factor), noised by the caller to the
                           current timestep: sqrt(a_t) z_ref + sqrt(1 - a_t) noise
  ref_weight  [B] or [1]   fidelity w in [0,1]
The UNet runs on ref_sample with the same timestep and encoder_hidden_states; at every transformer
block with self-attention, its self-attention input (after ln0, the "bank") is kept. In the real pass
that block's self-attention becomes
    w * Attn(q = x, kv = [x ; bank]) + (1 - w) * Attn(q = x, kv = x)
(the mix is taken before the output projection, which is linear, so it equals mixing the outputs).
With w = 0 the output equals the base UNet's.
Both passes run in lockstep as one batch of 2B (reference rows second), so the bank of each block is
ready when the real rows need it. The reference rows use plain self-attention, as the base UNet.
Cost: one UNet evaluation at batch 2B per call.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

OPSET = 17


def _heads(lin, x, h):
    b, n, d = x.shape[0], x.shape[1], lin.out_features
    return lin(x).reshape(b, n, h, d // h).transpose(1, 2)         # [b,h,n,d/h]


def shared_self_attention(attn, n, b, w):
    """attn: the block's C.Attention; n: [2B, N, c] normalised inputs (real rows first, reference
    rows second); b: B as a 0-d tensor or int; w: [B or 1, 1, 1]. Returns [2B, N, c]."""
    h = attn.heads
    d = n.shape[-1]
    q = _heads(attn.q, n, h)
    k = _heads(attn.k, n, h)
    v = _heads(attn.v, n, h)
    scale = 1.0 / math.sqrt(d // h)
    own = torch.matmul(q, k.transpose(-1, -2)) * scale                 # [2B,h,N,N]
    plain = torch.matmul(torch.softmax(own, dim=-1), v)                # every row: plain self-attention
    qx, kx, vx = q[:b], k[:b], v[:b]
    kr, vr = k[b:], v[b:]                                              # the bank, projected
    cross = torch.matmul(qx, kr.transpose(-1, -2)) * scale             # [B,h,N,N]
    p = torch.softmax(torch.cat([own[:b], cross], dim=-1), dim=-1)
    shared = torch.matmul(p, torch.cat([vx, vr], dim=2))               # attention over [own ; bank]
    mixed = w[:, :, :, None] * shared + (1.0 - w[:, :, :, None]) * plain[:b]
    y = torch.cat([mixed, plain[b:]], dim=0)
    y = y.transpose(1, 2).reshape(n.shape[0], n.shape[1], d)
    return attn.o(y)


def transformer(st, x, ctx, b, w):
    bb, c, hh, ww = x.shape
    h = st.pin(st.norm(x)).reshape(bb, c, hh * ww).transpose(1, 2)
    if st.self_attn:
        h = h + shared_self_attention(st.sa, st.ln0(h), b, w)
    h = h + st.ca(st.ln1(h), ctx)
    h = h + st.ff(st.ln2(h))
    h = h.transpose(1, 2).reshape(bb, c, hh, ww)
    return x + st.pout(h)


class RefAttnUNet(nn.Module):
    """sample, timestep, encoder_hidden_states, ref_sample, ref_weight -> out_sample."""

    def __init__(self, unet=None):
        super().__init__()
        self.unet = unet if unet is not None else C.UNet()

    def forward(self, sample, timestep, encoder_hidden_states, ref_sample, ref_weight):
        u = self.unet
        b = sample.shape[0]
        w = ref_weight.reshape(-1, 1, 1).to(sample.dtype)              # [B or 1,1,1]
        x = torch.cat([sample, ref_sample], 0)
        ctx = torch.cat([encoder_hidden_states, encoder_hidden_states], 0)
        t = u.temb(C.timestep_embedding(timestep.reshape(-1), u.c0))  # [B or 1, tdim]
        t = t.expand(b, t.shape[1])
        t = torch.cat([t, t], 0)
        h0 = transformer(u.att_d0, u.down0(u.inp(x), t), ctx, b, w)
        h1 = transformer(u.att_d1, u.down1(u.ds0(h0), t), ctx, b, w)
        h2 = transformer(u.att_d2, u.down2(u.ds1(h1), t), ctx, b, w)
        h = transformer(u.att_mid, u.mid(h2, t), ctx, b, w)
        h = transformer(u.att_u2, u.up2(torch.cat([h, h2], 1), t), ctx, b, w)
        h = u.us1(F.interpolate(h, scale_factor=2.0, mode='nearest'))
        h = transformer(u.att_u1, u.up1(torch.cat([h, h1], 1), t), ctx, b, w)
        h = u.us0(F.interpolate(h, scale_factor=2.0, mode='nearest'))
        h = transformer(u.att_u0, u.up0(torch.cat([h, h0], 1), t), ctx, b, w)
        out = u.out(F.silu(u.norm(h)))
        return out[:b]


INPUTS = ['sample', 'timestep', 'encoder_hidden_states', 'ref_sample', 'ref_weight']
REL_PATH = 'unet/refattn.onnx'
BASE_PATH = 'unet/model.onnx'


def share_weights(model_path, base_path):
    """Rewrites the initializers of `model_path` (>= 64 bytes) as external data that points at the
    same bytes inside `base_path` (which must sit in the same directory). Returns the count."""
    import onnx
    from onnx import TensorProto
    if os.path.dirname(os.path.abspath(model_path)) != os.path.dirname(os.path.abspath(base_path)):
        raise ValueError('onnxruntime reads external data only from the model directory')
    with open(base_path, 'rb') as f:
        base = f.read()
    m = onnx.load(model_path)
    n = 0
    for t in m.graph.initializer:
        raw = t.raw_data
        if len(raw) < 64:
            continue
        off = base.find(raw)
        if off < 0:
            raise RuntimeError(f'{t.name}: no identical bytes in {base_path} (was the UNet re-exported?)')
        t.ClearField('raw_data')
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        for k, v in (('location', os.path.basename(base_path)), ('offset', str(off)), ('length', str(len(raw)))):
            e = t.external_data.add()
            e.key, e.value = k, v
        n += 1
    onnx.save(m, model_path)
    return n


def declare(path, base_path):
    """Adds ragdiff.variants.reference_attention to model_index.json (nothing else changes)."""
    import hashlib
    idx_path = os.path.join(C.BUNDLE, 'model_index.json')
    with open(idx_path) as f:
        idx = json.load(f)
    with open(base_path, 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    idx['ragdiff'].setdefault('variants', {})['reference_attention'] = {
        'path': os.path.relpath(path, C.BUNDLE),
        'inputs': [
            {'name': 'sample', 'dtype': 'float32', 'shape': ['B', C.LATENT_CHANNELS, C.LATENT_SIZE, C.LATENT_SIZE]},
            {'name': 'timestep', 'dtype': 'int64', 'shape': ['B or 1']},
            {'name': 'encoder_hidden_states', 'dtype': 'float32', 'shape': ['B', C.MAX_LEN + C.K_NEIGHBOURS, C.WIDTH]},
            {'name': 'ref_sample', 'dtype': 'float32', 'shape': ['B', C.LATENT_CHANNELS, C.LATENT_SIZE, C.LATENT_SIZE],
             'note': 'reference latent (vae_encoder mean x scaling_factor) noised to the same timestep'},
            {'name': 'ref_weight', 'dtype': 'float32', 'shape': ['B or 1'],
             'note': 'fidelity w in [0, 1]; self-attention = w attn([x; bank]) + (1 - w) attn(x); 0 = the base UNet'},
        ],
        'outputs': ['out_sample'],
        'mechanism': 'reference-only attention (training-free): the UNet runs on ref_sample too and every '
                     'self-attention also attends to the reference pass\'s self-attention inputs',
        'weights': {'shared_with': BASE_PATH, 'sha256': sha},
    }
    with open(idx_path, 'w') as f:
        json.dump(idx, f, indent=2, ensure_ascii=False)
        f.write('\n')


def golden_inputs():
    import onnx_weights as W
    ctx_len = C.MAX_LEN + C.K_NEIGHBOURS
    return (W.pattern((2, 4, 16, 16)), torch.tensor([500]), W.pattern((2, ctx_len, C.WIDTH), 1.0, 1.0),
            W.pattern((2, 4, 16, 16), 0.8, 2.0), torch.tensor([0.6, 1.0]))


def main():
    import onnx_weights as W
    p = argparse.ArgumentParser()
    p.add_argument('--out', default=os.path.join(C.BUNDLE, REL_PATH), help='must be in the unet/ directory')
    args = p.parse_args()
    unet = W.load_into(C.UNet(), 'unet/model.onnx')
    m = RefAttnUNet(unet).eval()
    b = 2
    ctx_len = C.MAX_LEN + C.K_NEIGHBOURS
    ex = (torch.zeros(b, 4, 16, 16), torch.tensor([999, 10]), torch.zeros(b, ctx_len, C.WIDTH),
          torch.zeros(b, 4, 16, 16), torch.tensor([0.5, 1.0]))
    dyn = {n: {0: 'batch'} for n in ('sample', 'encoder_hidden_states', 'ref_sample', 'out_sample')}
    dyn['timestep'] = {0: 'timestep_batch'}
    dyn['ref_weight'] = {0: 'weight_batch'}
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(m, ex, args.out, input_names=INPUTS, output_names=['out_sample'], dynamic_axes=dyn,
                          opset_version=OPSET, do_constant_folding=False)
    base_path = os.path.join(C.BUNDLE, BASE_PATH)
    n = share_weights(args.out, base_path)
    declare(args.out, base_path)
    print(f'wrote {args.out}: {os.path.getsize(args.out) / 1e6:.2f} MB ({n} initializers shared with {BASE_PATH})')
    # golden values: torch on fixed inputs (the TS test feeds the same patterns to onnxruntime-node)
    with torch.no_grad():
        gi = golden_inputs()
        out = m(*gi)
        base = unet(gi[0], gi[1], gi[2])
        zero = m(gi[0], gi[1], gi[2], gi[3], torch.tensor([0.0]))
    g = {'note': 'sample = 0.9 sin(0.37 i); encoder_hidden_states = 1.0 sin(0.37 i + 1); '
                 'ref_sample = 0.8 sin(0.37 i + 2); timestep [500]; ref_weight [0.6, 1.0]; batch 2',
         'out_sample': W.summary(out),
         'max_abs_diff_weight0_vs_base_unet': float((zero - base).abs().max()),
         'mean_abs_diff_weight06_vs_base_unet': float((out[:1] - base[:1]).abs().mean())}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden_refattn.json')
    with open(path, 'w') as f:
        json.dump(g, f, indent=1)
        f.write('\n')
    print(f'wrote {path}: weight 0 vs base max |diff| {g["max_abs_diff_weight0_vs_base_unet"]:.2e}, '
          f'weight 0.6 vs base mean |diff| {g["mean_abs_diff_weight06_vs_base_unet"]:.3e}')


if __name__ == '__main__':
    main()
