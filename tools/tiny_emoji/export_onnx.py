"""Exports the .npz checkpoints in --work to models/tiny-emoji/ (diffusers ONNX layout).

  /usr/bin/python3 tools/tiny_emoji/export_onnx.py [--work .carry/tiny-emoji/work]

Exports whichever checkpoints exist (clip.npz -> text_encoder, image_encoder;
vae.npz -> vae_encoder, vae_decoder; unet.npz -> unet, image_proj) with torch 1.13 at
opset 17, dynamic batch. Constant folding is off so every initializer keeps its
state_dict name: metrics.py rebuilds the torch modules from the ONNX files themselves.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

OPSET = 17


class VAEEncoderMean(torch.nn.Module):
    def __init__(self, enc):
        super().__init__()
        self.encoder = enc

    def forward(self, sample):
        return self.encoder(sample)[0]


def export(module, args, path, inputs, outputs, dyn):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    module.eval()
    with torch.no_grad():
        torch.onnx.export(module, args, path, input_names=inputs, output_names=outputs, dynamic_axes=dyn,
                          opset_version=OPSET, do_constant_folding=False)
    print(f'  {os.path.relpath(path, C.ROOT)}: {os.path.getsize(path) / 1e6:.2f} MB')


def write_json(rel, obj):
    path = os.path.join(C.BUNDLE, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2)
        f.write('\n')


def write_configs(scaling_factor=None):
    write_json('feature_extractor/preprocessor_config.json', {
        'image_processor_type': 'CLIPImageProcessor',
        'feature_extractor_type': 'CLIPFeatureExtractor',
        'do_convert_rgb': True,
        'do_resize': True,
        'size': {'shortest_edge': C.IMAGE_SIZE},
        'resample': 3,
        'do_center_crop': True,
        'crop_size': {'height': C.IMAGE_SIZE, 'width': C.IMAGE_SIZE},
        'do_rescale': True,
        'rescale_factor': 1 / 255,
        'do_normalize': True,
        'image_mean': C.IMAGE_MEAN,
        'image_std': C.IMAGE_STD,
        'ragdiff': {
            'alpha': 'composite on white before anything else: rgb = rgb*a + 255*(1-a)',
            'channel_order': 'RGB',
            'layout': 'NCHW float32, (x/255 - mean)/std',
            'note': 'training images are 64x64 already; resize = shortest edge to 64 (bicubic), then center crop',
        },
    })
    write_json('scheduler/scheduler_config.json', C.SCHEDULER_CONFIG)
    if scaling_factor is not None:
        vae_cfg = {'_class_name': 'AutoencoderKL', 'in_channels': 3, 'out_channels': 3,
                   'latent_channels': C.LATENT_CHANNELS, 'sample_size': C.IMAGE_SIZE,
                   'scaling_factor': round(float(scaling_factor), 5),
                   'ragdiff_note': 'vae_encoder returns the posterior MEAN (deterministic); '
                                   'latents for the UNet = latent_sample * scaling_factor; '
                                   'decode vae_decoder(latents / scaling_factor); pixels in [-1, 1]'}
        write_json('vae_decoder/config.json', vae_cfg)
        write_json('vae_encoder/config.json', vae_cfg)
    write_json('model_index.json', {
        '_class_name': 'OnnxStableDiffusionPipeline',
        '_diffusers_version': '0.30.0',
        'feature_extractor': ['transformers', 'CLIPImageProcessor'],
        'image_encoder': ['diffusers', 'OnnxRuntimeModel'],
        'image_proj': ['diffusers', 'OnnxRuntimeModel'],
        'requires_safety_checker': False,
        'safety_checker': [None, None],
        'scheduler': ['diffusers', 'DDIMScheduler'],
        'text_encoder': ['diffusers', 'OnnxRuntimeModel'],
        'tokenizer': ['transformers', 'PreTrainedTokenizerFast'],
        'unet': ['diffusers', 'OnnxRuntimeModel'],
        'vae_decoder': ['diffusers', 'OnnxRuntimeModel'],
        'vae_encoder': ['diffusers', 'OnnxRuntimeModel'],
        'ragdiff': {
            'image_size': C.IMAGE_SIZE,
            'latent_channels': C.LATENT_CHANNELS,
            'latent_size': C.LATENT_SIZE,
            'text_max_length': C.MAX_LEN,
            'token_width': C.WIDTH,
            'embed_dim': C.EMBED,
            'retrieval': {'k': C.K_NEIGHBOURS, 'image_proj': 'image_proj/model.onnx', 'uncond_neighbours': 'zeros'},
            'uncond_text': 'empty_prompt',
            'prediction_type': 'epsilon',
        },
    })


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--work', default=os.path.join(C.DATA_DIR, 'work'))
    args = p.parse_args()
    tok = C.WordTokenizer.load()
    b = 2
    dyn_b = lambda *names: {n: {0: 'batch'} for n in names}  # noqa: E731
    sf = None
    clip_path = os.path.join(args.work, 'clip.npz')
    if os.path.exists(clip_path):
        clip = C.CLIP(len(tok.vocab), tok.pad_id)
        C.load_npz(clip_path, clip)
        ids = tok.batch(['grinning face', 'red apple'])
        export(clip.text, (ids,), os.path.join(C.BUNDLE, 'text_encoder', 'model.onnx'), ['input_ids'],
               ['last_hidden_state', 'text_embeds'], dyn_b('input_ids', 'last_hidden_state', 'text_embeds'))
        export(clip.image, (torch.zeros(b, 3, 64, 64),), os.path.join(C.BUNDLE, 'image_encoder', 'model.onnx'),
               ['pixel_values'], ['image_embeds'], dyn_b('pixel_values', 'image_embeds'))
    vae_path = os.path.join(args.work, 'vae.npz')
    if os.path.exists(vae_path):
        vae = C.VAE()
        sd = C.load_npz(vae_path)
        sf = float(sd.pop('scaling_factor'))
        vae.load_state_dict(sd)
        export(VAEEncoderMean(vae.encoder), (torch.zeros(b, 3, 64, 64),),
               os.path.join(C.BUNDLE, 'vae_encoder', 'model.onnx'), ['sample'], ['latent_sample'],
               dyn_b('sample', 'latent_sample'))
        export(vae.decoder, (torch.zeros(b, 4, 16, 16),), os.path.join(C.BUNDLE, 'vae_decoder', 'model.onnx'),
               ['latent_sample'], ['sample'], dyn_b('latent_sample', 'sample'))
    unet_path = os.path.join(args.work, 'unet.npz')
    if os.path.exists(unet_path):
        both = torch.nn.ModuleDict({'unet': C.UNet(), 'image_proj': C.ImageProj()})
        C.load_npz(unet_path, both)
        export(both['image_proj'], (torch.zeros(b, C.K_NEIGHBOURS, C.EMBED),),
               os.path.join(C.BUNDLE, 'image_proj', 'model.onnx'), ['image_embeds'], ['image_prompt_embeds'],
               dyn_b('image_embeds', 'image_prompt_embeds'))
        dyn = dyn_b('sample', 'encoder_hidden_states', 'out_sample')
        dyn['timestep'] = {0: 'timestep_batch'}
        export(both['unet'], (torch.zeros(b, 4, 16, 16), torch.tensor([999, 10], dtype=torch.long),
                              torch.zeros(b, C.MAX_LEN + C.K_NEIGHBOURS, C.WIDTH)),
               os.path.join(C.BUNDLE, 'unet', 'model.onnx'), ['sample', 'timestep', 'encoder_hidden_states'],
               ['out_sample'], dyn)
    write_configs(sf)
    print('wrote configs and model_index.json')


if __name__ == '__main__':
    main()
