"""A tiny CLIP byte-level BPE tokenizer in the layout transformers'
CLIPTokenizer saves (vocab.json, merges.txt, tokenizer_config.json,
special_tokens_map.json), and an encoder that follows CLIPTokenizer's rules so
the oracles know the token ids a correct implementation must produce.

Vocabulary order as CLIP's: the 256 byte characters, the same with '</w>', one
entry per merge, then <|startoftext|> and <|endoftext|> (so EOS has the highest
id, which transformers' pooling relies on for configs with eos_token_id 2).
Merges are learnt here from a small word list (greedy pair counts).

Pre-tokenising uses Python's `re` with Unicode classes standing in for \\p{L}
and \\p{N} (the `regex` module is not installed); prompts in the oracles are
ASCII, where the two agree. Written from CLIP's published tokenizer
(openai/CLIP simple_tokenizer.py, transformers' tokenization_clip.py), not copied.
"""
import json
import os
import re
from collections import Counter

BOS, EOS = '<|startoftext|>', '<|endoftext|>'
PAT = re.compile(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|(?:[^\s\w]|_)+""",
                 re.IGNORECASE)

WORDS = ('a photo of an astronaut riding a horse on the moon cat dog red green blue yellow big small '
         'painting portrait landscape mountain river city night sunset forest tree flower house car '
         'beautiful detailed high quality oil watercolor sketch cartoon bright dark happy smiling face '
         'blurry lowres ugly bad anatomy with and the in by at of style light shadow sky cloud sea').split()


def bytes_to_unicode():
    bs = list(range(ord('!'), ord('~') + 1)) + list(range(ord('¡'), ord('¬') + 1)) + list(range(ord('®'), ord('ÿ') + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def learn(n_merges=160):
    counts = Counter(WORDS)
    words = {w: list(w[:-1]) + [w[-1] + '</w>'] for w in counts}
    merges = []
    while len(merges) < n_merges:
        pairs = Counter()
        for w, syms in words.items():
            for a, b in zip(syms, syms[1:]):
                pairs[(a, b)] += counts[w]
        if not pairs:
            break
        best = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))[0]
        merges.append(best)
        for w, syms in words.items():
            out, i = [], 0
            while i < len(syms):
                if i + 1 < len(syms) and (syms[i], syms[i + 1]) == best:
                    out.append(syms[i] + syms[i + 1])
                    i += 2
                else:
                    out.append(syms[i])
                    i += 1
            words[w] = out
    chars = list(bytes_to_unicode().values())
    vocab = chars + [c + '</w>' for c in chars] + [a + b for a, b in merges] + [BOS, EOS]
    return {t: i for i, t in enumerate(vocab)}, merges


class ClipTokenizer:
    def __init__(self, vocab, merges, max_length=77, pad_token=EOS):
        self.vocab = vocab
        self.ranks = {tuple(m): i for i, m in enumerate(merges)}
        self.merge_list = [tuple(m) for m in merges]
        self.byte_enc = bytes_to_unicode()
        self.max_length = max_length
        self.pad_id = vocab[pad_token]
        self.bos, self.eos = vocab[BOS], vocab[EOS]

    def bpe(self, token):
        word = list(token[:-1]) + [token[-1] + '</w>']
        while len(word) > 1:
            pairs = [(self.ranks.get((a, b), 1 << 30), i) for i, (a, b) in enumerate(zip(word, word[1:]))]
            rank, _ = min(pairs)
            if rank == 1 << 30:
                break
            a, b = self.merge_list[rank]
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and word[i] == a and word[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return word

    def tokens(self, text):
        text = re.sub(r'\s+', ' ', text).strip().lower()
        ids = []
        for m in PAT.findall(text):
            t = ''.join(self.byte_enc[b] for b in m.encode('utf-8'))
            ids.extend(self.vocab[p] for p in self.bpe(t))
        return ids

    def __call__(self, text):
        """padding='max_length', truncation=True, as diffusers calls it."""
        ids = [self.bos] + self.tokens(text)[: self.max_length - 2] + [self.eos]
        return ids + [self.pad_id] * (self.max_length - len(ids))


def write(dir_, vocab, merges, pad_token=EOS, max_length=77):
    """The files CLIPTokenizer.save_pretrained writes (what optimum's export copies)."""
    os.makedirs(dir_, exist_ok=True)
    with open(os.path.join(dir_, 'vocab.json'), 'w', encoding='utf-8') as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(dir_, 'merges.txt'), 'w', encoding='utf-8') as f:
        f.write('#version: 0.2\n' + ''.join(f'{a} {b}\n' for a, b in merges))
    special = {'bos_token': {'content': BOS, 'lstrip': False, 'normalized': True, 'rstrip': False, 'single_word': False},
               'eos_token': {'content': EOS, 'lstrip': False, 'normalized': True, 'rstrip': False, 'single_word': False},
               'pad_token': pad_token,
               'unk_token': {'content': EOS, 'lstrip': False, 'normalized': True, 'rstrip': False, 'single_word': False}}
    with open(os.path.join(dir_, 'special_tokens_map.json'), 'w') as f:
        json.dump(special, f, indent=2)
    cfg = {'add_prefix_space': False, 'bos_token': special['bos_token'], 'clean_up_tokenization_spaces': True,
           'do_lower_case': True, 'eos_token': special['eos_token'], 'errors': 'replace',
           'model_max_length': max_length, 'pad_token': pad_token, 'tokenizer_class': 'CLIPTokenizer',
           'unk_token': special['unk_token']}
    with open(os.path.join(dir_, 'tokenizer_config.json'), 'w') as f:
        json.dump(cfg, f, indent=2)
