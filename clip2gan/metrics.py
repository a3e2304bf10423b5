"""Evaluation metrics: Fréchet distance and FID with pluggable features (08_evaluation.ipynb).

The Fréchet distance between two Gaussians N(μ₁, Σ₁) and N(μ₂, Σ₂) is

    d² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½ .

`tr (Σ₁ Σ₂)^½` equals the sum of the square roots of the eigenvalues of the symmetric positive
semi-definite matrix Σ₁^½ Σ₂ Σ₁^½, so two symmetric eigendecompositions (`numpy.linalg.eigh`)
replace `scipy.linalg.sqrtm` (whose `disp=` argument SciPy ≥ 1.18 removed, breaking pytorch-fid and
clean-fid). Both are computed in float64.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import torch

__all__ = ["frechet_distance", "feature_statistics", "fid"]


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (tiny negative eigenvalues from round-off → 0)."""
    vals, vecs = np.linalg.eigh(matrix)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), from eigenvalues (see module doc).

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
    """Mean [D] and covariance [D, D] (unbiased) of features [N, D], in float64."""
    x = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be [N ≥ 2, D], got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


@torch.no_grad()
def _extract(images: torch.Tensor | Iterable[torch.Tensor], extractor: Callable[[torch.Tensor], torch.Tensor],
             batch_size: int, desc: str, progress: bool) -> torch.Tensor:
    from tqdm.auto import tqdm

    if isinstance(images, torch.Tensor):
        batches = list(images.split(batch_size))
    else:
        batches = list(images)
    feats = [extractor(b).float().cpu() for b in tqdm(batches, desc=desc, disable=not progress, leave=False)]
    return torch.cat(feats)


def fid(real: torch.Tensor | Iterable[torch.Tensor], fake: torch.Tensor | Iterable[torch.Tensor],
        extractor: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 100, progress: bool = True) -> float:
    """FID between two image sets in the feature space of `extractor` (images → [B, D] features).

    The standard FID uses Inception features (`inception-fid` in `clip2gan.hub`); the toy world uses
    its attribute classifier's penultimate features, so toy FIDs are not comparable with the paper's.
    """
    f_real = _extract(real, extractor, batch_size, "features (real)", progress)
    f_fake = _extract(fake, extractor, batch_size, "features (fake)", progress)
    return frechet_distance(*feature_statistics(f_real), *feature_statistics(f_fake))
