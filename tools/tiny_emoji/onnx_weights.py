"""Rebuilds the torch modules from the exported ONNX files (their initializers carry the
state_dict names because export_onnx.py turns constant folding off), and writes golden
outputs for fixed inputs that test/model-bundle.test.ts compares onnxruntime-node against.

  /usr/bin/python3 tools/tiny_emoji/onnx_weights.py   # rewrites tools/tiny_emoji/golden.json
"""
import json
import os
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402


def onnx_state_dict(rel):
    m = onnx.load(os.path.join(C.BUNDLE, rel))
    return {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in m.graph.initializer}


def load_into(module, rel, prefix=''):
    sd = onnx_state_dict(rel)
    want = module.state_dict()
    missing = [k for k in want if prefix + k not in sd]
    if missing:
        raise RuntimeError(f'{rel}: initializers missing for {missing[:5]}')
    module.load_state_dict({k: sd[prefix + k] for k in want})
    return module.eval()


def load_bundle(parts=('text', 'image', 'vae', 'unet'), unet_npz=None):
    """The bundle's parts as torch modules; `unet_npz` takes unet and image_proj from a training
    checkpoint instead of the ONNX files."""
    tok = C.WordTokenizer.load()
    out = {'tok': tok}
    if 'text' in parts:
        out['text'] = load_into(C.TextEncoder(len(tok.vocab), pad_id=tok.pad_id), 'text_encoder/model.onnx')
    if 'image' in parts:
        out['image'] = load_into(C.ImageEncoder(), 'image_encoder/model.onnx')
    if 'vae' in parts:
        enc = load_into(C.VAEEncoder(), 'vae_encoder/model.onnx', 'encoder.')
        out['vae_enc'] = lambda x: enc(x)[0]          # posterior mean, as the ONNX file
        out['vae_dec'] = load_into(C.VAEDecoder(), 'vae_decoder/model.onnx')
        with open(os.path.join(C.BUNDLE, 'vae_decoder', 'config.json')) as f:
            out['scaling_factor'] = json.load(f)['scaling_factor']
    if 'unet' in parts:
        out['unet'] = load_into(C.UNet(), 'unet/model.onnx')
        out['image_proj'] = load_into(C.ImageProj(), 'image_proj/model.onnx')
        if unet_npz:
            C.load_npz(unet_npz, out['unet'], 'unet.')
            C.load_npz(unet_npz, out['image_proj'], 'image_proj.')
    return out


def pattern(shape, scale=0.9, phase=0.0):
    """Deterministic test input: x[i] = scale*sin(0.37*i + phase) over the flat index (same in the TS test)."""
    n = int(np.prod(shape))
    return torch.from_numpy((scale * np.sin(0.37 * np.arange(n) + phase)).astype(np.float32).reshape(shape))


def summary(t):
    a = t.detach().float().numpy().reshape(-1)
    return {'shape': list(t.shape), 'first': [round(float(v), 6) for v in a[:8]],
            'sum': round(float(a.sum()), 5), 'abs_sum': round(float(np.abs(a).sum()), 5)}


@torch.no_grad()
def golden():
    parts = [p for p, f in [('text', 'text_encoder'), ('image', 'image_encoder'), ('vae', 'vae_decoder'),
                            ('unet', 'unet')] if os.path.exists(os.path.join(C.BUNDLE, f, 'model.onnx'))]
    b = load_bundle(parts)
    g = {'note': 'inputs: x[i] = 0.9*sin(0.37*i) over the flat index, batch 2, unless given',
         'prompt': 'red apple'}
    ids = b['tok'].batch(['red apple'])
    g['prompt_ids'] = ids[0].tolist()
    if 'text' in b:
        hs, te = b['text'](ids)
        g['text_encoder'] = {'last_hidden_state': summary(hs), 'text_embeds': summary(te)}
    if 'image' in b:
        g['image_encoder'] = {'image_embeds': summary(b['image'](pattern((2, 3, 64, 64))))}
    if 'vae_enc' in b:
        g['vae_encoder'] = {'latent_sample': summary(b['vae_enc'](pattern((2, 3, 64, 64))))}
        g['vae_decoder'] = {'sample': summary(b['vae_dec'](pattern((2, 4, 16, 16))))}
    if 'unet' in b:
        g['image_proj'] = {'image_prompt_embeds': summary(b['image_proj'](pattern((2, C.K_NEIGHBOURS, C.EMBED))))}
        g['unet'] = {'timestep': [500],
                     'out_sample': summary(b['unet'](pattern((2, 4, 16, 16)), torch.tensor([500]),
                                                     pattern((2, C.MAX_LEN + C.K_NEIGHBOURS, C.WIDTH), 1.0, 1.0)))}
        g['unet']['note'] = 'encoder_hidden_states = 1.0*sin(0.37*i + 1.0)'
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden.json')
    with open(path, 'w') as f:
        json.dump(g, f, indent=1)
        f.write('\n')
    print(f'wrote {os.path.relpath(path, C.ROOT)}: {sorted(k for k in g if k not in ("note", "prompt"))}')


if __name__ == '__main__':
    golden()
