"""Metrics of the exported tiny-emoji bundle, computed on CPU from the ONNX files themselves
(weights are read from the ONNX initializers into the torch modules of common.py).

  /usr/bin/python3 tools/tiny_emoji/metrics.py [--seed 0] [--train-prompts 200] [--steps 25]

Writes models/tiny-emoji/metrics.json and prints a Markdown table for the model card.

Sampler: deterministic DDIM (eta 0), 25 steps, diffusers 'leading' spacing with steps_offset 1,
fixed initial noise per prompt (same noise in every arm). Guidance:
  eps = e(0,0) + s_t * (e(T,0) - e(0,0)) + s_r * (e(T,R) - e(T,0))
with e(T,R) the UNet on [text tokens ; projected neighbour tokens], 0 = the empty prompt for
text and zero tokens for neighbours. Without retrieval s_r = 0 (plain text CFG), so the two
arms differ only by the retrieval term. Neighbours: the k=4 images of the database whose
image embedding has the highest dot product with the prompt's text embedding.
Recognition: generated image -> image encoder -> rank of the prompt's own name among the
text embeddings of all 1,911 base names (zero-shot top-1 / top-5).
Held-out prompts are sampled with --heldout-seeds initial noises each (the first is the seed-0
noise the other arms use). Arms are compared per prompt (mean top-5 hit over its seeds) with an
exact two-sided sign test over the prompts where the two arms differ: prompts, not samples, are the
independent units.
"""
import math
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
import onnx_weights as W  # noqa: E402


@torch.no_grad()
def batched(fn, x, bs=256):
    return torch.cat([fn(x[i:i + bs]) for i in range(0, len(x), bs)])


def frechet(a, b):
    """Fréchet distance between Gaussians fitted to two sets of embeddings (numpy, no scipy)."""
    a, b = a.double().numpy(), b.double().numpy()
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T            # sqrt(s1)
    m = r1 @ s2 @ r1
    ev = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = np.sqrt(np.clip(ev, 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def ranks(img_emb, class_emb, target):
    s = img_emb @ class_emb.t()
    return (s > s[torch.arange(len(target)), target][:, None]).sum(1)


def retrieve(query_emb, img_emb, db_mask=None, exclude_bases=None, base_of=None):
    """Top-k database images by dot product: (their embeddings [Q,k,E], their indices [Q,k]).
    db_mask [N] bool limits the database; exclude_bases[q] removes every image of that base emoji
    (the target and its skin-tone variants) for query q."""
    s = query_emb @ img_emb.t()
    if db_mask is not None:
        s[:, ~db_mask] = -9
    if exclude_bases is not None:
        for row, base in enumerate(exclude_bases):
            s[row, base_of == base] = -9
    top = s.topk(C.K_NEIGHBOURS, dim=1).indices
    return img_emb[top], top


def rate(r, k):
    return round(float((r < k).float().mean()), 4)


def sign_test(a, b):
    """Per-prompt scores of two arms -> (prompts where a > b, where b > a, exact two-sided p)."""
    wins, losses = int((a > b).sum()), int((b > a).sum())
    n, k = wins + losses, min(wins, losses)
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n) if n else 1.0
    return wins, losses, round(p, 5)


class Generator:
    def __init__(self, b, steps, bs=256):
        self.b, self.steps, self.bs = b, steps, bs
        self.ac = C.alphas_cumprod()
        with torch.no_grad():
            self.empty = b['text'](b['tok'].batch(['']))[0][0]

    @torch.no_grad()
    def __call__(self, text_states, nbr_embeds, noise, s_t, s_r):
        """text_states [N,16,128]; nbr_embeds [N,k,E] or None; returns images in [-1,1]."""
        n = len(text_states)
        zeros = torch.zeros(n, C.K_NEIGHBOURS, C.WIDTH)
        ctx = [torch.cat([self.empty.expand(n, -1, -1), zeros], 1), torch.cat([text_states, zeros], 1)]
        if nbr_embeds is not None:
            ctx.append(torch.cat([text_states, self.b['image_proj'](nbr_embeds)], 1))
        ctx = torch.cat(ctx)
        m = len(ctx) // n

        def eps_fn(x, t):
            xx = x.repeat(m, 1, 1, 1)
            tt = torch.full((len(xx),), t, dtype=torch.long)
            e = torch.cat([self.b['unet'](xx[i:i + self.bs], tt[i:i + self.bs], ctx[i:i + self.bs])
                           for i in range(0, len(xx), self.bs)]).split(n)
            out = e[0] + s_t * (e[1] - e[0])
            if m == 3:
                out = out + s_r * (e[2] - e[1])
            return out

        z = C.ddim_sample(eps_fn, noise.clone(), self.steps, self.ac)
        return batched(self.b['vae_dec'], z / self.b['scaling_factor']).clamp(-1, 1)


def to_u8(x):
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def save_grid(rows, path, labels=None):
    from PIL import Image
    h = len(rows)
    w = max(len(r) for r in rows)
    grid = Image.new('RGB', (w * 66, h * 66), (255, 255, 255))
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            grid.paste(Image.fromarray(im), (j * 66 + 1, i * 66 + 1))
    grid.save(path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--train-prompts', type=int, default=200)
    p.add_argument('--steps', type=int, default=25)
    p.add_argument('--text-scale', type=float, default=3.0)
    p.add_argument('--retrieval-scale', type=float, default=4.0)
    p.add_argument('--unet-npz', default=None,
                   help='take unet and image_proj from a training checkpoint (.npz) instead of the bundle')
    p.add_argument('--heldout-seeds', type=int, default=4, help='initial noises per held-out prompt')
    p.add_argument('--threads', type=int, default=0)
    p.add_argument('--out', default=os.path.join(C.BUNDLE, 'metrics.json'))
    p.add_argument('--grid', default=os.path.join(os.path.dirname(os.path.abspath(__file__)), 'samples.png'))
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    torch.manual_seed(args.seed)
    b = W.load_bundle(unet_npz=args.unet_npz)
    res_extra = {'unet_npz': os.path.basename(args.unet_npz)} if args.unet_npz else {}
    tok = b['tok']
    images, meta = C.load_data()
    with open(os.path.join(C.REPO_BUNDLE, 'split.json')) as f:
        split = json.load(f)
    held_sub = set(split['heldout_subcategories'])
    px = C.to_pixels(images)
    base_idx = [i for i, r in enumerate(meta) if r['variant'] is None]       # image index of each base emoji
    n_base = len(base_idx)
    names = [meta[i]['name'] for i in base_idx]
    res = {'seed': args.seed, 'sampler': f'DDIM eta 0, {args.steps} steps, leading spacing, steps_offset 1',
           'guidance': {'text_scale': args.text_scale, 'retrieval_scale': args.retrieval_scale,
                        'formula': 'e(0,0) + s_t*(e(T,0)-e(0,0)) + s_r*(e(T,R)-e(T,0))'}, **res_extra}

    with torch.no_grad():
        img_emb = batched(b['image'], px)                                  # [N,E] all 3,786 images
        name_states, name_emb = [], []
        for i in range(0, n_base, 256):
            hs, te = b['text'](tok.batch(names[i:i + 256]))
            name_states.append(hs)
            name_emb.append(te)
        name_states, name_emb = torch.cat(name_states), torch.cat(name_emb)

    # ---- encoder: text -> image retrieval over the 1,911 base emoji
    base_img_emb = img_emb[base_idx]
    r = ranks(name_emb, base_img_emb, torch.arange(n_base))
    held_b = torch.tensor([meta[i]['subcategory'] in held_sub for i in base_idx])
    res['encoder'] = {'text_to_image_top1': rate(r, 1), 'text_to_image_top5': rate(r, 5), 'n': n_base,
                      'heldout_top1': rate(r[held_b], 1), 'heldout_top5': rate(r[held_b], 5)}
    rr = ranks(base_img_emb, name_emb, torch.arange(n_base))
    res['encoder']['real_image_zero_shot_top5'] = rate(rr, 5)

    # ---- VAE PSNR
    def psnr(idx):
        with torch.no_grad():
            x = px[idx]
            y = batched(b['vae_dec'], batched(b['vae_enc'], x)).clamp(-1, 1)
        xu = (x + 1) / 2
        yu = ((y + 1) * 127.5).round() / 255
        mse = ((xu - yu) ** 2).flatten(1).mean(1)
        return round(float((10 * torch.log10(1 / mse.clamp(min=1e-10))).mean()), 2)

    held_all = [i for i, r in enumerate(meta) if r['subcategory'] in held_sub]
    rng = np.random.default_rng(args.seed)
    train_all = [i for i, r in enumerate(meta) if r['subcategory'] not in held_sub]
    res['vae'] = {'psnr_heldout_db': psnr(held_all), 'n_heldout': len(held_all),
                  'psnr_train_sample_db': psnr(sorted(rng.choice(train_all, 256, replace=False).tolist()))}
    print(f'encoder {res["encoder"]}\nvae {res["vae"]}  ({time.time() - t0:.0f}s)', flush=True)

    # ---- generator
    gen = Generator(b, args.steps)
    train_b = [j for j, i in enumerate(base_idx) if meta[i]['subcategory'] not in held_sub]
    held_bj = [j for j, i in enumerate(base_idx) if meta[i]['subcategory'] in held_sub]
    prompts_train = sorted(rng.choice(train_b, args.train_prompts, replace=False).tolist())
    in_db_gen = torch.tensor([meta[i]['subcategory'] not in held_sub for i in range(len(meta))])
    base_of = torch.tensor([r['base'] for r in meta])
    gen_noise = torch.Generator().manual_seed(args.seed)
    noise_all = torch.randn(n_base, C.LATENT_CHANNELS, C.LATENT_SIZE, C.LATENT_SIZE, generator=gen_noise)

    def neighbours(j_list, db_mask, exclude_self=False):
        bases = [meta[base_idx[j]]['base'] for j in j_list] if exclude_self else None
        return retrieve(name_emb[j_list], img_emb, db_mask, bases, base_of)

    def run(j_list, nbr, label, noise=None):
        t = time.time()
        noise = noise_all[j_list] if noise is None else noise
        x = gen(name_states[j_list], nbr, noise, args.text_scale, args.retrieval_scale if nbr is not None else 0)
        with torch.no_grad():
            e = batched(b['image'], x)
        rk = ranks(e, name_emb, torch.tensor(j_list))
        out = {'top1': rate(rk, 1), 'top5': rate(rk, 5), 'n': len(j_list)}
        print(f'{label}: {out} ({time.time() - t:.0f}s)', flush=True)
        return out, e, x, rk

    # held-out arms: every prompt with S initial noises (seed-0 noise first), S x 54 samples per arm
    n_seeds = args.heldout_seeds
    held_rep = held_bj * n_seeds
    extra = torch.Generator().manual_seed(args.seed + 1)
    held_noise = torch.cat([noise_all[held_bj]] + [torch.randn(len(held_bj), *noise_all.shape[1:], generator=extra)
                                                   for _ in range(n_seeds - 1)])

    def run_held(nbr, label):
        out, e, x, rk = run(held_rep, None if nbr is None else nbr.repeat(n_seeds, 1, 1), label, held_noise)
        out['prompts'], out['seeds'] = len(held_bj), n_seeds
        per_prompt = {k: (rk < k).float().view(n_seeds, len(held_bj)).mean(0) for k in (1, 5)}
        return out, per_prompt, x[:len(held_bj)]

    g = {}
    g['train_prompts_text_only'], e_tr, x_tr, _ = run(prompts_train, None, 'train prompts, no retrieval')
    g['train_prompts_text_only']['frechet_vs_real'] = round(frechet(e_tr, base_img_emb[prompts_train]), 4)
    nb, _ = neighbours(prompts_train, in_db_gen)
    g['train_prompts_retrieval'], e_trr, _, _ = run(prompts_train, nb, 'train prompts, retrieval (generator-training db)')
    g['train_prompts_retrieval']['frechet_vs_real'] = round(frechet(e_trr, base_img_emb[prompts_train]), 4)
    g['frechet_reference_real_vs_vae_recon'] = round(frechet(
        batched(b['image'], batched(b['vae_dec'], batched(b['vae_enc'], px[[base_idx[j] for j in prompts_train]]))
                .clamp(-1, 1)), base_img_emb[prompts_train]), 4)
    g['heldout_no_retrieval'], p_none, x_h0 = run_held(None, 'held-out prompts, no retrieval')
    full = torch.ones(len(meta), dtype=torch.bool)
    nb, top_full = neighbours(held_bj, full)
    g['heldout_retrieval_full_db'], p_full, x_h1 = run_held(nb, 'held-out prompts, retrieval from full db')
    hit = np.mean([int(base_of[top_full[r, 0]]) == meta[base_idx[j]]['base'] for r, j in enumerate(held_bj)])
    g['heldout_retrieval_full_db']['top1_neighbour_is_target'] = round(float(hit), 4)
    nb, _ = neighbours(held_bj, full, exclude_self=True)
    g['heldout_retrieval_db_without_target'], p_minus, x_h2 = run_held(nb, 'held-out prompts, retrieval, target removed from db')
    nb, _ = neighbours(held_bj, in_db_gen)
    g['heldout_retrieval_generator_db'], p_gen, _ = run_held(nb, 'held-out prompts, retrieval from generator-training db only')
    # full-db arm vs each control, per prompt (top-1 / top-5 hit rate over its seeds)
    g['heldout_full_db_vs'] = {
        k: {f'top{r}': dict(zip(('prompts_better', 'prompts_worse', 'sign_test_p'), sign_test(p_full[r], v[r])))
            for r in (1, 5)}
        for k, v in [('no_retrieval', p_none), ('db_without_target', p_minus), ('generator_db', p_gen)]}
    res['generator'] = g
    res['seconds'] = round(time.time() - t0, 1)
    with open(args.out, 'w') as f:
        json.dump(res, f, indent=1)
        f.write('\n')
    # sample grid: held-out prompts; rows = real, no retrieval, retrieval (full db), retrieval (target removed)
    sel = list(range(0, len(held_bj), max(1, len(held_bj) // 16)))[:16]
    real = to_u8(px[[base_idx[held_bj[i]] for i in sel]])
    rows = [list(real), list(to_u8(x_h0[sel])), list(to_u8(x_h1[sel])), list(to_u8(x_h2[sel]))]
    rows.append(list(to_u8(x_tr[:16])))
    save_grid(rows, args.grid)

    e, v, gg = res['encoder'], res['vae'], g
    print('\n| metric | value |\n|---|---|')
    print(f'| text→image retrieval over {e["n"]} base names, top-1 / top-5 | {e["text_to_image_top1"]:.3f} / {e["text_to_image_top5"]:.3f} |')
    print(f'| zero-shot recognition of the real base images, top-5 | {e["real_image_zero_shot_top5"]:.3f} |')
    print(f'| VAE PSNR, held-out images ({v["n_heldout"]}) / 256 training images | {v["psnr_heldout_db"]} dB / {v["psnr_train_sample_db"]} dB |')
    for k, lab in [('train_prompts_text_only', 'training prompts, no retrieval'),
                   ('train_prompts_retrieval', 'training prompts, retrieval (generator-training db)'),
                   ('heldout_no_retrieval', 'held-out prompts, no retrieval'),
                   ('heldout_retrieval_full_db', 'held-out prompts, retrieval from db with held-out images'),
                   ('heldout_retrieval_db_without_target', 'held-out prompts, same db minus the target emoji'),
                   ('heldout_retrieval_generator_db', 'held-out prompts, retrieval from generator-training db')]:
        x = gg[k]
        fd = f', FD {x["frechet_vs_real"]}' if 'frechet_vs_real' in x else ''
        n = f'{x["prompts"]} prompts x {x["seeds"]} seeds' if 'seeds' in x else f'n={x["n"]}'
        print(f'| {lab} ({n}): recognition top-1 / top-5{fd} | {x["top1"]:.3f} / {x["top5"]:.3f} |')
    for k, x in gg['heldout_full_db_vs'].items():
        cells = [f'{x[r]["prompts_better"]} / {x[r]["prompts_worse"]}, p = {x[r]["sign_test_p"]}' for r in ('top1', 'top5')]
        print(f'| full db vs {k.replace("_", " ")}: prompts better / worse, sign-test p (top-1 · top-5) | '
              f'{cells[0]} · {cells[1]} |')
    print(f'\nmetrics took {res["seconds"]:.0f}s')


if __name__ == '__main__':
    main()
