#!/usr/bin/python3
"""Checks that the fixture modules, built at the *published* configurations
(test/fixtures/sd-configs/), have the state-dict keys and shapes a real
checkpoint has, so a real state dict would load into them:

1. every key follows diffusers' / transformers' naming (a grammar per model
   class, written from diffusers' models/unets/unet_2d_condition.py,
   unet_2d_blocks.py, resnet.py, attention.py, attention_processor.py,
   transformers/transformer_2d.py, embeddings.py, autoencoders/vae.py and
   transformers' models/clip/modeling_clip.py);
2. the block structure the config implies is there (resnets per block,
   attentions only in CrossAttn blocks, transformer_layers_per_block, up/down
   samplers everywhere but the last block, conv_shortcut where widths change,
   cond_proj / add_embedding only when configured) with the shapes the
   config implies (attn2.to_k = [inner, cross_attention_dim], GEGLU ff.net.0.proj
   = [8·inner, inner], linear vs 1×1-conv proj_in, time/add embeddings);
3. the parameter totals equal the ones commonly reported for the released
   checkpoints (e.g. SD 1.5 UNet 859,520,964; SDXL UNet 2,567,463,684): the
   count being right to the unit is a strong check that no layer is missing,
   extra or mis-shaped.

Modules are built on the meta device: no memory, seconds.
  /usr/bin/python3 tools/sd_fixtures/check_keys.py        (exit 1 on any failure)
"""
import functools
import json
import os
import re
import sys

import torch.nn as nn

for _name in ('Linear', 'Conv2d', 'Embedding', 'GroupNorm', 'LayerNorm'):
    setattr(nn, _name, functools.partial(getattr(nn, _name), device='meta'))

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from clip import CLIPTextModel, CLIPTextModelWithProjection  # noqa: E402
from unet import UNet2DConditionModel  # noqa: E402
from vae import AutoencoderKL  # noqa: E402

CONFIGS = os.path.join(HERE, '..', '..', 'test', 'fixtures', 'sd-configs')
WB = r'\.(weight|bias)'
UNET_GRAMMAR = [
    r'conv_in' + WB, r'conv_norm_out' + WB, r'conv_out' + WB,
    r'time_embedding\.linear_[12]' + WB, r'time_embedding\.cond_proj\.weight', r'add_embedding\.linear_[12]' + WB,
    r'(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.resnets\.\d+\.(norm1|conv1|time_emb_proj|norm2|conv2|conv_shortcut)' + WB,
    r'(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.attentions\.\d+\.(norm|proj_in|proj_out)' + WB,
    r'(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.attentions\.\d+\.transformer_blocks\.\d+\.norm[123]' + WB,
    r'(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.attentions\.\d+\.transformer_blocks\.\d+\.attn[12]\.to_[qkv]\.weight',
    r'(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.attentions\.\d+\.transformer_blocks\.\d+\.attn[12]\.to_out\.0' + WB,
    r'(down_blocks\.\d+|up_blocks\.\d+|mid_block)\.attentions\.\d+\.transformer_blocks\.\d+\.ff\.net\.(0\.proj|2)' + WB,
    r'down_blocks\.\d+\.downsamplers\.0\.conv' + WB, r'up_blocks\.\d+\.upsamplers\.0\.conv' + WB,
]
VAE_GRAMMAR = [
    r'(encoder|decoder)\.(conv_in|conv_norm_out|conv_out)' + WB, r'(quant_conv|post_quant_conv)' + WB,
    r'(encoder\.down_blocks|decoder\.up_blocks)\.\d+\.resnets\.\d+\.(norm1|conv1|norm2|conv2|conv_shortcut)' + WB,
    r'(encoder|decoder)\.mid_block\.resnets\.[01]\.(norm1|conv1|norm2|conv2)' + WB,
    r'(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)' + WB,
    r'encoder\.down_blocks\.\d+\.downsamplers\.0\.conv' + WB, r'decoder\.up_blocks\.\d+\.upsamplers\.0\.conv' + WB,
]
CLIP_GRAMMAR = [
    r'text_model\.embeddings\.(token_embedding|position_embedding)\.weight',
    r'text_model\.encoder\.layers\.\d+\.self_attn\.(q_proj|k_proj|v_proj|out_proj)' + WB,
    r'text_model\.encoder\.layers\.\d+\.(layer_norm1|layer_norm2|mlp\.fc1|mlp\.fc2)' + WB,
    r'text_model\.final_layer_norm' + WB, r'text_projection\.weight',
]
# Totals commonly reported for the released checkpoints (model cards, diffusers/transformers docs).
PUBLISHED_TOTALS = {
    ('runwayml-stable-diffusion-v1-5', 'unet'): 859_520_964,
    ('runwayml-stable-diffusion-v1-5', 'vae'): 83_653_863,
    ('runwayml-stable-diffusion-v1-5', 'text_encoder'): 123_060_480,
    ('stabilityai-stable-diffusion-2-1', 'unet'): 865_910_724,
    ('stabilityai-stable-diffusion-2-1', 'text_encoder'): 340_387_840,
    ('stabilityai-stable-diffusion-xl-base-1.0', 'unet'): 2_567_463_684,
    ('stabilityai-stable-diffusion-xl-base-1.0', 'text_encoder'): 123_060_480,
    ('stabilityai-stable-diffusion-xl-base-1.0', 'text_encoder_2'): 694_659_840,
    ('stabilityai-stable-diffusion-xl-base-1.0', 'vae'): 83_653_863,
}

failures = []


def fail(where, msg):
    failures.append(f'{where}: {msg}')


def grammar(where, keys, rules):
    pats = [re.compile(r + r'$') for r in rules]
    for k in keys:
        if not any(p.match(k) for p in pats):
            fail(where, f'key {k} is not in the published naming')


def expect(where, sd, key, shape):
    if key not in sd:
        fail(where, f'missing {key}')
    elif list(sd[key]) != list(shape):
        fail(where, f'{key} has shape {list(sd[key])}, the config implies {list(shape)}')


def per_block(v, n):
    return list(v) if isinstance(v, (list, tuple)) else [v] * n


def check_unet(where, c, sd):
    grammar(where, sd, UNET_GRAMMAR)
    boc = c['block_out_channels']
    n = len(boc)
    heads = per_block(c.get('num_attention_heads') or c.get('attention_head_dim', 8), n)
    tl = per_block(c.get('transformer_layers_per_block', 1), n)
    lpb = c['layers_per_block']
    cad = c['cross_attention_dim']
    linear = c.get('use_linear_projection', False)
    c0, temb = boc[0], boc[0] * 4
    expect(where, sd, 'conv_in.weight', [c0, c['in_channels'], 3, 3])
    expect(where, sd, 'time_embedding.linear_1.weight', [temb, c0])
    expect(where, sd, 'time_embedding.linear_2.weight', [temb, temb])
    if c.get('time_cond_proj_dim'):
        expect(where, sd, 'time_embedding.cond_proj.weight', [c0, c['time_cond_proj_dim']])
    elif any(k.startswith('time_embedding.cond_proj') for k in sd):
        fail(where, 'cond_proj without time_cond_proj_dim')
    if c.get('addition_embed_type') == 'text_time':
        expect(where, sd, 'add_embedding.linear_1.weight', [temb, c['projection_class_embeddings_input_dim']])
    elif any(k.startswith('add_embedding') for k in sd):
        fail(where, 'add_embedding without addition_embed_type text_time')

    def attention(prefix, ch, layers):
        expect(where, sd, f'{prefix}.proj_in.weight', [ch, ch] if linear else [ch, ch, 1, 1])
        blocks = {int(m.group(1)) for k in sd for m in [re.match(re.escape(prefix) + r'\.transformer_blocks\.(\d+)\.', k)] if m}
        if blocks != set(range(layers)):
            fail(where, f'{prefix} has transformer blocks {sorted(blocks)}, the config implies {layers}')
        t = f'{prefix}.transformer_blocks.0'
        expect(where, sd, f'{t}.attn1.to_k.weight', [ch, ch])
        expect(where, sd, f'{t}.attn2.to_k.weight', [ch, cad])
        expect(where, sd, f'{t}.attn2.to_v.weight', [ch, cad])
        expect(where, sd, f'{t}.ff.net.0.proj.weight', [8 * ch, ch])
        expect(where, sd, f'{t}.ff.net.2.weight', [ch, 4 * ch])
        if f'{t}.attn1.to_q.bias' in sd:
            fail(where, 'to_q has a bias (diffusers: bias=False)')
        if ch % heads_of(prefix):
            fail(where, f'{prefix}: {ch} channels do not split into {heads_of(prefix)} heads')

    def heads_of(prefix):
        m = re.match(r'(down|up)_blocks\.(\d+)', prefix)
        if not m:
            return heads[-1]
        return heads[int(m.group(2))] if m.group(1) == 'down' else heads[::-1][int(m.group(2))]

    def count(prefix, part):
        return len({m.group(1) for k in sd for m in [re.match(re.escape(prefix) + rf'\.{part}\.(\d+)\.', k)] if m})
    for i, kind in enumerate(c['down_block_types']):
        p = f'down_blocks.{i}'
        if count(p, 'resnets') != lpb:
            fail(where, f'{p}: {count(p, "resnets")} resnets, expected {lpb}')
        cross = kind.startswith('CrossAttn')
        if count(p, 'attentions') != (lpb if cross else 0):
            fail(where, f'{p} ({kind}): {count(p, "attentions")} attentions')
        for j in range(lpb if cross else 0):
            attention(f'{p}.attentions.{j}', boc[i], tl[i])
        if (f'{p}.downsamplers.0.conv.weight' in sd) != (i < n - 1):
            fail(where, f'{p}: downsampler presence wrong')
        cin = boc[i - 1] if i else boc[0]
        if (f'{p}.resnets.0.conv_shortcut.weight' in sd) != (cin != boc[i]):
            fail(where, f'{p}.resnets.0: conv_shortcut presence wrong')
    attention('mid_block.attentions.0', boc[-1], tl[-1])
    rboc, rtl = boc[::-1], tl[::-1]
    for i, kind in enumerate(c['up_block_types']):
        p = f'up_blocks.{i}'
        if count(p, 'resnets') != lpb + 1:
            fail(where, f'{p}: {count(p, "resnets")} resnets, expected {lpb + 1}')
        cross = kind.startswith('CrossAttn')
        for j in range(lpb + 1 if cross else 0):
            attention(f'{p}.attentions.{j}', rboc[i], rtl[i])
        if (f'{p}.upsamplers.0.conv.weight' in sd) != (i < n - 1):
            fail(where, f'{p}: upsampler presence wrong')
        prev = rboc[i - 1] if i else rboc[0]
        skip = rboc[min(i + 1, n - 1)]
        expect(where, sd, f'{p}.resnets.0.conv1.weight', [rboc[i], prev + rboc[i], 3, 3])
        expect(where, sd, f'{p}.resnets.{lpb}.conv1.weight', [rboc[i], rboc[i] + skip, 3, 3])
        expect(where, sd, f'{p}.resnets.0.time_emb_proj.weight', [rboc[i], temb])


def check_vae(where, c, sd):
    grammar(where, sd, VAE_GRAMMAR)
    boc = c['block_out_channels']
    lc = c.get('latent_channels', 4)
    expect(where, sd, 'encoder.conv_out.weight', [2 * lc, boc[-1], 3, 3])
    expect(where, sd, 'quant_conv.weight', [2 * lc, 2 * lc, 1, 1])
    expect(where, sd, 'post_quant_conv.weight', [lc, lc, 1, 1])
    expect(where, sd, 'decoder.conv_in.weight', [boc[-1], lc, 3, 3])
    expect(where, sd, 'decoder.mid_block.attentions.0.to_q.weight', [boc[-1], boc[-1]])
    expect(where, sd, 'decoder.mid_block.attentions.0.to_q.bias', [boc[-1]])
    for i in range(len(boc)):
        if (f'encoder.down_blocks.{i}.downsamplers.0.conv.weight' in sd) != (i < len(boc) - 1):
            fail(where, f'encoder.down_blocks.{i}: downsampler presence wrong')
        if f'decoder.up_blocks.{i}.resnets.{c["layers_per_block"]}.conv1.weight' not in sd:
            fail(where, f'decoder.up_blocks.{i}: expected layers_per_block + 1 resnets')


def check_clip(where, c, sd, projection):
    grammar(where, sd, CLIP_GRAMMAR)
    d, i = c['hidden_size'], c['intermediate_size']
    expect(where, sd, 'text_model.embeddings.token_embedding.weight', [c['vocab_size'], d])
    expect(where, sd, 'text_model.embeddings.position_embedding.weight', [c['max_position_embeddings'], d])
    layers = {int(m.group(1)) for k in sd for m in [re.match(r'text_model\.encoder\.layers\.(\d+)\.', k)] if m}
    if layers != set(range(c['num_hidden_layers'])):
        fail(where, f'{len(layers)} layers, config says {c["num_hidden_layers"]}')
    expect(where, sd, 'text_model.encoder.layers.0.mlp.fc1.weight', [i, d])
    expect(where, sd, 'text_model.encoder.layers.0.self_attn.q_proj.bias', [d])
    if projection:
        expect(where, sd, 'text_projection.weight', [c['projection_dim'], d])
    elif 'text_projection.weight' in sd:
        fail(where, 'text_projection on a CLIPTextModel')


def main():
    checked = 0
    for model in sorted(os.listdir(CONFIGS)):
        root = os.path.join(CONFIGS, model)
        if not os.path.isdir(root):
            continue
        parts = [('unet', 'unet/config.json'), ('vae', 'vae/config.json'),
                 ('text_encoder', 'text_encoder/config.json'), ('text_encoder_2', 'text_encoder_2/config.json')]
        for part, rel in parts:
            path = os.path.join(root, rel)
            if not os.path.exists(path):
                continue
            with open(path) as f:
                c = json.load(f)
            where = f'{model}/{part}'
            if part == 'unet':
                m = UNet2DConditionModel(c)
            elif part == 'vae':
                m = AutoencoderKL(c)
            else:
                proj = c['architectures'][0] == 'CLIPTextModelWithProjection'
                m = (CLIPTextModelWithProjection if proj else CLIPTextModel)(c)
            sd = {k: tuple(v.shape) for k, v in m.state_dict().items()}
            {'unet': lambda: check_unet(where, c, sd), 'vae': lambda: check_vae(where, c, sd)}.get(
                part, lambda: check_clip(where, c, sd, c['architectures'][0] == 'CLIPTextModelWithProjection'))()
            total = sum(p.numel() for p in m.parameters())
            want = PUBLISHED_TOTALS.get((model, part))
            if want is not None and total != want:
                fail(where, f'{total:,} parameters, the released checkpoint has {want:,}')
            print(f'{where:58s} {len(sd):5d} keys {total:>15,} params' + (' = published total' if want == total else ''))
            checked += 1
    for f in failures:
        print('FAIL', f)
    print(f'{checked} modules checked, {len(failures)} failures')
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
