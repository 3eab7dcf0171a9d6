"""The diffusers schedulers the fixtures use, from a scheduler_config.json dict:
PNDMScheduler (skip_prk_steps: PLMS), DDIMScheduler (eta 0), EulerDiscreteScheduler
(linear interpolation, no karras) and LCMScheduler. float32 tensors where
diffusers keeps them (alphas_cumprod, sigmas), numpy for the timestep arithmetic.

Written from diffusers' published source (schedulers/scheduling_pndm.py,
scheduling_ddim.py, scheduling_euler_discrete.py, scheduling_lcm.py), not copied.
Unmodelled options (thresholding, clip_sample, karras/exponential sigmas,
rescale_betas_zero_snr, s_churn) raise instead of being ignored.
"""
import numpy as np
import torch


def _refuse(cfg, key, ok):
    if key in cfg and cfg[key] not in ok:
        raise ValueError(f'{key}={cfg[key]!r} is not modelled by the oracle')


class Base:
    def __init__(self, cfg):
        self.cfg = cfg
        T = cfg.get('num_train_timesteps', 1000)
        self.T = T
        kind = cfg.get('beta_schedule', 'linear')
        b0, b1 = cfg.get('beta_start', 0.0001), cfg.get('beta_end', 0.02)
        if cfg.get('trained_betas'):
            betas = torch.tensor(cfg['trained_betas'], dtype=torch.float32)
        elif kind == 'scaled_linear':
            betas = torch.linspace(b0 ** 0.5, b1 ** 0.5, T, dtype=torch.float32) ** 2
        elif kind == 'linear':
            betas = torch.linspace(b0, b1, T, dtype=torch.float32)
        else:
            raise ValueError(f'beta_schedule {kind!r} is not modelled')
        _refuse(cfg, 'rescale_betas_zero_snr', (False, None))
        _refuse(cfg, 'thresholding', (False, None))
        _refuse(cfg, 'clip_sample', (False, None))
        self.alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        self.final_alpha_cumprod = torch.tensor(1.0) if cfg.get('set_alpha_to_one', True) else self.alphas_cumprod[0]
        self.prediction = cfg.get('prediction_type', 'epsilon')
        self.init_noise_sigma = 1.0

    def scale_model_input(self, sample, i):
        return sample

    def add_noise(self, x0, noise, i):
        """Noise a clean latent to schedule index i (image-to-image), DDPM-style: sqrt(a)·x0 + sqrt(1 − a)·noise."""
        a = self.alphas_cumprod[int(self.timesteps[i])]
        return a ** 0.5 * x0 + (1 - a) ** 0.5 * noise

    def _spaced(self, n, dtype=np.int64):
        spacing = self.cfg.get('timestep_spacing', 'leading')
        off = self.cfg.get('steps_offset', 0)
        if spacing == 'leading':
            ratio = self.T // n
            ts = (np.arange(0, n) * ratio).round()[::-1].copy().astype(dtype) + off
        elif spacing == 'trailing':
            ratio = self.T / n
            ts = np.round(np.arange(self.T, 0, -ratio)).astype(dtype) - 1
        elif spacing == 'linspace':
            ts = np.linspace(0, self.T - 1, n)[::-1].copy().astype(dtype)
        else:
            raise ValueError(f'timestep_spacing {spacing!r}')
        return ts


class PNDM(Base):
    """skip_prk_steps: PLMS from the start; n steps make n + 1 model calls (the second timestep repeats)."""

    def set_timesteps(self, n):
        if not self.cfg.get('skip_prk_steps', False):
            raise ValueError('PNDM without skip_prk_steps is not modelled')
        ts = self._spaced(n)[::-1]  # ascending, as diffusers builds _timesteps
        self.n = n
        self.ratio = self.T // n
        self.timesteps = np.concatenate([ts[:-1], ts[-2:-1], ts[-1:]])[::-1].copy()
        self.ets, self.counter, self.cur_sample = [], 0, None
        return self.timesteps

    def _prev(self, sample, t, prev_t, eps):
        a = self.alphas_cumprod[t]
        ap = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        b, bp = 1 - a, 1 - ap
        coeff = (ap / a) ** 0.5
        denom = a * bp ** 0.5 + (a * b * ap) ** 0.5
        return coeff * sample - (ap - a) * eps / denom

    def step(self, out, i, sample, noise=None):
        t = int(self.timesteps[i])
        if self.prediction == 'v_prediction':
            a = self.alphas_cumprod[t]
            out = a ** 0.5 * out + (1 - a) ** 0.5 * sample
        elif self.prediction != 'epsilon':
            raise ValueError(self.prediction)
        prev_t = t - self.ratio
        if self.counter != 1:
            self.ets.append(out)
        else:
            prev_t, t = t, t + self.ratio
        e = self.ets
        if len(e) == 1 and self.counter == 0:
            self.cur_sample = sample
        elif len(e) == 1 and self.counter == 1:
            out = (out + e[-1]) / 2
            sample, self.cur_sample = self.cur_sample, None
        elif len(e) == 2:
            out = (3 * e[-1] - e[-2]) / 2
        elif len(e) == 3:
            out = (23 * e[-1] - 16 * e[-2] + 5 * e[-3]) / 12
        else:
            out = (55 * e[-1] - 59 * e[-2] + 37 * e[-3] - 9 * e[-4]) / 24
        self.counter += 1
        return self._prev(sample, t, prev_t, out)


class DDIM(Base):
    def set_timesteps(self, n):
        self.n = n
        self.timesteps = self._spaced(n)
        return self.timesteps

    def step(self, out, i, sample, noise=None):
        t = int(self.timesteps[i])
        prev_t = t - self.T // self.n
        a = self.alphas_cumprod[t]
        ap = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        b = 1 - a
        if self.prediction == 'epsilon':
            x0 = (sample - b ** 0.5 * out) / a ** 0.5
            eps = out
        elif self.prediction == 'v_prediction':
            x0 = a ** 0.5 * sample - b ** 0.5 * out
            eps = a ** 0.5 * out + b ** 0.5 * sample
        else:
            raise ValueError(self.prediction)
        return ap ** 0.5 * x0 + (1 - ap) ** 0.5 * eps  # eta = 0


class EulerDiscrete(Base):
    def __init__(self, cfg):
        super().__init__(cfg)
        _refuse(cfg, 'interpolation_type', ('linear',))
        for k in ('use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas'):
            _refuse(cfg, k, (False, None))
        _refuse(cfg, 'timestep_type', ('discrete',))
        _refuse(cfg, 'final_sigmas_type', ('zero',))

    def set_timesteps(self, n):
        if self.cfg.get('timestep_spacing', 'linspace') == 'linspace':
            ts = np.linspace(0, self.T - 1, n, dtype=np.float32)[::-1].copy()
        else:
            ts = self._spaced(n, np.float32)
        full = np.array(((1 - self.alphas_cumprod) / self.alphas_cumprod) ** 0.5)
        sig = np.interp(ts, np.arange(0, len(full)), full)
        self.sigmas = torch.from_numpy(np.concatenate([sig, [0.0]]).astype(np.float32))
        self.timesteps = ts.astype(np.float32)
        mx = self.sigmas.max()
        spacing = self.cfg.get('timestep_spacing', 'linspace')
        self.init_noise_sigma = float(mx if spacing in ('linspace', 'trailing') else (mx ** 2 + 1) ** 0.5)
        return self.timesteps

    def scale_model_input(self, sample, i):
        s = self.sigmas[i]
        return sample / ((s ** 2 + 1) ** 0.5)

    def add_noise(self, x0, noise, i):
        """Sigma schedulers noise at the begin index: x0 + sigma·noise."""
        return x0 + self.sigmas[i] * noise

    def step(self, out, i, sample, noise=None):
        s = self.sigmas[i]
        if self.prediction == 'epsilon':
            x0 = sample - s * out
        elif self.prediction == 'v_prediction':
            x0 = out * (-s / (s ** 2 + 1) ** 0.5) + (sample / (s ** 2 + 1))
        else:
            raise ValueError(self.prediction)
        d = (sample - x0) / s
        return sample + d * (self.sigmas[i + 1] - s)


class EulerAncestral(EulerDiscrete):
    """EulerAncestralDiscreteScheduler: an Euler step to sigma_down, then noise of sigma_up."""

    def step(self, out, i, sample, noise=None):
        s, s_to = self.sigmas[i], self.sigmas[i + 1]
        if self.prediction == 'epsilon':
            x0 = sample - s * out
        elif self.prediction == 'v_prediction':
            x0 = out * (-s / (s ** 2 + 1) ** 0.5) + (sample / (s ** 2 + 1))
        else:
            raise ValueError(self.prediction)
        up = (s_to ** 2 * (s ** 2 - s_to ** 2) / s ** 2) ** 0.5
        down = (s_to ** 2 - up ** 2) ** 0.5
        prev = sample + (sample - x0) / s * (down - s)
        return prev + noise * up


class LCM(Base):
    def set_timesteps(self, n, strength=1.0):
        """strength < 1 (LCM's image-to-image) shortens the distillation schedule itself, not the step list."""
        orig = self.cfg.get('original_inference_steps', 50)
        k = self.T // orig
        origin = (np.asarray(list(range(1, int(orig * strength) + 1))) * k - 1)[::-1].copy()
        if n > orig:
            raise ValueError('num_inference_steps > original_inference_steps')
        idx = np.floor(np.linspace(0, len(origin), num=n, endpoint=False)).astype(np.int64)
        self.timesteps = origin[idx]
        self.n = n
        return self.timesteps

    def step(self, out, i, sample, noise=None):
        t = int(self.timesteps[i])
        prev_t = int(self.timesteps[i + 1]) if i + 1 < len(self.timesteps) else t
        a = self.alphas_cumprod[t]
        ap = self.alphas_cumprod[prev_t] if prev_t >= 0 else self.final_alpha_cumprod
        st = torch.tensor(t) * self.cfg.get('timestep_scaling', 10.0)
        c_skip = 0.25 / (st ** 2 + 0.25)
        c_out = st / (st ** 2 + 0.25) ** 0.5
        if self.prediction == 'epsilon':
            x0 = (sample - (1 - a).sqrt() * out) / a.sqrt()
        elif self.prediction == 'v_prediction':
            x0 = a.sqrt() * sample - (1 - a).sqrt() * out
        else:
            raise ValueError(self.prediction)
        denoised = c_out * x0 + c_skip * sample
        if i != self.n - 1:
            return ap.sqrt() * denoised + (1 - ap).sqrt() * noise
        return denoised


CLASSES = {'PNDMScheduler': PNDM, 'DDIMScheduler': DDIM, 'EulerDiscreteScheduler': EulerDiscrete,
           'EulerAncestralDiscreteScheduler': EulerAncestral, 'LCMScheduler': LCM}


def make(cfg):
    cls = CLASSES.get(cfg.get('_class_name'))
    if cls is None:
        raise ValueError(f"scheduler {cfg.get('_class_name')!r} is not modelled")
    return cls(cfg)


def guidance_scale_embedding(w, dim):
    """LatentConsistencyModelPipeline.get_guidance_scale_embedding."""
    w = w * 1000.0
    half = dim // 2
    f = torch.exp(torch.arange(half, dtype=torch.float32) * -(torch.log(torch.tensor(10000.0)) / (half - 1)))
    e = w.float()[:, None] * f[None, :]
    e = torch.cat([torch.sin(e), torch.cos(e)], dim=1)
    if dim % 2 == 1:
        e = torch.nn.functional.pad(e, (0, 1))
    return e
