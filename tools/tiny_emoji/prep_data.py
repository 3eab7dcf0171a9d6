"""Stage 1: Twemoji PNGs (emoji-datasource-twitter) -> .carry/tiny-emoji/data.npz,
models/tiny-emoji/split.json and the tokenizer files.

Images: 64x64 RGBA composited on white (out = rgb*a + 255*(1-a), PIL alpha_composite).
Captions: lower-cased `name`, every `short_names` entry with '_' -> ' ', and for
skin-tone variants "<name>: <tone>" / "<short name> <tone>" (two tones joined with ', ').
"""
import json
import os
import sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(__file__))
from common import (REPO_BUNDLE as BUNDLE, DATA_DIR, EMOJI_PKG, HELDOUT_SUBCATEGORIES, MAX_LEN, SKIN_TONES,  # noqa: E402
                    WordTokenizer, pre_tokenize, tokenizer_json)


def load_png(path):
    im = Image.open(path).convert('RGBA')
    bg = Image.new('RGBA', im.size, (255, 255, 255, 255))
    out = Image.alpha_composite(bg, im).convert('RGB')
    if out.size != (64, 64):
        out = out.resize((64, 64), Image.BICUBIC)
    return np.asarray(out, dtype=np.uint8)


def tone_phrase(key):
    return ', '.join(SKIN_TONES[k] for k in key.split('-'))


def build_records():
    with open(os.path.join(EMOJI_PKG, 'emoji.json')) as f:
        emoji = json.load(f)
    emoji.sort(key=lambda e: e['sort_order'])
    recs = []
    for b, e in enumerate(emoji):
        name = e['name'].lower()
        shorts = [s.replace('_', ' ') for s in e['short_names']]
        base = dict(base=b, unified=e['unified'], image=e['image'], name=name, category=e['category'],
                    subcategory=e['subcategory'], variant=None)
        recs.append(dict(base, captions=[name] + [s for s in shorts if s != name]))
        for key, v in sorted(e.get('skin_variations', {}).items()):
            tone = tone_phrase(key)
            caps = [f'{name}: {tone}'] + [f'{s} {tone}' for s in shorts]
            recs.append(dict(base, unified=v['unified'], image=v['image'], variant=key, captions=caps))
    return recs


def main():
    recs = build_records()
    img_dir = os.path.join(EMOJI_PKG, 'img', 'twitter', '64')
    images = np.stack([load_png(os.path.join(img_dir, r['image'])) for r in recs])
    for r in recs:
        r['heldout'] = r['subcategory'] in HELDOUT_SUBCATEGORIES
    os.makedirs(DATA_DIR, exist_ok=True)
    np.savez_compressed(os.path.join(DATA_DIR, 'data.npz'), images=images, meta=np.array(json.dumps(recs)))

    words = set()
    for r in recs:
        for c in r['captions']:
            words.update(pre_tokenize(c))
    tok, cfg = tokenizer_json(words)
    os.makedirs(os.path.join(BUNDLE, 'tokenizer'), exist_ok=True)
    with open(os.path.join(BUNDLE, 'tokenizer', 'tokenizer.json'), 'w') as f:
        json.dump(tok, f, ensure_ascii=False, indent=1)
    with open(os.path.join(BUNDLE, 'tokenizer', 'tokenizer_config.json'), 'w') as f:
        json.dump(cfg, f, indent=2)

    # Reference ids for the Node check (tools/tiny_emoji/check_tokenizer.mjs).
    t = WordTokenizer(tok['model']['vocab'])
    ref = [[c, t.encode_raw(c)] for r in recs for c in r['captions']] + [['', t.encode_raw('')]]
    with open(os.path.join(DATA_DIR, 'tokenizer_ref.json'), 'w') as f:
        json.dump(ref, f, ensure_ascii=False)

    held = [r for r in recs if r['heldout']]
    split = {
        'description': 'Generator (UNet) training excludes every image of the held-out subcategories; '
                       'the CLIP encoders are trained on all images. Ids are emoji.json `unified` codes.',
        'source': 'emoji-datasource-twitter (Twemoji 64x64), sorted by sort_order',
        'heldout_subcategories': HELDOUT_SUBCATEGORIES,
        'counts': {'images': len(recs), 'base_emoji': len({r['base'] for r in recs}),
                   'generator_train_images': len(recs) - len(held), 'heldout_images': len(held)},
        'heldout': [r['unified'] for r in held],
    }
    with open(os.path.join(BUNDLE, 'split.json'), 'w') as f:
        json.dump(split, f, indent=1)
    lens = [len(t.encode_raw(c)) for r in recs for c in r['captions']]
    print(f'images {images.shape}, vocab {len(tok["model"]["vocab"])}, captions {len(lens)}, '
          f'truncated to {MAX_LEN}: {sum(l > MAX_LEN for l in lens)}, held out {len(held)}')


if __name__ == '__main__':
    main()
