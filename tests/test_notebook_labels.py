"""What a notebook calls "the paper's rule" is computed by a model whose method is 'paper'.

Notebooks 06 and 07 compare two models, `paper = CLIP2GAN.from_pretrained(..., method="paper")` and
`bridged = CLIP2GAN.from_pretrained(..., method="bridged")`. A label that says "paper" over numbers made
by the bridged model is the mistake these tests are written to catch (it happened: a paper-rule edit on the
bridged model used to read the corrected text feature). The checks, each of which fails on such a mistake:

1. `rule`, the notebooks' one labelling function, is run on tiny models of each method: a paper model is
   labelled exactly "the paper's rule (method='paper')", a bridged or custom model never mentions the paper.
2. The names mean what they say: the notebooks bind `paper` with `method="paper"` and `bridged` with
   `method="bridged"`, and the single-method `model` is picked by the `method` parameter.
3. No hand-written paper label: outside `rule`, no string literal in a code cell says "paper's rule",
   "paper rule", "method='paper'" or starts with "paper:" / "paper (" — so every such label comes from
   `rule(m)` applied to a model, and `rule` reads the model's own `method`.
4. The paper's rules are computed by the paper's model: every call that asks for a paper rule itself
   (`mode="paper"`, `correction=False`) is made on `paper`, and every (model, space, mode) tuple pairs the mode
   'paper' with `paper` and 'neighbours' with `bridged`.
5. Every figure title in notebooks 05-07 names the size it was made at (`run_size`, read from the parameters),
   and in 06-07 the method (`rule(...)` or the word "method").

The checks parse the notebooks (no execution beyond `rule`), so they run in a second.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest
import torch
from tiny_editing import tiny_model
from tiny_world import RES

from clip2gan.modality_gap import feature_bank
from clip2gan.model import CLIP2GAN
from clip2gan.pipeline import load_params, notebook_parameters
from clip2gan.toy.faces import ToyFaces

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
COMPARED = ["06_generation.ipynb", "07_editing.ipynb"]
# notebooks that show both methods side by side without a single-method `model` (their labels are still rule(m))
LABELLED = [*COMPARED, "11_other_generators.ipynb", "12_other_worlds.ipynb"]
TITLED = ["05_training.ipynb", *LABELLED]
PAPER_LABEL = "the paper's rule (method='paper')"
HAND_WRITTEN = re.compile(r"paper's rule|paper rule|method=['\"]paper['\"]|^paper ?[:(]", re.IGNORECASE)
MODEL_FIRST = {"edit_image", "edit_scores", "edit_pairs", "text_direction", "BetaStrip", "generate", "edit_latent_of"}


def _code_cells(name: str) -> list[tuple[int, ast.Module]]:
    nb = nbformat.read(str(NOTEBOOKS / name), as_version=4)
    cells = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or "google.colab" in cell.source:
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("!", "%")))
        cells.append((i, ast.parse(source)))
    return cells


def _rule(name: str):
    """The notebook's own `rule` function, compiled from its source."""
    for _, tree in _code_cells(name):
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "rule":
                namespace: dict = {}
                exec(compile(ast.Module(body=[node], type_ignores=[]), name, "exec"), namespace)
                return namespace["rule"], node
    raise AssertionError(f"{name} defines no `rule(m)` labelling function")


@pytest.fixture(scope="module")
def tiny_models():
    m = tiny_model()
    bank = feature_bank(m.clip, ToyFaces(16, seed=3, resolution=RES), n=16)
    make = lambda **kw: CLIP2GAN(m.clip, m.mapping, m.generator, feature_bank=bank, **kw).eval()  # noqa: E731
    return {"paper": make(method="paper"), "bridged": make(method="bridged"),
            "custom": make(text_correction="recentre", edit_mode="paper")}


@pytest.mark.parametrize("name", LABELLED)
def test_rule_labels_each_model_by_its_method(name, tiny_models):
    rule, _ = _rule(name)
    assert [m.method for m in tiny_models.values()] == ["paper", "bridged", "custom"]
    assert rule(tiny_models["paper"]) == PAPER_LABEL
    for key in ("bridged", "custom"):
        label = rule(tiny_models[key])
        assert "paper" not in label.lower() and f"method={key!r}" in label, label


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


@pytest.mark.parametrize("name", COMPARED)
def test_models_are_bound_by_their_method(name):
    bound = {}
    for _, tree in _code_cells(name):
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                bound.setdefault(node.targets[0].id, []).append(node.value)
    for var in ("paper", "bridged"):
        calls = [v for v in bound.get(var, []) if isinstance(v, ast.Call)]
        assert calls, f"{name}: `{var}` is never bound to a model"
        for call in calls:
            method = _keyword(call, "method")
            assert isinstance(method, ast.Constant) and method.value == var, \
                f"{name}: `{var} = {ast.unparse(call)}` is not a method={var!r} model"
    model = bound.get("model", [])
    assert model and all("method" in {n.id for n in ast.walk(v) if isinstance(n, ast.Name)} for v in model), \
        f"{name}: `model` must be picked by the `method` parameter"
    assert notebook_parameters(NOTEBOOKS / name)["method"] in ("paper", "bridged")
    assert "method" in (load_params("ci").get(name[:2]) or {}), f"params/ci.yaml's {name[:2]!r} lacks `method`"


@pytest.mark.parametrize("name", LABELLED)
def test_no_hand_written_paper_label(name):
    hits = []
    for i, tree in _code_cells(name):
        inside = {id(n) for d in ast.walk(tree) if isinstance(d, ast.FunctionDef) and d.name == "rule" for n in ast.walk(d)}
        hits += [f"cell {i}: {node.value!r}" for node in ast.walk(tree)
                 if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside
                 and HAND_WRITTEN.search(node.value)]
    assert not hits, f"{name}: labels written by hand instead of rule(m):\n" + "\n".join(hits)


def _model_of(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute) and func.attr in ("generate", "edit") and isinstance(func.value, ast.Name):
        return func.value.id
    fname = func.id if isinstance(func, ast.Name) else None
    if fname in MODEL_FIRST and call.args and isinstance(call.args[0], ast.Name):
        return call.args[0].id
    return None


@pytest.mark.parametrize("name", COMPARED)
def test_paper_rules_are_computed_by_the_paper_model(name):
    wrong = []
    for i, tree in _code_cells(name):
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                mode, correction = _keyword(node, "mode"), _keyword(node, "correction")
                asks_paper = (isinstance(mode, ast.Constant) and mode.value == "paper") or \
                             (isinstance(correction, ast.Constant) and correction.value is False)
                who = _model_of(node)
                if asks_paper and who != "paper":
                    wrong.append(f"cell {i}: {ast.unparse(node)[:90]}")
            if isinstance(node, ast.Tuple):
                names = [e.id for e in node.elts if isinstance(e, ast.Name) and e.id in ("paper", "bridged", "model")]
                modes = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in ("paper", "neighbours")]
                if names and modes and not (modes[-1] == "paper" and names[0] == "paper"
                                            or modes[-1] == "neighbours" and names[0] == "bridged"):
                    wrong.append(f"cell {i}: {ast.unparse(node)}")
    assert not wrong, f"{name}: a paper rule computed by another model than `paper`:\n" + "\n".join(wrong)


def _titles(tree: ast.AST) -> tuple[list[ast.AST], list[ast.AST]]:
    """(`title=` arguments: one per figure, panel titles `set_title` / `suptitle`) of a cell."""
    keyword, panels = [], []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            title = _keyword(node, "title")
            if title is not None:
                keyword.append(title)
            if isinstance(node.func, ast.Attribute) and node.func.attr in ("set_title", "suptitle") and node.args:
                panels.append(node.args[0])
    return keyword, panels


@pytest.mark.parametrize("name", TITLED)
def test_figure_titles_name_the_size_and_the_method(name):
    """Every `title=` names both; a figure titled with set_title / suptitle needs one such title (its panels
    may carry their own short labels)."""
    def names_both(node):
        text = ast.unparse(node)
        return "run_size" in text and (name not in COMPARED or "rule(" in text or "method" in text)

    missing = []
    for i, tree in _code_cells(name):
        keyword, panels = _titles(tree)
        missing += [f"cell {i}: {ast.unparse(t)[:100]}" for t in keyword if not names_both(t)]
        if panels and not keyword and not any(names_both(t) for t in panels):
            missing.append(f"cell {i}: {', '.join(ast.unparse(t)[:60] for t in panels)}")
    assert not missing, f"{name}: figure titles without their size (run_size) or method:\n" + "\n".join(missing)


def test_the_checks_catch_what_they_should():
    # the labels notebooks 06 and 07 carried before the method switch
    for bad in ("paper: + N(1, 0.36)", "paper (no correction)", "paper rule", "w+ vs CLIP space (paper rule)",
                "the paper's rule", "method='paper'"):
        assert HAND_WRITTEN.search(bad), bad
    for fine in ("β (shaded: the paper's range)", "+ N(1, 0.36) as written", "the paper: 100 epochs"):
        assert not HAND_WRITTEN.search(fine), fine
    # a paper-mode edit on the bridged model is refused, on the paper model accepted
    tree = ast.parse('edit_scores(bridged, c, x, t, y, mode="paper")\nedit_scores(paper, c, x, t, y, mode="paper")')
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert [_model_of(c) for c in calls] == ["bridged", "paper"]
    assert torch.__version__  # the tiny models above need torch; imported at module top for them
