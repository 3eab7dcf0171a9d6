"""Reference pipelines (PyTorch, fp32) for the fixture families, written from
diffusers' published pipelines (StableDiffusionPipeline, StableDiffusionXLPipeline,
LatentConsistencyModelPipeline: encode_prompt, prepare_latents, the denoising
loop with classifier-free guidance, VAE decode), not copied.

`run` takes the initial noise (and, for stochastic schedulers, the per-step
noise) explicitly, so the TypeScript side can feed the same numbers. `mutate`
names one deliberate wiring error (for the sensitivity table in oracle.json).
"""
import copy

import torch

import schedulers


def _ids(tok, text):
    return torch.tensor([tok(text)], dtype=torch.int64)


def encode_sd(te, tok, prompt, negative, cfg):
    cond = te(_ids(tok, prompt))[0]
    if not cfg:
        return cond, {'cond': tok(prompt)}
    uncond = te(_ids(tok, negative or ''))[0]
    return torch.cat([uncond, cond]), {'cond': tok(prompt), 'uncond': tok(negative or '')}


def encode_sdxl(tes, toks, prompt, negative, cfg, force_zeros, mutate=None):
    """Both encoders' penultimate hidden states (hidden_states[-2]) concatenated; pooled = text_encoder_2's text_embeds."""
    def one(text):
        parts, pooled = [], None
        for te, tok in zip(tes, toks):
            last, pool, hidden = te(_ids(tok, text))
            parts.append(last if mutate == 'last_not_penultimate' else hidden[-2])
            pooled = pool
        return torch.cat(parts, dim=-1), pooled
    pe, pp = one(prompt)
    ids = {'cond': [tok(prompt) for tok in toks]}
    if not cfg:
        return pe, pp, ids
    if negative is None and force_zeros:
        ne, npool = torch.zeros_like(pe), torch.zeros_like(pp)
    else:
        ne, npool = one(negative or '')
        ids['uncond'] = [tok(negative or '') for tok in toks]
    return torch.cat([ne, pe]), torch.cat([npool, pp]), ids


@torch.no_grad()
def run(fam, models, toks, case, noise, mutate=None, init=None):
    """noise: [1 + steps, C, h, w] standard normals (row 0 the initial latent, row k+1 the noise of the k-th
    step run). init: {'image': [1, 3, H, W] in [-1, 1], 'strength'} for image-to-image (StableDiffusionImg2Img /
    SDXLImg2Img / LatentConsistencyModelImg2Img), with the VAE's mean as the clean latent."""
    unet, vae, tes = models['unet'], models['vae'], models['text_encoders']
    if mutate in ('pad_id_0', 'pad_eos'):
        toks = [copy.copy(t) for t in toks]
        for t in toks:
            t.pad_id = 0 if mutate == 'pad_id_0' else t.eos
    sched_cfg = dict(fam['scheduler'])
    if mutate == 'epsilon_not_v':
        sched_cfg['prediction_type'] = 'epsilon'
    sch = schedulers.make(sched_cfg)
    kind = fam['pipeline']
    g = case['guidance_scale']
    steps = case['steps']
    lcm = kind == 'LatentConsistencyModelPipeline'
    cfg = g > 1.0 and not lcm
    rec = {}
    added = {}
    if kind == 'StableDiffusionXLPipeline':
        ehs, pooled, ids = encode_sdxl(tes, toks, case['prompt'], case['negative_prompt'], cfg,
                                       fam.get('force_zeros_for_empty_prompt', True), mutate)
        vae_factor = 2 ** (len(fam['vae']['block_out_channels']) - 1)
        h = w = fam['unet']['sample_size'] * vae_factor
        tid = torch.tensor([[h, w, 0, 0, h, w]], dtype=torch.float32)
        if mutate == 'time_ids_zero':
            tid = torch.zeros_like(tid)
        if mutate == 'pooled_zero':
            pooled = torch.zeros_like(pooled)
        tid = tid.repeat(ehs.shape[0], 1)
        added = {'text_embeds': pooled, 'time_ids': tid}
        rec['text_embeds'], rec['time_ids'] = pooled, tid
    else:
        ehs, ids = encode_sd(tes[0], toks[0], case['prompt'], case['negative_prompt'], cfg)
    rec['encoder_hidden_states'] = ehs
    if lcm:
        w = torch.tensor(g - (0 if mutate == 'lcm_w_not_minus_one' else 1)).repeat(1)
        added['timestep_cond'] = schedulers.guidance_scale_embedding(w, fam['unet']['time_cond_proj_dim'])
        rec['timestep_cond'] = added['timestep_cond']

    sf = fam['vae'].get('scaling_factor', 0.18215)  # diffusers' default when absent
    start = 0
    if init is None:
        timesteps = sch.set_timesteps(steps)
        latents = noise[0:1] * sch.init_noise_sigma
    else:
        if lcm:
            timesteps = sch.set_timesteps(steps, strength=init['strength'])
        else:
            # get_timesteps: the last min(int(steps·strength), steps) steps of the schedule (PNDM's list included)
            timesteps = sch.set_timesteps(steps)
            start = max(steps - min(int(steps * init['strength']), steps), 0)
        x0 = vae.encode_mean(init['image']) * sf
        rec['init_latents'] = x0
        latents = sch.add_noise(x0, noise[0:1], start)
    rec['initial_latents'] = latents
    per_step, first_pred = [], None
    for i in range(start, len(timesteps)):
        t = timesteps[i]
        x = torch.cat([latents] * 2) if cfg else latents
        x = sch.scale_model_input(x, i)
        tt = torch.tensor([float(t)]) if isinstance(sch, schedulers.EulerDiscrete) else torch.tensor([int(t)])
        out = unet(x, tt, ehs, **added)
        if cfg:
            u, c = out.chunk(2)
            out = u + g * (c - u)
        if first_pred is None:
            first_pred = out
        stochastic = lcm or isinstance(sch, schedulers.EulerAncestral)
        k = i - start + 1
        step_noise = noise[k:k + 1] if stochastic else None
        if mutate == 'ancestral_noise_zero' and step_noise is not None:
            step_noise = torch.zeros_like(step_noise)
        latents = sch.step(out, i, latents, step_noise)
        per_step.append(latents)
    image = vae.decode(latents / sf)
    rec.update({'noise_pred_step0': first_pred, 'latents_steps': torch.cat(per_step), 'final_latents': latents,
                'image': image})
    meta = {'timesteps': [float(t) if isinstance(sch, schedulers.EulerDiscrete) else int(t) for t in timesteps],
            'init_noise_sigma': float(sch.init_noise_sigma), 'unet_calls': len(timesteps) - start, 'cfg': cfg,
            'start_index': start,
            'token_ids': ids}
    if isinstance(sch, schedulers.EulerDiscrete):
        meta['sigmas'] = [float(s) for s in sch.sigmas]
    return rec, meta
