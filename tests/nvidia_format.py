"""Write network pickles in NVIDIA's exact persistence format, from this package's own networks.

NVIDIA's `torch_utils.persistence` pickles every network as a call
`torch_utils.persistence._reconstruct_persistent_obj(meta)` with
`meta = dict(type='class', version=6, module_src=<source of networks.py>, class_name=<class>,
state=<the module's __dict__>)`; the state holds `_parameters`, `_buffers`, `_modules` (nested
persistent objects), `_init_args` / `_init_kwargs` (with `dnnlib.util.EasyDict` for nested kwargs)
and plain attributes, some of them numpy float64. Tensors go through torch's own reduction
(`torch._utils._rebuild_parameter`, `_rebuild_tensor_v2`, `torch.storage._load_from_bytes`).

This helper produces the same byte-level structure without NVIDIA's code: while dumping, it puts
stand-in `torch_utils.persistence` and `dnnlib.util` modules in `sys.modules` (pickle refers to
globals by module and name only) and removes them afterwards, so the loader under test runs with
neither importable. `module_src` is fake text (never executed by a safe loader).
"""

from __future__ import annotations

import contextlib
import copy
import io
import pickle
import sys
import types
from typing import Any, Iterator, Optional

import numpy as np
import torch

FAKE_MODULE_SRC_ADA = (
    "# Stand-in for stylegan2-ada-pytorch training/networks.py (written by clip2gan's tests).\n"
    "raise RuntimeError('module_src must never be executed')\n"
)
FAKE_MODULE_SRC_SG3 = (
    "# Stand-in for stylegan3 training/networks_stylegan2.py (written by clip2gan's tests):\n"
    "# def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False): ...\n"
    "# fused_modconv_default = True\n"
    "raise RuntimeError('module_src must never be executed')\n"
)

# Attributes that clip2gan keeps but NVIDIA's classes do not have.
_OWN_ATTRS = {"resample_impl"}


def _reconstruct_persistent_obj(meta: Any) -> Any:  # named like NVIDIA's; a safe loader never calls it
    raise RuntimeError("the stand-in persistence hook was called: the loader executed pickle code")


class EasyDict(dict):
    """Stand-in for dnnlib.util.EasyDict (pickled by reference to that name)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


@contextlib.contextmanager
def fake_nvidia_modules() -> Iterator[None]:
    """Register `torch_utils.persistence` and `dnnlib.util` stand-ins for the duration of a dump."""
    names = ["torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"]
    saved = {n: sys.modules.get(n) for n in names}
    tu, tup, dn, dnu = (types.ModuleType(n) for n in names)
    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    tup._reconstruct_persistent_obj = _reconstruct_persistent_obj
    tu.persistence = tup
    EasyDict.__module__ = "dnnlib.util"
    dnu.EasyDict = EasyDict
    dn.util = dnu
    dn.EasyDict = EasyDict
    sys.modules.update(dict(zip(names, [tu, tup, dn, dnu])))
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def _easydicts(value: Any) -> Any:
    if isinstance(value, dict):
        return EasyDict({k: _easydicts(v) for k, v in value.items()})
    return value


class _NvidiaPickler(pickle.Pickler):
    def __init__(self, file: io.BufferedIOBase, protocol: int, module_src: str,
                 init_kwargs_override: dict[int, dict[str, Any]]):
        super().__init__(file, protocol=protocol)
        self.module_src = module_src
        self.init_kwargs_override = init_kwargs_override

    def reducer_override(self, obj: Any) -> Any:
        if not isinstance(obj, torch.nn.Module) or not type(obj).__module__.startswith("clip2gan."):
            return NotImplemented
        state = {k: v for k, v in obj.__dict__.items() if k not in _OWN_ATTRS}
        for key in list(state):
            if key.endswith("_gain") and isinstance(state[key], float):
                state[key] = np.float64(state[key])  # NVIDIA computes these with numpy
        kwargs = self.init_kwargs_override.get(id(obj), state.get("_init_kwargs", {}))
        state["_init_kwargs"] = _easydicts(copy.deepcopy(kwargs))
        meta = dict(type="class", version=6, module_src=self.module_src, class_name=type(obj).__name__, state=state)
        return _reconstruct_persistent_obj, (meta,)


def write_nvidia_pickle(
    path: Any,
    G: Optional[torch.nn.Module] = None,
    D: Optional[torch.nn.Module] = None,
    G_ema: Optional[torch.nn.Module] = None,
    flavour: str = "ada",
    protocol: int = 3,
    module_src: Optional[str] = None,
    init_kwargs_override: Optional[dict[str, dict[str, Any]]] = None,
    extra: Optional[dict[str, Any]] = None,
) -> None:
    """Write `dict(training_set_kwargs, G, D, G_ema, augment_pipe=None)` as NVIDIA's training loop does.

    flavour 'ada' (stylegan2-ada-pytorch) or 'sg3' (stylegan3 repository's networks_stylegan2.py):
    only the fake `module_src` differs here; pass `init_kwargs_override={'G': kwargs, ...}` to
    record a network's constructor arguments as that repository would (e.g. with its defaults left
    out). Networks are stored as NVIDIA's snapshots store them: deep copies in eval mode with
    requires_grad False. protocol 3 is what NVIDIA's Python 3.7 wrote.
    """
    if module_src is None:
        module_src = FAKE_MODULE_SRC_SG3 if flavour == "sg3" else FAKE_MODULE_SRC_ADA
    snapshot: dict[str, Any] = dict(
        training_set_kwargs=dict(EasyDict(class_name="training.dataset.ImageFolderDataset", path="data.zip",
                                          use_labels=False, max_size=None, xflip=False, resolution=16))
    )
    overrides: dict[int, dict[str, Any]] = {}
    for name, module in (("G", G), ("D", D), ("G_ema", G_ema)):
        if module is not None:
            snapshot[name] = copy.deepcopy(module).eval().requires_grad_(False)
            if init_kwargs_override and name in init_kwargs_override:
                overrides[id(snapshot[name])] = init_kwargs_override[name]
    snapshot["augment_pipe"] = None
    snapshot.update(extra or {})
    with fake_nvidia_modules():
        with open(path, "wb") as f:
            _NvidiaPickler(f, protocol, module_src, overrides).dump(snapshot)
