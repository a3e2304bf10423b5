"""One switch for the method: under method='paper' the package computes the paper's equations as written.

The tests write the paper's rules out by hand with the model's own pieces (its CLIP, M and G) and
compare:

* generation (§3.1): x' = G(M(n(C_text(t) ⊙ ε))), ε ~ N(1, 0.36) per coordinate (the paper's
  test-time noise read as a factor, renormalised: `n`);
* editing (eq. 11-14): z = M(C_img(x)), n = M(C_text(t)), z'_i = z_i + β n_i on every row, x' = G(z'),
  with the bare text feature C_text(t) — also when the model itself is bridged.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tiny_editing import tiny_model
from tiny_world import RES

from clip2gan.edit import edit_image, text_direction
from clip2gan.generate import generate
from clip2gan.modality_gap import feature_bank
from clip2gan.model import CLIP2GAN
from clip2gan.toy.faces import ToyFaces

TEXT = "a person wearing a hat"
PROMPTS = ["a smiling person with red hair", "a bald person wearing eyeglasses"]


def _with_bank(method: str | None) -> CLIP2GAN:
    m = tiny_model()
    bank = feature_bank(m.clip, ToyFaces(48, seed=3, resolution=RES), n=48)  # 48 renders: a small real bank
    return CLIP2GAN(m.clip, m.mapping, m.generator, feature_bank=bank, method=method).eval()


@pytest.fixture(scope="module")
def paper():
    return _with_bank("paper")


@pytest.fixture(scope="module")
def bridged():
    return _with_bank("bridged")


@pytest.fixture(scope="module")
def images():
    return torch.rand(2, 3, RES, RES, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_the_switch_sets_every_test_time_choice(paper, bridged):
    assert (paper.method, paper.text_correction, paper.edit_mode) == ("paper", None, "paper")
    assert (bridged.method, bridged.text_correction, bridged.edit_mode) == ("bridged", "nearest", "neighbours")
    m = tiny_model()
    assert m.method == "paper"  # no bank, no settings: the paper's rules
    custom = CLIP2GAN(m.clip, m.mapping, m.generator, text_correction="recentre")
    assert custom.method == "custom"  # a named mixed state, never silently called "paper"


def test_conflicting_settings_are_refused():
    m = tiny_model()
    with pytest.raises(ValueError, match="not both"):
        CLIP2GAN(m.clip, m.mapping, m.generator, method="paper", text_correction="nearest")
    with pytest.raises(ValueError, match="feature bank"):
        CLIP2GAN(m.clip, m.mapping, m.generator, method="bridged")  # nothing to bridge with
    with pytest.raises(ValueError, match="method must be"):
        CLIP2GAN(m.clip, m.mapping, m.generator, method="nearest")
    with pytest.raises(ValueError, match="conflicts"):
        generate(m, PROMPTS, method="paper", correction="nearest")


@torch.no_grad()
def test_generation_is_the_papers_rule(paper, bridged):
    n, seed = 3, 11
    f = paper.clip.encode_text(PROMPTS).float().repeat_interleave(n, dim=0)  # C_text(t), prompt-major
    eps = torch.randn(f.shape, generator=torch.Generator().manual_seed(seed))  # the same draw generate makes
    noisy = F.normalize(f * (1.0 + 0.6 * eps), dim=-1)  # ⊙ N(μ = 1, σ = 0.6), back to unit norm
    by_hand = paper.generator.synthesis(paper.mapping(noisy), noise_mode="const").clamp(-1, 1)
    assert torch.allclose(generate(paper, PROMPTS, n_per_prompt=n, seed=seed), by_hand, atol=1e-5)
    # the same call on the bridged model, asked for the paper's rule, gives the same pixels
    assert torch.allclose(generate(bridged, PROMPTS, n_per_prompt=n, seed=seed, method="paper"), by_hand, atol=1e-5)
    # and the bridged model's own rule is something else
    assert not torch.allclose(generate(bridged, PROMPTS, n_per_prompt=n, seed=seed), by_hand, atol=1e-3)


@torch.no_grad()
@pytest.mark.parametrize("beta", [0.0, 0.4, 1.0])
def test_editing_is_eq_11_to_14(paper, bridged, images, beta):
    z = paper.mapping(paper.clip.encode_image(images).float())  # eq. 14: z = M(C_img(x)), [N, num_ws, w_dim]
    n = paper.mapping(paper.clip.encode_text([TEXT]).float())  # eq. 13: n = M(C_text(t)), bare text feature
    by_hand = paper.generator.synthesis(z + beta * n, noise_mode="const").clamp(-1, 1)  # eq. 11-12, every row
    assert torch.allclose(edit_image(paper, images, TEXT, beta=beta), by_hand, atol=1e-5)
    # a paper-rule edit asked of a bridged model uses the bare text feature too (no hidden correction)
    assert torch.allclose(edit_image(bridged, images, TEXT, beta=beta, mode="paper"), by_hand, atol=1e-5)


@torch.no_grad()
def test_paper_direction_ignores_the_models_correction(bridged):
    n_paper = text_direction(bridged, TEXT, mode="paper")
    assert torch.allclose(n_paper, bridged.mapping(bridged.clip.encode_text([TEXT]).float()), atol=1e-6)
    corrected = bridged.mapping(bridged.text_features([TEXT]).float())  # M(nearest(C_text(t))): not eq. 13
    assert not torch.allclose(n_paper, corrected, atol=1e-3)
