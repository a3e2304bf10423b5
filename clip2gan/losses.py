"""The losses of CLIP2GAN, eq. 4-10, one function or module each (04_losses.ipynb).

Training (text-free): x -> CLIP -> f_img -> M -> w+ -> G -> x'. Only M and the discriminator D learn.

    L_M = λ_rec L_rec + λ_LPIPS L_LPIPS + λ_G L_G + λ_id L_id + λ_div L_div          (eq. 10)
    λ = 1, 1, 0.1, 1, 1 and the gradient-penalty weight λ = 1 (supplement, implementation details):
    `LossWeights()`; `total_loss(...)` returns the weighted sum and its parts.

Decisions where the paper is ambiguous (docs/design.md gives the reasons and the measurements) — each is
an option, the default is stated:

* eq. 4, `reconstruction_loss`: "||x − x'||₂, the l2 distance". Default `mode='mse'`: the mean
  squared error over pixels, channels and batch (F.mse_loss, as pSp/e4e compute their "l2" loss).
  The literal norm of a 1024² image would be ~10³ and drown every other term at λ = 1; the mean
  keeps all five terms O(1) and independent of resolution. `mode='rmse'` is the per-image (not
  squared) norm, scaled by 1/sqrt(#pixels), averaged over the batch.
* eq. 5, `LPIPSLoss`: AlexNet LPIPS through the `lpips` package for the paper's worlds. The toy
  world uses `trunk='clip'` (see `LPIPSLoss`).
* eq. 6-7 (docs/design.md#the-adversarial-loss), `g_adv_loss` / `d_loss`: the text says "WGAN-GP",
  the equations are the log-loss GAN with a gradient penalty on x'. `form='paper'` (default) implements eq. 6-7 as
  written: L_G = E[log(1 − D(x'))] (the *saturating* generator loss of the original GAN) and
  L_D = −E[log D(x)] − E[log(1 − D(x'))] + λ E[(‖∇_{x'} D(x')‖₂ − 1)²], with D(·) = sigmoid(logit).
  `form='nonsaturating'` uses L_G = −E[log D(x')] (StyleGAN2's loss; stronger gradients when D wins);
  `form='wgan'` is the critic form the text names (L_G = −E[D(x')], L_D = E[D(x')] − E[D(x)] + GP).
  The penalty: on x' (the reconstructions) as the equation says (`gp_on='fake'`; 'real' and
  'interpolate' — WGAN-GP's random interpolates — are options), on the gradient of D's raw
  output (the logit, as every public gradient penalty; `gp_of='probability'` takes the sigmoid's
  gradient, a literal reading of D inside the logs), squared per sample then averaged
  (WGAN-GP's form; the paper's bracket could be read as the square of the mean, which lets large
  and small norms cancel).
* eq. 8 (docs/design.md#the-identity-loss), `IdentityLoss`: the equation is a cosine similarity written without square
  roots; we use 1 − cos(f_arc(x), f_arc(x')).
* eq. 9 (docs/design.md#the-test-time-noise), `diversity_loss` and `NoiseConfig`: the paper adds N(0, 1) per dimension to
  the CLIP feature in training and N(1, 0.36) at test time. CLIP features are L2-normalised (norm 1,
  ~0.044 per coordinate in 512-d): N(0, 1) noise has norm ≈ 22.6 and swamps the feature (cos ≈ 0.04
  to the original), so M would learn to map pure noise. Default: additive Gaussian noise
  measured in units of 1/sqrt(D) (the RMS coordinate of a unit vector) with std 0.5 — a noise
  vector of norm ≈ 0.5, renormalised after adding (cos ≈ 0.89 to the clean feature). Why 0.5: it is
  the magnitude of the paper's test-time noise under its only non-degenerate reading (multiplying
  the feature by N(1, 0.36) perturbs a unit feature by ≈ 0.6; adding N(1, 0.36) would turn every
  feature into nearly the same all-ones direction). `NoiseConfig.paper_train()` and
  `NoiseConfig.paper_test()` give the literal settings for comparison; 04_losses.ipynb measures both.
* eq. 9, distances: l1 as the paper says, as per-element means (so d_f and d_x are comparable
  across feature sizes and resolutions), the ratio taken per sample then averaged; `eps` keeps it
  finite when M ignores the noise.

Every image argument is `[N, 3, H, W]` in [-1, 1]; features are `[N, D]`.

Beyond eq. 10: options of the trainer against the distortion-perception-editability trade-off
(05_training.ipynb). An encoder into w+ reconstructs better the further its codes may leave the
distribution of G's own w, and its images get less clean and less editable for it (Tov et al.,
"Designing an Encoder for StyleGAN Image Manipulation", SIGGRAPH 2021: e4e). Each term below is off
by default (weight 0 in `clip2gan.train.TrainConfig`); ws are `[N, num_ws, w_dim]` w+ codes:

* `delta_regularizer`: e4e's L_d-reg = Σ_{i=1}^{n-1} E_N ‖w_i − w_0‖₂ over the first n rows of w+.
* `LatentDiscriminator`, `latent_g_loss`, `latent_d_loss`, `latent_r1`: e4e's latent discriminator D_w,
  an MLP on single w vectors, trained with the non-saturating GAN loss to tell G's own w = G.mapping(z, c)
  (real) from the rows of M's codes (fake), with an R1 penalty on the reals.
* `latent_loss`: ‖M(C_img(G(w))) − w‖², the squared error to the code that generated a synthetic
  training image (not in the paper, which has no code for its real training images).
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Literal, Mapping

import lpips
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import AlexNet_Weights

from clip2gan.hub import WeightsNotFound
from clip2gan.profiles import get_profile

__all__ = [
    "reconstruction_loss",
    "LPIPSLoss",
    "alexnet_weights_path",
    "gradient_penalty",
    "g_adv_loss",
    "d_loss",
    "IdentityLoss",
    "NoiseConfig",
    "add_clip_noise",
    "diversity_loss",
    "LossWeights",
    "total_loss",
    "requires_grad",
    "delta_regularizer",
    "LatentDiscriminator",
    "latent_g_loss",
    "latent_d_loss",
    "latent_r1",
    "latent_loss",
]

AdvForm = Literal["paper", "nonsaturating", "wgan"]
_ADV_FORMS = ("paper", "nonsaturating", "wgan")


def _check_pair(x: torch.Tensor, y: torch.Tensor, names: str = "x, x_rec") -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(f"{names} must be tensors")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{names}: expected images [N, 3, H, W], got {tuple(x.shape)}")
    if x.shape != y.shape:
        raise ValueError(f"{names}: shapes differ, {tuple(x.shape)} vs {tuple(y.shape)}")


# ---------------------------------------------------------------------------------------------
# eq. 4: reconstruction


def reconstruction_loss(x: torch.Tensor, x_rec: torch.Tensor, mode: Literal["mse", "rmse"] = "mse") -> torch.Tensor:
    """L_rec = ||x − x'||₂ (eq. 4) as a scalar (04_losses.ipynb).

    mode 'mse' (default): mean squared error over every element (see the module docstring);
    'rmse': per-image root mean square difference (the l2 norm / sqrt(#elements)), batch mean.
    """
    _check_pair(x, x_rec)
    diff = (x.float() - x_rec.float()).flatten(1)
    if mode == "mse":
        return diff.square().mean()
    if mode == "rmse":
        return diff.square().mean(dim=1).add(1e-12).sqrt().mean()
    raise ValueError(f"mode must be 'mse' or 'rmse', got {mode!r}")


# ---------------------------------------------------------------------------------------------
# eq. 5: LPIPS


def alexnet_weights_path() -> str:
    """Where torchvision keeps the ImageNet AlexNet weights LPIPS needs (`$TORCH_HOME/hub/checkpoints`)."""

    url = AlexNet_Weights.IMAGENET1K_V1.url
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def _download_allowed(download: bool | None) -> bool:
    if download is not None:
        return bool(download)
    return os.environ.get("CLIP2GAN_DOWNLOAD", "").strip().lower() in {"1", "true", "yes"}


def _build_lpips(**kwargs: Any) -> nn.Module:

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's 'pretrained' deprecation notice inside lpips
        return lpips.LPIPS(verbose=False, **kwargs)


class LPIPSLoss(nn.Module):
    """L_LPIPS (eq. 5): a learned/feature distance between x and x', scalar mean (04_losses.ipynb).

    trunk:

    * 'alex' (the paper, `ffhq`/AFHQ/LSUN): `lpips.LPIPS(net='alex')`, ImageNet AlexNet features with
      the LPIPS linear heads (v0.1, shipped inside the `lpips` package). torchvision downloads the
      AlexNet trunk on first use; here that download happens only if allowed (`download=True` or
      `CLIP2GAN_DOWNLOAD=1`), otherwise `WeightsNotFound` names the file
      (`$TORCH_HOME/hub/checkpoints/alexnet-owt-7be5be79.pth`), its URL and `TORCH_HOME`.
    * 'clip' (default for `toyfaces`): the same formula with the frozen CLIP image tower as the
      trunk — every transformer block's token map, unit-normalised over channels, squared
      difference summed over channels, averaged over positions, summed over blocks (eq. 5 with
      w_l = 1, `lpips`'s `lpips=False` form, using its `normalize_tensor`). Why: the toy world has
      no ImageNet network offline; a randomly initialised AlexNet is a fixed random-feature distance,
      close to a low-level pixel metric rather than a perceptual one (Zhang et al. 2018 report
      random-weight networks well below trained ones), and at 32 px AlexNet's stride-4 11×11 first layer
      leaves 7×7, then 3×3 and 1×1 maps. The toy CLIP is the only network trained on this world
      that is not an evaluation instrument (the attribute classifier must never be a training
      loss), and it sees the 32 px images at full resolution (8×8 token maps). It is the same
      network that encodes x for M, which makes this term a semantic reconstruction loss, in
      line with the paper's aim. Evaluation uses the attribute classifier, but the toy CLIP's image
      tower was trained with an auxiliary attribute loss, so this term also carries the attributes
      the classifier reads (docs/design.md#the-toy-world says what that means for the toy figures).
    * 'alex-random': AlexNet with random weights (`pnet_rand=True`) and no linear heads (the heads
      are calibrated for ImageNet features), seeded: an honest random-feature multi-scale distance,
      for comparison.

    clip_encoder: a `ClipEncoder` (trunk 'clip' only); clip_indices: which blocks (None: all);
    resize_to: resize both images (area) to this size first (None: as given; e.g. 256 for 1024 px
    images to save memory, as pSp does).
    """

    TRUNKS = ("alex", "clip", "alex-random")

    def __init__(self, trunk: str = "alex", clip_encoder: nn.Module | None = None, clip_indices: Any = None,
                 resize_to: int | None = None, download: bool | None = None, seed: int = 0):
        super().__init__()
        if trunk not in self.TRUNKS:
            raise ValueError(f"trunk must be one of {self.TRUNKS}, got {trunk!r}")
        self.trunk = trunk
        self.resize_to = resize_to
        self.clip_indices = clip_indices
        self.net: nn.Module | None = None
        self.clip: nn.Module | None = None
        if trunk == "alex":
            path = alexnet_weights_path()
            if not os.path.isfile(path) and not _download_allowed(download):
                raise WeightsNotFound(self._alex_message(path, "not downloaded yet"))
            try:
                self.net = _build_lpips(net="alex", pretrained=True, pnet_rand=False)
            except Exception as err:  # a failed torchvision download surfaces as many error types
                raise WeightsNotFound(self._alex_message(path, f"download failed: {type(err).__name__}: {err}")) from None
        elif trunk == "alex-random":
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                self.net = _build_lpips(net="alex", pretrained=False, pnet_rand=True, lpips=False)
        else:
            if clip_encoder is None:
                raise ValueError("trunk='clip' needs clip_encoder=ClipEncoder(...)")
            self.clip = clip_encoder
        if self.net is not None:
            for p in self.net.parameters():
                p.requires_grad_(False)
            self.net.eval()

    @staticmethod
    def _alex_message(path: str, why: str) -> str:

        return (
            f"LPIPS(net='alex') needs torchvision's ImageNet AlexNet weights ({why}).\n"
            f"  File: {path}\n"
            f"  URL: {AlexNet_Weights.IMAGENET1K_V1.url}\n"
            f"  Put the file there (the folder is $TORCH_HOME/hub/checkpoints; TORCH_HOME is "
            f"{os.environ.get('TORCH_HOME', 'unset, default ~/.cache/torch')}), or allow the download with "
            "CLIP2GAN_DOWNLOAD=1 / LPIPSLoss(..., download=True). Offline, LPIPSLoss(trunk='clip') or "
            "trunk='alex-random' need no download."
        )

    @classmethod
    def for_profile(cls, profile: str, clip_encoder: nn.Module | None = None, trunk: str | None = None,
                    **kwargs: Any) -> "LPIPSLoss":
        """The LPIPS of a world: its profile's trunk ('clip' for toyfaces, needs `clip_encoder`; 'alex' otherwise)."""
        if trunk is None:
            trunk = get_profile(profile).lpips_trunk
        return cls(trunk, clip_encoder=clip_encoder, **kwargs)

    def train(self, mode: bool = True) -> "LPIPSLoss":
        super().train(mode)
        if self.net is not None:
            self.net.eval()
        if self.clip is not None:
            self.clip.train(False)
        return self

    def _clip_distance(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:

        fx = self.clip.image_intermediates(x, self.clip_indices)
        with torch.no_grad():
            fy = self.clip.image_intermediates(y, self.clip_indices)
        total = x.new_zeros(x.shape[0])
        for a, b in zip(fx, fy):
            d = (lpips.normalize_tensor(a) - lpips.normalize_tensor(b)).square().sum(dim=1)  # [N, h, w]
            total = total + d.mean(dim=(1, 2))
        return total

    def forward(self, x_rec: torch.Tensor, x: torch.Tensor, reduction: Literal["mean", "none"] = "mean") -> torch.Tensor:
        """x_rec, x: `[N, 3, H, W]` in [-1, 1] -> scalar (or `[N]` with reduction='none').

        The target `x` is treated as a constant for the 'clip' trunk (its features without grad).
        """
        _check_pair(x_rec, x, "x_rec, x")
        if self.resize_to is not None and x.shape[-1] != self.resize_to:
            x_rec = F.interpolate(x_rec.float(), size=(self.resize_to, self.resize_to), mode="area")
            x = F.interpolate(x.float(), size=(self.resize_to, self.resize_to), mode="area")
        if self.trunk == "clip":
            d = self._clip_distance(x_rec.float(), x.float())
        else:
            d = self.net(x_rec.float(), x.float()).flatten()
        if reduction == "mean":
            return d.mean()
        if reduction == "none":
            return d
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


# ---------------------------------------------------------------------------------------------
# eq. 6-7: adversarial losses and the gradient penalty


def _call_d(D: nn.Module, img: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    logits = D(img, c)
    if logits.ndim == 2 and logits.shape[1] == 1:
        logits = logits[:, 0]
    if logits.shape != (img.shape[0],):
        raise ValueError(f"D must return [N, 1] or [N] logits, got {tuple(logits.shape)} for N={img.shape[0]}")
    return logits.float()


def gradient_penalty(D: nn.Module, x: torch.Tensor, c: torch.Tensor | None = None, target: float = 1.0,
                     of: Literal["logit", "probability"] = "logit") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """E[(‖∇_x D(x)‖₂ − target)²] over the batch (eq. 7's penalty term) (04_losses.ipynb).

    x: `[N, C, H, W]`, treated as a constant (detached; the penalty trains D only). The gradient is
    built with `create_graph=True` so that the penalty back-propagates into D's parameters.
    of: 'logit' differentiates D's raw output, 'probability' its sigmoid.
    Returns (penalty scalar, logits `[N]` of D at x, per-sample gradient norms `[N]`).
    """
    if of not in ("logit", "probability"):
        raise ValueError(f"of must be 'logit' or 'probability', got {of!r}")
    x = x.detach().requires_grad_(True)
    logits = _call_d(D, x, c)
    out = logits if of == "logit" else torch.sigmoid(logits)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    norms = grad.flatten(1).float().norm(dim=1)
    return (norms - target).square().mean(), logits, norms


def g_adv_loss(D: nn.Module, fake: torch.Tensor, c: torch.Tensor | None = None, form: AdvForm = "paper") -> torch.Tensor:
    """L_G (eq. 6) for the mapping network, scalar (04_losses.ipynb).

    fake: x' `[N, 3, H, W]` (keeps its graph to M). form 'paper': E[log(1 − sigmoid(D(x')))]
    = −E[softplus(D(x'))] (minimised); 'nonsaturating': E[softplus(−D(x'))] = −E[log sigmoid(D(x'))];
    'wgan': −E[D(x')]. D's parameters should be frozen (requires_grad False) during M's step.
    """
    if form not in _ADV_FORMS:
        raise ValueError(f"form must be one of {_ADV_FORMS}, got {form!r}")
    logits = _call_d(D, fake, c)
    if form == "paper":
        return -F.softplus(logits).mean()
    if form == "nonsaturating":
        return F.softplus(-logits).mean()
    return -logits.mean()


def d_loss(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, c: torch.Tensor | None = None,
           gp_weight: float = 1.0, form: AdvForm = "paper", gp_on: Literal["fake", "real", "interpolate"] = "fake",
           gp_of: Literal["logit", "probability"] = "logit", generator: torch.Generator | None = None,
           ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_D (eq. 7) for the discriminator, with the gradient penalty (04_losses.ipynb).

    real: x `[N, 3, H, W]`; fake: x' (detached here: D's step never trains M). form 'paper' and
    'nonsaturating' share the discriminator loss −E[log D(x)] − E[log(1 − D(x'))]
    = E[softplus(−D(x))] + E[softplus(D(x'))]; 'wgan': E[D(x')] − E[D(x)].
    Penalty: `gp_weight` · E[(‖∇D‖₂ − 1)²] at x' (`gp_on='fake'`, the paper), x ('real') or random
    interpolates between them ('interpolate', WGAN-GP; `generator` seeds the mixing weights).
    Returns (loss, parts) with parts `d_adv`, `gp`, `grad_norm`, `d_real`, `d_fake` (detached).
    """
    if form not in _ADV_FORMS:
        raise ValueError(f"form must be one of {_ADV_FORMS}, got {form!r}")
    if gp_on not in ("fake", "real", "interpolate"):
        raise ValueError(f"gp_on must be 'fake', 'real' or 'interpolate', got {gp_on!r}")
    _check_pair(real, fake, "real, fake")
    fake = fake.detach()
    use_gp = gp_weight != 0
    gp = norms = None
    if use_gp and gp_on == "real":
        gp, real_logits, norms = gradient_penalty(D, real, c, of=gp_of)
    else:
        real_logits = _call_d(D, real, c)
    if use_gp and gp_on == "fake":
        gp, fake_logits, norms = gradient_penalty(D, fake, c, of=gp_of)
    else:
        fake_logits = _call_d(D, fake, c)
    if use_gp and gp_on == "interpolate":
        alpha = torch.rand([real.shape[0], 1, 1, 1], generator=generator,
                           device=generator.device if generator is not None else real.device)
        alpha = alpha.to(device=real.device, dtype=real.dtype)
        gp, _, norms = gradient_penalty(D, torch.lerp(real.detach(), fake, alpha), c, of=gp_of)

    if form == "wgan":
        adv = fake_logits.mean() - real_logits.mean()
    else:
        adv = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    loss = adv + gp_weight * gp if use_gp else adv
    parts = {
        "d_adv": adv.detach(),
        "d_real": real_logits.detach().mean(),
        "d_fake": fake_logits.detach().mean(),
    }
    if use_gp:
        parts["gp"] = gp.detach()
        parts["grad_norm"] = norms.detach().mean()
    return loss, parts


# ---------------------------------------------------------------------------------------------
# eq. 8: identity


class IdentityLoss(nn.Module):
    """L_id = 1 − cos(f_arc(x), f_arc(x')) (eq. 8, read as a cosine; docs/design.md#the-identity-loss) (04_losses.ipynb).

    net: an identity network, images `[N, 3, H, W]` in [-1, 1] -> embeddings `[N, D]` (normalised
    or not; the cosine normalises). See `clip2gan.identity.identity_net_for(profile)`: ArcFace
    IR-SE50 for `ffhq`, the toy identity net for `toyfaces`, None (no identity loss) otherwise.
    The net is frozen; the target's embedding is computed without gradient.
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.net.eval()

    def train(self, mode: bool = True) -> "IdentityLoss":
        super().train(mode)
        self.net.eval()  # BatchNorm statistics of a pretrained face net must never move
        return self

    def forward(self, x_rec: torch.Tensor, x: torch.Tensor, reduction: Literal["mean", "none"] = "mean") -> torch.Tensor:
        """x_rec, x: `[N, 3, H, W]` in [-1, 1] -> scalar (or `[N]` with reduction='none')."""
        _check_pair(x_rec, x, "x_rec, x")
        e_rec = self.net(x_rec)
        with torch.no_grad():
            e = self.net(x)
        d = 1.0 - F.cosine_similarity(e_rec.float(), e.float(), dim=-1)
        if reduction == "mean":
            return d.mean()
        if reduction == "none":
            return d
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


# ---------------------------------------------------------------------------------------------
# eq. 9: noise on the CLIP feature and the diversity loss


@dataclass(frozen=True)
class NoiseConfig:
    """Gaussian noise on CLIP features (see the module docstring and docs/design.md#the-test-time-noise) (04_losses.ipynb).

    mean, std: of the Gaussian. scale: 'unit' measures mean and std in units of 1/sqrt(D), the RMS
    coordinate of a unit-norm D-dim feature (std s adds a noise vector of norm ≈ s), 'absolute'
    uses them per coordinate as given (the paper's literal N(0, 1)). mode: 'additive' (f + n) or
    'multiplicative' (f ⊙ n, scale ignored). renormalize: project the result back to unit norm
    (CLIP features are unit vectors and M is trained on unit vectors).
    """

    mean: float = 0.0
    std: float = 0.5
    scale: Literal["unit", "absolute"] = "unit"
    mode: Literal["additive", "multiplicative"] = "additive"
    renormalize: bool = True

    def __post_init__(self) -> None:
        if self.std < 0:
            raise ValueError(f"std must be >= 0, got {self.std}")
        if self.scale not in ("unit", "absolute"):
            raise ValueError(f"scale must be 'unit' or 'absolute', got {self.scale!r}")
        if self.mode not in ("additive", "multiplicative"):
            raise ValueError(f"mode must be 'additive' or 'multiplicative', got {self.mode!r}")

    @classmethod
    def paper_train(cls) -> "NoiseConfig":
        """The paper's training noise taken literally: + N(0, 1) per coordinate, no renormalisation."""
        return cls(mean=0.0, std=1.0, scale="absolute", mode="additive", renormalize=False)

    @classmethod
    def paper_test(cls, mode: Literal["additive", "multiplicative"] = "additive") -> "NoiseConfig":
        """The paper's test-time noise, μ = 1, σ² = 0.36: literally added ('additive', which
        swamps a unit feature), or read as a multiplicative factor ('multiplicative')."""
        if mode == "multiplicative":
            return cls(mean=1.0, std=0.6, mode="multiplicative", renormalize=True)
        return cls(mean=1.0, std=0.6, scale="absolute", mode="additive", renormalize=False)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def add_clip_noise(f: torch.Tensor, noise: NoiseConfig | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """f_img1 = f_img + noise (eq. 9's perturbed feature; also generation-time diversity) (04_losses.ipynb).

    f: `[N, D]` -> `[N, D]`. generator: a `torch.Generator` for reproducible noise (its device may
    differ from f's; the noise is drawn there and moved).
    """
    noise = noise or NoiseConfig()
    if f.ndim != 2:
        raise ValueError(f"features must be [N, D], got {tuple(f.shape)}")
    device = generator.device if generator is not None else f.device
    eps = torch.randn(f.shape, generator=generator, device=device, dtype=torch.float32).to(f.device)
    unit = 1.0 / math.sqrt(f.shape[1]) if noise.scale == "unit" else 1.0
    if noise.mode == "multiplicative":
        out = f.float() * (noise.mean + noise.std * eps)
    else:
        out = f.float() + (noise.mean + noise.std * eps) * unit
    if noise.renormalize:
        out = F.normalize(out, dim=-1)
    return out.to(f.dtype)


def diversity_loss(f_img: torch.Tensor, f_img_noisy: torch.Tensor, x_rec: torch.Tensor, x_rec_noisy: torch.Tensor,
                   eps: float = 1e-3) -> torch.Tensor:
    """L_div = d(f_img, f_img1) / d(x', x'1), l1 distances (eq. 9), scalar (04_losses.ipynb).

    f_img, f_img_noisy: `[N, D]`; x_rec, x_rec_noisy: `[N, 3, H, W]`. d is the mean absolute
    difference per sample; the ratio is taken per sample and averaged over the batch. Minimising
    it pushes the two outputs apart for a given feature distance (mode seeking, Mao et al. 2019).
    eps (in image units; 1e-3 is an eighth of one 8-bit level) bounds the loss by d_f / eps when M
    ignores the noise.
    """
    if f_img.shape != f_img_noisy.shape or f_img.ndim != 2:
        raise ValueError(f"features must both be [N, D], got {tuple(f_img.shape)} and {tuple(f_img_noisy.shape)}")
    _check_pair(x_rec, x_rec_noisy, "x_rec, x_rec_noisy")
    if x_rec.shape[0] != f_img.shape[0]:
        raise ValueError(f"batch sizes differ: {f_img.shape[0]} features, {x_rec.shape[0]} images")
    d_f = (f_img.float() - f_img_noisy.float()).abs().mean(dim=1)
    d_x = (x_rec.float() - x_rec_noisy.float()).abs().flatten(1).mean(dim=1)
    return (d_f / (d_x + eps)).mean()


# ---------------------------------------------------------------------------------------------
# eq. 10: the weighted total


@dataclass(frozen=True)
class LossWeights:
    """λ of eq. 10 and the penalty weight of eq. 7; defaults are the paper's (04_losses.ipynb)."""

    rec: float = 1.0
    lpips: float = 1.0
    adv: float = 0.1
    id: float = 1.0
    div: float = 1.0
    gp: float = 1.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, float]) -> "LossWeights":
        unknown = set(d) - set(asdict(cls()))
        if unknown:
            raise ValueError(f"unknown loss weights {sorted(unknown)}; known: {sorted(asdict(cls()))}")
        return cls(**d)


def total_loss(
    x: torch.Tensor,
    x_rec: torch.Tensor,
    *,
    weights: LossWeights | None = None,
    lpips: nn.Module | None = None,
    D: nn.Module | None = None,
    c: torch.Tensor | None = None,
    adv_form: AdvForm = "paper",
    identity: nn.Module | None = None,
    f_img: torch.Tensor | None = None,
    f_img_noisy: torch.Tensor | None = None,
    x_rec_noisy: torch.Tensor | None = None,
    rec_mode: Literal["mse", "rmse"] = "mse",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_M of eq. 10 and its parts (04_losses.ipynb).

    x: the input images, x_rec: G(M(C_img(x))), both `[N, 3, H, W]` in [-1, 1]. A part is computed
    when its weight is non-zero and what it needs is given: `lpips` (an `LPIPSLoss`), `D` (the
    discriminator; freeze its parameters for M's step), `identity` (an `IdentityLoss`; None for
    AFHQ/LSUN), and for the diversity term `f_img`, `f_img_noisy` and `x_rec_noisy`. Returns
    (total, parts): parts holds the unweighted, detached value of each computed term
    ('rec', 'lpips', 'adv', 'id', 'div').
    """
    weights = weights or LossWeights()
    _check_pair(x, x_rec)
    parts: dict[str, torch.Tensor] = {}
    total = x_rec.new_zeros((), dtype=torch.float32)

    def add(name: str, weight: float, value: torch.Tensor) -> None:
        nonlocal total
        parts[name] = value.detach()
        total = total + weight * value

    if weights.rec:
        add("rec", weights.rec, reconstruction_loss(x, x_rec, mode=rec_mode))
    if weights.lpips and lpips is not None:
        add("lpips", weights.lpips, lpips(x_rec, x))
    if weights.adv and D is not None:
        add("adv", weights.adv, g_adv_loss(D, x_rec, c, form=adv_form))
    if weights.id and identity is not None:
        add("id", weights.id, identity(x_rec, x))
    if weights.div and f_img is not None and f_img_noisy is not None and x_rec_noisy is not None:
        add("div", weights.div, diversity_loss(f_img, f_img_noisy, x_rec, x_rec_noisy))
    return total, parts


@contextlib.contextmanager
def requires_grad(module: nn.Module, flag: bool):
    """Temporarily set `requires_grad` on every parameter of `module` (e.g. freeze D for M's step)."""
    previous = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(flag)
    try:
        yield module
    finally:
        for p, r in zip(module.parameters(), previous):
            p.requires_grad_(r)


# ---------------------------------------------------------------------------------------------
# beyond eq. 10: e4e's regularisers and the latent loss (trainer options, off by default)


def _check_ws(ws: torch.Tensor, name: str = "ws") -> None:
    if not isinstance(ws, torch.Tensor) or ws.ndim != 3:
        raise ValueError(f"{name} must be w+ codes [N, num_ws, w_dim], got "
                         f"{tuple(ws.shape) if isinstance(ws, torch.Tensor) else type(ws).__name__}")


def _rows(ws: torch.Tensor, rows: int | None) -> int:
    n = ws.shape[1] if rows is None else int(rows)
    if not 1 <= n <= ws.shape[1]:
        raise ValueError(f"rows must be from 1 to num_ws = {ws.shape[1]}, got {rows}")
    return n


def delta_regularizer(ws: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """e4e's delta regulariser, scalar (05_training.ipynb):

        L_d-reg = Σ_{i=1}^{n-1} (1/N) Σ_batch ‖w_i − w_0‖₂

    the l2 norm (not squared) of each row's offset from the first row, averaged over the batch and
    summed over the rows (Tov et al., "Designing an Encoder for StyleGAN Image Manipulation",
    SIGGRAPH 2021). ws: `[N, num_ws, w_dim]`; rows: n, the rows that count (None: all num_ws;
    with the progressive schedule, the rows unlocked so far — the others equal w_0 and add 0). e4e's
    code sums over the rows before the newest unlocked one; this sums over every unlocked row, as its
    paper writes. Zero for a code with equal rows (StyleGAN's own w), where the gradient is taken as 0.
    """
    _check_ws(ws)
    n = _rows(ws, rows)
    if n == 1:
        return ws.new_zeros((), dtype=torch.float32)
    deltas = ws[:, 1:n].float() - ws[:, :1].float()  # [N, n-1, w_dim]
    return torch.linalg.vector_norm(deltas, dim=-1).mean(dim=0).sum()


class LatentDiscriminator(nn.Module):
    """e4e's latent discriminator D_w: single w vectors `[N, w_dim]` → logits `[N]` (05_training.ipynb).

    `layers` fully connected layers, `layers − 1` of width `hidden_dim` (default w_dim) each followed by
    LeakyReLU(0.2), then one to a logit: e4e's 4-layer MLP (Tov et al., SIGGRAPH 2021), plain
    `nn.Linear` layers as theirs. Real inputs are G's own w = G.mapping(z, c), fake ones the rows of M's codes.
    """

    def __init__(self, w_dim: int, layers: int = 4, hidden_dim: int | None = None):
        super().__init__()
        if layers < 1 or w_dim < 1:
            raise ValueError(f"LatentDiscriminator needs w_dim >= 1 and layers >= 1, got {w_dim} and {layers}")
        self.w_dim, self.layers = int(w_dim), int(layers)
        self.hidden_dim = int(hidden_dim or w_dim)
        widths = [self.w_dim] + [self.hidden_dim] * (self.layers - 1)
        blocks: list[nn.Module] = []
        for a, b in zip(widths[:-1], widths[1:]):
            blocks += [nn.Linear(a, b), nn.LeakyReLU(0.2)]
        blocks.append(nn.Linear(widths[-1], 1))
        self.net = nn.Sequential(*blocks)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        """w: `[N, w_dim]` → logits `[N]` (float32)."""
        if w.ndim != 2 or w.shape[1] != self.w_dim:
            raise ValueError(f"LatentDiscriminator expects w vectors [N, {self.w_dim}], got {tuple(w.shape)}")
        return self.net(w.float())[:, 0]


def latent_g_loss(D_w: nn.Module, ws: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """M's adversarial term against the latent discriminator, scalar (05_training.ipynb):

        L_adv,w = (1/n) Σ_{i<n} E_N[softplus(−D_w(w_i))] = −E[log sigmoid(D_w(w_i))]

    the non-saturating generator loss averaged over the first n rows of M's codes (e4e; rows: n, None:
    all). ws: `[N, num_ws, w_dim]`, keeps its graph to M; freeze D_w's parameters for M's step.
    """
    _check_ws(ws)
    n = _rows(ws, rows)
    logits = D_w(ws[:, :n].reshape(-1, ws.shape[-1]))
    return F.softplus(-logits).mean()


def latent_d_loss(D_w: nn.Module, real_w: torch.Tensor, fake_w: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """D_w's non-saturating loss, scalar (05_training.ipynb):

        L_D,w = E_real[softplus(−D_w(w))] + E_fake[softplus(D_w(w))] = −E[log D(w)] − E[log(1 − D(w_fake))]

    real_w: G's own w `[N_r, w_dim]`; fake_w: rows of M's codes `[N_f, w_dim]` (detached here).
    Returns (loss, parts) with parts 'real', 'fake' (mean logits) and 'loss' (detached). The R1 penalty
    is `latent_r1`, applied on its own schedule as e4e does.
    """
    real_logits = D_w(real_w.detach())
    fake_logits = D_w(fake_w.detach())
    loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    return loss, {"loss": loss.detach(), "real": real_logits.detach().mean(), "fake": fake_logits.detach().mean()}


def latent_r1(D_w: nn.Module, real_w: torch.Tensor) -> torch.Tensor:
    """R1 = E_real[‖∇_w D_w(w)‖₂²], the squared gradient norm of D_w's logit at real codes, scalar (05_training.ipynb).

    real_w: `[N, w_dim]` (treated as a constant). Built with `create_graph=True` so it trains D_w. The
    penalty is Mescheder et al.'s ("Which Training Methods for GANs do actually Converge?", ICML 2018);
    e4e adds (γ/2) · R1 · k to D_w's loss in an extra step every k steps (γ = 10, k = 16: the lazy
    regularisation of StyleGAN2, Karras et al., "Analyzing and Improving the Image Quality of StyleGAN",
    CVPR 2020); the trainer does the same.
    """
    w = real_w.detach().float().requires_grad_(True)
    (grad,) = torch.autograd.grad(D_w(w).sum(), w, create_graph=True)
    return grad.square().sum(dim=1).mean()


def latent_loss(ws: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """‖M(C_img(G(w))) − w‖², the mean over batch, rows and coordinates, scalar (05_training.ipynb):

        L_w = (1/(N num_ws w_dim)) Σ_n Σ_r Σ_j (ws[n, r, j] − w[n, j])²

    ws: M's codes `[N, num_ws, w_dim]` for images G made from the codes w; w: `[N, w_dim]` (one w
    broadcast to every row, as G.mapping does) or `[N, num_ws, w_dim]`. Only synthetic training images
    have such a code: the paper trains on real images with image losses only.
    """
    _check_ws(ws)
    w = w.to(device=ws.device, dtype=torch.float32)
    if w.ndim == 2:
        w = w.unsqueeze(1)
    if w.ndim != 3 or w.shape[0] != ws.shape[0] or w.shape[-1] != ws.shape[-1] or w.shape[1] not in (1, ws.shape[1]):
        raise ValueError(f"w must be [N, w_dim] or [N, num_ws, w_dim] for ws {tuple(ws.shape)}, got {tuple(w.shape)}")
    return (ws.float() - w).square().mean()
