"""Notebook conventions (CONTRIBUTING.md): parameters cell, Colab cell, CI defaults, small outputs.

These checks cover the numbered course notebooks, `notebooks/NN_*.ipynb` (`clip2gan.pipeline.list_notebooks`).
The worked solutions in `notebooks/solutions/` are not among them: they are not part of the papermill
pipeline and have no `parameters` cell by design (they run at one fixed small size in the toy world).
Their own conventions — the same Colab install cell, `assert`s against the package, the same limits on
committed outputs, one solutions notebook per notebook with exercises — are checked in
tests/test_solutions.py; `pytest notebooks --nbval-lax` runs them with the course notebooks.
"""

from __future__ import annotations

import base64
import json

import nbformat
import pytest

from clip2gan import colab
from clip2gan.pipeline import NOTEBOOK_DIR, list_notebooks, load_params, notebook_parameters

NOTEBOOKS = list_notebooks()
REQUIRED = {"profile", "device", "seed", "out_dir"}


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no numbered notebook"
    assert NOTEBOOKS[0].name == "00_setup.ipynb"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell(path):
    nb = nbformat.read(str(path), as_version=4)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    params = notebook_parameters(path)
    assert REQUIRED <= set(params), f"parameters cell lacks {REQUIRED - set(params)}"
    assert params["profile"] == "toyfaces"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_defaults_are_the_ci_size(path):
    """The parameters cell *is* the CI size: every value ci.yaml sets for this notebook must agree."""
    ci = load_params("ci")
    wanted = {**(ci.get("common") or {}), **(ci.get(path.name[:2]) or {})}
    declared = notebook_parameters(path)
    for name, value in wanted.items():
        if name in declared and name != "device":  # device: "auto" in the notebook resolves to cpu in CI
            assert declared[name] == value, f"{name}: notebook {declared[name]!r} vs ci.yaml {value!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_installs_on_colab_only(path):
    nb = nbformat.read(str(path), as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert '"google.colab" in sys.modules' in first.source
    # pinned: the install checks out the release tag of the package version the notebook belongs to
    import clip2gan

    assert f'"v{clip2gan.__version__}"' in first.source and "checkout -q {REV}" in first.source
    # generated from pyproject.toml's one repository URL, with Colab's widget manager switched on
    assert first.source == colab.install_cell() and "enable_custom_widget_manager()" in first.source


def test_colab_cells_and_badges_are_generated_from_the_one_url():
    assert colab.repository_url() in colab.install_cell()
    assert colab.sync() == []  # `python -m clip2gan.colab` writes them; nothing is out of date
    readme = (colab.REPO_ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert colab.badge(path.name) in readme, path.name
    # the notebooks' relative paths (../results, ../outputs) hold on Colab: the cell enters the clone's notebooks/
    assert "%cd clip2gan/notebooks" in colab.install_cell()


@pytest.mark.parametrize("path", NOTEBOOKS + sorted((NOTEBOOK_DIR / "solutions").glob("*.ipynb")),
                         ids=lambda p: p.name)
def test_committed_outputs_are_small(path):
    """At most two figures of ≤ 150 kB each and no long text outputs, in the course and solutions notebooks
    alike (run `make strip`)."""
    assert path.stat().st_size < 600_000
    nb = json.loads(path.read_text())
    images = 0
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            png = out.get("data", {}).get("image/png")
            if png:
                images += 1
                assert len(base64.b64decode(png)) <= 150_000
            assert len("".join(out.get("text", ""))) <= 4100
    assert images <= 2


def test_every_notebook_calls_colab_defaults():
    # On Colab every notebook selects the GPU (and, where it can, the paper profile) right after its
    # parameters; 05-08 pass paper_profile=False (no downloadable paper-profile M exists)
    for path in NOTEBOOKS:
        nb = nbformat.read(str(path), as_version=4)
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "colab_defaults(profile, device" in code, path.name
        if path.name[:2] in ("05", "06", "07", "08"):
            assert "paper_profile=False" in code, path.name
