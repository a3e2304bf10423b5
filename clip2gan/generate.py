"""Text → images with CLIP2GAN, with diversity noise on the text feature (06_generation.ipynb).

    imgs = generate(model, ["a smiling person with red hair"], n_per_prompt=4, seed=0)  # [4, 3, R, R]

Each prompt t becomes x' = G(M(C_text(t) + noise)) (the paper's §3.1, Fig. 3). The samples of one prompt
differ only by the Gaussian noise added to its CLIP text feature; the generator's per-pixel noise
stays fixed (`noise_mode='const'`), so a seed fixes every pixel.

The test-time noise (the paper leaves its scale ambiguous; docs/design.md). The paper adds
N(μ = 1, σ² = 0.36) at test time, and N(0, 1) in training, to a CLIP feature of unit norm. Read
literally, adding 1 ± 0.6 to every coordinate of a 512-d unit vector turns every prompt into nearly the
same all-ones direction; `clip2gan.losses` explains why. Under the paper's method (`model.method ==
'paper'`, or `generate(..., method='paper')`) the noise is therefore the only non-degenerate reading
of the paper's numbers: each coordinate multiplied by N(1, 0.36), then renormalised
(`NoiseConfig.paper_test('multiplicative')`, a perturbation of norm ≈ 0.6). Under the bridged method
it is `NoiseConfig()`, the noise the mapping network is trained with in this project (additive, std
0.5 in units of 1/sqrt(D), renormalised: norm ≈ 0.5, cos ≈ 0.89 to the clean feature). The literal
addition stays one argument away: `noise=NoiseConfig.paper_test()`; `noise=False` (or std 0) gives
noise-free samples. 06_generation.ipynb measures the accuracy/diversity trade-off over the noise scale.

Order of operations: the noise is added to the text feature as CLIP gives it, and the model's text
correction (`CLIP2GAN.text_correction`, see `clip2gan.model`) comes after it, just before M. With the
bridged method's 'nearest' correction the noise therefore moves the query among the training images'
features: each sample is decoded from a different mix of image features that match the prompt, so
the samples stay on the manifold M was trained on and still differ. Under the paper's method M
receives the noisy text feature itself.

Every sample is noisy, including the first of each prompt (`clean_first=True` makes the first
sample of each prompt the noise-free G(M(C_text(t))), the prompt's "mean" image), so the samples of
a prompt are independent draws and their mean pairwise LPIPS is an unbiased diversity estimate.

Truncation (`truncation=ψ`, 1 = off, the default; `CLIP2GAN.generate` passes it on). Every code is
pulled toward G's average latent, w_avg + ψ (ws − w_avg) on every row (`truncate`; StyleGAN's truncation
trick, Karras et al., "A Style-Based Generator Architecture for Generative Adversarial Networks", CVPR
2019). M keeps G's average as its `w_avg` buffer (`MappingNetwork.for_generator` copies
`G.mapping.w_avg`), so ψ = 0 gives the average code's image for every prompt. It trades fidelity to the
prompt and diversity for cleaner images, at test time and with no retraining: the cheapest remedy for
codes that leave the distribution of G's own w (the trainer's options are the others: `clip2gan.train`).

Order is prompt-major: rows `i * n_per_prompt ... (i + 1) * n_per_prompt - 1` belong to prompt i.
Reproducibility: with `seed` set, the noise is drawn from a CPU `torch.Generator` seeded with it, for
all rows at once before batching; the same seed, prompts, settings and `batch_size` give identical
pixels on the CPU (and the same noise on any device). `seed=None` draws from torch's global RNG.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Sequence

import torch
from tqdm.auto import tqdm

from clip2gan.clip_encoder import check_prompts
from clip2gan.losses import NoiseConfig, add_clip_noise

if TYPE_CHECKING:  # the model module imports this one: only the type checker needs the class
    from clip2gan.model import CLIP2GAN

__all__ = ["generate", "default_noise", "truncate"]


def default_noise(method: str | None = None) -> NoiseConfig:
    """The test-time noise used when `generate(noise=None)` (06_generation.ipynb).

    method 'paper': the paper's N(μ = 1, σ² = 0.36), read as a per-coordinate factor
    (`NoiseConfig.paper_test('multiplicative')`; the module docstring says why); otherwise
    `NoiseConfig()`, the noise M is trained with.
    """
    if method == "paper":
        return NoiseConfig.paper_test("multiplicative")
    return NoiseConfig()


def truncate(ws: torch.Tensor, w_avg: torch.Tensor, psi: float) -> torch.Tensor:
    """The truncation trick: w_avg + ψ (ws − w_avg) per row (06_generation.ipynb).

    ws: `[N, num_ws, w_dim]`; w_avg: `[w_dim]`. ψ = 1 returns ws unchanged, ψ = 0 the average latent.
    """
    if psi == 1.0:
        return ws
    w_avg = w_avg.to(ws)
    return w_avg + float(psi) * (ws - w_avg)


def _check_number(name: str, value: float) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _is_identity(noise: NoiseConfig) -> bool:
    """Noise that changes nothing: std 0 and a neutral mean (0 added, or a factor of 1)."""
    return noise.std == 0 and noise.mean == (1.0 if noise.mode == "multiplicative" else 0.0)


@torch.no_grad()
def generate(
    model: CLIP2GAN,
    prompts: Sequence[str] | str,
    n_per_prompt: int = 1,
    noise: NoiseConfig | bool | None = None,
    seed: int | None = None,
    truncation: float = 1.0,
    batch_size: int = 64,
    correction: str | bool | None = True,
    clean_first: bool = False,
    noise_mode: str | None = None,
    progress: bool = False,
    noise_mean: float | None = None,
    noise_std: float | None = None,
    method: str | None = None,
) -> torch.Tensor:
    """Text → images `[len(prompts) * n_per_prompt, 3, R, R]` in [-1, 1], on the CPU (06_generation.ipynb).

    model: a `CLIP2GAN`. prompts: a string or a list of non-empty strings (`check_prompts`).
    noise: a `NoiseConfig` for the diversity noise on the CLIP text feature; None: `default_noise()`
    (see the module docstring); False: no noise. seed: makes the noise reproducible.
    truncation: ψ of the truncation trick towards `model.mapping.w_avg` (1: off; 0: every sample is
    the average image). batch_size: images synthesised at once. correction: the text-feature
    correction (`CLIP2GAN.text_features`; True: the model's own). clean_first: the first sample of
    each prompt without noise. noise_mode: the generator's per-pixel noise (None: the model's,
    'const'). progress: a tqdm bar over batches. noise_mean / noise_std: shortcuts that replace
    those fields of `noise` (of the default when `noise` is None), e.g. for a noise-scale sweep.
    method: None (the model's, `model.method`) or 'paper' (this call follows the paper whatever the
    model: bare text features, the paper's noise unless `noise` is given) or 'bridged' (the model's
    nearest-image-feature correction, which needs its feature bank, and the training noise).
    """
    prompts = check_prompts(prompts)
    if isinstance(n_per_prompt, bool) or not isinstance(n_per_prompt, int) or n_per_prompt < 1:
        raise ValueError(f"n_per_prompt must be an integer >= 1, got {n_per_prompt!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    truncation = _check_number("truncation", truncation)
    method = method if method is not None else getattr(model, "method", "custom")
    if method not in ("paper", "bridged", "custom"):
        raise ValueError(f"method must be 'paper', 'bridged' or None (the model's), got {method!r}")
    if method == "paper":
        if correction not in (True, False, None):
            raise ValueError(f"method='paper' feeds the bare text feature to M; it conflicts with correction={correction!r}")
        correction = False
    elif method == "bridged" and correction is True:
        correction = "nearest"
    if noise is None or noise is True:
        noise = default_noise(method)
    if noise is not False and not isinstance(noise, NoiseConfig):
        raise ValueError(f"noise must be a NoiseConfig, None (the default) or False, got {type(noise).__name__}")
    if noise_mean is not None or noise_std is not None:
        if noise is False:
            raise ValueError("noise=False conflicts with noise_mean / noise_std")
        changes = {k: _check_number(k, v) for k, v in (("mean", noise_mean), ("std", noise_std)) if v is not None}
        noise = dataclasses.replace(noise, **changes)  # NoiseConfig re-validates (std >= 0)

    f = model.text_features(prompts, correction=False).float()  # [P, D], C_text(t) as it is
    f = f.repeat_interleave(n_per_prompt, dim=0)  # [P * n, D], prompt-major
    if noise is not False and not _is_identity(noise):
        generator = torch.Generator().manual_seed(int(seed)) if seed is not None else None
        noisy = add_clip_noise(f.cpu(), noise, generator=generator).to(f.device)
        if clean_first:
            first = torch.arange(len(f), device=f.device) % n_per_prompt == 0
            noisy[first] = f[first]
        f = noisy
    f = model.correct_text_features(f, correction)  # the correction comes last: M sees what it was trained on


    out = []
    w_avg = model.mapping.w_avg
    starts = range(0, len(f), batch_size)
    for start in tqdm(starts, desc="generate", disable=not progress, leave=False):
        ws = truncate(model.map(f[start:start + batch_size]), w_avg, truncation)  # [B, num_ws, w_dim]
        out.append(model.synthesize(ws, noise_mode=noise_mode).clamp(-1, 1).float().cpu())
    return torch.cat(out)
