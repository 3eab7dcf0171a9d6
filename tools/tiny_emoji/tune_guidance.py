"""Chooses the guidance scales used by metrics.py on TRAINING prompts only (never on the
held-out subcategories), so the held-out numbers are not tuned on.

  /usr/bin/python3 tools/tiny_emoji/tune_guidance.py [--prompts 48] [--steps 25]

For each (s_t, s_r) it samples training-set prompts with neighbours retrieved from the
generator-training database with the prompt's own emoji (all its skin tones) removed
(the situation of a concept the generator has not seen), and prints zero-shot top-1/top-5.
"""
import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
import onnx_weights as W  # noqa: E402
from metrics import Generator, batched, ranks, rate  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--prompts', type=int, default=48)
    p.add_argument('--steps', type=int, default=25)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--grid', default='3:0,3:2,3:4,3:6,5:4,2:4')
    args = p.parse_args()
    b = W.load_bundle()
    images, meta = C.load_data()
    held_sub = set(C.HELDOUT_SUBCATEGORIES)
    base_idx = [i for i, r in enumerate(meta) if r['variant'] is None]
    names = [meta[i]['name'] for i in base_idx]
    with torch.no_grad():
        img_emb = batched(b['image'], C.to_pixels(images))
        hs, te = zip(*[b['text'](b['tok'].batch(names[i:i + 256])) for i in range(0, len(names), 256)])
    name_states, name_emb = torch.cat(hs), torch.cat(te)
    rng = np.random.default_rng(args.seed)
    train_b = [j for j, i in enumerate(base_idx) if meta[i]['subcategory'] not in held_sub]
    js = sorted(rng.choice(train_b, args.prompts, replace=False).tolist())
    base_of = torch.tensor([r['base'] for r in meta])
    db = torch.tensor([r['subcategory'] not in held_sub for r in meta])
    s = name_emb[js] @ img_emb.t()
    s[:, ~db] = -9
    for row, j in enumerate(js):
        s[row, base_of == meta[base_idx[j]]['base']] = -9
    nbr = img_emb[s.topk(C.K_NEIGHBOURS, dim=1).indices]
    noise = torch.randn(len(js), 4, 16, 16, generator=torch.Generator().manual_seed(args.seed))
    gen = Generator(b, args.steps)
    for pair in args.grid.split(','):
        st, sr = map(float, pair.split(':'))
        x = gen(name_states[js], nbr if sr > 0 else None, noise, st, sr)
        with torch.no_grad():
            rk = ranks(batched(b['image'], x), name_emb, torch.tensor(js))
        print(f's_t {st} s_r {sr}: top1 {rate(rk, 1):.3f} top5 {rate(rk, 5):.3f}', flush=True)


if __name__ == '__main__':
    main()
