"""Tests for clip2gan.stylegan2: NVIDIA-compatible StyleGAN2, safe pickle loading, converters, checkpoints.

All offline and CPU-only. Sizes are tiny on purpose; each choice says why. NVIDIA parity itself
(against outputs of NVIDIA's own code) is checked by tests/test_stylegan2_golden.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import pickle
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.storage import _load_from_bytes as _torch_load_from_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from nvidia_format import write_nvidia_pickle, write_tf_pickle  # noqa: E402

from clip2gan import stylegan2  # noqa: E402
from clip2gan.stylegan2 import (  # noqa: E402
    Discriminator,
    Generator,
    UnsafePickleError,
    channels_dict,
    load_generator,
    load_nvidia_pkl,
    load_rosinality,
    num_ws_for,
    set_resample_impl,
    skip_init,
)

# One thread per test comes from tests/conftest.py.

# 16 px, at most 16 channels, 2 mapping layers, conditional (c_dim 3): every network in these tests
# runs a forward pass in a few milliseconds, and the conditional path (mapping.embed) is covered.
TINY_G = dict(z_dim=8, c_dim=3, w_dim=8, img_resolution=16, img_channels=3, mapping_kwargs=dict(num_layers=2),
              synthesis_kwargs=dict(channel_base=64, channel_max=16))
# The matching discriminator; mbstd group 2 so that batches of 2 work.
TINY_D = dict(c_dim=3, img_resolution=16, img_channels=3, channel_base=64, channel_max=16,
              epilogue_kwargs=dict(mbstd_group_size=2))


def _randomise(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Fresh networks have zero biases and noise strengths: give everything values so all paths count."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=gen))
        for name, b in net.named_buffers():
            if name.endswith("w_avg"):
                b.copy_(torch.randn(b.shape, generator=gen))
    return net


@pytest.fixture(scope="module")
def tiny_G() -> Generator:
    torch.manual_seed(0)
    return _randomise(Generator(**TINY_G)).eval()


@pytest.fixture(scope="module")
def tiny_D() -> Discriminator:
    torch.manual_seed(1)
    return _randomise(Discriminator(**TINY_D), seed=1).eval()


def _zc(n: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, TINY_G["z_dim"], generator=gen), torch.randn(n, TINY_G["c_dim"], generator=gen)


# ------------------------------------------------------------------------------------------------
# Architecture: names, shapes, num_ws and the channel table.

# State-dict keys and shapes of NVIDIA's stylegan2-ada-pytorch networks for TINY_G / TINY_D (without
# the epilogue override, which has no parameters), listed from NVIDIA's own classes: the contract
# that lets their state dicts load with strict=True.
NVIDIA_G_KEYS = {
    "synthesis.b4.const": [16, 4, 4], "synthesis.b4.resample_filter": [4, 4],
    "synthesis.b4.conv1.weight": [16, 16, 3, 3], "synthesis.b4.conv1.noise_strength": [],
    "synthesis.b4.conv1.bias": [16], "synthesis.b4.conv1.resample_filter": [4, 4],
    "synthesis.b4.conv1.noise_const": [4, 4], "synthesis.b4.conv1.affine.weight": [16, 8],
    "synthesis.b4.conv1.affine.bias": [16], "synthesis.b4.torgb.weight": [3, 16, 1, 1],
    "synthesis.b4.torgb.bias": [3], "synthesis.b4.torgb.affine.weight": [16, 8],
    "synthesis.b4.torgb.affine.bias": [16], "synthesis.b8.resample_filter": [4, 4],
    "synthesis.b8.conv0.weight": [8, 16, 3, 3], "synthesis.b8.conv0.noise_strength": [],
    "synthesis.b8.conv0.bias": [8], "synthesis.b8.conv0.resample_filter": [4, 4],
    "synthesis.b8.conv0.noise_const": [8, 8], "synthesis.b8.conv0.affine.weight": [16, 8],
    "synthesis.b8.conv0.affine.bias": [16], "synthesis.b8.conv1.weight": [8, 8, 3, 3],
    "synthesis.b8.conv1.noise_strength": [], "synthesis.b8.conv1.bias": [8],
    "synthesis.b8.conv1.resample_filter": [4, 4], "synthesis.b8.conv1.noise_const": [8, 8],
    "synthesis.b8.conv1.affine.weight": [8, 8], "synthesis.b8.conv1.affine.bias": [8],
    "synthesis.b8.torgb.weight": [3, 8, 1, 1], "synthesis.b8.torgb.bias": [3],
    "synthesis.b8.torgb.affine.weight": [8, 8], "synthesis.b8.torgb.affine.bias": [8],
    "synthesis.b16.resample_filter": [4, 4], "synthesis.b16.conv0.weight": [4, 8, 3, 3],
    "synthesis.b16.conv0.noise_strength": [], "synthesis.b16.conv0.bias": [4],
    "synthesis.b16.conv0.resample_filter": [4, 4], "synthesis.b16.conv0.noise_const": [16, 16],
    "synthesis.b16.conv0.affine.weight": [8, 8], "synthesis.b16.conv0.affine.bias": [8],
    "synthesis.b16.conv1.weight": [4, 4, 3, 3], "synthesis.b16.conv1.noise_strength": [],
    "synthesis.b16.conv1.bias": [4], "synthesis.b16.conv1.resample_filter": [4, 4],
    "synthesis.b16.conv1.noise_const": [16, 16], "synthesis.b16.conv1.affine.weight": [4, 8],
    "synthesis.b16.conv1.affine.bias": [4], "synthesis.b16.torgb.weight": [3, 4, 1, 1],
    "synthesis.b16.torgb.bias": [3], "synthesis.b16.torgb.affine.weight": [4, 8],
    "synthesis.b16.torgb.affine.bias": [4], "mapping.w_avg": [8], "mapping.embed.weight": [8, 3],
    "mapping.embed.bias": [8], "mapping.fc0.weight": [8, 16], "mapping.fc0.bias": [8],
    "mapping.fc1.weight": [8, 8], "mapping.fc1.bias": [8],
}
NVIDIA_D_KEYS = {
    "b16.resample_filter": [4, 4], "b16.fromrgb.weight": [4, 3, 1, 1], "b16.fromrgb.bias": [4],
    "b16.fromrgb.resample_filter": [4, 4], "b16.conv0.weight": [4, 4, 3, 3], "b16.conv0.bias": [4],
    "b16.conv0.resample_filter": [4, 4], "b16.conv1.weight": [8, 4, 3, 3], "b16.conv1.bias": [8],
    "b16.conv1.resample_filter": [4, 4], "b16.skip.weight": [8, 4, 1, 1], "b16.skip.resample_filter": [4, 4],
    "b8.resample_filter": [4, 4], "b8.conv0.weight": [8, 8, 3, 3], "b8.conv0.bias": [8],
    "b8.conv0.resample_filter": [4, 4], "b8.conv1.weight": [16, 8, 3, 3], "b8.conv1.bias": [16],
    "b8.conv1.resample_filter": [4, 4], "b8.skip.weight": [16, 8, 1, 1], "b8.skip.resample_filter": [4, 4],
    "mapping.embed.weight": [16, 3], "mapping.embed.bias": [16], "mapping.fc0.weight": [16, 16],
    "mapping.fc0.bias": [16], "mapping.fc1.weight": [16, 16], "mapping.fc1.bias": [16],
    "mapping.fc2.weight": [16, 16], "mapping.fc2.bias": [16], "mapping.fc3.weight": [16, 16],
    "mapping.fc3.bias": [16], "mapping.fc4.weight": [16, 16], "mapping.fc4.bias": [16],
    "mapping.fc5.weight": [16, 16], "mapping.fc5.bias": [16], "mapping.fc6.weight": [16, 16],
    "mapping.fc6.bias": [16], "mapping.fc7.weight": [16, 16], "mapping.fc7.bias": [16],
    "b4.conv.weight": [16, 17, 3, 3], "b4.conv.bias": [16], "b4.conv.resample_filter": [4, 4],
    "b4.fc.weight": [16, 256], "b4.fc.bias": [16], "b4.out.weight": [16, 16], "b4.out.bias": [16],
}


def test_state_dict_names_and_shapes_are_nvidias(tiny_G, tiny_D):
    assert {k: list(v.shape) for k, v in tiny_G.state_dict().items()} == NVIDIA_G_KEYS
    assert list(tiny_G.state_dict()) == list(NVIDIA_G_KEYS)  # same registration order too
    assert {k: list(v.shape) for k, v in tiny_D.state_dict().items()} == NVIDIA_D_KEYS
    assert list(tiny_D.state_dict()) == list(NVIDIA_D_KEYS)


CONFIG_F = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
PAPER256 = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64}


@pytest.mark.parametrize("res, channel_base, num_ws", [
    (1024, 32768, 18), (512, 32768, 16), (256, 32768, 14), (256, 16384, 14), (1024, 16384, 18),
])
def test_num_ws_and_channel_table(res, channel_base, num_ws):
    # Full-size networks, built inside skip_init(): uninitialised memory, no random init, ~ms each.
    with skip_init():
        G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3,
                      synthesis_kwargs=dict(channel_base=channel_base, channel_max=512))
        D = Discriminator(c_dim=0, img_resolution=res, img_channels=3, channel_base=channel_base)
    assert G.num_ws == G.mapping.num_ws == G.synthesis.num_ws == num_ws == num_ws_for(res)
    table = channels_dict(res, channel_base, 512)
    assert table == {r: min(channel_base // r, 512) for r in table}
    for r, ch in table.items():
        block = getattr(G.synthesis, f"b{r}")
        assert block.conv1.weight.shape[:2] == (ch, ch)
        assert block.torgb.weight.shape == (3, ch, 1, 1)
        if r > 4:
            assert getattr(D, f"b{r}").conv0.weight.shape[:2] == (ch, ch)
    if channel_base == 32768:
        assert table == {r: CONFIG_F[r] for r in table}
    if (res, channel_base) == (256, 16384):
        assert table == PAPER256


def test_shapes_are_checked_at_entry_points(tiny_G, tiny_D):
    z, c = _zc()
    ws = tiny_G.mapping(z, c)
    assert ws.shape == (2, tiny_G.num_ws, 8)
    assert tiny_G.synthesis(ws).shape == (2, 3, 16, 16)
    assert tiny_D(tiny_G.synthesis(ws), c).shape == (2, 1)
    with pytest.raises(ValueError, match="ws: expected shape"):
        tiny_G.synthesis(ws[:, :-1])
    with pytest.raises(ValueError, match="z: expected shape"):
        tiny_G.mapping(z[:, :-1], c)
    with pytest.raises(ValueError, match="c: expected a tensor"):
        tiny_G(z)  # conditional network without c
    with pytest.raises(ValueError, match="img: expected shape"):
        tiny_D(torch.zeros(2, 3, 8, 8), c)


def test_truncation(tiny_G):
    z, c = _zc(3)
    w_avg = tiny_G.mapping.w_avg
    ws0 = tiny_G.mapping(z, c, truncation_psi=0)
    assert torch.allclose(ws0, w_avg.expand_as(ws0))
    ws1 = tiny_G.mapping(z, c)
    ws_cut = tiny_G.mapping(z, c, truncation_psi=0.5, truncation_cutoff=2)
    assert torch.allclose(ws_cut[:, :2], w_avg.lerp(ws1[:, :2], 0.5))
    assert torch.equal(ws_cut[:, 2:], ws1[:, 2:])


def test_const_noise_is_deterministic(tiny_G):
    ws = tiny_G.mapping(*_zc())
    a, b = tiny_G.synthesis(ws, noise_mode="const"), tiny_G.synthesis(ws, noise_mode="const")
    assert torch.equal(a, b)
    assert torch.equal(tiny_G.synthesis(ws, noise_mode="none"), tiny_G.synthesis(ws, noise_mode="none"))
    assert not torch.equal(a, tiny_G.synthesis(ws, noise_mode="none"))
    assert not torch.equal(tiny_G.synthesis(ws, noise_mode="random"), tiny_G.synthesis(ws, noise_mode="random"))
    assert torch.equal(tiny_G(*_zc()), a)  # G(z, c) defaults to const noise


@pytest.mark.parametrize("train_mode", [False, True])  # eval: fused (grouped) modconv; train: unfused
def test_gradients_flow_from_image_to_ws_with_G_frozen(tiny_G, train_mode):
    G = tiny_G.train(train_mode).requires_grad_(False)
    try:
        ws = G.mapping(*_zc(), update_emas=False).detach().requires_grad_(True)
        img = G.synthesis(ws, noise_mode="const")
        img.square().mean().backward()
        assert ws.grad is not None and ws.grad.abs().sum() > 0
        assert torch.isfinite(ws.grad).all()
        assert all(p.grad is None for p in G.parameters())
    finally:
        G.eval()


def test_fp16_request_runs_fp32_on_cpu(tiny_G):
    # num_fp16_res only changes the dtype used on CUDA; on CPU the same weights give the same image.
    G16 = Generator(**{**TINY_G, "synthesis_kwargs": {**TINY_G["synthesis_kwargs"], "num_fp16_res": 2}}).eval()
    assert G16.synthesis.b16.use_fp16 and G16.synthesis.b8.use_fp16 and not G16.synthesis.b4.use_fp16
    G16.load_state_dict(tiny_G.state_dict(), strict=True)
    ws = tiny_G.mapping(*_zc())
    out = G16.synthesis(ws)
    assert out.dtype == torch.float32 and torch.equal(out, tiny_G.synthesis(ws))


# ------------------------------------------------------------------------------------------------
# Ops: the fast paths equal the reference definitions.

@pytest.mark.parametrize("up, down, padding, flip_filter, taps", [
    (2, 1, [2, 1, 2, 1], False, [1, 3, 3, 1]), (1, 2, [1, 1, 1, 1], False, [1, 3, 3, 1]),
    (1, 1, [1, 2, 2, 1], True, [1, 2, 1]), (3, 2, [0, -1, 2, 0], True, [1, 3, 3, 1]),
    (2, 1, [4, 3, 4, 3], False, [1, 2, 3, 4, 4, 3, 2, 1]),  # 8 taps: separable filter path
])
def test_upfirdn2d_fast_equals_reference(up, down, padding, flip_filter, taps):
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)  # odd, non-square: catches off-by-one crops
    f = stylegan2.setup_filter(taps).double()
    ref = stylegan2.upfirdn2d_ref(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=2)
    fast = stylegan2.upfirdn2d(x, f, up=up, down=down, padding=padding, flip_filter=flip_filter, gain=2)
    assert fast.shape == ref.shape
    assert torch.allclose(fast, ref, atol=1e-12)


def test_fused_and_naive_resampling_give_the_same_networks(tiny_G, tiny_D):
    ws = tiny_G.mapping(*_zc())
    img = tiny_G.synthesis(ws)
    logits = tiny_D(img, _zc()[1])
    try:
        set_resample_impl(tiny_G, "ref")
        set_resample_impl(tiny_D, "ref")
        assert torch.allclose(tiny_G.synthesis(ws), img, atol=1e-5)
        assert torch.allclose(tiny_D(img, _zc()[1]), logits, atol=1e-5)
    finally:
        set_resample_impl(tiny_G, "fast")
        set_resample_impl(tiny_D, "fast")


def test_strict_state_dict_load_reproduces_outputs(tiny_G, tiny_D):
    G2 = Generator(**TINY_G).eval()
    G2.load_state_dict(tiny_G.state_dict(), strict=True)
    ws = tiny_G.mapping(*_zc())
    assert torch.equal(G2.synthesis(ws), tiny_G.synthesis(ws))
    D2 = Discriminator(**TINY_D).eval()
    D2.load_state_dict(tiny_D.state_dict(), strict=True)
    img = tiny_G.synthesis(ws)
    assert torch.equal(D2(img, _zc()[1]), tiny_D(img, _zc()[1]))


# ------------------------------------------------------------------------------------------------
# NVIDIA pickles: the real persistence format, written without NVIDIA's code.

def _nvidia_code_importable() -> bool:
    return any(importlib.util.find_spec(m) is not None for m in ("torch_utils", "dnnlib"))


@pytest.mark.parametrize("protocol", [2, 3, 4])  # 3 is what NVIDIA's Python 3.7 wrote
def test_load_nvidia_pickle(tmp_path, tiny_G, tiny_D, protocol):
    G_ema = _randomise(Generator(**TINY_G), seed=5).eval()
    path = tmp_path / "network-snapshot.pkl"
    write_nvidia_pickle(path, G=tiny_G, D=tiny_D, G_ema=G_ema, protocol=protocol)
    assert not _nvidia_code_importable()
    nets = load_nvidia_pkl(path)
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    assert set(nets) == {"G", "D", "G_ema", "training_set_kwargs"}
    assert nets["training_set_kwargs"]["class_name"] == "training.dataset.ImageFolderDataset"
    z, c = _zc()
    for name, ref in (("G", tiny_G), ("G_ema", G_ema)):
        net = nets[name]
        assert isinstance(net, Generator) and not net.training
        assert not any(p.requires_grad for p in net.parameters())
        assert torch.equal(net.mapping(z, c, truncation_psi=0.7), ref.mapping(z, c, truncation_psi=0.7))
        assert torch.equal(net.synthesis(ref.mapping(z, c), noise_mode="const"), ref.synthesis(ref.mapping(z, c)))
    img = G_ema.synthesis(G_ema.mapping(z, c))
    assert torch.equal(nets["D"](img, c), tiny_D(img, c))
    assert torch.equal(load_generator(path).synthesis(G_ema.mapping(z, c)), img)


def test_load_stylegan3_repository_pickle(tmp_path):
    # The stylegan3 repository's networks_stylegan2.py: G kwargs flattened, other defaults
    # (w_avg_beta 0.998, conv_clamp 256, num_fp16_res 4) that its snapshots leave unrecorded.
    G = _randomise(Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
                             mapping_kwargs=dict(num_layers=2, w_avg_beta=0.998), channel_base=64, channel_max=16,
                             conv_clamp=256, num_fp16_res=4, fused_modconv_default="inference_only")).eval()
    D = _randomise(Discriminator(c_dim=0, img_resolution=16, img_channels=3, channel_base=64, channel_max=16,
                                 conv_clamp=256, num_fp16_res=4, epilogue_kwargs=dict(mbstd_group_size=2))).eval()
    recorded = dict(G=dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
                           mapping_kwargs=dict(num_layers=2), channel_base=64, channel_max=16,
                           fused_modconv_default="inference_only"),
                    D=dict(c_dim=0, img_resolution=16, img_channels=3, channel_base=64, channel_max=16,
                           epilogue_kwargs=dict(mbstd_group_size=2)))
    recorded["G_ema"] = recorded["G"]
    path = tmp_path / "sg3.pkl"
    write_nvidia_pickle(path, G=G, D=D, G_ema=G, flavour="sg3", init_kwargs_override=recorded)
    nets = load_nvidia_pkl(path)
    Gl = nets["G_ema"]
    assert Gl.mapping.w_avg_beta == 0.998 and Gl.synthesis.b16.conv1.conv_clamp == 256
    ws = G.mapping(*_zc(seed=3)[:1], None)
    assert torch.equal(Gl.synthesis(ws), G.synthesis(ws))
    # The same file read as stylegan2-ada-pytorch (other defaults) is caught by the attribute check.
    write_nvidia_pickle(path, G=G, D=D, G_ema=G, flavour="ada", init_kwargs_override=recorded)
    with pytest.raises(ValueError, match="the pickle records"):
        load_nvidia_pkl(path)


def test_load_tensorflow_era_pickle(tmp_path, tiny_G, tiny_D):
    # The original StyleGAN2's (G, D, Gs) tuple of dnnlib.tflib Networks with numpy variables
    # (how NVIDIA still distributes e.g. LSUN Church); build_module_src is never run.
    marker = tmp_path / "build_module_src_ran"
    path = tmp_path / "stylegan2-tf.pkl"
    G_ema = _randomise(Generator(**TINY_G), seed=7).eval()
    D = _randomise(Discriminator(**{**TINY_D, "epilogue_kwargs": dict(mbstd_group_size=4)}), seed=8).eval()
    write_tf_pickle(path, tiny_G, D, G_ema, build_module_src=f"open({str(marker)!r}, 'w').close()\n")
    raw = path.read_bytes()
    assert b"dnnlib.tflib.network" in raw and b"_reconstruct" in raw
    nets = load_nvidia_pkl(path)
    assert "dnnlib" not in sys.modules and not marker.exists()
    z, c = _zc()
    ws = G_ema.mapping(z, c, truncation_psi=0.5)
    assert torch.equal(nets["G_ema"].mapping(z, c, truncation_psi=0.5), ws)
    assert torch.equal(nets["G_ema"].synthesis(ws), G_ema.synthesis(ws))
    assert torch.equal(nets["G"].synthesis(ws), tiny_G.synthesis(ws))
    img = G_ema.synthesis(ws)
    assert torch.equal(nets["D"](img, c), D(img, c))


def test_pickle_module_src_is_never_executed(tmp_path, tiny_G, tiny_D):
    marker = tmp_path / "module_src_ran"
    src = f"import pathlib\npathlib.Path({str(marker)!r}).touch()\n"
    path = tmp_path / "snap.pkl"
    write_nvidia_pickle(path, G=tiny_G, D=tiny_D, G_ema=tiny_G, module_src=src)
    assert isinstance(load_nvidia_pkl(path)["G_ema"], Generator)
    assert not marker.exists()


class _Reduce:
    """An object that pickles as `func(*args)`: how a hostile pickle makes the loader call something."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _hostile_pickles(marker: Path) -> dict[str, bytes]:
    touch = f"open({str(marker)!r}, 'w').close()"
    # A storage blob whose inner torch.save pickle calls os.system (torch's own _load_from_bytes
    # reads it with weights_only=False).
    inner = io.BytesIO()
    torch.save(_Reduce(os.system, f"touch {marker}"), inner, _use_new_zipfile_serialization=False)
    return {
        "os.system": f"cos\nsystem\n(S'touch {marker}'\ntR.".encode(),  # protocol 0, by hand
        "builtins.exec": pickle.dumps(_Reduce(exec, touch), protocol=4),
        "builtins.eval": pickle.dumps(_Reduce(eval, touch), protocol=2),
        "builtins.getattr": b"\x80\x03cbuiltins\ngetattr\ncbuiltins\nobject\nX\x0e\x00\x00\x00__subclasses__\x86R.",
        "unknown module": b"\x80\x03cmy_package.evil\nPayload\n)R.",
        "storage blob": pickle.dumps(_Reduce(_torch_load_from_bytes, inner.getvalue()), protocol=3),
        "BUILD on a non-stand-in": b"\x80\x02ccollections\nOrderedDict\n)R}X\x01\x00\x00\x00aK\x01sb.",
        "persistent id": b"\x80\x02X\x03\x00\x00\x00abcQ.",
        "numpy object array": pickle.dumps(np.array([1, "x"], dtype=object), protocol=3),
    }


@pytest.mark.parametrize("kind", ["os.system", "builtins.exec", "builtins.eval", "builtins.getattr", "unknown module",
                                  "storage blob", "BUILD on a non-stand-in", "persistent id", "numpy object array"])
def test_hostile_pickles_are_refused_and_nothing_runs(tmp_path, kind):
    marker = tmp_path / "pwned"
    path = tmp_path / "hostile.pkl"
    path.write_bytes(_hostile_pickles(marker)[kind])
    with pytest.raises(UnsafePickleError) as err:
        load_nvidia_pkl(path)
    assert not marker.exists()
    if kind in ("os.system", "builtins.exec", "builtins.eval", "builtins.getattr"):
        name = kind.split(".")[1]
        assert f".{name}'" in str(err.value) and "Nothing from the file was executed" in str(err.value)
    if kind == "unknown module":
        assert "my_package.evil.Payload" in str(err.value)


def test_hostile_object_inside_a_valid_snapshot(tmp_path, tiny_G, tiny_D):
    marker = tmp_path / "pwned"
    path = tmp_path / "snap.pkl"
    write_nvidia_pickle(path, G=tiny_G, D=tiny_D, G_ema=tiny_G,
                        extra={"augment_pipe": _Reduce(os.system, f"touch {marker}")})
    with pytest.raises(UnsafePickleError, match="system"):
        load_nvidia_pkl(path)
    assert not marker.exists()


def test_unknown_artefact_and_missing_weights_give_clear_errors(tmp_path, monkeypatch):
    from clip2gan import hub

    monkeypatch.setenv("CLIP2GAN_HOME", str(tmp_path))
    monkeypatch.delenv("CLIP2GAN_DOWNLOAD", raising=False)
    for name in ("stylegan2-ffhq-1024", "stylegan2-ffhq-256", "stylegan2-afhqcat", "stylegan2-afhqdog",
                 "stylegan2-lsunchurch"):
        assert hub.ARTIFACTS[name].url.startswith("https://")
        monkeypatch.delenv(hub.ARTIFACTS[name].env_var, raising=False)
    with pytest.raises(hub.WeightsNotFound, match="CLIP2GAN_STYLEGAN2_FFHQ_1024"):
        load_nvidia_pkl("stylegan2-ffhq-1024")


# ------------------------------------------------------------------------------------------------
# rosinality checkpoints.

# rosinality's generator has 512 channels at every resolution up to 32 px (fixed in its code):
# 8 px keeps the network at ~7 M parameters while still having one upsampling block.
ROS_G = dict(z_dim=16, c_dim=0, w_dim=16, img_resolution=8, img_channels=3, mapping_kwargs=dict(num_layers=2),
             synthesis_kwargs=dict(channel_base=32768, channel_max=512))


@pytest.fixture(scope="module")
def ros_G() -> Generator:
    torch.manual_seed(2)
    return _randomise(Generator(**ROS_G), seed=2).eval()


def test_rosinality_round_trip(tmp_path, ros_G):
    ckpt = stylegan2.nvidia_to_rosinality(ros_G)
    assert ckpt["g_ema"]["convs.0.conv.weight"].shape == (1, 512, 512, 3, 3)
    assert ckpt["g_ema"]["noises.noise_2"].shape == (1, 1, 8, 8)
    ckpt["args"] = argparse.Namespace(size=8, latent=16, n_mlp=2, channel_multiplier=2)  # as train.py saves
    path = tmp_path / "050000.pt"
    torch.save(ckpt, path)
    G = load_rosinality(path)
    assert G.init_kwargs["synthesis_kwargs"] == {"channel_base": 32768, "channel_max": 512}
    for k, v in ros_G.state_dict().items():
        assert torch.equal(G.state_dict()[k], v), k
    assert isinstance(load_generator(path), Generator)
    # Without latent_avg, w_avg is estimated from seeded samples of the mapping network.
    del ckpt["latent_avg"]
    torch.save(ckpt, path)
    G2 = load_rosinality(path)
    assert torch.isfinite(G2.mapping.w_avg).all() and not torch.equal(G2.mapping.w_avg, ros_G.mapping.w_avg)


def test_rosinality_upsampling_conv_convention(ros_G):
    """rosinality's upsampling modulated conv, written out from its definition (conv_transpose2d with
    the stored kernel, stride 2, then a [1,3,3,1] blur with padding (1, 1) and gain 4), equals our
    conv0 after conversion: same kernel, no flip."""
    sd = stylegan2.nvidia_to_rosinality(ros_G)["g_ema"]
    layer = ros_G.synthesis.b8.conv0
    x = torch.randn(1, 512, 4, 4)
    w = torch.randn(1, 16)
    ours = layer(x, w, noise_mode="none", fused_modconv=False)
    # rosinality (non-fused path), then bias + lrelu * sqrt(2) (FusedLeakyReLU)
    weight = sd["convs.0.conv.weight"][0] / (512 * 9) ** 0.5
    style = F.linear(w, sd["convs.0.conv.modulation.weight"] / 16**0.5, sd["convs.0.conv.modulation.bias"])
    demod = ((weight[None] * style[:, None, :, None, None]).square().sum([2, 3, 4]) + 1e-8).rsqrt()
    out = F.conv_transpose2d(x * style[:, :, None, None], weight.transpose(0, 1), stride=2)
    out = stylegan2.upfirdn2d_ref(out, stylegan2.setup_filter([1, 3, 3, 1]), padding=1, gain=4)
    out = out * demod[:, :, None, None]
    out = F.leaky_relu(out + sd["convs.0.activate.bias"][None, :, None, None], 0.2) * 2**0.5
    assert torch.allclose(ours, out, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------------------
# Own checkpoints: safetensors + JSON, no pickle.

def test_save_and_load(tmp_path, tiny_G, tiny_D):
    for net, name in ((tiny_G, "g"), (tiny_D, "d")):
        path = stylegan2.save(net, tmp_path / f"{name}.safetensors")
        assert path.with_suffix(".json").is_file()
        assert path.read_bytes()[:1] != b"\x80"  # not a pickle
        loaded = stylegan2.load(path)
        assert type(loaded) is type(net) and not loaded.training
        assert loaded.init_kwargs == net.init_kwargs
        for k, v in net.state_dict().items():
            assert torch.equal(loaded.state_dict()[k], v), k
    G = load_generator(tmp_path / "g.safetensors")
    ws = tiny_G.mapping(*_zc())
    assert torch.equal(G.synthesis(ws), tiny_G.synthesis(ws))
    half = stylegan2.load(stylegan2.save(tiny_G, tmp_path / "g16.safetensors", half=True))
    assert half.synthesis.b4.const.dtype == torch.float32
    assert torch.allclose(half.synthesis(ws), tiny_G.synthesis(ws), atol=5e-2)


def test_public_api_names_its_notebook():
    for name in stylegan2.__all__:
        assert "02_stylegan2_wplus.ipynb" in (getattr(stylegan2, name).__doc__ or ""), name


def test_stylegan2_benchmark_smoke(tmp_path):
    # --quick --max-res 32: only the 32 px toy network, two repetitions per point (~1 s).
    from clip2gan import bench

    assert "stylegan2" in bench.BENCHMARKS
    out = bench.main(["stylegan2", "--device", "cpu", "--quick", "--max-res", "32", "--json", str(tmp_path / "b.json")])
    rows = out["stylegan2"]["rows"]
    assert {r["batch"] for r in rows} == {1, 8, 32}
    assert {r["path"] for r in rows} == {"default", "naive resampling", "grouped modconv"}
    assert all(r["max_abs_diff_fast_vs_naive"] < 1e-4 for r in rows)
    assert (tmp_path / "b.json").is_file()
