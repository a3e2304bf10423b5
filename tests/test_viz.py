"""viz: conversions and grids (pixel-exact on tiny inputs)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from PIL import Image

from clip2gan.viz import make_grid, plot_curves, read_jsonl, save_grid, show_grid, to_uint8


def test_to_uint8_range_and_layout():
    x = torch.tensor([-1.0, 0.0, 1.0, 5.0]).view(1, 1, 2, 2).expand(1, 3, 2, 2)
    out = to_uint8(x)
    assert out.shape == (1, 2, 2, 3) and out.dtype == np.uint8
    assert out[0, :, :, 0].tolist() == [[0, 128], [255, 255]]
    with pytest.raises(ValueError, match="expected images"):
        to_uint8(torch.zeros(2, 4, 4))


def test_grid_places_tiles(tmp_path):
    imgs = torch.stack([torch.full((3, 4, 4), v) for v in (-1.0, 1.0, -1.0)])  # 4 px tiles: exact positions
    grid = make_grid(imgs, nrow=2, pad=1)
    assert grid.shape == (11, 11, 3)
    assert grid[1, 1, 0] == 0 and grid[1, 6, 0] == 255 and grid[6, 1, 0] == 0 and grid[6, 6, 0] == 255  # empty slot
    path = save_grid(imgs, tmp_path / "g.png", nrow=2, upscale=2)
    assert np.asarray(Image.open(path)).shape == (22, 22, 3)


def test_figures_and_logs(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.0}\n{"step": 3, "lo')  # last line cut by a kill
    rows = read_jsonl(log)
    assert [r["step"] for r in rows] == [1, 2]
    fig = plot_curves(rows, ["loss"])
    assert fig.axes[0].lines[0].get_ydata().tolist() == [2.0, 1.0]
    fig = show_grid(torch.zeros(3, 3, 4, 4), nrow=2, titles=["a", "b", "c"])
    assert len(fig.axes) == 4
