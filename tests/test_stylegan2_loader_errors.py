"""load_nvidia_pkl's errors: each kind of wrong file gives one clear error naming the file.

The four kinds, all `NvidiaPickleError` (a ValueError): not a pickle at all, a pickle of something
other than NVIDIA networks, NVIDIA networks this package will not rebuild, and unsafe content
(`UnsafePickleError`, refused before anything runs). Files are written into tmp_path; the fake
NVIDIA pickles come from tests/nvidia_format.py.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from nvidia_format import _reconstruct_persistent_obj, fake_nvidia_modules, write_nvidia_pickle  # noqa: E402

from clip2gan.stylegan2 import (  # noqa: E402
    Discriminator,
    Generator,
    NotANetworkPickleError,
    NotAPickleError,
    NvidiaPickleError,
    UnsafePickleError,
    UnsupportedNetworkError,
    load_nvidia_pkl,
    save,
)

TINY_G = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=8, img_channels=3, mapping_kwargs=dict(num_layers=1),
              synthesis_kwargs=dict(channel_base=32, channel_max=8))
TINY_D = dict(c_dim=0, img_resolution=8, img_channels=3, channel_base=32, channel_max=8,
              epilogue_kwargs=dict(mbstd_group_size=2))
EXPECTED = "Expected an NVIDIA StyleGAN2 network pickle"


@pytest.fixture(scope="module")
def nets() -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    return Generator(**TINY_G).eval(), Discriminator(**TINY_D).eval()


def _load_error(path: Path, kind: type) -> str:
    """load_nvidia_pkl(path) raises exactly `kind` (not only a subclass of it); returns its message."""
    with pytest.raises(NvidiaPickleError) as err:
        load_nvidia_pkl(path)
    assert type(err.value) is kind, f"{type(err.value).__name__}: {err.value}"
    assert isinstance(err.value, ValueError)
    text = str(err.value)
    assert str(path) in text
    return text


class _Reduce:
    """Pickles as `func(*args)`."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _persistent(class_name: str, state: dict) -> _Reduce:
    """An object pickled as NVIDIA's persistence does: `_reconstruct_persistent_obj(meta)`."""
    meta = dict(type="class", version=6, module_src="raise RuntimeError('never run')\n", class_name=class_name,
                state=state)
    return _Reduce(_reconstruct_persistent_obj, meta)


def _dump_with_nvidia_names(path: Path, obj) -> None:
    with fake_nvidia_modules(), open(path, "wb") as f:
        pickle.dump(obj, f, protocol=3)


# ------------------------------------------------------------------------------------------------
# Not a pickle at all.

@pytest.mark.parametrize("content", [
    b"hello, this is a text file and not a pickle\n",  # 'h' reads as BINGET: once a bare "Memo value not found"
    b"G_ema = 'not a pickle either'\n",
    b"\x00\x01\x02\x03 binary noise",
])
def test_text_and_noise_are_not_pickles(tmp_path, content):
    path = tmp_path / "weights.pkl"
    path.write_bytes(content)
    text = _load_error(path, NotAPickleError)
    assert "is not a pickle" in text and EXPECTED in text


def test_empty_and_truncated_files(tmp_path, nets):
    G, D = nets
    empty = tmp_path / "empty.pkl"
    empty.write_bytes(b"")
    assert "empty" in _load_error(empty, NotAPickleError)
    good = tmp_path / "good.pkl"
    write_nvidia_pickle(good, G=G, D=D, G_ema=G)
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "truncated or corrupt" in _load_error(cut, NotAPickleError)


def test_other_formats_name_their_loader(tmp_path, nets):
    G, _ = nets
    zipped = tmp_path / "050000.pt"
    torch.save({"g_ema": G.state_dict()}, zipped)
    assert "zip archive" in _load_error(zipped, NotAPickleError)
    safetensors = save(G, tmp_path / "g.safetensors")
    assert "safetensors" in _load_error(safetensors, NotAPickleError)
    legacy = tmp_path / "legacy.pt"
    torch.save({"w": torch.zeros(2)}, legacy, _use_new_zipfile_serialization=False)
    assert "torch.save" in _load_error(legacy, NotAPickleError)


# ------------------------------------------------------------------------------------------------
# A pickle, but not of NVIDIA networks.

def test_plain_dict_of_tensors(tmp_path):
    path = tmp_path / "state.pkl"
    path.write_bytes(pickle.dumps({"conv.weight": torch.zeros(2, 2), "conv.bias": torch.zeros(2)}, protocol=4))
    text = _load_error(path, NotANetworkPickleError)
    assert "a dict with keys ['conv.weight', 'conv.bias']" in text and "no 'G_ema'" in text and EXPECTED in text


def test_list_and_number(tmp_path):
    path = tmp_path / "list.pkl"
    path.write_bytes(pickle.dumps([1, 2.0, "three"], protocol=3))
    assert "a list of 3 items" in _load_error(path, NotANetworkPickleError)
    path.write_bytes(pickle.dumps(42, protocol=2))
    assert "a pickle of an int" in _load_error(path, NotANetworkPickleError)


def test_snapshot_whose_network_is_a_tensor(tmp_path):
    path = tmp_path / "snap.pkl"
    path.write_bytes(pickle.dumps({"G_ema": torch.zeros(3)}, protocol=3))
    assert "'G_ema' as a Tensor" in _load_error(path, NotANetworkPickleError)


# ------------------------------------------------------------------------------------------------
# NVIDIA networks that this package will not rebuild.

def test_unknown_constructor_argument(tmp_path, nets):
    # Once a bare TypeError from Generator(**kwargs).
    G, D = nets
    path = tmp_path / "snap.pkl"
    kwargs = {**G.init_kwargs, "future_option": 1}
    write_nvidia_pickle(path, G=G, D=D, G_ema=G, init_kwargs_override={"G": kwargs, "G_ema": kwargs})
    text = _load_error(path, UnsupportedNetworkError)
    assert "Generator" in text and "future_option" in text and "TypeError" in text


def test_missing_recorded_arguments(tmp_path, nets):
    G, D = nets
    path = tmp_path / "snap.pkl"
    write_nvidia_pickle(path, G=G, D=D, G_ema=G, init_kwargs_override={"D": {}})
    assert "Discriminator" in _load_error(path, UnsupportedNetworkError)


def test_classes_it_does_not_implement(tmp_path):
    # A StyleGAN3 (alias-free) generator: its synthesis network is built from SynthesisInput layers.
    path = tmp_path / "stylegan3-t.pkl"
    syn_input = _persistent("SynthesisInput", {"_parameters": {}, "_buffers": {}, "_modules": {}})
    synthesis = _persistent("SynthesisNetwork", {"_parameters": {}, "_buffers": {}, "_modules": {"input": syn_input}})
    G = _persistent("Generator", {"_parameters": {}, "_buffers": {}, "_modules": {"synthesis": synthesis},
                                  "_init_kwargs": {}})
    _dump_with_nvidia_names(path, {"G_ema": G})
    text = _load_error(path, UnsupportedNetworkError)
    assert "SynthesisInput" in text and "StyleGAN3" in text


def test_a_tensor_that_does_not_fit(tmp_path, nets):
    G, D = nets
    path = tmp_path / "snap.pkl"
    wide = Generator(**{**TINY_G, "synthesis_kwargs": dict(channel_base=64, channel_max=16)}).eval()
    # Recorded arguments of the small network, tensors of the wide one.
    write_nvidia_pickle(path, G=wide, D=D, G_ema=wide, init_kwargs_override={"G": G.init_kwargs, "G_ema": G.init_kwargs})
    assert "size mismatch" in _load_error(path, UnsupportedNetworkError)


def test_persistent_object_without_metadata(tmp_path):
    path = tmp_path / "snap.pkl"
    _dump_with_nvidia_names(path, {"G_ema": _Reduce(_reconstruct_persistent_obj, {"type": "module"})})
    assert "persistence metadata" in _load_error(path, UnsupportedNetworkError)


# ------------------------------------------------------------------------------------------------
# Unsafe content: refused, never run, and part of the same family.

def test_code_execution_is_refused_and_names_the_file(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Reduce(os.system, f"touch {marker}"), protocol=4))
    text = _load_error(path, UnsafePickleError)
    assert ".system'" in text and "Nothing from the file was executed" in text
    assert not marker.exists()
    assert issubclass(UnsafePickleError, NvidiaPickleError) and issubclass(UnsafePickleError, pickle.UnpicklingError)


def test_code_execution_inside_a_network_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    G = _persistent("Generator", {"_parameters": {}, "_buffers": {}, "_modules": {},
                                  "_init_kwargs": {"z_dim": _Reduce(os.system, f"touch {marker}")}})
    _dump_with_nvidia_names(path, {"G_ema": G})
    assert "system" in _load_error(path, UnsafePickleError)
    assert not marker.exists()


def test_protocol_0_text_that_reads_as_a_global_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "notes.pkl"
    path.write_bytes(b"cat\nfood\n")  # 'c' reads as GLOBAL: refused (safe), and the hint says why it may be text
    text = _load_error(path, UnsafePickleError)
    assert "'at.food'" in text and "may not be a pickle at all" in text
