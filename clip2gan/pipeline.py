"""Run the numbered notebooks as a papermill pipeline (introduced in 00_setup.ipynb).

    python -m clip2gan.pipeline [--profile toyfaces] [--params ci|demo|full|FILE.yaml]
                                [--only 03,05] [--out outputs/]

Each notebook `notebooks/NN_name.ipynb` runs in order with the kernel `python3`, its `parameters`
cell overridden by the chosen parameters file (`notebooks/params/<size>.yaml`): the file's `common`
section applies to every notebook, and a section named by a notebook's number (`"03"`) adds to or
overrides it. Only the names a notebook declares in its `parameters` cell are passed to it.
Executed notebooks go to `<out>/<profile>/`, figures to `<out>/<profile>/figures/`. The run stops
at the first failing notebook, naming it and the failing cell, and ends with a summary table.

A notebook written for some toy worlds only lists them in its metadata, `{"clip2gan": {"toy_worlds": ["toyfaces"]}}`
(`notebook_toy_worlds`); with another toy profile (`--profile toypets`) it is skipped, and the summary says why.
The paper's profiles (ffhq, ...) are not affected, and a notebook without that entry runs under every profile.

`python -m clip2gan.pipeline --strip notebooks/` removes large outputs from committed notebooks.
"""

from __future__ import annotations

import argparse
import ast
import base64
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import papermill
import yaml
from papermill.exceptions import PapermillExecutionError

from clip2gan.cli import add_config_args, config_from_args, option
from clip2gan.profiles import PROFILES

__all__ = ["NOTEBOOK_DIR", "PARAMS_DIR", "list_notebooks", "load_params", "notebook_parameters", "notebook_toy_worlds",
           "run_pipeline", "strip_notebook", "PipelineError", "main"]

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
PARAMS_DIR = NOTEBOOK_DIR / "params"
KERNEL = "python3"


class PipelineError(RuntimeError):
    """Bad arguments (unknown profile, parameters or notebook) or a failing notebook."""


@dataclass
class Result:
    notebook: str
    seconds: float
    status: str
    output: Path | None = None
    detail: str = ""


def list_notebooks(folder: Path | None = None) -> list[Path]:
    """The numbered notebooks `NN_*.ipynb` in order (default: the repository's `notebooks/`)."""
    return sorted(Path(folder or NOTEBOOK_DIR).glob("[0-9][0-9]_*.ipynb"))


def load_params(name_or_path: str) -> dict[str, Any]:
    """Load a parameters file by size name (`ci`, `demo`, `full`) or path."""
    path = Path(name_or_path)
    if not path.suffix:
        path = PARAMS_DIR / f"{name_or_path}.yaml"
    if not path.is_file():
        sizes = ", ".join(sorted(p.stem for p in PARAMS_DIR.glob("*.yaml")))
        raise PipelineError(f"unknown parameters '{name_or_path}': no file {path}. Sizes available: {sizes}.")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise PipelineError(f"{path} must hold a mapping (common: ..., '03': ...)")
    return data


def notebook_parameters(path: Path) -> dict[str, Any]:
    """The names and default values (Python literals, evaluated) declared in a `parameters` cell."""

    values = {}
    for name, spec in papermill.inspect_notebook(str(path)).items():
        try:
            values[name] = ast.literal_eval(spec["default"])
        except (ValueError, SyntaxError):
            values[name] = spec["default"]  # an expression: kept as its source text
    return values


def notebook_toy_worlds(path: Path) -> list[str] | None:
    """The toy-world profiles a notebook is written for (its metadata's `clip2gan.toy_worlds`), None when it runs in
    any (00_setup.ipynb)."""
    worlds = nbformat.read(str(path), as_version=4).metadata.get("clip2gan", {}).get("toy_worlds")
    wrong = [w for w in worlds or () if w not in PROFILES or not PROFILES[w].toy_world]
    if wrong:
        raise PipelineError(f"{path.name} lists {wrong} as toy worlds in its metadata; toy worlds: "
                            f"{', '.join(p for p, v in PROFILES.items() if v.toy_world)}")
    return list(worlds) if worlds is not None else None


def params_for(notebook: Path, params: dict[str, Any], profile: str, out_dir: Path) -> dict[str, Any]:
    number = notebook.name[:2]
    merged = dict(params.get("common", {}) or {})
    merged.update(params.get(number, {}) or {})
    merged.update(profile=profile, out_dir=str(out_dir / "figures"))
    declared = notebook_parameters(notebook)
    return {k: v for k, v in merged.items() if k in declared}


def _select(notebooks: list[Path], only: str | None) -> list[Path]:
    if not only:
        return notebooks
    wanted = [w.strip() for w in only.split(",") if w.strip()]
    by_number = {p.name[:2]: p for p in notebooks}
    unknown = [w for w in wanted if w.zfill(2) not in by_number]
    if unknown:
        raise PipelineError(f"unknown notebook(s) {unknown}; available: {', '.join(sorted(by_number))}")
    return [by_number[w.zfill(2)] for w in wanted]


def run_pipeline(profile: str = "toyfaces", params: str = "ci", only: str | None = None,
                 out: str | Path = "outputs", log=print) -> list[Result]:
    """Execute the notebooks; raises `PipelineError` at the first failure (after logging the summary)."""
    if profile not in PROFILES:
        raise PipelineError(f"unknown profile '{profile}'; choose one of {', '.join(PROFILES)}")
    values = load_params(params)
    notebooks = _select(list_notebooks(), only)
    if not notebooks:
        raise PipelineError(f"no numbered notebooks found in {NOTEBOOK_DIR}")
    out_dir = Path(out).resolve() / profile
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    log(f"clip2gan pipeline: profile={profile} params={params} → {out_dir}")
    for nb in notebooks:
        target = out_dir / nb.name
        declared = notebook_toy_worlds(nb)
        if declared is not None and PROFILES[profile].toy_world and profile not in declared:
            why = f"teaches {', '.join(declared)} only"
            results.append(Result(nb.name, 0.0, "skipped", None, why))
            log(f"  – {nb.name:<32} {'':>7}    skipped: {why}")
            continue
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(nb), str(target), parameters=params_for(nb, values, profile, out_dir),
                kernel_name=KERNEL, cwd=str(NOTEBOOK_DIR), progress_bar=False, log_output=False,
            )
        except PapermillExecutionError as err:
            seconds = time.perf_counter() - start
            detail = f"cell {err.exec_count or err.cell_index}: {err.ename}: {err.evalue}"
            results.append(Result(nb.name, seconds, "FAILED", target, detail))
            log(f"  ✗ {nb.name:<32} {seconds:7.1f} s  {detail}")
            log(summary_table(results))
            raise PipelineError(f"{nb.name} failed at {detail} (executed copy: {target})") from None
        seconds = time.perf_counter() - start
        results.append(Result(nb.name, seconds, "ok", target))
        log(f"  ✓ {nb.name:<32} {seconds:7.1f} s")
    log(summary_table(results))
    log(f"executed notebooks: {out_dir}\nfigures:            {out_dir / 'figures'}")
    return results


def summary_table(results: list[Result]) -> str:
    lines = ["", f"{'notebook':<34}{'status':<8}{'seconds':>9}", "-" * 51]
    lines += [f"{r.notebook:<34}{r.status:<8}{r.seconds:9.1f}" for r in results]
    total = sum(r.seconds for r in results)
    ok = sum(r.status == "ok" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    ran = len(results) - skipped
    lines += ["-" * 51, f"{ok} of {ran} notebooks ok in {total:.1f} s"
              + (f" ({skipped} skipped: they teach another world)" if skipped else "")]
    return "\n".join(lines)


# -- keeping committed notebooks small ---------------------------------------------------------

def strip_notebook(path: Path, keep_images: int = 2, max_text: int = 4000, max_image_bytes: int = 150_000) -> bool:
    """Strip a notebook in place: metadata noise removed, long text outputs cut, at most `keep_images`
    images (each ≤ `max_image_bytes`) kept. Returns True if it changed.

    A cell that keeps outputs keeps its execution count: nbval compares outputs only of cells with a
    count and fails on a cell that has outputs but none ("Unrun reference cell has outputs"). A cell
    left without outputs loses its count."""

    nb = nbformat.read(str(path), as_version=4)
    before = nbformat.writes(nb)
    images = 0
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            png = data.get("image/png")
            if png is not None:
                size = len(base64.b64decode(png))
                if images >= keep_images or size > max_image_bytes:
                    continue
                images += 1
                output["data"] = {k: v for k, v in data.items() if k in ("image/png", "text/plain")}
            if "application/vnd.jupyter.widget-view+json" in data:
                continue
            text = output.get("text")
            if isinstance(text, str) and len(text) > max_text:
                output["text"] = text[:max_text] + "\n… (output cut)\n"
            kept.append(output)
        cell.outputs = kept
        if not kept:
            cell.execution_count = None
    nb.metadata.pop("papermill", None)
    nb.metadata.pop("widgets", None)
    after = nbformat.writes(nb)
    if after != before:
        path.write_text(after + ("" if after.endswith("\n") else "\n"))
        return True
    return False


@dataclass
class PipelineConfig:
    """The flags of `python -m clip2gan.pipeline`."""

    profile: str = option("toyfaces", "the world the notebooks run in", choices=tuple(PROFILES))
    params: str = option("ci", "parameters: ci, demo, full or a path to a YAML file")
    only: str | None = option(None, "comma-separated notebook numbers, e.g. 03,05 (default: all)")
    out: str = option("outputs", "folder for the executed notebooks (one subfolder per profile)")
    strip: str | None = option(None, "strip large outputs from the notebooks in this folder, then exit")


def main(argv: list[str] | None = None) -> int:
    """`python -m clip2gan.pipeline`: run the notebooks with papermill, or strip their outputs."""
    parser = argparse.ArgumentParser(prog="python -m clip2gan.pipeline", description=__doc__.split("\n")[0])
    args = config_from_args(PipelineConfig, add_config_args(parser, PipelineConfig).parse_args(argv))
    if args.strip:
        changed = [p.name for p in list_notebooks(Path(args.strip)) if strip_notebook(p)]
        print(f"stripped {len(changed)} notebook(s): {', '.join(changed) or '-'}")
        return 0
    try:
        run_pipeline(args.profile, args.params, args.only, args.out)
    except PipelineError as err:
        print(f"clip2gan pipeline: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
