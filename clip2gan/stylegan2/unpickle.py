"""A restricted unpickler for NVIDIA's network pickles, and the errors of reading them (introduced in
02_stylegan2_wplus.ipynb).

A stylegan2-ada-pytorch snapshot is `pickle.dump(dict(G=..., D=..., G_ema=..., augment_pipe=...,
training_set_kwargs=...))`. Every network is a `torch_utils.persistence` object, pickled as
`_reconstruct_persistent_obj(meta)` with meta = dict(type='class', version=6, module_src=<the whole
networks.py source>, class_name='Generator', state=<the module's __dict__>). NVIDIA's unpickler
`exec`s module_src; `read_network_pickle` reads the file with `_SafeUnpickler`, which accepts only
the globals such files contain (`_ALLOWED_GLOBALS`) and returns harmless stand-ins for them: a
`_PersistentRecord` keeps `meta` as data, tensors are rebuilt from their bytes with
`torch.load(weights_only=True)`, numpy arrays from their raw bytes. Nothing from the file runs.

Every failure is one `NvidiaPickleError` naming the file and what was expected:

* `NotAPickleError`: the bytes are not a pickle (a text file, a zip archive, a safetensors file, a
  truncated or corrupt file);
* `NotANetworkPickleError`: a pickle, but not of NVIDIA networks (a plain dict of tensors, a list);
* `UnsupportedNetworkError`: NVIDIA networks this package will not rebuild (other architectures,
  constructor arguments or tensors its classes do not have);
* `UnsafePickleError`: the pickle asks for something that could run code (a global outside the
  allow-list, BUILD on a real object, persistent ids); refused before anything runs.
"""

from __future__ import annotations

import _compat_pickle
import io
import pickle
import warnings
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO, Optional

import numpy as np
import torch

EXPECTED = ("an NVIDIA StyleGAN2 network pickle: a stylegan2-ada-pytorch or stylegan3 snapshot (a dict with "
            "'G', 'D' and 'G_ema') or a TensorFlow-era (G, D, Gs) tuple")


class NvidiaPickleError(ValueError):
    """A file could not be read as an NVIDIA StyleGAN2 network pickle; the message names the file and
    what was expected. Base class of the loader's errors (02_stylegan2_wplus.ipynb)."""


class NotAPickleError(NvidiaPickleError):
    """The file is not a pickle at all: text, a zip archive (torch.save), a safetensors file, or a
    truncated or corrupt pickle (02_stylegan2_wplus.ipynb)."""


class NotANetworkPickleError(NvidiaPickleError):
    """The file is a pickle, but not of NVIDIA networks: e.g. a plain dict of tensors or a list
    (02_stylegan2_wplus.ipynb)."""


class UnsupportedNetworkError(NvidiaPickleError):
    """The pickle holds NVIDIA networks this package will not rebuild: classes it does not implement
    (e.g. StyleGAN3's alias-free networks), constructor arguments or tensors its classes do not have,
    or recorded attributes that differ from the rebuilt network's (02_stylegan2_wplus.ipynb)."""


class UnsafePickleError(NvidiaPickleError, pickle.UnpicklingError):
    """A pickle asked for something outside the allow-list of NVIDIA network pickles (anything that
    could run code); nothing ran. Introduced in 02_stylegan2_wplus.ipynb."""


class _PersistentRecord:
    """What `torch_utils.persistence._reconstruct_persistent_obj(meta)` would have rebuilt, kept as data."""

    __slots__ = ("class_name", "module_src", "state", "version")

    def __init__(self, meta: Any):
        if not isinstance(meta, dict) or meta.get("type") != "class" or not isinstance(meta.get("class_name"), str):
            raise UnsupportedNetworkError("a persistent object without NVIDIA's persistence metadata "
                                          "(expected dict(type='class', class_name=..., state=...))")
        state = meta.get("state")
        if not isinstance(state, dict):
            raise UnsupportedNetworkError(f"persistent object {meta['class_name']!r} has no state dict")
        self.class_name: str = meta["class_name"]
        self.module_src: str = meta.get("module_src") or ""
        self.state: dict = state
        self.version = meta.get("version")

    def __repr__(self) -> str:
        return f"<NVIDIA persistent {self.class_name} (not executed)>"


class _EasyDict(dict):
    """Stand-in for `dnnlib.util.EasyDict` (a dict with attribute access); no behaviour needed."""

    def _safe_setstate(self, state: Any) -> None:
        if state:
            raise UnsafePickleError("unexpected instance state on dnnlib.util.EasyDict")


_NUMPY_DTYPES = {"b1", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f2", "f4", "f8", "c8", "c16"}


class _NumpyDtype:
    """Stand-in for `numpy.dtype(name, align, copy)` + its pickled state; only plain numeric dtypes."""

    def __init__(self, name: Any, *args: Any):
        if name not in _NUMPY_DTYPES:
            raise UnsafePickleError(f"numpy dtype {name!r} is not allowed (plain numeric dtypes only)")
        self.name = name
        self.byteorder = "="

    def _safe_setstate(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
            self.byteorder = state[1]

    def to_numpy(self) -> np.dtype:
        order = "" if self.byteorder in ("|", "=") else self.byteorder
        return np.dtype(order + self.name)


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    """`numpy.core.multiarray.scalar(dtype, bytes)` -> a Python number."""
    if not isinstance(dtype, _NumpyDtype) or not isinstance(data, bytes):
        raise UnsafePickleError("numpy scalar with unexpected arguments")
    return np.frombuffer(data, dtype=dtype.to_numpy(), count=1)[0].item()


def _load_storage_from_bytes(data: Any) -> Any:
    """`torch.storage._load_from_bytes`, but with `weights_only=True` (torch's own uses False)."""
    if not isinstance(data, bytes):
        raise UnsafePickleError("tensor storage is not a byte string")
    try:
        storage = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise UnsafePickleError(f"a tensor storage inside the pickle is not plain tensor data: {err}") from None
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError(f"a tensor storage inside the pickle decoded to {type(storage).__name__}")
    return storage


def _rebuild_tensor_v2(storage: Any, storage_offset: Any, size: Any, stride: Any, requires_grad: Any = False,
                       backward_hooks: Any = None, metadata: Any = None) -> torch.Tensor:
    if not isinstance(storage, (torch.TypedStorage, torch.UntypedStorage)):
        raise UnsafePickleError("tensor rebuilt from something that is not a storage")
    if backward_hooks:
        raise UnsafePickleError("tensor with backward hooks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage deprecation
        t = torch._utils._rebuild_tensor(storage, int(storage_offset), tuple(int(s) for s in size),
                                         tuple(int(s) for s in stride))
    t.requires_grad = bool(requires_grad)
    return t


def _rebuild_parameter(data: Any, requires_grad: Any, backward_hooks: Any = None, state: Any = None) -> torch.nn.Parameter:
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("parameter rebuilt from something that is not a tensor")
    if backward_hooks:
        raise UnsafePickleError("parameter with backward hooks")
    return torch.nn.Parameter(data, requires_grad=bool(requires_grad))


def _codecs_encode(text: Any, encoding: Any = "latin1") -> bytes:
    """Protocol-2 pickles store bytes as `_codecs.encode(str, 'latin1')`."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError("_codecs.encode with unexpected arguments")
    return text.encode("latin1")


class _NDArrayType:
    """Stand-in for `numpy.ndarray` (accepted only as the class argument of `_reconstruct`)."""


class _NDArrayRecord:
    """`numpy.core.multiarray._reconstruct(ndarray, ...)` + its BUILD state, decoded as plain numbers."""

    def __init__(self) -> None:
        self.array: Optional[np.ndarray] = None

    def _safe_setstate(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise UnsafePickleError("numpy array with unexpected state")
        _, shape, dtype, is_fortran, raw = state
        if not isinstance(dtype, _NumpyDtype) or not isinstance(raw, bytes):
            raise UnsafePickleError("numpy array that is not plain numeric data")
        shape = tuple(int(d) for d in shape)
        self.array = np.frombuffer(raw, dtype=dtype.to_numpy()).reshape(shape, order="F" if is_fortran else "C").copy()


def _ndarray_reconstruct(cls: Any, shape: Any = None, typecode: Any = None) -> _NDArrayRecord:
    if cls is not _NDArrayType:
        raise UnsafePickleError("numpy _reconstruct of something other than numpy.ndarray")
    return _NDArrayRecord()


class _TFNetworkRecord:
    """Stand-in for `dnnlib.tflib.network.Network` of the TensorFlow StyleGAN2 repositories: its pickled
    state (static kwargs, sub-networks, variables) kept as data; `build_module_src` is never executed."""

    def __init__(self) -> None:
        self.state: dict = {}

    def _safe_setstate(self, state: Any) -> None:
        if not isinstance(state, dict) or not isinstance(state.get("variables"), list):
            raise UnsafePickleError("TensorFlow network with unexpected state")
        self.state = state


# (module, name) -> the harmless object returned in its place. This is everything that NVIDIA's
# stylegan2-ada-pytorch and stylegan3 snapshots and the TensorFlow-era (G, D, Gs) pickles contain;
# nothing here can run code from the file.
_ALLOWED_GLOBALS: dict[tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _PersistentRecord,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("dnnlib", "EasyDict"): _EasyDict,
    ("collections", "OrderedDict"): OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _codecs_encode,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("numpy", "dtype"): _NumpyDtype,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    # TensorFlow-era pickles (the original StyleGAN2 and StyleGAN2-ADA repositories):
    ("dnnlib.tflib.network", "Network"): _TFNetworkRecord,
    ("numpy", "ndarray"): _NDArrayType,
    ("numpy.core.multiarray", "_reconstruct"): _ndarray_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _ndarray_reconstruct,
}


class _SafeUnpickler(pickle._Unpickler):  # the pure-Python unpickler, so BUILD can be restricted too
    """Unpickler whose globals come only from `_ALLOWED_GLOBALS`; BUILD (`__setstate__`) only on our stand-ins.

    Errors raised by the stand-ins while they rebuild an object (wrong arguments, odd state) become
    `UnsupportedNetworkError`; refusals are `UnsafePickleError`.
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def find_class(self, module: str, name: str) -> Any:
        if self.proto < 3:  # Python 2 names written by protocols 0-2 (e.g. __builtin__.set)
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load: the pickle asks for the global '{module}.{name}', which is not on the "
                "allow-list of NVIDIA StyleGAN2 network pickles. Nothing from the file was executed."
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError("refusing to load: the pickle uses persistent ids (not an NVIDIA network pickle)")

    def _load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]  # only ever an allow-listed stand-in (find_class) or an object built by one
        self.stack[-1] = _rebuild(func, lambda: func(*args))

    def _load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        setstate = getattr(inst, "_safe_setstate", None)
        if setstate is None:
            raise UnsafePickleError(
                f"refusing to load: the pickle sets the state of a {type(inst).__name__} object (BUILD), "
                "which NVIDIA network pickles never do. Nothing from the file was executed."
            )
        _rebuild(inst, lambda: setstate(state))

    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.BUILD[0]] = _load_build


def _rebuild(what: Any, step: Any) -> Any:
    """Run one rebuilding step of a stand-in; its failures (other than refusals) are unsupported content."""
    try:
        return step()
    except NvidiaPickleError:
        raise
    except Exception as err:
        name = getattr(what, "__name__", type(what).__name__)
        raise UnsupportedNetworkError(f"the pickle holds a {name} this loader cannot rebuild ({type(err).__name__}: "
                                      f"{err})") from None


# Headers of files that are often mistaken for network pickles.
_ZIP_MAGIC = b"PK\x03\x04"
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C  # the first pickle of a pre-1.6 torch.save file


def _not_a_pickle(path: Path, head: bytes, why: str) -> NotAPickleError:
    return NotAPickleError(f"{path} is not a pickle ({why}; it starts with {head[:12]!r}). Expected {EXPECTED}.")


def read_network_pickle(path: Path) -> Any:
    """Unpickle `path` with the restricted unpickler (02_stylegan2_wplus.ipynb).

    Returns the top-level object with NVIDIA's objects replaced by stand-ins (`_PersistentRecord`,
    `_TFNetworkRecord`, ...). Raises an `NvidiaPickleError` subclass whose message names the file.
    """
    with open(path, "rb") as f:
        head = f.read(16)
        f.seek(0)
        if not head:
            raise _not_a_pickle(path, head, "the file is empty")
        if head.startswith(_ZIP_MAGIC):
            raise _not_a_pickle(path, head, "a zip archive, as torch.save writes: for a rosinality checkpoint use "
                                            "load_rosinality or load_generator")
        if len(head) >= 9 and head[8:9] == b"{" and not head.startswith(b"\x80"):
            raise _not_a_pickle(path, head, "a safetensors file: for a clip2gan checkpoint use load or load_generator")
        data = _unpickle(path, f, head)
    if isinstance(data, int) and data == _LEGACY_TORCH_MAGIC:
        raise _not_a_pickle(path, head, "a file written by torch.save's legacy format, not a network pickle: "
                                        "read it with torch.load(weights_only=True)")
    return data


def _unpickle(path: Path, f: BinaryIO, head: bytes) -> Any:
    binary = head[:1] == b"\x80"  # protocol 2+: every NVIDIA network pickle starts so
    try:
        return _SafeUnpickler(f).load()
    except UnsafePickleError as err:
        hint = "" if binary else " (The file does not start like a protocol 2+ pickle; it may not be a pickle at all.)"
        raise UnsafePickleError(f"{path}: {err}{hint}") from None
    except NvidiaPickleError as err:
        raise type(err)(f"{path}: {err}. Expected {EXPECTED}.") from None
    except Exception as err:  # the bytes are not a (complete) pickle
        why = (f"it starts like a pickle but cannot be read to the end ({type(err).__name__}: {err}): truncated or "
               "corrupt" if binary else f"reading it as one fails with {type(err).__name__}: {err}")
        raise _not_a_pickle(path, head, why) from None
