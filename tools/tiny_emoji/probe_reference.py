"""Does a retrieved reference IMAGE carry the target's identity into the sample? Probe of two
training-free mechanisms on the held-out prompts, before anyone integrates them.

  /usr/bin/python3 tools/tiny_emoji/probe_reference.py [--threads 2] [--seeds 2] [--max-minutes 30]
  -> tools/tiny_emoji/probe_reference.json (+ a table on stdout)

The committed JSON ran 1 noise per prompt (--seeds 1, the CPU was shared by many jobs) as eight
single-thread runs of a few arms each (their commands are in the JSON), merged with
  probe_reference.py --merge RUN1.json RUN2.json ... --out tools/tiny_emoji/probe_reference.json

Held-out prompts (split.json, 54) x --seeds initial noises (the metrics' noises: seed-0 noise
first, then seed-1 generator), DDIM 25 steps, the metrics' guidance
    e(0,0) + 3 (e(T,0) - e(0,0)) + 4 (e(T,R) - e(T,0)),   R = k=4 retrieved neighbour tokens.
Two database conditions, as the evaluation pairs them:
  target     : neighbours from all 3,786 images (the target emoji is the top-1 one) and the
               reference image = the target's own base image;
  non-target : neighbours from the database minus every image of the target emoji, and the
               reference = the nearest remaining image (top-1 of that retrieval).
Mechanisms (each run in both conditions):
  none                 : tokens only (the current bundle behaviour);
  refattn w            : reference attention (refattn.py) in every UNet call of every guidance branch;
                         the reference latent is re-noised to each step's t with fresh seeded noise
                         (the same noise in both conditions);
  refcond w            : the same, but the unconditional branch e(0,0) runs without the reference
                         (ref_weight 0 for its rows), so the guidance amplifies the reference's effect
                         (as diffusers' reference-only pipeline treats the unconditional half);
  init s (SDEdit)      : start from the reference's VAE latent noised to strength s (diffusers img2img:
                         the last round(25 s) of the 25 DDIM steps are run).
Measured per arm: recognition top-1/top-5 (image encoder vs the text embeddings of all 1,911 base
names, as metrics.py), PSNR (8-bit RGB) to the reference, the share of outputs with PSNR > 20 dB to
the reference and to ANY database image (near-copies), and per-prompt exact sign tests target vs
non-target (prompts are the units; mean hit over the noises).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402
import metrics as M  # noqa: E402
import onnx_weights as W  # noqa: E402
import refattn as R  # noqa: E402

# onnxruntime runs these UNets ~3-5x faster than Debian's torch 1.13 on this CPU, and it runs the
# exported variant itself. Optional: `pip install --target .carry/pyort --no-deps onnxruntime`.
sys.path.insert(0, os.path.join(C.ROOT, '.carry', 'pyort'))
try:
    import onnxruntime as ort
except ImportError:  # torch fallback (same maths, slower)
    ort = None

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'probe_reference.json')


def to_u8(x):
    """[N,3,64,64] in [-1,1] -> float64 [N, 12288] in 0..255 after 8-bit rounding (what a PNG holds)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().double().flatten(1)


def psnr_matrix(a, b):
    """a [N,D], b [M,D] 8-bit values (float64) -> PSNR [N,M] in dB (capped at 99 for identical)."""
    mse = ((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.t()) / a.shape[1]
    return (10 * torch.log10(255.0 ** 2 / mse.clamp(min=1e-10))).clamp(max=99.0)


def sign_tests(arms, n_p, S):
    """Per-prompt exact sign tests (metrics.sign_test; mean hit over the noises per prompt):
    each mechanism's target vs non-target arm, and each arm vs the no-reference arm of its condition."""
    pp = {k: {r: (torch.tensor(a['ranks']) < r).float().view(S, n_p).mean(0) for r in (1, 5)} for k, a in arms.items()}

    def test(a, b):
        return {f'top{r}': dict(zip(('prompts_better', 'prompts_worse', 'p'), M.sign_test(pp[a][r], pp[b][r])))
                for r in (1, 5)}
    out = {}
    for k in arms:
        if k.endswith('| target') and k.replace('| target', '| nontarget') in arms:
            out[k.split(' |')[0] + ': target vs nontarget'] = test(k, k.replace('| target', '| nontarget'))
    for k, a in arms.items():
        base = f'none | {a["condition"]}'
        if a['mechanism'] != 'none' and base in arms:
            out[f'{k} vs {base}'] = test(k, base)
    return out


def table(res):
    print('\n| arm | reference | top-1 | top-5 | PSNR to ref (dB) | near-copy of ref | near-copy of any db image |')
    print('|---|---|---|---|---|---|---|')
    for k, a in res['arms'].items():
        print(f'| {k.split(" |")[0]} | {a["condition"]} | {a["top1"]:.3f} | {a["top5"]:.3f} | '
              f'{a["psnr_to_reference_mean"]:.1f} | {a["near_copy_of_reference"]:.3f} | {a["near_copy_of_any_db_image"]:.3f} |')


def merge(paths, out):
    """Merges the arms of several runs (same prompts, seeds and steps) into one JSON."""
    runs = [json.load(open(p_)) for p_ in paths]
    res = {k: v for k, v in runs[0].items() if k not in ('arms', 'sign_tests', 'command', 'seconds')}
    for r in runs[1:]:
        for k in ('prompts', 'seeds', 'steps', 'guidance'):
            if r[k] != res[k]:
                raise SystemExit(f'cannot merge: {k} differs ({r[k]} vs {res[k]})')
    res['commands'] = [r['command'] for r in runs]
    res['seconds_per_run'] = [r.get('seconds') for r in runs]
    res['arms'] = {k: v for r in runs for k, v in r['arms'].items()}
    res['sign_tests'] = sign_tests(res['arms'], res['prompts'], res['seeds'])
    with open(out, 'w') as f:
        json.dump(res, f, indent=1)
        f.write('\n')
    table(res)


def main():
    p = argparse.ArgumentParser()
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--seeds', type=int, default=2, help='initial noises per held-out prompt')
    p.add_argument('--steps', type=int, default=25)
    p.add_argument('--arms', default='none@target,refattn:1.0,init:0.7,init:0.5,refattn:0.6,none@nontarget,'
                                      'init:0.85,refattn:0.3',
                   help='mechanism[:value][@condition] in the order they run (no @: both conditions); the '
                        'order is a priority, since --max-minutes may cut the list')
    p.add_argument('--max-minutes', type=float, default=30.0, help='stop starting new arms after this')
    p.add_argument('--out', default=OUT)
    p.add_argument('--merge', nargs='+', help='merge these result files into --out and print the table')
    args = p.parse_args()
    if args.merge:
        return merge(args.merge, args.out)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    b = W.load_bundle()
    ref_unet = R.RefAttnUNet(b['unet']).eval()
    sf = b['scaling_factor']
    images, meta = C.load_data()
    with open(os.path.join(C.REPO_BUNDLE, 'split.json')) as f:
        held_sub = set(json.load(f)['heldout_subcategories'])
    px = C.to_pixels(images)
    base_idx = [i for i, r in enumerate(meta) if r['variant'] is None]
    names = [meta[i]['name'] for i in base_idx]
    if ort is not None:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = args.threads, 1
        sess = {k: ort.InferenceSession(os.path.join(C.BUNDLE, k, 'model.onnx'), so, providers=['CPUExecutionProvider'])
                for k in ('image_encoder', 'vae_encoder', 'vae_decoder')}
        run1 = lambda k: lambda x: torch.from_numpy(sess[k].run(None, {sess[k].get_inputs()[0].name: x.numpy()})[0])  # noqa: E731
        b['image'], b['vae_enc'], b['vae_dec'] = run1('image_encoder'), run1('vae_encoder'), run1('vae_decoder')
    with torch.no_grad():
        img_emb = M.batched(b['image'], px)
        name_states, name_emb = [], []
        for i in range(0, len(names), 256):
            hs, te = b['text'](b['tok'].batch(names[i:i + 256]))
            name_states.append(hs)
            name_emb.append(te)
        name_states, name_emb = torch.cat(name_states), torch.cat(name_emb)
        empty = b['text'](b['tok'].batch(['']))[0][0]
    base_of = torch.tensor([r['base'] for r in meta])
    held_bj = [j for j, i in enumerate(base_idx) if meta[i]['subcategory'] in held_sub]
    n_p, S = len(held_bj), args.seeds

    # the metrics' noises: seed-0 noise of every base name, then seed-1 generator draws
    noise_all = torch.randn(len(base_idx), 4, 16, 16, generator=torch.Generator().manual_seed(0))
    extra = torch.Generator().manual_seed(1)
    noise = torch.cat([noise_all[held_bj]] + [torch.randn(n_p, 4, 16, 16, generator=extra) for _ in range(S - 1)])
    rep = held_bj * S                                          # row r -> base name index
    targets = torch.tensor(rep)

    # database conditions
    bases = [meta[base_idx[j]]['base'] for j in held_bj]
    nb_full, top_full = M.retrieve(name_emb[held_bj], img_emb)
    nb_minus, top_minus = M.retrieve(name_emb[held_bj], img_emb, exclude_bases=bases, base_of=base_of)
    conds = {
        'target': {'nbr': nb_full, 'ref': [base_idx[j] for j in held_bj]},
        'nontarget': {'nbr': nb_minus, 'ref': top_minus[:, 0].tolist()},
    }
    top1_is_target = float(np.mean([int(base_of[top_full[r, 0]]) == bases[r] for r in range(n_p)]))
    with torch.no_grad():
        ref_lat_all = {k: b['vae_enc'](px[v['ref']]) * sf for k, v in conds.items()}
    db_u8 = to_u8(px)                                         # the images are 8-bit already
    ac = C.alphas_cumprod()
    ts, ratio = C.ddim_timesteps(args.steps)

    def context(cond):
        zeros = torch.zeros(n_p * S, C.K_NEIGHBOURS, C.WIDTH)
        st = name_states[rep]
        with torch.no_grad():
            toks = b['image_proj'](conds[cond]['nbr']).repeat(S, 1, 1)
        return torch.cat([torch.cat([empty.expand(n_p * S, -1, -1), zeros], 1),
                          torch.cat([st, zeros], 1), torch.cat([st, toks], 1)])

    if ort is not None:
        s_unet = ort.InferenceSession(os.path.join(C.BUNDLE, 'unet', 'model.onnx'), so, providers=['CPUExecutionProvider'])
        s_ref = ort.InferenceSession(os.path.join(C.BUNDLE, R.REL_PATH), so, providers=['CPUExecutionProvider'])

        def unet(x, t, ctx, r_t=None, w=None):
            feed = {'sample': x.numpy(), 'timestep': t.numpy(), 'encoder_hidden_states': ctx.numpy()}
            if r_t is None:
                return torch.from_numpy(s_unet.run(None, feed)[0])
            feed.update(ref_sample=r_t.numpy(), ref_weight=w.numpy())
            return torch.from_numpy(s_ref.run(None, feed)[0])
    else:
        def unet(x, t, ctx, r_t=None, w=None):
            return b['unet'](x, t, ctx) if r_t is None else ref_unet(x, t, ctx, r_t, w)
    res_backend = 'onnxruntime ' + ort.__version__ if ort is not None else 'torch ' + torch.__version__

    @torch.no_grad()
    def sample(cond, mech, val, bs=54):
        ctx = context(cond)
        n = n_p * S
        z_ref = ref_lat_all[cond].repeat(S, 1, 1, 1)
        ref_gen = torch.Generator().manual_seed(1234)          # same per-step reference noise in every arm
        start = 0
        x = noise.clone()
        if mech == 'init':
            k = int(round(args.steps * val))
            start = args.steps - k
            t_s = ts[start]
            x = ac[t_s].sqrt() * z_ref + (1 - ac[t_s]).sqrt() * noise
        for t in ts[start:]:
            xx = x.repeat(3, 1, 1, 1)
            tt = torch.tensor([t])
            if mech in ('refattn', 'refcond'):
                rn = torch.randn(z_ref.shape, generator=ref_gen)
                r_t = (ac[t].sqrt() * z_ref + (1 - ac[t]).sqrt() * rn).repeat(3, 1, 1, 1)
                wv = torch.full((3 * n,), float(val))
                if mech == 'refcond':          # the unconditional branch without the reference
                    wv[:n] = 0.0
                e = torch.cat([unet(xx[i:i + bs], tt, ctx[i:i + bs], r_t[i:i + bs], wv[i:i + bs])
                               for i in range(0, len(xx), bs)])
            else:
                e = torch.cat([unet(xx[i:i + bs], tt, ctx[i:i + bs]) for i in range(0, len(xx), bs)])
            e0, e1, e2 = e.split(n)
            eps = e0 + 3.0 * (e1 - e0) + 4.0 * (e2 - e1)
            prev = t - ratio
            a_t, a_p = ac[t], (ac[prev] if prev >= 0 else ac[0])
            x0 = (x - (1 - a_t).sqrt() * eps) / a_t.sqrt()
            x = a_p.sqrt() * x0 + (1 - a_p).sqrt() * eps
        return M.batched(b['vae_dec'], x / sf).clamp(-1, 1)

    res = {'what': 'probe of training-free reference mechanisms on the held-out prompts (see the script docstring)',
           'command': 'python3 tools/tiny_emoji/probe_reference.py ' + ' '.join(sys.argv[1:]),
           'backend': res_backend, 'threads': args.threads, 'prompts': n_p, 'seeds': S, 'steps': args.steps,
           'guidance': 'e(0,0) + 3 (e(T,0) - e(0,0)) + 4 (e(T,R) - e(T,0))',
           'top1_full_db_neighbour_is_target': top1_is_target, 'arms': {}, 'sign_tests': {}}
    arms = []
    for a in args.arms.split(','):
        a, _, cond = a.partition('@')
        mech, _, val = a.partition(':')
        arms += [(mech, float(val or 0), c) for c in ([cond] if cond else ['target', 'nontarget'])]
    for mech, val, cond in arms:
        if True:
            if time.time() - t0 > args.max_minutes * 60:
                res['stopped_early'] = f'--max-minutes {args.max_minutes} reached before {mech} {val} {cond}'
                break
            t1 = time.time()
            x = sample(cond, mech, val)
            with torch.no_grad():
                emb = M.batched(b['image'], x)
            rk = M.ranks(emb, name_emb, targets)
            out_u8 = to_u8(x)
            ref_rows = torch.tensor(conds[cond]['ref'] * S)
            p_ref = psnr_matrix(out_u8, db_u8[ref_rows]).diagonal()
            p_db = psnr_matrix(out_u8, db_u8).max(1).values
            cos_ref = (emb * img_emb[ref_rows]).sum(1)
            key = f'{mech}' + ('' if mech == 'none' else f' {val:g}') + f' | {cond}'
            res['arms'][key] = {
                'mechanism': mech, 'value': val, 'condition': cond,
                'top1': M.rate(rk, 1), 'top5': M.rate(rk, 5), 'n': len(rk),
                'psnr_to_reference_mean': round(float(p_ref.mean()), 2),
                'near_copy_of_reference': round(float((p_ref > 20).float().mean()), 4),
                'near_copy_of_any_db_image': round(float((p_db > 20).float().mean()), 4),
                'max_psnr_to_db_mean': round(float(p_db.mean()), 2),
                'cosine_to_reference_mean': round(float(cos_ref.mean()), 4),
                'seconds': round(time.time() - t1, 1),
                'ranks': rk.tolist()}
            print(key, {k: v for k, v in res['arms'][key].items() if k != 'ranks'}, flush=True)
            res['sign_tests'] = sign_tests(res['arms'], n_p, S)
            res['seconds'] = round(time.time() - t0, 1)
            with open(args.out, 'w') as f:
                json.dump(res, f, indent=1)
                f.write('\n')
    table(res)
    print(f'\nprobe took {time.time() - t0:.0f}s')


if __name__ == '__main__':
    main()
