"""Golden outputs: our Generator and Discriminator against NVIDIA's own stylegan2-ada-pytorch code.

tests/fixtures/stylegan2_golden/ holds what NVIDIA's `training/networks.py` computed on CPU for a tiny
conditional configuration (32 px, at most 16 channels, conv_clamp 2 so that clamping acts, weights
randomised so that every bias and noise strength counts): its state dicts, the inputs and its
outputs. The README there says how they were made. Here the state dicts load with `strict=True`
into this package's networks, built from the same constructor arguments, and the outputs must agree
to 1e-4 (the bar the package docstring states; float summation order differs, nothing else).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from clip2gan.stylegan2 import Discriminator, Generator, set_resample_impl

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "stylegan2_golden"
ATOL = 1e-4


def _config() -> dict:
    with safe_open(str(FIXTURES / "nvidia_io.safetensors"), "pt") as f:
        meta = f.metadata()
    return {"G": json.loads(meta["G_init_kwargs"]), "D": json.loads(meta["D_init_kwargs"])}


@pytest.fixture(scope="module")
def io() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / "nvidia_io.safetensors"))


@pytest.fixture(scope="module")
def G() -> Generator:
    net = Generator(**_config()["G"]).eval()
    net.load_state_dict(load_file(str(FIXTURES / "nvidia_G.safetensors")), strict=True)
    return net


@pytest.fixture(scope="module")
def D() -> Discriminator:
    net = Discriminator(**_config()["D"]).eval()
    net.load_state_dict(load_file(str(FIXTURES / "nvidia_D.safetensors")), strict=True)
    return net


def _close(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == theirs.shape
    err = (ours - theirs).abs().max().item()
    assert err <= ATOL, f"max abs error {err:.2e} > {ATOL:.0e}"


def test_fixtures_are_what_the_readme_says(io):
    assert _config()["G"]["img_resolution"] == 32 and _config()["G"]["c_dim"] == 3
    assert io["img_const"].shape == (2, 3, 32, 32) and io["logits"].shape == (2, 1)
    # The outputs are not trivial: clamping and the label path are exercised, images vary.
    assert io["img_const"].std() > 0.1 and not torch.equal(io["img_const"][0], io["img_const"][1])
    assert not torch.allclose(io["img_const"], io["img_none"], atol=1e-3)


@torch.no_grad()
def test_clamping_and_labels_count(G, D, io):
    # Without conv_clamp, or with other labels, the same weights give other outputs: both paths are checked.
    unclamped = Generator(**{**_config()["G"], "synthesis_kwargs": {**_config()["G"]["synthesis_kwargs"],
                                                                       "conv_clamp": None}}).eval()
    unclamped.load_state_dict(G.state_dict(), strict=True)
    assert (unclamped.synthesis(io["ws"]) - io["img_const"]).abs().max() > 100 * ATOL
    assert (D(io["img_const"], torch.zeros_like(io["c"])) - io["logits"]).abs().max() > 100 * ATOL


@torch.no_grad()
def test_mapping_matches_nvidia(G, io):
    _close(G.mapping(io["z"], io["c"]), io["ws"])
    _close(G.mapping(io["z"], io["c"], truncation_psi=0.7, truncation_cutoff=4), io["ws_trunc"])


@pytest.mark.parametrize("impl", ["fast", "ref"])
@pytest.mark.parametrize("fused_modconv", [None, True, False])  # None: our CPU default (unfused)
@torch.no_grad()
def test_synthesis_matches_nvidia(G, io, impl, fused_modconv):
    set_resample_impl(G, impl)
    try:
        # NVIDIA's eval-mode default is the fused (grouped) modulated convolution; its unfused path
        # gives the same image to float rounding, and both are compared.
        for key in ("img_const", "img_unfused"):
            _close(G.synthesis(io["ws"], noise_mode="const", fused_modconv=fused_modconv), io[key])
        _close(G.synthesis(io["ws"], noise_mode="none", fused_modconv=fused_modconv), io["img_none"])
    finally:
        set_resample_impl(G, "fast")


@torch.no_grad()
def test_random_noise_is_drawn_as_nvidia_draws_it(G, io):
    # Same shapes, same order of torch.randn calls: the same seed gives the same image.
    torch.manual_seed(4)
    _close(G.synthesis(io["ws"], noise_mode="random"), io["img_random"])


@torch.no_grad()
def test_generator_end_to_end(G, io):
    _close(G(io["z"], io["c"], noise_mode="const"), io["img_const"])


@pytest.mark.parametrize("impl", ["fast", "ref"])
@torch.no_grad()
def test_discriminator_matches_nvidia(D, io, impl):
    set_resample_impl(D, impl)
    try:
        _close(D(io["img_const"], io["c"]), io["logits"])
        _close(D(io["real"], io["c"]), io["logits_real"])
    finally:
        set_resample_impl(D, "fast")
