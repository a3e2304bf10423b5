"""The toy StyleGAN2's recipe: its settings, networks and training terms (02_stylegan2_wplus.ipynb).

The recipe of NVIDIA's stylegan2-ada-pytorch (`training/loss.py`, `training/training_loop.py`; Karras et al.,
"Analyzing and Improving the Image Quality of StyleGAN", CVPR 2020, and "Training Generative Adversarial
Networks with Limited Data", NeurIPS 2020), re-written for one process on a CPU. `clip2gan.toy.stylegan2_training`
runs it; `clip2gan.toy.stylegan2_eval` judges and ships what it makes.

* non-saturating logistic loss: G minimises softplus(-D(G(z, c), c)); D minimises
  softplus(D(fake)) + softplus(-D(real));
* R1 penalty (γ/2)·‖∇ₓD(x_real, c)‖² with lazy regularisation: applied every `D_reg_interval` = 16
  D steps with the gain 16, and the D optimiser's lr and betas rescaled by 16/17 (StyleGAN2 paper
  App. B). γ = 0.01: NVIDIA's value for 32 px (their `cifar` config; the `auto` heuristic
  0.0002·res²/batch gives 0.0064-0.013 for batch 32-16). The first toy run used 0.1;
* generator EMA: G_ema ← lerp(G, G_ema, β), β = 0.5^(batch / ema_nimg), ema_nimg = ema_kimg·1000
  ramped up as min(ema_nimg, nimg·ema_rampup) (ema_kimg = 10·batch/32 and rampup 0.05: NVIDIA's
  `auto` config); G_ema is what gets shipped and evaluated;
* the mapping network's learning-rate multiplier 0.01 (inside `MappingNetwork`, NVIDIA's default);
  2 mapping layers (NVIDIA's `auto`/`cifar` choice below 128 px);
* minibatch standard deviation in D (group 4, one channel);
* style-mixing regularisation (probability 0.9, as NVIDIA's FFHQ configs; their 32-px `cifar`
  config turns it off for FID; we keep it because notebook 02 mixes styles by layer ranges and
  CLIP2GAN writes w+ row by row, which needs rows that act independently). `--style-mixing-prob 0` turns it off;
* path-length regularisation: implemented (`pl_weight`, every 4 G steps, batch shrink 2) but **off by
  default at 32 px**: it costs an extra double-backward pass through G (≈ +30 % CPU per step), and its
  benefit — a smoother w → image map for high-resolution inversion and interpolation — is small at
  32 px, where NVIDIA's own 32-px config also disables it (and it worsened their CIFAR-10 FID).
  With it off, G has no lazy regularisation and its optimiser keeps the plain lr and betas.
* per-pixel noise inputs **switched off** (`use_noise=False`, documented deviation): toy faces are
  vector drawings with no stochastic detail (no hair strands, pores or freckles) for the noise to
  model. In the first run (noise on) the 32-px layer's `noise_strength` drifted to |0.06| within
  1,000 steps — about what Adam's random walk on a zero-mean, one-sample gradient gives — and every
  sample was covered in coloured speckle that vanished with `noise_mode='none'`. The parameters stay
  in place (NVIDIA's layout, so checkpoints and `clip2gan.stylegan2.load` are unchanged) but are
  set to 0 and get no updates; `--use-noise true` restores NVIDIA's behaviour.

**Stabiliser: conditioning on the attributes (documented deviation).** A plain,
unconditional StyleGAN2 on toy faces collapsed after 20 min and, after 35 min, drew blurry faces with
no glasses, hats or smiles. Here G and D are *conditional* on the attribute labels, through NVIDIA's
own conditional path: `c` is the concatenation of one one-hot vector per attribute in `ATTRIBUTES`
order (hair colour all zeros for a bald face), `c_dim = 28`; G's mapping network embeds c and
concatenates it with z; D maps c to `cmap` and projects its output onto it (projection
discriminator). Every value of every attribute is then asked for explicitly in every batch, which
counters mode collapse and missing rare values directly. It changes nothing downstream: CLIP2GAN's
mapping network writes w+ itself and never goes through G's mapping network, so conditioning only
changes how one *samples* G (`G.mapping(z, attributes_to_c(attrs))`; sampling c from the data
distribution reproduces the data's attribute frequencies).

**Architecture, chosen by the CPU budget** (the 32-px layers dominate the cost): 32 px,
`channel_base=1024, channel_max=128` → 128/128/64/32 channels at 4/8/16/32 px in G and D
(≈ 1.0 M parameters each; 0.5 s per G+D step at batch 16 on one core, vs. 0.9 s for 64 channels at
every resolution — most attributes are decided at 4-16 px, where the width is), z_dim = w_dim = 128
(28 label bits and a little nuisance variation need far less than 512; a small w+ of 8 × 128 also keeps
CLIP2GAN's mapping network small), batch 16 (more updates per CPU second than 32 at the same
images/s), Adam lr 0.0025, betas (0, 0.99) (NVIDIA's 32-px values). D: NVIDIA's resnet architecture.

**Optional auxiliary attribute term** (`d_aux_weight`, default 0, AC-GAN style): a linear head on D's
features (`d_aux_tap`: the epilogue's, or a finer block's output) learns the attributes of real
renders and G is pushed to make it read the labels it was given (`attribute_ce`). Added after D's
projection term was measured to ignore the expression entirely (and G with it); off by default, so
runs without it are unchanged.

**Data**: rendered on the fly (`clip2gan.toy.faces.render_batch`, ~1,000+ images/s per core, < 5 % of
a step), attributes from `sample_attributes`; fake labels are drawn from the same distribution.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.nn.functional as F

from clip2gan.cli import option
from clip2gan.stylegan2 import Discriminator, Generator
from clip2gan.toy import world_module
from clip2gan.toy.faces import C_SLICES

__all__ = ["GANTrainConfig", "build_networks", "generator_kwargs", "attribute_ce", "r1_penalty", "ema_beta", "update_ema",
           "lazy_adam"]


# ----------------------------------------------------------------------------------------------
# Configuration and networks


@dataclass
class GANTrainConfig:
    """Everything that defines a run (00_setup.ipynb). Architecture fields are fixed once a run exists;
    the loss and schedule fields may be changed when resuming (the change is logged). Each field is a
    flag of `python -m clip2gan.toy.stylegan2_training` (`r1_gamma` → `--r1-gamma`)."""

    # architecture (see the module docstring for the reasons)
    resolution: int = option(32, "image size in pixels (architecture)")
    z_dim: int = option(128, "dimension of the latent z (architecture)")
    w_dim: int = option(128, "dimension of w and of each w+ row (architecture)")
    mapping_layers: int = option(2, "layers of G's mapping network (architecture)")
    channel_base: int = option(1024, "channels at resolution r are min(channel_base / r, channel_max) (architecture)")
    channel_max: int = option(128, "most channels of any layer (architecture)")
    conditional: bool = option(True, "G and D conditioned on the attribute labels c (architecture)")
    mbstd_group: int = option(4, "group size of D's minibatch standard deviation (architecture)")
    d_architecture: str = option("resnet", "D's block type (architecture)", choices=("orig", "skip", "resnet"))
    world: str = option("faces", "the toy world of the renders and of c's layout (architecture; --profile sets it)",
                        choices=("faces", "pets"))
    # optimisation
    batch: int = option(16, "real images per step (and fakes per phase)")
    lr_G: float = option(0.0025, "Adam learning rate of G")
    lr_D: float = option(0.0025, "Adam learning rate of D")
    beta1: float = option(0.0, "Adam beta1 of G and D")
    beta2: float = option(0.99, "Adam beta2 of G and D")
    r1_gamma: float = option(0.01, "weight gamma of the R1 penalty on real images (0: off)")
    D_reg_interval: int = option(16, "D steps between lazy R1 steps")
    pl_weight: float = option(0.0, "weight of the path-length regulariser (0: off; see the module docstring)")
    G_reg_interval: int = option(4, "G steps between lazy path-length steps")
    pl_batch_shrink: int = option(2, "the path-length batch is the batch divided by this")
    pl_decay: float = option(0.01, "decay of the path-length running mean")
    style_mixing_prob: float = option(0.9, "probability of mixing two latents' styles in a fake (0: off)")
    use_noise: bool = option(False, "per-pixel noise inputs (off: their strengths zeroed and frozen)")
    ema_kimg: float | None = option(None, "half-life of G_ema in kimg (none: 10 * batch / 32, NVIDIA's auto)")
    ema_rampup: float | None = option(0.05, "G_ema half-life ramp-up as a fraction of the images seen (none: off)")
    d_aux_weight: float = option(0.0, "weight of the auxiliary attribute head on D's features (0: off; see attribute_ce)")
    d_aux_tap: int = option(4, "D features the head reads: 4 = the epilogue's; 8, 16, ... = a block's output of that size")
    seed: int = option(0, "seed of the initial weights, the data stream and the grids")

    ARCH_FIELDS = ("resolution", "z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max",
                   "conditional", "mbstd_group", "d_architecture", "world")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict; a faces run records no `world` (its records read as before worlds existed)."""
        d = dataclasses.asdict(self)
        if d["world"] == "faces":
            del d["world"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GANTrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def c_dim(self) -> int:
        return world_module(self.world).C_DIM if self.conditional else 0

    @property
    def ema_kimg_effective(self) -> float:
        return self.ema_kimg if self.ema_kimg is not None else 10.0 * self.batch / 32


def generator_kwargs(cfg: GANTrainConfig) -> dict[str, Any]:
    """The `clip2gan.stylegan2.Generator(**kwargs)` of this config (the benchmarks build the toy G from it)."""
    return dict(z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, img_resolution=cfg.resolution, img_channels=3,
                mapping_kwargs=dict(num_layers=cfg.mapping_layers),
                synthesis_kwargs=dict(channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=0))


def build_networks(cfg: GANTrainConfig) -> tuple[Generator, Discriminator]:
    """`(G, D)` from `clip2gan.stylegan2` for this config, in training mode, on CPU (00_setup.ipynb)."""
    G = Generator(**generator_kwargs(cfg))
    D = Discriminator(c_dim=cfg.c_dim, img_resolution=cfg.resolution, img_channels=3, architecture=cfg.d_architecture,
                      channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=0,
                      epilogue_kwargs=dict(mbstd_group_size=cfg.mbstd_group))
    return G.train(), D.train()


# ----------------------------------------------------------------------------------------------
# The recipe's pieces (each tested on its own)


def attribute_ce(logits: torch.Tensor, c: torch.Tensor, c_slices: dict[str, slice] | None = None) -> torch.Tensor:
    """Mean over attributes of the cross-entropy between `logits: [N, C_DIM]` (one block of scores per
    attribute, at `c_slices`, default `clip2gan.toy.faces.C_SLICES`; a world's own `C_SLICES` for
    another world) and the one-hot labels `c: [N, C_DIM]`; rows whose block is all zeros (a bald
    face's hair colour) are left out of that attribute's term (02_stylegan2_wplus.ipynb).

    The optional auxiliary term of the toy StyleGAN2 (`GANTrainConfig.d_aux_weight`): a linear head on
    the discriminator's features (`GANTrainConfig.d_aux_tap`) learns the attributes of *real* renders,
    and G is trained so that the head reads its samples' conditioning labels. It exists because D's
    projection term alone never learnt to check the mouth: swapping the expression in c changed D's
    score on real renders no more than chance (50 % against 67-79 % for lipstick, hair colour,
    glasses, skin), and G's expression ignored c entirely."""
    losses = []
    for block_slice in (c_slices or C_SLICES).values():
        block = c[:, block_slice]
        has = block.sum(dim=1) > 0
        if bool(has.any()):
            losses.append(F.cross_entropy(logits[has, block_slice], block[has].argmax(dim=1)))
    return torch.stack(losses).mean()


def r1_penalty(D: torch.nn.Module, real: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """R1: `‖∇ₓ Σᵢ D(xᵢ, cᵢ)‖²` per sample `[N]`, differentiable (create_graph), and the logits `[N, 1]`
    (00_setup.ipynb).

    The gradient of the *summed* logits w.r.t. the real batch, as NVIDIA computes it (with
    minibatch-std the samples of a group interact, and this is that total derivative).
    """
    real = real.detach().requires_grad_(True)
    logits = D(real, c)
    (grad,) = torch.autograd.grad(outputs=[logits.sum()], inputs=[real], create_graph=True, only_inputs=True)
    return grad.square().sum(dim=[1, 2, 3]), logits


def ema_beta(cur_nimg: int, batch: int, ema_kimg: float, ema_rampup: float | None) -> float:
    """The EMA decay for one step: `0.5 ** (batch / ema_nimg)`, ema_nimg = min(ema_kimg·1000, nimg·rampup)
    (00_setup.ipynb)."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    """`p_ema ← p + β (p_ema − p)` for parameters; buffers (w_avg, noise_const) copied from G (00_setup.ipynb)."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def lazy_adam(params: Iterable[torch.nn.Parameter], lr: float, betas: tuple[float, float],
               interval: int | None) -> torch.optim.Adam:
    """Adam for a network whose regulariser runs every `interval` steps (None: plain Adam)."""
    # Lazy regularisation (StyleGAN2 App. B): the regulariser runs every `interval` steps with gain
    # `interval`, so the optimiser sees interval+1 updates per interval main steps; rescale lr and betas.
    ratio = interval / (interval + 1) if interval else 1.0
    return torch.optim.Adam(params, lr=lr * ratio, betas=(float(betas[0] ** ratio), float(betas[1] ** ratio)), eps=1e-8)
