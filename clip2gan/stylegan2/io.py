"""Saving and loading this package's StyleGAN2 networks (introduced in 02_stylegan2_wplus.ipynb).

`save` / `load`: pickle-free checkpoints, safetensors + a JSON config of the constructor arguments.
`load_generator`: the one entry point for inference, which reads any of the three formats by
content (an NVIDIA pickle, a rosinality checkpoint or a checkpoint written by `save`), and the
DCGAN checkpoints of `clip2gan.dcgan.save` (recognised by their stored format string), whose
generator has the same interface with one w+ row.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Union

import torch

from clip2gan.checkpoint import load_config, load_safetensors, save_safetensors
from clip2gan.stylegan2.files import PathLike, plain, resolve_file
from clip2gan.stylegan2.networks import Discriminator, Generator
from clip2gan.stylegan2.nvidia import load_nvidia_pkl
from clip2gan.stylegan2.ops import skip_init
from clip2gan.stylegan2.rosinality import load_rosinality

if TYPE_CHECKING:  # for annotations only: clip2gan.dcgan builds on this package's ops
    from clip2gan.dcgan.networks import DCGANGenerator

# =================================================================================================
# Our own checkpoints: safetensors + JSON config, no pickle.
# =================================================================================================

_FORMAT = "clip2gan.stylegan2"


def save(net: Union[Generator, Discriminator], path: PathLike, half: bool = False) -> Path:
    """Save a Generator or Discriminator as safetensors + a JSON config of its init kwargs (02_stylegan2_wplus.ipynb).

    No pickle: `load(path)` rebuilds the network from the config and fills it strictly.
    """
    if not isinstance(net, (Generator, Discriminator)):
        raise TypeError(f"save() takes a Generator or Discriminator, not {type(net).__name__}")
    config = {"format": _FORMAT, "version": 1, "class": type(net).__name__, "init_kwargs": plain(net.init_kwargs)}
    return save_safetensors(net.state_dict(), path, config=config, half=half)


def load(path: PathLike, device: Union[str, torch.device] = "cpu") -> Union[Generator, Discriminator]:
    """Load a network written by `save` (eval mode; float32 even if saved with half=True;
    02_stylegan2_wplus.ipynb)."""
    state, config = load_safetensors(path)
    if config.get("format") != _FORMAT or config.get("class") not in ("Generator", "Discriminator"):
        raise ValueError(f"{path} is not a clip2gan StyleGAN2 checkpoint (config: {str(config)[:200]})")
    cls = Generator if config["class"] == "Generator" else Discriminator
    with skip_init():
        net = cls(**config["init_kwargs"])
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    net.load_state_dict(state, strict=True, assign=True)
    return net.to(device).eval()


def load_generator(path_or_name: PathLike,
                   device: Union[str, torch.device] = "cpu") -> Union[Generator, "DCGANGenerator"]:
    """The generator to use for inference: eval mode, `requires_grad=False` (02_stylegan2_wplus.ipynb).

    Reads, by content: an NVIDIA pickle (its `G_ema`, via `load_nvidia_pkl`), a rosinality `.pt`
    checkpoint (its `g_ema`, via `load_rosinality`), a checkpoint written by `save`, or a DCGAN
    checkpoint written by `clip2gan.dcgan.save` (format `clip2gan.dcgan`: a `DCGANGenerator`, which has
    the StyleGAN2 generator's interface with num_ws = 1; 08_evaluation.ipynb).
    `path_or_name` is a file or a `clip2gan.hub` artefact name.
    """
    # deferred: clip2gan.dcgan imports this package (its ops), so this module cannot import it at the top
    from clip2gan.dcgan import io as dcgan_io
    from clip2gan.dcgan.networks import DCGANGenerator

    path = resolve_file(path_or_name)
    with open(path, "rb") as f:
        head = f.read(16)
    # safetensors first: its u64 header length can itself start with 0x80, the pickle protocol byte
    if len(head) >= 9 and head[8:9] == b"{":  # safetensors: u64 header length, then JSON
        if load_config(path).get("format") == dcgan_io.FORMAT:
            G = dcgan_io.load(path, device=device)
        else:
            G = load(path, device=device)
    elif head.startswith(b"PK"):  # torch.save zip archive
        G = load_rosinality(path, device=device)
    elif head[:1] == b"\x80":  # pickle protocol >= 2
        G = load_nvidia_pkl(path, device=device)["G_ema"]
    else:
        raise ValueError(f"{path}: not an NVIDIA pickle, a rosinality .pt or a clip2gan safetensors file "
                         "(StyleGAN2 or DCGAN)")
    if not isinstance(G, (Generator, DCGANGenerator)):
        raise ValueError(f"{path} holds a {type(G).__name__}, not a generator (a StyleGAN2 Generator or a "
                         "DCGANGenerator)")
    return G.to(device).eval().requires_grad_(False)
