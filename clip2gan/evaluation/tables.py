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
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from clip2gan.checkpoint import atomic_write_text
from clip2gan.evaluation.protocol import binomial_se, compare_proportions, verdict

if TYPE_CHECKING:  # pyplot is imported when a figure is drawn, after the caller chose a backend (the command line: Agg)
    from matplotlib.figure import Figure

__all__ = ["COLUMNS", "write_csv", "read_csv", "format_table", "paper_tables", "verdicts", "plot_sweep"]

COLUMNS = [
    "size", "variant", "setting", "layers", "adv", "div", "correction", "edit_space", "edit_mode", "edit_images",
    "steps", "train_seconds", "eval_seconds",
    "fid", "fid_se", "lpips_ref", "lpips_div", "text_acc", "text_pairs", "rec_match",
    "edit_acc", "edit_acc_beta0", "edit_pres", "edit_fid", "edit_fid_se", "edit_lpips", "edit_n",
    "fid_clip", "fid_clip_se",
]




def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Rows → CSV with `COLUMNS` (floats rounded to 4 digits; missing values empty), written atomically (08_evaluation.ipynb)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items() if k in COLUMNS})
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


def paper_tables(rows: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Tables 1, 3, 4, 5 and 6 of the paper laid out with the toy metrics, as text (08_evaluation.ipynb).

    Each table keeps the paper's rows and columns (a row the toy world cannot produce shows '–' or is
    named as missing) and adds the toy world's ground-truth columns (attribute accuracy, diversity).
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
                               "Table 3 · depth of M (one toy CLIP: no ViT-B/32 vs B/16 axis)")
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
