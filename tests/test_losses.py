"""The losses of eq. 4-10: zeros on identical images, eq. 6-7 forms, the gradient penalty against finite
differences, the diversity ratio, the noise scale, the weighted total, and where gradients flow."""

from __future__ import annotations

import dataclasses
import math

import open_clip
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clip2gan import losses as L
from clip2gan import stylegan2
from clip2gan.hub import WeightsNotFound

# -- tiny worlds -------------------------------------------------------------------------------


class StandInD(nn.Module):
    """A small conv discriminator with the StyleGAN2 call signature D(img, c) -> [N, 1].

    Smooth (softplus) so that finite differences in float64 match autograd to ~1e-8."""

    def __init__(self, channels: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, 2, 1)
        self.fc = nn.Linear(channels * 4 * 4, 1)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = F.adaptive_avg_pool2d(F.softplus(self.conv(img)), 4)  # any input size
        return self.fc(h.flatten(1))


def tiny_G_and_D():
    """16 px StyleGAN2 with 16 channels (num_ws = 6): the smallest real G/D pair; a step takes ~50 ms."""
    sg = stylegan2
    torch.manual_seed(0)
    G = sg.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3, channel_base=64,
                     channel_max=16, mapping_kwargs=dict(num_layers=2))
    D = sg.Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=64, channel_max=16)
    return G, D


def tiny_clip():
    """Random open_clip CLIP, 16 px, 2 ViT blocks, embed 16: the encoder's code path at a toy size."""
    from clip2gan.clip_encoder import ClipEncoder

    torch.manual_seed(0)
    model = open_clip.CLIP(
        embed_dim=16,
        vision_cfg=dict(image_size=16, patch_size=4, width=32, layers=2, head_width=16),
        text_cfg=dict(context_length=12, vocab_size=49408, width=32, heads=2, layers=1),
    )
    return ClipEncoder(model, open_clip.SimpleTokenizer(context_length=12))


class TinyIdentity(nn.Module):
    """Any module images -> [N, D] fits IdentityLoss; 8 channels keep it instant."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, 2, 1)

    def forward(self, x):
        return F.relu(self.conv(x)).mean(dim=(2, 3)) + 0.1


def images(n=2, size=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 2 - 1


# -- identical images: zero losses ---------------------------------------------------------------


def test_reconstruction_zero_on_identical_and_values():
    x = images()
    assert L.reconstruction_loss(x, x) == 0
    assert L.reconstruction_loss(x, x, mode="rmse") < 1e-5
    y = x + 0.5
    assert torch.isclose(L.reconstruction_loss(x, y), torch.tensor(0.25))
    assert torch.isclose(L.reconstruction_loss(x, y, mode="rmse"), torch.tensor(0.5), atol=1e-5)
    with pytest.raises(ValueError):
        L.reconstruction_loss(x, x[:1])


@pytest.fixture(scope="module")
def random_alex_lpips():
    return L.LPIPSLoss("alex-random")  # ~1 s: torchvision builds the whole AlexNet; built once


@pytest.mark.parametrize("trunk", ["clip", "alex-random"])
def test_lpips_zero_on_identical_positive_otherwise(trunk, random_alex_lpips):
    lp = L.LPIPSLoss(trunk, clip_encoder=tiny_clip()) if trunk == "clip" else random_alex_lpips
    x, y = images(size=32, seed=0), images(size=32, seed=1)  # 32 px: the toy world's size
    assert lp(x, x).abs() < 1e-6
    assert lp(y, x) > 1e-3
    assert lp(y, x, reduction="none").shape == (2,)
    y.requires_grad_(True)
    lp(y, x).backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in lp.parameters())


def test_lpips_random_trunk_is_seeded(random_alex_lpips):
    torch.manual_seed(123)  # the global seed must not matter
    a, b = random_alex_lpips, L.LPIPSLoss("alex-random")
    x, y = images(size=32, seed=0), images(size=32, seed=1)
    assert torch.equal(a(x, y), b(x, y))


def test_lpips_alex_offline_names_file_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty torch hub cache
    with pytest.raises(WeightsNotFound) as info:
        L.LPIPSLoss("alex")
    msg = str(info.value)
    assert "alexnet-owt-7be5be79.pth" in msg and "TORCH_HOME" in msg and str(tmp_path) in msg
    assert "download.pytorch.org" in msg
    with pytest.raises(WeightsNotFound):
        L.LPIPSLoss.for_profile("ffhq")
    with pytest.raises(ValueError, match="clip_encoder"):
        L.LPIPSLoss.for_profile("toyfaces")


def test_identity_loss_zero_on_identical_and_is_one_minus_cosine():
    net = TinyIdentity()
    idl = L.IdentityLoss(net)
    x, y = images(seed=0), images(seed=1)
    assert idl(x, x).abs() < 1e-6
    expected = 1 - F.cosine_similarity(net(y), net(x), dim=-1).mean()
    assert torch.isclose(idl(y, x), expected, atol=1e-6)
    idl.train()
    assert not idl.net.training


# -- eq. 6-7 -----------------------------------------------------------------------------------


def test_adversarial_forms_match_the_equations():
    torch.manual_seed(0)
    D = StandInD()
    real, fake = images(4, seed=0), images(4, seed=1)
    lr, lf = D(real)[:, 0], D(fake)[:, 0]
    p_real, p_fake = torch.sigmoid(lr), torch.sigmoid(lf)
    # eq. 6 as written, and the two options
    assert torch.isclose(L.g_adv_loss(D, fake), torch.log(1 - p_fake).mean(), atol=1e-6)
    assert torch.isclose(L.g_adv_loss(D, fake, form="nonsaturating"), -torch.log(p_fake).mean(), atol=1e-6)
    assert torch.isclose(L.g_adv_loss(D, fake, form="wgan"), -lf.mean(), atol=1e-6)
    # eq. 7 without the penalty
    loss, parts = L.d_loss(D, real, fake, gp_weight=0)
    assert torch.isclose(loss, -(torch.log(p_real).mean() + torch.log(1 - p_fake).mean()), atol=1e-6)
    assert "gp" not in parts
    loss_w, _ = L.d_loss(D, real, fake, gp_weight=0, form="wgan")
    assert torch.isclose(loss_w, lf.mean() - lr.mean(), atol=1e-6)
    with pytest.raises(ValueError):
        L.g_adv_loss(D, fake, form="hinge")


def _fd_grad(fn, x: torch.Tensor, h: float) -> torch.Tensor:
    g = torch.zeros_like(x)
    flat, gflat = x.view(-1), g.view(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + h
        up = fn(x)
        flat[i] = old - h
        down = fn(x)
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return g


def test_gradient_penalty_matches_finite_differences_float64():
    """E[(‖∇_x' D(x')‖ − 1)²] from central differences of D (3×8×8 inputs, float64: 768 D calls, ~0.2 s)."""
    torch.manual_seed(0)
    D = StandInD().double()
    x = (torch.rand(2, 3, 8, 8, dtype=torch.float64) * 2 - 1)
    with torch.no_grad():
        g_fd = _fd_grad(lambda t: D(t).sum(), x.clone(), 1e-5)
    norms_fd = g_fd.flatten(1).norm(dim=1)
    gp_fd = ((norms_fd - 1) ** 2).mean()
    gp, logits, norms = L.gradient_penalty(D, x)
    assert torch.allclose(norms.double(), norms_fd, rtol=1e-6)
    assert torch.isclose(gp.double(), gp_fd, rtol=1e-6)
    # the probability reading: ∇σ(D) = σ'(D) ∇D
    gp_p, _, norms_p = L.gradient_penalty(D, x, of="probability")
    s = torch.sigmoid(logits.double())
    assert torch.allclose(norms_p.double(), s * (1 - s) * norms_fd, rtol=1e-6)
    # and d_loss puts exactly this term, weighted, on x' (the fake batch)
    _, parts = L.d_loss(D, x.flip(0), x, gp_weight=1.0)
    assert torch.isclose(parts["gp"].double(), gp_fd, rtol=1e-6)


def test_gradient_penalty_real_discriminator_directional_finite_differences():
    """On the real StyleGAN2 D (float32 inside): the derivative along each sample's gradient direction is its norm."""
    _, D = tiny_G_and_D()
    x = images(4, seed=3)  # batch 4: the minibatch-std group size
    gp, _, norms = L.gradient_penalty(D, x)
    xg = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(D(xg).sum(), xg)
    h = 1e-2
    with torch.no_grad():
        for i in range(x.shape[0]):
            u = torch.zeros_like(x)
            u[i] = g[i] / g[i].norm()
            fd = (D(x + h * u).sum() - D(x - h * u).sum()) / (2 * h)
            assert abs(float(fd) - float(norms[i])) < 0.02 * float(norms[i]) + 1e-4
    assert torch.isclose(gp, ((norms - 1) ** 2).mean())


def test_gradient_penalty_trains_d_but_not_the_fake_source():
    _, D = tiny_G_and_D()
    src = torch.zeros(4, 3, 16, 16, requires_grad=True)
    fake = src + images(4, seed=1)  # a graph back to "M"
    real = images(4, seed=2)
    loss, parts = L.d_loss(D, real, fake, gp_weight=1.0)
    loss.backward()
    assert src.grad is None  # the discriminator's step never reaches the mapping network's side
    grads_gp = [p.grad.clone() if p.grad is not None else None for p in D.parameters()]
    D.zero_grad(set_to_none=True)
    L.d_loss(D, real, fake, gp_weight=0.0)[0].backward()
    grads_0 = [p.grad for p in D.parameters()]
    # create_graph=True: the penalty changes D's gradients (it trains D)
    assert any(a is not None and b is not None and not torch.allclose(a, b) for a, b in zip(grads_gp, grads_0))
    assert parts["gp"] > 0 and "grad_norm" in parts


@pytest.mark.parametrize("gp_on", ["real", "interpolate"])
def test_penalty_options(gp_on):
    torch.manual_seed(0)
    D = StandInD()
    real, fake = images(2, size=8, seed=0), images(2, size=8, seed=1)
    loss, parts = L.d_loss(D, real, fake, gp_on=gp_on, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and parts["gp"] >= 0


# -- eq. 9: noise and diversity ----------------------------------------------------------------


def test_diversity_loss_falls_as_outputs_spread():
    f = F.normalize(torch.randn(4, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    f1 = L.add_clip_noise(f, L.NoiseConfig(), generator=torch.Generator().manual_seed(1))
    x = images(4, seed=0)
    delta = images(4, seed=1)
    values = [float(L.diversity_loss(f, f1, x, x + s * delta)) for s in (0.01, 0.05, 0.2, 1.0)]
    assert all(a > b for a, b in zip(values, values[1:])), values
    # l1 ratio, per sample, averaged
    d_f = (f - f1).abs().mean(1)
    d_x = (0.2 * delta).abs().flatten(1).mean(1)
    assert math.isclose(values[2], float((d_f / (d_x + 1e-3)).mean()), rel_tol=1e-5)
    # finite when M ignores the noise
    assert math.isfinite(float(L.diversity_loss(f, f1, x, x)))


def test_noise_scales_default_and_paper():
    d = 512
    f = F.normalize(torch.randn(256, d, generator=torch.Generator().manual_seed(0)), dim=-1)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    # default: noise vector of norm ≈ 0.5, then back on the unit sphere (cos ≈ 0.89)
    raw = L.add_clip_noise(f, L.NoiseConfig(renormalize=False), generator=g())
    assert abs(float((raw - f).norm(dim=1).mean()) - 0.5) < 0.02
    noisy = L.add_clip_noise(f, L.NoiseConfig(), generator=g())
    assert torch.allclose(noisy.norm(dim=1), torch.ones(256), atol=1e-5)
    assert abs(float(F.cosine_similarity(noisy, f).mean()) - 1 / math.sqrt(1.25)) < 0.02
    # paper, training: N(0, 1) per coordinate swamps a unit feature (norm ≈ sqrt(512) ≈ 22.6, cos ≈ 0.04)
    paper = L.add_clip_noise(f, L.NoiseConfig.paper_train(), generator=g())
    assert abs(float((paper - f).norm(dim=1).mean()) - math.sqrt(d)) < 0.5
    assert float(F.cosine_similarity(paper, f).mean()) < 0.1
    # paper, test time, multiplicative reading: relative perturbation ≈ 0.6
    mult_cfg = dataclasses.replace(L.NoiseConfig.paper_test("multiplicative"), renormalize=False)
    mult = L.add_clip_noise(f, mult_cfg, generator=g())
    assert abs(float((mult - f).norm(dim=1).mean()) - 0.6) < 0.05
    # reproducible with a generator
    assert torch.equal(L.add_clip_noise(f, generator=g()), L.add_clip_noise(f, generator=g()))
    with pytest.raises(ValueError):
        L.NoiseConfig(scale="weird")


# -- eq. 10 ------------------------------------------------------------------------------------


def test_loss_weights_are_the_papers():
    w = L.LossWeights()
    assert (w.rec, w.lpips, w.adv, w.id, w.div, w.gp) == (1.0, 1.0, 0.1, 1.0, 1.0, 1.0)
    assert L.LossWeights.from_dict({"adv": 0.0}).adv == 0.0
    with pytest.raises(ValueError, match="unknown"):
        L.LossWeights.from_dict({"advv": 0.0})


def test_total_is_the_weighted_sum_and_zero_on_identical():
    torch.manual_seed(0)
    clip = tiny_clip()
    lp = L.LPIPSLoss("clip", clip_encoder=clip)
    idl = L.IdentityLoss(TinyIdentity())
    D = StandInD()
    x, y, y1 = images(2, seed=0), images(2, seed=1), images(2, seed=2)
    f = clip.encode_image(x)
    f1 = L.add_clip_noise(f, generator=torch.Generator().manual_seed(0))
    w = L.LossWeights(rec=2.0, lpips=0.5, adv=0.1, id=3.0, div=0.25)
    total, parts = L.total_loss(x, y, weights=w, lpips=lp, D=D, identity=idl, f_img=f, f_img_noisy=f1, x_rec_noisy=y1)
    assert set(parts) == {"rec", "lpips", "adv", "id", "div"}
    expect = 2.0 * parts["rec"] + 0.5 * parts["lpips"] + 0.1 * parts["adv"] + 3.0 * parts["id"] + 0.25 * parts["div"]
    assert torch.isclose(total, expect, atol=1e-6)
    _, same = L.total_loss(x, x, lpips=lp, identity=idl)
    assert same["rec"] == 0 and same["lpips"].abs() < 1e-6 and same["id"].abs() < 1e-6
    # parts without their networks are left out (AFHQ/LSUN: no identity net; --no-adv: no D)
    _, few = L.total_loss(x, y)
    assert set(few) == {"rec"}


def test_gradients_reach_M_and_D_only():
    """CLIP -> M -> G -> every loss: M gets gradients, frozen CLIP/G/identity/LPIPS and D do not;
    the D step then trains D and leaves M untouched."""
    from clip2gan.mapping import MappingNetwork

    G, D = tiny_G_and_D()
    G.requires_grad_(False)
    clip = tiny_clip()
    M = MappingNetwork.for_generator(G, in_dim=clip.embed_dim, hidden_dim=32)  # 32 wide: instant
    lp = L.LPIPSLoss("clip", clip_encoder=clip)
    idl = L.IdentityLoss(TinyIdentity())
    x = images(4, seed=0)  # batch 4: the discriminator's minibatch-std group

    with torch.no_grad():
        f = clip.encode_image(x)
    f1 = L.add_clip_noise(f, generator=torch.Generator().manual_seed(0))
    x_rec = G.synthesis(M(f), noise_mode="const")
    x_rec1 = G.synthesis(M(f1), noise_mode="const")
    with L.requires_grad(D, False):
        total, parts = L.total_loss(x, x_rec, lpips=lp, D=D, identity=idl, f_img=f, f_img_noisy=f1, x_rec_noisy=x_rec1)
    assert set(parts) == {"rec", "lpips", "adv", "id", "div"}
    total.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in M.parameters())
    assert sum(float(p.grad.abs().sum()) for p in M.parameters()) > 0
    for name, module in [("G", G), ("CLIP", clip), ("identity", idl), ("D", D)]:
        assert all(p.grad is None for p in module.parameters()), name
    assert all(p.requires_grad for p in D.parameters())  # restored after the context

    M.zero_grad(set_to_none=True)
    ld, _ = L.d_loss(D, x, x_rec, gp_weight=1.0)
    ld.backward()
    assert all(p.grad is None for p in M.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters())
    assert all(p.grad is None for p in G.parameters())
