"""Checkpoints as safetensors + a JSON config: never a pickle (introduced in 00_setup.ipynb).

Every artefact this project writes (toy-world weights, mapping networks, training state) is a
`.safetensors` file holding tensors only, with its configuration stored twice: in the safetensors
metadata (so one file is self-describing) and in a `.json` file beside it (so a human can read it).
Writes are atomic: data go to a temporary file in the same folder, are flushed to disk, then renamed
over the target, so a process killed at any moment leaves either the old file or the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

__all__ = [
    "CorruptCheckpoint",
    "atomic_path",
    "atomic_write_text",
    "save_safetensors",
    "load_safetensors",
    "config_path",
    "load_config",
    "tensor_digest",
    "save_state",
    "load_state",
    "optimizer_tensors",
    "load_optimizer_tensors",
]

_CONFIG_KEY = "clip2gan_config"
_DIGEST_KEY = "tensor_sha256"


class CorruptCheckpoint(RuntimeError):
    """A checkpoint file exists but cannot be read (truncated, not safetensors, bad metadata, a tensor
    checksum that does not match) (00_setup.ipynb)."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it over `path` atomically (00_setup.ipynb).

    On any exception the temporary file is removed and `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (temporary file + rename) (00_setup.ipynb)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def config_path(path: str | os.PathLike) -> Path:
    """The JSON file that sits beside a `.safetensors` checkpoint (00_setup.ipynb)."""
    return Path(path).with_suffix(".json")


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the names, dtypes, shapes and bytes of `tensors`, in name order (00_setup.ipynb).

    Stored as `tensor_sha256` in a checkpoint's config by `save_safetensors(..., checksum=True)` and
    checked by `load_safetensors`: a flipped byte in a file that still parses is caught.
    """
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_safetensors(
    state_dict: dict[str, torch.Tensor],
    path: str | os.PathLike,
    config: dict[str, Any] | None = None,
    half: bool = False,
    write_json: bool = True,
    checksum: bool = False,
) -> Path:
    """Save tensors to `path` (safetensors) and `config` to the safetensors metadata and a `.json` beside it
    (00_setup.ipynb).

    half: store floating-point tensors as float16 (halves shipped weight size; loading casts back
    through `load_state_dict`). Non-tensor state (optimiser hyper-parameters, RNG states, step)
    belongs in `config`, which must be JSON-serialisable. checksum: add `tensor_sha256` (the
    `tensor_digest` of the stored tensors) to the config; `load_safetensors` then verifies it.
    """
    path = Path(path)
    config = dict(config or {})
    tensors = {}
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict[{key!r}] is {type(value).__name__}, not a tensor; put it in config")
        value = value.detach().cpu()
        if half and value.is_floating_point():
            value = value.half()
        tensors[key] = value.contiguous()
    if checksum:
        config[_DIGEST_KEY] = tensor_digest(tensors)
    text = json.dumps(config, sort_keys=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={_CONFIG_KEY: text})
    if write_json:
        atomic_write_text(config_path(path), json.dumps(config, indent=2, sort_keys=True) + "\n")
    return path


def _read_config(path: Path) -> dict[str, Any]:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    try:
        return json.loads(meta.get(_CONFIG_KEY, "{}"))
    except json.JSONDecodeError as err:
        raise CorruptCheckpoint(f"{path}: its config metadata is not valid JSON ({err})") from None


def _unreadable(path: Path, err: Exception) -> CorruptCheckpoint:
    return CorruptCheckpoint(
        f"{path} is not a readable safetensors checkpoint ({err}); delete it and re-create or re-download it")


def load_safetensors(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load `(state_dict, config)` written by `save_safetensors`; a clear error if the file is damaged
    (00_setup.ipynb). A config with `tensor_sha256` has its tensors checked against it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = load_file(str(path), device=str(device))
        config = _read_config(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise _unreadable(path, err) from None
    want = config.get(_DIGEST_KEY)
    if want is not None and tensor_digest(state) != want:
        raise CorruptCheckpoint(f"{path}: tensor checksum mismatch (the file is damaged); delete it")
    return state, config


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """The config stored in a `save_safetensors` file's metadata, without reading its tensors (00_setup.ipynb)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return _read_config(path)
    except (SafetensorError, OSError, ValueError) as err:
        raise _unreadable(path, err) from None


# -- nested training state (models, optimisers, RNGs) in one safetensors file ------------------

_TENSOR_REF = "__tensor__"


def _flatten(obj: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        key = prefix or "tensor"
        tensors[key] = obj
        return {_TENSOR_REF: key}
    if isinstance(obj, dict):
        return {"__dict__": [[k, _flatten(v, f"{prefix}.{k}" if prefix else str(k), tensors)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [_flatten(v, f"{prefix}.{i}" if prefix else str(i), tensors) for i, v in enumerate(obj)]
        return {"__tuple__": items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} at '{prefix}' in a checkpoint (tensors and JSON values only)")


def _unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, dict):
        if _TENSOR_REF in obj:
            return tensors[obj[_TENSOR_REF]]
        if "__dict__" in obj:
            return {k: _unflatten(v, tensors) for k, v in obj["__dict__"]}
        if "__tuple__" in obj:
            return tuple(_unflatten(v, tensors) for v in obj["__tuple__"])
        return {k: _unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    return obj


def save_state(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Save a nested dict of tensors and JSON values (model and optimiser state dicts, RNG states,
    counters) to one safetensors file, atomically. Dict keys may be ints (optimiser state) (05_training.ipynb)."""
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _flatten(state, "", tensors)
    return save_safetensors(tensors, path, {"state": skeleton}, write_json=False)


def load_state(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Inverse of `save_state`; `CorruptCheckpoint` if the file is damaged (05_training.ipynb)."""
    tensors, config = load_safetensors(path, device=device)
    if "state" not in config:
        raise CorruptCheckpoint(f"{path} holds no training state (written by save_safetensors, not save_state?)")
    try:
        return _unflatten(config["state"], tensors)
    except KeyError as err:
        raise CorruptCheckpoint(f"{path}: tensor {err} is referenced but missing") from None


# -- optimiser state as flat tensors, beside a model's state dict in one file -------------------


def optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    """The per-parameter state of `opt` (Adam's moments and step counts) as `{prefix}.{index}.{name}`
    tensors, to store beside a model's tensors (00_setup.ipynb). The names follow `save_state`'s
    scheme; numbers that are not tensors (an old torch's step count) become 0-d tensors. The
    hyper-parameters (`param_groups`) are not stored: the trainer sets them (see `load_optimizer_tensors`)."""
    out: dict[str, torch.Tensor] = {}
    for idx, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            out[f"{prefix}.{idx}.{name}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return out


def load_optimizer_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    """Inverse of `optimizer_tensors`: fill `opt`'s per-parameter state from the `{prefix}.*` entries of
    `tensors` (00_setup.ipynb). `opt` keeps its own hyper-parameters, so a resumed run may change its
    learning rate or betas."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            idx, name = key[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(idx), {})[name] = value.clone()
    sd = opt.state_dict()
    sd["state"] = state
    opt.load_state_dict(sd)
