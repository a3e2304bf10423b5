"""Saving and loading the DCGAN: safetensors + a JSON config, no pickle (11_other_generators.ipynb).

The same scheme as `clip2gan.stylegan2.save` / `load`: the tensors in a `.safetensors` file, the
constructor arguments in its metadata and in a `.json` beside it, under the format string
`clip2gan.dcgan`. `clip2gan.stylegan2.load_generator` (the one loader of `--generator PATH`)
recognises that string and hands the file to `load` here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

import torch

from clip2gan.checkpoint import load_safetensors, save_safetensors
from clip2gan.dcgan.networks import DCGANDiscriminator, DCGANGenerator

__all__ = ["FORMAT", "save", "load"]

FORMAT = "clip2gan.dcgan"
_CLASSES = {"DCGANGenerator": DCGANGenerator, "DCGANDiscriminator": DCGANDiscriminator}


def save(net: Union[DCGANGenerator, DCGANDiscriminator], path: str | os.PathLike, half: bool = False,
         extra: dict[str, Any] | None = None, write_json: bool = True) -> Path:
    """Save a DCGAN generator or discriminator: safetensors + a JSON config of its constructor arguments
    (11_other_generators.ipynb).

    half: float16 tensors (loading casts back to float32). extra: more JSON values for the config
    (training step, figures). The tensors carry a checksum that `load` verifies.
    """
    if not isinstance(net, (DCGANGenerator, DCGANDiscriminator)):
        raise TypeError(f"save() takes a DCGANGenerator or DCGANDiscriminator, not {type(net).__name__}")
    config = {**(extra or {}), "format": FORMAT, "version": 1, "class": type(net).__name__,
              "init_kwargs": net.init_kwargs, "dtype": "float16" if half else "float32"}
    return save_safetensors(net.state_dict(), path, config=config, half=half, write_json=write_json, checksum=True)


def load(path: str | os.PathLike, device: Union[str, torch.device] = "cpu") -> Union[DCGANGenerator, DCGANDiscriminator]:
    """Load a network written by `save`, in eval mode and float32 (11_other_generators.ipynb).

    A file that is not a DCGAN checkpoint raises `ValueError` naming the format it holds; a damaged one
    `clip2gan.checkpoint.CorruptCheckpoint`.
    """
    state, config = load_safetensors(path)
    cls = _CLASSES.get(config.get("class"))
    if config.get("format") != FORMAT or cls is None:
        raise ValueError(f"{path} is not a clip2gan DCGAN checkpoint (format {config.get('format')!r}, "
                         f"class {config.get('class')!r})")
    net = cls(**config["init_kwargs"])
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    net.load_state_dict(state, strict=True)
    return net.to(device).eval()
