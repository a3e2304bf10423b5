"""Ablation sweeps behind the paper's tables, on the toy world (08_evaluation.ipynb).

    python -m clip2gan.evaluation.sweeps --size ci   --out results/      # 2 variants × 3 steps (minutes; numbers meaningless)
    python -m clip2gan.evaluation.sweeps --size demo --out results/      # 6 variants × 32 steps (about an hour on a busy CPU)
    python -m clip2gan.evaluation.sweeps --size full --out results/      # 6 variants × the shipped M's recipe (hours on a CPU)
    python -m clip2gan.evaluation.sweeps --evaluate runs/NAME --size full  # one trained M's metrics and the issues' bars
    python -m clip2gan.evaluation.sweeps --evaluate runs/NAME --size full --ship --command '...'  # and ship it to data/

A sweep trains one mapping network M per *variant* with `clip2gan.train.Trainer` (frozen CLIP and G,
a fresh D per variant, the same seed, data and step budget), evaluates each M with
`clip2gan.evaluation.metrics` and writes one CSV row per (variant, evaluation setting):

    variants (trained)            Table   what changes
    base    12 layers, L_adv, L_div  1, 3-6  the paper's configuration (eq. 10, every term)
    layers8 / layers4              3       M's depth (the paper's 8 and 4 layers)
    no_adv / no_div / no_adv_div   4       L_adv and/or L_div removed (λ = 0)

    settings (evaluation only, on `base`; 'paper' and 'nearest' on every variant)
    paper       the paper at test time: text features as they are, β-editing in w+, n = M(t)
    recentre    modality-gap correction of the text features (DESIGN ambiguity 4)
    nearest     text features replaced by their nearest training-image features, edits with
                per-image 'neighbours' directions (the defaults of a checkpoint with a feature
                bank, as shipped; `clip2gan.model`, `clip2gan.edit`)
    clip_space  editing arithmetic in CLIP space (supp. Table 6)
    directional editing with n = M(t) − M(t_neutral) (ambiguity 5)
    zoomed      editing images outside the training distribution (renders zoomed 1.25×: Table 5's
                "Not-in-CelebA-HQ" analogue)

Metrics (every column of the CSV, `COLUMNS`):

* generation, on `n_captions` held-out captions (`toyfaces.ToyFaces(seed=EVAL_SEED)`), one sample each
  with the default test-time noise (`clip2gan.generate`): `fid` — Fréchet distance between the
  generated images and the captions' own renders in the toy classifier's features
  (`metrics.toy_feature_extractor`; not comparable with Inception FIDs), `fid_se` its bootstrap
  standard error (`fid_with_se`); `lpips_ref` — mean LPIPS
  between each sample and its caption's render (the paper's "distance between generated and real
  images"; the caption states only some attributes, so it is a loose measure); `text_acc` — the
  fraction of (caption, stated attribute) pairs the classifier reads in the sample
  (`metrics.text_attribute_accuracy`), with `text_pairs` pairs; `lpips_div` — mean pairwise LPIPS
  among `n_per_prompt` samples of each of the first `n_div_prompts` captions.
* reconstruction: `rec_match` — attributes of G(M(C_img(x))) that read as x's, over every
  (image, attribute) pair of the caption renders.
* editing, on `n_edit` (render, edit) pairs at β = 1: each render gets one edit from the toy
  vocabulary (`metrics.edit_prompts('prompt')`) asking for a value it does not have (the same pairs
  for every variant); `edit_acc` — the target reads after the edit; `edit_acc_beta0` — it already
  read at β = 0 (the reconstruction), the baseline `edit_acc` must beat; `edit_pres` — other
  attributes unchanged from the reconstruction (`metrics.editing_scores`); `edit_fid` — FID of the
  edited images against the renders (± `edit_fid_se`); `edit_lpips` — LPIPS between each edit and its input.

LPIPS is the world's (`losses.LPIPSLoss.for_profile`): for toyfaces the CLIP-trunk distance, the same
network as M's LPIPS training term (there is no ImageNet network offline) and on its own scale (not
the AlexNet LPIPS's 0-1 range). Toy FIDs use 256-d classifier features: below a few hundred images
they are dominated by the estimator's bias, so CI-size numbers only show that the pipeline runs.

Each variant trains into `<work>/<variant>/` (a normal run folder: `log.jsonl`, checkpoints,
`mapping.safetensors`); a finished variant is not retrained and an interrupted one resumes, so the
full sweep can be stopped and restarted. The CSV, a figure (`sweeps.png`) and `sweeps.json` (size,
command, the weights used, timings) go to `--out`.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

__all__ = [
    "VARIANTS",
    "SETTINGS",
    "SIZES",
    "COLUMNS",
    "SweepSize",
    "EvalData",
    "eval_data",
    "edit_set",
    "edit_pairs",
    "zoom",
    "train_config",
    "train_variant",
    "model_from_mapping",
    "fid_with_se",
    "evaluate",
    "run_sweep",
    "write_csv",
    "read_csv",
    "plot_sweep",
    "paper_tables",
    "format_table",
    "verdicts",
    "main",
]

# name → TrainConfig overrides (Table 3: depth; Table 4: loss terms). Everything else is the size's recipe.
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {"layers": 12, "adv": True, "div": True},
    "layers8": {"layers": 8, "adv": True, "div": True},
    "layers4": {"layers": 4, "adv": True, "div": True},
    "no_adv": {"layers": 12, "adv": False, "div": True},
    "no_div": {"layers": 12, "adv": True, "div": False},
    "no_adv_div": {"layers": 12, "adv": False, "div": False},
}

# name → (text correction, edit space, edit mode, edit images); evaluation only, no training.
SETTINGS: dict[str, dict[str, Any]] = {
    "paper": {"correction": "none", "edit_space": "wplus", "edit_mode": "paper", "edit_images": "renders"},
    "recentre": {"correction": "recentre", "edit_space": "wplus", "edit_mode": "paper", "edit_images": "renders"},
    "nearest": {"correction": "nearest", "edit_space": "wplus", "edit_mode": "neighbours", "edit_images": "renders"},
    "clip_space": {"correction": "none", "edit_space": "clip", "edit_mode": "paper", "edit_images": "renders"},
    "directional": {"correction": "none", "edit_space": "wplus", "edit_mode": "directional", "edit_images": "renders"},
    "zoomed": {"correction": "none", "edit_space": "wplus", "edit_mode": "paper", "edit_images": "zoomed"},
}
# which metric groups a setting changes (the others equal the 'paper' row's and are not recomputed)
_SETTING_GROUPS = {"paper": ("generation", "reconstruction", "editing"), "recentre": ("generation", "editing"),
                   "nearest": ("generation", "editing"),
                   "clip_space": ("editing",), "directional": ("editing",), "zoomed": ("editing",)}

COLUMNS = [
    "size", "variant", "setting", "layers", "adv", "div", "correction", "edit_space", "edit_mode", "edit_images",
    "steps", "train_seconds", "eval_seconds",
    "fid", "fid_se", "lpips_ref", "lpips_div", "text_acc", "text_pairs", "rec_match",
    "edit_acc", "edit_acc_beta0", "edit_pres", "edit_fid", "edit_fid_se", "edit_lpips", "edit_n",
]


@dataclass(frozen=True)
class SweepSize:
    """How big a sweep is: which variants, their training recipe, the evaluation set sizes (08_evaluation.ipynb).

    train: `TrainConfig` fields shared by every variant (epochs, epoch_size, batch_size, max_steps, …).
    settings: evaluation settings run on the `base` variant (every variant gets 'paper', and
    'nearest' when it is listed).
    """

    name: str
    variants: tuple[str, ...]
    train: dict[str, Any] = field(default_factory=dict)
    settings: tuple[str, ...] = tuple(SETTINGS)
    n_captions: int = 500
    n_div_prompts: int = 50
    n_per_prompt: int = 8
    n_edit: int = 500


SIZES: dict[str, SweepSize] = {
    # CI: two variants, 3 steps of 8 images each: checks that the sweep runs, numbers mean nothing.
    "ci": SweepSize("ci", ("base", "layers4"), dict(epochs=1, epoch_size=32, batch_size=8, max_steps=3),
                    n_captions=32, n_div_prompts=4, n_per_prompt=4, n_edit=32),
    # demo: every variant, 2 epochs of 512 renders (32 steps of 32): minutes per variant on a CPU.
    "demo": SweepSize("demo", tuple(VARIANTS), dict(epochs=2, epoch_size=512, batch_size=32),
                      n_captions=256, n_div_prompts=16, n_per_prompt=8, n_edit=256),
    # full: every variant with the shipped M's recipe (data/MANIFEST.json: 8 epochs × 2,048 renders, batch 32 =
    # 512 steps) and issue #6's evaluation sizes (500 captions, 8 samples per prompt, 500 edits).
    "full": SweepSize("full", tuple(VARIANTS), dict(epochs=8, epoch_size=2048, batch_size=32),
                      n_captions=500, n_div_prompts=50, n_per_prompt=8, n_edit=500),
}


# -------------------------------------------------------------------------------------------------
# evaluation data: the same captions, renders and edit pairs for every variant


@dataclass
class EvalData:
    """Held-out renders with captions, and the edit pairs (08_evaluation.ipynb).

    images: `[N, 3, R, R]` renders; attributes: their true attribute dicts; captions; mentioned:
    per caption `{attribute: value}` it states. edit_images: `[E, 3, R, R]` (the first E renders of a
    second held-out stream), edit_attrs, edit_texts / edit_targets: one (text, (attribute, value)) each.
    """

    images: torch.Tensor
    attributes: list[dict[str, Any]]
    captions: list[str]
    mentioned: list[dict[str, Any]]
    edit_images: torch.Tensor
    edit_attributes: list[dict[str, Any]]
    edit_texts: list[str]
    edit_targets: list[tuple[str, str]]


def _edit_choice(attrs: dict[str, Any], rng: np.random.Generator) -> tuple[str, str, str]:
    """One edit from the toy vocabulary that asks for a value the face does not have (a real change);
    on a bald face no hair-colour or bangs edit (those would also have to grow hair)."""
    from clip2gan.evaluation.metrics import edit_prompts

    options = [(t, a, v) for t, a, v in edit_prompts("prompt")
               if attrs[a] != v and not (attrs["hair_length"] == "bald" and a in ("hair_color", "bangs"))]
    return options[int(rng.integers(len(options)))]


def edit_set(n: int, resolution: int, seed: int = 0) -> tuple[torch.Tensor, list[dict[str, Any]], list[str], list[tuple[str, str]]]:
    """`n` held-out renders, each with one edit asking for a value it does not have (07_editing.ipynb).

    Returns (images `[n, 3, R, R]`, their attributes, edit texts, (attribute, value) targets);
    deterministic per seed, drawn from a stream no training run uses.
    """
    from clip2gan.toy.faces import EVAL_SEED, ToyFaces

    faces = ToyFaces(n, seed=EVAL_SEED + seed + 1, resolution=resolution)
    items = [faces[i] for i in range(len(faces))]
    rng = np.random.default_rng([seed, 6])
    choices = [_edit_choice(it["attributes"], rng) for it in items]
    images = torch.stack([it["image"] for it in items]) if items else torch.empty(0, 3, resolution, resolution)
    return images, [it["attributes"] for it in items], [c[0] for c in choices], [(c[1], c[2]) for c in choices]


def eval_data(size: SweepSize, resolution: int, seed: int = 0) -> EvalData:
    """Build the evaluation set of a sweep size at the generator's resolution (deterministic per seed)."""
    from clip2gan.toy.faces import ATTRIBUTES, EVAL_SEED, ToyFaces

    faces = ToyFaces(size.n_captions, seed=EVAL_SEED + seed, resolution=resolution)
    items = [faces[i] for i in range(len(faces))]
    mentioned = [{a: it["attributes"][a] for a, m in zip(ATTRIBUTES, it["mentioned"].tolist()) if m} for it in items]
    edit_images, edit_attributes, edit_texts, edit_targets = edit_set(size.n_edit, resolution, seed)
    return EvalData(images=torch.stack([it["image"] for it in items]), attributes=[it["attributes"] for it in items],
                    captions=[it["caption"] for it in items], mentioned=mentioned, edit_images=edit_images,
                    edit_attributes=edit_attributes, edit_texts=edit_texts, edit_targets=edit_targets)


def zoom(images: torch.Tensor, factor: float = 1.25) -> torch.Tensor:
    """Centre crop 1/factor of each side and resize back: faces larger than any training render."""
    r = images.shape[-1]
    c = max(1, round(r / factor))
    top = (r - c) // 2
    crop = images[..., top:top + c, top:top + c]
    return torch.nn.functional.interpolate(crop, size=(r, r), mode="bicubic", align_corners=False,
                                           antialias=True).clamp(-1, 1)


# -------------------------------------------------------------------------------------------------
# training


def train_config(size: SweepSize, variant: str, work: str | Path, profile: str = "toyfaces", seed: int = 0,
                 device: str = "auto", **overrides: Any):
    """The `TrainConfig` of one variant of a sweep (08_evaluation.ipynb)."""
    from clip2gan.train import TrainConfig

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {list(VARIANTS)}")
    fields = {"profile": profile, "seed": seed, "device": device, "sample_every": 0, "log_every": 1,
              **size.train, **VARIANTS[variant], **overrides, "out": str(Path(work) / variant)}
    return TrainConfig(**fields)


def _fresh_d(G: torch.nn.Module, seed: int, device: torch.device) -> torch.nn.Module:
    from clip2gan.train import discriminator_like

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return discriminator_like(G).to(device)


def _train_seconds(run: Path) -> float | None:
    from clip2gan.viz import read_jsonl

    log = run / "log.jsonl"
    rows = read_jsonl(log) if log.is_file() else []
    return rows[-1].get("seconds") if rows else None


def train_variant(config, world: dict[str, Any], dataset: torch.utils.data.Dataset | None = None,
                  progress: bool = False) -> dict[str, Any]:
    """Train (or resume, or skip if finished) one variant; returns {'mapping', 'steps', 'train_seconds'}.

    world: `clip2gan.train.build_world`'s dict; its frozen CLIP, G, identity and LPIPS are shared by
    every variant and D is replaced by a fresh one (same seed for every variant).
    """
    from clip2gan.model import load_mapping
    from clip2gan.train import Trainer

    run = Path(config.out)
    mapping = run / "mapping.safetensors"
    if mapping.is_file():
        _, cfg = load_mapping(mapping)
        done = cfg.get("train", {})
        same = all(done.get(k) == getattr(config, k) for k in ("layers", "adv", "div", "epochs", "epoch_size",
                                                                 "batch_size", "seed", "max_steps"))
        if same:
            return {"mapping": mapping, "steps": cfg.get("steps"), "train_seconds": _train_seconds(run)}
        raise FileExistsError(f"{run} holds a finished run with other settings than this sweep's; move it away "
                              "or choose another --work folder")
    device = next(world["G"].parameters()).device
    trainer = Trainer(config, world={**world, "D": _fresh_d(world["G"], config.seed, device)}, dataset=dataset,
                      progress=progress)
    summary = trainer.fit(resume=(run / "checkpoint.safetensors").is_file())
    return {"mapping": Path(summary["mapping"]), "steps": summary["steps"], "train_seconds": _train_seconds(run)}


def model_from_mapping(world: dict[str, Any], mapping: str | Path, correction: str = "none"):
    """A `CLIP2GAN` from a trained M and the sweep's shared CLIP and G (no reload from the hub)."""
    from clip2gan.model import CLIP2GAN, load_feature_bank, load_mapping

    G = world["G"]
    device = next(G.parameters()).device
    M, cfg = load_mapping(mapping, device=device)
    means = cfg.get("feature_means", {})
    model = CLIP2GAN(world["clip"], M, G, profile=world["world"].get("profile", "custom"),
                     text_correction=None if correction == "none" else correction,
                     feature_bank=load_feature_bank(mapping),
                     image_mean=torch.tensor(means["image"]) if "image" in means else None,
                     text_mean=torch.tensor(means["text"]) if "text" in means else None)
    return model.to(device).eval()


# -------------------------------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def edit_pairs(model, images: torch.Tensor, texts: Sequence[str], space: str = "wplus", mode: str = "paper",
               beta: float = 1.0, layers: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstructions, edits) `[N, 3, R, R]` of images[i] edited with texts[i] (07_editing.ipynb).

    The same as `clip2gan.edit.edit_image(model, images[i], texts[i], beta, space, layers, mode)` per
    pair, batched: one encode, one direction per distinct text, one synthesis of every code.
    """
    from clip2gan.edit import EncodedImages, edited_latents, encode_for_edit, text_direction

    if len(texts) != len(images):
        raise ValueError(f"{len(images)} images but {len(texts)} texts")
    enc = encode_for_edit(model, images, warn=False)
    ws = enc.ws.clone()
    for text in sorted(set(texts)):
        idx = torch.tensor([i for i, t in enumerate(texts) if t == text], device=ws.device)
        sub = EncodedImages(images=enc.images[idx.cpu()], features=enc.features[idx], ws=enc.ws[idx])
        ws[idx] = edited_latents(model, sub, text_direction(model, text, mode=mode, space=space, features=sub.features), beta,
                                 space=space, layers=layers)
    both = model.synthesize(torch.cat([enc.ws, ws])).clamp(-1, 1).float().cpu()
    return both[:len(ws)], both[len(ws):]


@torch.no_grad()
def fid_with_se(real: torch.Tensor, fake: torch.Tensor, extractor, n_boot: int = 20, seed: int = 0,
                batch_size: int = 256) -> tuple[float, float]:
    """(FID, its bootstrap standard error) between two image sets in `extractor`'s features (08_evaluation.ipynb).

    The error bar resamples both feature sets with replacement `n_boot` times and takes the standard
    deviation of the bootstrap FIDs: the spread a different draw of images of the same size would
    give. (Bootstrap FIDs are biased upwards — duplicates shrink the effective sample — so only
    their spread is used.)
    """
    from clip2gan.evaluation.metrics import feature_statistics, frechet_distance

    fr = torch.cat([extractor(b).float().cpu() for b in real.split(batch_size)]).double()
    ff = torch.cat([extractor(b).float().cpu() for b in fake.split(batch_size)]).double()
    value = frechet_distance(*feature_statistics(fr), *feature_statistics(ff))
    g = torch.Generator().manual_seed(seed)
    boots = []
    for _ in range(n_boot):
        ir = torch.randint(len(fr), (len(fr),), generator=g)
        jf = torch.randint(len(ff), (len(ff),), generator=g)
        boots.append(frechet_distance(*feature_statistics(fr[ir]), *feature_statistics(ff[jf])))
    return value, float(np.std(boots, ddof=1))


@torch.no_grad()
def evaluate(model, data: EvalData, classifier, lpips, size: SweepSize, setting: str = "paper", seed: int = 0,
             groups: Sequence[str] | None = None, progress: bool = False) -> dict[str, Any]:
    """The metrics of one trained M under one evaluation setting (see the module docstring).

    groups: which of 'generation', 'reconstruction', 'editing' to compute (default: the setting's).
    Returns a dict with the metric columns of `COLUMNS` (absent groups are missing).
    """
    from clip2gan.evaluation.metrics import (
        editing_scores,
        lpips_diversity,
        lpips_to_reference,
        text_attribute_accuracy,
        toy_feature_extractor,
    )

    spec = SETTINGS[setting]
    groups = tuple(groups if groups is not None else _SETTING_GROUPS[setting])
    extract = toy_feature_extractor(classifier)
    out: dict[str, Any] = {}
    start = time.perf_counter()
    if "generation" in groups:
        fake = model.generate(data.captions, n_per_prompt=1, seed=seed)
        out["fid"], out["fid_se"] = fid_with_se(data.images, fake, extract, seed=seed)
        out["lpips_ref"] = lpips_to_reference(fake, data.images, lpips, progress=progress)
        acc = text_attribute_accuracy(classifier, fake, data.mentioned, details=True)
        out["text_acc"], out["text_pairs"] = acc["accuracy"], acc["n_pairs"]
        k, n = min(size.n_div_prompts, len(data.captions)), size.n_per_prompt
        samples = model.generate(data.captions[:k], n_per_prompt=n, seed=seed + 1)
        out["lpips_div"] = lpips_diversity(samples.view(k, n, *samples.shape[1:]), lpips, progress=progress)
    if "reconstruction" in groups:
        rec = model.reconstruct(data.images).float().cpu()
        out["rec_match"] = text_attribute_accuracy(classifier, rec, data.attributes)
    if "editing" in groups:
        images = zoom(data.edit_images) if spec["edit_images"] == "zoomed" else data.edit_images
        before, after = edit_pairs(model, images, data.edit_texts, spec["edit_space"], spec["edit_mode"])
        attrs = [a for a, _ in data.edit_targets]
        values = [v for _, v in data.edit_targets]
        acc, pres = editing_scores(classifier, before, after, attrs, values)
        baseline, _ = editing_scores(classifier, before, before, attrs, values)  # the target already reads at β = 0
        edit_fid, edit_fid_se = fid_with_se(data.edit_images, after, extract, seed=seed)
        out.update(edit_acc=acc, edit_acc_beta0=baseline, edit_pres=pres, edit_n=len(attrs), edit_fid=edit_fid,
                   edit_fid_se=edit_fid_se, edit_lpips=lpips_to_reference(after, images, lpips, progress=progress))
    out["eval_seconds"] = round(time.perf_counter() - start, 1)
    return out


# -------------------------------------------------------------------------------------------------
# one trained M: evaluate it, ship it

#: the issues' bars for a trained M at full size (metric, threshold, which issue)
BARS: tuple[tuple[str, float, str], ...] = (("rec_match", 0.90, "issue 5"), ("text_acc", 0.75, "issue 5"),
                                            ("text_acc", 0.85, "issue 6"), ("lpips_div", 0.05, "issue 6"),
                                            ("edit_acc", 0.80, "issue 6"), ("edit_pres", 0.90, "issue 6"))


def bars(metrics: dict[str, Any]) -> dict[str, bool]:
    """{'text_acc>=0.75 (issue 5)': met?, ...} for the metrics of `evaluate` (those present)."""
    return {f"{k}>={t:.2f} ({issue})": bool(metrics[k] >= t) for k, t, issue in BARS if k in metrics}


def evaluate_mapping(path: str | Path, size: str | SweepSize = "full", seed: int = 0, device: str = "cpu",
                     progress: bool = False) -> dict[str, Any]:
    """`evaluate` for one trained M (a run folder or a mapping file) on the world it was trained with,
    under the checkpoint's defaults: setting 'nearest' for a checkpoint with a feature bank, else
    'paper' (05_training.ipynb); adds 'setting', 'bars' (see `BARS`) and, when the default is not the
    paper's, 'paper_rule': the generation and editing metrics of the paper's bare rule."""
    from clip2gan.losses import LPIPSLoss
    from clip2gan.model import CLIP2GAN
    from clip2gan.toy.faces import AttributeClassifier

    size = SIZES[size] if isinstance(size, str) else size
    model = CLIP2GAN.from_checkpoint(path, device=device)
    data = eval_data(size, model.resolution, seed)
    lpips = LPIPSLoss.for_profile(model.profile, clip_encoder=model.clip).to(model.device)
    classifier = AttributeClassifier.from_pretrained(device=device)

    def rounded(m: dict[str, Any]) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}

    default = "nearest" if (model.text_correction, model.edit_mode) == ("nearest", "neighbours") else "paper"
    metrics = rounded(evaluate(model, data, classifier, lpips, size, setting=default, seed=seed,
                               groups=("generation", "reconstruction", "editing"), progress=progress))
    out = {**metrics, "setting": default, "bars": bars(metrics)}
    if default != "paper":
        model.text_correction = None
        out["paper_rule"] = rounded(evaluate(model, data, classifier, lpips, size, setting="paper", seed=seed,
                                             groups=("generation", "editing"), progress=progress))
    return out


def ship_mapping(run: str | Path, command: str, device_note: str, size: str = "full", seed: int = 0,
                 data_dir: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a finished run's M, copy it to `data/toyfaces-mapping.{safetensors,json}` and write its
    manifest entry (sha256, the reproducing command, training time, device, the metrics and bars)."""
    import shutil

    from clip2gan import hub
    from clip2gan.model import load_mapping

    run = Path(run)
    src = run / "mapping.safetensors"
    if not src.is_file():
        raise FileNotFoundError(f"{src} does not exist: train the run to the end first")
    metrics = evaluate_mapping(run, size=size, seed=seed)
    _, cfg = load_mapping(src)
    data_dir = Path(data_dir) if data_dir is not None else hub.MANIFEST_PATH.parent
    dst = data_dir / "toyfaces-mapping.safetensors"
    shutil.copyfile(src, dst)
    shutil.copyfile(src.with_suffix(".json"), dst.with_suffix(".json"))
    bar_flags = metrics.pop("bars")
    size_obj = SIZES[size]
    return hub.write_manifest_entry(
        dst, command, device=device_note, train_seconds=_train_seconds(run), steps=cfg.get("steps"),
        world_sha256=cfg.get("world_sha256"), metrics=metrics, bars=bar_flags,
        evaluation=(f"python -m clip2gan.evaluation.sweeps --evaluate {run} --size {size} (clip2gan.evaluation.sweeps.evaluate under "
                    f"the checkpoint's default setting {metrics['setting']!r}; "
                    f"'paper_rule': the paper's rule (text features as they are, n = M(t)); {size_obj.n_captions} held-out "
                    f"captions/renders, {size_obj.n_per_prompt} samples × {size_obj.n_div_prompts} prompts for "
                    f"diversity, {size_obj.n_edit} edits at β = 1)"))


# -------------------------------------------------------------------------------------------------
# the sweep


def run_sweep(size: str | SweepSize = "ci", out: str | Path = "results", work: str | Path | None = None,
              profile: str = "toyfaces", device: str = "auto", seed: int = 0, variants: Sequence[str] | None = None,
              world: dict[str, Any] | None = None, classifier=None, dataset_factory=None, progress: bool = True,
              log=print) -> list[dict[str, Any]]:
    """Train and evaluate every variant of a sweep size; write `<out>/sweeps.csv`, `.png`, `.json` (08_evaluation.ipynb).

    world: a `build_world` dict to use instead of the profile's (tests inject a tiny one); classifier:
    the toy `AttributeClassifier` (default: the shipped one); dataset_factory(config) → the training
    Dataset (default: the profile's). Returns the rows (dicts with `COLUMNS`).
    """
    from clip2gan.runtime import pick_device
    from clip2gan.train import build_world

    size = SIZES[size] if isinstance(size, str) else size
    names = list(variants) if variants is not None else list(size.variants)
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    if "base" not in names:
        names.insert(0, "base")  # the reference every table compares with
    out = Path(out)
    work = Path(work) if work is not None else Path("runs") / f"sweeps-{size.name}"
    dev = pick_device(device)
    started = time.perf_counter()
    if world is None:
        world = build_world(train_config(size, "base", work, profile=profile, seed=seed, device=str(dev)), dev)
    if classifier is None:
        from clip2gan.toy.faces import AttributeClassifier

        classifier = AttributeClassifier.from_pretrained(device=dev)
    data = eval_data(size, int(world["G"].img_resolution), seed=seed)
    rows: list[dict[str, Any]] = []
    for name in names:
        config = train_config(size, name, work, profile=profile, seed=seed, device=str(dev))
        log(f"[{size.name}] {name}: training ({config.layers} layers, adv={config.adv}, div={config.div}) → {config.out}")
        dataset = dataset_factory(config) if dataset_factory is not None else None
        trained = train_variant(config, world, dataset=dataset, progress=progress)
        settings = ([s for s in size.settings if s in SETTINGS] if name == "base"
                    else [s for s in ("paper", "nearest") if s in size.settings])
        if "paper" not in settings:
            settings.insert(0, "paper")
        for setting in settings:
            spec = SETTINGS[setting]
            model = model_from_mapping(world, trained["mapping"], correction=spec["correction"])
            metrics = evaluate(model, data, classifier, world["lpips"], size, setting, seed=seed, progress=False)
            row = {"size": size.name, "variant": name, "setting": setting, **{k: VARIANTS[name][k] for k in ("layers", "adv", "div")},
                   **spec, "steps": trained["steps"], "train_seconds": trained["train_seconds"], **metrics}
            rows.append(row)
            log(f"[{size.name}] {name}/{setting}: " + ", ".join(
                f"{k}={row[k]:.3f}" for k in ("fid", "text_acc", "lpips_div", "rec_match", "edit_acc", "edit_pres")
                if isinstance(row.get(k), float)))
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "sweeps.csv")
    fig = plot_sweep(rows)
    fig.savefig(out / "sweeps.png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    command = f"python -m clip2gan.evaluation.sweeps --size {size.name} --out {out}"
    if seed:
        command += f" --seed {seed}"
    if variants is not None:
        command += f" --variants {','.join(names)}"
    train_total = sum(r["train_seconds"] or 0 for r in rows if r["setting"] == "paper")
    meta = {"size": dataclasses.asdict(size), "command": command, "profile": profile, "seed": seed,
            "device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "seconds": round(time.perf_counter() - started, 1), "train_seconds": round(train_total, 1),
            "weights": _weights_record(profile), "variants": names}
    (out / "sweeps.json").write_text(json.dumps(meta, indent=2) + "\n")
    return rows


def _weights_record(profile: str) -> dict[str, str]:
    """sha256 (first 16 hex digits) of the toy weights a sweep used, so a CSV can be traced to them."""
    from clip2gan import hub

    record = {}
    for name in hub.PROFILES.get(profile, {}).get("artifacts", []):
        if name.endswith("-mapping"):
            continue
        try:
            path = hub.resolve(name)
        except Exception:  # noqa: BLE001 — a missing or injected artefact is recorded as such
            record[name] = "not resolved (injected world or missing)"
            continue
        record[name] = hub.sha256_file(path)[:16]
    return record


def weights_changed(meta: dict[str, Any], profile: str = "toyfaces") -> dict[str, tuple[str, str]]:
    """The toy weights that differ between a stored sweep's `sweeps.json` (`meta`) and those resolved
    now: `{name: (recorded, current)}` — empty when the sweep describes the weights in use
    (08_evaluation.ipynb). A committed sweep outlives retrained weights; this says when it has."""
    recorded = meta.get("weights", {})
    current = _weights_record(profile)
    return {name: (recorded.get(name, "not recorded"), now) for name, now in current.items()
            if recorded.get(name) != now}


# -------------------------------------------------------------------------------------------------
# CSV, figure, tables, verdicts


def write_csv(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Rows → CSV with `COLUMNS` (floats rounded to 4 digits; missing values empty), written atomically."""
    import io

    from clip2gan.checkpoint import atomic_write_text

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
    """A sweep CSV back as a list of dicts (numbers and booleans parsed, empty cells None)."""
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
    """A plain-text table (columns padded to their widths)."""
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
                                         "DESIGN §1 ambiguities 4-5 (not in the paper)")
    return tables


def _se(p: float, n: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))


def _compare_acc(a: dict[str, Any], b: dict[str, Any], key: str, n_key: str) -> tuple[float, float]:
    """(a − b, 2 standard errors of the difference) of a proportion."""
    pa, pb = a[key], b[key]
    na, nb = a.get(n_key) or 1, b.get(n_key) or 1
    return pa - pb, 2 * math.sqrt(_se(pa, na) ** 2 + _se(pb, nb) ** 2)


def _verdict(better: Sequence[bool | None]) -> str:
    """A claim's verdict from its comparisons (True: as the paper says, False: against it, None: undecided).

    'holds here' needs every comparison decided in the paper's favour; 'partly holds' when the
    decided ones agree and the others are within noise; 'does not hold here' when every decided one
    disagrees; 'mixed' when decided ones disagree with each other; 'inconclusive' when none is decided.
    """
    known = [b for b in better if b is not None]
    if not known:
        return "inconclusive (differences within 2 standard errors)"
    if all(known):
        return "holds here" if len(known) == len(better) else "partly holds (the rest is within 2 standard errors)"
    if not any(known):
        return "does not hold here"
    return "mixed"


def verdicts(rows: Sequence[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(paper claim, verdict, the numbers) for each claim the sweep measures (08_evaluation.ipynb).

    Each claim is a set of comparisons. A proportion (attribute or editing accuracy) counts only when
    the difference exceeds two binomial standard errors, an FID only beyond two bootstrap standard
    errors (`fid_with_se`; rows without `fid_se` use the direction alone), otherwise the comparison
    is undecided; LPIPS diversity has no error bar here, so its direction alone is used. The verdict
    ('holds here', 'partly holds', 'mixed', 'does not hold here', 'inconclusive': `_verdict`) comes
    with the numbers it rests on.
    """
    base = _row(rows, "base")
    if base is None:
        return [("every claim", "not measured", "no 'base' row")]
    out: list[tuple[str, str, str]] = []

    def prop(a, b, key, n_key):
        """a's proportion higher than b's? (None: within 2 SE)."""
        d, margin = _compare_acc(a, b, key, n_key)
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
        out.append((text, _verdict([c[0] for c in comparisons]), "; ".join(c[1] for c in comparisons)))

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
        claim("DESIGN ambiguity 4: bridging the modality gap (nearest image features) beats the bare text feature",
              [lower(near, base, "fid"), prop(near, base, "text_acc", "text_pairs")])
    clip_row = _row(rows, "base", "clip_space")
    if clip_row is not None:
        claim("Table 6: editing in w+ beats editing in CLIP space",
              [lower(base, clip_row, "edit_fid"), prop(base, clip_row, "edit_acc", "edit_n")])
    n = base["edit_n"]
    gain, margin = _compare_acc(base, {**base, "edit_acc": base["edit_acc_beta0"]}, "edit_acc", "edit_n")
    claim("§4.4: β-editing changes the asked attribute and keeps the others",
          [(None if abs(gain) <= margin else gain > 0,
            f"edit_acc {base['edit_acc']:.3f} at β = 1 vs {base['edit_acc_beta0']:.3f} at β = 0 (±{margin:.3f}, {n} pairs)"),
           (base["edit_pres"] >= 0.9, f"preserved {base['edit_pres']:.3f} (bar: 0.9)")])
    zoomed = _row(rows, "base", "zoomed")
    if zoomed is not None:
        gain_z, margin_z = _compare_acc(zoomed, {**zoomed, "edit_acc": zoomed["edit_acc_beta0"]}, "edit_acc", "edit_n")
        drop, margin_d = _compare_acc(base, zoomed, "edit_acc", "edit_n")
        claim("Table 5: editing works on images outside the training set as on those inside",
              [(None if abs(gain_z) <= margin_z else gain_z > 0,
                f"zoomed: edit_acc {zoomed['edit_acc']:.3f} vs {zoomed['edit_acc_beta0']:.3f} at β = 0 (±{margin_z:.3f})"),
               (abs(drop) <= margin_d or drop < 0,  # no significant drop
                f"edit_acc {zoomed['edit_acc']:.3f} zoomed vs {base['edit_acc']:.3f} renders (±{margin_d:.3f})")])
    return out


def plot_sweep(rows: Sequence[dict[str, Any]]):
    """One figure: generation (FID, attribute accuracy, diversity) per variant; editing per setting of `base`."""
    import matplotlib.pyplot as plt

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
            return 2 * _se(r["text_acc"], r["text_pairs"])
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
# command line


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m clip2gan.evaluation.sweeps", description=__doc__.split("\n")[0])
    p.add_argument("--size", default="ci", choices=list(SIZES))
    p.add_argument("--out", default="results", help="where sweeps.csv, sweeps.png and sweeps.json go")
    p.add_argument("--work", default=None, help="run folders of the variants (default runs/sweeps-<size>)")
    p.add_argument("--profile", default="toyfaces", choices=["toyfaces"], help="the toy world (its classifier scores)")
    p.add_argument("--variants", default=None, help=f"comma-separated subset of {','.join(VARIANTS)} (base is always run)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--list", action="store_true", help="print the variants, settings and sizes, run nothing")
    p.add_argument("--evaluate", default=None, metavar="RUN",
                   help="instead of a sweep: evaluate one trained M (run folder or mapping file) at --size, print JSON")
    p.add_argument("--ship", action="store_true",
                   help="with --evaluate RUN: also copy its M to data/ and write the manifest entry (needs --command)")
    p.add_argument("--command", default=None, help="with --ship: the training command that reproduces the run")
    p.add_argument("--device-note", default=None, help="with --ship: where it trained (default: CPU + torch version)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.ship and not (args.evaluate and args.command):
        p.error("--ship needs --evaluate RUN and --command 'the training command'")
    if args.evaluate:
        if args.ship:
            from clip2gan.runtime import device_label

            note = args.device_note or device_label("cpu")
            entry = ship_mapping(args.evaluate, args.command, note, size=args.size, seed=args.seed)
            print(json.dumps(entry, indent=1))
        else:
            print(json.dumps(evaluate_mapping(args.evaluate, size=args.size, seed=args.seed), indent=1))
        return 0
    import matplotlib

    matplotlib.use("Agg")  # the command line draws into a file only
    size = SIZES[args.size]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    if args.list:
        for name in variants or size.variants:
            print(f"variant {name:<11} {VARIANTS[name]}")
        for name in size.settings:
            print(f"setting {name:<11} {SETTINGS[name]}")
        print(f"size {size.name}: train {size.train or 'TrainConfig defaults'}; captions {size.n_captions}, "
              f"diversity {size.n_div_prompts} × {size.n_per_prompt}, edits {size.n_edit}")
        return 0
    try:
        run_sweep(size, out=args.out, work=args.work, profile=args.profile, device=args.device, seed=args.seed,
                  variants=variants)
    except ValueError as err:
        print(f"clip2gan.evaluation.sweeps: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {Path(args.out) / 'sweeps.csv'} and {Path(args.out) / 'sweeps.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
