"""clip2latent: a diffusion prior over StyleGAN's w, conditioned on a noise-augmented CLIP embedding (10_comparisons.ipynb).

Pinkney & Li, "clip2latent: Text driven sampling of a pre-trained StyleGAN using denoising diffusion
and CLIP", British Machine Vision Conference (BMVC) 2022.

Like CLIP2GAN, clip2latent never sees a caption in training: it learns from the generator's own
samples and relies on CLIP putting a caption near the images it describes. Unlike CLIP2GAN's
deterministic M, its map from a CLIP embedding to a latent is a conditional diffusion model, so one
caption yields many latents.

Training pairs, from G alone (`generate_pairs`)::

    z ~ N(0, I),  c ~ p(c)                  (c: the toy G's attribute labels, `toy.faces.sample_c`)
    w = G.mapping(z, c)[:, 0]               one w [w_dim] (the mapping broadcasts it to num_ws rows)
    x = G.synthesis(w repeated num_ws times, noise_mode='const')
    e = C_img(x)                            unit norm
    ŵ = (w − μ_w) / σ_w                     per-dimension statistics over the pairs, stored with the prior

Noise augmentation of the condition (`augment_embedding`), so that a text embedding, which sits
elsewhere on CLIP's sphere than the image embeddings (the modality gap), falls inside what the prior
saw::

    ẽ = (e + σ u) / ‖e + σ u‖,   u = ε / ‖ε‖,  ε ~ N(0, I)

u is a random unit direction (the authors' implementation), so cos(ẽ, e) ≈ 1 / sqrt(1 + σ²) in any
dimension; σ = 1 is their FFHQ setting and the best of their sweep over σ ∈ [0, 2] (`--embed-noise`).

The DDPM objective with classifier-free guidance training (`diffusion_loss`)::

    t ~ U{0, …, T−1},  ε ~ N(0, I),  x_t = sqrt(ᾱ_t) ŵ + sqrt(1 − ᾱ_t) ε     (`DDPMScheduler.add_noise`)
    m ~ Bernoulli(1 − p):  condition = ẽ if m else ∅                         (∅: a learned null embedding)
    L = ‖D_θ(x_t, t, condition) − ŵ‖²                                        (`--prediction sample`, the paper's)
    L = ‖D_θ(x_t, t, condition) − ε‖²                                        (`--prediction epsilon`)

with the cosine schedule ᾱ_t (T = 1000) and p = 0.2, as the paper. D_θ predicts ŵ itself (x0) by
default, as the paper's prior does.

Sampling from text (`Clip2Latent.sample_w`, `Clip2Latent.generate`)::

    e = C_text(caption);  x_T ~ N(0, I)
    D̃ = D_θ(x_t, t, ∅) + s · (D_θ(x_t, t, e) − D_θ(x_t, t, ∅))           (`guided`; s = 1: no guidance)
    x_{t'} = DDIM (η = 0) or DPM-Solver++ step with D̃                       (diffusers, `--sampler`, `--sample-steps`)
    w = μ_w + σ_w x_0;  image = G.synthesis(w repeated num_ws times)

Guiding the predicted x0 (as the paper) is guiding ε: ε̂ = (x_t − sqrt(ᾱ_t) x̂0) / sqrt(1 − ᾱ_t) is the
same affine function of x̂0 for both branches, so ε̃ = ε̂_∅ + s (ε̂_e − ε̂_∅) exactly.
`generate(..., rerank=k)` keeps, per output, the best of k samples by CLIP score
(`clip2gan.baselines.rerank`), as the paper's figures and evaluation do.

How this rebuild differs from the paper:

* the denoiser is a residual MLP written here (FiLM-conditioned on the timestep and the embedding),
  not the DALL·E 2 prior's causal transformer the paper reuses;
* it is sized for a CPU: 16,384 pairs and 4,000 steps of 256 at lr 1e-3 with cosine decay and an EMA
  of 0.999 (minutes on one thread), not the paper's large pre-generated set and up to 10⁶ steps at
  lr 1e-4 with an EMA of 0.9999;
* w, not w+ (the paper's main models also sample one w and repeat it; it tries w+ as a variant);
* the toy G is conditional on attribute labels, so each pair samples its c from the data
  distribution and the prior learns w given e with c marginalised out;
* the samplers are diffusers' DDIM (η = 0, trailing timesteps) or DPM-Solver++, not the paper's
  respaced ancestral DDPM sampler; CLIP is the toy world's 128-d CLIP, not ViT-B/32.

Measured in the toy world (three training seeds, the default flags; 200 held-out captions of
`clip2gan.evaluation.protocol.eval_data`, one sample each, read by the attribute classifier): the
stated attributes appear in 99.4 / 99.5 / 99.2 % of cases at s = 1, within half a point of that at
s = 2 or 3 (guidance buys nothing measurable here and narrows the samples), in 42-44 % with the
condition dropped (s = 0: the floor), and in 99.4-99.7 % with `rerank=8`. A trial run without the
noise augmentation (σ = 0) reached 98.0 % where σ = 1 reached 99.4 %.

Command line (a run folder holds `config.json`, `pairs.safetensors`, `checkpoint.safetensors`,
`log.jsonl` and, at the end, `prior.safetensors` with `prior.json`)::

    python -m clip2gan.baselines.clip2latent --out runs/clip2latent-s0 --seed 0
    python -m clip2gan.baselines.clip2latent --out runs/clip2latent-s0 --resume     # continue a killed run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from clip2gan.baselines.rerank import rerank as rerank_samples
from clip2gan.checkpoint import (
    CorruptCheckpoint,
    atomic_write_text,
    load_safetensors,
    load_state,
    save_safetensors,
    save_state,
)
from clip2gan.cli import add_config_args, given_fields, option
from clip2gan.clip_encoder import check_prompts
from clip2gan.model import build_clip, check_world, load_generator_for_profile, world_fingerprint
from clip2gan.runtime import pick_device
from clip2gan.toy.faces import C_DIM, sample_c

__all__ = [
    "PRIOR_FORMAT",
    "Clip2LatentConfig",
    "Denoiser",
    "Clip2Latent",
    "Clip2LatentTrainer",
    "augment_embedding",
    "w_statistics",
    "normalise_w",
    "denormalise_w",
    "guided",
    "train_scheduler",
    "sampling_scheduler",
    "forward_noise",
    "diffusion_loss",
    "generate_pairs",
    "main",
]

PRIOR_FORMAT = "clip2gan.clip2latent"
PREDICTIONS = ("sample", "epsilon")
SAMPLERS = ("ddim", "dpm")
BETA_SCHEDULES = ("squaredcos_cap_v2", "linear", "scaled_linear")


@dataclass
class Clip2LatentConfig:
    """Every knob of a clip2latent run (stored in its config.json and prior.json) (10_comparisons.ipynb).

    Each field is a flag of `python -m clip2gan.baselines.clip2latent` (`batch_size` → `--batch-size`).
    The defaults are the full-size run: about 4 minutes of one CPU thread for the toy world (sampling
    the pairs ≈ 55 s, the 4,000 steps ≈ 180 s); on a busy machine the wall-clock time grows.
    """

    profile: str = option("toyfaces", "the world whose CLIP and generator the prior is trained on")
    out: str = option("", "run folder (default runs/clip2latent-s<seed>)")
    seed: int = option(0, "seed of the pairs, the denoiser's initialisation and every training draw")
    pairs: int = option(16384, "(w, C_img(G(w))) pairs sampled from G before training")
    pair_batch_size: int = option(256, "pairs synthesised and encoded at once")
    steps: int = option(4000, "optimiser steps (the lr schedule spans them)")
    batch_size: int = option(256, "pairs per step")
    lr: float = option(1e-3, "AdamW peak learning rate, cosine decay to 0 (the paper: 1e-4 over up to 1e6 steps)")
    weight_decay: float = option(1e-2, "AdamW weight decay (the paper: 1e-2)")
    warmup_steps: int = option(100, "linear warm-up steps of the learning rate")
    ema_decay: float = option(0.999, "EMA decay of the exported weights (the paper: 0.9999 over far more steps)")
    hidden_dim: int = option(256, "width of the denoiser's residual MLP")
    blocks: int = option(4, "residual blocks of the denoiser")
    prediction: str = option("sample", "what the denoiser predicts: the clean ŵ (x0, the paper's) or the noise",
                             choices=PREDICTIONS)
    timesteps: int = option(1000, "diffusion timesteps T (the paper: 1000)")
    beta_schedule: str = option("squaredcos_cap_v2", "diffusers noise schedule (squaredcos_cap_v2: the paper's cosine)",
                                choices=BETA_SCHEDULES)
    embed_noise: float = option(1.0, "σ of the condition's noise augmentation, ẽ = normalise(e + σ·u), u a unit "
                                     "random direction (the paper's FFHQ setting: 1.0)")
    cond_drop: float = option(0.2, "probability of replacing the condition by the null embedding (the paper: 0.2)")
    guidance: float = option(1.0, "default classifier-free guidance scale s of the stored prior (1: none, the authors' "
                                  "demo default)")
    sampler: str = option("ddim", "default sampler of the stored prior (ddim: DDIM η=0; dpm: DPM-Solver++)",
                          choices=SAMPLERS)
    sample_steps: int = option(25, "default number of sampling steps of the stored prior")
    clip: str | None = option(None, "a toy CLIP checkpoint, path or hub name (default: the profile's)")
    generator: str | None = option(None, "a generator, path or hub name (default: the profile's)")
    device: str = option("cpu", "cpu, auto, cuda, cuda:N or mps")
    log_every: int = option(50, "steps between log records")
    ckpt_minutes: float = option(1.0, "minutes between checkpoints (also at the end)")
    max_steps: int | None = option(None, "stop after so many steps (the lr schedule still spans --steps)")

    def __post_init__(self) -> None:
        if not self.out:
            self.out = f"runs/clip2latent-s{self.seed}"
        for name in ("pairs", "pair_batch_size", "steps", "batch_size", "hidden_dim", "blocks", "timesteps",
                     "sample_steps", "log_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.cond_drop < 1.0:
            raise ValueError(f"cond_drop must be in [0, 1), got {self.cond_drop}")
        if self.embed_noise < 0:
            raise ValueError(f"embed_noise must be >= 0, got {self.embed_noise}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {self.sampler!r}")

    def world(self) -> dict[str, Any]:
        """The world record the prior is stored with (`clip2gan.model.build_clip` reads it)."""
        return {"profile": self.profile, "clip": self.clip, "generator": self.generator}


# -------------------------------------------------------------------------------------------------
# the formulas


def augment_embedding(f: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """ẽ = (ê + σ u) / ‖ê + σ u‖ with ê = f / ‖f‖ and u a random unit direction (10_comparisons.ipynb).

    f: `[N, D]`. The result has unit norm; σ = 0 returns ê. The noise is drawn on the CPU from
    `generator` (reproducible), then moved to f's device.
    """
    if f.ndim != 2:
        raise ValueError(f"embeddings must be [N, D], got {tuple(f.shape)}")
    f = F.normalize(f.float(), dim=-1)
    if sigma == 0:
        return f
    u = F.normalize(torch.randn(f.shape, generator=generator), dim=-1).to(f.device)
    return F.normalize(f + float(sigma) * u, dim=-1)


def w_statistics(w: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and standard deviation of latents `w: [N, w_dim]` (std at least eps) (10_comparisons.ipynb)."""
    if w.ndim != 2 or len(w) < 2:
        raise ValueError(f"w must be [N >= 2, w_dim], got {tuple(w.shape)}")
    w = w.double()
    return w.mean(0).float(), w.std(0).clamp(min=eps).float()


def normalise_w(w: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """ŵ = (w − μ) / σ per dimension (10_comparisons.ipynb)."""
    return (w - mean.to(w)) / std.to(w)


def denormalise_w(w_hat: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """w = μ + σ ŵ, the inverse of `normalise_w` (10_comparisons.ipynb)."""
    return mean.to(w_hat) + std.to(w_hat) * w_hat


def guided(uncond: torch.Tensor, cond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: uncond + s · (cond − uncond) (10_comparisons.ipynb).

    s = 1 is the conditional prediction, s = 0 the unconditional one, s > 1 extrapolates away from
    it. The same for x0 and ε predictions (see the module docstring).
    """
    return uncond + float(scale) * (cond - uncond)


def train_scheduler(timesteps: int = 1000, beta_schedule: str = "squaredcos_cap_v2", prediction: str = "sample"):
    """The training noise schedule: a diffusers `DDPMScheduler` (10_comparisons.ipynb).

    No clipping of the predicted sample: normalised latents are not confined to [-1, 1].
    """
    from diffusers import DDPMScheduler  # diffusers is heavy to import; only the prior needs it

    if prediction not in PREDICTIONS:
        raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    return DDPMScheduler(num_train_timesteps=int(timesteps), beta_schedule=beta_schedule, prediction_type=prediction,
                         clip_sample=False)


def sampling_scheduler(config: dict[str, Any], sampler: str = "ddim", steps: int = 25):
    """A diffusers sampler built from a training scheduler's config, with `steps` timesteps set (10_comparisons.ipynb).

    'ddim': `DDIMScheduler` (η = 0, deterministic; trailing timesteps, so the first step starts at
    t = T − 1 even with few steps); 'dpm': `DPMSolverMultistepScheduler` (DPM-Solver++, order 2).
    """
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if sampler == "ddim":
        scheduler = DDIMScheduler.from_config(config, timestep_spacing="trailing", clip_sample=False)
    elif sampler == "dpm":
        scheduler = DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++")
    else:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    with warnings.catch_warnings():  # diffusers' DPM-Solver builds an array in a way numpy 2 deprecates; harmless
        warnings.filterwarnings("ignore", message=".*__array__ implementation doesn't accept a copy keyword",
                                category=DeprecationWarning)
        scheduler.set_timesteps(steps)
    return scheduler


def forward_noise(scheduler: Any, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(ᾱ_t) x0 + sqrt(1 − ᾱ_t) ε, by the scheduler's `add_noise` (what training uses) (10_comparisons.ipynb)."""
    return scheduler.add_noise(x0, noise, t)


# -------------------------------------------------------------------------------------------------
# the denoiser


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps `t: [B]` → `[B, dim]` (cosines, then sines)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class _Block(nn.Module):
    """Pre-norm residual MLP block, FiLM-modulated by the timestep + condition embedding."""

    def __init__(self, hidden_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden_dim, elementwise_affine=False)
        self.film = nn.Linear(hidden_dim, 2 * hidden_dim)
        self.fc1 = nn.Linear(hidden_dim, 2 * hidden_dim)
        self.fc2 = nn.Linear(2 * hidden_dim, hidden_dim)
        nn.init.zeros_(self.film.weight)  # start as an unmodulated block
        nn.init.zeros_(self.film.bias)
        nn.init.zeros_(self.fc2.weight)  # start as the identity: a deep stack trains from step 0
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = self.film(emb).chunk(2, dim=-1)
        x = self.norm(h) * (1 + scale) + shift
        return h + self.fc2(F.silu(self.fc1(x)))


class Denoiser(nn.Module):
    """D_θ(x_t, t, e): a residual MLP over normalised latents (10_comparisons.ipynb).

    x_t: `[B, w_dim]` noisy normalised w; t: `[B]` integer timesteps; e: `[B, embed_dim]` CLIP
    embeddings; drop: `[B]` bool, True where the condition is replaced by the learned null
    embedding ∅ (classifier-free guidance). Returns `[B, w_dim]`: the predicted ŵ or ε, whichever it
    was trained for. The timestep's sinusoidal embedding and the projected condition are summed
    into one vector that scales and shifts every block (FiLM).
    """

    def __init__(self, w_dim: int, embed_dim: int, hidden_dim: int = 256, blocks: int = 4, time_dim: int = 128):
        super().__init__()
        self.w_dim, self.embed_dim, self.hidden_dim, self.n_blocks, self.time_dim = (
            int(w_dim), int(embed_dim), int(hidden_dim), int(blocks), int(time_dim))
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim))
        self.cond_proj = nn.Linear(embed_dim, hidden_dim)
        self.null_embedding = nn.Parameter(torch.zeros(embed_dim))  # ∅, learned
        self.inp = nn.Linear(w_dim, hidden_dim)
        self.blocks = nn.ModuleList(_Block(hidden_dim) for _ in range(blocks))
        self.out_norm = nn.LayerNorm(hidden_dim)
        self.out = nn.Linear(hidden_dim, w_dim)

    @property
    def config(self) -> dict[str, int]:
        """The constructor arguments (stored with a prior)."""
        return {"w_dim": self.w_dim, "embed_dim": self.embed_dim, "hidden_dim": self.hidden_dim,
                "blocks": self.n_blocks, "time_dim": self.time_dim}

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, e: torch.Tensor, drop: torch.Tensor | None = None) -> torch.Tensor:
        if x_t.ndim != 2 or x_t.shape[1] != self.w_dim:
            raise ValueError(f"x_t must be [B, {self.w_dim}], got {tuple(x_t.shape)}")
        if e.shape != (x_t.shape[0], self.embed_dim):
            raise ValueError(f"e must be [{x_t.shape[0]}, {self.embed_dim}], got {tuple(e.shape)}")
        t = t.expand(x_t.shape[0]) if t.ndim == 0 else t
        if drop is not None:
            e = torch.where(drop[:, None], self.null_embedding.to(e.dtype).expand_as(e), e)
        emb = F.silu(self.time_mlp(timestep_embedding(t, self.time_dim)) + self.cond_proj(e))
        h = self.inp(x_t)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(self.out_norm(h))


def diffusion_loss(denoiser: Denoiser, scheduler: Any, x0: torch.Tensor, e: torch.Tensor, cond_drop: float,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """The DDPM objective on one batch, with the condition dropped at rate `cond_drop` (10_comparisons.ipynb).

    x0: `[B, w_dim]` normalised latents ŵ; e: `[B, D]` (already noise-augmented) embeddings. Draws t,
    ε and the drop mask from `generator` (on the CPU, so a seed fixes them on any device); the
    target is x0 or ε after the scheduler's `prediction_type`.
    """
    n, dev = x0.shape[0], x0.device
    t = torch.randint(0, scheduler.config.num_train_timesteps, (n,), generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    drop = torch.rand(n, generator=generator) < cond_drop
    t, noise, drop = t.to(dev), noise.to(dev), drop.to(dev)
    x_t = forward_noise(scheduler, x0, noise, t)
    pred = denoiser(x_t, t, e, drop)
    target = x0 if scheduler.config.prediction_type == "sample" else noise
    return F.mse_loss(pred, target)


# -------------------------------------------------------------------------------------------------
# training data: pairs from G alone


@torch.no_grad()
def generate_pairs(G: nn.Module, clip: Any, n: int, seed: int = 0, batch_size: int = 256,
                   progress: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` pairs (w `[n, w_dim]`, e = C_img(G(w)) `[n, D]`) from the generator alone (10_comparisons.ipynb).

    z ~ N(0, I) from a CPU generator seeded with `seed`; a conditional toy G (c_dim 28) gets labels
    c from `toy.faces.sample_c` (the data distribution), an unconditional one none. w is row 0 of
    G.mapping(z, c); the image is G.synthesis of w on every row, noise_mode 'const', clamped to
    [-1, 1]. Returned on the CPU.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    c_dim = int(getattr(G, "c_dim", 0))
    if c_dim not in (0, C_DIM):
        raise ValueError(f"G takes {c_dim}-d labels: only unconditional generators and the toy world's "
                         f"{C_DIM}-d labels can be sampled here")
    device = next(G.parameters()).device
    g = torch.Generator().manual_seed(int(seed))
    rng = np.random.default_rng([int(seed), 7])
    ws, fs = [], []
    with tqdm(total=n, desc="pairs from G", disable=not progress, dynamic_ncols=True) as bar:
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            z = torch.randn([b, G.z_dim], generator=g)
            c = sample_c(b, rng)[0] if c_dim else torch.zeros([b, 0])
            w = G.mapping(z.to(device), c.to(device))[:, 0]  # [b, w_dim]
            x = G.synthesis(w.unsqueeze(1).repeat(1, G.num_ws, 1), noise_mode="const").clamp(-1, 1)
            ws.append(w.float().cpu())
            fs.append(clip.encode_image(x).float().cpu())
            bar.update(b)
    return torch.cat(ws), torch.cat(fs)


# -------------------------------------------------------------------------------------------------
# the model: prior + CLIP + G


class Clip2Latent(nn.Module):
    """Text → w → image with a trained diffusion prior (10_comparisons.ipynb).

    denoiser: a `Denoiser`; w_mean, w_std: `[w_dim]` statistics of the training latents;
    scheduler_config: the training `DDPMScheduler`'s config (dict); clip: a CLIP encoder
    (`encode_text`, `encode_image`); generator: a StyleGAN2 generator (only `.synthesis` is used).
    guidance, sampler, steps: the sampling defaults (every call may override them).

        model = Clip2Latent.from_checkpoint("runs/clip2latent-s0")
        images = model.generate(["This person has red hair."], n_per_prompt=4, seed=0)  # [4, 3, R, R]
    """

    def __init__(self, denoiser: Denoiser, w_mean: torch.Tensor, w_std: torch.Tensor, scheduler_config: dict[str, Any],
                 clip: Any, generator: nn.Module, guidance: float = 1.0, sampler: str = "ddim", steps: int = 25):
        super().__init__()
        if denoiser.embed_dim != clip.embed_dim:
            raise ValueError(f"the prior takes {denoiser.embed_dim}-d embeddings but the CLIP gives {clip.embed_dim}-d")
        if denoiser.w_dim != generator.w_dim:
            raise ValueError(f"the prior samples {denoiser.w_dim}-d latents but G takes {generator.w_dim}-d")
        for name, stat in (("w_mean", w_mean), ("w_std", w_std)):
            if tuple(stat.shape) != (denoiser.w_dim,):
                raise ValueError(f"{name} must be [{denoiser.w_dim}], got {tuple(stat.shape)}")
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
        self.denoiser = denoiser.eval()
        self.register_buffer("w_mean", w_mean.detach().float().clone())
        self.register_buffer("w_std", w_std.detach().float().clone())
        self.scheduler_config = dict(scheduler_config)
        self.clip, self.generator = clip, generator
        self.generator.requires_grad_(False).eval()
        self.guidance, self.sampler, self.steps = float(guidance), sampler, int(steps)

    # -- properties ----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.w_mean.device

    @property
    def resolution(self) -> int:
        return int(self.generator.img_resolution)

    @property
    def num_ws(self) -> int:
        return int(self.generator.num_ws)

    @property
    def w_dim(self) -> int:
        return int(self.generator.w_dim)

    # -- files ------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike, world: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Write the prior (denoiser, w statistics, schedule, sampling defaults) to `path` (safetensors
        + a JSON beside it, with a tensor checksum) (10_comparisons.ipynb). world: the profile, CLIP and
        generator it belongs to (`from_checkpoint` rebuilds them from it)."""
        world = world or {"profile": "custom"}
        state = {f"denoiser.{k}": v for k, v in self.denoiser.state_dict().items()}
        state.update({"w_mean": self.w_mean, "w_std": self.w_std})
        config = {"format": PRIOR_FORMAT, "version": 1, "denoiser": self.denoiser.config,
                  "scheduler": _jsonable(self.scheduler_config),
                  "sampling": {"guidance": self.guidance, "sampler": self.sampler, "steps": self.steps},
                  "world": world, "world_sha256": world_fingerprint(world) if world.get("profile") != "custom" else {},
                  **(extra or {})}
        return save_safetensors(state, path, config, checksum=True)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, clip: Any = None, generator: nn.Module | None = None,
                        device: str | torch.device = "cpu") -> "Clip2Latent":
        """Load a prior written by `save` (a `prior.safetensors` or its run folder) (10_comparisons.ipynb).

        clip, generator: already loaded ones to use (tests, a comparison sharing one pair); None
        loads the ones the file's world names. A missing file raises FileNotFoundError, a damaged one
        `CorruptCheckpoint`, a file of another kind ValueError.
        """
        path = Path(path)
        if path.is_dir():
            path = path / "prior.safetensors"
        if not path.is_file():
            hint = " (has the run finished? its prior is written at the end)" if path.name == "prior.safetensors" else ""
            raise FileNotFoundError(f"clip2latent prior not found: {path}{hint}")
        state, config = load_safetensors(path)
        if config.get("format") != PRIOR_FORMAT:
            raise ValueError(f"{path} is not a clip2latent prior (format {config.get('format')!r})")
        try:
            denoiser = Denoiser(**config["denoiser"])
            denoiser.load_state_dict({k[len("denoiser."):]: v for k, v in state.items() if k.startswith("denoiser.")})
            w_mean, w_std = state["w_mean"], state["w_std"]
            sampling, scheduler_config, world = config["sampling"], config["scheduler"], config["world"]
        except (KeyError, TypeError, RuntimeError) as err:
            raise CorruptCheckpoint(f"{path}: incomplete clip2latent prior ({type(err).__name__}: {err})") from None
        device = pick_device(device)
        if clip is None or generator is None:
            check_world(config, path)
        clip = clip if clip is not None else build_clip(world, device)
        generator = generator if generator is not None else load_generator_for_profile(
            world["profile"], device=device, generator=world.get("generator"))
        model = cls(denoiser, w_mean, w_std, scheduler_config, clip, generator, guidance=sampling["guidance"],
                    sampler=sampling["sampler"], steps=sampling["steps"])
        model.meta = config
        return model.to(device).eval()

    # -- sampling ---------------------------------------------------------------------------------
    def text_features(self, captions: Sequence[str] | str) -> torch.Tensor:
        """C_text(t): captions → `[N, D]` unit vectors (10_comparisons.ipynb)."""
        return self.clip.encode_text(check_prompts(captions)).float()

    @torch.no_grad()
    def sample_w(self, features: torch.Tensor, seed: int | None = 0, guidance: float | None = None,
                 steps: int | None = None, sampler: str | None = None, batch_size: int = 1024) -> torch.Tensor:
        """Sample one w per row of `features: [N, D]` → `[N, w_dim]` (denormalised) (10_comparisons.ipynb).

        x_T ~ N(0, I) is drawn for all rows at once from a CPU generator seeded with `seed` (None:
        torch's global RNG), so a seed fixes every latent; DDIM (η = 0) and DPM-Solver++ add no
        further noise. guidance: the scale s (1: the conditional prediction alone, one pass; other
        values run a conditional and a null-conditioned pass). None takes the model's defaults.
        """
        if not isinstance(features, torch.Tensor) or features.ndim != 2 or features.shape[1] != self.denoiser.embed_dim:
            got = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"features must be [N, {self.denoiser.embed_dim}], got {got}")
        if len(features) == 0:
            raise ValueError("features is empty: nothing to sample")
        scale = self.guidance if guidance is None else float(guidance)
        steps = self.steps if steps is None else steps
        sampler = self.sampler if sampler is None else sampler
        g = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        x_T = torch.randn([len(features), self.denoiser.w_dim], generator=g)
        e_all = F.normalize(features.float(), dim=-1)
        out = []
        for start in range(0, len(features), batch_size):
            x = x_T[start:start + batch_size].to(self.device)
            e = e_all[start:start + batch_size].to(self.device)
            scheduler = sampling_scheduler(self.scheduler_config, sampler, steps)  # multistep solvers keep state
            for t in scheduler.timesteps:
                x = scheduler.step(self._predict(x, t, e, scale), t, x).prev_sample
            out.append(denormalise_w(x, self.w_mean, self.w_std))
        return torch.cat(out)

    def _predict(self, x: torch.Tensor, t: torch.Tensor, e: torch.Tensor, scale: float) -> torch.Tensor:
        tt = t.to(self.device).long().expand(len(x))
        if scale == 1.0:
            return self.denoiser(x, tt, e)
        n = len(x)
        drop = torch.arange(2 * n, device=self.device) >= n
        both = self.denoiser(torch.cat([x, x]), torch.cat([tt, tt]), torch.cat([e, e]), drop)
        return guided(both[n:], both[:n], scale)

    @torch.no_grad()
    def synthesize(self, w: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """G.synthesis of each w `[N, w_dim]` repeated on all num_ws rows → `[N, 3, R, R]` in [-1, 1], on the CPU
        (10_comparisons.ipynb)."""
        if w.ndim != 2 or w.shape[1] != self.w_dim:
            raise ValueError(f"w must be [N, {self.w_dim}], got {tuple(w.shape)}")
        out = [self.generator.synthesis(b.to(self.device).unsqueeze(1).repeat(1, self.num_ws, 1), noise_mode="const")
               .clamp(-1, 1).float().cpu() for b in w.split(batch_size)]
        return torch.cat(out) if out else torch.empty(0, 3, self.resolution, self.resolution)

    @torch.no_grad()
    def generate(self, captions: Sequence[str] | str, n_per_prompt: int = 1, seed: int | None = 0,
                 guidance: float | None = None, steps: int | None = None, sampler: str | None = None,
                 rerank: int | None = None, batch_size: int = 256) -> torch.Tensor:
        """Text → images `[len(captions) * n_per_prompt, 3, R, R]` in [-1, 1], prompt-major, on the CPU
        (10_comparisons.ipynb).

        Each caption's embedding C_text(t) conditions `n_per_prompt` independent samples of w.
        rerank: k > 1 draws k samples per output and keeps the one of highest CLIP score
        (`clip2gan.baselines.rerank.rerank`); the candidates of one output are those k
        `generate(..., n_per_prompt=n * k)` puts side by side. guidance, steps, sampler: see `sample_w`.
        """
        captions = check_prompts(captions)
        if isinstance(n_per_prompt, bool) or not isinstance(n_per_prompt, int) or n_per_prompt < 1:
            raise ValueError(f"n_per_prompt must be an integer >= 1, got {n_per_prompt!r}")
        if rerank is not None and rerank != 1:
            plain = partial(self.generate, guidance=guidance, steps=steps, sampler=sampler, batch_size=batch_size)
            return rerank_samples(plain, self.clip, captions, rerank, seed=seed, n_per_prompt=n_per_prompt)
        e = self.text_features(captions).repeat_interleave(n_per_prompt, dim=0)  # [P * n, D], prompt-major
        w = self.sample_w(e, seed=seed, guidance=guidance, steps=steps, sampler=sampler)
        return self.synthesize(w, batch_size=batch_size)


def _jsonable(config: Any) -> dict[str, Any]:
    """A diffusers config as plain JSON values (it may hold tuples and private keys)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(config).items() if not k.startswith("_")}


# -------------------------------------------------------------------------------------------------
# the trainer


def _lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over `warmup` steps, then cosine decay to 0 at `total`."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


class Clip2LatentTrainer:
    """Trains the prior for a `Clip2LatentConfig`, resumably (10_comparisons.ipynb).

    clip, generator: injected ones (tests, notebooks); None loads the profile's. The run folder
    (`config.out`) gets `config.json`, `pairs.safetensors` (the training pairs, so a resumed run
    does not synthesise them again), `checkpoint.safetensors` (denoiser, EMA, optimiser, step, the
    training RNG; written atomically every `ckpt_minutes` and at the end), `log.jsonl` and, at the
    end, `prior.safetensors` (the EMA weights). A resumed run continues bit for bit: every random
    draw of a step comes from one CPU generator whose state is in the checkpoint.
    """

    def __init__(self, config: Clip2LatentConfig, clip: Any = None, generator: nn.Module | None = None,
                 progress: bool = True, command: str | None = None):
        self.config = c = config
        self.progress = progress
        self.command = command
        self.device = pick_device(c.device)
        self.world = c.world()
        self.clip = clip if clip is not None else build_clip(self.world, self.device)
        self.G = generator if generator is not None else load_generator_for_profile(
            c.profile, device=self.device, generator=c.generator)
        self.G.eval().requires_grad_(False)
        if hasattr(self.clip, "eval"):
            self.clip.eval()
        torch.manual_seed(c.seed)
        self.denoiser = Denoiser(self.G.w_dim, self.clip.embed_dim, c.hidden_dim, c.blocks).to(self.device)
        self.ema = Denoiser(self.G.w_dim, self.clip.embed_dim, c.hidden_dim, c.blocks).to(self.device)
        self.ema.load_state_dict(self.denoiser.state_dict())
        self.ema.requires_grad_(False).eval()
        self.scheduler = train_scheduler(c.timesteps, c.beta_schedule, c.prediction)
        self.opt = torch.optim.AdamW(self.denoiser.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        self.rng = torch.Generator().manual_seed(c.seed * 1_000_003 + 11)
        self.step = 0
        self.out = Path(c.out)
        self.ckpt_path = self.out / "checkpoint.safetensors"
        self.pairs_path = self.out / "pairs.safetensors"
        self.w = self.f = self.w_mean = self.w_std = None
        self.pair_seconds: dict[str, float] = {}
        self.seconds = 0.0  # wall-clock training time over every session of the run (pairs excluded)
        self.cpu_seconds = 0.0  # the same in CPU time of this process (what a shared machine does not inflate)
        self.running = (0.0, 0)  # (sum, count) of the losses since the last log record

    # -- data --------------------------------------------------------------------------------------
    def prepare_pairs(self) -> None:
        """Load the run's pairs or sample them from G and store them (`pair_seconds`: the time sampling took)."""
        c = self.config
        if self.pairs_path.exists():
            tensors, meta = load_safetensors(self.pairs_path)
            if (meta.get("pairs"), meta.get("seed")) != (c.pairs, c.seed) or "w" not in tensors or "f" not in tensors:
                raise ValueError(f"{self.pairs_path} holds pairs of another run ({meta}); move it away or choose another --out")
            self.w, self.f = tensors["w"], tensors["f"]
            self.pair_seconds = meta.get("seconds", {})
        else:
            t0, cpu0 = time.perf_counter(), time.process_time()
            self.w, self.f = generate_pairs(self.G, self.clip, c.pairs, seed=c.seed, batch_size=c.pair_batch_size,
                                            progress=self.progress)
            self.pair_seconds = {"wall": round(time.perf_counter() - t0, 1), "cpu": round(time.process_time() - cpu0, 1)}
            save_safetensors({"w": self.w, "f": self.f}, self.pairs_path,
                             {"pairs": c.pairs, "seed": c.seed, "seconds": self.pair_seconds}, write_json=False,
                             checksum=True)
            self._log({"event": "pairs", "pairs": c.pairs, "seconds": self.pair_seconds["wall"],
                       "cpu_seconds": self.pair_seconds["cpu"]})
        self.w_mean, self.w_std = w_statistics(self.w)
        self.w_hat = normalise_w(self.w, self.w_mean, self.w_std)

    # -- one step ----------------------------------------------------------------------------------
    def train_step(self) -> float:
        """One AdamW step on `diffusion_loss` over a batch drawn with replacement; returns the loss."""
        c, dev = self.config, self.device
        for group in self.opt.param_groups:
            group["lr"] = c.lr * _lr_factor(self.step, c.steps, c.warmup_steps)
        idx = torch.randint(0, len(self.w_hat), (c.batch_size,), generator=self.rng)
        x0 = self.w_hat[idx].to(dev)
        e = augment_embedding(self.f[idx], c.embed_noise, generator=self.rng).to(dev)
        self.denoiser.train()
        loss = diffusion_loss(self.denoiser, self.scheduler, x0, e, c.cond_drop, generator=self.rng)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {self.step}: the loss is {loss.item()}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self._update_ema()
        self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))  # short warm-up of the average
        for e, p in zip(self.ema.parameters(), self.denoiser.parameters()):
            e.lerp_(p, 1.0 - decay)

    # -- checkpoints -------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"denoiser": self.denoiser.state_dict(), "ema": self.ema.state_dict(), "opt": self.opt.state_dict(),
                "step": self.step, "rng": self.rng.get_state(), "seconds": self.seconds,
                "cpu_seconds": self.cpu_seconds, "running": list(self.running),
                "config": dataclasses.asdict(self.config)}

    def save_checkpoint(self) -> None:
        """Write the training state atomically."""
        save_state(self.ckpt_path, self.state())

    def load_checkpoint(self) -> None:
        """Restore the denoiser, EMA, optimiser, step and RNG from the run's checkpoint."""
        try:
            s = load_state(self.ckpt_path, device="cpu")
        except CorruptCheckpoint as err:
            raise CorruptCheckpoint(f"cannot resume: {err}. Move it away to start the run afresh.") from None
        saved = s["config"]
        for key in ("seed", "pairs", "steps", "batch_size", "hidden_dim", "blocks", "prediction", "timesteps",
                    "beta_schedule", "embed_noise", "cond_drop", "lr", "profile"):
            if saved.get(key) != getattr(self.config, key):
                raise ValueError(f"--resume: {key} was {saved.get(key)!r} in the checkpoint but is "
                                 f"{getattr(self.config, key)!r} now; resume with the run's settings")
        self.denoiser.load_state_dict(s["denoiser"])
        self.ema.load_state_dict(s["ema"])
        self.opt.load_state_dict(s["opt"])
        self.step = int(s["step"])
        self.rng.set_state(s["rng"])
        self.seconds = float(s.get("seconds", 0.0))
        self.cpu_seconds = float(s.get("cpu_seconds", 0.0))
        self.running = (float(s["running"][0]), int(s["running"][1]))

    def _trim_log(self) -> None:
        """Drop the log records of steps after the checkpoint (a killed run logged them; they are redone)."""
        log = self.out / "log.jsonl"
        if log.exists():
            lines = log.read_text().splitlines()
            kept = [line for line in lines if json.loads(line).get("step", 0) <= self.step]
            if len(kept) < len(lines):
                atomic_write_text(log, "".join(line + "\n" for line in kept))

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def model(self) -> Clip2Latent:
        """The prior as it stands (EMA weights) with the trainer's CLIP and G."""
        ema = Denoiser(**self.ema.config)
        ema.load_state_dict(self.ema.state_dict())
        c = self.config
        return Clip2Latent(ema.to(self.device), self.w_mean, self.w_std, _jsonable(self.scheduler.config), self.clip,
                           self.G, guidance=c.guidance, sampler=c.sampler, steps=c.sample_steps).to(self.device)

    def export(self) -> Path:
        """Write `prior.safetensors` (+ `prior.json`): EMA weights, statistics, schedule, config, command."""
        extra = {"train": dataclasses.asdict(self.config), "steps": self.step,
                 "train_seconds": round(self.seconds, 1), "train_cpu_seconds": round(self.cpu_seconds, 1),
                 "pair_seconds": self.pair_seconds, "command": self.command}
        return self.model().save(self.out / "prior.safetensors", self.world, extra)

    # -- the loop ------------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train to `steps` (or `max_steps`), checkpointing; returns a summary."""
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        if self.ckpt_path.exists() and not resume:
            raise FileExistsError(f"{self.ckpt_path} exists: pass --resume to continue the run, or choose another --out")
        if resume and self.ckpt_path.exists():
            self.load_checkpoint()
            self._trim_log()
            if self.progress:
                print(f"resumed {self.ckpt_path} at step {self.step}")
        config_json = self.out / "config.json"
        if resume and config_json.exists():  # the command that started the run stays the run's command
            self.command = json.loads(config_json.read_text()).get("command") or self.command
        config_record = {**dataclasses.asdict(c), "command": self.command}
        atomic_write_text(config_json, json.dumps(config_record, indent=2) + "\n")
        self.prepare_pairs()
        stop_at = min(c.steps, c.max_steps) if c.max_steps else c.steps
        last_ckpt = time.monotonic()
        session_start, cpu_start, session_steps = time.perf_counter(), time.process_time(), self.step
        bar = tqdm(total=stop_at, initial=self.step, desc="train clip2latent prior", disable=not self.progress,
                   dynamic_ncols=True)
        while self.step < stop_at:
            loss = self.train_step()
            total, count = self.running[0] + loss, self.running[1] + 1
            self.running = (total, count)
            bar.update(1)
            if self.step % c.log_every == 0 or self.step == c.steps:
                bar.set_postfix(loss=f"{total / count:.4f}")
                # seconds: the run's cost so far, sampling the pairs included
                elapsed = self.pair_seconds.get("wall", 0.0) + self.seconds + time.perf_counter() - session_start
                cpu = self.pair_seconds.get("cpu", 0.0) + self.cpu_seconds + time.process_time() - cpu_start
                self._log({"step": self.step, "loss": total / count, "lr": self.opt.param_groups[0]["lr"],
                           "seconds": round(elapsed, 2), "cpu_seconds": round(cpu, 2)})
                self.running = (0.0, 0)
            if time.monotonic() - last_ckpt > 60 * c.ckpt_minutes:
                self.seconds += time.perf_counter() - session_start
                self.cpu_seconds += time.process_time() - cpu_start
                session_start, cpu_start = time.perf_counter(), time.process_time()
                self.save_checkpoint()
                last_ckpt = time.monotonic()
        bar.close()
        self.seconds += time.perf_counter() - session_start
        self.cpu_seconds += time.process_time() - cpu_start
        self.save_checkpoint()
        summary: dict[str, Any] = {"steps": self.step, "train_seconds": round(self.seconds, 1),
                                   "train_cpu_seconds": round(self.cpu_seconds, 1),
                                   "pair_seconds": self.pair_seconds, "out": str(self.out),
                                   "steps_this_session": self.step - session_steps}
        if self.step >= c.steps:
            summary["prior"] = str(self.export())
        return summary


# -------------------------------------------------------------------------------------------------
# command line

# what a resumed run may change; every other flag must match the run's stored config
_RESUME_CHANGEABLE = ("device", "log_every", "ckpt_minutes", "max_steps", "out")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m clip2gan.baselines.clip2latent",
                                description="Train the clip2latent diffusion prior (Pinkney & Li, BMVC 2022) on G's samples.")
    add_config_args(p, Clip2LatentConfig, only_given=True)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    given = given_fields(Clip2LatentConfig, args)
    config = Clip2LatentConfig(**given)
    saved_path = Path(config.out) / "config.json"
    if args.resume and saved_path.exists():
        saved = json.loads(saved_path.read_text())
        saved.pop("command", None)
        for key, value in given.items():
            if key not in _RESUME_CHANGEABLE and saved.get(key) != value:
                raise SystemExit(f"--resume: --{key.replace('_', '-')} was {saved.get(key)!r} in the run but is {value!r} "
                                 f"now; a resumed run keeps its settings (only {', '.join(_RESUME_CHANGEABLE)} may change)")
        saved["max_steps"] = None  # a stop of the earlier session, not a setting of the run
        config = dataclasses.replace(Clip2LatentConfig(**saved), **{k: v for k, v in given.items() if k in _RESUME_CHANGEABLE})
    command = "python -m clip2gan.baselines.clip2latent " + shlex.join(argv)
    trainer = Clip2LatentTrainer(config, progress=not args.no_progress, command=command)
    summary = trainer.fit(resume=args.resume)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
