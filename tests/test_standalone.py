"""The course stands alone: nothing a reader sees points to documents or trackers outside the repository.

Notebooks, the package's docstrings and comments, README, CONTRIBUTING and the docs and results
folders may cite the paper, published work and this repository's own files (docs/design.md for the
paper's ambiguities and the decisions taken), never a design document, an issue tracker or a folder
the reader does not have.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
OUTSIDE = re.compile(
    r"\bDESIGN\b"                     # the project's internal design document
    r"|\bambiguity \d"                # its numbered list of the paper's ambiguities
    r"|\bissues? ?#\d|\(#\d+\)|\bissue \d+\b"  # the issue tracker
    r"|\.\./shared",                  # the folder beside the checkout
)


def _reader_files() -> list[Path]:
    files = sorted(ROOT.glob("notebooks/**/*.ipynb")) + sorted(ROOT.glob("clip2gan/**/*.py"))
    files += [ROOT / "README.md", ROOT / "CONTRIBUTING.md"]
    files += sorted(ROOT.glob("docs/**/*.md")) + sorted(ROOT.glob("docs/**/*.py")) + sorted(ROOT.glob("results/**/*.md"))
    files += sorted(ROOT.glob("notebooks/params/*.yaml"))  # their comments are read beside the notebooks
    return [f for f in files if f.is_file() and ".ipynb_checkpoints" not in f.parts]


def _texts(path: Path) -> list[tuple[str, str]]:
    if path.suffix == ".ipynb":
        nb = nbformat.read(str(path), as_version=4)
        out = []
        for i, cell in enumerate(nb.cells):
            out.append((f"cell {i}", cell.source))
            for o in cell.get("outputs", []):
                out.append((f"cell {i} output", "".join(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))))
        return out
    return [("", path.read_text())]


@pytest.mark.parametrize("path", _reader_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_reference_outside_the_repository(path):
    hits = [f"{where}: ...{text[max(0, m.start() - 40):m.end() + 40]!r}..."
            for where, text in _texts(path) for m in OUTSIDE.finditer(text)]
    assert not hits, "\n".join(hits)


def test_the_pattern_catches_what_it_should():
    for bad in ("see DESIGN §1", "ambiguity 4", "issue #6", "(#5)", "the issue 5 bar", "../shared/paper"):
        assert OUTSIDE.search(bad), bad
    for fine in ("docs/design.md#modality-gap", "Table 4", "eq. 11", "an issue with the data"):
        assert not OUTSIDE.search(fine), fine
