"""The comparison's report: its summary as the paper's Tables 1, 2 and 5, the verdicts on the paper's claims, and
the figures (10_comparisons.ipynb).

`clip2gan.evaluation.comparisons` runs the methods and writes `comparisons.json`; everything here reads that
record (`summary`: mean, sd and count over training seeds per method and metric; `paired`: Table 2's shares).
A difference counts when it exceeds two standard errors that combine the spread over training seeds, the
bootstrap error of a FID and, for proportions, the binomial error (`better`).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from clip2gan.evaluation.protocol import EvalData, binomial_se, verdict
from clip2gan.evaluation.tables import format_table
from clip2gan.viz import to_uint8

__all__ = ["better", "comparison_tables", "comparison_verdicts", "plot_comparisons", "sample_figures"]


def _value(entry: Mapping[str, Any] | None, key: str) -> tuple[float, float, int] | None:
    """(mean, standard error of the mean over seeds and evaluation noise, seeds) of a summary entry's metric."""
    if not entry or key not in entry:
        return None
    m = entry[key]
    se_eval = entry.get(f"{key}_se", {}).get("mean", 0.0)
    n = max(m["n"], 1)
    return m["mean"], math.sqrt(m["sd"] ** 2 / n + se_eval ** 2 / n), m["n"]


def better(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, key: str, higher: bool = True,
           pairs_key: str | None = None) -> bool | None:
    """Whether method a beats b on `key` beyond 2 standard errors (None: within them, or a value missing) (10_comparisons.ipynb).

    The error combines the spread over training seeds (sd / √seeds), the bootstrap error of FIDs (`<key>_se`)
    and, for proportions, the binomial error over `pairs_key` pairs.
    """
    va, vb = _value(a, key), _value(b, key)
    if va is None or vb is None:
        return None
    var = va[1] ** 2 + vb[1] ** 2
    if pairs_key is not None:
        for v, entry in ((va, a), (vb, b)):
            n_pairs = int(entry.get(pairs_key, {}).get("mean", 0)) if entry else 0
            var += binomial_se(v[0], n_pairs) ** 2 / max(v[2], 1)
    diff = (va[0] - vb[0]) if higher else (vb[0] - va[0])
    margin = 2 * math.sqrt(var)
    if abs(diff) <= margin:
        return None
    return diff > 0


def plot_comparisons(record: Mapping[str, Any], path: str | Path | None = None):
    """Accuracy against toy FID for every text → image method, mean ± sd over training seeds, with the
    reference rows drawn in (10_comparisons.ipynb). Returns the figure (and writes it to `path`)."""
    import matplotlib.pyplot as plt  # here, after the caller chose a backend (the command line: Agg)

    gen = record["summary"]["generation"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, fid_key, label in ((axes[0], "fid", "toy FID, classifier features"),
                               (axes[1], "fid_clip", "FID, toy CLIP image features")):
        for name, e in gen.items():
            if e["kind"] == "reference" or "text_acc" not in e:
                continue
            ax.errorbar(e[fid_key]["mean"], e["text_acc"]["mean"], xerr=e[fid_key]["sd"], yerr=e["text_acc"]["sd"],
                        fmt="o" if "+rerank" not in name else "s", capsize=3, label=name)
        for ref, style in (("ceiling", "--"), ("renders", ":")):
            if ref in gen and "text_acc" in gen[ref]:
                ax.axhline(gen[ref]["text_acc"]["mean"], color="grey", ls=style, lw=1, label=f"{ref} (accuracy)")
        for ref, style in (("g_samples", "-."), ("renders", ":")):
            if ref in gen:
                ax.axvline(gen[ref][fid_key]["mean"], color="black", ls=style, lw=1, label=f"{ref} (FID)")
        ax.set_xscale("log")
        ax.set_xlabel(f"{label} (lower is better, log scale)")
        ax.set_ylabel("text → image attribute accuracy")
    axes[1].legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    size = record["size"]["name"]
    fig.suptitle(f"Text → image on the toy world, every method with the same CLIP and G ({size} size; "
                 f"{record['size']['n_captions']} captions; mean ± sd over {len(record['size']['seeds'])} training seeds)",
                 fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
    return fig


def sample_figures(data: EvalData, samplers: Mapping[str, Callable[..., torch.Tensor]],
                   editors: Mapping[str, Callable[..., Any]], out: Path, size_name: str, seed: int = 0,
                   n: int = 6) -> list[Path]:
    """`comparisons_samples.png` (one row per method, the same `n` captions) and `comparisons_edits.png` (the
    inputs, then one row of edits per method, the same pairs) (10_comparisons.ipynb)."""
    import matplotlib.pyplot as plt  # here, after the caller chose a backend (the command line: Agg)

    captions = data.captions[:n]
    paths = []
    grids = [(f"Text → image, the same {n} held-out captions ({size_name} size, first training seed)",
              {name: s(captions, 1, seed).float().cpu() for name, s in samplers.items()}, captions, "comparisons_samples.png")]
    images, texts = data.edit_images[:n], data.edit_texts[:n]
    edits = {"input": images.float()}
    for name, e in editors.items():
        edits[name] = e(images, texts, 1.0, seed)[1].float().cpu()
    grids.append((f"Editing at β = 1, the same {n} renders and texts ({size_name} size, first training seed)",
                  edits, texts, "comparisons_edits.png"))
    for title, rows, cols, filename in grids:
        fig, axes = plt.subplots(len(rows), n, figsize=(1.25 * n + 1.4, 1.25 * len(rows) + 0.9), squeeze=False)
        for i, (name, imgs) in enumerate(rows.items()):
            for j in range(n):
                ax = axes[i][j]
                ax.imshow(to_uint8(imgs[j]))
                ax.set_xticks([])
                ax.set_yticks([])
                if j == 0:
                    ax.set_ylabel(name, fontsize=7, rotation=0, ha="right", va="center")
                if i == 0:
                    ax.set_title(textwrap.fill(cols[j], 26), fontsize=4.5)
        fig.suptitle(title, fontsize=8)
        fig.tight_layout()
        fig.savefig(out / filename, dpi=100)
        plt.close(fig)
        paths.append(out / filename)
    return paths


# -------------------------------------------------------------------------------------------------
# the paper's tables and verdicts


def _pm(entry: Mapping[str, Any] | None, key: str, scale: float = 1.0, digits: int = 3) -> str | None:
    if not entry or key not in entry:
        return None
    m = entry[key]
    if m["n"] > 1:
        return f"{scale * m['mean']:.{digits}f} ± {scale * m['sd']:.{digits}f}"
    return f"{scale * m['mean']:.{digits}f}"


def _label(name: str, entry: Mapping[str, Any]) -> str:
    return f"{name} (reference)" if entry.get("kind") == "reference" else name


def comparison_tables(record: Mapping[str, Any]) -> dict[str, str]:
    """The paper's Tables 1, 2 and 5 in kind, and the selection curves, as plain-text tables (10_comparisons.ipynb).

    Values are mean ± sd over training seeds (a bare value: one run)."""

    summary = record["summary"]
    size = record["size"]["name"]
    gen = summary["generation"]
    t1 = [[_label(n, e), _pm(e, "fid", digits=1), _pm(e, "lpips_ref"), _pm(e, "text_acc"), _pm(e, "fid_clip", digits=3),
           _pm(e, "lpips_div"), _pm(e, "clip_score"), _pm(e, "realism"), _pm(e, "sec_per_image", 1000, 1),
           _pm(e, "train_seconds", digits=0)] for n, e in gen.items()]
    tables = {"table1": format_table(
        ["method", "FID (toy)", "LPIPS", "text acc.", "FID (CLIP)", "LPIPS div.", "CLIP score", "realism", "ms/image",
         "train s"], t1, title=f"Table 1 in kind — text → image ({size} size; FID and LPIPS as the paper's columns)")}
    t2 = []
    for ours, others in record["paired"].items():
        for theirs, p in others.items():
            spread = f" ± {100 * p['acc_sd']:.1f}" if p["seeds"] > 1 else ""
            t2.append([f"CLIP2GAN ({ours}) vs {theirs}", f"{100 * p['acc']:.1f}{spread}",
                       f"{100 * p['real']:.1f}" + (f" ± {100 * p['real_sd']:.1f}" if p["seeds"] > 1 else ""), p["n"]])
    tables["table2"] = format_table(["pair", "Acc. (%)", "Real. (%)", "captions"], t2,
                                    title=f"Table 2 in kind — paired, caption by caption ({size} size; ties count half)")
    ed, zo = summary.get("editing", {}), summary.get("editing_zoomed", {})
    t5 = [[n, _pm(e, "edit_fid", digits=1), _pm(e, "edit_acc"), _pm(e, "edit_realism"), _pm(e, "edit_pres"),
           _pm(e, "identity"), _pm(zo.get(n), "edit_fid", digits=1), _pm(zo.get(n), "edit_acc"),
           _pm(zo.get(n), "edit_realism"), _pm(e, "sec_per_edit", 1000, 1)] for n, e in ed.items()]
    tables["table5"] = format_table(
        ["method", "FID", "Acc.", "Real.", "kept", "identity", "FID (zoomed)", "Acc. (zoomed)", "Real. (zoomed)", "ms/edit"],
        t5, title=f"Table 5 in kind — editing at β = 1 ({size} size; renders, and renders zoomed 1.25× as the "
                  "out-of-dataset images)")
    sel = [[kind, level, f"{acc:.3f}", "chosen" if float(level) == record["chosen"][kind] else ""]
           for kind, curve in record["selection"].items() for level, acc in curve.items()]
    tables["selection"] = format_table(["method", "level (σ for C3, ξ for LAFITE)", "validation text acc.", ""], sel,
                                       title=f"Choosing C3's σ and LAFITE's ξ on {record['size']['n_validation']} "
                                             "validation captions (a quarter of the training recipe)")
    return tables


def _preferred(share: float, n: int) -> bool | None:
    """A paired share against even odds: True/False beyond 2 binomial standard errors, else None."""

    return None if abs(share - 0.5) <= 2 * binomial_se(share, n) else share > 0.5


def comparison_verdicts(record: Mapping[str, Any]) -> dict[str, str]:
    """One verdict per claim of the paper's comparison tables, for each CLIP2GAN method, and where the bridged
    default stands against every published bridge (10_comparisons.ipynb). Differences count beyond 2
    standard errors (`better`)."""
    gen = record["summary"]["generation"]
    ed, zo = record["summary"].get("editing", {}), record["summary"].get("editing_zoomed", {})
    out = {}
    for ours in ("paper", "bridged"):
        out[f"table1 ({ours}): CLIP2GAN beats StyleCLIP on FID and LPIPS"] = verdict(
            [better(gen.get(ours), gen.get("styleclip"), "fid", higher=False),
             better(gen.get(ours), gen.get("styleclip"), "lpips_ref", higher=False)])
        p = record["paired"].get(ours, {}).get("styleclip")
        if p:
            out[f"table2 ({ours}): CLIP2GAN preferred over StyleCLIP on accuracy and realism"] = verdict(
                [_preferred(p["acc"], p["n"]), _preferred(p["real"], p["n"])])
    for ours in ("paper", "bridged"):
        checks = []
        for table in (ed, zo):
            checks += [better(table.get(ours), table.get("styleclip"), "edit_fid", higher=False),
                       better(table.get(ours), table.get("styleclip"), "edit_acc", pairs_key="edit_n"),
                       better(table.get(ours), table.get("styleclip"), "edit_realism", pairs_key="edit_n")]
        out[f"table5 ({ours}): CLIP2GAN edits beat StyleCLIP on FID, accuracy and realism, in and out of distribution"] = \
            verdict(checks)
    standing = []
    for other in [n for n, e in gen.items() if e["kind"] == "method" and n not in ("bridged",)]:
        acc = better(gen.get("bridged"), gen.get(other), "text_acc", pairs_key="text_pairs")
        fid = better(gen.get("bridged"), gen.get(other), "fid", higher=False)
        word = {True: "better", False: "worse", None: "level"}
        standing.append(f"{other}: accuracy {word[acc]}, FID {word[fid]}")
    out["where the bridged default stands (vs each text → image method)"] = "; ".join(standing)
    return out
