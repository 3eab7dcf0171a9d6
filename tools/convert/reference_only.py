"""PyTorch reference for `ragdiff convert reference-attention`: the community reference-only
pipeline's attention (diffusers examples/community/stable_diffusion_reference.py, read for its
semantics, written anew here) on the sd15 fixture UNet's own weights, and the expected outputs the
converted ONNX graph must reproduce (test/convert-reference-attention.test.ts, no torch needed).

  /usr/bin/python3 tools/convert/reference_only.py    # writes test/fixtures/convert/reference_only_sd15.json

Semantics (per step t, CFG batch [uncond; cond], one reference latent z_ref noised to t):
  write pass: the UNet runs on z_ref_t (repeated per row) with the same prompt embeddings and t;
              every BasicTransformerBlock keeps norm1(x) of its input (the bank) and attends plainly;
  read pass:  every self-attention of the main rows attends to [norm1(x) ; bank]:
                uc = attn1(n, kv = cat([n, bank], tokens))
                c  = uc, except the unconditional rows: attn1(n, kv = n)   (style_fidelity > 0)
                out = style_fidelity * c + (1 - style_fidelity) * uc
This is done here as two separate UNet passes, unlike the converted graph (one batch of 2B with a
per-row weight: conditional rows 1, unconditional rows 1 - style_fidelity), so the test compares two
different constructions of the same method.
"""
import json
import math
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
sys.path.insert(0, os.path.join(ROOT, 'tools', 'sd_fixtures'))
import build  # noqa: E402
import copy  # noqa: E402
from families import FAMILIES  # noqa: E402
from unet import BasicTransformerBlock  # noqa: E402

STATE = {'mode': None, 'sf': 0.0, 'uc_rows': []}


def hacked_forward(self, x, context):
    n = self.norm1(x)
    if STATE['mode'] == 'write':
        self.bank = n.detach().clone()
        a = self.attn1(n)
    elif STATE['mode'] == 'read':
        uc = self.attn1(n, torch.cat([n, self.bank], dim=1))
        c = uc.clone()
        rows = STATE['uc_rows']
        if rows and STATE['sf'] > 0:
            c[rows] = self.attn1(n[rows], n[rows])
        a = STATE['sf'] * c + (1.0 - STATE['sf']) * uc
    else:
        a = self.attn1(n)
    x = a + x
    x = self.attn2(self.norm2(x), context) + x
    return self.ff(self.norm3(x)) + x


def pattern(shape, scale, phase):
    n = math.prod(shape)
    return torch.tensor([scale * math.sin(0.37 * i + phase) for i in range(n)], dtype=torch.float32).reshape(shape)


def inputs():
    """The same deterministic inputs the Node test builds."""
    return (pattern((2, 4, 8, 8), 0.9, 0.0), torch.tensor([500]), pattern((2, 77, 32), 1.0, 1.0),
            pattern((1, 4, 8, 8), 0.8, 2.0))


def main():
    with open(os.path.join(ROOT, 'test/fixtures/sd/sd15/text_encoder/config.json')) as f:
        vocab_size = json.load(f)['vocab_size']
    fam = build.realize(copy.deepcopy(FAMILIES['sd15']))
    unet = build.build_models('sd15', fam, vocab_size)['unet']
    BasicTransformerBlock.forward = hacked_forward
    sample, t, ehs, ref = inputs()
    cases = []
    with torch.no_grad():
        STATE['mode'] = None
        plain = unet(sample, t, ehs)
        for sf in (0.0, 0.5, 1.0):
            STATE.update(mode='write')
            unet(ref.expand(2, -1, -1, -1), t, ehs)
            STATE.update(mode='read', sf=sf, uc_rows=[0])          # row 0 unconditional, row 1 conditional
            out = unet(sample, t, ehs)
            cases.append({'style_fidelity': sf, 'ref_weight': [1.0 - sf, 1.0], 'out_sample': out.flatten().tolist()})
    doc = {
        'source': 'tools/convert/reference_only.py (community reference-only attention, two-pass, on the sd15 fixture weights)',
        'inputs': 'sample 0.9 sin(0.37 i) [2,4,8,8]; timestep [500]; encoder_hidden_states sin(0.37 i + 1) [2,77,32]; '
                  'ref_sample 0.8 sin(0.37 i + 2) [1,4,8,8] repeated to both rows',
        'plain_out_sample': plain.flatten().tolist(),
        'cases': cases,
    }
    dst = os.path.join(ROOT, 'test/fixtures/convert/reference_only_sd15.json')
    with open(dst, 'w') as f:
        json.dump(doc, f)
        f.write('\n')
    print('wrote', dst, 'max |ref - plain| per case:', [float((torch.tensor(c['out_sample']) - plain.flatten()).abs().max()) for c in cases])


if __name__ == '__main__':
    main()
