"""Does the UNet carry an emoji's identity from a retrieved neighbour into the sample?

  /usr/bin/python3 tools/tiny_emoji/probe_identity.py [--unet-npz CKPT] [--prompts 54]

A diagnostic, not a model-card metric: one noise per prompt, so differences under about
0.1 are noise. For training prompts (a seeded random sample) and for the held-out prompts it
samples with neighbours retrieved from all 3,786 images, once with the target emoji (and its
skin-tone variants) in the database and once without, in two guidance modes:
  text + retrieval  e(0,0) + 3 (e(T,0) - e(0,0)) + 4 (e(T,R) - e(T,0))   (the metrics' formula)
  retrieval only    e(0,0) + 4 (e(0,R) - e(0,0))                         (no text at all)
If "with target" beats "without" for training prompts but not for held-out ones, the UNet can copy
identities it was trained on but cannot render unseen ones from their embeddings.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
import metrics as M  # noqa: E402
import onnx_weights as W  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--unet-npz', default=None, help='take unet and image_proj from a training checkpoint')
    p.add_argument('--prompts', type=int, default=54, help='training prompts sampled (seed 0)')
    p.add_argument('--threads', type=int, default=0)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    b = W.load_bundle(unet_npz=args.unet_npz)
    images, meta = C.load_data()
    with open(os.path.join(C.REPO_BUNDLE, 'split.json')) as f:
        held = set(json.load(f)['heldout_subcategories'])
    base_idx = [i for i, r in enumerate(meta) if r['variant'] is None]
    with torch.no_grad():
        img_emb = M.batched(b['image'], C.to_pixels(images))
        states, names = b['text'](b['tok'].batch([meta[i]['name'] for i in base_idx]))
    base_of = torch.tensor([r['base'] for r in meta])
    gen = M.Generator(b, 25)
    noise = torch.randn(len(base_idx), C.LATENT_CHANNELS, C.LATENT_SIZE, C.LATENT_SIZE,
                        generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    train_j = [j for j, i in enumerate(base_idx) if meta[i]['subcategory'] not in held]
    train_j = sorted(train_j[k] for k in torch.randperm(len(train_j), generator=g)[:args.prompts].tolist())
    held_j = [j for j, i in enumerate(base_idx) if meta[i]['subcategory'] in held]
    print('| prompts | guidance | target in db: top-1 / top-5 | target removed: top-1 / top-5 |\n|---|---|---|---|')
    for label, js in [(f'training ({len(train_j)})', train_j), (f'held-out ({len(held_j)})', held_j)]:
        for mode in ('text + retrieval', 'retrieval only'):
            cells = []
            for remove_target in (False, True):
                bases = [meta[base_idx[j]]['base'] for j in js] if remove_target else None
                nbr, _ = M.retrieve(names[js], img_emb, exclude_bases=bases, base_of=base_of)
                if mode == 'text + retrieval':
                    x = gen(states[js], nbr, noise[js], 3.0, 4.0)
                else:                       # text states empty: e(0,0) + 4 (e(0,R) - e(0,0))
                    x = gen(gen.empty.expand(len(js), -1, -1).clone(), nbr, noise[js], 0.0, 4.0)
                with torch.no_grad():
                    rk = M.ranks(M.batched(b['image'], x), names, torch.tensor(js))
                cells.append(f'{M.rate(rk, 1):.3f} / {M.rate(rk, 5):.3f}')
            print(f'| {label} | {mode} | {cells[0]} | {cells[1]} |', flush=True)


if __name__ == '__main__':
    main()
