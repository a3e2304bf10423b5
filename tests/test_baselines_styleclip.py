"""StyleCLIP latent optimisation (clip2gan.baselines.styleclip) on the tiny random world.

Every test uses tiny_editing's 16 px CLIP2GAN (6 w+ rows of 16, 32-d CLIP): the method is the same
at any size, and a step costs milliseconds there.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tiny_editing import tiny_model
from torch import nn

from clip2gan.baselines.styleclip import (
    DEFAULTS,
    StyleCLIPOptimizer,
    StyleCLIPSettings,
    clip_distance,
    lr_schedule,
    styleclip_loss,
)
from clip2gan.losses import IdentityLoss


class FlatIdentity(nn.Module):
    """A stand-in identity net: a fixed random projection of the pixels (any embedding works for the formula)."""

    def __init__(self, pixels: int, dim: int = 8):
        super().__init__()
        self.proj = nn.Linear(pixels, dim, bias=False)
        nn.init.normal_(self.proj.weight, generator=torch.Generator().manual_seed(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x.flatten(1))


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_settings_are_the_authors():
    # lr, λ_L2, λ_ID and steps of the authors' optimisation notebook; their cosine ramps
    assert (DEFAULTS.lr, DEFAULTS.l2, DEFAULTS.id_weight, DEFAULTS.steps) == (0.1, 0.008, 0.005, 40)
    assert (DEFAULTS.rampup, DEFAULTS.rampdown) == (0.05, 0.25)
    with pytest.raises(ValueError, match="steps"):
        StyleCLIPSettings(steps=-1)
    with pytest.raises(ValueError, match="l2"):
        StyleCLIPSettings(l2=float("nan"))


def test_lr_schedule():
    assert lr_schedule(0.0, 0.1) == 0.0  # the first step does not move (as in the authors' code)
    assert lr_schedule(0.025, 0.1) == pytest.approx(0.05)  # halfway up the ramp
    assert lr_schedule(0.5, 0.1) == pytest.approx(0.1)  # flat in the middle
    assert lr_schedule(1 - 0.125, 0.1) == pytest.approx(0.05)  # halfway down the cosine
    assert lr_schedule(0.99, 0.1) < 0.001


def test_loss_is_eq_1(model):
    clip, G = model.clip, model.generator
    g = torch.Generator().manual_seed(0)
    ws_start = torch.randn(3, model.num_ws, model.w_dim, generator=g)
    ws = ws_start + 0.3 * torch.randn(ws_start.shape, generator=g)
    images = G.synthesis(ws, noise_mode="const")
    reference = G.synthesis(ws_start, noise_mode="const")
    text = clip.encode_text(["a smiling person", "a bald person", "a person with a hat"])
    identity = IdentityLoss(FlatIdentity(3 * 16 * 16))
    loss, parts = styleclip_loss(clip, images, text, ws, ws_start, l2=0.01, identity=identity, id_weight=0.5,
                                 reference=reference)
    # by hand: cosines of unit vectors, squared distances summed over every coordinate, identity cosines
    fi = clip.encode_image(images)
    cos = (fi / fi.norm(dim=1, keepdim=True) * text / text.norm(dim=1, keepdim=True)).sum(1)
    l2 = ((ws - ws_start) ** 2).reshape(3, -1).sum(1)
    ea, eb = identity.net(images), identity.net(reference)
    id_part = 1 - (ea * eb).sum(1) / (ea.norm(dim=1) * eb.norm(dim=1))
    torch.testing.assert_close(parts["clip"], 1 - cos)
    torch.testing.assert_close(parts["l2"], l2)
    torch.testing.assert_close(parts["id"], id_part)
    torch.testing.assert_close(loss, 1 - cos + 0.01 * l2 + 0.5 * id_part)
    torch.testing.assert_close(clip_distance(clip, images, text), 1 - cos)


def test_loss_errors(model):
    ws = torch.zeros(2, model.num_ws, model.w_dim)
    images = model.generator.synthesis(ws, noise_mode="const")
    text = model.clip.encode_text(["a", "b"])
    with pytest.raises(ValueError, match="ws and ws_start"):
        styleclip_loss(model.clip, images, text, ws, ws[:1])
    with pytest.raises(ValueError, match="identity"):
        styleclip_loss(model.clip, images, text, ws, ws, id_weight=0.1)


def test_codes_are_independent_and_the_gradient_reaches_w(model):
    # a batch of codes is N separate problems: code 0 optimised alone equals code 0 optimised beside another
    opt = StyleCLIPOptimizer(model.clip, model.generator, steps=5)
    g = torch.Generator().manual_seed(1)
    start = torch.randn(2, model.num_ws, model.w_dim, generator=g)
    text = model.clip.encode_text(["a smiling person", "a bald person"])
    both = opt.optimize(start, text)
    alone = opt.optimize(start[:1], text[:1])
    torch.testing.assert_close(both[:1], alone, atol=1e-5, rtol=1e-5)
    assert not torch.equal(both, start)  # clip.encode_image is differentiable: the codes moved


def test_optimisation_lowers_the_clip_distance(model):
    # 30 steps at lr 0.1: enough for the tiny random CLIP to move (the authors' 40 steps at full size)
    opt = StyleCLIPOptimizer(model.clip, model.generator, steps=30)
    captions = ["a smiling person with red hair", "a bald person wearing eyeglasses"]
    text = model.clip.encode_text(captions).repeat_interleave(2, 0)
    start = opt.generation_starts(4, seed=0)
    end = opt.optimize(start, text, l2=0.0)
    with torch.no_grad():
        before = clip_distance(model.clip, opt.synthesize(start), text)
        after = clip_distance(model.clip, opt.synthesize(end), text)
    assert (after < before).all(), (before, after)


def test_generate_shapes_order_and_seeds(model):
    opt = StyleCLIPOptimizer(model.clip, model.generator, steps=3)  # 3 steps: shapes and seeds only
    a = opt.generate(["a smiling person", "a bald person"], n_per_prompt=2, seed=0)
    assert a.shape == (4, 3, 16, 16) and a.min() >= -1 and a.max() <= 1
    torch.testing.assert_close(a, opt.generate(["a smiling person", "a bald person"], n_per_prompt=2, seed=0),
                               rtol=0, atol=0)
    assert not torch.allclose(a, opt.generate(["a smiling person", "a bald person"], n_per_prompt=2, seed=1))
    assert not torch.allclose(a[0], a[1])  # two samples of a prompt start from different perturbations
    # prompt-major: the first prompt's samples come first, each as generated on its own
    single = opt.generate(["a smiling person"], n_per_prompt=2, seed=0)
    assert single.shape == (2, 3, 16, 16)


def test_generation_starts(model):
    G = model.generator
    G.mapping.w_avg.copy_(torch.linspace(-1, 1, model.w_dim))
    try:
        at_mean = StyleCLIPOptimizer(model.clip, G, start_psi=0.0).generation_starts(3, seed=0)
        torch.testing.assert_close(at_mean, G.mapping.w_avg.expand(3, model.num_ws, model.w_dim))
        opt = StyleCLIPOptimizer(model.clip, G, start_psi=0.25)
        starts = opt.generation_starts(3, seed=0)
        z = torch.randn([3, G.z_dim], generator=torch.Generator().manual_seed(0))
        sample = G.mapping(z, None, update_emas=False)
        torch.testing.assert_close(starts, G.mapping.w_avg + 0.25 * (sample - G.mapping.w_avg))
    finally:
        G.mapping.w_avg.zero_()


def test_editing_starts_at_the_inversion(model):
    x = _images(3)
    texts = ["a person wearing eyeglasses", "a bald person", "a person wearing eyeglasses"]
    rec = model.reconstruct(x)
    opt = StyleCLIPOptimizer.from_model(model, steps=0)
    before, after = opt.edit_pairs(x, texts)
    torch.testing.assert_close(before, rec)
    torch.testing.assert_close(after, rec)  # 0 steps: w* = w_s
    opt = StyleCLIPOptimizer.from_model(model, steps=4)
    before, after = opt.edit_pairs(x, texts, beta=0.0)
    torch.testing.assert_close(before, rec)
    torch.testing.assert_close(after, rec)  # β = 0: the reconstruction
    _, edited = opt.edit_pairs(x, texts, beta=1.0)
    assert not torch.allclose(edited, rec)
    ws_start, ws_opt = opt.edit_latents(x, texts)
    _, half = opt.edit_pairs(x, texts, beta=0.5)
    torch.testing.assert_close(half, model.synthesize(ws_start + 0.5 * (ws_opt - ws_start)).clamp(-1, 1))


def test_editing_with_the_identity_term(model):
    # the identity term pulls G(w) towards G(w_s): with a large λ_ID the edit moves less in identity
    x = _images(2, seed=4)
    texts = ["a bald person", "a person wearing a hat"]
    net = FlatIdentity(3 * 16 * 16)
    free = StyleCLIPOptimizer(model.clip, model.generator, steps=10, l2=0.0, encoder=model.encode_image)
    held = StyleCLIPOptimizer(model.clip, model.generator, steps=10, l2=0.0, encoder=model.encode_image,
                              identity=IdentityLoss(net), id_weight=10.0)
    b0, a0 = free.edit_pairs(x, texts)
    b1, a1 = held.edit_pairs(x, texts)
    with torch.no_grad():
        def moved(b, a):
            return 1 - F.cosine_similarity(net(a), net(b), dim=-1)
        assert moved(b1, a1).mean() < moved(b0, a0).mean()


def test_errors(model):
    opt = StyleCLIPOptimizer.from_model(model, steps=1)
    x = _images(2)
    with pytest.raises(ValueError, match="2 images but 1 texts"):
        opt.edit_pairs(x, ["a bald person"])
    with pytest.raises(ValueError, match="empty"):
        opt.edit_pairs(x, ["a bald person", "  "])
    with pytest.raises(ValueError, match="beta"):
        opt.edit_pairs(x, ["a", "b"], beta=math.nan)
    with pytest.raises(ValueError, match="empty"):
        opt.generate([])
    with pytest.raises(ValueError, match="n_per_prompt"):
        opt.generate(["a"], n_per_prompt=0)
    with pytest.raises(ValueError, match="ws_start"):
        opt.optimize(torch.zeros(2, 3, 4), torch.zeros(2, 32))
    no_encoder = StyleCLIPOptimizer(model.clip, model.generator, steps=1)
    with pytest.raises(ValueError, match="encoder"):
        no_encoder.edit_pairs(x, ["a", "b"])
