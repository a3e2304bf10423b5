"""metrics: the eigenvalue Fréchet distance against the textbook sqrtm formula, and FID plumbing."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from clip2gan.evaluation.metrics import feature_statistics, fid, frechet_distance


def _textbook(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def _random_stats(rng, d):
    a = rng.normal(size=(d, 2 * d))  # 2d samples per dimension: full rank
    return rng.normal(size=d), a @ a.T / (2 * d)


@pytest.mark.parametrize("d", [2, 16, 64])  # up to 64-d: sqrtm stays fast and well conditioned
def test_matches_textbook_formula(d):
    rng = np.random.default_rng(d)
    mu1, s1 = _random_stats(rng, d)
    mu2, s2 = _random_stats(rng, d)
    ours, ref = frechet_distance(mu1, s1, mu2, s2), _textbook(mu1, s1, mu2, s2)
    assert abs(ours - ref) <= 1e-6 * abs(ref)


def test_zero_for_identical_and_grows_with_shift():
    rng = np.random.default_rng(0)
    mu, s = _random_stats(rng, 8)
    assert frechet_distance(mu, s, mu, s) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(mu, s, mu + 1.0, s) == pytest.approx(8.0, rel=1e-9)  # ‖Δμ‖² = 8


def test_bad_shapes_are_clear():
    with pytest.raises(ValueError, match="means"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="covariances"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="features"):
        feature_statistics(torch.zeros(1, 4))


def test_fid_separates_distributions():
    # 4-d "features" of 8×8 images: the extractor is a fixed mean-pool, enough to test the plumbing
    g = torch.Generator().manual_seed(0)
    real = torch.rand(400, 3, 8, 8, generator=g) * 2 - 1
    same = torch.rand(400, 3, 8, 8, generator=g) * 2 - 1
    shifted = (torch.rand(400, 3, 8, 8, generator=g) * 2 - 1) * 0.5 + 0.3

    def extractor(x):
        return torch.nn.functional.adaptive_avg_pool2d(x, 2)[:, 0].flatten(1)

    near, far = fid(real, same, extractor, progress=False), fid(real, shifted, extractor, progress=False)
    assert near < 0.01 < far
