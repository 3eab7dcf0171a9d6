"""AutoencoderKL with diffusers' parameter names and block structure
(encoder/decoder with DownEncoderBlock2D/UpDecoderBlock2D, UNetMidBlock2D with
one group-normed single-head attention, quant_conv/post_quant_conv), built from
a diffusers vae/config.json dict.

Written from diffusers' published source (models/autoencoders/autoencoder_kl.py,
models/autoencoders/vae.py, unet_2d_blocks.py), not copied.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from attention import Attention
from unet import Downsample2D, ResnetBlock2D, Upsample2D

EPS = 1e-6


class EncBlock(nn.Module):
    def __init__(self, cin, cout, layers, add_downsample, groups):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, None, groups, EPS) for i in range(layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(cout, padding=0)]) if add_downsample else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        return self.downsamplers[0](x) if self.downsamplers is not None else x


class DecBlock(nn.Module):
    def __init__(self, cin, cout, layers, add_upsample, groups):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(cin if i == 0 else cout, cout, None, groups, EPS) for i in range(layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(cout)]) if add_upsample else None

    def forward(self, x):
        for r in self.resnets:
            x = r(x)
        return self.upsamplers[0](x) if self.upsamplers is not None else x


class VaeMid(nn.Module):
    def __init__(self, ch, groups):
        super().__init__()
        # attention_head_dim = channels: one head; the VAE's attention has biases and a residual.
        self.attentions = nn.ModuleList([Attention(ch, None, heads=1, dim_head=ch, bias=True, norm_num_groups=groups,
                                                   eps=EPS, residual_connection=True, upcast_softmax=True)])
        self.resnets = nn.ModuleList([ResnetBlock2D(ch, ch, None, groups, EPS), ResnetBlock2D(ch, ch, None, groups, EPS)])

    def forward(self, x):
        x = self.resnets[0](x)
        x = self.attentions[0](x)
        return self.resnets[1](x)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        boc, groups, lpb = c['block_out_channels'], c.get('norm_num_groups', 32), c.get('layers_per_block', 2)
        self.conv_in = nn.Conv2d(c.get('in_channels', 3), boc[0], 3, padding=1)
        self.down_blocks = nn.ModuleList()
        out = boc[0]
        for i in range(len(boc)):
            cin, out = out, boc[i]
            self.down_blocks.append(EncBlock(cin, out, lpb, i < len(boc) - 1, groups))
        self.mid_block = VaeMid(boc[-1], groups)
        self.conv_norm_out = nn.GroupNorm(groups, boc[-1], eps=EPS)
        self.conv_out = nn.Conv2d(boc[-1], 2 * c.get('latent_channels', 4), 3, padding=1)

    def forward(self, x):
        x = self.conv_in(x)
        for b in self.down_blocks:
            x = b(x)
        x = self.mid_block(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        boc, groups, lpb = c['block_out_channels'], c.get('norm_num_groups', 32), c.get('layers_per_block', 2)
        rboc = list(reversed(boc))
        self.conv_in = nn.Conv2d(c.get('latent_channels', 4), boc[-1], 3, padding=1)
        self.mid_block = VaeMid(boc[-1], groups)
        self.up_blocks = nn.ModuleList()
        out = rboc[0]
        for i in range(len(boc)):
            prev, out = out, rboc[i]
            self.up_blocks.append(DecBlock(prev, out, lpb + 1, i < len(boc) - 1, groups))
        self.conv_norm_out = nn.GroupNorm(groups, boc[0], eps=EPS)
        self.conv_out = nn.Conv2d(boc[0], c.get('out_channels', 3), 3, padding=1)

    def forward(self, z):
        x = self.conv_in(z)
        x = self.mid_block(x)
        for b in self.up_blocks:
            x = b(x)
        return self.conv_out(F.silu(self.conv_norm_out(x)))


class AutoencoderKL(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = dict(config)
        lc = config.get('latent_channels', 4)
        self.encoder = Encoder(config)
        self.decoder = Decoder(config)
        self.quant_conv = nn.Conv2d(2 * lc, 2 * lc, 1)
        self.post_quant_conv = nn.Conv2d(lc, lc, 1)

    def encode_parameters(self, x):
        """mean ‖ logvar (DiagonalGaussianDistribution.parameters)."""
        return self.quant_conv(self.encoder(x))

    def encode_mean(self, x):
        return self.encode_parameters(x).chunk(2, dim=1)[0]

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))


class VaeDecoderExport(nn.Module):
    """optimum's vae_decoder: latent_sample → sample (the latent is already divided by scaling_factor)."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, latent_sample):
        return self.vae.decode(latent_sample)


class VaeEncoderExport(nn.Module):
    """vae_encoder: sample → latent_sample, here the distribution's mean (deterministic; see README)."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, sample):
        return self.vae.encode_mean(sample)
