"""Style classifier: Twemoji (class 0) vs Noto Color Emoji (class 1), for the database-swap check.

  /usr/bin/python3 tools/tiny_emoji/style_classifier.py [--threads 2] [--epochs 6] [--seed 0]
  -> models/tiny-emoji/eval/style_classifier.onnx  (pixel_values [B,3,64,64] -> logits [B,2])
     models/tiny-emoji/eval/style_classifier.json  (classes, preprocessing, split, accuracy, command)

It is trained and validated on VAE ROUND-TRIPS (vae_encoder -> vae_decoder of the bundle, 8-bit
rounded like a PNG) of the 64x64 images of both sets (emoji-datasource-twitter and
emoji-datasource-google, composited on white), because generated images can only hold what the
decoder can express. The split is by emoji: a seeded 20% of the base emoji, with all their
skin-tone variants, are held back and never seen in training; the held-back accuracy is reported on
their round-trips (and, for reference, on the real images). Input preprocessing is the bundle's
feature extractor: RGB, x/255, mean 0.5, std 0.5 (so [-1, 1]).
"""
import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

OUT_DIR = os.path.join(C.REPO_BUNDLE, 'eval')
CLASSES = ['twemoji', 'noto']
SETS = [('emoji-datasource-twitter', 'twitter'), ('emoji-datasource-google', 'google')]


def load_png(path):
    from PIL import Image
    im = Image.open(path).convert('RGBA')
    bg = Image.new('RGBA', im.size, (255, 255, 255, 255))
    out = Image.alpha_composite(bg, im).convert('RGB')
    if out.size != (64, 64):
        out = out.resize((64, 64), Image.BICUBIC)
    return np.asarray(out, dtype=np.uint8)


def records():
    """(image file name, base emoji unified code) for every image in the twitter package's emoji.json."""
    with open(os.path.join(C.ROOT, 'node_modules', SETS[0][0], 'emoji.json')) as f:
        emoji = json.load(f)
    out = []
    for e in emoji:
        out.append((e['image'], e['unified']))
        for v in e.get('skin_variations', {}).values():
            out.append((v['image'], e['unified']))
    return sorted(out)


def held_back(bases, seed, share):
    """The held-back base emoji (unified codes): a seeded choice of round(share * n) of them."""
    rng = np.random.default_rng(seed)
    return set(rng.choice(bases, int(round(len(bases) * share)), replace=False).tolist())


class StyleNet(nn.Module):
    """A small CNN: 4 stride-2 conv stages (16/32/64/64), global average pool, linear -> 2 logits."""

    def __init__(self):
        super().__init__()
        chans, layers, c = (16, 32, 64, 64), [], 3
        for co in chans:
            layers += [nn.Conv2d(c, co, 3, 2, 1), nn.BatchNorm2d(co), nn.ReLU(inplace=True),
                       nn.Conv2d(co, co, 3, 1, 1), nn.BatchNorm2d(co), nn.ReLU(inplace=True)]
            c = co
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c, 2)

    def forward(self, pixel_values):
        return self.head(self.features(pixel_values).mean(dim=(2, 3)))


def round_trip(x, vae, bs=128):
    """pixels [-1,1] -> VAE encode (posterior mean) -> decode -> 8-bit rounding -> [-1,1]."""
    out = []
    with torch.no_grad():
        for i in range(0, len(x), bs):
            y = vae['vae_dec'](vae['vae_enc'](x[i:i + bs])).clamp(-1, 1)
            out.append(((y + 1) * 127.5).round() / 127.5 - 1)
    return torch.cat(out)


def accuracy(model, x, y, bs=256):
    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(x[i:i + bs]).argmax(1) for i in range(0, len(x), bs)])
    return float((pred == y).float().mean()), pred


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--epochs', type=int, default=16)
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--lr', type=float, default=2e-3)
    p.add_argument('--held-back', type=float, default=0.2, help='share of base emoji held back')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--emoji', type=int, default=600,
                   help='base emoji used (a seeded sample, base images only, both sets); 0 = every image. '
                        'The VAE round-trips dominate the cost: 600 emoji = 1,200 round-trips')
    p.add_argument('--out-dir', default=OUT_DIR)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    t0 = time.time()
    import onnx_weights as W
    vae = W.load_bundle(parts=('vae',))
    sys.path.insert(0, os.path.join(C.ROOT, '.carry', 'pyort'))
    try:                      # onnxruntime runs the VAE several times faster than torch 1.13 here (optional)
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
        for key, rel in (('vae_enc', 'vae_encoder'), ('vae_dec', 'vae_decoder')):
            s = ort.InferenceSession(os.path.join(C.BUNDLE, rel, 'model.onnx'), so, providers=['CPUExecutionProvider'])
            vae[key] = (lambda s: lambda x: torch.from_numpy(s.run(None, {s.get_inputs()[0].name: x.numpy()})[0]))(s)
    except ImportError:
        pass
    recs = records()
    if args.emoji:
        # base images only (skin-tone variants are near-copies of their base), a seeded sample
        recs = [(n, b) for n, b in recs if n == b.lower() + '.png']
        pick = set(np.random.default_rng(args.seed + 1).choice(len(recs), min(args.emoji, len(recs)), replace=False).tolist())
        recs = [r for i, r in enumerate(recs) if i in pick]
    bases = sorted({b for _, b in recs})
    held = held_back(bases, args.seed, args.held_back)
    xs, ys, is_held = [], [], []
    for cls, (pkg, sub) in enumerate(SETS):
        d = os.path.join(C.ROOT, 'node_modules', pkg, 'img', sub, '64')
        for name, base in recs:
            path = os.path.join(d, name)
            if not os.path.exists(path):
                continue
            xs.append(load_png(path))
            ys.append(cls)
            is_held.append(base in held)
    real = C.to_pixels(np.stack(xs))
    y = torch.tensor(ys)
    is_held = torch.tensor(is_held)
    print(f'{len(real)} images ({int((y == 0).sum())} twemoji, {int((y == 1).sum())} noto), '
          f'{int(is_held.sum())} held back ({len(held)} base emoji); loading took {time.time() - t0:.0f}s', flush=True)
    # the round-trips dominate the cost: cached per sample (ignored .carry/), keyed by the file list
    key = hashlib.sha256(('\n'.join(n for n, _ in recs) + f'|{len(real)}').encode()).hexdigest()[:16]
    cache = os.path.join(C.DATA_DIR, f'style_roundtrips_{key}.npy')
    if os.path.exists(cache):
        rt = torch.from_numpy(np.load(cache))
    else:
        rt = round_trip(real, vae)
        os.makedirs(C.DATA_DIR, exist_ok=True)
        np.save(cache, rt.numpy())
    print(f'VAE round-trips done ({time.time() - t0:.0f}s)', flush=True)
    xtr, ytr = rt[~is_held], y[~is_held]
    xte, yte = rt[is_held], y[is_held]

    model = StyleNet()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * ((len(xtr) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps)
    g = torch.Generator().manual_seed(args.seed)
    step = 0
    for ep in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xtr), generator=g)
        tot = 0.0
        for i in range(0, len(xtr), args.batch):
            idx = perm[i:i + args.batch]
            xb = xtr[idx]
            flip = torch.rand(len(xb), generator=g) < 0.5          # style is mirror-invariant
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            loss = F.cross_entropy(model(xb), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            tot += float(loss) * len(idx)
        acc, _ = accuracy(model, xte, yte)
        print(f'epoch {ep + 1}/{args.epochs}: train loss {tot / len(xtr):.4f}, held-back round-trip acc {acc:.4f} '
              f'({time.time() - t0:.0f}s)', flush=True)

    acc_rt, pred = accuracy(model, xte, yte)
    acc_real, _ = accuracy(model, real[is_held], yte)
    acc_train, _ = accuracy(model, xtr, ytr)
    per_class = {c: float((pred[yte == k] == k).float().mean()) for k, c in enumerate(CLASSES)}
    os.makedirs(args.out_dir, exist_ok=True)
    onnx_path = os.path.join(args.out_dir, 'style_classifier.onnx')
    model.eval()
    with torch.no_grad():
        torch.onnx.export(model, (torch.zeros(2, 3, 64, 64),), onnx_path, input_names=['pixel_values'],
                          output_names=['logits'], dynamic_axes={'pixel_values': {0: 'batch'}, 'logits': {0: 'batch'}},
                          opset_version=17)
        probe = C.to_pixels(np.stack([xs[0], xs[len(xs) // 2]]))
        golden_logits = model(probe).tolist()
    with open(onnx_path, 'rb') as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    meta = {
        'what': 'Twemoji vs Noto style classifier for the database-swap evaluation (issue 14)',
        'classes': CLASSES,
        'input': {'name': 'pixel_values', 'shape': ['B', 3, 64, 64], 'dtype': 'float32',
                  'preprocessing': 'RGB composited on white, x/255, mean 0.5, std 0.5 (values in [-1,1]); '
                                   'the bundle feature extractor'},
        'output': {'name': 'logits', 'shape': ['B', 2], 'note': 'argmax 1 = noto'},
        'trained_on': 'VAE round-trips (models/tiny-emoji vae_encoder mean -> vae_decoder, 8-bit rounded) of '
                      'emoji-datasource-twitter and emoji-datasource-google 64x64 images',
        'split': {'unit': 'base emoji (with all its skin-tone variants)', 'held_back_share': args.held_back,
                  'rule': f'numpy default_rng({args.seed}).choice(sorted base unified codes, round({args.held_back} n), '
                          'replace=False)',
                  'held_back_base_emoji': len(held), 'base_emoji': len(bases),
                  'emoji_sample': f'{args.emoji} base images per set, numpy default_rng({args.seed + 1}) choice over '
                                  'the sorted base records' if args.emoji else 'every image',
                  'train_images': int(len(xtr)), 'held_back_images': int(len(xte)),
                  'held_back_sha256': hashlib.sha256(','.join(sorted(held)).encode()).hexdigest(),
                  'held_back': sorted(held)},
        'accuracy': {'held_back_round_trips': round(acc_rt, 4), 'held_back_per_class': per_class,
                     'held_back_real_images': round(acc_real, 4), 'train_round_trips': round(acc_train, 4)},
        'training': {'epochs': args.epochs, 'batch': args.batch, 'lr': args.lr, 'optimizer': 'AdamW + one-cycle',
                     'augmentation': 'horizontal flip', 'seed': args.seed, 'threads': args.threads,
                     'torch': torch.__version__, 'seconds': round(time.time() - t0, 1)},
        'golden': {'note': 'logits of the first twemoji image and the matching noto image (file order)',
                   'files': [recs[0][0], recs[0][0]], 'logits': [[round(v, 4) for v in r] for r in golden_logits]},
        'onnx_sha256': sha,
        'command': '/usr/bin/python3 tools/tiny_emoji/style_classifier.py ' + ' '.join(sys.argv[1:]),
    }
    with open(os.path.join(args.out_dir, 'style_classifier.json'), 'w') as f:
        json.dump(meta, f, indent=1)
        f.write('\n')
    print(json.dumps(meta['accuracy']))
    print(f'wrote {onnx_path} ({os.path.getsize(onnx_path) / 1e3:.0f} kB) in {time.time() - t0:.0f}s')


if __name__ == '__main__':
    main()
