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
# clip2gan class names that differ from NVIDIA's (the name a pickle records).
NVIDIA_CLASS_NAMES = {"StyleMappingNetwork": "MappingNetwork"}


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
        class_name = NVIDIA_CLASS_NAMES.get(type(obj).__name__, type(obj).__name__)
        meta = dict(type="class", version=6, module_src=self.module_src, class_name=class_name, state=state)
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


# ------------------------------------------------------------------------------------------------
# TensorFlow-era pickles: (G, D, Gs), each a dnnlib.tflib.network.Network whose state holds
# static_kwargs, components and variables [(name, numpy array)], as the original StyleGAN2 wrote them.

FAKE_TF_BUILD_SRC = "raise RuntimeError('build_module_src must never be executed')\n"


class Network:
    """Stand-in for dnnlib.tflib.network.Network (pickled by reference to that name)."""

    def __init__(self, name: str, func_name: str, static_kwargs: dict, variables: dict, components: Optional[dict] = None,
                 build_module_src: str = FAKE_TF_BUILD_SRC):
        self.name, self.func_name, self.static_kwargs = name, func_name, static_kwargs
        self.variables, self.components, self.build_module_src = variables, components or {}, build_module_src

    def __getstate__(self) -> dict:
        return dict(version=4, name=self.name, static_kwargs=dict(self.static_kwargs), components=dict(self.components),
                    build_module_src=self.build_module_src, build_func_name=self.func_name,
                    variables=[(k, np.asarray(v, dtype=np.float32)) for k, v in self.variables.items()])


def _np(sd: dict, key: str) -> np.ndarray:
    return sd[key].detach().cpu().numpy()


def tf_generator(G: torch.nn.Module, name: str = "G") -> Network:
    """The TF Network that NVIDIA's converter (and ours) turn into `G` (which uses NVIDIA's names)."""
    kw = dict(G.init_kwargs)
    syn = dict(kw.get("synthesis_kwargs") or {})
    sd = G.state_dict()
    static = dict(latent_size=G.z_dim, label_size=G.c_dim, dlatent_size=G.w_dim, resolution=G.img_resolution,
                  num_channels=G.img_channels, mapping_layers=G.mapping.num_layers,
                  mapping_lrmul=float(G.mapping.fc0.bias_gain),
                  fmap_base=syn.get("channel_base", 32768) // 2, fmap_max=syn.get("channel_max", 512),
                  architecture=syn.get("architecture", "skip"))
    mapping = {}
    if G.c_dim:
        mapping["LabelEmbed/weight"] = _np(sd, "mapping.embed.weight").T
        mapping["LabelEmbed/bias"] = _np(sd, "mapping.embed.bias")
    for i in range(G.mapping.num_layers):
        mapping[f"Dense{i}/weight"] = _np(sd, f"mapping.fc{i}.weight").T
        mapping[f"Dense{i}/bias"] = _np(sd, f"mapping.fc{i}.bias")
    synth = {"4x4/Const/const": _np(sd, "synthesis.b4.const")[None]}

    def modulated(src: str, dst: str, flip: bool = False) -> None:
        weight = _np(sd, f"{src}.weight").transpose(2, 3, 1, 0)  # [kh, kw, I, O]
        synth[f"{dst}/weight"] = weight[::-1, ::-1] if flip else weight
        synth[f"{dst}/bias"] = _np(sd, f"{src}.bias")
        synth[f"{dst}/mod_weight"] = _np(sd, f"{src}.affine.weight").T
        synth[f"{dst}/mod_bias"] = _np(sd, f"{src}.affine.bias") - 1

    noise_idx = 0
    for res in G.synthesis.block_resolutions:
        block = getattr(G.synthesis, f"b{res}")
        convs = [("conv1", "Conv", False)] if res == 4 else [("conv0", "Conv0_up", True), ("conv1", "Conv1", False)]
        for layer, tf_name, flip in convs:
            modulated(f"synthesis.b{res}.{layer}", f"{res}x{res}/{tf_name}", flip)
            synth[f"{res}x{res}/{tf_name}/noise_strength"] = _np(sd, f"synthesis.b{res}.{layer}.noise_strength")
            synth[f"noise{noise_idx}"] = _np(sd, f"synthesis.b{res}.{layer}.noise_const")[None, None]
            noise_idx += 1
        if hasattr(block, "torgb"):
            modulated(f"synthesis.b{res}.torgb", f"{res}x{res}/ToRGB")
        if hasattr(block, "skip"):
            synth[f"{res}x{res}/Skip/weight"] = _np(sd, f"synthesis.b{res}.skip.weight").transpose(2, 3, 1, 0)[::-1, ::-1]
    components = dict(mapping=Network("G_mapping", "training.networks_stylegan2.G_mapping", {}, mapping),
                      synthesis=Network("G_synthesis", "training.networks_stylegan2.G_synthesis_stylegan2", {}, synth))
    return Network(name, "training.networks_stylegan2.G_main", static,
                   {"dlatent_avg": _np(sd, "mapping.w_avg")}, components)


def tf_discriminator(D: torch.nn.Module) -> Network:
    """The TF Network for a resnet/orig/skip discriminator `D` (NVIDIA names); mbstd group size 4."""
    kw = dict(D.init_kwargs)
    sd = D.state_dict()
    static = dict(label_size=D.c_dim, resolution=D.img_resolution, num_channels=D.img_channels,
                  architecture=kw.get("architecture", "resnet"), fmap_base=kw.get("channel_base", 32768) // 2,
                  fmap_max=kw.get("channel_max", 512), mbstd_group_size=D.b4.mbstd.group_size)
    if D.c_dim:
        static.update(mapping_layers=D.mapping.num_layers, mapping_fmaps=D.b4.cmap_dim,
                      mapping_lrmul=float(D.mapping.fc0.bias_gain))
    variables = {}

    def conv(src: str, dst: str, bias: bool = True) -> None:
        variables[f"{dst}/weight"] = _np(sd, f"{src}.weight").transpose(2, 3, 1, 0)
        if bias:
            variables[f"{dst}/bias"] = _np(sd, f"{src}.bias")

    def dense(src: str, dst: str) -> None:
        variables[f"{dst}/weight"] = _np(sd, f"{src}.weight").T
        variables[f"{dst}/bias"] = _np(sd, f"{src}.bias")

    for res in D.block_resolutions:
        block = getattr(D, f"b{res}")
        if hasattr(block, "fromrgb"):
            conv(f"b{res}.fromrgb", f"{res}x{res}/FromRGB")
        conv(f"b{res}.conv0", f"{res}x{res}/Conv0")
        conv(f"b{res}.conv1", f"{res}x{res}/Conv1_down")
        if hasattr(block, "skip"):
            conv(f"b{res}.skip", f"{res}x{res}/Skip", bias=False)
    if D.c_dim:
        dense("mapping.embed", "LabelEmbed")
        for i in range(D.mapping.num_layers):
            dense(f"mapping.fc{i}", f"Mapping{i}")
    if hasattr(D.b4, "fromrgb"):
        conv("b4.fromrgb", "4x4/FromRGB")
    conv("b4.conv", "4x4/Conv")
    dense("b4.fc", "4x4/Dense0")
    dense("b4.out", "Output")
    return Network("D", "training.networks_stylegan2.D_stylegan2", static, variables)


@contextlib.contextmanager
def fake_tf_modules() -> Iterator[None]:
    names = ["dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"]
    saved = {n: sys.modules.get(n) for n in names}
    mods = [types.ModuleType(n) for n in names]
    Network.__module__ = "dnnlib.tflib.network"
    mods[2].Network = Network
    mods[1].network = mods[2]
    mods[0].tflib = mods[1]
    sys.modules.update(dict(zip(names, mods)))
    try:
        yield
    finally:
        for n, m in saved.items():
            if m is None:
                sys.modules.pop(n, None)
            else:
                sys.modules[n] = m


def write_tf_pickle(path: Any, G: torch.nn.Module, D: torch.nn.Module, Gs: torch.nn.Module, protocol: int = 3,
                    build_module_src: str = FAKE_TF_BUILD_SRC) -> None:
    """Write `(G, D, Gs)` as the TensorFlow StyleGAN2 code pickled its networks (protocol 3, as Python 3.6 did);
    every Network carries `build_module_src` (the code NVIDIA's TF unpickler would exec)."""
    nets = (tf_generator(G, "G"), tf_discriminator(D), tf_generator(Gs, "Gs"))
    for net in nets:
        for n in (net, *net.components.values()):
            n.build_module_src = build_module_src
    with fake_tf_modules():
        with open(path, "wb") as f:
            pickle.dump(nets, f, protocol=protocol)
