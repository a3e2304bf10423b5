"""A DCGAN (Radford, Metz & Chintala, ICLR 2016) shaped like a StyleGAN2 generator (11_other_generators.ipynb).

The paper's supplement (Table 6) swaps StyleGAN2 for a DCGAN to show that M can map CLIP features into
the latent space of another GAN. A DCGAN has no mapping network and no w+: its only latent is z. So that
it plugs in wherever the package takes a StyleGAN2 `Generator` (`CLIP2GAN`, `clip2gan.train.Trainer`,
`clip2gan.edit`, `clip2gan.generate`), `DCGANGenerator` has the same interface with

* `num_ws = 1`, `w_dim = z_dim`: its "w+" code is z itself, one row, `ws: [N, 1, z_dim]`;
* `mapping(z, c)`: the identity, z broadcast to one row; `mapping.w_avg` = zeros (the mean of z's prior
  N(0, I)), so truncation ψ shrinks z toward 0;
* `synthesis(ws, noise_mode=...)`: decodes `ws[:, 0]` (there are no noise inputs: `noise_mode` is
  accepted and ignored);
* `c_dim = 0`: a DCGAN is unconditional.

M then maps CLIP features to z, editing "in w+" is editing in z, and `space='clip'` edits in CLIP space.

Architecture, as the DCGAN paper's guidelines: the generator is a stack of stride-2 transposed
convolutions (4×4 kernels) from a 4×4 map, each followed by batch norm and ReLU, with tanh on the
output; the discriminator is a stack of stride-2 convolutions with batch norm (not on the first layer)
and LeakyReLU(0.2), ending in one 4×4 convolution to a logit. No pooling, no fully connected hidden
layers. Weights start from N(0, 0.02) and batch-norm scales from N(1, 0.02), as in the paper.

Widths follow StyleGAN2's channel table: a map of resolution r has `min(channel_base // r, channel_max)`
channels (`clip2gan.stylegan2.channels_dict`), so `clip2gan.train.discriminator_like(G)` (which reads
`channel_base` and `channel_max` from `G.init_kwargs`) sizes M's discriminator like the DCGAN's own.
The default, 32 px, z_dim 100 (the DCGAN paper's), channel_base 1024 and channel_max 256 (256 channels
at 4 px, 128 at 8, 64 at 16), has 1.1 M generator and 0.66 M discriminator parameters: one training
step at batch 64 takes about 0.45 s on one shared CPU core (channel_base 2048 / channel_max 512 has
3.6 M + 2.6 M parameters and takes about 1.4 s).

Batch norm and a frozen generator: in eval mode batch norm uses its running statistics, so each sample
is a function of its own z alone (what M's training needs). The trainer recomputes those statistics for
the exported generator (`recalibrate_batchnorm`), since an exponential moving average of the weights
has no statistics of its own.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from clip2gan.stylegan2.ops import assert_shape, channels_dict

__all__ = ["DCGANMapping", "DCGANSynthesis", "DCGANGenerator", "DCGANDiscriminator", "init_weights",
           "recalibrate_batchnorm", "NOISE_MODES"]

NOISE_MODES = ("const", "random", "none")  # StyleGAN2's; a DCGAN has no noise inputs, so all three are equal


def _check_resolution(img_resolution: int) -> None:
    if img_resolution < 8 or img_resolution & (img_resolution - 1):
        raise ValueError(f"img_resolution must be a power of two >= 8, got {img_resolution}")


def init_weights(module: nn.Module, generator: Optional[torch.Generator] = None) -> None:
    """The DCGAN paper's initialisation: conv weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02),
    biases 0 (11_other_generators.ipynb)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=generator) * 0.02)
                if m.bias is not None:
                    m.bias.zero_()
        elif isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.copy_(1 + torch.randn(m.weight.shape, generator=generator) * 0.02)
                m.bias.zero_()


class DCGANMapping(nn.Module):
    """The identity "mapping": z `[N, z_dim]` → ws `[N, 1, z_dim]` (11_other_generators.ipynb).

    Takes StyleGAN2's mapping arguments. `w_avg` (zeros `[z_dim]`: the mean of the prior N(0, I)) is the
    centre of truncation, ws = w_avg + ψ (z − w_avg); it never changes (`update_emas` and
    `skip_w_avg_update` are accepted and ignored).
    """

    def __init__(self, z_dim: int):
        super().__init__()
        self.z_dim = self.w_dim = int(z_dim)
        self.num_ws = 1
        self.register_buffer("w_avg", torch.zeros([self.z_dim]))

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, skip_w_avg_update: bool = False,
                update_emas: Optional[bool] = None) -> torch.Tensor:
        assert_shape(z, [None, self.z_dim], "z")  # z: [N, z_dim]
        if c is not None and c.numel():
            raise ValueError(f"a DCGAN is unconditional (c_dim = 0), got c of shape {list(c.shape)}")
        ws = z.unsqueeze(1)  # [N, 1, z_dim]
        if truncation_psi != 1 and (truncation_cutoff is None or truncation_cutoff > 0):
            ws = self.w_avg.to(ws).lerp(ws, truncation_psi)
        return ws


class _UpBlock(nn.Module):
    """ConvTranspose(4×4) → BatchNorm → ReLU: `[N, c_in, r, r]` → `[N, c_out, 2r, 2r]` (stride 2), or
    `[N, c_in, 1, 1]` → `[N, c_out, 4, 4]` for the first block."""

    def __init__(self, c_in: int, c_out: int, first: bool):
        super().__init__()
        self.conv = nn.ConvTranspose2d(c_in, c_out, 4, stride=1 if first else 2, padding=0 if first else 1, bias=False)
        self.norm = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm(self.conv(x)))


class DCGANSynthesis(nn.Module):
    """ws `[N, 1, z_dim]` → images `[N, img_channels, R, R]` in [-1, 1] (11_other_generators.ipynb).

    Blocks `b4, b8, …, b{R/2}` (transposed conv, batch norm, ReLU), then `torgb` (a stride-2 transposed
    conv to the image channels) and tanh.
    """

    def __init__(self, z_dim: int, img_resolution: int, img_channels: int, channel_base: int, channel_max: int):
        super().__init__()
        _check_resolution(img_resolution)
        self.w_dim, self.num_ws = int(z_dim), 1
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        ch = channels_dict(img_resolution, channel_base, channel_max)
        self.block_resolutions = [2 ** i for i in range(2, img_resolution.bit_length() - 1)]  # 4 … R/2
        prev = self.w_dim
        for res in self.block_resolutions:
            setattr(self, f"b{res}", _UpBlock(prev, ch[res], first=res == 4))
            prev = ch[res]
        self.torgb = nn.ConvTranspose2d(prev, img_channels, 4, stride=2, padding=1)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", **_unused: Any) -> torch.Tensor:
        assert_shape(ws, [None, 1, self.w_dim], "ws")  # ws: [N, 1, z_dim], the one row is z
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        x = ws[:, 0, :, None, None]  # [N, z_dim, 1, 1]
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x)  # [N, ch[res], res, res]
        return torch.tanh(self.torgb(x))  # [N, img_channels, R, R]


class DCGANGenerator(nn.Module):
    """A DCGAN generator with StyleGAN2's `Generator` interface (11_other_generators.ipynb; see the module docstring).

    `G(z)` or `G(z, c)` with c `[N, 0]` or None → images `[N, img_channels, R, R]` in [-1, 1];
    `G.mapping(z, c)` → ws `[N, 1, z_dim]`; `G.synthesis(ws)` → images.
    """

    c_dim = 0
    num_ws = 1

    def __init__(self, z_dim: int = 100, img_resolution: int = 32, img_channels: int = 3,
                 channel_base: int = 1024, channel_max: int = 256):
        super().__init__()
        self.z_dim = self.w_dim = int(z_dim)
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.channel_base, self.channel_max = int(channel_base), int(channel_max)
        self.mapping = DCGANMapping(z_dim)
        self.synthesis = DCGANSynthesis(z_dim, img_resolution, img_channels, channel_base, channel_max)
        init_weights(self)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The constructor arguments (what a checkpoint records; `channel_base`/`channel_max` also size
        `clip2gan.train.discriminator_like`)."""
        return {"z_dim": self.z_dim, "img_resolution": self.img_resolution, "img_channels": self.img_channels,
                "channel_base": self.channel_base, "channel_max": self.channel_max}

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None, noise_mode: str = "const", **synthesis_kwargs: Any) -> torch.Tensor:
        """z: `[N, z_dim]`, c: `[N, 0]` or None → images `[N, img_channels, R, R]`."""
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, **synthesis_kwargs)


class DCGANDiscriminator(nn.Module):
    """images `[N, img_channels, R, R]` → logits `[N, 1]` (11_other_generators.ipynb).

    `fromrgb` (stride-2 conv, LeakyReLU(0.2), no batch norm), blocks `b{R/2}, …, b8` (stride-2 conv,
    batch norm, LeakyReLU(0.2)), then `out`, a 4×4 convolution of the 4×4 map to one logit. `c` is
    accepted for the StyleGAN2 interface and must be None or `[N, 0]`.
    """

    c_dim = 0

    def __init__(self, img_resolution: int = 32, img_channels: int = 3, channel_base: int = 1024, channel_max: int = 256):
        super().__init__()
        _check_resolution(img_resolution)
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.channel_base, self.channel_max = int(channel_base), int(channel_max)
        ch = channels_dict(img_resolution, channel_base, channel_max)
        top = img_resolution // 2
        self.fromrgb = nn.Conv2d(img_channels, ch[top], 4, stride=2, padding=1)
        self.block_resolutions = [2 ** i for i in range(top.bit_length() - 1, 2, -1)]  # R/2 … 8
        for res in self.block_resolutions:
            conv = nn.Conv2d(ch[res], ch[res // 2], 4, stride=2, padding=1, bias=False)
            setattr(self, f"b{res}", nn.Sequential(conv, nn.BatchNorm2d(ch[res // 2]), nn.LeakyReLU(0.2)))
        self.out = nn.Conv2d(ch[4], 1, 4)
        init_weights(self)

    @property
    def init_kwargs(self) -> dict[str, Any]:
        """The constructor arguments (what a checkpoint records)."""
        return {"img_resolution": self.img_resolution, "img_channels": self.img_channels,
                "channel_base": self.channel_base, "channel_max": self.channel_max}

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor] = None) -> torch.Tensor:
        assert_shape(img, [None, self.img_channels, self.img_resolution, self.img_resolution], "img")
        if c is not None and c.numel():
            raise ValueError(f"a DCGAN discriminator is unconditional (c_dim = 0), got c of shape {list(c.shape)}")
        x = nn.functional.leaky_relu(self.fromrgb(img), 0.2)  # [N, ch[R/2], R/2, R/2]
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x)  # [N, ch[res/2], res/2, res/2]
        return self.out(x).flatten(1)  # [N, 1]


@torch.no_grad()
def recalibrate_batchnorm(G: DCGANGenerator, n: int = 4096, batch: int = 256, seed: int = 0) -> DCGANGenerator:
    """Recompute the running statistics of G's batch norms over `n` samples z ~ N(0, I) (11_other_generators.ipynb).

    Each statistic becomes the plain average over the `n / batch` batches (momentum None), which is what
    eval mode then uses; deterministic for a seed, and it leaves the global random state untouched. An
    EMA copy of the weights needs this: its weights never produced the statistics it carries. Returns G,
    in the training/eval mode it had.
    """
    norms = [m for m in G.modules() if isinstance(m, nn.BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    was_training = G.training
    gen = torch.Generator().manual_seed(seed)
    device = G.mapping.w_avg.device
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        G.train()
        for start in range(0, n, batch):
            z = torch.randn(min(batch, n - start), G.z_dim, generator=gen).to(device)
            G.synthesis(G.mapping(z))
    finally:
        for m, mom in zip(norms, momenta):
            m.momentum = mom
        G.train(was_training)
    return G
