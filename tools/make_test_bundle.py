#!/usr/bin/python3
"""Writes two tiny synthetic model bundles (random weights, diffusers ONNX layout)
under test/fixtures/pipeline/ for fast tests of the generation pipeline's
mechanics: shapes read from session metadata, determinism, abort, queueing,
fp16/float-timestep boundaries and bad files. Their images mean nothing.

  tiny-bundle/  ragdiff-style: `ragdiff` block in model_index.json, 16 tokens,
                token width 32, 4 neighbour slots, int64 timestep, fp32,
                latent 4x8x8 -> image 32x32, vae scaling_factor 0.5.
  sd-fp16/      Stable-Diffusion-style export: no `ragdiff` block, 77 tokens,
                int32 input_ids, float16 tensors and float16 timestep at every
                boundary (computation inside is fp32), a text encoder with a
                fixed batch of 1, latent 4x8x8 -> 64x64,
                no vae_decoder/config.json (scaling factor defaults to 0.18215).

Usage: /usr/bin/python3 tools/make_test_bundle.py   (torch 1.13, onnx; ~10 s)
"""
import json
import math
import os
import shutil

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'pipeline')
WIDTH = 32
LATENT_C = 4
LATENT = 8
K = 4
WORDS = ['a', 'an', 'the', 'red', 'green', 'blue', 'yellow', 'cat', 'dog', 'face', 'apple', 'heart',
         'rocket', 'star', 'smiling', 'grinning', 'with', 'and', 'of', 'big', 'small', 'tree', 'sun', 'moon']
SCHEDULER = {
    '_class_name': 'DDIMScheduler', '_diffusers_version': '0.30.0',
    'beta_start': 0.00085, 'beta_end': 0.012, 'beta_schedule': 'scaled_linear', 'trained_betas': None,
    'num_train_timesteps': 1000, 'prediction_type': 'epsilon', 'timestep_spacing': 'leading',
    'steps_offset': 1, 'clip_sample': False, 'set_alpha_to_one': False,
}


def tokenizer_files(max_len, pad):
    specials = ['[PAD]', '[UNK]', '[BOS]', '[EOS]']
    vocab = {t: i for i, t in enumerate(specials + WORDS)}
    tok = {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': [{'id': i, 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False,
                          'normalized': False, 'special': True} for i, t in enumerate(specials)],
        'normalizer': {'type': 'Sequence', 'normalizers': [{'type': 'NFD'}, {'type': 'StripAccents'}, {'type': 'Lowercase'}]},
        'pre_tokenizer': {'type': 'Whitespace'},
        'post_processor': {
            'type': 'TemplateProcessing',
            'single': [{'SpecialToken': {'id': '[BOS]', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                       {'SpecialToken': {'id': '[EOS]', 'type_id': 0}}],
            'pair': [{'SpecialToken': {'id': '[BOS]', 'type_id': 0}}, {'Sequence': {'id': 'A', 'type_id': 0}},
                     {'SpecialToken': {'id': '[EOS]', 'type_id': 0}}, {'Sequence': {'id': 'B', 'type_id': 1}},
                     {'SpecialToken': {'id': '[EOS]', 'type_id': 1}}],
            'special_tokens': {t: {'id': t, 'ids': [vocab[t]], 'tokens': [t]} for t in ('[BOS]', '[EOS]')},
        },
        'decoder': None,
        'model': {'type': 'WordLevel', 'vocab': vocab, 'unk_token': '[UNK]'},
    }
    config = {'tokenizer_class': 'PreTrainedTokenizerFast', 'model_max_length': max_len, 'pad_token': pad,
              'unk_token': '[UNK]', 'bos_token': '[BOS]', 'eos_token': '[EOS]', 'padding_side': 'right'}
    return tok, config, len(vocab)


class TextEncoder(nn.Module):
    def __init__(self, vocab, length, half):
        super().__init__()
        self.half_io = half
        self.tok = nn.Embedding(vocab, WIDTH)
        self.pos = nn.Parameter(torch.randn(length, WIDTH) * 0.1)
        self.mix = nn.Linear(WIDTH, WIDTH)

    def forward(self, input_ids):
        x = self.tok(input_ids.long()) + self.pos
        x = torch.tanh(self.mix(x + x.mean(1, keepdim=True)))
        pooled = F.normalize(x.mean(1), dim=-1)
        if self.half_io:
            return x.half(), pooled.half()
        return x, pooled


class UNet(nn.Module):
    """Conv in -> + time embedding -> one cross-attention over the context tokens -> conv out."""

    def __init__(self, half):
        super().__init__()
        self.half_io = half
        c = 16
        self.c = c
        self.inp = nn.Conv2d(LATENT_C, c, 3, 1, 1)
        self.t = nn.Linear(c, c)
        self.q = nn.Linear(c, c, bias=False)
        self.k = nn.Linear(WIDTH, c, bias=False)
        self.v = nn.Linear(WIDTH, c, bias=False)
        self.mid = nn.Conv2d(c, c, 3, 1, 1)
        self.out = nn.Conv2d(c, LATENT_C, 3, 1, 1)

    def forward(self, sample, timestep, encoder_hidden_states):
        x = sample.float()
        ctx = encoder_hidden_states.float()
        t = timestep.float().reshape(-1)
        half = self.c // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
        a = t[:, None] * freqs[None]
        temb = self.t(torch.cat([torch.cos(a), torch.sin(a)], -1))          # [B or 1, c]
        h = F.silu(self.inp(x) + temb[:, :, None, None])
        b, c, hh, ww = h.shape
        q = self.q(h.reshape(b, c, hh * ww).transpose(1, 2))                  # [B, HW, c]
        w = torch.softmax(torch.matmul(q, self.k(ctx).transpose(1, 2)) / math.sqrt(c), -1)
        h = h + torch.matmul(w, self.v(ctx)).transpose(1, 2).reshape(b, c, hh, ww)
        out = self.out(F.silu(self.mid(h)))
        return out.half() if self.half_io else out


class VAEDecoder(nn.Module):
    def __init__(self, factor, half):
        super().__init__()
        self.half_io = half
        self.factor = factor
        self.inp = nn.Conv2d(LATENT_C, 8, 3, 1, 1)
        self.out = nn.Conv2d(8, 3, 3, 1, 1)

    def forward(self, latent_sample):
        h = F.silu(self.inp(latent_sample.float()))
        h = F.interpolate(h, scale_factor=float(self.factor), mode='nearest')
        y = torch.tanh(self.out(h))
        return y.half() if self.half_io else y


class VAEEncoder(nn.Module):
    def __init__(self, factor, half):
        super().__init__()
        self.half_io = half
        self.factor = factor
        self.inp = nn.Conv2d(3, 8, 3, 1, 1)
        self.out = nn.Conv2d(8, LATENT_C, 3, 1, 1)

    def forward(self, sample):
        h = F.silu(self.inp(sample.float()))
        h = F.avg_pool2d(h, self.factor)
        y = self.out(h)
        return y.half() if self.half_io else y


class ImageProj(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(WIDTH, WIDTH)
        self.norm = nn.LayerNorm(WIDTH)

    def forward(self, image_embeds):
        return self.norm(self.proj(image_embeds))


def export(module, args, path, inputs, outputs, dynamic):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, path, input_names=inputs, output_names=outputs,
                          dynamic_axes=dynamic, opset_version=17, do_constant_folding=True)


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f, indent=1)
        f.write('\n')


def model_index(extra=None):
    idx = {
        '_class_name': 'OnnxStableDiffusionPipeline', '_diffusers_version': '0.30.0',
        'text_encoder': ['diffusers', 'OnnxRuntimeModel'], 'unet': ['diffusers', 'OnnxRuntimeModel'],
        'vae_decoder': ['diffusers', 'OnnxRuntimeModel'], 'vae_encoder': ['diffusers', 'OnnxRuntimeModel'],
        'tokenizer': ['transformers', 'PreTrainedTokenizerFast'], 'scheduler': ['diffusers', 'DDIMScheduler'],
        'safety_checker': [None, None], 'feature_extractor': [None, None],
    }
    if extra:
        idx.update(extra)
    return idx


def make(name, *, length, factor, half, ragdiff, scaling_factor, ids_dtype):
    d = os.path.join(OUT, name)
    shutil.rmtree(d, ignore_errors=True)
    torch.manual_seed(1234)
    fdt = torch.float16 if half else torch.float32
    tok, tok_config, vocab = tokenizer_files(length, '[PAD]')
    write_json(os.path.join(d, 'tokenizer', 'tokenizer.json'), tok)
    write_json(os.path.join(d, 'tokenizer', 'tokenizer_config.json'), tok_config)
    write_json(os.path.join(d, 'scheduler', 'scheduler_config.json'), SCHEDULER)
    image = LATENT * factor
    ctx_len = length + (K if ragdiff else 0)

    te = TextEncoder(vocab, length, half)
    # The SD-style text encoder has a fixed batch of 1, as some exports do: the pipeline runs it once per text.
    export(te, (torch.zeros(1 if half else 2, length, dtype=ids_dtype),), os.path.join(d, 'text_encoder', 'model.onnx'),
           ['input_ids'], ['last_hidden_state', 'text_embeds' if ragdiff else 'pooler_output'],
           None if half else {'input_ids': {0: 'batch'}, 'last_hidden_state': {0: 'batch'}})
    un = UNet(half)
    t_dummy = torch.tensor([500, 500], dtype=torch.int64) if not half else torch.tensor([500.0, 500.0], dtype=fdt)
    export(un, (torch.randn(2, LATENT_C, LATENT, LATENT).to(fdt), t_dummy, torch.randn(2, ctx_len, WIDTH).to(fdt)),
           os.path.join(d, 'unet', 'model.onnx'), ['sample', 'timestep', 'encoder_hidden_states'], ['out_sample'],
           {'sample': {0: 'batch'}, 'timestep': {0: 'steps'}, 'encoder_hidden_states': {0: 'batch'},
            'out_sample': {0: 'batch'}})
    export(VAEDecoder(factor, half), (torch.randn(1, LATENT_C, LATENT, LATENT).to(fdt),),
           os.path.join(d, 'vae_decoder', 'model.onnx'), ['latent_sample'], ['sample'],
           {'latent_sample': {0: 'batch'}, 'sample': {0: 'batch'}})
    export(VAEEncoder(factor, half), (torch.randn(1, 3, image, image).to(fdt),),
           os.path.join(d, 'vae_encoder', 'model.onnx'), ['sample'], ['latent_sample'],
           {'sample': {0: 'batch'}, 'latent_sample': {0: 'batch'}})
    if scaling_factor is not None:
        write_json(os.path.join(d, 'vae_decoder', 'config.json'),
                   {'_class_name': 'AutoencoderKL', 'latent_channels': LATENT_C, 'sample_size': image,
                    'scaling_factor': scaling_factor})
    extra = None
    if ragdiff:
        export(ImageProj(), (torch.randn(1, K, WIDTH),), os.path.join(d, 'image_proj', 'model.onnx'),
               ['image_embeds'], ['image_prompt_embeds'], {'image_embeds': {0: 'batch'}, 'image_prompt_embeds': {0: 'batch'}})
        extra = {'ragdiff': {
            'image_size': image, 'latent_channels': LATENT_C, 'latent_size': LATENT, 'text_max_length': length,
            'token_width': WIDTH, 'retrieval': {'k': K, 'image_proj': 'image_proj/model.onnx', 'uncond_neighbours': 'zeros'},
            'uncond_text': 'empty_prompt', 'name': 'synthetic-test-bundle',
        }}
    write_json(os.path.join(d, 'model_index.json'), model_index(extra))
    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
    print(f'{d}: {size / 1024:.0f} KiB')


if __name__ == '__main__':
    make('tiny-bundle', length=16, factor=4, half=False, ragdiff=True, scaling_factor=0.5, ids_dtype=torch.int64)
    make('sd-fp16', length=77, factor=8, half=True, ragdiff=False, scaling_factor=None, ids_dtype=torch.int32)
