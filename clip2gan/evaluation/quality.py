"""How clean M's images are, and the trainer's options that keep its codes where G draws well
(05_training.ipynb, 06_generation.ipynb).

    python -m clip2gan.evaluation.quality --size ci   --out results/ci-quality   # minutes; numbers meaningless
    python -m clip2gan.evaluation.quality --size full --out results/             # the committed tables

M writes a free w+ code: num_ws rows that nothing ties to the codes G's own mapping network produces
(every row equal, from a learned distribution). Codes away from that distribution decode to images with
artefacts — the distortion-perception-editability trade-off of encoders into w+ (Tov et al., "Designing
an Encoder for StyleGAN Image Manipulation", SIGGRAPH 2021). This module measures it and trains the
options of `clip2gan.train.TrainConfig` that push M's codes back toward G's (`OPTIONS`):

    base          the paper's recipe: M trained on renders, every w+ row free (eq. 10)
    latent_d      e4e's latent discriminator between M's rows and G's own w (weight 0.1, e4e's)
    e4e_delta     e4e's delta regulariser Σ‖w_i − w_0‖ (weight 2e-4, e4e's) with its progressive rows
    delta_strong  the delta regulariser alone at ten times e4e's weight (2e-3), every row free from the start
    w             one w broadcast to every row (StyleGAN's own w space; `free_rows=1`)
    rows2         two free rows (coarse and fine layers; `free_rows=2`)
    latent_loss   trained on G's own samples, whose code is known, with ‖M(C_img(G(w))) − w‖² added to the
                  image losses (a departure from the paper, which trains on real images with image losses)
    synthetic     trained on G's own samples with the image losses only: the control that separates what
                  the data does from what the latent loss does

and truncation at test time, w_avg + ψ (w − w_avg) (Karras et al., "A Style-Based Generator Architecture
for Generative Adversarial Networks", CVPR 2019), as a curve over ψ (`QualitySize.truncation`).

The protocol (`quality_scores`, `reconstruction_scores`; the comparison's `generation_scores` and
`editing_scores`): FID at equal sample counts (`n_captions` generated images against as many held-out
renders) in two feature spaces — the attribute classifier's (`fid`) and the toy CLIP image tower's
(`fid_clip`: trained contrastively on captions, never on the attribute labels) — each with a bootstrap
standard error, and two reference rows: a second set of renders (the floor of the estimator at this count)
and G's own samples (the quality a code G's mapping could produce reaches). Reconstructions
G(M(C_img(x))) of a third held-out set are scored the same way against the same renders, with the share of
attributes they keep (`rec_match`). Text → image: attribute accuracy, LPIPS diversity; editing at β = 1:
target reached and other attributes kept. Every row is scored under both methods (`CLIP2GAN(method=...)`:
'paper', the paper's rule; 'bridged', the project's default); reconstructions do not depend on the method.

Three training seeds per option; the tables show mean ± sd over seeds, and a difference counts beyond two
standard errors that combine seed spread and bootstrap error (`comparison_report.better`). `ship_choice`
picks the option to ship: a lower text → image FID (bridged) than the paper's recipe beyond two standard
errors, losing at most one point of accuracy and of edit keep; otherwise the paper's recipe is shipped.
The M in data/ is seed 0 of the option it picked (data/MANIFEST.json has its command).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch

from clip2gan.checkpoint import atomic_write_text
from clip2gan.cli import option
from clip2gan.evaluation.attributes import text_attribute_accuracy, toy_feature_extractor
from clip2gan.evaluation.comparison_report import better
from clip2gan.evaluation.comparisons import (
    aggregate,
    editing_scores,
    g_sampler,
    generation_scores,
    model_editor,
    model_sampler,
    renders_sampler,
)
from clip2gan.evaluation.protocol import EvalData, clip_feature_extractor, eval_data, fid_with_se
from clip2gan.evaluation.sweeps import train_variant, weights_record
from clip2gan.evaluation.tables import format_table, write_csv
from clip2gan.identity import identity_net_for
from clip2gan.model import CLIP2GAN
from clip2gan.runtime import batch_command_args, pick_device
from clip2gan.toy.faces import EVAL_SEED, AttributeClassifier, ToyFaces
from clip2gan.train import TrainConfig, build_world

__all__ = [
    "OPTIONS",
    "OPTION_NOTES",
    "METHOD_EDIT_MODES",
    "QualitySize",
    "SIZES",
    "RECON_SEED",
    "option_config",
    "reconstruction_scores",
    "quality_scores",
    "summarise",
    "ship_choice",
    "quality_tables",
    "plot_quality",
    "run_quality",
    "QualityCommand",
    "main",
]

#: option → `TrainConfig` overrides of the paper's recipe (every option shares `QualitySize.train`)
OPTIONS: dict[str, dict[str, Any]] = {
    "base": {},
    "latent_d": {"latent_d": 0.1},
    "e4e_delta": {"delta_reg": 2e-4, "delta_progressive": True},
    "delta_strong": {"delta_reg": 2e-3},
    "w": {"free_rows": 1},
    "rows2": {"free_rows": 2},
    "latent_loss": {"synthetic_data": True, "latent_loss": 1.0},
    "synthetic": {"synthetic_data": True},
}
#: option → what it is, in one line (the tables' legend)
OPTION_NOTES: dict[str, str] = {
    "base": "the paper's recipe: renders, image losses, every w+ row free (eq. 10)",
    "latent_d": "e4e latent discriminator on M's rows vs G's own w, weight 0.1 (Tov et al., SIGGRAPH 2021)",
    "e4e_delta": "e4e delta regulariser Σ‖w_i − w_0‖, weight 2e-4, progressive rows (Tov et al., SIGGRAPH 2021)",
    "delta_strong": "delta regulariser at 2e-3 (10× e4e's), every row free from the start",
    "w": "one w broadcast to every row (StyleGAN's w space)",
    "rows2": "two free rows: coarse and fine layers",
    "latent_loss": "G's own samples with their known code: + ‖M(C_img(G(w))) − w‖² (not the paper's data)",
    "synthetic": "G's own samples as training images, image losses only (the control for latent_loss)",
}
#: method → the edit mode it uses (`CLIP2GAN(method=...)`'s defaults)
METHOD_EDIT_MODES = {"paper": "paper", "bridged": "neighbours"}

RECON_SEED = EVAL_SEED + 700  # the reconstructed renders: a stream no training or evaluation set uses


@dataclass(frozen=True)
class QualitySize:
    """How big a quality run is (06_generation.ipynb).

    train: the `TrainConfig` recipe every option shares; seeds: training seeds per option;
    n_captions: generated images and renders in each FID (equal counts); n_recon: reconstructed renders;
    truncation: the ψ of the truncation curve, run on the 'base' option's `truncation_seeds`.
    """

    name: str
    train: dict[str, Any]
    options: tuple[str, ...] = tuple(OPTIONS)
    seeds: tuple[int, ...] = (0, 1, 2)
    n_captions: int = 1000
    n_recon: int = 1000
    n_div_prompts: int = 50
    n_per_prompt: int = 8
    n_edit: int = 500
    truncation: tuple[float, ...] = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
    truncation_seeds: tuple[int, ...] = (0,)


SIZES: dict[str, QualitySize] = {
    # CI: three options, 3 steps each, a handful of images: the pipeline runs, the numbers mean nothing.
    "ci": QualitySize("ci", dict(epochs=1, epoch_size=32, batch_size=8, max_steps=3, bank_size=32),
                      options=("base", "w", "latent_d"), seeds=(0, 1), n_captions=16, n_recon=16, n_div_prompts=2,
                      n_per_prompt=2, n_edit=8, truncation=(1.0, 0.5), truncation_seeds=(0, 1)),
    # full: the shipped M's recipe (8 epochs × 2,048 images, batch 32 = 512 steps), 1,000 vs 1,000 images per FID.
    "full": QualitySize("full", dict(epochs=8, epoch_size=2048, batch_size=32)),
}


def option_config(size: QualitySize, option: str, seed: int, work: str | Path, device: str = "auto") -> TrainConfig:
    """The `TrainConfig` of one option and seed; its run folder is `<work>/<option>-s<seed>` (05_training.ipynb)."""
    if option not in OPTIONS:
        raise ValueError(f"unknown option {option!r}; known: {list(OPTIONS)}")
    return TrainConfig(**{"profile": "toyfaces", "seed": seed, "device": device, "sample_every": 0, "log_every": 10,
                          **size.train, **OPTIONS[option], "out": str(Path(work) / f"{option}-s{seed}")})


# -------------------------------------------------------------------------------------------------
# the protocol


@torch.no_grad()
def reconstruction_scores(model: CLIP2GAN, images: torch.Tensor, attributes: Sequence[Mapping[str, Any]],
                          reference: torch.Tensor, classifier: AttributeClassifier, seed: int = 0) -> dict[str, Any]:
    """G(M(C_img(x))) of held-out renders `images` against other renders `reference` (06_generation.ipynb).

    Returns `rec_fid`/`rec_fid_se` (classifier features), `rec_fid_clip`/`rec_fid_clip_se` (toy CLIP image
    features), `rec_match` (the share of (image, attribute) pairs that read as the input's).
    """
    rec = torch.cat([model.reconstruct(b).float().cpu() for b in images.split(250)]).clamp(-1, 1)
    out: dict[str, Any] = {}
    out["rec_fid"], out["rec_fid_se"] = fid_with_se(reference, rec, toy_feature_extractor(classifier), seed=seed)
    out["rec_fid_clip"], out["rec_fid_clip_se"] = fid_with_se(reference, rec, clip_feature_extractor(model.clip), seed=seed)
    out["rec_match"] = text_attribute_accuracy(classifier, rec, list(attributes))
    return out


def quality_scores(model: CLIP2GAN, data: EvalData, classifier: AttributeClassifier, lpips: Callable[..., torch.Tensor],
                   size: QualitySize, identity: Callable[[torch.Tensor], torch.Tensor] | None = None, seed: int = 0,
                   truncation: float = 1.0, edits: bool = True) -> dict[str, Any]:
    """Text → image and editing metrics of one model under its method (see the module docstring) (06_generation.ipynb).

    The method is the model's (`model.method`: its text correction and edit mode). truncation: ψ of the samples.
    """
    mode = METHOD_EDIT_MODES.get(model.method, model.edit_mode)
    metrics, _ = generation_scores(model_sampler(model, truncation=truncation), data, classifier, lpips, model.clip, size,
                                   seed=seed)
    if edits:
        metrics.update(editing_scores(model_editor(model, mode), data, classifier, identity, seed=seed))
    return metrics


# -------------------------------------------------------------------------------------------------
# summary, choice, tables, figure

GEN_KEYS = ("fid", "fid_se", "fid_clip", "fid_clip_se", "text_acc", "text_pairs", "lpips_div", "realism", "clip_score")
EDIT_KEYS = ("edit_acc", "edit_acc_beta0", "edit_pres", "identity", "edit_fid", "edit_fid_se", "edit_n")
REC_KEYS = ("rec_fid", "rec_fid_se", "rec_fid_clip", "rec_fid_clip_se", "rec_match")


def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{table: {name: {metric: {'mean', 'sd', 'n'}}}} over training seeds (06_generation.ipynb).

    Tables: 'methods' (`<option>/<method>`: text → image and editing), 'reconstruction' (`<option>`),
    'references' (renders, G's samples), 'truncation' (`<method>/psi=<ψ>`).
    """
    groups: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for r in rows:
        if r["table"] == "methods":
            name = f"{r['option']}/{r['method']}"
        elif r["table"] == "truncation":
            name = f"{r['method']}/psi={r['psi']:g}"
        else:
            name = r["option"]
        groups.setdefault(r["table"], {}).setdefault(name, []).append(r)
    keys = {"methods": GEN_KEYS + EDIT_KEYS, "truncation": GEN_KEYS, "reconstruction": REC_KEYS, "references": GEN_KEYS}
    return {table: {name: aggregate(rs, keys[table]) for name, rs in entries.items()} for table, entries in groups.items()}


def ship_choice(summary: Mapping[str, Any], method: str = "bridged", tolerance: float = 0.01) -> dict[str, Any]:
    """Which option to ship: a text → image FID below the paper's recipe's ('base') beyond 2 standard errors under
    `method`, accuracy and edit keep at most `tolerance` below its; the lowest FID among those (06_generation.ipynb).

    Returns {'option': name or None, 'reasons': {option: why it was not chosen or 'eligible'}}.
    """
    table = summary["methods"]
    base = table.get(f"base/{method}")
    if base is None:
        raise ValueError(f"the summary has no base/{method} row to compare with")
    reasons, eligible = {}, {}
    for name, entry in table.items():
        option, _, m = name.partition("/")
        if m != method or option == "base":
            continue
        lower_fid = better(entry, base, "fid", higher=False)
        lost = [k for k in ("text_acc", "edit_pres") if k in entry and k in base
                and entry[k]["mean"] < base[k]["mean"] - tolerance]
        if lower_fid is not True:
            reasons[option] = "FID not lower beyond 2 SE" if lower_fid is None else "FID higher"
        elif lost:
            reasons[option] = "loses more than a point of " + " and ".join(lost)
        else:
            reasons[option], eligible[option] = "eligible", entry["fid"]["mean"]
    return {"option": min(eligible, key=eligible.get) if eligible else None, "reasons": reasons}


def _pm(entry: Mapping[str, Any] | None, key: str, digits: int) -> str:
    if not entry or key not in entry:
        return "–"
    m = entry[key]
    return f"{m['mean']:.{digits}f} ± {m['sd']:.{digits}f}" if m["n"] > 1 else f"{m['mean']:.{digits}f}"


def quality_tables(record: Mapping[str, Any]) -> dict[str, str]:
    """Markdown tables of a quality record: per option and method, the references, the truncation curve (06_generation.ipynb)."""
    s = record["summary"]
    refs = s.get("references", {})
    seeds = len(record["size"]["seeds"])
    n = record["size"]["n_captions"]
    header = ["option", "method", "FID (classifier)", "FID (CLIP)", "accuracy", "LPIPS div.", "edit acc.", "edit kept",
              "rec. FID (classifier)", "rec. FID (CLIP)", "rec. match"]
    rows = []
    for name in ("renders", "g_samples"):
        if name in refs:
            rows.append([name, "reference", _pm(refs[name], "fid", 1), _pm(refs[name], "fid_clip", 3), "–",
                         _pm(refs[name], "lpips_div", 3), "–", "–", "–", "–", "–"])
    for key, entry in s["methods"].items():
        option, _, method = key.partition("/")
        rec = s.get("reconstruction", {}).get(option)
        rows.append([option, method, _pm(entry, "fid", 1), _pm(entry, "fid_clip", 3), _pm(entry, "text_acc", 3),
                     _pm(entry, "lpips_div", 3), _pm(entry, "edit_acc", 3), _pm(entry, "edit_pres", 3),
                     _pm(rec, "rec_fid", 1), _pm(rec, "rec_fid_clip", 3), _pm(rec, "rec_match", 3)])
    title = (f"Options against the distortion-perception trade-off ({record['size']['name']} size; {n} vs {n} images "
             f"per FID; mean ± sd over {seeds} training seeds; both methods)")
    out = {"options": format_table(header, rows, title=title)}
    trunc = s.get("truncation", {})
    if trunc:
        t_rows = [[key.partition("/")[0], key.partition("=")[2], _pm(e, "fid", 1), _pm(e, "fid_clip", 3),
                   _pm(e, "text_acc", 3), _pm(e, "lpips_div", 3)] for key, e in trunc.items()]
        t_header = ["method", "ψ", "FID (classifier)", "FID (CLIP)", "accuracy", "LPIPS div."]
        t_seeds = max(e["fid"]["n"] for e in trunc.values())
        out["truncation"] = format_table(t_header, t_rows, title=(
            f"Truncation toward G's average code, the paper's recipe ('base') ({record['size']['name']} size; "
            + (f"mean ± sd over {t_seeds} training seeds)" if t_seeds > 1 else "one training seed)")))
    return out


def plot_quality(record: Mapping[str, Any], path: str | Path | None = None):
    """Accuracy against FID (both feature spaces) for every option and both methods, the truncation curves and the
    reference rows drawn in (06_generation.ipynb). Returns the figure (and writes it to `path`)."""
    import matplotlib.pyplot as plt  # here, after the caller chose a backend (the command line: Agg)

    s = record["summary"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    markers = {"paper": "s", "bridged": "o"}
    options = list(dict.fromkeys(k.partition("/")[0] for k in s["methods"]))
    colours = {o: plt.get_cmap("tab10")(i % 10) for i, o in enumerate(options)}
    spaces = ((axes[0], "fid", "toy FID, classifier features"), (axes[1], "fid_clip", "FID, toy CLIP image features"))
    for ax, key, label in spaces:
        for name, e in s["methods"].items():
            option, _, method = name.partition("/")
            ax.errorbar(e[key]["mean"], e["text_acc"]["mean"], xerr=e[key]["sd"], yerr=e["text_acc"]["sd"],
                        fmt=markers.get(method, "^"), color=colours[option], capsize=2, ms=5,
                        label=f"{option} ({method})")
        for method, style in (("bridged", "-"), ("paper", "--")):
            pts = sorted(((float(k.partition("=")[2]), e) for k, e in s.get("truncation", {}).items()
                          if k.startswith(f"{method}/")), key=lambda p: p[0])
            if pts:
                ax.plot([e[key]["mean"] for _, e in pts], [e["text_acc"]["mean"] for _, e in pts], style, color="grey",
                        lw=1, label=f"truncation ψ {pts[-1][0]:g} → {pts[0][0]:g} ({method})")
        for ref, style in (("renders", ":"), ("g_samples", "-.")):
            if ref in s.get("references", {}):
                ax.axvline(s["references"][ref][key]["mean"], color="black", ls=style, lw=1, label=f"{ref} (FID)")
        ax.set_xscale("log")
        ax.set_xlabel(f"{label} (lower is better, log scale)")
        ax.set_ylabel("text → image attribute accuracy")
    axes[1].legend(fontsize=6.5, loc="center left", bbox_to_anchor=(1.0, 0.5))
    size = record["size"]
    fig.suptitle(f"Where M's codes land: accuracy vs FID per trainer option, the paper's rule (squares) and the bridged "
                 f"default (circles) ({size['name']} size; {size['n_captions']} vs {size['n_captions']} images; mean ± sd "
                 f"over {len(size['seeds'])} training seeds)", fontsize=8.5)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
    return fig


# -------------------------------------------------------------------------------------------------
# the run

CSV_COLUMNS = ["table", "option", "method", "seed", "psi", *dict.fromkeys(GEN_KEYS + EDIT_KEYS + REC_KEYS),
               "sec_per_image", "train_seconds"]



def run_quality(size: str | QualitySize = "ci", out: str | Path = "results", work: str | Path | None = None,
                device: str = "auto", seed: int = 0, world: dict[str, Any] | None = None,
                classifier: AttributeClassifier | None = None, identity: Any = None,
                dataset_factory: Callable[[TrainConfig], torch.utils.data.Dataset] | None = None,
                options: Sequence[str] | None = None, progress: bool = True, log: Callable[[str], Any] = print,
                write: bool = True, trained_only: bool = False) -> dict[str, Any]:
    """Train (or reuse, or resume) every option's seeds, score them, write `<out>/quality.{csv,json,png}` (06_generation.ipynb).

    Runs go to `<work>/<option>-s<seed>/` (default `runs/quality-<size>`); every scored row is cached in
    `<work>/scores/` so a stopped run restarts where it was. world, classifier, identity, dataset_factory:
    injected by tests (a tiny world). options: a subset of the size's. write: False scores into the cache only.
    trained_only: train nothing; score the finished runs and record the seeds that are missing (`missing`).
    Returns the JSON record.
    """
    size = SIZES[size] if isinstance(size, str) else size
    out, work = Path(out), Path(work) if work is not None else Path("runs") / f"quality-{size.name}"
    dev = pick_device(device)
    started = time.perf_counter()
    shipped_world = world is None
    if world is None:
        world = build_world(option_config(size, "base", 0, work / "world", str(dev)), dev)
        identity = identity if identity is not None else identity_net_for("toyfaces", device=dev)
    classifier = classifier if classifier is not None else AttributeClassifier.from_pretrained(device=dev)
    res = int(world["G"].img_resolution)
    data = eval_data(size, res, seed)
    recon = ToyFaces(size.n_recon, seed=RECON_SEED + seed, resolution=res)
    recon_items = [recon[i] for i in range(len(recon))]
    recon_images = torch.stack([it["image"] for it in recon_items]) if recon_items else torch.empty(0, 3, res, res)
    wanted = [o for o in size.options if options is None or o in options]
    unknown = set(options or ()) - set(size.options)
    if unknown:
        raise ValueError(f"unknown option(s) {sorted(unknown)} for size {size.name}; known: {list(size.options)}")
    scores_dir = work / "scores"

    def cached(key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = scores_dir / f"{size.name}-eval{seed}-{key}.json"
        if path.is_file():
            return json.loads(path.read_text())
        value = compute()
        scores_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(value, default=float))
        return value

    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    for name, sampler in (("renders", renders_sampler(res, data.captions, data.mentioned)),
                          ("g_samples", g_sampler(world["G"]))):
        metrics = cached(f"reference-{name}", lambda s=sampler, n=name: generation_scores(
            s, data, classifier, world["lpips"], world["clip"], size, seed=seed, text_free=(n == "g_samples"))[0])
        rows.append({"table": "references", "option": name, **metrics})
    for opt in wanted:
        for s in size.seeds:
            config = option_config(size, opt, s, work, str(dev))
            if trained_only and not (Path(config.out) / "mapping.safetensors").is_file():
                missing.append(f"{opt}-s{s}")
                log(f"[{size.name}] {opt} seed {s}: not trained, left out (--trained-only)")
                continue
            trained = train_variant(config, world, dataset_factory(config) if dataset_factory else None, progress)
            mapping, seconds = trained["mapping"], trained["train_seconds"]
            models = {m: CLIP2GAN.from_checkpoint(mapping, clip=world["clip"], generator=world["G"], method=m)
                      for m in METHOD_EDIT_MODES}
            rec = cached(f"reconstruction-{opt}-s{s}", lambda m=models["bridged"]: reconstruction_scores(
                m, recon_images, [it["attributes"] for it in recon_items], data.images, classifier, seed=seed))
            rows.append({"table": "reconstruction", "option": opt, "seed": s, "train_seconds": seconds, **rec})
            for method, model in models.items():
                metrics = cached(f"methods-{opt}-s{s}-{method}", lambda m=model: quality_scores(
                    m, data, classifier, world["lpips"], size, identity, seed=seed))
                rows.append({"table": "methods", "option": opt, "method": method, "seed": s, "train_seconds": seconds,
                             **metrics})
                log(f"[{size.name}] {opt} seed {s} {method}: acc {metrics['text_acc']:.3f}, FID {metrics['fid']:.1f} / "
                    f"{metrics['fid_clip']:.3f} (CLIP), edit {metrics['edit_acc']:.3f}/{metrics['edit_pres']:.3f}, "
                    f"rec FID {rec['rec_fid']:.1f}")
                if opt == "base" and s in size.truncation_seeds:
                    for psi in size.truncation:
                        t = cached(f"truncation-s{s}-{method}-psi{psi:g}", lambda m=model, p=psi: quality_scores(
                            m, data, classifier, world["lpips"], size, seed=seed, truncation=p, edits=False))
                        rows.append({"table": "truncation", "option": opt, "method": method, "seed": s, "psi": psi, **t})
    summary = summarise(rows)
    record = {"command": f"python -m clip2gan.evaluation.quality --size {size.name} --out {out}",
              "size": dataclasses.asdict(size),
              "options": {o: {"overrides": OPTIONS[o], "note": OPTION_NOTES[o]} for o in wanted},
              "seed": seed, "device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "seconds": round(time.perf_counter() - started, 1), "work": str(work), "summary": summary, "missing": missing,
              "weights": weights_record("toyfaces") if shipped_world else {}}
    if "base/bridged" in summary.get("methods", {}):
        record["ship"] = ship_choice(summary)
    if write:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(rows, out / "quality.csv", CSV_COLUMNS)
        atomic_write_text(out / "quality.json", json.dumps(record, indent=1, default=float) + "\n")
        plot_quality(record, out / "quality.png")
    return record


# -------------------------------------------------------------------------------------------------
# command line


@dataclass
class QualityCommand:
    """The flags of `python -m clip2gan.evaluation.quality`, one per field (`clip2gan.cli`) (06_generation.ipynb)."""

    size: str = option("ci", "the options, their recipe, seeds and evaluation sizes", choices=tuple(SIZES))
    out: str = option("results", "folder for quality.csv, quality.json and quality.png")
    work: str | None = option(None, "run folders and the score cache, runs/quality-<size> when unset")
    options: str | None = option(None, f"comma-separated subset of {','.join(OPTIONS)}")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    seed: int = option(0, "evaluation seed")
    threads: int | None = option(None, "torch CPU threads, torch's default when unset")
    score_only: bool = option(False, "fill the score cache and write nothing to --out (to score in parallel with training)")
    trained_only: bool = option(False, "train nothing: score the finished runs, list the missing ones in the record")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m clip2gan.evaluation.quality` (06_generation.ipynb); returns the exit status."""
    args = batch_command_args(QualityCommand, "python -m clip2gan.evaluation.quality", __doc__.split("\n")[0], argv)
    options = [o.strip() for o in args.options.split(",") if o.strip()] if args.options else None
    try:
        record = run_quality(args.size, out=args.out, work=args.work, device=args.device, seed=args.seed, options=options,
                             write=not args.score_only, trained_only=args.trained_only)
    except (ValueError, FileExistsError) as err:
        print(f"clip2gan.evaluation.quality: error: {err}", file=sys.stderr)
        return 1
    for text in quality_tables(record).values():
        print(text + "\n")
    if "ship" in record:
        choice = record["ship"]["option"] or "none: the paper's recipe ('base') stays"
        print(f"ship: {choice} ({record['ship']['reasons']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
