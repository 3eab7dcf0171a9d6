#!/usr/bin/python3
"""Full-size benchmark bundle (issue 20, "Full size"): the fixture modules at a
*published* configuration (default SD 1.5: 859.5M-parameter UNet, 83.7M VAE,
123.1M CLIP text encoder), random weights, exported the way the tiny fixtures are
(optimum's layout and names, opset 17, UNet in model.onnx + model.onnx_data since
fp32 is over protobuf's 2 GB), with the published configs and the real CLIP
tokenizer copied in. Records export time and peak RSS per part in
OUT/export_stats.json. Not a test: needs ~10 GB of free memory and minutes of CPU.

  /usr/bin/python3 tools/sd_fixtures/export_full.py --out /tmp/ragdiff-sd15-full \\
      [--model runwayml-stable-diffusion-v1-5] [--parts text_encoder,vae,unet]

fp16 is not produced: torch 1.13 cannot run (so cannot trace) fp16 convolutions on
CPU, and a graph-level fp32→fp16 rewrite needs onnxconverter-common, which is not
installed; optimum exports fp16 on a CUDA device.
"""
import argparse
import gc
import json
import os
import resource
import shutil
import sys
import tempfile
import time

import onnx
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from build import export  # noqa: E402
from clip import CLIPTextModel, TextEncoderExport  # noqa: E402
from unet import UNet2DConditionModel  # noqa: E402
from vae import AutoencoderKL, VaeDecoderExport, VaeEncoderExport  # noqa: E402

CONFIGS = os.path.join(HERE, '..', '..', 'test', 'fixtures', 'sd-configs')


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def du(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def load(model, rel):
    with open(os.path.join(CONFIGS, model, rel)) as f:
        return json.load(f)


def export_large(holder, args, path, inputs, outputs, axes):
    """torch writes a >2 GB model as one file per tensor; optimum then gathers them into model.onnx_data.
    holder: a one-element list with the module, emptied so its weights are freed before the gathering."""
    module = holder.pop()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
        raw = os.path.join(tmp, 'model.onnx')
        torch.onnx.export(module, args, raw, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=17, do_constant_folding=True)
        del module
        gc.collect()
        model = onnx.load(raw)  # with its external tensors
        onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location='model.onnx_data', size_threshold=1024)
    onnx.checker.check_model(path)  # by path: works above 2 GB


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--out', required=True)
    ap.add_argument('--model', default='runwayml-stable-diffusion-v1-5')
    ap.add_argument('--parts', default='text_encoder,vae,unet')
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    stats = {'model': a.model, 'dtype': 'float32', 'parts': {}, 'torch': torch.__version__, 'onnx': onnx.__version__}
    prev = os.path.join(out, 'export_stats.json')
    if os.path.exists(prev):  # parts exported by an earlier run (--parts) stay recorded
        with open(prev) as f:
            old = json.load(f)
        if old.get('model') == a.model:
            stats['parts'].update(old.get('parts', {}))
    src = os.path.join(CONFIGS, a.model)
    for rel in ('model_index.json', 'scheduler/scheduler_config.json', 'tokenizer/vocab.json', 'tokenizer/merges.txt',
                'tokenizer/tokenizer_config.json', 'tokenizer/special_tokens_map.json'):
        os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
        shutil.copyfile(os.path.join(src, rel), os.path.join(out, rel))
    mi = load(a.model, 'model_index.json')
    for k in ('safety_checker', 'feature_extractor'):
        if k in mi:
            mi[k] = [None, None]  # not exported here
    with open(os.path.join(out, 'model_index.json'), 'w') as f:
        json.dump(mi, f, indent=2)

    def record(part, t0, params, dirs):
        stats['parts'][part] = {'export_s': round(time.perf_counter() - t0, 1), 'params': params,
                                'bytes': sum(du(os.path.join(out, d)) for d in dirs),
                                'peak_rss_mib_so_far': round(peak_rss_mib())}
        print(part, stats['parts'][part], flush=True)

    parts = a.parts.split(',')
    if 'text_encoder' in parts:
        t0 = time.perf_counter()
        c = load(a.model, 'text_encoder/config.json')
        te = CLIPTextModel(c).eval()
        os.makedirs(os.path.join(out, 'text_encoder'), exist_ok=True)
        shutil.copyfile(os.path.join(src, 'text_encoder/config.json'), os.path.join(out, 'text_encoder/config.json'))
        ids = torch.zeros(1, 77, dtype=torch.int64)
        export(TextEncoderExport(te, False), (ids,), os.path.join(out, 'text_encoder', 'model.onnx'), ['input_ids'],
               ['last_hidden_state', 'pooler_output'],
               {'input_ids': {0: 'batch_size', 1: 'sequence_length'}, 'last_hidden_state': {0: 'batch_size', 1: 'sequence_length'},
                'pooler_output': {0: 'batch_size'}})
        record('text_encoder', t0, sum(p.numel() for p in te.parameters()), ['text_encoder'])
        del te
        gc.collect()
    if 'vae' in parts:
        t0 = time.perf_counter()
        c = load(a.model, 'vae/config.json')
        vae = AutoencoderKL(c).eval()
        f = 2 ** (len(c['block_out_channels']) - 1)
        for sub in ('vae_decoder', 'vae_encoder'):
            os.makedirs(os.path.join(out, sub), exist_ok=True)
            shutil.copyfile(os.path.join(src, 'vae/config.json'), os.path.join(out, sub, 'config.json'))
        export(VaeDecoderExport(vae), (torch.randn(1, 4, 8, 8),), os.path.join(out, 'vae_decoder', 'model.onnx'),
               ['latent_sample'], ['sample'], {'latent_sample': {0: 'batch_size', 2: 'height_latent', 3: 'width_latent'},
                                               'sample': {0: 'batch_size', 2: 'height', 3: 'width'}})
        export(VaeEncoderExport(vae), (torch.randn(1, 3, 8 * f, 8 * f),), os.path.join(out, 'vae_encoder', 'model.onnx'),
               ['sample'], ['latent_sample'], {'sample': {0: 'batch_size', 2: 'height', 3: 'width'},
                                               'latent_sample': {0: 'batch_size', 2: 'height_latent', 3: 'width_latent'}})
        record('vae', t0, sum(p.numel() for p in vae.parameters()), ['vae_decoder', 'vae_encoder'])
        del vae
        gc.collect()
    if 'unet' in parts:
        t0 = time.perf_counter()
        c = load(a.model, 'unet/config.json')
        unet = UNet2DConditionModel(c).eval()
        params = sum(p.numel() for p in unet.parameters())
        os.makedirs(os.path.join(out, 'unet'), exist_ok=True)
        shutil.copyfile(os.path.join(src, 'unet/config.json'), os.path.join(out, 'unet/config.json'))
        args = (torch.randn(2, c['in_channels'], 8, 8), torch.tensor([999], dtype=torch.int64),
                torch.randn(2, 77, c['cross_attention_dim']))
        holder = [unet]
        del unet
        with torch.no_grad():
            export_large(holder, args, os.path.join(out, 'unet', 'model.onnx'),
                         ['sample', 'timestep', 'encoder_hidden_states'], ['out_sample'],
                         {'sample': {0: 'batch_size', 2: 'height', 3: 'width'}, 'timestep': {0: 'steps'},
                          'encoder_hidden_states': {0: 'batch_size', 1: 'sequence_length'},
                          'out_sample': {0: 'batch_size', 2: 'height', 3: 'width'}})
        record('unet', t0, params, ['unet'])
    stats['peak_rss_mib'] = max([round(peak_rss_mib())] + [p['peak_rss_mib_so_far'] for p in stats['parts'].values()])
    with open(os.path.join(out, 'export_stats.json'), 'w') as f:
        json.dump(stats, f, indent=2)
    print(json.dumps(stats, indent=2))


if __name__ == '__main__':
    main()
