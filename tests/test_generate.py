"""generate: shapes, prompt-major order, seeds, diversity noise, truncation, validation (tiny world)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from tiny_editing import tiny_model
from tiny_world import RES

from clip2gan.generate import default_noise, generate, truncate
from clip2gan.losses import NoiseConfig
from clip2gan.train import TrainConfig

PROMPTS = ["a person with red hair", "a smiling person wearing a hat"]


@pytest.fixture(scope="module")
def model():
    return tiny_model(w_avg_seed=1)  # a non-zero w_avg: truncation is visible


def test_shape_range_and_prompt_major_order(model):
    out = generate(model, PROMPTS, n_per_prompt=3, noise=False)
    assert out.shape == (6, 3, RES, RES) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert out.min() >= -1 and out.max() <= 1
    # without noise, the samples of a prompt are its clean image G(M(C_text(t))), in prompt order
    clean = model.synthesize(model.encode_text(PROMPTS)).clamp(-1, 1)
    assert torch.allclose(out[:3], clean[0:1].expand(3, -1, -1, -1), atol=1e-5)
    assert torch.allclose(out[3:], clean[1:2].expand(3, -1, -1, -1), atol=1e-5)
    assert not torch.allclose(out[0], out[3], atol=1e-3)


def test_same_seed_same_pixels_other_seed_other_pixels(model):
    a = generate(model, PROMPTS, n_per_prompt=2, seed=7)
    b = generate(model, PROMPTS, n_per_prompt=2, seed=7)
    c = generate(model, PROMPTS, n_per_prompt=2, seed=8)
    assert torch.equal(a, b)
    assert (a - c).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # every sample changes with the seed


def test_noise_makes_samples_of_one_prompt_differ(model):
    out = generate(model, PROMPTS[:1], n_per_prompt=4, seed=0)
    diffs = [(out[i] - out[j]).abs().max().item() for i in range(4) for j in range(i + 1, 4)]
    assert min(diffs) > 1e-3


def test_clean_first_is_the_noise_free_image(model):
    out = generate(model, PROMPTS, n_per_prompt=3, seed=0, clean_first=True)
    clean = generate(model, PROMPTS, n_per_prompt=1, noise=False)
    assert torch.allclose(out[0], clean[0], atol=1e-5) and torch.allclose(out[3], clean[1], atol=1e-5)
    assert not torch.allclose(out[1], clean[0], atol=1e-3)


def test_zero_std_noise_is_no_noise(model):
    zero = generate(model, PROMPTS, n_per_prompt=2, noise=NoiseConfig(std=0.0), seed=0)
    assert torch.equal(zero, generate(model, PROMPTS, n_per_prompt=2, noise=False))


def test_noise_mean_and_std_shortcuts(model):
    a = generate(model, PROMPTS, n_per_prompt=2, seed=0, noise_std=0.2)
    # the shortcut replaces that field of the model's default noise (the tiny model has no bank: the paper's)
    expected = dataclasses.replace(default_noise(model.method), std=0.2)
    assert model.method == "paper" and expected == dataclasses.replace(NoiseConfig.paper_test("multiplicative"), std=0.2)
    assert torch.equal(a, generate(model, PROMPTS, n_per_prompt=2, seed=0, noise=expected))
    assert torch.equal(generate(model, PROMPTS, n_per_prompt=2, seed=0, noise_std=0.0),
                       generate(model, PROMPTS, n_per_prompt=2, noise=False))
    with pytest.raises(ValueError, match="conflicts"):
        generate(model, PROMPTS, noise=False, noise_std=0.1)
    with pytest.raises(ValueError, match="std must be >= 0"):
        generate(model, PROMPTS, noise_std=-1.0)


def test_truncation_zero_gives_the_average_image(model):
    out = generate(model, PROMPTS, n_per_prompt=2, seed=0, truncation=0.0)
    ws = model.mapping.w_avg.expand(1, model.num_ws, -1)
    avg = model.synthesize(ws).clamp(-1, 1)
    assert torch.allclose(out, avg.expand(4, -1, -1, -1), atol=1e-5)


def test_truncate_interpolates_towards_w_avg():
    ws, w_avg = torch.randn(2, 6, 16), torch.randn(16)
    assert truncate(ws, w_avg, 1.0) is ws
    assert torch.allclose(truncate(ws, w_avg, 0.5), (ws + w_avg) / 2, atol=1e-6)


def test_batch_size_does_not_change_the_samples(model):
    a = generate(model, PROMPTS, n_per_prompt=3, seed=3, batch_size=64)
    b = generate(model, PROMPTS, n_per_prompt=3, seed=3, batch_size=2)
    assert torch.allclose(a, b, atol=1e-5)


def test_default_noise_is_the_training_noise_and_paper_noise_runs(model):
    assert default_noise() == NoiseConfig() == TrainConfig().noise()
    out = generate(model, PROMPTS, n_per_prompt=2, seed=0, noise=NoiseConfig.paper_test())
    assert torch.isfinite(out).all()


def test_model_generate_delegates(model):
    assert torch.equal(model.generate(PROMPTS, n_per_prompt=2, seed=5), generate(model, PROMPTS, n_per_prompt=2, seed=5))


@pytest.mark.parametrize("prompts, match", [([], "empty list"), ([""], "empty"), (["ok", "  "], "prompt 1"),
                                            (["ok", 3], "not a string"), (None, "list of strings")])
def test_bad_prompts_are_clear(model, prompts, match):
    with pytest.raises(ValueError, match=match):
        generate(model, prompts)


@pytest.mark.parametrize("kwargs, match", [(dict(n_per_prompt=0), "n_per_prompt"), (dict(batch_size=0), "batch_size"),
                                           (dict(truncation=float("nan")), "truncation"), (dict(noise="big"), "noise")])
def test_bad_arguments_are_clear(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate(model, PROMPTS, **kwargs)


def test_nearest_correction_comes_after_the_noise():
    # the noise moves the *query*; what reaches M is always a mix of bank (image) features
    from clip2gan.losses import add_clip_noise
    from clip2gan.modality_gap import nearest_image_features

    m = tiny_model()
    g = torch.Generator().manual_seed(2)
    m.feature_bank = torch.nn.functional.normalize(torch.randn(40, 32, generator=g), dim=-1)
    m.text_correction = "nearest"
    out = generate(m, PROMPTS[:1], n_per_prompt=3, seed=5)
    f = m.text_features(PROMPTS[:1], correction=False).float().repeat(3, 1)
    f = nearest_image_features(add_clip_noise(f, default_noise(), generator=torch.Generator().manual_seed(5)),
                               m.feature_bank, k=m.nearest_k, temperature=m.nearest_temperature)
    assert torch.allclose(out, m.synthesize(m.map(f)).clamp(-1, 1), atol=1e-5)
    paper = generate(m, PROMPTS[:1], n_per_prompt=3, seed=5, correction=False)
    assert not torch.allclose(out, paper, atol=1e-3)


def test_nearest_needs_a_bank():
    from clip2gan.model import CLIP2GAN

    m = tiny_model()
    with pytest.raises(ValueError, match="feature bank"):
        CLIP2GAN(m.clip, m.mapping, m.generator, text_correction="nearest")
    with pytest.raises(ValueError, match="feature bank"):
        m.text_features(PROMPTS, correction="nearest")
    with pytest.raises(ValueError, match="correction must be"):
        m.text_features(PROMPTS, correction="nearby")
