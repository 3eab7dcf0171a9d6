"""Golden values for the Node evaluation metrics (test/eval-*.test.ts), from the reference code.

  /usr/bin/python3 tools/tiny_emoji/eval_golden.py   # writes tools/tiny_emoji/golden_eval.json

- recognition: the 54 held-out base emoji, as Twemoji and as Noto images (emoji-datasource-twitter /
  -google 64x64 PNGs composited on white), ranked by metrics.ranks against the text embeddings of all
  base names (the bundle's encoders rebuilt in torch from the ONNX files);
- sign tests: metrics.sign_test on fixed (wins, losses) pairs.
"""
import hashlib
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
import metrics as M  # noqa: E402
import onnx_weights as W  # noqa: E402
import prep_data as P  # noqa: E402


def main():
    torch.set_num_threads(1)
    b = W.load_bundle(parts=('text', 'image'))
    recs = P.build_records()
    with open(os.path.join(C.REPO_BUNDLE, 'split.json')) as f:
        held_sub = set(json.load(f)['heldout_subcategories'])
    base = [r for r in recs if r['variant'] is None]
    names = [r['name'] for r in base]
    with torch.no_grad():
        name_emb = torch.cat([b['text'](b['tok'].batch(names[i:i + 256]))[1] for i in range(0, len(names), 256)])
    held = [j for j, r in enumerate(base) if r['subcategory'] in held_sub]
    out = []
    for pkg, sub in (('emoji-datasource-twitter', 'twitter'), ('emoji-datasource-google', 'google')):
        d = os.path.join(C.ROOT, 'node_modules', pkg, 'img', sub, '64')
        imgs = [P.load_png(os.path.join(d, base[j]['image'])) for j in held]
        import numpy as np
        with torch.no_grad():
            e = b['image'](C.to_pixels(np.stack(imgs)))
        s = e @ name_emb.t()
        rk = M.ranks(e, name_emb, torch.tensor(held))
        for k, j in enumerate(held):
            tgt = float(s[k, j])
            # the closest competing score: how fragile this rank is to float differences
            others = s[k].clone()
            others[j] = float('nan')
            margin = float((others - tgt).abs().nan_to_num(float('inf')).min())
            out.append({'set': sub, 'file': base[j]['image'], 'target': j, 'name': names[j], 'rank': int(rk[k]),
                        'best': int(s[k].argmax()), 'margin': round(margin, 7)})
    pairs = [(0, 0), (1, 0), (10, 0), (16, 3), (30, 7), (13, 17), (10, 6), (6, 8), (27, 27), (120, 80)]
    g = {'names': len(names), 'names_sha256': hashlib.sha256('\n'.join(names).encode()).hexdigest(),
         'recognition': out,
         'sign_tests': [{'wins': w, 'losses': l, 'p': M.sign_test(torch.tensor([1.0] * w + [0.0] * l), torch.tensor([0.0] * w + [1.0] * l))[2]}
                        for w, l in pairs]}
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'golden_eval.json')
    with open(path, 'w') as f:
        json.dump(g, f, indent=1)
        f.write('\n')
    for sub in ('twitter', 'google'):
        r = torch.tensor([o['rank'] for o in out if o['set'] == sub])
        print(sub, 'top1', M.rate(r, 1), 'top5', M.rate(r, 5))
    print('wrote', path)


if __name__ == '__main__':
    main()
