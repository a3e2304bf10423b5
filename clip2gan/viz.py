"""Figures: image grids, β strips, loss curves (used from 00_setup.ipynb on).

Images everywhere in this package are float tensors `[N, 3, H, W]` in [-1, 1]; these helpers turn
them into uint8 arrays, PNG files and matplotlib figures.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from PIL import Image

from clip2gan.checkpoint import atomic_path

__all__ = ["to_uint8", "make_grid", "save_grid", "show_grid", "show_strip", "plot_curves", "read_jsonl"]


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] or [3, H, W] in [-1, 1] → uint8 [N, H, W, 3] (or [H, W, 3])."""
    x = images.detach().float().cpu()
    single = x.ndim == 3
    if single:
        x = x[None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected images [N, 3, H, W] or [3, H, W], got {tuple(images.shape)}")
    x = ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    return x[0] if single else x


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1, upscale: int = 1) -> np.ndarray:
    """Tile images [N, 3, H, W] into one uint8 [H', W', 3] array, `nrow` images per row."""
    tiles = to_uint8(images)
    n, h, w, _ = tiles.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, nrow)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = tile
    if upscale > 1:
        grid = grid.repeat(upscale, axis=0).repeat(upscale, axis=1)
    return grid


def save_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, upscale: int = 2) -> Path:
    """Save a grid of images as PNG (atomic write); returns the path."""


    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(make_grid(images, nrow, upscale=upscale)).save(tmp, format="PNG")
    return path


def show_grid(images: torch.Tensor, nrow: int | None = None, titles: Sequence[str] | None = None,
              title: str | None = None, scale: float = 1.2, fontsize: int = 7):
    """A matplotlib figure with one axis per image (titles under each) — for notebooks."""

    tiles = to_uint8(images)
    n = len(tiles)
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    fig, axes = plt.subplots(rows, nrow, figsize=(scale * nrow, scale * rows + (0.3 if title else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(tiles[i], interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[i], fontsize=fontsize)
    if title:
        fig.suptitle(title, fontsize=fontsize + 3)
    fig.tight_layout()
    return fig


def show_strip(rows: Sequence[torch.Tensor], row_labels: Sequence[str], col_labels: Sequence[str],
               title: str | None = None, scale: float = 1.1):
    """A labelled table of images, e.g. β strips (rows: prompts, columns: β values)."""

    ncol = len(col_labels)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(scale * ncol + 1.5, scale * len(rows) + 0.4), squeeze=False)
    for r, images in enumerate(rows):
        tiles = to_uint8(images)
        for c in range(ncol):
            ax = axes[r, c]
            ax.imshow(tiles[c], interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(col_labels[c], fontsize=8)
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def read_jsonl(path: str | Path) -> list[dict]:
    """Read a JSON-lines log, skipping a last line cut short by a killed process."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def plot_curves(rows: Sequence[dict], keys: Sequence[str], x: str = "step", title: str | None = None,
                logy: bool = False, ax=None):
    """Plot the named keys of a list of log records against `x` (missing values skipped)."""

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.2))
    for key in keys:
        pts = [(r[x], r[key]) for r in rows if key in r and x in r]
        if pts:
            xs, ys = zip(*pts)
            ax.plot(xs, ys, label=key)
    ax.set_xlabel(x)
    if logy:
        ax.set_yscale("log")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    ax.figure.tight_layout()
    return ax.figure
