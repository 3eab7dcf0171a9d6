"""Retrains the whole tiny-emoji suite.

  /usr/bin/python3 tools/tiny_emoji/train_all.py [--device cuda|cpu] [--seed 0]

Stages: data -> clip -> vae -> neighbours -> unet -> unet_finetune -> unet_finetune2 -> unet_selfview -> export ->
metrics. Each stage
writes its checkpoint to --work (default .carry/tiny-emoji/work) and is skipped when
that checkpoint exists (delete it, or pass --force STAGE, to redo it). Training stages
also write a resume file every --save-every seconds and continue from it when restarted.
Checkpoints are plain .npz of state_dict tensors (portable across torch versions).
"""
import argparse
import copy
import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common as C  # noqa: E402

STAGES = ['data', 'clip', 'vae', 'neighbours', 'unet', 'unet_finetune', 'unet_finetune2', 'unet_selfview', 'export',
          'metrics']


def log(args, msg):
    line = f'[{time.strftime("%H:%M:%S")}] {msg}'
    print(line, flush=True)
    with open(os.path.join(args.work, 'train_log.txt'), 'a') as f:
        f.write(line + '\n')


def copy_out(args, name):
    if args.copy_to:
        os.makedirs(args.copy_to, exist_ok=True)
        shutil.copy(os.path.join(args.work, name), os.path.join(args.copy_to, name))
        shutil.copy(os.path.join(args.work, 'train_log.txt'), os.path.join(args.copy_to, 'train_log.txt'))


def lr_at(step, total, base, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


class Loop:
    """Shared training loop: step budget (or seconds budget -> steps fixed after a timed warm-up),
    cosine LR, optional EMA, autocast bf16 on CUDA, periodic resume files."""

    def __init__(self, args, name, model, lr, steps, seconds=None, ema=None, wd=0.0):
        self.args, self.name, self.model = args, name, model
        self.dev = args.device
        self.lr, self.seconds = lr, seconds
        # a seconds budget fixes the step count after timing steps 10..40, so run at least that far
        self.steps = max(steps or 0, 41) if seconds else steps
        self.ema_decay = ema
        self.ema = copy.deepcopy(model).eval() if ema else None
        kw = {'fused': True} if self.dev == 'cuda' else {}
        self.opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd, betas=(0.9, 0.99), **kw)
        self.step = 0
        self.resume_path = os.path.join(args.work, f'{name}_resume.pt')
        if os.path.exists(self.resume_path):
            st = torch.load(self.resume_path, map_location=self.dev)
            model.load_state_dict(st['model'])
            self.opt.load_state_dict(st['opt'])
            if self.ema is not None:
                self.ema.load_state_dict(st['ema'])
            self.step, self.steps = st['step'], st['steps']
            torch.set_rng_state(st['rng'])
            log(args, f'{name}: resumed at step {self.step}/{self.steps}')

    def save_resume(self):
        st = {'model': self.model.state_dict(), 'opt': self.opt.state_dict(), 'step': self.step,
              'steps': self.steps, 'rng': torch.get_rng_state()}
        if self.ema is not None:
            st['ema'] = self.ema.state_dict()
        torch.save(st, self.resume_path + '.tmp')
        os.replace(self.resume_path + '.tmp', self.resume_path)

    def run(self, loss_fn, on_save=None):
        args = self.args
        t0 = last_save = time.time()
        start = self.step
        calib = (start + 10, start + 40) if self.seconds and start == 0 else None
        t_cal = None
        ema_params = list(self.ema.parameters()) if self.ema is not None else None
        params = list(self.model.parameters())
        while self.step < self.steps:
            warm = max(1, min(500, self.steps // 20))
            for g in self.opt.param_groups:
                g['lr'] = lr_at(self.step, self.steps, self.lr, warm)
            if self.dev == 'cuda':
                with torch.autocast('cuda', dtype=torch.bfloat16):
                    loss = loss_fn(self.step)
            else:
                loss = loss_fn(self.step)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            self.opt.step()
            if self.ema is not None:
                d = min(self.ema_decay, (1 + self.step) / (10 + self.step))
                with torch.no_grad():
                    torch._foreach_mul_(ema_params, d)
                    torch._foreach_add_(ema_params, params, alpha=1 - d)
            self.step += 1
            if calib and self.step in calib:
                # steps for a seconds budget: timed over steps 10..40 (after warm-up)
                if self.dev == 'cuda':
                    torch.cuda.synchronize()
                if self.step == calib[0]:
                    t_cal = time.time()
                    continue
                per = (time.time() - t_cal) / (calib[1] - calib[0])
                self.steps = max(self.step + 1, int((self.seconds - (t_cal - t0)) / per) + calib[0])
                log(args, f'{self.name}: {per * 1000:.1f} ms/step -> {self.steps} steps in {self.seconds}s')
            if self.step % 500 == 0 or self.step == self.steps:
                log(args, f'{self.name} step {self.step}/{self.steps} loss {float(loss):.4f} '
                          f'({time.time() - t0:.0f}s)')
            if time.time() - last_save > args.save_every and self.step < self.steps:
                self.save_resume()
                if on_save:
                    on_save()
                last_save = time.time()
        log(args, f'{self.name}: done {self.step} steps in {time.time() - t0:.0f}s')
        return self.ema if self.ema is not None else self.model


# ---------------------------------------------------------------- stages
def stage_data(args):
    subprocess.check_call([sys.executable, os.path.join(os.path.dirname(__file__), 'prep_data.py')])


def random_affine(x, scale=(0.85, 1.05), shift=0.08):
    """Random zoom/shift with white fill, for pixels in [-1,1]."""
    b = x.shape[0]
    s = torch.empty(b, device=x.device).uniform_(*scale)
    tx = torch.empty(b, device=x.device).uniform_(-shift, shift)
    ty = torch.empty(b, device=x.device).uniform_(-shift, shift)
    theta = torch.zeros(b, 2, 3, device=x.device)
    theta[:, 0, 0] = 1 / s
    theta[:, 1, 1] = 1 / s
    theta[:, 0, 2] = tx
    theta[:, 1, 2] = ty
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - 1, grid, mode='bilinear', padding_mode='zeros', align_corners=False) + 1


def caption_table(meta, tok, index):
    """All (caption ids, image index) pairs for the given image indices."""
    ids, owner = [], []
    for i in index:
        for c in meta[i]['captions']:
            ids.append(tok(c))
            owner.append(i)
    return torch.tensor(ids, dtype=torch.long), torch.tensor(owner, dtype=torch.long)


def random_captions(owner_start, owner_count, idx, gen):
    r = torch.rand(len(idx), generator=gen, device=idx.device)
    return owner_start[idx] + (r * owner_count[idx]).long().clamp(max=owner_count[idx] - 1)


def caption_index(meta, tok, dev):
    ids, owner = caption_table(meta, tok, range(len(meta)))
    counts = torch.bincount(owner, minlength=len(meta))
    starts = torch.cumsum(counts, 0) - counts
    return ids.to(dev), starts.to(dev), counts.to(dev)


def stage_clip(args, images, meta, tok):
    dev = args.device
    torch.manual_seed(args.seed)
    gen = torch.Generator(device=dev).manual_seed(args.seed)
    model = C.CLIP(len(tok.vocab), tok.pad_id).to(dev)
    log(args, f'clip: text {C.n_params(model.text) / 1e6:.2f}M, image {C.n_params(model.image) / 1e6:.2f}M params')
    px = C.to_pixels(images).to(dev)
    cap_ids, cap_start, cap_count = caption_index(meta, tok, dev)
    n, b = len(meta), args.clip_batch

    def loss_fn(step):
        idx = torch.randint(0, n, (b,), generator=gen, device=dev)
        ids = cap_ids[random_captions(cap_start, cap_count, idx, gen)]
        x = random_affine(px[idx])
        _, te = model.text(ids)
        ie = model.image(x)
        logits = model.logit_scale.exp().clamp(max=100) * ie.float() @ te.float().t()
        # duplicates (same image drawn twice) share targets: use soft targets over equal indices
        same = (idx[:, None] == idx[None, :]).float()
        tgt = same / same.sum(1, keepdim=True)
        return 0.5 * (torch.sum(-tgt * F.log_softmax(logits, 1), 1).mean()
                      + torch.sum(-tgt * F.log_softmax(logits.t(), 1), 1).mean())

    loop = Loop(args, 'clip', model, args.clip_lr, args.clip_steps, args.clip_seconds, wd=0.05)
    model = loop.run(loss_fn)
    C.save_npz(os.path.join(args.work, 'clip.npz'), model)
    copy_out(args, 'clip.npz')


def load_clip(args, tok):
    model = C.CLIP(len(tok.vocab), tok.pad_id)
    C.load_npz(os.path.join(args.work, 'clip.npz'), model)
    return model.to(args.device).eval()


def stage_vae(args, images, meta):
    dev = args.device
    torch.manual_seed(args.seed + 1)
    gen = torch.Generator(device=dev).manual_seed(args.seed + 1)
    train = [i for i, r in enumerate(meta) if not r['heldout']]
    px = C.to_pixels(images[train]).to(dev)
    vae = C.VAE().to(dev)
    log(args, f'vae: encoder {C.n_params(vae.encoder) / 1e6:.2f}M, decoder {C.n_params(vae.decoder) / 1e6:.2f}M')
    n, b = len(train), args.vae_batch

    def loss_fn(step):
        idx = torch.randint(0, n, (b,), generator=gen, device=dev)
        x = px[idx]
        mean, logvar = vae.encoder(x)
        logvar = logvar.float().clamp(-30, 20)
        z = mean.float() + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=gen, device=dev)
        y = vae.decoder(z).float()
        rec = F.mse_loss(y, x) + 0.1 * F.l1_loss(y, x)
        kl = 0.5 * torch.mean(mean.float() ** 2 + logvar.exp() - 1 - logvar)
        return rec + args.vae_kl * kl

    loop = Loop(args, 'vae', vae, args.vae_lr, args.vae_steps, args.vae_seconds, ema=0.999)
    vae = loop.run(loss_fn).eval()
    with torch.no_grad():
        lat = torch.cat([vae.encoder(px[i:i + 256])[0] for i in range(0, n, 256)])
    sf = float(1.0 / lat.float().std())
    log(args, f'vae: latent mean {float(lat.mean()):.3f} std {float(lat.std()):.3f} -> scaling_factor {sf:.5f}')
    C.save_npz(os.path.join(args.work, 'vae.npz'), vae, extra={'scaling_factor': np.array(sf, np.float32)})
    copy_out(args, 'vae.npz')


def load_vae(args):
    vae = C.VAE()
    sd = C.load_npz(os.path.join(args.work, 'vae.npz'))
    sf = float(sd.pop('scaling_factor'))
    vae.load_state_dict(sd)
    return vae.to(args.device).eval(), sf


@torch.no_grad()
def image_embeds(clip, images, dev, bs=256):
    px = C.to_pixels(images)
    return torch.cat([clip.image(px[i:i + bs].to(dev)).float().cpu() for i in range(0, len(px), bs)])


def stage_neighbours(args, images, meta, tok):
    clip = load_clip(args, tok)
    emb = image_embeds(clip, images, args.device)
    train = torch.tensor([i for i, r in enumerate(meta) if not r['heldout']])
    sims = emb[train] @ emb[train].t()
    sims.fill_diagonal_(-2.0)                               # itself excluded
    nn_local = sims.topk(8, dim=1).indices                  # [Ntr,8] indices into train
    nbrs = train[nn_local]                                  # global indices
    np.savez(os.path.join(args.work, 'neighbours.npz'), train=train.numpy(), neighbours=nbrs.numpy(),
             image_embeds=emb.numpy())
    same_base = np.mean([meta[int(nbrs[j, 0])]['base'] == meta[int(train[j])]['base'] for j in range(len(train))])
    log(args, f'neighbours: {len(train)} training images, top-1 neighbour is a skin-tone sibling for '
              f'{100 * same_base:.0f}%')


@torch.no_grad()
def self_view_embeds(clip, images, dev, views, seed, bs=256):
    """Image embeddings of `views` randomly zoomed/shifted copies of every image: [N, views, E].
    A view is a different picture of the same emoji, so it can stand in a neighbour slot without
    the UNet seeing its own target pixels."""
    torch.manual_seed(seed)
    px = C.to_pixels(images)
    out = []
    for _ in range(views):
        out.append(torch.cat([clip.image(random_affine(px[i:i + bs].to(dev))).float().cpu()
                              for i in range(0, len(px), bs)]))
    return torch.stack(out, 1)


def stage_unet(args, images, meta, tok, name='unet', init=None, steps=None, seconds=None, lr=None,
               out='unet_stage1.npz', batch=None, p_self=0.0, p_text=None):
    dev = args.device
    torch.manual_seed(args.seed + 2)
    gen = torch.Generator(device=dev).manual_seed(args.seed + 2)
    clip = load_clip(args, tok)
    vae, sf = load_vae(args)
    z = np.load(os.path.join(args.work, 'neighbours.npz'))
    train = torch.from_numpy(z['train']).to(dev)
    nbrs = torch.from_numpy(z['neighbours'][:, :C.K_NEIGHBOURS]).to(dev)
    emb = torch.from_numpy(z['image_embeds']).to(dev)
    with torch.no_grad():
        px = C.to_pixels(images[z['train']]).to(dev)
        lat = torch.cat([vae.encoder(px[i:i + 256])[0] for i in range(0, len(px), 256)]) * sf
        cap_ids, owner = caption_table(meta, tok, range(len(meta)))
        states = torch.cat([clip.text(cap_ids[i:i + 512].to(dev))[0] for i in range(0, len(cap_ids), 512)])
        empty = clip.text(tok.batch(['']).to(dev))[0][0]
        views = self_view_embeds(clip, images[z['train']], dev, args.self_views, args.seed + 3).to(dev) \
            if p_self > 0 else None
    p_text = args.p_text if p_text is None else p_text
    # caption rows per training image (positions in `train`)
    pos = {int(g): j for j, g in enumerate(z['train'])}
    rows = [[] for _ in range(len(train))]
    for r, o in enumerate(owner.tolist()):
        if o in pos:
            rows[pos[o]].append(r)
    cap_start = torch.tensor([r[0] for r in rows], device=dev)
    cap_count = torch.tensor([len(r) for r in rows], device=dev)
    del clip, vae, px
    unet, proj = C.UNet().to(dev), C.ImageProj().to(dev)
    both = torch.nn.ModuleDict({'unet': unet, 'image_proj': proj})
    if init:
        C.load_npz(init, both)
        log(args, f'{name}: initialised from {init} (model and EMA)')
    log(args, f'unet: {C.n_params(unet) / 1e6:.2f}M params, image_proj {C.n_params(proj) / 1e3:.1f}k; '
              f'{len(train)} latents, scaling {sf:.4f}; p_drop text {p_text} neighbours {args.p_nbr}; '
              f'p_self_view {p_self}')
    ac = C.alphas_cumprod().to(dev)
    n, b = len(train), batch or args.unet_batch

    def loss_fn(step):
        idx = torch.randint(0, n, (b,), generator=gen, device=dev)
        x0 = lat[idx]
        text = states[random_captions(cap_start, cap_count, idx, gen)]
        drop_t = torch.rand(b, generator=gen, device=dev) < p_text
        text = torch.where(drop_t[:, None, None], empty.expand_as(text), text)
        e = emb[nbrs[idx]]                                                  # [b,k,E], itself excluded
        if views is not None:
            # With probability p_self one random slot holds a zoomed/shifted view of the image itself,
            # so the UNet learns to carry identity from a neighbour into the sample: the thing
            # retrieval must do for concepts it never trained on (see the model card).
            use = torch.rand(b, generator=gen, device=dev) < p_self
            slot = torch.randint(0, e.shape[1], (b,), generator=gen, device=dev)
            view = views[idx, torch.randint(0, views.shape[1], (b,), generator=gen, device=dev)]
            rows = torch.arange(b, device=dev)[use]
            e[rows, slot[use]] = view[use]                          # e is a fresh gather: safe to write
        img = proj(e)
        drop_n = torch.rand(b, generator=gen, device=dev) < args.p_nbr
        img = img * (~drop_n).float()[:, None, None]
        ctx = torch.cat([text, img], 1)
        t = torch.randint(0, 1000, (b,), generator=gen, device=dev)
        noise = torch.randn(x0.shape, generator=gen, device=dev)
        a = ac[t][:, None, None, None]
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        return F.mse_loss(unet(xt, t, ctx).float(), noise)

    def save():
        C.save_npz(os.path.join(args.work, out), loop.ema if loop.ema is not None else both)
        copy_out(args, out)

    loop = Loop(args, name, both, lr, steps, seconds, ema=args.ema)
    loop.run(loss_fn, on_save=save)
    save()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--work', default=os.path.join(C.DATA_DIR, 'work'))
    p.add_argument('--data', default=os.path.join(C.DATA_DIR, 'data.npz'))
    p.add_argument('--stages', default=','.join(STAGES))
    p.add_argument('--force', default='', help='comma-separated stages to redo even if their checkpoint exists')
    p.add_argument('--copy-to', default=None, help='also copy each finished checkpoint here (e.g. $OUT)')
    p.add_argument('--save-every', type=float, default=300.0, help='seconds between resume files')
    p.add_argument('--threads', type=int, default=0)
    # Defaults = the published run (H100, see models/tiny-emoji/README.md).
    p.add_argument('--clip-steps', type=int, default=3935)
    p.add_argument('--clip-seconds', type=float, default=None)
    p.add_argument('--clip-batch', type=int, default=512)
    p.add_argument('--clip-lr', type=float, default=1e-3)
    p.add_argument('--vae-steps', type=int, default=4482)
    p.add_argument('--vae-seconds', type=float, default=None)
    p.add_argument('--vae-batch', type=int, default=128)
    p.add_argument('--vae-lr', type=float, default=6e-4)
    p.add_argument('--vae-kl', type=float, default=1e-6)
    p.add_argument('--unet-steps', type=int, default=5679)
    p.add_argument('--unet-seconds', type=float, default=None)
    p.add_argument('--unet-batch', type=int, default=256)
    p.add_argument('--unet-lr', type=float, default=4e-4)
    p.add_argument('--unet-init', default=None, help='start stage unet from an earlier .npz (EMA weights)')
    p.add_argument('--finetune-steps', type=int, default=3078,
                   help='stage unet_finetune: more steps from the stage-1 EMA weights, lower LR (0 = copy)')
    p.add_argument('--finetune-seconds', type=float, default=None)
    p.add_argument('--finetune-lr', type=float, default=2e-4)
    p.add_argument('--finetune-init', default=None,
                   help='start stage unet_finetune from this .npz instead of the stage-1 output')
    p.add_argument('--finetune2-steps', type=int, default=8749,
                   help='stage unet_finetune2: continues from unet_finetune at a larger batch (0 = skip)')
    p.add_argument('--finetune2-seconds', type=float, default=None)
    p.add_argument('--finetune2-batch', type=int, default=1024)
    p.add_argument('--finetune2-lr', type=float, default=2e-4)
    p.add_argument('--selfview-steps', type=int, default=0,
                   help='steps of stage unet_selfview; 0 (the published bundle) copies unet_finetune2. '
                        'The experiment in the model card ran 1,235 x 128 (78 min on 2 CPU cores)')
    p.add_argument('--selfview-seconds', type=float, default=None)
    p.add_argument('--selfview-batch', type=int, default=128)
    p.add_argument('--selfview-lr', type=float, default=2e-4)
    p.add_argument('--p-self', type=float, default=0.5,
                   help='unet_selfview: chance that one neighbour slot holds a view of the image itself')
    p.add_argument('--self-views', type=int, default=4, help='augmented views per image for --p-self')
    p.add_argument('--selfview-p-text', type=float, default=0.35,
                   help='unet_selfview: text dropout (higher than --p-text so identity must come from neighbours)')
    p.add_argument('--ema', type=float, default=0.9995)
    p.add_argument('--p-text', type=float, default=0.2)
    p.add_argument('--p-nbr', type=float, default=0.2)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    os.makedirs(args.work, exist_ok=True)
    if args.device == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    stages = args.stages.split(',')
    force = set(filter(None, args.force.split(',')))
    outputs = {'clip': 'clip.npz', 'vae': 'vae.npz', 'neighbours': 'neighbours.npz', 'unet': 'unet_stage1.npz',
               'unet_finetune': 'unet_ft1.npz', 'unet_finetune2': 'unet_ft2.npz', 'unet_selfview': 'unet.npz'}
    log(args, f'train_all: device {args.device}, seed {args.seed}, torch {torch.__version__}, stages {stages}')
    t_all = time.time()
    if 'data' in stages and (not os.path.exists(args.data) or 'data' in force):
        stage_data(args)
    images, meta = C.load_data(args.data)
    tok = C.WordTokenizer.load()
    for st in ['clip', 'vae', 'neighbours', 'unet', 'unet_finetune', 'unet_finetune2', 'unet_selfview']:
        if st not in stages:
            continue
        if os.path.exists(os.path.join(args.work, outputs[st])) and st not in force:
            log(args, f'{st}: checkpoint exists, skipped')
            continue
        t = time.time()
        if st == 'clip':
            stage_clip(args, images, meta, tok)
        elif st == 'vae':
            stage_vae(args, images, meta)
        elif st == 'neighbours':
            stage_neighbours(args, images, meta, tok)
        elif st == 'unet':
            stage_unet(args, images, meta, tok, 'unet', args.unet_init, args.unet_steps, args.unet_seconds,
                       args.unet_lr, 'unet_stage1.npz')
        elif st == 'unet_finetune':
            if args.finetune_steps > 0 or args.finetune_seconds:
                stage_unet(args, images, meta, tok, 'unet_finetune', args.finetune_init or os.path.join(args.work, 'unet_stage1.npz'),
                           args.finetune_steps, args.finetune_seconds, args.finetune_lr, 'unet_ft1.npz')
            else:
                shutil.copy(os.path.join(args.work, 'unet_stage1.npz'), os.path.join(args.work, 'unet_ft1.npz'))
        elif st == 'unet_finetune2':
            if args.finetune2_steps > 0 or args.finetune2_seconds:
                stage_unet(args, images, meta, tok, 'unet_finetune2', os.path.join(args.work, 'unet_ft1.npz'),
                           args.finetune2_steps, args.finetune2_seconds, args.finetune2_lr, 'unet_ft2.npz',
                           args.finetune2_batch)
            else:
                shutil.copy(os.path.join(args.work, 'unet_ft1.npz'), os.path.join(args.work, 'unet_ft2.npz'))
        elif args.selfview_steps > 0 or args.selfview_seconds:
            stage_unet(args, images, meta, tok, 'unet_selfview', os.path.join(args.work, 'unet_ft2.npz'),
                       args.selfview_steps, args.selfview_seconds, args.selfview_lr, 'unet.npz', args.selfview_batch,
                       p_self=args.p_self, p_text=args.selfview_p_text)
        else:
            shutil.copy(os.path.join(args.work, 'unet_ft2.npz'), os.path.join(args.work, 'unet.npz'))
        log(args, f'{st}: stage took {time.time() - t:.0f}s')
        resume = os.path.join(args.work, f'{st}_resume.pt')
        if os.path.exists(resume):
            os.remove(resume)
    here = os.path.dirname(os.path.abspath(__file__))
    if 'export' in stages:
        subprocess.check_call([sys.executable, os.path.join(here, 'export_onnx.py'), '--work', args.work])
    if 'metrics' in stages:
        subprocess.check_call([sys.executable, os.path.join(here, 'metrics.py'), '--seed', str(args.seed)])
    log(args, f'train_all: finished in {time.time() - t_all:.0f}s')


if __name__ == '__main__':
    main()
