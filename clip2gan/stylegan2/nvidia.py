"""NVIDIA's StyleGAN2 network pickles as this package's networks, without executing anything from the
file (introduced in 02_stylegan2_wplus.ipynb).

`load_nvidia_pkl` reads the file with the restricted unpickler of `clip2gan.stylegan2.unpickle`
and rebuilds each network from the data it recorded: `_init_args` / `_init_kwargs` give the
constructor arguments of this package's class of the same NVIDIA name, `_parameters` and
`_buffers` the state dict (loaded with `strict=True`), and the remaining attributes (resolution,
conv_clamp, ...) are checked against the rebuilt network. The TensorFlow-era `(G, D, Gs)` pickles
are converted variable by variable, as NVIDIA's legacy.py does. Every failure is an
`NvidiaPickleError` naming the file (see `clip2gan.stylegan2.unpickle`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Union

import numpy as np
import torch

from clip2gan.stylegan2.files import PathLike, plain, resolve_file
from clip2gan.stylegan2.networks import (
    Conv2dLayer,
    Discriminator,
    DiscriminatorBlock,
    DiscriminatorEpilogue,
    FullyConnectedLayer,
    Generator,
    MinibatchStdLayer,
    StyleMappingNetwork,
    SynthesisBlock,
    SynthesisLayer,
    SynthesisNetwork,
    ToRGBLayer,
)
from clip2gan.stylegan2.ops import skip_init
from clip2gan.stylegan2.unpickle import (
    EXPECTED,
    NotANetworkPickleError,
    NvidiaPickleError,
    UnsupportedNetworkError,
    _NDArrayRecord,
    _PersistentRecord,
    _TFNetworkRecord,
    read_network_pickle,
)

# NVIDIA's class names (as recorded in the pickles) -> this package's classes.
_KNOWN_CLASSES = {
    "FullyConnectedLayer": FullyConnectedLayer,
    "Conv2dLayer": Conv2dLayer,
    "MappingNetwork": StyleMappingNetwork,
    "SynthesisLayer": SynthesisLayer,
    "ToRGBLayer": ToRGBLayer,
    "SynthesisBlock": SynthesisBlock,
    "SynthesisNetwork": SynthesisNetwork,
    "Generator": Generator,
    "DiscriminatorBlock": DiscriminatorBlock,
    "MinibatchStdLayer": MinibatchStdLayer,
    "DiscriminatorEpilogue": DiscriminatorEpilogue,
    "Discriminator": Discriminator,
}
_NVIDIA_NAMES = {cls: name for name, cls in _KNOWN_CLASSES.items()}

# Attributes recorded in the pickle that must equal those of the rebuilt network; a difference means
# the pickle's architecture is not the one rebuilt from its init kwargs (and the numerics would differ).
_CHECKED_ATTRS = (
    "z_dim", "c_dim", "w_dim", "num_ws", "num_layers", "w_avg_beta", "img_resolution", "img_channels",
    "block_resolutions", "in_channels", "resolution", "up", "down", "use_noise", "activation", "conv_clamp",
    "padding", "act_gain", "weight_gain", "bias_gain", "is_last", "architecture", "use_fp16", "channels_last",
    "num_conv", "num_torgb", "fused_modconv_default", "first_layer_idx", "cmap_dim", "group_size", "num_channels",
)


def _record_tree_classes(rec: _PersistentRecord, out: set) -> set:
    out.add(rec.class_name)
    for sub in (rec.state.get("_modules") or {}).values():
        if isinstance(sub, _PersistentRecord):
            _record_tree_classes(sub, out)
        elif sub is not None:
            out.add(type(sub).__name__)
    return out


def _record_state_dict(rec: _PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    state = rec.state
    skip = set(state.get("_non_persistent_buffers_set") or ())
    out: dict[str, torch.Tensor] = {}
    for kind in ("_parameters", "_buffers"):
        for name, value in (state.get(kind) or {}).items():
            if value is None or (kind == "_buffers" and name in skip):
                continue
            if not isinstance(value, torch.Tensor):
                raise UnsupportedNetworkError(f"{prefix}{name} in the pickle is a {type(value).__name__}, not a tensor")
            out[prefix + name] = value
    for name, sub in (state.get("_modules") or {}).items():
        if sub is None:
            continue
        if not isinstance(sub, _PersistentRecord):
            raise UnsupportedNetworkError(f"submodule {prefix}{name} in the pickle is a {type(sub).__name__}")
        out.update(_record_state_dict(sub, prefix + name + "."))
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None or isinstance(a, str) or isinstance(b, str):
        return a == b
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=0.0)
    except (TypeError, ValueError):
        return a == b


def _check_against_record(rec: _PersistentRecord, module: torch.nn.Module, prefix: str = "") -> None:
    where = prefix.rstrip(".") or "<root>"
    if rec.class_name != _NVIDIA_NAMES.get(type(module)):
        raise UnsupportedNetworkError(f"{where}: pickle has {rec.class_name}, rebuilt network has {type(module).__name__}")
    for attr in _CHECKED_ATTRS:
        if attr in rec.state and attr in module.__dict__:
            if not _same(rec.state[attr], module.__dict__[attr]):
                raise UnsupportedNetworkError(f"{where}.{attr}: the pickle records {rec.state[attr]!r}, the network rebuilt "
                                 f"from its init kwargs has {module.__dict__[attr]!r}")
    rec_modules = {k: v for k, v in (rec.state.get("_modules") or {}).items() if v is not None}
    my_modules = dict(module.named_children())
    if set(rec_modules) != set(my_modules):
        raise UnsupportedNetworkError(f"{where}: submodules differ: pickle {sorted(rec_modules)}, rebuilt {sorted(my_modules)}")
    for name, sub in rec_modules.items():
        _check_against_record(sub, my_modules[name], prefix + name + ".")


def _rebuilding(what: str, step: Callable[[], Any]) -> Any:
    """Run one step of rebuilding a network; a constructor or state dict that does not fit this package's
    classes (TypeError, ValueError, KeyError, RuntimeError) becomes an `UnsupportedNetworkError`."""
    try:
        return step()
    except NvidiaPickleError:
        raise
    except (TypeError, ValueError, KeyError, RuntimeError) as err:
        raise UnsupportedNetworkError(f"cannot rebuild {what} with clip2gan.stylegan2 ({type(err).__name__}: "
                                      f"{err})") from None


def _is_stylegan3_repo_source(src: str) -> bool:
    """networks_stylegan2.py of the stylegan3 repository (other defaults) vs stylegan2-ada-pytorch."""
    return "fused_modconv_default" in src or "update_emas" in src


def _rebuild_network(rec: _PersistentRecord, device: Union[str, torch.device] = "cpu") -> torch.nn.Module:
    classes = _record_tree_classes(rec, set())
    unknown = sorted(classes - set(_KNOWN_CLASSES))
    if rec.class_name not in ("Generator", "Discriminator") or unknown:
        hint = " StyleGAN3 (alias-free) networks are not supported." if "SynthesisInput" in classes else ""
        raise UnsupportedNetworkError(f"the pickle holds a {rec.class_name} built from classes "
                                      f"{unknown or [rec.class_name]} that clip2gan.stylegan2 does not implement.{hint}")
    args = plain(rec.state.get("_init_args") or [])
    kwargs = plain(rec.state.get("_init_kwargs") or {})
    if _is_stylegan3_repo_source(rec.module_src):  # the stylegan3 repository's defaults differ
        if rec.class_name == "Generator":
            kwargs["mapping_kwargs"] = {"w_avg_beta": 0.998, **(kwargs.get("mapping_kwargs") or {})}
            for key, default in (("num_fp16_res", 4), ("conv_clamp", 256), ("fused_modconv_default", True)):
                if key not in kwargs and key not in (kwargs.get("synthesis_kwargs") or {}):
                    kwargs[key] = default
        else:
            kwargs.setdefault("num_fp16_res", 4)
            kwargs.setdefault("conv_clamp", 256)
    cls = _KNOWN_CLASSES[rec.class_name]
    with skip_init():  # no random init (every tensor comes from the pickle), global RNG untouched
        net = _rebuilding(f"its {rec.class_name} from the recorded constructor arguments", lambda: cls(*args, **kwargs))
    state_dict = _record_state_dict(rec)
    _rebuilding(f"the {rec.class_name}'s parameters and buffers", lambda: net.load_state_dict(
        {k: v.detach() for k, v in state_dict.items()}, strict=True, assign=True))
    _check_against_record(rec, net)
    return net.to(device).eval().requires_grad_(False)


# TensorFlow-era pickles: a tuple (G, D, Gs) of dnnlib.tflib.network.Network objects, each holding
# `static_kwargs`, sub-networks (`components`: G has 'mapping' and 'synthesis') and `variables`, a list
# of (name, numpy array). Names and layouts follow the TF code: dense weights are [in, out], conv
# weights [kh, kw, in, out], the upsampling conv kernel is stored flipped, style biases are stored
# minus 1, noise images as noise{i} [1, 1, r, r]. (The same table as NVIDIA's legacy.py converter.)

_TF_G_KWARGS = {"latent_size", "label_size", "dlatent_size", "resolution", "num_channels", "mapping_layers",
                "label_fmaps", "mapping_fmaps", "mapping_nonlinearity", "mapping_lrmul", "w_avg_beta", "fmap_base",
                "fmap_max", "num_fp16_res", "conv_clamp", "architecture", "resample_kernel", "use_noise",
                "nonlinearity", "truncation_psi", "truncation_cutoff", "style_mixing_prob", "structure",
                "conditioning", "fused_modconv"}  # the last two (StyleGAN2-ADA TF) do not change the function
_TF_D_KWARGS = {"label_size", "resolution", "num_channels", "architecture", "fmap_base", "fmap_max", "num_fp16_res",
                "conv_clamp", "mapping_fmaps", "nonlinearity", "resample_kernel", "freeze_layers", "mapping_layers",
                "mapping_lrmul", "mbstd_group_size", "mbstd_num_features", "structure"}


def _tf_variables(rec: _TFNetworkRecord, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for item in rec.state.get("variables", []):
        name, value = item
        value = value.array if isinstance(value, _NDArrayRecord) else value
        if not isinstance(value, (np.ndarray, float, int)):
            raise UnsupportedNetworkError(f"TF variable {prefix}{name} is a {type(value).__name__}")
        out[prefix + str(name)] = np.asarray(value, dtype=np.float32)
    for name, comp in (rec.state.get("components") or {}).items():
        if not isinstance(comp, _TFNetworkRecord):
            raise UnsupportedNetworkError(f"TF component {name} is a {type(comp).__name__}")
        out.update(_tf_variables(comp, prefix + str(name) + "/"))
    return out


def _tf_static_kwargs(rec: _TFNetworkRecord, known: set, what: str) -> dict[str, Any]:
    if int(rec.state.get("version", 0)) < 4:
        raise UnsupportedNetworkError(f"TensorFlow {what} pickle version {rec.state.get('version')} is too old (need 4)")
    kwargs = plain(rec.state.get("static_kwargs") or {})
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise UnsupportedNetworkError(f"TensorFlow {what}: unsupported static kwargs {unknown}")
    return kwargs


def _tf_fill(net: torch.nn.Module, values: dict[str, np.ndarray], what: str) -> torch.nn.Module:
    state = net.state_dict()
    missing = sorted(k for k in state if k not in values and not k.endswith("resample_filter"))
    if missing:
        raise UnsupportedNetworkError(f"TensorFlow {what}: no variables for {missing[:4]}{'...' if len(missing) > 4 else ''}")
    for key, value in values.items():
        t = torch.from_numpy(np.ascontiguousarray(value)).reshape(state[key].shape)
        state[key] = t
    net.load_state_dict(state, strict=True)
    return net


def _convert_tf_generator(rec: _TFNetworkRecord) -> Generator:
    k = _tf_static_kwargs(rec, _TF_G_KWARGS, "generator")
    w_avg_beta = k.get("w_avg_beta", 0.995)
    kwargs = dict(
        z_dim=k.get("latent_size", 512), c_dim=k.get("label_size", 0), w_dim=k.get("dlatent_size", 512),
        img_resolution=k.get("resolution", 1024), img_channels=k.get("num_channels", 3),
        mapping_kwargs=dict(num_layers=k.get("mapping_layers", 8), embed_features=k.get("label_fmaps"),
                            layer_features=k.get("mapping_fmaps"), activation=k.get("mapping_nonlinearity", "lrelu"),
                            lr_multiplier=k.get("mapping_lrmul", 0.01), w_avg_beta=1 if w_avg_beta is None else w_avg_beta),
        synthesis_kwargs=dict(channel_base=k.get("fmap_base", 16384) * 2, channel_max=k.get("fmap_max", 512),
                              num_fp16_res=k.get("num_fp16_res", 0), conv_clamp=k.get("conv_clamp"),
                              architecture=k.get("architecture", "skip"),
                              resample_filter=k.get("resample_kernel", [1, 3, 3, 1]),
                              use_noise=k.get("use_noise", True), activation=k.get("nonlinearity", "lrelu")))
    v = _tf_variables(rec)
    if any("ToRGB_lod" in name for name in v) or any("LabelConcat" in name for name in v):
        raise UnsupportedNetworkError("this TensorFlow generator uses an architecture without an NVIDIA PyTorch equivalent "
                         "(progressive-growing 'orig' toRGB layers or LabelConcat labels)")
    with skip_init():
        G = Generator(**kwargs)
    sd: dict[str, np.ndarray] = {"mapping.w_avg": v["dlatent_avg"]}
    if G.c_dim > 0:
        sd["mapping.embed.weight"] = v["mapping/LabelEmbed/weight"].T
        sd["mapping.embed.bias"] = v["mapping/LabelEmbed/bias"]
    for i in range(G.mapping.num_layers):
        sd[f"mapping.fc{i}.weight"] = v[f"mapping/Dense{i}/weight"].T
        sd[f"mapping.fc{i}.bias"] = v[f"mapping/Dense{i}/bias"]
    sd["synthesis.b4.const"] = v["synthesis/4x4/Const/const"][0]

    def modulated(dst: str, src: str, flip: bool = False) -> None:
        weight = v[f"{src}/weight"]  # [kh, kw, I, O]
        if flip:
            weight = weight[::-1, ::-1]
        sd[f"{dst}.weight"] = weight.transpose(3, 2, 0, 1)
        sd[f"{dst}.bias"] = v[f"{src}/bias"]
        sd[f"{dst}.affine.weight"] = v[f"{src}/mod_weight"].T
        sd[f"{dst}.affine.bias"] = v[f"{src}/mod_bias"] + 1

    for res in G.synthesis.block_resolutions:
        block = getattr(G.synthesis, f"b{res}")
        src = f"synthesis/{res}x{res}"
        convs = [("conv1", "Conv", 0, False)] if res == 4 else [("conv0", "Conv0_up", -5, True), ("conv1", "Conv1", -4, False)]
        for name, tf_name, offset, flip in convs:
            modulated(f"synthesis.b{res}.{name}", f"{src}/{tf_name}", flip=flip)
            if getattr(block, name).use_noise:
                sd[f"synthesis.b{res}.{name}.noise_strength"] = v[f"{src}/{tf_name}/noise_strength"]
                noise_idx = 0 if res == 4 else 2 * int(math.log2(res)) + offset
                sd[f"synthesis.b{res}.{name}.noise_const"] = v[f"synthesis/noise{noise_idx}"][0, 0]
        if hasattr(block, "torgb"):
            modulated(f"synthesis.b{res}.torgb", f"{src}/ToRGB")
        if hasattr(block, "skip"):
            sd[f"synthesis.b{res}.skip.weight"] = v[f"{src}/Skip/weight"][::-1, ::-1].transpose(3, 2, 0, 1)
    return _tf_fill(G, sd, "generator")


def _convert_tf_discriminator(rec: _TFNetworkRecord) -> Discriminator:
    k = _tf_static_kwargs(rec, _TF_D_KWARGS, "discriminator")
    act = k.get("nonlinearity", "lrelu")
    kwargs = dict(
        c_dim=k.get("label_size", 0), img_resolution=k.get("resolution", 1024), img_channels=k.get("num_channels", 3),
        architecture=k.get("architecture", "resnet"), channel_base=k.get("fmap_base", 16384) * 2,
        channel_max=k.get("fmap_max", 512), num_fp16_res=k.get("num_fp16_res", 0), conv_clamp=k.get("conv_clamp"),
        cmap_dim=k.get("mapping_fmaps"),
        block_kwargs=dict(activation=act, resample_filter=k.get("resample_kernel", [1, 3, 3, 1]),
                          freeze_layers=k.get("freeze_layers", 0)),
        mapping_kwargs=dict(num_layers=k.get("mapping_layers", 0), embed_features=k.get("mapping_fmaps"),
                            layer_features=k.get("mapping_fmaps"), activation=act,
                            lr_multiplier=k.get("mapping_lrmul", 0.1)),
        # The TF discriminator's own default group size is 4 (NVIDIA's legacy.py uses None = whole batch;
        # the two agree for batches of up to 4).
        epilogue_kwargs=dict(mbstd_group_size=k.get("mbstd_group_size", 4),
                             mbstd_num_channels=k.get("mbstd_num_features", 1), activation=act))
    v = _tf_variables(rec)
    if any("FromRGB_lod" in name for name in v):
        raise UnsupportedNetworkError("this TensorFlow discriminator uses progressive-growing fromRGB layers (not supported)")
    with skip_init():
        D = Discriminator(**kwargs)
    sd: dict[str, np.ndarray] = {}

    def conv(dst: str, src: str, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/weight"].transpose(3, 2, 0, 1)
        if bias:
            sd[f"{dst}.bias"] = v[f"{src}/bias"]

    def dense(dst: str, src: str) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/weight"].T
        sd[f"{dst}.bias"] = v[f"{src}/bias"]

    for res in D.block_resolutions:
        block = getattr(D, f"b{res}")
        src = f"{res}x{res}"
        if hasattr(block, "fromrgb"):
            conv(f"b{res}.fromrgb", f"{src}/FromRGB")
        conv(f"b{res}.conv0", f"{src}/Conv0")
        conv(f"b{res}.conv1", f"{src}/Conv1_down")
        if hasattr(block, "skip"):
            conv(f"b{res}.skip", f"{src}/Skip", bias=False)
    if D.c_dim > 0:
        dense("mapping.embed", "LabelEmbed")
        for i in range(D.mapping.num_layers):
            dense(f"mapping.fc{i}", f"Mapping{i}")
    if hasattr(D.b4, "fromrgb"):
        conv("b4.fromrgb", "4x4/FromRGB")
    conv("b4.conv", "4x4/Conv")
    dense("b4.fc", "4x4/Dense0")
    dense("b4.out", "Output")
    return _tf_fill(D, sd, "discriminator")


def load_nvidia_pkl(path_or_name: PathLike, device: Union[str, torch.device] = "cpu") -> dict[str, Any]:
    """Read an NVIDIA StyleGAN2 network pickle safely: `dict(G=..., D=..., G_ema=...)` (02_stylegan2_wplus.ipynb).

    Reads stylegan2-ada-pytorch snapshots, the StyleGAN2-config pickles of the stylegan3 repository
    and the TensorFlow-era `(G, D, Gs)` pickles of the original StyleGAN2 (e.g. LSUN Church; their
    variables are converted as NVIDIA's legacy.py does). Nothing from the file is executed and
    neither `dnnlib` nor `torch_utils` is needed: a restricted unpickler accepts only the globals
    those files contain, each network is rebuilt from its recorded init kwargs with this package's
    classes and filled from the recorded parameters and buffers (`strict=True`), and its recorded
    attributes are checked against the rebuilt one.

    Errors (all `NvidiaPickleError`, a `ValueError`, naming the file and what was expected):
    `NotAPickleError` (text, an archive, a truncated file), `NotANetworkPickleError` (a pickle of
    something else, e.g. a dict of tensors), `UnsupportedNetworkError` (networks this package will
    not rebuild) and `UnsafePickleError` (a global outside the allow-list, named; nothing ran).

    `path_or_name`: a file, or an artefact name for `clip2gan.hub.resolve` (e.g. 'stylegan2-ffhq-1024').
    Networks come back in eval mode with `requires_grad=False`, as NVIDIA's snapshots store them;
    `training_set_kwargs` is passed through as a plain dict when present.
    """
    path = resolve_file(path_or_name)
    data = read_network_pickle(path)
    try:
        return _networks(data, device)
    except UnsupportedNetworkError as err:
        raise UnsupportedNetworkError(f"{path}: {err}") from None
    except NotANetworkPickleError as err:
        raise NotANetworkPickleError(f"{path} {err}. Expected {EXPECTED}.") from None


def _describe(data: Any) -> str:
    """A short description of a pickle's top-level object, for error messages."""
    if isinstance(data, dict):
        keys = [str(k) for k in list(data)[:8]]
        return f"a dict with keys {keys}{' ...' if len(data) > 8 else ''}"
    if isinstance(data, (list, tuple)):
        kinds = sorted({type(v).__name__ for v in data})
        return f"a {type(data).__name__} of {len(data)} items ({', '.join(kinds) or 'empty'})"
    name = type(data).__name__
    return f"{'an' if name[:1].lower() in 'aeiou' else 'a'} {name}"


def _networks(data: Any, device: Union[str, torch.device]) -> dict[str, Any]:
    """The networks of an unpickled snapshot (stand-ins from `read_network_pickle`)."""
    if isinstance(data, tuple) and len(data) == 3 and all(isinstance(n, _TFNetworkRecord) for n in data):
        tf_G, tf_D, tf_Gs = data  # TensorFlow-era pickle
        nets = {"G": _rebuilding("the TensorFlow G", lambda: _convert_tf_generator(tf_G)),
                "D": _rebuilding("the TensorFlow D", lambda: _convert_tf_discriminator(tf_D)),
                "G_ema": _rebuilding("the TensorFlow Gs", lambda: _convert_tf_generator(tf_Gs))}
        return {k: net.to(device).eval().requires_grad_(False) for k, net in nets.items()}
    if not isinstance(data, dict) or "G_ema" not in data:
        raise NotANetworkPickleError(f"is a pickle of {_describe(data)}, not NVIDIA networks (no 'G_ema')")
    out: dict[str, Any] = {}
    for key in ("G", "D", "G_ema"):
        rec = data.get(key)
        if rec is None:
            continue
        if not isinstance(rec, _PersistentRecord):
            raise NotANetworkPickleError(f"holds '{key}' as a {type(rec).__name__}, not an NVIDIA persistent network")
        out[key] = _rebuild_network(rec, device=device)
    if isinstance(data.get("training_set_kwargs"), dict):
        out["training_set_kwargs"] = plain(data["training_set_kwargs"])
    return out
