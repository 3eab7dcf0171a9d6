"""Attention with diffusers' parameter names (to_q/to_k/to_v/to_out.0, optional
group_norm for the VAE's mid-block) and two export styles, chosen per module by
`style` so one fixture can be exported both ways:

  'baddbmm'  diffusers' classic AttnProcessor: heads folded into the batch
             (B*h, N, d), scores = baddbmm(empty, q, kᵀ, beta=0, alpha=scale),
             softmax, bmm(probs, v) — what optimum's exports of diffusers < 0.20
             (and any export with the classic processor) contain.
  'sdpa'     F.scaled_dot_product_attention as torch 2.x's ONNX exporter
             decomposes it (symbolic_opset14): 4-D (B, h, N, d) tensors,
             q·√scale @ (kᵀ·√scale) → Softmax → @ v — what exports made with
             AttnProcessor2_0 contain. Written out by hand because torch 1.13
             has no SDPA.

Written from diffusers' published source (models/attention_processor.py:
Attention, AttnProcessor, AttnProcessor2_0), not copied.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

# Export style for every Attention built after set_style(); fixtures set it before building.
_STYLE = ['baddbmm']


def set_style(style):
    assert style in ('baddbmm', 'sdpa'), style
    _STYLE[0] = style


class Attention(nn.Module):
    def __init__(self, query_dim, cross_attention_dim=None, heads=8, dim_head=64, bias=False,
                 out_bias=True, norm_num_groups=None, eps=1e-5, residual_connection=False,
                 upcast_softmax=False):
        super().__init__()
        inner = heads * dim_head
        kv_dim = cross_attention_dim if cross_attention_dim is not None else query_dim
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.residual_connection = residual_connection
        self.upcast_softmax = upcast_softmax
        self.style = _STYLE[0]
        self.group_norm = nn.GroupNorm(norm_num_groups, query_dim, eps=eps, affine=True) if norm_num_groups else None
        self.to_q = nn.Linear(query_dim, inner, bias=bias)
        self.to_k = nn.Linear(kv_dim, inner, bias=bias)
        self.to_v = nn.Linear(kv_dim, inner, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim, bias=out_bias), nn.Dropout(0.0)])

    def forward(self, hidden_states, encoder_hidden_states=None):
        residual = hidden_states
        spatial = hidden_states.ndim == 4
        if spatial:
            b, c, hgt, wid = hidden_states.shape
            hidden_states = hidden_states.view(b, c, hgt * wid).transpose(1, 2)
        if self.group_norm is not None:
            hidden_states = self.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        q = self.to_q(hidden_states)
        k = self.to_k(context)
        v = self.to_v(context)
        out = self._classic(q, k, v) if self.style == 'baddbmm' else self._sdpa(q, k, v)
        out = self.to_out[1](self.to_out[0](out))
        if spatial:
            out = out.transpose(-1, -2).reshape(b, c, hgt, wid)
        if self.residual_connection:
            out = out + residual
        return out

    def _heads_to_batch(self, x):
        b, n, dim = x.shape
        h = self.heads
        return x.reshape(b, n, h, dim // h).permute(0, 2, 1, 3).reshape(b * h, n, dim // h)

    def _batch_to_heads(self, x):
        bh, n, d = x.shape
        h = self.heads
        return x.reshape(bh // h, h, n, d).permute(0, 2, 1, 3).reshape(bh // h, n, d * h)

    def _classic(self, q, k, v):
        q, k, v = self._heads_to_batch(q), self._heads_to_batch(k), self._heads_to_batch(v)
        dtype = q.dtype
        empty = torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype, device=q.device)
        scores = torch.baddbmm(empty, q, k.transpose(-1, -2), beta=0, alpha=self.scale)
        if self.upcast_softmax:
            scores = scores.float()
        probs = scores.softmax(dim=-1).to(dtype)
        return self._batch_to_heads(torch.bmm(probs, v))

    def _sdpa(self, q, k, v):
        b, n, inner = q.shape
        d = inner // self.heads
        q = q.view(b, -1, self.heads, d).transpose(1, 2)
        k = k.view(b, -1, self.heads, d).transpose(1, 2)
        v = v.view(b, -1, self.heads, d).transpose(1, 2)
        root = math.sqrt(self.scale)
        scores = torch.matmul(q * root, k.transpose(-2, -1) * root)
        out = torch.matmul(scores.softmax(dim=-1), v)
        return out.transpose(1, 2).reshape(b, -1, inner)
