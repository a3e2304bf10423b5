"""The modality gap and its bridges: measuring, re-centring, nearest image features, the feature bank."""

from __future__ import annotations

import pytest
import torch

from clip2gan.modality_gap import modality_gap, nearest_image_features, recentre, require_bank, vocabulary_prompts


def test_recentre_closes_the_gap_between_two_cones():
    g = torch.Generator().manual_seed(0)
    d = 64  # small dimension: enough for two well-separated cones
    a, b = torch.randn(d, generator=g), torch.randn(d, generator=g)
    img = torch.nn.functional.normalize(a + 0.5 * torch.randn(200, d, generator=g), dim=-1)
    txt = torch.nn.functional.normalize(b + 0.5 * torch.randn(200, d, generator=g), dim=-1)
    before = modality_gap(img, txt)
    moved = recentre(txt, img.mean(0), txt.mean(0))
    after = modality_gap(img, moved)
    assert torch.allclose(moved.norm(dim=-1), torch.ones(200), atol=1e-5)
    assert before["gap"] > 0.5 and after["gap"] < 0.2 * before["gap"]
    assert after["centroid_cosine"] > 0.99
    with pytest.raises(ValueError):
        recentre(txt, img.mean(0)[:3], txt.mean(0))


def test_nearest_image_features_lands_on_the_bank():
    g = torch.Generator().manual_seed(1)
    bank = torch.nn.functional.normalize(torch.randn(50, 16, generator=g), dim=-1)
    queries = torch.nn.functional.normalize(bank[[3, 7]] + 0.05 * torch.randn(2, 16, generator=g), dim=-1)
    # k = 1: exactly the nearest bank row
    assert torch.allclose(nearest_image_features(queries, bank, k=1), bank[[3, 7]], atol=1e-6)
    # a sharp temperature picks the nearest of k; a huge one averages the k neighbours equally
    assert torch.allclose(nearest_image_features(queries, bank, k=8, temperature=1e-4), bank[[3, 7]], atol=1e-5)
    top = (queries @ bank.T).topk(8, dim=1).indices
    flat = torch.nn.functional.normalize(bank[top].mean(1), dim=-1)
    assert torch.allclose(nearest_image_features(queries, bank, k=8, temperature=1e6), flat, atol=1e-5)
    out = nearest_image_features(queries, bank, k=100)  # k larger than the bank: the whole bank
    assert out.shape == (2, 16) and torch.allclose(out.norm(dim=-1), torch.ones(2), atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [
    (dict(bank=torch.zeros(0, 16)), "empty"), (dict(bank=torch.ones(5, 8)), "expected"),
    (dict(k=0), "k must"), (dict(temperature=0.0), "temperature")])
def test_nearest_image_features_bad_input_is_clear(kwargs, match):
    args = {"f_text": torch.ones(2, 16), "bank": torch.ones(5, 16), **kwargs}
    with pytest.raises(ValueError, match=match):
        nearest_image_features(**args)


def test_require_bank_names_the_fix():
    bank = torch.ones(3, 4)
    assert require_bank(bank, "x") is bank
    for empty in (None, torch.zeros(0, 4)):
        with pytest.raises(ValueError, match="--add-feature-bank"):
            require_bank(empty, "text_correction='nearest'")


def test_vocabulary_comes_from_the_profile():
    toy = vocabulary_prompts("toyfaces")
    assert len(toy) > 20 and all(isinstance(p, str) and p for p in toy)
    assert "a person wearing a hat" in " | ".join(vocabulary_prompts("ffhq"))
    assert vocabulary_prompts("afhqcat") == ["a photo of a cat"]
    with pytest.raises(ValueError, match="unknown profile"):
        vocabulary_prompts("celeba")
