"""Devices, seeds and the environment report every notebook starts with (00_setup.ipynb); Colab: `clip2gan.colab`."""

from __future__ import annotations

import argparse
import os
import platform
import random
from typing import Any, Sequence

import numpy as np
import open_clip
import torch

import clip2gan
from clip2gan.colab import in_colab

__all__ = ["pick_device", "seed_everything", "environment_report", "device_label", "batch_command_args"]


def pick_device(device: str | torch.device = "auto") -> torch.device:
    """`"auto"` → CUDA if available, else Apple MPS, else CPU; anything else is checked and returned.

    Asking for CUDA on a machine without it is an error, not a silent fallback.
    """
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device={device!r} was asked for, but this machine has no CUDA GPU; use 'cpu' or 'auto'")
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU `torch.Generator` seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def device_label(device: str | torch.device = "cpu") -> str:
    """What trained a run, for logs and manifest entries: 'CPU, 2 thread(s), torch 2.x' or
    'NVIDIA H100 80GB HBM3, torch 2.x'."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return f"{torch.cuda.get_device_name(dev)}, torch {torch.__version__}"
    return f"{dev.type.upper()}, {torch.get_num_threads()} thread(s), torch {torch.__version__}"


def environment_report(device: str | torch.device = "auto") -> dict[str, Any]:
    """Versions and hardware, as a dict (printed by the first cell of each notebook)."""


    dev = pick_device(device)
    report = {
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "clip2gan": clip2gan.__version__,
        "torch": torch.__version__,
        "open_clip": open_clip.__version__,
        "numpy": np.__version__,
        "device": str(dev),
        "cpu_threads": torch.get_num_threads(),
        "colab": in_colab(),
        "CLIP2GAN_HOME": os.environ.get("CLIP2GAN_HOME", "~/.cache/clip2gan (default)"),
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        report["gpu"] = f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    return report


def batch_command_args(command: type, prog: str, description: str, argv: Sequence[str] | None = None) -> Any:
    """Parse a batch command's flags (one per field of the dataclass `command`, `clip2gan.cli`) and set up
    the process for a run that writes files and shows nothing: `torch.set_num_threads(args.threads)` when
    the command has a `threads` flag that is set, and matplotlib's file-only Agg backend (chosen here,
    before pyplot is first imported). Returns the filled `command` (08_evaluation.ipynb)."""
    from clip2gan.cli import add_config_args, config_from_args

    parser = add_config_args(argparse.ArgumentParser(prog=prog, description=description), command)
    args = config_from_args(command, parser.parse_args(argv))
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    import matplotlib  # here: the backend must be chosen before pyplot is first imported

    matplotlib.use("Agg")
    return args
