"""Exercises and their worked solutions (notebooks/solutions/).

Conventions, checked here:

* Every numbered course notebook in `WITH_SOLUTIONS` ends with a markdown cell that starts with
  "## Exercises" (two or three exercises) and links its solutions notebook.
* The solutions of `notebooks/NN_topic.ipynb` are `notebooks/solutions/NN_topic_solutions.ipynb`.
* A solutions notebook has **no `parameters` cell**: it is not part of the papermill pipeline
  (`clip2gan.pipeline.list_notebooks` lists only `notebooks/NN_*.ipynb`, so the parameters checks of
  tests/test_notebooks.py never see it). It runs at one fixed small size, in the toy world, on a CPU,
  in well under a minute; `pytest notebooks --nbval-lax` (`make test`) executes it.
* Its first code cell is the generated Colab install cell (`clip2gan.colab.install_cell()`), like every
  other notebook's; `python -m clip2gan.colab` rewrites it.
* It checks every answer against the package with `assert`s, so a wrong solution fails the test run
  instead of passing silently.
* Its committed outputs are as small as a course notebook's (tests/test_notebooks.py checks both: at most
  two figures of ≤ 150 kB, no long text output; `python -m clip2gan.pipeline --strip notebooks/solutions/`).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from clip2gan import colab
from clip2gan.pipeline import NOTEBOOK_DIR, list_notebooks

SOLUTIONS_DIR = NOTEBOOK_DIR / "solutions"
# The course notebooks that end with exercises and have worked solutions: all of 01-08.
# 01-04 were written with this test; 05-08 by the engineer of those notebooks.
WITH_SOLUTIONS = ("01", "02", "03", "04", "05", "06", "07", "08")
SOLUTIONS = sorted(SOLUTIONS_DIR.glob("*.ipynb"))


def _numbered(number: str) -> Path:
    found = [p for p in list_notebooks() if p.name[:2] == number]
    assert len(found) == 1, f"expected one notebooks/{number}_*.ipynb, found {[p.name for p in found]}"
    return found[0]


def _solutions_path(notebook: Path) -> Path:
    return SOLUTIONS_DIR / f"{notebook.stem}_solutions.ipynb"


@pytest.mark.parametrize("number", WITH_SOLUTIONS)
def test_notebook_ends_with_exercises_and_has_solutions(number):
    path = _numbered(number)
    nb = nbformat.read(str(path), as_version=4)
    last = nb.cells[-1]
    assert last.cell_type == "markdown" and last.source.lstrip().startswith("## Exercises"), \
        f"{path.name} should end with a markdown cell '## Exercises'"
    exercises = re.findall(r"^\s*\d+\.\s", last.source, flags=re.M)
    assert 2 <= len(exercises) <= 3, f"{path.name}: two or three numbered exercises, found {len(exercises)}"
    solutions = _solutions_path(path)
    assert solutions.is_file(), f"no worked solutions for {path.name}: expected {solutions.relative_to(NOTEBOOK_DIR)}"
    assert f"solutions/{solutions.name}" in last.source, f"{path.name}'s exercises should link {solutions.name}"


def test_every_solutions_notebook_belongs_to_a_course_notebook():
    stems = {p.stem for p in list_notebooks()}
    for path in SOLUTIONS:
        assert path.name.endswith("_solutions.ipynb"), path.name
        assert path.name[: -len("_solutions.ipynb")] in stems, f"{path.name} names no notebooks/NN_*.ipynb"
        assert path.name[:2] in WITH_SOLUTIONS, f"{path.name}: add its number to WITH_SOLUTIONS"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solutions_conventions(path):
    nb = nbformat.read(str(path), as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    assert first.source == colab.install_cell(), "first code cell: run `python -m clip2gan.colab`"
    assert not [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])], \
        "solutions notebooks have no parameters cell (they are not part of the pipeline)"
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert re.search(r"^\s*assert\b", code, flags=re.M), "a solution checks itself with assert"
    assert re.search(r"^\s*(from|import) clip2gan\b", code, flags=re.M), "a solution is checked against clip2gan"
    assert "google.colab" not in code.replace(first.source, ""), "only the install cell knows about Colab"
