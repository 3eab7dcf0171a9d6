#!/usr/bin/python3
"""Builds the tiny SD-family fixture bundles under test/fixtures/sd/ (random
weights, fixed seeds, optimum's ONNX layout and names) and their PyTorch oracles.

  /usr/bin/python3 tools/sd_fixtures/build.py [family ...]   (torch 1.13, onnx 1.12; ~1 min)

Families: sd15, sd15-sdpa (same weights and oracle as sd15, attention exported in
the scaled-dot-product form), sd21v, sdxl, lcm. The format of what it writes is in
test/fixtures/sd/README.md. Needs node and the built addon (build/Release) for
ragdiff's noise stream.
"""
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import attention  # noqa: E402
from pictures import init_image, write_png  # noqa: E402
import fp16 as fp16lib  # noqa: E402
import oracle  # noqa: E402
import tokenizer as toklib  # noqa: E402
from clip import CLIPTextModel, CLIPTextModelWithProjection, TextEncoderExport  # noqa: E402
from families import FAMILIES  # noqa: E402
from unet import UNet2DConditionModel  # noqa: E402
from vae import AutoencoderKL, VaeDecoderExport, VaeEncoderExport  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, '..', '..'))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'sd')
OPSET = 17
SEEDS = {'sd15': 15, 'sd21v': 21, 'sdxl': 1010, 'lcm': 7, 'sdturbo': 3}
# fp16 bundles: a boundary value may round one fp16 ulp apart between ONNX Runtime and PyTorch (their fp32
# arithmetic differs in the last bits; one ulp is 7.8e-3 for |v| in [8, 16)); the sampler carries such a flip
# into the final latents (PLMS mixes up to four model outputs), so probes are compared within 2 ulp of the
# expected value and the final latents within 5e-2 (observed: 7.8e-3; the smallest wiring error in the
# sensitivity table moves them by 1.06).
FP16_TOLERANCE = {'final_latents_max_abs': 5e-2, 'probe': 'fp16: 2 ulp of the expected value + 1e-4'}
MUTATIONS = {
    'sd15': ['pad_id_0'],
    'sd21v': ['epsilon_not_v', 'pad_eos'],
    'sdxl': ['time_ids_zero', 'pooled_zero', 'last_not_penultimate'],
    'lcm': ['lcm_w_not_minus_one'],
    'sdturbo': ['ancestral_noise_zero'],
}


def dump(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(obj, f, indent=2)
        f.write('\n')


REAL = os.path.join(ROOT, 'test', 'fixtures', 'sd-configs')
# model_index components a tiny bundle does not ship
ABSENT = ('safety_checker', 'feature_extractor', 'image_encoder')


def realize(fam):
    """Every tiny config is the published file with tiny sizes: the real keys and values, the family's
    sizes over them, and no key the published file lacks (test/fixtures/sd-configs/<real>/)."""
    rd = os.path.join(REAL, fam['real'])

    def merge(tiny, rel):
        with open(os.path.join(rd, rel)) as f:
            real = json.load(f)
        tiny = {k: v for k, v in tiny.items() if k not in ('_diffusers_version', 'transformers_version')}
        extra = set(tiny) - set(real)
        if extra:
            raise SystemExit(f"{fam['real']}/{rel}: the tiny config has keys the published one lacks: {sorted(extra)}")
        return {k: tiny.get(k, v) for k, v in real.items()}
    fam['unet'] = merge(fam['unet'], 'unet/config.json')
    fam['vae'] = merge(fam['vae'], 'vae/config.json')
    fam['scheduler'] = merge(fam['scheduler'], 'scheduler/scheduler_config.json')
    fam['text_encoders'] = [(d, t, cls, merge(cfg, f'{d}/config.json'), pad) for d, t, cls, cfg, pad in fam['text_encoders']]
    with open(os.path.join(rd, 'model_index.json')) as f:
        fam['model_index'] = {k: ([None, None] if k in ABSENT else v) for k, v in json.load(f).items()}
    for d, t, cls, cfg, pad in fam['text_encoders']:
        with open(os.path.join(rd, t, 'special_tokens_map.json')) as f:
            assert json.load(f)['pad_token'] == pad, (fam['real'], t, pad)
        assert fam['model_index'][d] == ['transformers', cls], (fam['real'], d)
    return fam


def build_models(name, fam, vocab_size):
    torch.manual_seed(SEEDS[name])
    tes = []
    for _, _, cls, cfg, _ in fam['text_encoders']:
        cfg['vocab_size'] = vocab_size
        tes.append((CLIPTextModel if cls == 'CLIPTextModel' else CLIPTextModelWithProjection)(cfg).eval())
    unet = UNet2DConditionModel(fam['unet']).eval()
    vae = AutoencoderKL(fam['vae']).eval()
    # Random norm affine parameters too, so a mis-wired norm cannot hide behind weight 1 / bias 0.
    with torch.no_grad():
        for m in [unet, vae, *tes]:
            for mod in m.modules():
                if isinstance(mod, (nn.GroupNorm, nn.LayerNorm)):
                    mod.weight.uniform_(0.8, 1.2)
                    mod.bias.uniform_(-0.1, 0.1)
    return {'unet': unet, 'vae': vae, 'text_encoders': tes}


def set_attention_style(models, style):
    for m in [models['unet'], models['vae']]:
        for mod in m.modules():
            if isinstance(mod, attention.Attention):
                mod.style = style


def anonymize(model):
    """Node names and intermediate value names replaced by counters, as some exporters write
    them: a converter must find attention by structure, not by '/attn1/' in a name."""
    keep = {v.name for v in model.graph.output} | {v.name for v in model.graph.input} | \
        {i.name for i in model.graph.initializer}
    names = {}
    for i, node in enumerate(model.graph.node):
        node.name = f'n{i}'
        for j, o in enumerate(node.output):
            if o not in keep and o:
                names[o] = f'v{i}_{j}'
                node.output[j] = names[o]
        for j, x in enumerate(node.input):
            if x in names:
                node.input[j] = names[x]
    del model.graph.value_info[:]


def export(module, args, path, inputs, outputs, axes, external=False, anonymous=False, fp16=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, 'model.onnx')
        torch.onnx.export(module, args, raw, input_names=inputs, output_names=outputs, dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True)
        model = onnx.load(raw)
        if anonymous:
            anonymize(model)
        if fp16:
            fp16lib.convert(model)
        if external:
            # optimum's layout for the UNet: one model.onnx_data beside model.onnx.
            onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                            location='model.onnx_data', size_threshold=1024)
        else:
            onnx.save_model(model, path)
    onnx.checker.check_model(path)


class UnetExport(nn.Module):
    def __init__(self, unet, extra):
        super().__init__()
        self.unet, self.extra = unet, extra

    def forward(self, sample, timestep, encoder_hidden_states, *rest):
        kw = dict(zip(self.extra, rest))
        return self.unet(sample, timestep, encoder_hidden_states, **kw)


def export_bundle(dst, name, fam, models, vocab, merges, anonymous=False, fp16=False):
    if os.path.isdir(dst):
        shutil.rmtree(dst)
    os.makedirs(dst)
    comps = fam['model_index']
    for (te_dir, tok_dir, cls, cfg, pad), te in zip(fam['text_encoders'], models['text_encoders']):
        toklib.write(os.path.join(dst, tok_dir), vocab, merges, pad_token=pad)
        for f in ('tokenizer_config.json', 'special_tokens_map.json'):  # nothing size-specific: the published files
            shutil.copyfile(os.path.join(REAL, fam['real'], tok_dir, f), os.path.join(dst, tok_dir, f))
        dump(os.path.join(dst, te_dir, 'config.json'), cfg)
        sdxl = fam['pipeline'] == 'StableDiffusionXLPipeline'
        n = cfg['num_hidden_layers']
        first = 'text_embeds' if cls == 'CLIPTextModelWithProjection' else 'pooler_output'
        outs = ['last_hidden_state', first] + ([f'hidden_states.{i}' for i in range(n + 1)] if sdxl else [])
        axes = {'input_ids': {0: 'batch_size', 1: 'sequence_length'},
                'last_hidden_state': {0: 'batch_size', 1: 'sequence_length'}, first: {0: 'batch_size'}}
        for o in outs[2:]:
            axes[o] = {0: 'batch_size', 1: 'sequence_length'}
        ids = torch.tensor([toklib.ClipTokenizer(vocab, merges, pad_token=pad)('a photo')], dtype=torch.int64)
        # text_encoder_2 (OpenCLIP bigG, 2.8 GB in fp32) is written with external data by optimum, as the UNet.
        export(TextEncoderExport(te, sdxl), (ids,), os.path.join(dst, te_dir, 'model.onnx'), ['input_ids'], outs, axes,
               external=te_dir == 'text_encoder_2', fp16=fp16)
    dump(os.path.join(dst, 'model_index.json'), comps)
    dump(os.path.join(dst, 'scheduler', 'scheduler_config.json'), fam['scheduler'])

    u = fam['unet']
    s = u['sample_size']
    sample = torch.randn(2, 4, s, s)
    t = torch.tensor([999], dtype=torch.int64)
    ehs = torch.randn(2, 5, u['cross_attention_dim'])
    inputs, args, extra = ['sample', 'timestep', 'encoder_hidden_states'], [sample, t, ehs], []
    axes = {'sample': {0: 'batch_size', 2: 'height', 3: 'width'}, 'timestep': {0: 'steps'},
            'encoder_hidden_states': {0: 'batch_size', 1: 'sequence_length'},
            'out_sample': {0: 'batch_size', 2: 'height', 3: 'width'}}
    if u.get('addition_embed_type') == 'text_time':
        extra = ['text_embeds', 'time_ids']
        args += [torch.randn(2, u['projection_class_embeddings_input_dim'] - 6 * u['addition_time_embed_dim']),
                 torch.tensor([[128., 128., 0., 0., 128., 128.]] * 2)]
    if u.get('time_cond_proj_dim'):
        extra = ['timestep_cond']
        args += [torch.randn(2, u['time_cond_proj_dim'])]
    for e in extra:
        axes[e] = {0: 'batch_size'}
    dump(os.path.join(dst, 'unet', 'config.json'), u)
    export(UnetExport(models['unet'], extra), tuple(args), os.path.join(dst, 'unet', 'model.onnx'),
           inputs + extra, ['out_sample'], axes, external=True, anonymous=anonymous, fp16=fp16)

    v = fam['vae']
    for sub in ('vae_decoder', 'vae_encoder'):
        dump(os.path.join(dst, sub, 'config.json'), v)
    f = 2 ** (len(v['block_out_channels']) - 1)
    export(VaeDecoderExport(models['vae']), (torch.randn(1, 4, s, s),), os.path.join(dst, 'vae_decoder', 'model.onnx'),
           ['latent_sample'], ['sample'],
           {'latent_sample': {0: 'batch_size', 2: 'height_latent', 3: 'width_latent'},
            'sample': {0: 'batch_size', 2: 'height', 3: 'width'}}, fp16=fp16)
    export(VaeEncoderExport(models['vae']), (torch.randn(1, 3, s * f, s * f),), os.path.join(dst, 'vae_encoder', 'model.onnx'),
           ['sample'], ['latent_sample'],
           {'sample': {0: 'batch_size', 2: 'height', 3: 'width'},
            'latent_sample': {0: 'batch_size', 2: 'height_latent', 3: 'width_latent'}}, fp16=fp16)


IMG2IMG_STRENGTH = 0.5


def noise_for(seed, count):
    with tempfile.TemporaryDirectory() as tmp:
        p = os.path.join(tmp, 'n.bin')
        subprocess.run(['node', os.path.join(HERE, 'noise.mjs'), str(seed), str(count), p], check=True)
        return torch.from_numpy(np.fromfile(p, dtype='<f4').copy())


def write_oracle(dst, name, fam, models, toks):
    case = fam['case']
    u = fam['unet']
    s = u['sample_size']
    n = 4 * s * s
    rows = case['steps'] + 2  # initial latent + one row per step (PNDM makes steps + 1 calls)
    noise = noise_for(case['seed'], rows * n).reshape(rows, 4, s, s)
    rec, meta = oracle.run(fam, models, toks, case, noise)
    rec['noise'] = noise
    odir = os.path.join(dst, 'oracle')
    os.makedirs(odir, exist_ok=True)
    tensors = {}
    for k, v in rec.items():
        arr = v.detach().float().contiguous().numpy().astype('<f4')
        arr.tofile(os.path.join(odir, f'{k}.bin'))
        tensors[k] = {'file': f'oracle/{k}.bin', 'shape': list(arr.shape), 'dtype': 'float32'}
    # The probes: one raw UNet call (step 0, both CFG rows) and a VAE encode, so the ONNX
    # files can be checked against the PyTorch modules without running a whole pipeline.
    with torch.no_grad():
        sch_in = rec['initial_latents']
        probe = {}
        rng = torch.Generator().manual_seed(5)
        x = torch.randn(2, 4, s, s, generator=rng)
        ehs = torch.randn(2, 7, u['cross_attention_dim'], generator=rng)
        kw = {}
        if u.get('addition_embed_type') == 'text_time':
            kw = {'text_embeds': torch.randn(2, u['projection_class_embeddings_input_dim'] - 6 * u['addition_time_embed_dim'], generator=rng),
                  'time_ids': torch.tensor([[128., 96., 0., 16., 128., 128.], [64., 64., 8., 0., 128., 96.]])}
        if u.get('time_cond_proj_dim'):
            kw = {'timestep_cond': torch.randn(2, u['time_cond_proj_dim'], generator=rng)}
        t = torch.tensor([501, 251], dtype=torch.int64)
        probe['probe_unet_sample'], probe['probe_unet_timestep'], probe['probe_unet_ehs'] = x, t.float(), ehs
        for k, v in kw.items():
            probe[f'probe_unet_{k}'] = v
        probe['probe_unet_out'] = models['unet'](x, t, ehs, **kw)
        f = 2 ** (len(fam['vae']['block_out_channels']) - 1)
        img = torch.rand(1, 3, 32, 24, generator=rng) * 2 - 1  # small, and not square
        probe['probe_vae_image'] = img
        probe['probe_vae_latent_mean'] = models['vae'].encode_mean(img)
    for k, v in probe.items():
        arr = v.detach().float().contiguous().numpy().astype('<f4')
        arr.tofile(os.path.join(odir, f'{k}.bin'))
        tensors[k] = {'file': f'oracle/{k}.bin', 'shape': list(arr.shape), 'dtype': 'float32'}
    # Image-to-image (the retrieval layer's reference-init with one image): the same prompt, seed and steps.
    f = 2 ** (len(fam['vae']['block_out_channels']) - 1)
    pic = init_image(s * f, s * f)
    write_png(os.path.join(odir, 'init_image.png'), pic)
    x = torch.from_numpy(pic).permute(2, 0, 1)[None].float() / 255 * 2 - 1
    rec2, meta2 = oracle.run(fam, models, toks, case, noise, init={'image': x, 'strength': IMG2IMG_STRENGTH})
    for k in ('init_latents', 'initial_latents', 'latents_steps', 'final_latents', 'image'):
        arr = rec2[k].detach().float().contiguous().numpy().astype('<f4')
        arr.tofile(os.path.join(odir, f'img2img_{k}.bin'))
        tensors[f'img2img_{k}'] = {'file': f'oracle/img2img_{k}.bin', 'shape': list(arr.shape), 'dtype': 'float32'}
    img2img = {'strength': IMG2IMG_STRENGTH, 'init_image': 'oracle/init_image.png', 'start_index': meta2['start_index'],
               'timesteps': meta2['timesteps'], 'unet_calls': meta2['unet_calls'],
               'noise_rows': 'row 0 noises the clean latent (add_noise at timesteps[start_index]); row k+1 is the k-th '
                             'step run\'s noise (stochastic schedulers)',
               'clean_latent': 'the VAE encoder\'s mean × scaling_factor (diffusers samples latent_dist; the export '
                               'gives the mean); pixels = uint8 / 255 × 2 − 1',
               'tensors': 'img2img_init_latents (clean, scaled), img2img_initial_latents (noised), img2img_latents_steps, '
                          'img2img_final_latents, img2img_image'}
    if fam['pipeline'] == 'LatentConsistencyModelPipeline':
        img2img['schedule'] = ('LatentConsistencyModelImg2ImgPipeline: set_timesteps(steps, strength) shortens the '
                               'distillation schedule to int(original_inference_steps × strength) points and runs all '
                               '`steps` of it (not the last steps of the text-to-image schedule)')
    sens = {}
    for m in MUTATIONS.get(name, []):
        alt, _ = oracle.run(fam, models, toks, case, noise, mutate=m)
        sens[m] = float((alt['final_latents'] - rec['final_latents']).abs().max())
    img = rec['image'][0]
    u8 = ((img / 2 + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    u8.tofile(os.path.join(odir, 'image_uint8_hwc.bin'))
    tensors['image_uint8_hwc'] = {'file': 'oracle/image_uint8_hwc.bin', 'shape': list(u8.shape), 'dtype': 'uint8'}
    doc = {
        'family': name, 'describes': fam['describe'], 'pipeline': fam['pipeline'],
        'published_configs': f"test/fixtures/sd-configs/{fam['real']}",
        'prompt': case['prompt'], 'negative_prompt': case['negative_prompt'], 'steps': case['steps'],
        'guidance_scale': case['guidance_scale'], 'seed': case['seed'], 'batch': 1,
        'height': s * f, 'width': s * f, 'latent_shape': [1, 4, s, s],
        'scheduler': fam['scheduler']['_class_name'], 'vae_scaling_factor': fam['vae'].get('scaling_factor', 0.18215),
        'noise': {'source': 'ragdiff NoiseGenerator(seed) stream from offset 0 (tools/sd_fixtures/noise.mjs)',
                  'rows': 'row 0 = initial latent (before init_noise_sigma); row i+1 = the noise step i draws '
                          '(stochastic schedulers only: LCM, Euler ancestral)'},
        **meta,
        'sensitivity_max_abs_final_latents': sens,
        'img2img': img2img,
        'tolerance': {'final_latents_max_abs': 1e-4},
        'tensors': tensors,
    }
    dump(os.path.join(dst, 'oracle.json'), doc)
    return doc


def main(names):
    vocab, merges = toklib.learn()
    for name in names:
        base = 'sd15' if name in ('sd15-sdpa', 'sd15-fp16') else name
        fam = realize(copy.deepcopy(FAMILIES[base]))
        models = build_models(base, fam, len(vocab))
        toks = [toklib.ClipTokenizer(vocab, merges, pad_token=pad) for *_, pad in fam['text_encoders']]
        style = 'sdpa' if name.endswith('-sdpa') else 'baddbmm'
        set_attention_style(models, style)
        dst = os.path.join(OUT, name)
        fp16 = name.endswith('-fp16')
        oracle_models = fp16lib.oracle_view(models) if fp16 else models
        export_bundle(dst, name, fam, models, vocab, merges, anonymous=style == 'sdpa', fp16=fp16)
        set_attention_style(models, 'baddbmm')  # the oracle is one computation for both export styles
        doc = write_oracle(dst, base, fam, oracle_models, toks)
        if fp16:
            doc['dtype'] = 'float16'
            doc['describes'] += '; float16 weights and float16 at every model boundary (arithmetic inside in float32)'
            doc['tolerance'] = FP16_TOLERANCE
            ref = np.fromfile(os.path.join(OUT, 'sd15', 'oracle', 'final_latents.bin'), '<f4')
            got = np.fromfile(os.path.join(dst, 'oracle', 'final_latents.bin'), '<f4')
            doc['max_abs_vs_fp32_oracle'] = float(np.abs(ref - got).max()) if ref.shape == got.shape else None
        doc['attention_export'] = style
        doc.setdefault('dtype', 'float32')
        dump(os.path.join(dst, 'oracle.json'), doc)
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(dst) for f in fs)
        print(f'{name}: {size / 1e6:.2f} MB, final latents |max| {float(np.abs(np.fromfile(os.path.join(dst, "oracle", "final_latents.bin"), "<f4")).max()):.3f}, '
              f'sensitivity {doc["sensitivity_max_abs_final_latents"]}')


if __name__ == '__main__':
    main(sys.argv[1:] or ['sd15', 'sd15-sdpa', 'sd15-fp16', 'sd21v', 'sdxl', 'lcm', 'sdturbo'])
