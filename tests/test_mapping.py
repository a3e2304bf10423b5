"""MappingNetwork: shapes, the paper's parameter count, the w_avg offset, gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clip2gan.mapping import MappingNetwork, paper_parameter_count


def unit_features(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, d, generator=g), dim=-1)  # CLIP features are unit vectors


@pytest.mark.parametrize(
    "in_dim, num_ws, w_dim, n_layers",
    [(16, 6, 8, 12), (16, 6, 8, 4), (32, 14, 16, 1), (128, 10, 32, 8)],  # tiny widths: each builds in ms
)
def test_output_shape(in_dim, num_ws, w_dim, n_layers):
    M = MappingNetwork(in_dim, num_ws, w_dim, n_layers=n_layers, hidden_dim=32)
    ws = M(unit_features(3, in_dim))
    assert ws.shape == (3, num_ws, w_dim) and torch.isfinite(ws).all()
    assert len([m for m in M.children()]) == n_layers


@pytest.mark.parametrize("bad", [torch.zeros(3, 15), torch.zeros(16), torch.zeros(2, 3, 16)])
def test_rejects_wrong_input_shape(bad):
    with pytest.raises(ValueError, match=r"\[N, 16\]"):
        MappingNetwork(16, 6, 8, hidden_dim=32)(bad)


def test_paper_config_parameter_count():
    """512 -> 18 × 512, 12 layers, hidden 512: 11 × (512·512 + 512) + 512·9216 + 9216 = 7,617,024."""
    M = MappingNetwork(512, 18, 512)  # the full paper size (7.6 M parameters): builds in ~0.1 s
    n = sum(p.numel() for p in M.parameters())
    assert n == paper_parameter_count() == 7_617_024
    assert M(unit_features(2, 512)).shape == (2, 18, 512)
    # Table 3's shallower variants: the formula agrees with the built networks.
    for layers in (4, 8):
        built = sum(p.numel() for p in MappingNetwork(512, 18, 512, n_layers=layers).parameters())
        assert built == paper_parameter_count(n_layers=layers)
    # w_avg is a buffer, not a parameter: it is saved with M but never trained.
    assert "w_avg" in M.state_dict() and "w_avg" not in dict(M.named_parameters())


def test_w_avg_offset_puts_untrained_output_near_w_avg():
    """The measured reason for offset_w_avg=True: an untrained M lands next to the generator's average latent."""
    w_dim, num_ws = 64, 6  # 64-d w: large enough for stable distances, small enough to be instant
    w_avg = torch.randn(w_dim, generator=torch.Generator().manual_seed(1))  # O(1) per coordinate off the origin
    f = unit_features(32, 128)
    torch.manual_seed(0)
    with_offset = MappingNetwork(128, num_ws, w_dim, hidden_dim=64, w_avg=w_avg)
    torch.manual_seed(0)
    without = MappingNetwork(128, num_ws, w_dim, hidden_dim=64, w_avg=w_avg, offset_w_avg=False)
    d_with = (with_offset(f) - w_avg).norm(dim=-1).mean()
    d_without = (without(f) - w_avg).norm(dim=-1).mean()
    assert d_with < 0.2 * d_without
    # Untrained residual: per-coordinate RMS about last_init_scale (0.1).
    rms = (with_offset(f) - w_avg).square().mean().sqrt()
    assert 0.03 < rms < 0.3
    # Same weights (same seed), only the offset differs.
    assert torch.allclose(with_offset(f) - w_avg, without(f), atol=1e-6)


def test_for_generator_reads_num_ws_w_dim_and_w_avg():
    class FakeMapping(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("w_avg", torch.arange(8.0))

    class FakeG(torch.nn.Module):
        num_ws, w_dim = 6, 8

        def __init__(self):
            super().__init__()
            self.mapping = FakeMapping()

    M = MappingNetwork.for_generator(FakeG(), in_dim=16, hidden_dim=32)
    assert (M.num_ws, M.w_dim) == (6, 8) and torch.equal(M.w_avg, torch.arange(8.0))
    with pytest.raises(ValueError, match=r"\[8\]"):
        M.set_w_avg(torch.zeros(7))


def test_for_real_generator():
    from clip2gan import stylegan2

    # 16 px, 16 channels: the smallest StyleGAN2 that has a w+ space (num_ws = 6)
    G = stylegan2.Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                            channel_base=64, channel_max=16, mapping_kwargs=dict(num_layers=2))
    G.mapping.w_avg.normal_()
    M = MappingNetwork.for_generator(G, in_dim=16, hidden_dim=32)
    ws = M(unit_features(2, 16))
    assert ws.shape == (2, G.num_ws, G.w_dim)
    assert G.synthesis(ws, noise_mode="const").shape == (2, 3, 16, 16)


def test_gradients_reach_every_layer_and_not_w_avg():
    M = MappingNetwork(16, 6, 8, hidden_dim=32, w_avg=torch.ones(8))
    M(unit_features(4, 16)).square().sum().backward()
    for name, p in M.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert not M.w_avg.requires_grad


def test_input_scale_does_not_matter_with_normalize_input():
    """normalize_2nd_moment: a raw (unnormalised) CLIP feature maps like its unit-norm version."""
    M = MappingNetwork(16, 6, 8, hidden_dim=32)
    f = unit_features(3, 16)
    assert torch.allclose(M(f), M(10.0 * f), atol=1e-5)


def test_config_round_trip():
    M = MappingNetwork(16, 6, 8, n_layers=4, hidden_dim=32, offset_w_avg=False)
    M2 = MappingNetwork(**M.config)
    M2.load_state_dict(M.state_dict(), strict=True)
    f = unit_features(2, 16)
    assert torch.equal(M(f), M2(f))
