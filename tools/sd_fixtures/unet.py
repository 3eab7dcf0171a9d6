"""A UNet with diffusers' `UNet2DConditionModel` parameter names and block
structure, for the configurations Stable Diffusion 1.x/2.x, SDXL and LCM use
(CrossAttnDownBlock2D/DownBlock2D, UNetMidBlock2DCrossAttn,
CrossAttnUpBlock2D/UpBlock2D; positional time embedding; optional
`time_cond_proj_dim` (LCM) and `addition_embed_type: "text_time"` (SDXL)).
Built from a diffusers unet/config.json dict, so a real state dict's keys and
shapes load into it (tools/sd_fixtures/check_keys.py checks that).

Written from diffusers' published source (models/unets/unet_2d_condition.py,
unet_2d_blocks.py, models/resnet.py, models/attention.py,
models/transformers/transformer_2d.py, models/embeddings.py), not copied.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from attention import Attention


def timestep_embedding(t, dim, flip_sin_to_cos=True, shift=0.0, max_period=10000):
    """diffusers' get_timestep_embedding (Timesteps): sinusoidal, cos first when flipped."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32) / (half - shift)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1))
    return emb


class TimestepEmbedding(nn.Module):
    def __init__(self, in_channels, time_embed_dim, cond_proj_dim=None):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.cond_proj = nn.Linear(cond_proj_dim, in_channels, bias=False) if cond_proj_dim else None
        self.linear_2 = nn.Linear(time_embed_dim, time_embed_dim)

    def forward(self, sample, condition=None):
        if condition is not None:
            sample = sample + self.cond_proj(condition)
        return self.linear_2(F.silu(self.linear_1(sample)))


class ResnetBlock2D(nn.Module):
    def __init__(self, in_channels, out_channels, temb_channels, groups=32, eps=1e-5):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb_channels, out_channels) if temb_channels else None
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if self.time_emb_proj is not None and temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Downsample2D(nn.Module):
    def __init__(self, channels, padding=1):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:  # the VAE encoder pads right/bottom by hand
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode='nearest'))


class GEGLU(nn.Module):
    def __init__(self, dim_in, dim_out):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x):
        hidden, gate = self.proj(x).chunk(2, dim=-1)
        return hidden * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, dim_head, cross_attention_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, None, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, cross_attention_dim, heads, dim_head)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, context):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class Transformer2DModel(nn.Module):
    def __init__(self, heads, dim_head, in_channels, layers, cross_attention_dim, groups, use_linear_projection):
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear_projection
        self.norm = nn.GroupNorm(groups, in_channels, eps=1e-6)
        self.proj_in = nn.Linear(in_channels, inner) if use_linear_projection else nn.Conv2d(in_channels, inner, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, heads, dim_head, cross_attention_dim) for _ in range(layers)])
        self.proj_out = nn.Linear(inner, in_channels) if use_linear_projection else nn.Conv2d(inner, in_channels, 1)

    def forward(self, x, context):
        b, _, h, w = x.shape
        residual = x
        x = self.norm(x)
        if self.use_linear:
            x = x.permute(0, 2, 3, 1).reshape(b, h * w, -1)
            x = self.proj_in(x)
        else:
            x = self.proj_in(x)
            x = x.permute(0, 2, 3, 1).reshape(b, h * w, -1)
        for blk in self.transformer_blocks:
            x = blk(x, context)
        if self.use_linear:
            x = self.proj_out(x)
            x = x.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()
        else:
            x = x.reshape(b, h, w, -1).permute(0, 3, 1, 2).contiguous()
            x = self.proj_out(x)
        return x + residual


class DownBlock(nn.Module):
    """CrossAttnDownBlock2D (with `attentions`) or DownBlock2D (without)."""

    def __init__(self, cin, cout, temb, layers, add_downsample, cross, heads, tlayers, cad, groups, eps, linear):
        super().__init__()
        self.resnets = nn.ModuleList(
            [ResnetBlock2D(cin if i == 0 else cout, cout, temb, groups, eps) for i in range(layers)])
        if cross:
            self.attentions = nn.ModuleList(
                [Transformer2DModel(heads, cout // heads, cout, tlayers, cad, groups, linear) for _ in range(layers)])
        else:
            self.attentions = None
        self.downsamplers = nn.ModuleList([Downsample2D(cout)]) if add_downsample else None

    def forward(self, x, temb, context):
        states = []
        for i, res in enumerate(self.resnets):
            x = res(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x, context)
            states.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            states.append(x)
        return x, states


class UpBlock(nn.Module):
    """CrossAttnUpBlock2D or UpBlock2D: layers_per_block + 1 resnets fed the skip connections."""

    def __init__(self, cin, cout, prev, temb, layers, add_upsample, cross, heads, tlayers, cad, groups, eps, linear):
        super().__init__()
        res = []
        for i in range(layers):
            skip = cin if i == layers - 1 else cout
            rin = prev if i == 0 else cout
            res.append(ResnetBlock2D(rin + skip, cout, temb, groups, eps))
        self.resnets = nn.ModuleList(res)
        if cross:
            self.attentions = nn.ModuleList(
                [Transformer2DModel(heads, cout // heads, cout, tlayers, cad, groups, linear) for _ in range(layers)])
        else:
            self.attentions = None
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if add_upsample else None

    def forward(self, x, skips, temb, context):
        for i, res in enumerate(self.resnets):
            x = torch.cat([x, skips.pop()], dim=1)
            x = res(x, temb)
            if self.attentions is not None:
                x = self.attentions[i](x, context)
        if self.upsamplers is not None:
            x = self.upsamplers[0](x)
        return x


class MidBlock(nn.Module):
    """UNetMidBlock2DCrossAttn: resnet, transformer, resnet."""

    def __init__(self, ch, temb, heads, tlayers, cad, groups, eps, linear):
        super().__init__()
        self.attentions = nn.ModuleList([Transformer2DModel(heads, ch // heads, ch, tlayers, cad, groups, linear)])
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, temb, groups, eps), ResnetBlock2D(ch, ch, temb, groups, eps)])

    def forward(self, x, temb, context):
        x = self.resnets[0](x, temb)
        x = self.attentions[0](x, context)
        return self.resnets[1](x, temb)


def _per_block(value, n):
    return list(value) if isinstance(value, (list, tuple)) else [value] * n


SUPPORTED_KEYS = {
    'sample_size', 'in_channels', 'out_channels', 'down_block_types', 'up_block_types', 'mid_block_type',
    'block_out_channels', 'layers_per_block', 'cross_attention_dim', 'attention_head_dim', 'num_attention_heads',
    'transformer_layers_per_block', 'use_linear_projection', 'norm_num_groups', 'norm_eps', 'flip_sin_to_cos',
    'freq_shift', 'addition_embed_type', 'addition_time_embed_dim', 'projection_class_embeddings_input_dim',
    'time_cond_proj_dim', 'act_fn', 'center_input_sample', 'downsample_padding', 'mid_block_scale_factor',
    'dual_cross_attention', 'only_cross_attention', 'upcast_attention', 'class_embed_type', 'num_class_embeds',
    'resnet_time_scale_shift', 'time_embedding_type', 'timestep_post_act', 'conv_in_kernel', 'conv_out_kernel',
    'encoder_hid_dim', 'encoder_hid_dim_type', 'addition_embed_type_num_heads', 'class_embeddings_concat',
    'mid_block_only_cross_attention', 'cross_attention_norm', 'resnet_skip_time_act', 'resnet_out_scale_factor',
    'time_embedding_dim', 'time_embedding_act_fn', 'attention_type', 'dropout',
    'reverse_transformer_layers_per_block',
}


class UNet2DConditionModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        c = dict(config)
        self.config = c
        boc = list(c['block_out_channels'])
        n = len(boc)
        heads = _per_block(c.get('num_attention_heads') or c.get('attention_head_dim', 8), n)
        tlayers = _per_block(c.get('transformer_layers_per_block', 1), n)
        lpb = _per_block(c.get('layers_per_block', 2), n)
        groups = c.get('norm_num_groups', 32)
        eps = c.get('norm_eps', 1e-5)
        cad = c['cross_attention_dim']
        linear = bool(c.get('use_linear_projection', False))
        self.flip = c.get('flip_sin_to_cos', True)
        self.shift = c.get('freq_shift', 0)
        temb = boc[0] * 4

        self.conv_in = nn.Conv2d(c.get('in_channels', 4), boc[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(boc[0], temb, c.get('time_cond_proj_dim'))
        self.addition_embed_type = c.get('addition_embed_type')
        if self.addition_embed_type == 'text_time':
            self.add_time_dim = c['addition_time_embed_dim']
            self.add_embedding = TimestepEmbedding(c['projection_class_embeddings_input_dim'], temb)
        elif self.addition_embed_type is not None:
            raise ValueError(f'addition_embed_type {self.addition_embed_type!r} is not modelled')

        self.down_blocks = nn.ModuleList()
        out = boc[0]
        for i, kind in enumerate(c['down_block_types']):
            cin, out = out, boc[i]
            self.down_blocks.append(DownBlock(cin, out, temb, lpb[i], i < n - 1, kind.startswith('CrossAttn'),
                                              heads[i], tlayers[i], cad, groups, eps, linear))
        self.mid_block = MidBlock(boc[-1], temb, heads[-1], tlayers[-1], cad, groups, eps, linear)

        self.up_blocks = nn.ModuleList()
        rboc, rheads, rtl, rlpb = boc[::-1], heads[::-1], tlayers[::-1], lpb[::-1]
        out = rboc[0]
        for i, kind in enumerate(c['up_block_types']):
            prev, out = out, rboc[i]
            cin = rboc[min(i + 1, n - 1)]
            self.up_blocks.append(UpBlock(cin, out, prev, temb, rlpb[i] + 1, i < n - 1, kind.startswith('CrossAttn'),
                                          rheads[i], rtl[i], cad, groups, eps, linear))
        self.conv_norm_out = nn.GroupNorm(groups, boc[0], eps=eps)
        self.conv_out = nn.Conv2d(boc[0], c.get('out_channels', 4), 3, padding=1)

    def forward(self, sample, timestep, encoder_hidden_states, text_embeds=None, time_ids=None, timestep_cond=None):
        b = sample.shape[0]
        t = timestep.reshape(-1).expand(b)  # diffusers broadcasts a single timestep to the batch
        emb = self.time_embedding(timestep_embedding(t, self.conv_in.out_channels, self.flip, self.shift).to(sample.dtype),
                                  timestep_cond)
        if self.addition_embed_type == 'text_time':
            tid = timestep_embedding(time_ids.flatten(), self.add_time_dim, self.flip, self.shift)
            tid = tid.reshape(text_embeds.shape[0], -1).to(emb.dtype)
            emb = emb + self.add_embedding(torch.cat([text_embeds, tid], dim=-1))

        x = self.conv_in(sample)
        skips = [x]
        for blk in self.down_blocks:
            x, states = blk(x, emb, encoder_hidden_states)
            skips.extend(states)
        x = self.mid_block(x, emb, encoder_hidden_states)
        for blk in self.up_blocks:
            x = blk(x, skips, emb, encoder_hidden_states)
        return self.conv_out(F.silu(self.conv_norm_out(x)))
