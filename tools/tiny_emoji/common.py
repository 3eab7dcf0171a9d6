"""Shared pieces of the tiny-emoji training code: paths, captions, tokenizer,
model definitions, noise schedule and a DDIM sampler.

Works with torch 1.13 (Debian, /usr/bin/python3) and torch 2.x (GPU machine).
"""
import json
import math
import os
import re
import unicodedata

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
REPO_BUNDLE = os.path.join(ROOT, 'models', 'tiny-emoji')
# Where ONNX files and configs are written/read; TINY_EMOJI_BUNDLE redirects it (debug runs).
# The tokenizer and split.json always come from the repo bundle.
BUNDLE = os.environ.get('TINY_EMOJI_BUNDLE', REPO_BUNDLE)
DATA_DIR = os.path.join(ROOT, '.carry', 'tiny-emoji')
EMOJI_PKG = os.path.join(ROOT, 'node_modules', 'emoji-datasource-twitter')

IMAGE_SIZE = 64
LATENT_CHANNELS = 4
LATENT_SIZE = 16
MAX_LEN = 16
WIDTH = 128          # token width of encoder_hidden_states
EMBED = 128          # joint CLIP embedding size
K_NEIGHBOURS = 4
HELDOUT_SUBCATEGORIES = ['animal-bird', 'food-fruit', 'plant-flower']
IMAGE_MEAN = [0.5, 0.5, 0.5]
IMAGE_STD = [0.5, 0.5, 0.5]

SKIN_TONES = {
    '1F3FB': 'light skin tone',
    '1F3FC': 'medium-light skin tone',
    '1F3FD': 'medium skin tone',
    '1F3FE': 'medium-dark skin tone',
    '1F3FF': 'dark skin tone',
}

# ---------------------------------------------------------------- tokenizer
PAD, UNK, BOS, EOS = '[PAD]', '[UNK]', '[BOS]', '[EOS]'
SPECIALS = [PAD, UNK, BOS, EOS]
# Hugging Face's Whitespace pre-tokenizer: \w+|[^\w\s]+
_WS = re.compile(r'\w+|[^\w\s]+')


def normalize(text):
    # == normalizer Sequence[NFD, StripAccents, Lowercase]: 'Curaçao' -> 'curacao'
    text = ''.join(ch for ch in unicodedata.normalize('NFD', text) if unicodedata.category(ch) != 'Mn')
    return text.lower()


def pre_tokenize(text):
    return _WS.findall(normalize(text))


class WordTokenizer:
    """Python twin of tokenizer.json (WordLevel + Lowercase + Whitespace +
    TemplateProcessing [BOS] $A [EOS]). Padding/truncation is the caller's:
    ids truncated to MAX_LEN keeping EOS last, then padded with PAD."""

    def __init__(self, vocab):
        self.vocab = vocab
        self.pad_id, self.unk_id = vocab[PAD], vocab[UNK]
        self.bos_id, self.eos_id = vocab[BOS], vocab[EOS]

    @classmethod
    def load(cls, path=None):
        path = path or os.path.join(REPO_BUNDLE, 'tokenizer', 'tokenizer.json')
        with open(path) as f:
            return cls(json.load(f)['model']['vocab'])

    def encode_raw(self, text):
        return [self.bos_id] + [self.vocab.get(w, self.unk_id) for w in pre_tokenize(text)] + [self.eos_id]

    def __call__(self, text):
        ids = self.encode_raw(text)
        if len(ids) > MAX_LEN:
            ids = ids[:MAX_LEN - 1] + [self.eos_id]
        return ids + [self.pad_id] * (MAX_LEN - len(ids))

    def batch(self, texts):
        return torch.tensor([self(t) for t in texts], dtype=torch.long)


def tokenizer_json(words):
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for w in sorted(words):
        if w not in vocab:
            vocab[w] = len(vocab)
    added = [{'id': vocab[t], 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False,
              'normalized': False, 'special': True} for t in SPECIALS]
    tok = {
        'version': '1.0',
        'truncation': None,
        'padding': None,
        'added_tokens': added,
        'normalizer': {'type': 'Sequence', 'normalizers': [
            {'type': 'NFD'}, {'type': 'StripAccents'}, {'type': 'Lowercase'}]},
        'pre_tokenizer': {'type': 'Whitespace'},
        'post_processor': {
            'type': 'TemplateProcessing',
            'single': [{'SpecialToken': {'id': BOS, 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                       {'SpecialToken': {'id': EOS, 'type_id': 0}}],
            'pair': [{'SpecialToken': {'id': BOS, 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                     {'SpecialToken': {'id': EOS, 'type_id': 0}}, {'Sequence': {'id': 'B', 'type_id': 1}},
                     {'SpecialToken': {'id': EOS, 'type_id': 1}}],
            'special_tokens': {t: {'id': t, 'ids': [vocab[t]], 'tokens': [t]} for t in (BOS, EOS)},
        },
        'decoder': None,
        'model': {'type': 'WordLevel', 'vocab': vocab, 'unk_token': UNK},
    }
    config = {
        'tokenizer_class': 'PreTrainedTokenizerFast',
        'model_max_length': MAX_LEN,
        'pad_token': PAD, 'unk_token': UNK, 'bos_token': BOS, 'eos_token': EOS,
        'padding_side': 'right',
        'clean_up_tokenization_spaces': False,
        'ragdiff_note': 'encode(text).ids already holds [BOS] ... [EOS]; truncate to 16 keeping [EOS] last, pad with [PAD] (id 0).',
    }
    return tok, config


# ---------------------------------------------------------------- data
def load_data(path=None):
    """Returns dict: images uint8 [N,64,64,3] and meta (list of records)."""
    path = path or os.path.join(DATA_DIR, 'data.npz')
    z = np.load(path, allow_pickle=False)
    meta = json.loads(str(z['meta']))
    return z['images'], meta


def to_pixels(images_u8):
    """uint8 [N,64,64,3] -> float [N,3,64,64] in [-1,1] (== preprocessor normalisation)."""
    x = torch.from_numpy(np.ascontiguousarray(images_u8)).permute(0, 3, 1, 2).float() / 255.0
    return (x - 0.5) / 0.5


# ---------------------------------------------------------------- blocks
FAST_ATTENTION = True
def gn(c):
    return nn.GroupNorm(min(32, c // 4) if c >= 8 else 1, c)


class Attention(nn.Module):
    def __init__(self, dim, ctx_dim=None, heads=4, qkv_bias=False):
        super().__init__()
        ctx_dim = ctx_dim or dim
        self.heads = heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(ctx_dim, dim, bias=qkv_bias)
        self.v = nn.Linear(ctx_dim, dim, bias=qkv_bias)
        self.o = nn.Linear(dim, dim)

    def forward(self, x, ctx=None, bias=None):
        ctx = x if ctx is None else ctx
        b, n, d = x.shape
        h = self.heads
        q = self.q(x).reshape(b, n, h, d // h).transpose(1, 2)
        k = self.k(ctx).reshape(b, -1, h, d // h).transpose(1, 2)
        v = self.v(ctx).reshape(b, -1, h, d // h).transpose(1, 2)
        if FAST_ATTENTION and x.is_cuda and hasattr(F, 'scaled_dot_product_attention'):
            # same maths, fused kernel (torch >= 2.0 on GPU, training only; ONNX export uses the plain path)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None if bias is None else bias.to(q.dtype))
        else:
            w = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(d // h))
            if bias is not None:
                w = w + bias
            w = torch.softmax(w, dim=-1)
            y = torch.matmul(w, v)
        y = y.transpose(1, 2).reshape(b, n, d)
        return self.o(y)


class TransformerLayer(nn.Module):
    def __init__(self, dim, heads=4, mlp=4):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads=heads, qkv_bias=True)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp), nn.GELU(), nn.Linear(dim * mlp, dim))

    def forward(self, x, bias=None):
        x = x + self.attn(self.ln1(x), bias=bias)
        return x + self.mlp(self.ln2(x))


# ---------------------------------------------------------------- CLIP
class TextEncoder(nn.Module):
    """input_ids [B,16] int64 -> last_hidden_state [B,16,128], text_embeds [B,E] (L2-normalised).
    Bidirectional attention with PAD keys masked; pooled = mean of non-PAD token states."""

    def __init__(self, vocab_size, layers=3, width=WIDTH, embed=EMBED, pad_id=0):
        super().__init__()
        self.pad_id = pad_id
        self.tok = nn.Embedding(vocab_size, width)
        self.pos = nn.Parameter(torch.randn(MAX_LEN, width) * 0.01)
        self.layers = nn.ModuleList([TransformerLayer(width) for _ in range(layers)])
        self.ln = nn.LayerNorm(width)
        self.proj = nn.Linear(width, embed, bias=False)

    def forward(self, input_ids):
        keep = (input_ids != self.pad_id).float()                     # [B,L]
        bias = ((1.0 - keep) * -1e4)[:, None, None, :]                 # [B,1,1,L]
        x = self.tok(input_ids) + self.pos
        for layer in self.layers:
            x = layer(x, bias)
        x = self.ln(x)
        pooled = (x * keep[:, :, None]).sum(1) / keep.sum(1, keepdim=True).clamp(min=1.0)
        e = self.proj(pooled)
        return x, F.normalize(e, dim=-1)


class ResDown(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.n1 = gn(cin)
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1)
        self.n2 = gn(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1, stride) if (cin != cout or stride != 1) else nn.Identity()

    def forward(self, x):
        h = self.c1(F.silu(self.n1(x)))
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


class ImageEncoder(nn.Module):
    """pixel_values [B,3,64,64] (normalised, [-1,1]) -> image_embeds [B,E] L2-normalised."""

    def __init__(self, embed=EMBED, chans=(32, 64, 128, 256)):
        super().__init__()
        self.stem = nn.Conv2d(3, chans[0], 3, 1, 1)
        blocks, c = [], chans[0]
        for co in chans:
            blocks.append(ResDown(c, co, 2))
            c = co
        self.blocks = nn.Sequential(*blocks)      # 64 -> 4
        self.norm = gn(c)
        self.ln = nn.LayerNorm(c)
        self.proj = nn.Linear(c, embed, bias=False)

    def forward(self, pixel_values):
        h = self.blocks(self.stem(pixel_values))
        h = F.silu(self.norm(h)).mean(dim=(2, 3))
        return F.normalize(self.proj(self.ln(h)), dim=-1)


class CLIP(nn.Module):
    def __init__(self, vocab_size, pad_id=0):
        super().__init__()
        self.text = TextEncoder(vocab_size, pad_id=pad_id)
        self.image = ImageEncoder()
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))


# ---------------------------------------------------------------- VAE
class ResBlock(nn.Module):
    def __init__(self, cin, cout, temb=None):
        super().__init__()
        self.n1 = gn(cin)
        self.c1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.t = nn.Linear(temb, cout) if temb else None
        self.n2 = gn(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x, temb=None):
        h = self.c1(F.silu(self.n1(x)))
        if self.t is not None:
            h = h + self.t(temb)[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return self.skip(x) + h


class VAEEncoder(nn.Module):
    def __init__(self, ch=(32, 64, 128)):
        super().__init__()
        self.inp = nn.Conv2d(3, ch[0], 3, 1, 1)
        self.b0 = ResBlock(ch[0], ch[0])
        self.d0 = nn.Conv2d(ch[0], ch[1], 3, 2, 1)      # 64 -> 32
        self.b1 = ResBlock(ch[1], ch[1])
        self.d1 = nn.Conv2d(ch[1], ch[2], 3, 2, 1)      # 32 -> 16
        self.b2 = ResBlock(ch[2], ch[2])
        self.norm = gn(ch[2])
        self.out = nn.Conv2d(ch[2], 2 * LATENT_CHANNELS, 3, 1, 1)

    def forward(self, x):
        h = self.b0(self.inp(x))
        h = self.b1(self.d0(h))
        h = self.b2(self.d1(h))
        m = self.out(F.silu(self.norm(h)))
        return m[:, :LATENT_CHANNELS], m[:, LATENT_CHANNELS:]


class VAEDecoder(nn.Module):
    def __init__(self, ch=(32, 64, 128)):
        super().__init__()
        self.inp = nn.Conv2d(LATENT_CHANNELS, ch[2], 3, 1, 1)
        self.b2 = ResBlock(ch[2], ch[2])
        self.b3 = ResBlock(ch[2], ch[2])
        self.u1 = nn.Conv2d(ch[2], ch[1], 3, 1, 1)      # after 2x upsample: 16 -> 32
        self.b1 = ResBlock(ch[1], ch[1])
        self.u0 = nn.Conv2d(ch[1], ch[0], 3, 1, 1)      # 32 -> 64
        self.b0 = ResBlock(ch[0], ch[0])
        self.norm = gn(ch[0])
        self.out = nn.Conv2d(ch[0], 3, 3, 1, 1)

    def forward(self, z):
        h = self.b3(self.b2(self.inp(z)))
        h = self.b1(self.u1(F.interpolate(h, scale_factor=2.0, mode='nearest')))
        h = self.b0(self.u0(F.interpolate(h, scale_factor=2.0, mode='nearest')))
        return self.out(F.silu(self.norm(h)))


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = VAEEncoder()
        self.decoder = VAEDecoder()


# ---------------------------------------------------------------- UNet
class ImageProj(nn.Module):
    """image_embeds [B,k,E] -> image_prompt_embeds [B,k,128] (Linear + LayerNorm, as IP-Adapter)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(EMBED, WIDTH)
        self.norm = nn.LayerNorm(WIDTH)

    def forward(self, image_embeds):
        return self.norm(self.proj(image_embeds))


class SpatialTransformer(nn.Module):
    def __init__(self, c, self_attn, heads=4):
        super().__init__()
        self.norm = gn(c)
        self.pin = nn.Conv2d(c, c, 1)
        self.self_attn = self_attn
        if self_attn:
            self.ln0 = nn.LayerNorm(c)
            self.sa = Attention(c, heads=heads)
        self.ln1 = nn.LayerNorm(c)
        self.ca = Attention(c, WIDTH, heads=heads)
        self.ln2 = nn.LayerNorm(c)
        self.ff = nn.Sequential(nn.Linear(c, 2 * c), nn.GELU(), nn.Linear(2 * c, c))
        self.pout = nn.Conv2d(c, c, 1)

    def forward(self, x, ctx):
        b, c, hh, ww = x.shape
        h = self.pin(self.norm(x))
        h = h.reshape(b, c, hh * ww).transpose(1, 2)
        if self.self_attn:
            h = h + self.sa(self.ln0(h))
        h = h + self.ca(self.ln1(h), ctx)
        h = h + self.ff(self.ln2(h))
        h = h.transpose(1, 2).reshape(b, c, hh, ww)
        return x + self.pout(h)


def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)


class UNet(nn.Module):
    """sample [B,4,16,16], timestep int64 [B] or [1], encoder_hidden_states [B,20,128] -> out_sample."""

    def __init__(self, ch=(64, 96, 128), tdim=256, sa_low=True, sa_high=True):
        super().__init__()
        c0, c1, c2 = ch
        self.c0 = c0
        self.temb = nn.Sequential(nn.Linear(c0, tdim), nn.SiLU(), nn.Linear(tdim, tdim))
        self.inp = nn.Conv2d(LATENT_CHANNELS, c0, 3, 1, 1)
        self.down0 = ResBlock(c0, c0, tdim)
        self.att_d0 = SpatialTransformer(c0, self_attn=sa_high)
        self.ds0 = nn.Conv2d(c0, c0, 3, 2, 1)                  # 16 -> 8
        self.down1 = ResBlock(c0, c1, tdim)
        self.att_d1 = SpatialTransformer(c1, self_attn=True)
        self.ds1 = nn.Conv2d(c1, c1, 3, 2, 1)                  # 8 -> 4
        self.down2 = ResBlock(c1, c2, tdim)
        self.att_d2 = SpatialTransformer(c2, self_attn=sa_low)
        self.mid = ResBlock(c2, c2, tdim)
        self.att_mid = SpatialTransformer(c2, self_attn=True)
        self.up2 = ResBlock(c2 + c2, c2, tdim)
        self.att_u2 = SpatialTransformer(c2, self_attn=sa_low)
        self.us1 = nn.Conv2d(c2, c1, 3, 1, 1)                  # 4 -> 8
        self.up1 = ResBlock(c1 + c1, c1, tdim)
        self.att_u1 = SpatialTransformer(c1, self_attn=True)
        self.us0 = nn.Conv2d(c1, c0, 3, 1, 1)                  # 8 -> 16
        self.up0 = ResBlock(c0 + c0, c0, tdim)
        self.att_u0 = SpatialTransformer(c0, self_attn=sa_high)
        self.norm = gn(c0)
        self.out = nn.Conv2d(c0, LATENT_CHANNELS, 3, 1, 1)

    def forward(self, sample, timestep, encoder_hidden_states):
        ctx = encoder_hidden_states
        t = self.temb(timestep_embedding(timestep.reshape(-1), self.c0))   # [B or 1, tdim]
        h0 = self.att_d0(self.down0(self.inp(sample), t), ctx)
        h1 = self.att_d1(self.down1(self.ds0(h0), t), ctx)
        h2 = self.att_d2(self.down2(self.ds1(h1), t), ctx)
        h = self.att_mid(self.mid(h2, t), ctx)
        h = self.att_u2(self.up2(torch.cat([h, h2], 1), t), ctx)
        h = self.us1(F.interpolate(h, scale_factor=2.0, mode='nearest'))
        h = self.att_u1(self.up1(torch.cat([h, h1], 1), t), ctx)
        h = self.us0(F.interpolate(h, scale_factor=2.0, mode='nearest'))
        h = self.att_u0(self.up0(torch.cat([h, h0], 1), t), ctx)
        return self.out(F.silu(self.norm(h)))


# ---------------------------------------------------------------- schedule / sampler
def alphas_cumprod(n=1000, beta_start=0.00085, beta_end=0.012):
    betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, n, dtype=torch.float64) ** 2
    return torch.cumprod(1.0 - betas, 0).float()


SCHEDULER_CONFIG = {
    '_class_name': 'DDIMScheduler',
    '_diffusers_version': '0.30.0',
    'beta_start': 0.00085,
    'beta_end': 0.012,
    'beta_schedule': 'scaled_linear',
    'trained_betas': None,
    'num_train_timesteps': 1000,
    'prediction_type': 'epsilon',
    'timestep_spacing': 'leading',
    'steps_offset': 1,
    'clip_sample': False,
    'set_alpha_to_one': False,
    'thresholding': False,
    'rescale_betas_zero_snr': False,
}


def ddim_timesteps(steps, n=1000, offset=1):
    ratio = n // steps
    return [int(t) for t in (np.arange(0, steps) * ratio + offset)[::-1]], ratio


@torch.no_grad()
def ddim_sample(eps_fn, x, steps=25, ac=None):
    """Deterministic DDIM (eta 0), diffusers 'leading' spacing, steps_offset 1, set_alpha_to_one False.
    eps_fn(x, t_int) returns the (guided) epsilon."""
    ac = alphas_cumprod() if ac is None else ac
    ts, ratio = ddim_timesteps(steps)
    for t in ts:
        prev = t - ratio
        a_t = ac[t]
        a_p = ac[prev] if prev >= 0 else ac[0]
        eps = eps_fn(x, t)
        x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
        x = a_p.sqrt() * x0 + (1 - a_p).sqrt() * eps
    return x


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def save_npz(path, module_or_sd, extra=None):
    sd = module_or_sd.state_dict() if isinstance(module_or_sd, nn.Module) else module_or_sd
    arrs = {k: v.detach().float().cpu().numpy() if v.is_floating_point() else v.detach().cpu().numpy()
            for k, v in sd.items()}
    if extra:
        arrs.update(extra)
    tmp = path + '.tmp.npz'
    np.savez(tmp, **arrs)
    os.replace(tmp, path)


def load_npz(path, module=None, prefix=''):
    z = np.load(path)
    sd = {k[len(prefix):]: torch.from_numpy(z[k]) for k in z.files if k.startswith(prefix)}
    if module is not None:
        module.load_state_dict(sd)
    return sd
