"""StyleCLIP latent optimisation: a w+ code optimised against the CLIP loss, one code at a time (10_comparisons.ipynb).

Patashnik, Wu, Shechtman, Cohen-Or, Lischinski, "StyleCLIP: Text-Driven Manipulation of StyleGAN
Imagery", ICCV 2021, §4 (their eq. 1). Given a text t and a source code w_s, solve

    w* = argmin_{w ∈ W+}  D_CLIP(G(w), t) + λ_L2 ‖w − w_s‖² + λ_ID L_ID(G(w_s), G(w)),

    D_CLIP(x, t) = 1 − cos(C_img(x), C_text(t)),    L_ID(x, x') = 1 − cos(R(x), R(x')),

with Adam on all num_ws rows of w (R: a face-recognition network, ArcFace in the paper). The
authors' code squares the distance and sums it over every coordinate (`((w_s − w) ** 2).sum()`),
which is what `styleclip_loss` computes, and anneals the learning rate: a cosine ramp-up over the
first 5 % of the steps and a cosine ramp-down over the last 25 % (`lr_schedule`); at step 0 the
rate is 0, as there. Nothing is trained: every image costs `steps` forward and backward passes
through G and CLIP, which makes StyleCLIP the slow reference among the baselines.

The two uses, as in the authors' code:

* Generation (text → image, their 'free_generation' mode): D_CLIP alone (their code drops the L2
  and identity terms there), from a start near G's mean code. See `StyleCLIPOptimizer.generate`.
* Editing (image + text → image, their 'edit' mode): all three terms, from the inversion of the image;
  the identity term compares G(w) with G(w_s), the reconstruction, not with the photograph.
  See `StyleCLIPOptimizer.edit_pairs`.

Defaults (`DEFAULTS`) are the authors': lr 0.1, λ_L2 0.008, λ_ID 0.005 and 40 steps, the settings
of their optimisation notebook (their script's default is 300 steps). 40 steps also keep the toy
scoring sets affordable: on one CPU thread of a shared two-core machine a generated image costs
0.2-0.35 s and an edit (with the identity term) 0.3-0.5 s, so 500 of either take 2-4 minutes.

How this rebuild departs from the paper (each a consequence of the toy world or of the comparison):

* The start of generation. StyleCLIP starts free generation from G's mean latent (4,096 samples).
  The toy G is conditional: its `mapping.w_avg` is the running mean of w over the training labels
  and z, within 0.5 (of a typical ‖w − w_avg‖ ≈ 13) of the mean of 2,000 fresh w(z, c) with labels
  drawn from the data; the mapping of the mean label vector lies 9.5 away from that mean, so it is not
  used. Every code starts at w_avg broadcast to the num_ws rows plus a small seeded perturbation —
  the truncation trick with a small ψ towards a fresh sample, w_s = w_avg + ψ (w(z, c) − w_avg) with
  ψ = `start_psi` — so that the n samples of a caption differ (a single mean start would give n
  identical images). StyleCLIP's edit mode without a latent file starts from such a sample at ψ = 0.7.
* The source code of editing is CLIP2GAN's own inversion w_s = M(C_img(x)) (the toy world has no e4e
  encoder; StyleCLIP edits e4e inversions of real images). Both editing baselines and CLIP2GAN then
  start from the same code, so the comparison measures the edit, not the inverter.
* β. StyleCLIP has no edit strength: its knobs are λ_L2 and the number of steps. To fit the common
  `edit_pairs(..., beta)` interface the edit is w_s + β (w* − w_s): β = 1 is StyleCLIP's result,
  β = 0 the reconstruction G(w_s), other values interpolate (or extrapolate) along the optimised step.
* Scale of λ_L2. The sum runs over 8 × 128 coordinates here against 18 × 512 on FFHQ, so the same
  λ_L2 weighs a given per-coordinate move ~9× less in total. The authors' value is kept, not tuned:
  at λ_L2 = 0.008 the toy edits are timid (they keep the other attributes but often miss the target;
  10_comparisons.ipynb measures it), at 0.002 they reach the target more often and keep less.
* The identity network is the toy world's (`clip2gan.identity.identity_net_for('toyfaces')`), not
  ArcFace; the images go to CLIP at the generator's 32 px (CLIP resizes them), not 1024 px average-pooled
  to 224.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from clip2gan.clip_encoder import check_prompts
from clip2gan.edit import check_beta, check_text
from clip2gan.images import prepare_images
from clip2gan.profiles import PROFILES

if TYPE_CHECKING:
    from clip2gan.model import CLIP2GAN

__all__ = ["StyleCLIPSettings", "DEFAULTS", "lr_schedule", "clip_distance", "styleclip_loss", "StyleCLIPOptimizer"]


@dataclass(frozen=True)
class StyleCLIPSettings:
    """The knobs of StyleCLIP's latent optimisation, with the authors' values as defaults (10_comparisons.ipynb).

    steps: Adam steps per code (their notebook: 40; their script: 300). lr: the peak learning rate
    (0.1). l2: λ_L2 on Σ (w − w_s)² (0.008). id_weight: λ_ID (0.005; editing only). rampup, rampdown:
    fractions of the steps the learning rate ramps up and down over (0.05, 0.25). start_psi: ψ of the
    perturbed generation start w_avg + ψ (w(z, c) − w_avg) (this rebuild; see the module docstring).
    """

    steps: int = 40
    lr: float = 0.1
    l2: float = 0.008
    id_weight: float = 0.005
    rampup: float = 0.05
    rampdown: float = 0.25
    start_psi: float = 0.3

    def __post_init__(self) -> None:
        if int(self.steps) != self.steps or self.steps < 0:
            raise ValueError(f"steps must be an integer >= 0, got {self.steps!r}")
        for name in ("lr", "l2", "id_weight", "start_psi"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not 0 < self.rampup <= 1 or not 0 < self.rampdown <= 1:
            raise ValueError(f"rampup and rampdown must be in (0, 1], got {self.rampup}, {self.rampdown}")


DEFAULTS = StyleCLIPSettings()


def lr_schedule(t: float, lr: float, rampdown: float = 0.25, rampup: float = 0.05) -> float:
    """The learning rate at progress t = step / steps ∈ [0, 1) (StyleCLIP's schedule) (10_comparisons.ipynb).

    lr · min(1, t / rampup) · (½ − ½ cos(π · min(1, (1 − t) / rampdown))): 0 at t = 0, a linear ramp
    to lr over the first `rampup`, flat, then a half-cosine down to 0 over the last `rampdown`.
    """
    down = min(1.0, (1.0 - t) / rampdown)
    return lr * min(1.0, t / rampup) * (0.5 - 0.5 * math.cos(down * math.pi))


def clip_distance(clip: nn.Module, images: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """D_CLIP = 1 − cos(C_img(x), C_text(t)) per image, `[N]`, differentiable in the images (10_comparisons.ipynb).

    images: `[N, 3, H, W]` in [-1, 1]; text_features: `[N, D]` or `[1, D]` (unit or not: the cosine normalises).
    """
    f = clip.encode_image(images)
    return 1.0 - F.cosine_similarity(f.float(), text_features.to(f.device).float(), dim=-1)


def styleclip_loss(clip: nn.Module, images: torch.Tensor, text_features: torch.Tensor, ws: torch.Tensor,
                   ws_start: torch.Tensor, l2: float = DEFAULTS.l2, identity: nn.Module | None = None,
                   id_weight: float = 0.0, reference: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """StyleCLIP's eq. 1 per code: (loss `[N]`, {'clip', 'l2', 'id'} each `[N]`) (10_comparisons.ipynb).

    loss_i = D_CLIP(images_i, t_i) + l2 · Σ (ws_i − ws_start_i)² + id_weight · L_ID(images_i, reference_i).
    images: G(ws) `[N, 3, R, R]`; ws, ws_start: `[N, num_ws, w_dim]`; text_features: `[N or 1, D]`.
    identity: a `clip2gan.losses.IdentityLoss` (L_ID = 1 − cos of identity embeddings), used when
    `id_weight > 0`, with `reference` `[N, 3, R, R]` = G(ws_start). The per-code form keeps a batch of
    codes independent: summing it gives each code its own gradient.
    """
    if ws.shape != ws_start.shape or ws.ndim != 3:
        raise ValueError(f"ws and ws_start must both be [N, num_ws, w_dim], got {tuple(ws.shape)} and "
                         f"{tuple(ws_start.shape)}")
    d_clip = clip_distance(clip, images, text_features)
    d_l2 = (ws - ws_start).square().sum(dim=(1, 2))
    d_id = torch.zeros_like(d_clip)
    if id_weight > 0:
        if identity is None or reference is None:
            raise ValueError("id_weight > 0 needs an identity loss and the reference images G(ws_start)")
        d_id = identity(images, reference, reduction="none")
    loss = d_clip + float(l2) * d_l2 + float(id_weight) * d_id
    return loss, {"clip": d_clip, "l2": d_l2, "id": d_id}


class StyleCLIPOptimizer:
    """StyleCLIP latent optimisation on a frozen CLIP and StyleGAN2 (the module docstring has the method) (10_comparisons.ipynb).

        opt = StyleCLIPOptimizer.from_model(CLIP2GAN.from_pretrained("toyfaces"))
        images = opt.generate(["a smiling person with red hair"], n_per_prompt=4, seed=0)   # [4, 3, 32, 32]
        before, after = opt.edit_pairs(renders, ["a person wearing eyeglasses"] * len(renders))

    clip: a `ClipEncoder` (differentiable `encode_image`); G: a StyleGAN2 `Generator` (`mapping.w_avg`,
    `synthesis`). steps, lr, l2, id_weight, start_psi, rampup, rampdown: `StyleCLIPSettings`.
    identity: a `clip2gan.losses.IdentityLoss` for editing (None: no identity term). encoder: images
    `[N, 3, R, R]` → source codes `[N, num_ws, w_dim]` for editing (`CLIP2GAN.encode_image`, M(C_img(x))).
    profile: the world, for the labels of a conditional G's perturbed starts. batch_size: codes
    optimised together (independent problems sharing one forward pass).
    """

    def __init__(self, clip: nn.Module, G: nn.Module, steps: int = DEFAULTS.steps, lr: float = DEFAULTS.lr,
                 l2: float = DEFAULTS.l2, identity: nn.Module | None = None, id_weight: float = DEFAULTS.id_weight,
                 start_psi: float = DEFAULTS.start_psi, rampup: float = DEFAULTS.rampup,
                 rampdown: float = DEFAULTS.rampdown, encoder: Callable[[torch.Tensor], torch.Tensor] | None = None,
                 profile: str = "toyfaces", batch_size: int = 128, noise_mode: str = "const"):
        self.settings = StyleCLIPSettings(steps=steps, lr=lr, l2=l2, id_weight=id_weight, rampup=rampup,
                                          rampdown=rampdown, start_psi=start_psi)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.clip, self.G, self.identity, self.encoder = clip, G, identity, encoder
        self.profile, self.batch_size, self.noise_mode = profile, int(batch_size), noise_mode
        self.G.requires_grad_(False).eval()
        self.clip.requires_grad_(False)

    @classmethod
    def from_model(cls, model: CLIP2GAN, identity: bool = True, **kwargs: Any) -> "StyleCLIPOptimizer":
        """On a CLIP2GAN model's CLIP and G, editing from its inversion M(C_img(x)), with the world's identity
        net (`identity=False`, or a world without one: no identity term) (10_comparisons.ipynb). Other
        keyword arguments go to the constructor."""
        from clip2gan.identity import identity_net_for
        from clip2gan.losses import IdentityLoss

        loss = None
        if identity and model.profile in PROFILES:  # a model of no known world has no identity net
            net = identity_net_for(model.profile, device=model.device)
            loss = IdentityLoss(net).to(model.device) if net is not None else None
        kwargs.setdefault("profile", model.profile)
        return cls(model.clip, model.generator, identity=loss, encoder=model.encode_image, **kwargs)

    @classmethod
    def from_pretrained(cls, profile: str = "toyfaces", device: str | torch.device = "cpu",
                        **kwargs: Any) -> "StyleCLIPOptimizer":
        """On the shipped world of `profile` (`CLIP2GAN.from_pretrained`) (10_comparisons.ipynb)."""
        from clip2gan.model import CLIP2GAN

        return cls.from_model(CLIP2GAN.from_pretrained(profile, device=device), **kwargs)

    # -- properties ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.G.parameters()).device

    @property
    def num_ws(self) -> int:
        return int(self.G.num_ws)

    @property
    def w_dim(self) -> int:
        return int(self.G.w_dim)

    @property
    def resolution(self) -> int:
        return int(self.G.img_resolution)

    def synthesize(self, ws: torch.Tensor) -> torch.Tensor:
        """G(ws): `[N, num_ws, w_dim]` → `[N, 3, R, R]` (unclamped; what the losses see)."""
        if ws.ndim != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        return self.G.synthesis(ws.to(self.device), noise_mode=self.noise_mode)

    # -- the optimisation ------------------------------------------------------------------------
    def optimize(self, ws_start: torch.Tensor, text_features: torch.Tensor, l2: float | None = None,
                 id_weight: float | None = None, progress: bool = False) -> torch.Tensor:
        """w* for every code: `ws_start` `[N, num_ws, w_dim]`, `text_features` `[N, D]` → `[N, num_ws, w_dim]`
        (10_comparisons.ipynb).

        Adam on all rows with `lr_schedule`, `steps` steps, `batch_size` codes at a time. l2, id_weight:
        override the settings' (generation passes 0 for both). The identity reference of each code is
        G(ws_start). Zero steps return `ws_start`.
        """
        s = self.settings
        l2 = s.l2 if l2 is None else float(l2)
        id_weight = s.id_weight if id_weight is None else float(id_weight)
        if self.identity is None:
            id_weight = 0.0
        if ws_start.ndim != 3 or tuple(ws_start.shape[1:]) != (self.num_ws, self.w_dim):
            raise ValueError(f"ws_start must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws_start.shape)}")
        if text_features.ndim != 2 or text_features.shape[0] != ws_start.shape[0]:
            raise ValueError(f"text_features must be [N, D] with N = {ws_start.shape[0]}, got {tuple(text_features.shape)}")
        ws_start = ws_start.detach().float().to(self.device)
        text_features = text_features.detach().float().to(self.device)
        out = []
        bar = tqdm(total=len(ws_start) * s.steps, desc="StyleCLIP", unit="code-step", disable=not progress)
        for lo in range(0, len(ws_start), self.batch_size):
            start = ws_start[lo:lo + self.batch_size]
            text = text_features[lo:lo + self.batch_size]
            reference = None
            if id_weight > 0:
                with torch.no_grad():
                    reference = self.synthesize(start)
            w = start.clone().requires_grad_(True)
            opt = torch.optim.Adam([w], lr=s.lr)
            for i in range(s.steps):
                opt.param_groups[0]["lr"] = lr_schedule(i / s.steps, s.lr, s.rampdown, s.rampup)
                loss, _ = styleclip_loss(self.clip, self.synthesize(w), text, w, start, l2=l2,
                                         identity=self.identity, id_weight=id_weight, reference=reference)
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()  # a sum: each code's gradient is its own problem's
                opt.step()
                bar.update(len(start))
            out.append(w.detach())
        bar.close()
        return torch.cat(out) if out else ws_start.clone()

    # -- generation ------------------------------------------------------------------------------
    @torch.no_grad()
    def generation_starts(self, n: int, seed: int = 0) -> torch.Tensor:
        """`n` starts w_avg + ψ (w(z, c) − w_avg), `[n, num_ws, w_dim]`, deterministic per seed (10_comparisons.ipynb).

        z ~ N(0, I) from `seed`; c (a conditional G) labels drawn from the world's data
        (`clip2gan.train.conditioning_for`); ψ = `start_psi` (0: every start is w_avg).
        """
        from clip2gan.train import conditioning_for

        G = self.G
        w_avg = G.mapping.w_avg.detach().float()[None, None].expand(n, self.num_ws, self.w_dim)
        psi = self.settings.start_psi
        if psi == 0 or n == 0:
            return w_avg.clone().to(self.device)
        z = torch.randn([n, G.z_dim], generator=torch.Generator().manual_seed(int(seed)))
        c = None
        if G.c_dim:  # labels of the world's data; a G of no known world gets zeros
            c = (conditioning_for(G, n, np.random.default_rng([int(seed), 10]), self.profile) if self.profile in PROFILES
                 else torch.zeros([n, G.c_dim]))
        ws = G.mapping(z.to(self.device), None if c is None else c.to(self.device), update_emas=False).float()
        return torch.lerp(w_avg.to(self.device), ws, psi)

    def generate_latents(self, captions: Sequence[str], n_per_prompt: int = 1, seed: int = 0,
                         progress: bool = False) -> torch.Tensor:
        """The optimised codes of `generate`, `[len(captions) * n_per_prompt, num_ws, w_dim]` (10_comparisons.ipynb)."""
        captions = check_prompts(captions)
        n = int(n_per_prompt)
        if n < 1:
            raise ValueError(f"n_per_prompt must be >= 1, got {n_per_prompt}")
        with torch.no_grad():
            text = self.clip.encode_text(captions).float().repeat_interleave(n, dim=0)  # prompt-major
        starts = self.generation_starts(len(text), seed=seed)
        return self.optimize(starts, text, l2=0.0, id_weight=0.0, progress=progress)

    def generate(self, captions: Sequence[str], n_per_prompt: int = 1, seed: int = 0,
                 progress: bool = False) -> torch.Tensor:
        """Text → images `[len(captions) * n_per_prompt, 3, R, R]` in [-1, 1] on the CPU, prompt-major (10_comparisons.ipynb).

        One code per (caption, sample), each started at its own perturbed mean code (`generation_starts`)
        and optimised on D_CLIP alone (StyleCLIP's free generation). Deterministic per seed.
        """
        ws = self.generate_latents(captions, n_per_prompt, seed, progress=progress)
        with torch.no_grad():
            return self.synthesize(ws).clamp(-1, 1).float().cpu()

    # -- editing ---------------------------------------------------------------------------------
    def edit_latents(self, images: Any, texts: Sequence[str], progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(w_s, w*) `[N, num_ws, w_dim]` each: the inversions of `images` and their optimised edits (10_comparisons.ipynb)."""
        if self.encoder is None:
            raise ValueError("editing needs an encoder for the source codes: build with StyleCLIPOptimizer.from_model(model) "
                             "or pass encoder=model.encode_image")
        x = prepare_images(images, self.resolution, warn=False)
        texts = list(texts) if not isinstance(texts, str) else [texts]
        if len(texts) != len(x):
            raise ValueError(f"{len(x)} images but {len(texts)} texts: give one edit text per image")
        for i, t in enumerate(texts):
            check_text(t, f"texts[{i}]")
        with torch.no_grad():
            ws_start = self.encoder(x.to(self.device)).float()
            unique = sorted(set(texts))
            f = self.clip.encode_text(unique).float()
            text = f[torch.tensor([unique.index(t) for t in texts], device=f.device)]
        return ws_start, self.optimize(ws_start, text, progress=progress)

    def edit_pairs(self, images: Any, texts: Sequence[str], beta: float = 1.0, seed: int = 0,
                   progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(before, after) `[N, 3, R, R]` in [-1, 1] on the CPU: G(w_s) and G(w_s + β (w* − w_s)) (10_comparisons.ipynb).

        images: `[N, 3, H, W]` (anything `clip2gan.images.prepare_images` reads); texts: one edit per
        image. w_s = the encoder's inversion (CLIP2GAN's M(C_img(x))), w* = StyleCLIP's optimum with
        the L2 and identity terms. β = 1 is StyleCLIP's edit, β = 0 the reconstruction (StyleCLIP has
        no β; see the module docstring). The optimisation is deterministic: `seed` is accepted for the
        common interface and unused.
        """
        beta = check_beta(beta)
        ws_start, ws_opt = self.edit_latents(images, texts, progress=progress)
        ws_edit = ws_start + beta * (ws_opt - ws_start) if beta != 1.0 else ws_opt
        with torch.no_grad():
            both = self.synthesize(torch.cat([ws_start, ws_edit])).clamp(-1, 1).float().cpu()
        return both[:len(ws_start)], both[len(ws_start):]

    def seconds_per_code(self, n: int = 128, text: str = "a smiling person") -> float:
        """Measured seconds of optimisation per code, over `n` codes optimised together (10_comparisons.ipynb)."""
        start = time.perf_counter()
        self.generate_latents([text], n_per_prompt=n, seed=0)
        return (time.perf_counter() - start) / n
