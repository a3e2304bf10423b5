"""Generic evaluation metrics: Fréchet distance and FID with any feature extractor, LPIPS, CLIP score (08_evaluation.ipynb).

Nothing here knows a world: the features, the LPIPS network and the CLIP are arguments.

* FID: `fid(real, fake, extractor)`, `extractor` mapping images to `[B, D]` features — the toy
  classifier's (`clip2gan.evaluation.attributes.toy_feature_extractor`; toy FIDs are not comparable
  with the paper's) or the standard Inception pool3 features
  (`clip2gan.evaluation.inception.inception_feature_extractor`).
* LPIPS: `lpips_diversity` (mean pairwise among the samples of one prompt, averaged over prompts;
  Fig. 6/10, Table 1) and `lpips_to_reference` (paired), with any LPIPS callable (`LPIPSLoss`).
* `clip_score`: mean 100 · max(cos(C_img(x), C_text(t)), 0), the torchmetrics convention.

The metrics read off the toy world's attribute classifier (text → image attribute accuracy, editing
scores, the edit vocabulary) are in `clip2gan.evaluation.attributes`.

The Fréchet distance between two Gaussians N(μ₁, Σ₁) and N(μ₂, Σ₂) is

    d² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½ .

`tr (Σ₁ Σ₂)^½` equals the sum of the square roots of the eigenvalues of the symmetric positive
semi-definite matrix Σ₁^½ Σ₂ Σ₁^½, so two symmetric eigendecompositions (`numpy.linalg.eigh`)
replace `scipy.linalg.sqrtm` (whose `disp=` argument SciPy ≥ 1.18 removed, breaking pytorch-fid and
clean-fid). Both are computed in float64.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from clip2gan.clip_encoder import ClipEncoder, check_prompts

if TYPE_CHECKING:  # a type only: the toy StyleGAN2's evaluation imports these metrics without the model code
    from clip2gan.model import CLIP2GAN

__all__ = [
    "frechet_distance",
    "feature_statistics",
    "fid",
    "lpips_diversity",
    "lpips_to_reference",
    "clip_score",
]


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (tiny negative eigenvalues from round-off → 0)."""
    vals, vecs = np.linalg.eigh(matrix)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), from eigenvalues (see module doc) (08_evaluation.ipynb).

    mu: [D], sigma: [D, D] symmetric PSD. Returns a float ≥ 0.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise ValueError(f"means must be 1-D of equal length, got {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"covariances must be [{d}, {d}], got {sigma1.shape} and {sigma2.shape}")
    sigma1 = (sigma1 + sigma1.T) / 2
    sigma2 = (sigma2 + sigma2.T) / 2
    root1 = _sqrt_psd(sigma1)
    inner = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean
    return float(max(value, 0.0))


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (unbiased) of features [N, D], in float64 (08_evaluation.ipynb)."""
    x = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be [N ≥ 2, D], got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


@torch.no_grad()
def _extract(images: torch.Tensor | Iterable[torch.Tensor], extractor: Callable[[torch.Tensor], torch.Tensor],
             batch_size: int, desc: str, progress: bool) -> torch.Tensor:
    if isinstance(images, torch.Tensor):
        batches = list(images.split(batch_size))
    else:
        batches = list(images)
    feats = [extractor(b).float().cpu() for b in tqdm(batches, desc=desc, disable=not progress, leave=False)]
    return torch.cat(feats)


def fid(real: torch.Tensor | Iterable[torch.Tensor], fake: torch.Tensor | Iterable[torch.Tensor],
        extractor: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 100, progress: bool = True) -> float:
    """FID between two image sets in the feature space of `extractor` (images → [B, D] features) (08_evaluation.ipynb).

    The standard FID uses Inception features (`clip2gan.evaluation.inception`); the toy world uses
    its attribute classifier's penultimate features, so toy FIDs are not comparable with the paper's.
    """
    f_real = _extract(real, extractor, batch_size, "features (real)", progress)
    f_fake = _extract(fake, extractor, batch_size, "features (fake)", progress)
    return frechet_distance(*feature_statistics(f_real), *feature_statistics(f_fake))


# ------------------------------------------------------------------------------------------------
# LPIPS


def _distances(lpips_fn: Callable[..., torch.Tensor], a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pair distances `[N]` from an LPIPS callable: `LPIPSLoss` (reduction='none'), `lpips.LPIPS`
    (`[N, 1, 1, 1]`) or any function returning `[N]`; a callable that only returns a scalar is
    called pair by pair."""
    n = a.shape[0]
    try:
        out = lpips_fn(a, b, reduction="none")
    except TypeError:
        out = lpips_fn(a, b)
    out = torch.as_tensor(out).detach().float().reshape(-1).cpu()
    if out.numel() == n:
        return out
    if out.numel() == 1 and n > 1:
        return torch.stack([torch.as_tensor(lpips_fn(a[i:i + 1], b[i:i + 1])).detach().float().reshape(()).cpu()
                            for i in range(n)])
    raise ValueError(f"lpips_fn returned {out.numel()} values for {n} pairs")


def _check_batch(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor [N, 3, H, W] in [-1, 1], got {shape}")
    return x


@torch.no_grad()
def lpips_diversity(images_per_prompt: torch.Tensor | Sequence[torch.Tensor], lpips_fn: Callable[..., torch.Tensor],
                    batch_size: int = 256, progress: bool = True, per_prompt: bool = False) -> float | list[float]:
    """Mean pairwise LPIPS among the samples of each prompt, averaged over prompts (08_evaluation.ipynb).

    images_per_prompt: `[P, n, 3, H, W]` or a list of `[n_i, 3, H, W]` (n_i ≥ 2), in [-1, 1], e.g.
    `generate(...).view(P, n, 3, R, R)`. lpips_fn: an LPIPS callable (`LPIPSLoss.for_profile(...)`).
    Every unordered pair i < j counts once. per_prompt=True returns the list of per-prompt means.
    """
    groups = list(images_per_prompt.unbind(0)) if isinstance(images_per_prompt, torch.Tensor) else list(images_per_prompt)
    if isinstance(images_per_prompt, torch.Tensor) and images_per_prompt.ndim != 5:
        raise ValueError("images_per_prompt must be [P, n, 3, H, W] or a list of [n, 3, H, W], "
                         f"got {tuple(images_per_prompt.shape)}")
    if not groups:
        raise ValueError("images_per_prompt is empty")
    means = []
    for p, x in enumerate(tqdm(groups, desc="LPIPS diversity", disable=not progress, leave=False)):
        _check_batch(x, f"prompt {p}'s samples")
        if x.shape[0] < 2:
            raise ValueError(f"prompt {p} has {x.shape[0]} sample(s); diversity needs at least 2")
        i, j = torch.triu_indices(x.shape[0], x.shape[0], offset=1)
        d = torch.cat([_distances(lpips_fn, x[i[k:k + batch_size]], x[j[k:k + batch_size]])
                       for k in range(0, len(i), batch_size)])
        means.append(float(d.mean()))
    return means if per_prompt else float(np.mean(means))


@torch.no_grad()
def lpips_to_reference(fake: torch.Tensor, real: torch.Tensor, lpips_fn: Callable[..., torch.Tensor],
                       batch_size: int = 256, progress: bool = True) -> float:
    """Mean LPIPS between paired images fake[i] and real[i], `[N, 3, H, W]` each (08_evaluation.ipynb)."""
    _check_batch(fake, "fake")
    _check_batch(real, "real")
    if fake.shape != real.shape:
        raise ValueError(f"fake and real must be paired and equally shaped, got {tuple(fake.shape)} and {tuple(real.shape)}")
    if fake.shape[0] == 0:
        raise ValueError("no images")
    starts = range(0, fake.shape[0], batch_size)
    d = torch.cat([_distances(lpips_fn, fake[k:k + batch_size], real[k:k + batch_size])
                   for k in tqdm(starts, desc="LPIPS", disable=not progress, leave=False)])
    return float(d.mean())


# ------------------------------------------------------------------------------------------------
# CLIP score


@torch.no_grad()
def clip_score(model_or_clip: CLIP2GAN | ClipEncoder, images: torch.Tensor, prompts: Sequence[str] | str, batch_size: int = 64,
               progress: bool = True) -> float:
    """Mean 100 · max(cos(C_img(x_i), C_text(t_i)), 0) (the torchmetrics CLIPScore convention) (08_evaluation.ipynb).

    model_or_clip: a `CLIP2GAN` (its CLIP is used, text features *without* the model's text
    correction: the score asks CLIP, not M) or a `ClipEncoder`. images: `[N, 3, H, W]` in [-1, 1].
    prompts: one per image, or P prompts for N = P · n images in prompt-major order (`generate`'s
    output), or one string for all. The score depends on the CLIP: toy and OpenAI scores are not
    comparable.
    """
    clip = getattr(model_or_clip, "clip", model_or_clip)
    _check_batch(images, "images")
    prompts = check_prompts(prompts)
    n = images.shape[0]
    if n == 0:
        raise ValueError("no images")
    if n % len(prompts):
        raise ValueError(f"{n} images cannot be split over {len(prompts)} prompts (need one per image, "
                         "or the same number of images per prompt in prompt-major order)")
    text = clip.encode_text(prompts).float().cpu().repeat_interleave(n // len(prompts), dim=0)  # [N, D]
    device = next(clip.parameters()).device if any(True for _ in clip.parameters()) else torch.device("cpu")
    feats = [clip.encode_image(images[k:k + batch_size].to(device)).float().cpu()
             for k in tqdm(range(0, n, batch_size), desc="CLIP score", disable=not progress, leave=False)]
    cos = torch.nn.functional.cosine_similarity(torch.cat(feats), text, dim=-1)
    return float(100.0 * cos.clamp(min=0).mean())
