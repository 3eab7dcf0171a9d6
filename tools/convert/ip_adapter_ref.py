"""PyTorch reference for `ragdiff convert ip-adapter`: IP-Adapter's decoupled cross-attention
(tencent-ailab/IP-Adapter ip_adapter/attention_processor.py IPAttnProcessor and ImageProjModel,
read for their semantics, written anew) on the sd15 fixture UNet, with a random adapter file that
has the published key names at the fixture's widths.

  /usr/bin/python3 tools/convert/ip_adapter_ref.py
    writes test/fixtures/convert/ip_adapter_sd15.safetensors (written here by hand: the JSON header
    + raw F32 tensors, so the Node reader is checked against an independent writer)
    and test/fixtures/convert/ip_adapter_sd15.json (inputs' recipe and expected out_sample)

Key numbering follows diffusers' unet.attn_processors order: down blocks, up blocks, then the mid
block (UNet2DConditionModel registers down_blocks and up_blocks before mid_block), attn1/attn2
alternating, so cross-attention j is ip_adapter.{2j+1}. The unconditional row gets the projection
of a zero image embedding, as IP-Adapter does.
"""
import copy
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'tools', 'sd_fixtures'))
import build  # noqa: E402
from families import FAMILIES  # noqa: E402
from unet import BasicTransformerBlock  # noqa: E402

CLIP_DIM = 24
TOKENS = 4
STATE = {'ip': None, 'scale': 1.0}


def attend(attn, q, k, v):
    b, n, inner = q.shape
    h = attn.heads
    q, k, v = (t.reshape(t.shape[0], -1, h, inner // h).transpose(1, 2) for t in (q, k, v))
    p = torch.softmax(q @ k.transpose(-1, -2) * attn.scale, dim=-1)
    return (p @ v).transpose(1, 2).reshape(b, n, inner)


def hacked_forward(self, x, context):
    x = self.attn1(self.norm1(x)) + x
    a = self.attn2
    n = self.norm2(x)
    q = a.to_q(n)
    out = attend(a, q, a.to_k(context), a.to_v(context))
    ip = STATE['ip']
    out = out + STATE['scale'] * attend(a, q, F.linear(ip, self.to_k_ip), F.linear(ip, self.to_v_ip))
    x = a.to_out[0](out) + x
    return self.ff(self.norm3(x)) + x


def write_safetensors(path, tensors):
    header, off, blobs = {}, 0, []
    for k, t in tensors.items():
        b = t.contiguous().numpy().astype('<f4').tobytes()
        header[k] = {'dtype': 'F32', 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def pattern(shape, scale, phase):
    n = math.prod(shape)
    return torch.tensor([scale * math.sin(0.37 * i + phase) for i in range(n)], dtype=torch.float32).reshape(shape)


def main():
    with open(os.path.join(ROOT, 'test/fixtures/sd/sd15/text_encoder/config.json')) as f:
        vocab_size = json.load(f)['vocab_size']
    fam = build.realize(copy.deepcopy(FAMILIES['sd15']))
    unet = build.build_models('sd15', fam, vocab_size)['unet']
    cad = fam['unet']['cross_attention_dim']
    blocks = [m for part in (unet.down_blocks, unet.up_blocks, unet.mid_block) for m in part.modules() if isinstance(m, BasicTransformerBlock)]
    g = torch.Generator().manual_seed(24)
    tensors = {}
    for j, blk in enumerate(blocks):
        inner = blk.attn2.to_k.out_features
        blk.to_k_ip = torch.randn(inner, cad, generator=g) * 0.3
        blk.to_v_ip = torch.randn(inner, cad, generator=g) * 0.3
        tensors[f'ip_adapter.{2 * j + 1}.to_k_ip.weight'] = blk.to_k_ip
        tensors[f'ip_adapter.{2 * j + 1}.to_v_ip.weight'] = blk.to_v_ip
    proj_w = torch.randn(TOKENS * cad, CLIP_DIM, generator=g) * 0.3
    proj_b = torch.randn(TOKENS * cad, generator=g) * 0.1
    norm_w = 1 + 0.1 * torch.randn(cad, generator=g)
    norm_b = 0.1 * torch.randn(cad, generator=g)
    tensors.update({'image_proj.proj.weight': proj_w, 'image_proj.proj.bias': proj_b, 'image_proj.norm.weight': norm_w, 'image_proj.norm.bias': norm_b})
    dst = os.path.join(ROOT, 'test/fixtures/convert')
    write_safetensors(os.path.join(dst, 'ip_adapter_sd15.safetensors'), tensors)

    def image_proj(e):
        return F.layer_norm(F.linear(e, proj_w, proj_b).reshape(-1, TOKENS, cad), (cad,), norm_w, norm_b, 1e-5)

    BasicTransformerBlock.forward = hacked_forward
    sample, t, ehs = pattern((2, 4, 8, 8), 0.9, 0.0), torch.tensor([500]), pattern((2, 77, 32), 1.0, 1.0)
    embeds = pattern((3, CLIP_DIM), 1.5, 3.0)                       # up to three reference images
    cases = []
    with torch.no_grad():
        for refs, scale in ((1, 1.0), (1, 0.5), (3, 0.7)):
            cond = image_proj(embeds[:refs]).reshape(1, refs * TOKENS, cad)          # tokens concatenated
            uncond = image_proj(torch.zeros(refs, CLIP_DIM)).reshape(1, refs * TOKENS, cad)
            STATE.update(ip=torch.cat([uncond, cond]), scale=scale)                   # rows: [uncond; cond]
            out = unet(sample, t, ehs)
            cases.append({'references': refs, 'scale': scale, 'out_sample': out.flatten().tolist()})
        STATE.update(scale=0.0)
        plain = unet(sample, t, ehs)
    doc = {'source': 'tools/convert/ip_adapter_ref.py', 'clip_dim': CLIP_DIM, 'tokens': TOKENS,
           'inputs': 'sample 0.9 sin(0.37 i) [2,4,8,8]; timestep [500]; encoder_hidden_states sin(0.37 i + 1) [2,77,32]; '
                     'image_embeds 1.5 sin(0.37 i + 3) [3,24] (first `references` rows); row 0 unconditional (zero embeds), row 1 conditional',
           'plain_out_sample': plain.flatten().tolist(), 'cases': cases}
    with open(os.path.join(dst, 'ip_adapter_sd15.json'), 'w') as f:
        json.dump(doc, f)
        f.write('\n')
    print('blocks', len(blocks), 'max |ip - plain|', [float((torch.tensor(c['out_sample']) - plain.flatten()).abs().max()) for c in cases])


if __name__ == '__main__':
    main()
