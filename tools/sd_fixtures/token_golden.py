#!/usr/bin/python3
"""Token ids of the real CLIP tokenizer files (test/fixtures/sd-configs/runwayml-stable-diffusion-v1-5/tokenizer)
for a few prompts, as CLIPTokenizer gives them, into .../tokenizer_golden.json: a check for ragdiff's
tokenizer on the published vocabulary (padding with EOS; SD 2.x / SDXL tokenizer_2 pad with "!" = id 0).

  /usr/bin/python3 tools/sd_fixtures/token_golden.py
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tokenizer as toklib  # noqa: E402

DIR = os.path.join(HERE, '..', '..', 'test', 'fixtures', 'sd-configs', 'runwayml-stable-diffusion-v1-5', 'tokenizer')
PROMPTS = [
    'a photo of a cat',
    'An astronaut riding a horse, 4K, highly-detailed!!',
    "  the cat's   whiskers  ",
    '',
    'masterpiece, best quality, (extremely detailed:1.2), portrait of a woman with long red hair, '
    'wearing a green dress, standing in a sunlit forest clearing, soft volumetric light, bokeh, '
    'depth of field, 85mm lens, photorealistic, intricate embroidery on the sleeves, freckles, '
    'looking at the viewer, gentle smile, golden hour, cinematic color grading, trending on artstation',
]


def main():
    vocab = json.load(open(os.path.join(DIR, 'vocab.json'), encoding='utf-8'))
    lines = open(os.path.join(DIR, 'merges.txt'), encoding='utf-8').read().strip().split('\n')
    merges = [tuple(l.split()) for l in lines[1:49152 - 256 - 2 + 1]]  # CLIPTokenizer's slice of the file
    eos_pad = toklib.ClipTokenizer(vocab, merges)
    bang_pad = toklib.ClipTokenizer(vocab, merges, pad_token='!')
    out = {'about': 'CLIPTokenizer on this vocab.json/merges.txt: tokens = BPE ids without BOS/EOS (untruncated); '
                    'ids_pad_eos = diffusers\' padding="max_length", truncation=True, 77 ids, padded with <|endoftext|> '
                    '(SD 1.x, SDXL tokenizer); ids_pad_bang = the same padded with "!" (SD 2.x, SDXL tokenizer_2). '
                    'Written by tools/sd_fixtures/token_golden.py (an implementation of CLIP\'s BPE; ASCII prompts).',
           'bos': vocab[toklib.BOS], 'eos': vocab[toklib.EOS], 'bang': vocab['!'], 'cases': []}
    for p in PROMPTS:
        out['cases'].append({'prompt': p, 'tokens': eos_pad.tokens(p), 'ids_pad_eos': eos_pad(p), 'ids_pad_bang': bang_pad(p)})
    with open(os.path.join(DIR, '..', 'tokenizer_golden.json'), 'w') as f:
        json.dump(out, f)
        f.write('\n')
    for c in out['cases']:
        print(len(c['tokens']), c['tokens'][:12])


if __name__ == '__main__':
    main()
