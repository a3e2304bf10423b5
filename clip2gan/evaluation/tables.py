"""Sweep results as data and text: the CSV, the paper's tables, the verdicts, the figure (08_evaluation.ipynb).

A sweep (`clip2gan.evaluation.sweeps`) writes one row per (variant, evaluation setting) with the
columns `COLUMNS` (`write_csv`, `read_csv`). `paper_tables` lays the rows out as the paper's Tables 1,
3, 4, 5 and 6; `verdicts` says for each claim the sweep measures whether it holds here, judged with
the comparisons of `clip2gan.evaluation.protocol`; `plot_sweep` draws the overview figure.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from clip2gan.checkpoint import atomic_write_text
from clip2gan.evaluation.protocol import binomial_se, compare_proportions, verdict

if TYPE_CHECKING:  # pyplot is imported when a figure is drawn, after the caller chose a backend (the command line: Agg)
    from matplotlib.figure import Figure

__all__ = ["COLUMNS", "write_csv", "read_csv", "format_table", "paper_tables", "verdicts", "plot_sweep",
           "METHOD_OF_SETTING", "PAPER_CLIP", "backbone_cells", "backbone_table", "backbone_verdicts", "plot_backbone"]

COLUMNS = [
    "size", "variant", "setting", "layers", "adv", "div", "correction", "edit_space", "edit_mode", "edit_images",
    "steps", "train_seconds", "eval_seconds",
    "fid", "fid_se", "lpips_ref", "lpips_div", "text_acc", "text_pairs", "rec_match",
    "edit_acc", "edit_acc_beta0", "edit_pres", "edit_fid", "edit_fid_se", "edit_lpips", "edit_n",
    "fid_clip", "fid_clip_se",
    "clip", "train_seed",
]




def write_csv(rows: Sequence[Mapping[str, Any]], path: str | Path, columns: Sequence[str] | None = None) -> Path:
    """Rows → CSV with `columns` (default the sweep's `COLUMNS`; floats rounded to 4 digits, missing values empty,
    other keys left out), written atomically (08_evaluation.ipynb). Every evaluation command writes its CSV with it."""
    columns = list(COLUMNS if columns is None else columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if k in columns})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, buf.getvalue())
    return path


def _parse(value: str) -> Any:
    if value == "":
        return None
    if value in ("True", "False"):
        return value == "True"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """A sweep CSV back as a list of dicts (numbers and booleans parsed, empty cells None) (08_evaluation.ipynb)."""
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _row(rows: Sequence[dict[str, Any]], variant: str, setting: str = "paper") -> dict[str, Any] | None:
    for r in rows:
        if r["variant"] == variant and r["setting"] == setting:
            return r
    return None


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool):
        return "✓" if value else "×"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]], title: str = "") -> str:
    """A plain-text table (columns padded to their widths; None and NaN as '–') (08_evaluation.ipynb)."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(header)]
    lines = [title] if title else []
    lines.append("  ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    return "\n".join(lines)


def _pm(row: dict[str, Any] | None, key: str) -> Any:
    """A FID with its bootstrap error bar as text ('812.4 ± 10.2'), or the bare value."""
    if not row or row.get(key) is None:
        return None
    se = row.get(f"{key}_se")
    return f"{row[key]:.1f} ± {se:.1f}" if se is not None else row[key]


def _nearest(rows: Sequence[dict[str, Any]], variant: str, key: str) -> Any:
    """A variant's metric under the 'nearest' setting (None, shown as '–', when not evaluated)."""
    r = _row(rows, variant, "nearest")
    return r.get(key) if r else None


def paper_tables(rows: Sequence[dict[str, Any]], backbone: Sequence[dict[str, Any]] | None = None) -> dict[str, str]:
    """Tables 1, 3, 4, 5 and 6 of the paper laid out with the toy metrics, as text (08_evaluation.ipynb).

    Each table keeps the paper's rows and columns (a row the toy world cannot produce shows '–' or is
    named as missing) and adds the toy world's ground-truth columns (attribute accuracy, diversity).
    backbone: the rows of `sweeps.run_backbone` (backbone.csv); with them Table 3 is the depth × CLIP grid
    under each method (`backbone_table`), without them the sweep's depth rows for its one CLIP.
    """
    base = _row(rows, "base") or {}
    tables = {}
    tables["1"] = format_table(
        ["Method", "FID (toy)", "LPIPS", "attr. acc.", "LPIPS div."],
        [["CLIP2GAN (ours, toy world)", _pm(base, "fid"), base.get("lpips_ref"), base.get("text_acc"), base.get("lpips_div")]],
        "Table 1 · text → image generation (the paper's other methods are not rebuilt here)")
    t3 = []
    for name in ("layers4", "layers8", "base"):
        r = _row(rows, name)
        if r:
            t3.append([r["layers"], "toy CLIP (ViT, 32 px)", _pm(r, "fid"), r.get("lpips_ref"), r.get("text_acc"),
                       r.get("rec_match"), _nearest(rows, name, "text_acc")])
    tables["3"] = format_table(["Layers", "Pre-trained CLIP", "FID (toy)", "LPIPS", "attr. acc.", "rec. match",
                                "attr. acc. (nearest)"], t3,
                               "Table 3 · depth of M (this sweep's one CLIP; the backbone axis: backbone.csv)")
    if backbone:
        tables["3"] = "\n\n".join(backbone_table(backbone, method) for method in ("paper", "bridged"))
    t4 = []
    for name in ("no_adv_div", "no_adv", "no_div", "base"):
        r = _row(rows, name)
        if r:
            t4.append([bool(r["adv"]), bool(r["div"]), _pm(r, "fid"), r.get("lpips_ref"), r.get("text_acc"), r.get("lpips_div"),
                       _nearest(rows, name, "text_acc"), _nearest(rows, name, "lpips_div")])
    tables["4"] = format_table(["L_adv", "L_div", "FID (toy)", "LPIPS", "attr. acc.", "LPIPS div.", "attr. acc. (nearest)",
                                "LPIPS div. (nearest)"], t4,
                               "Table 4 · objective ablation")
    t5 = []
    for setting, label in (("paper", "renders (in distribution)"), ("zoomed", "zoomed 1.25× (not in training data)")):
        r = _row(rows, "base", setting)
        if r:
            t5.append([label, _pm(r, "edit_fid"), r.get("edit_acc"), r.get("edit_acc_beta0"), r.get("edit_pres")])
    tables["5"] = format_table(["Images", "FID (toy) ↓", "edit acc. ↑", "acc. at β=0", "preserved ↑"], t5,
                               "Table 5 · editing at β = 1 (classifier-read accuracy replaces the user study)")
    t6 = [["DCGAN", "–", "–", "CLIP / GAN", "–", "–", "–"]]
    for setting, space in (("clip_space", "CLIP"), ("paper", "GAN (w+)")):
        r = _row(rows, "base", setting)
        if r:
            t6.append(["StyleGAN2 (toy)", _pm(base, "fid"), base.get("lpips_ref"), space, _pm(r, "edit_fid"),
                       r.get("edit_lpips"), r.get("edit_acc")])
    tables["6"] = format_table(["Model", "gen. FID", "gen. LPIPS", "edit space", "edit FID", "edit LPIPS", "edit acc."], t6,
                               "Table 6 · editing space (no DCGAN in this project)")
    amb = []
    for setting, label in (("paper", "paper: C_text(t) as is, n = M(t)"), ("recentre", "modality gap re-centred"),
                           ("nearest", "nearest image features (default)"),
                           ("directional", "directional n = M(t) − M(neutral)")):
        r = _row(rows, "base", setting)
        if r:
            amb.append([label, r.get("text_acc"), r.get("lpips_div"), r.get("edit_acc"), r.get("edit_pres")])
    tables["ambiguities"] = format_table(["Setting (base M)", "attr. acc.", "LPIPS div.", "edit acc.", "preserved"], amb,
                                         "Choices the paper leaves open at test time: the modality gap and the edit vector")
    return tables


def _compare(a: dict[str, Any], b: dict[str, Any], key: str, n_key: str) -> tuple[float, float]:
    """(a − b, 2 standard errors of the difference) of the proportion `key` of two rows, over `n_key` trials."""
    return compare_proportions(a[key], a.get(n_key) or 1, b[key], b.get(n_key) or 1)


def verdicts(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(paper claim, verdict, the numbers) for each claim the sweep measures (08_evaluation.ipynb).

    Each claim is a set of comparisons. A proportion (attribute or editing accuracy) counts only when
    the difference exceeds two binomial standard errors, an FID only beyond two bootstrap standard
    errors (`fid_with_se`; rows without `fid_se` use the direction alone), otherwise the comparison
    is undecided; LPIPS diversity has no error bar here, so its direction alone is used. The verdict
    ('holds here', 'partly holds', 'mixed', 'does not hold here', 'inconclusive': `protocol.verdict`) comes
    with the numbers it rests on.
    """
    base = _row(rows, "base")
    if base is None:
        return [("every claim", "not measured", "no 'base' row")]
    out: list[tuple[str, str, str]] = []

    def prop(a, b, key, n_key):
        """a's proportion higher than b's? (None: within 2 SE)."""
        d, margin = _compare(a, b, key, n_key)
        return (None if abs(d) <= margin else d > 0), f"{key} {a[key]:.3f} vs {b[key]:.3f} (±{margin:.3f})"

    def lower(a, b, key):
        """a's FID lower than b's? (None: within 2 bootstrap standard errors, when those are known)."""
        se_a, se_b = a.get(f"{key}_se"), b.get(f"{key}_se")
        if se_a is None or se_b is None:
            return a[key] < b[key], f"{key} {a[key]:.2f} vs {b[key]:.2f} (no error bar)"
        d, margin = a[key] - b[key], 2 * math.sqrt(se_a ** 2 + se_b ** 2)
        return (None if abs(d) <= margin else d < 0), f"{key} {a[key]:.2f} vs {b[key]:.2f} (±{margin:.2f})"

    def higher(a, b, key):
        return a[key] > b[key], f"{key} {a[key]:.3f} vs {b[key]:.3f}"

    def claim(text, comparisons):
        out.append((text, verdict([c[0] for c in comparisons]), "; ".join(c[1] for c in comparisons)))

    for name, layers in (("layers4", 4), ("layers8", 8)):
        other = _row(rows, name)
        if other is not None:
            claim(f"Table 3: 12 layers beat {layers}", [lower(base, other, "fid"), prop(base, other, "text_acc", "text_pairs")])
    for name, what in (("no_adv", "L_adv"), ("no_div", "L_div"), ("no_adv_div", "L_adv and L_div")):
        other = _row(rows, name)
        if other is not None:
            comps = [lower(base, other, "fid"), prop(base, other, "text_acc", "text_pairs")]
            if name != "no_adv":  # L_div's stated purpose: no "pattern convergence", i.e. diverse samples
                comps.append(higher(base, other, "lpips_div"))
            claim(f"Table 4: removing {what} hurts", comps)
    near = _row(rows, "base", "nearest")
    if near is not None:
        claim("Modality gap: bridging it (nearest image features) beats the bare text feature",
              [lower(near, base, "fid"), prop(near, base, "text_acc", "text_pairs")])
    clip_row = _row(rows, "base", "clip_space")
    if clip_row is not None:
        claim("Table 6: editing in w+ beats editing in CLIP space",
              [lower(base, clip_row, "edit_fid"), prop(base, clip_row, "edit_acc", "edit_n")])
    n = base["edit_n"]
    gain, margin = _compare(base, {**base, "edit_acc": base["edit_acc_beta0"]}, "edit_acc", "edit_n")
    claim("§4.4: β-editing changes the asked attribute and keeps the others",
          [(None if abs(gain) <= margin else gain > 0,
            f"edit_acc {base['edit_acc']:.3f} at β = 1 vs {base['edit_acc_beta0']:.3f} at β = 0 (±{margin:.3f}, {n} pairs)"),
           (base["edit_pres"] >= 0.9, f"preserved {base['edit_pres']:.3f} (bar: 0.9)")])
    zoomed = _row(rows, "base", "zoomed")
    if zoomed is not None:
        gain_z, margin_z = _compare(zoomed, {**zoomed, "edit_acc": zoomed["edit_acc_beta0"]}, "edit_acc", "edit_n")
        drop, margin_d = _compare(base, zoomed, "edit_acc", "edit_n")
        claim("Table 5: editing works on images outside the training set as on those inside",
              [(None if abs(gain_z) <= margin_z else gain_z > 0,
                f"zoomed: edit_acc {zoomed['edit_acc']:.3f} vs {zoomed['edit_acc_beta0']:.3f} at β = 0 (±{margin_z:.3f})"),
               (abs(drop) <= margin_d or drop < 0,  # no significant drop
                f"edit_acc {zoomed['edit_acc']:.3f} zoomed vs {base['edit_acc']:.3f} renders (±{margin_d:.3f})")])
    return out


def plot_sweep(rows: Sequence[dict[str, Any]]) -> Figure:
    """One figure: generation (FID, attribute accuracy, diversity) per variant, editing per setting of `base`
    (08_evaluation.ipynb)."""
    import matplotlib.pyplot as plt  # here, after the caller chose a backend (the command line: Agg)

    paper_rows = [r for r in rows if r["setting"] == "paper"]
    names = [r["variant"] for r in paper_rows]
    base_rows = [r for r in rows if r["variant"] == "base"]
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
    xs = np.arange(len(names))
    def err(r, key):
        """Error bars: the FID's bootstrap standard error, 2 binomial standard errors of an accuracy."""
        if key == "fid":
            return r.get("fid_se") or 0
        if key == "text_acc" and r.get("text_pairs"):
            return 2 * binomial_se(r["text_acc"], r["text_pairs"])
        return 0

    for ax, key, title in zip(axes[:3], ("fid", "text_acc", "lpips_div"),
                              ("FID in toy features ↓ (±1 s.e.)", "text → image attribute acc. ↑ (±2 s.e.)",
                               "LPIPS diversity ↑")):
        ax.bar(xs, [r.get(key) or 0 for r in paper_rows], yerr=[err(r, key) for r in paper_rows], color="tab:blue",
               capsize=3)
        ax.set_xticks(xs, names, rotation=35, ha="right", fontsize=8)
        ax.set_title(title, fontsize=9)
    ax = axes[3]
    settings = [r["setting"] for r in base_rows]
    xe = np.arange(len(settings))
    ax.bar(xe - 0.27, [r.get("edit_acc") or 0 for r in base_rows], 0.27, label="edit acc. (β = 1)")
    ax.bar(xe, [r.get("edit_acc_beta0") or 0 for r in base_rows], 0.27, label="acc. at β = 0")
    ax.bar(xe + 0.27, [r.get("edit_pres") or 0 for r in base_rows], 0.27, label="preserved")
    ax.set_xticks(xe, settings, rotation=35, ha="right", fontsize=8)
    ax.set_ylim(0, 1.35)
    ax.set_title("editing, base M", fontsize=9)
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    size = rows[0].get("size", "?") if rows else "?"
    steps = paper_rows[0].get("steps") if paper_rows else "?"
    fig.suptitle(f"clip2gan sweep, size '{size}' ({steps} training steps per variant; toy world)", fontsize=10)
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------------------------------------
# Table 3's backbone axis: depth of M × the CLIP, several training seeds per cell (`sweeps.run_backbone`)

#: the method each scored setting stands for (`CLIP2GAN(method=...)`): 'paper' rows by method='paper',
#: 'nearest' rows by method='bridged'
METHOD_OF_SETTING = {"paper": "paper", "nearest": "bridged"}
SETTING_OF_METHOD = {m: s for s, m in METHOD_OF_SETTING.items()}
#: the paper's CLIP each toy CLIP stands for (patch 8 of 32 px: 16 tokens, like B/32's 49; patch 4: 64, like B/16's 196)
PAPER_CLIP = {"patch8": "ViT-B/32", "patch4": "ViT-B/16"}
SHIPPED = "patch8"  # `sweeps.SHIPPED_CLIP` (not imported: sweeps imports this module)
_CELL_KEYS = ("fid", "lpips_ref", "text_acc", "lpips_div", "edit_acc", "edit_pres")


def backbone_cells(rows: Sequence[dict[str, Any]], method: str = "paper") -> dict[tuple[str, int], dict[str, Any]]:
    """{(clip, layers): cell} of one method's rows (08_evaluation.ipynb): each cell holds `seeds` (the training
    seeds), `n`, and per metric of `_CELL_KEYS` its mean (`fid`, …), sample sd over seeds (`fid_sd`, None for one
    seed) and the first row's evaluation error (`fid_se`; `text_acc_se`: binomial). Rows without a `clip`
    column are the shipped CLIP's, rows without `train_seed` seed 0 (a sweep written before the columns existed)."""
    setting = SETTING_OF_METHOD[method]
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("setting") == setting and r.get("variant") in ("base", "layers8", "layers4") and r.get("fid") is not None:
            groups.setdefault((r.get("clip") or SHIPPED, int(r["layers"])), []).append(r)
    cells = {}
    for key, group in groups.items():
        cell: dict[str, Any] = {"seeds": [r.get("train_seed") or 0 for r in group], "n": len(group)}
        for k in _CELL_KEYS:
            values = [float(r[k]) for r in group if r.get(k) is not None]
            cell[k] = float(np.mean(values)) if values else None
            cell[f"{k}_sd"] = float(np.std(values, ddof=1)) if len(values) > 1 else None
        first = group[0]
        cell["fid_se"] = first.get("fid_se")
        acc = first.get("text_acc")
        cell["text_acc_se"] = binomial_se(acc, first.get("text_pairs") or 1) if acc is not None else None
        cell["size"], cell["steps"] = first.get("size"), first.get("steps")
        cells[key] = cell
    return cells


def _mean_sd(cell: dict[str, Any] | None, key: str, digits: int) -> Any:
    """'mean ± sd' over seeds ('value' for one seed, None for a missing cell)."""
    if not cell or cell.get(key) is None:
        return None
    sd = cell.get(f"{key}_sd")
    return f"{cell[key]:.{digits}f} ± {sd:.{digits}f}" if sd is not None else f"{cell[key]:.{digits}f}"


def backbone_table(rows: Sequence[dict[str, Any]], method: str = "paper", clips: Sequence[str] | None = None) -> str:
    """Table 3 in the paper's layout (layers × CLIP → FID, LPIPS) plus the toy's accuracy and diversity, for one
    method; a cell over several training seeds reads 'mean ± sd' (08_evaluation.ipynb). A cell of the grid
    with no row reads 'not trained yet'."""
    cells = backbone_cells(rows, method)
    clips = list(clips) if clips is not None else sorted({c for c, _ in cells}, key=lambda c: (c != SHIPPED, c))
    body = []
    for clip in clips:
        for layers in (4, 8, 12):
            cell = cells.get((clip, layers))
            name = f"{clip} (like {PAPER_CLIP[clip]})" if clip in PAPER_CLIP else clip
            if cell is None:
                body.append([layers, name, "not trained yet", None, None, None, None])
                continue
            body.append([layers, name, ",".join(map(str, cell["seeds"])), _mean_sd(cell, "fid", 1),
                         _mean_sd(cell, "lpips_ref", 3), _mean_sd(cell, "text_acc", 3), _mean_sd(cell, "lpips_div", 2)])
    size = next((c["size"] for c in cells.values()), "?")
    steps = next((c["steps"] for c in cells.values()), "?")
    return format_table(["Layers", "Pre-trained CLIP (toy)", "training seeds", "FID (toy)", "LPIPS", "attr. acc.",
                         "LPIPS div."], body,
                        f"Table 3 · depth of M × CLIP backbone, method={method!r} (size '{size}', {steps} steps; "
                        f"several seeds: mean ± sd)")


def _cell_diff(a: dict[str, Any], b: dict[str, Any], key: str, spread: float | None) -> tuple[float, float]:
    """(a − b, the margin a difference must exceed): 2 standard errors of the difference of the cell means,
    each cell's seed-to-seed variance over its seeds; a one-seed cell borrows `spread` (the sd of the
    multi-seed cell it is compared with: a seed's draw); without any spread, the evaluation errors."""
    def var(c):
        sd = c.get(f"{key}_sd")
        if sd is None:
            sd = spread
        if sd is None:  # no seed spread known: evaluation noise only
            sd = c.get(f"{key}_se") or 0.0
        return sd ** 2 / c["n"]

    return a[key] - b[key], 2 * math.sqrt(var(a) + var(b))


def _judge(a: dict[str, Any], b: dict[str, Any], key: str, lower_better: bool, what: str) -> tuple[bool | None, str]:
    spread = a.get(f"{key}_sd") if a.get(f"{key}_sd") is not None else b.get(f"{key}_sd")
    d, margin = _cell_diff(a, b, key, spread)
    better = None if abs(d) <= margin else (d < 0) == lower_better
    digits = 1 if key == "fid" else 3
    return better, f"{what} {key} {a[key]:.{digits}f} vs {b[key]:.{digits}f} (±{margin:.{digits}f})"


def backbone_verdicts(rows: Sequence[dict[str, Any]], finer: str = "patch4",
                      coarser: str = SHIPPED) -> list[tuple[str, str, str]]:
    """(claim, verdict, numbers) for Table 3's two claims under each method (08_evaluation.ipynb).

    '12 layers are best' (for each CLIP: 12 vs 4 and vs 8 layers) and 'the finer CLIP is better' (`finer` vs
    `coarser` at 12 layers, and at 4 and 8). Each comparison reads FID and LPIPS (lower), the paper's metrics,
    and attribute accuracy (higher); it counts only beyond two standard errors of the difference of the cell
    means, with the seeds' spread as the noise (`_cell_diff`: a one-seed cell is given the spread of the
    12-layer cell's seeds; two one-seed cells, that of a 12-layer cell with several seeds). A claim is judged
    on the cells there are: with some missing its verdict says
    '(partly measured)' and names them; with none to compare, 'not measured'.
    """
    out = []
    metrics = (("fid", True), ("lpips_ref", True), ("text_acc", False))

    def add(claim, comps, absent):
        if not comps:
            out.append((claim, "not measured", "not trained yet: " + ", ".join(absent)))
            return
        word, numbers = verdict([c[0] for c in comps]), "; ".join(c[1] for c in comps)
        if absent:  # judged on the cells there are; the claim is only partly measured
            word, numbers = f"{word} (partly measured)", numbers + "; not trained yet: " + ", ".join(absent)
        out.append((claim, word, numbers))

    for method in ("paper", "bridged"):
        cells = backbone_cells(rows, method)
        # the seeds' spread of a 12-layer cell (the finer CLIP's when it has several seeds, else the shipped one's):
        # what a comparison between one-seed cells is given as its noise
        spread12 = {key: next((c.get(f"{key}_sd") for c in (cells.get((finer, 12)), cells.get((coarser, 12)))
                               if c and c.get(f"{key}_sd") is not None), None) for key, _ in metrics}

        def judge(a, b, key, low, what, spread12=spread12):
            if a.get(f"{key}_sd") is None and b.get(f"{key}_sd") is None and spread12[key] is not None:
                a, b = {**a, f"{key}_sd": spread12[key]}, {**b, f"{key}_sd": spread12[key]}
            return _judge(a, b, key, low, what)

        for clip in (coarser, finer):
            deep = cells.get((clip, 12))
            present = [k for k in (4, 8) if (clip, k) in cells] if deep else []
            absent = [f"{clip} {k} layers" for k in (4, 8, 12) if (clip, k) not in cells]
            comps = [judge(deep, cells[(clip, k)], key, low, f"12 vs {k} layers:") for k in present for key, low in metrics]
            add(f"Table 3, {clip} CLIP, method={method!r}: 12 layers beat 4 and 8", comps, absent)
        for depths, where in (((12,), "at 12 layers"), ((4, 8), "at 4 and 8 layers")):
            comps, absent = [], []
            for k in depths:
                a, b = cells.get((finer, k)), cells.get((coarser, k))
                if a is None or b is None:
                    absent += [f"{c} {k} layers" for c, cell in ((finer, a), (coarser, b)) if cell is None]
                    continue
                comps += [judge(a, b, key, low, f"{k} layers:") for key, low in metrics]
            add(f"Table 3, method={method!r}: the finer CLIP ({finer}) beats the shipped one ({coarser}) {where}", comps,
                absent)
    return out


def plot_backbone(rows: Sequence[dict[str, Any]]) -> Figure:
    """Table 3 as a figure: FID and attribute accuracy against M's depth, one line per CLIP, one row of panels per
    method; 12-layer error bars are the sd over training seeds (08_evaluation.ipynb)."""
    import matplotlib.pyplot as plt  # here, after the caller chose a backend (the command line: Agg)

    fig, axes = plt.subplots(2, 3, figsize=(12, 6.4))
    size = rows[0].get("size", "?") if rows else "?"
    for i, method in enumerate(("paper", "bridged")):
        cells = backbone_cells(rows, method)
        clips = sorted({c for c, _ in cells}, key=lambda c: (c != SHIPPED, c))
        for ax, key, title in zip(axes[i], ("fid", "lpips_ref", "text_acc"),
                                  ("FID (toy) ↓", "LPIPS to the render ↓", "text → image attribute acc. ↑")):
            for j, clip in enumerate(clips):
                pts = sorted((k, c) for (name, k), c in cells.items() if name == clip)
                xs = [k + (j - 0.5) * 0.3 for k, _ in pts]
                ax.errorbar(xs, [c[key] for _, c in pts], yerr=[c.get(f"{key}_sd") or 0 for _, c in pts], marker="o",
                            capsize=3, label=f"{clip} (like {PAPER_CLIP.get(clip, '?')})")
            ax.set_xticks([4, 8, 12])
            ax.set_xlabel("layers of M", fontsize=8)
            ax.set_title(f"{title}, method={method!r}", fontsize=9)
        if axes[i][0].get_legend_handles_labels()[0]:  # a grid with no cell drawn has nothing to label
            axes[i][0].legend(fontsize=7)
    fig.suptitle(f"Table 3 on the toy world, size '{size}': depth of M × CLIP backbone, both methods "
                 "(12 layers: mean ± sd over training seeds)", fontsize=10)
    fig.tight_layout()
    return fig
