"""Code that a notebook runs inline (not from the package) does what its prose says.

02_stylegan2_wplus.ipynb reads the w+ row layout off the synthesis network (which block and layer reads
each row, and the coarse / middle / fine groups) with a loop in a cell. These tests run that cell's
own source on small generators and check it against how `SynthesisNetwork.forward` really slices `ws`,
against StyleGAN's convention for 1024 px (coarse rows 0-3, middle 4-7, fine 8-17), and that its groups
are the package's `clip2gan.edit.layer_groups` (the rows edits use).
"""

from __future__ import annotations

import nbformat
import pytest

from clip2gan.edit import layer_groups
from clip2gan.pipeline import NOTEBOOK_DIR
from clip2gan.stylegan2 import Generator, num_ws_for, skip_init

_MARKER = "row_res, row_layers, w_idx = [], [], 0"


def _layout_cell() -> str:
    nb = nbformat.read(str(NOTEBOOK_DIR / "02_stylegan2_wplus.ipynb"), as_version=4)
    sources = [c.source for c in nb.cells if c.cell_type == "code" and _MARKER in c.source]
    assert len(sources) == 1, "02_stylegan2_wplus.ipynb should have exactly one row-layout cell"
    return sources[0]


def _run_layout(resolution: int) -> dict:
    # 4 channels everywhere (channel_base large, channel_max 4): builds a 1024 px G in well under a second.
    with skip_init():
        G = Generator(z_dim=4, c_dim=0, w_dim=4, img_resolution=resolution, img_channels=3,
                      synthesis_kwargs=dict(channel_base=1 << 14, channel_max=4))
    namespace = {"G": G, "layer_groups": layer_groups}
    exec(compile(_layout_cell(), "02_stylegan2_wplus.ipynb:row-layout", "exec"), namespace)  # prints the table
    return namespace


@pytest.mark.parametrize("resolution", [32, 64, 256, 1024])
def test_row_layout_matches_how_synthesis_slices_ws(resolution, capsys):
    ns = _run_layout(resolution)
    G, row_layers = ns["G"], ns["row_layers"]
    assert len(row_layers) == G.num_ws == num_ws_for(resolution)
    # SynthesisNetwork.forward: block b{res} reads rows [w_idx, w_idx + num_conv + num_torgb).
    w_idx = 0
    for res in G.synthesis.block_resolutions:
        block = getattr(G.synthesis, f"b{res}")
        expected = set(range(w_idx, w_idx + block.num_conv + block.num_torgb))
        listed = {i for i, layers in enumerate(row_layers) if any(name.startswith(f"b{res}.") for name in layers)}
        assert listed == expected, f"b{res}"
        w_idx += block.num_conv
    groups = ns["groups"]
    assert sorted(i for rows in groups.values() for i in rows) == list(range(G.num_ws))  # a partition
    assert f"row {G.num_ws - 1:2d}" in capsys.readouterr().out


def test_groups_follow_stylegan_convention():
    # StyleGAN's split by resolution at 1024 px: coarse 4-8 px, middle 16-32 px, fine 64 px and up
    assert _run_layout(1024)["groups"] == {"coarse": [0, 1, 2, 3], "middle": [4, 5, 6, 7], "fine": list(range(8, 18))}
    # the 32 px toy G: by level (4 px / between / 32 px), as edits split it
    assert _run_layout(32)["groups"] == {"coarse": [0, 1], "middle": [2, 3, 4, 5], "fine": [6, 7]}


@pytest.mark.parametrize("resolution", [16, 32, 64, 256, 1024])
def test_notebook_groups_are_the_ones_edits_use(resolution):
    """Notebook 02 shows the rows that notebook 07's `layers=` and the editing app edit: one function."""
    ns = _run_layout(resolution)
    assert ns["groups"] == {k: list(v) for k, v in layer_groups(ns["G"].num_ws).items()}
    # each group's rows are read by blocks no finer than the next group's
    res = ns["row_res"]
    assert max(res[i] for i in ns["groups"]["coarse"]) <= min(res[i] for i in ns["groups"]["fine"])
