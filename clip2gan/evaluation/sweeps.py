"""Ablation sweeps behind the paper's tables, on the toy world (08_evaluation.ipynb).

    python -m clip2gan.evaluation.sweeps --size ci   --out results/      # 2 variants × 3 steps (minutes; numbers meaningless)
    python -m clip2gan.evaluation.sweeps --size demo --out results/      # 6 variants × 32 steps (about an hour on a busy CPU)
    python -m clip2gan.evaluation.sweeps --size full --out results/      # 6 variants × the shipped M's recipe (hours on a CPU)
    python -m clip2gan.evaluation.sweeps --evaluate runs/NAME --size full  # one trained M's metrics and the project's targets
    python -m clip2gan.evaluation.sweeps --evaluate runs/NAME --size full --ship --command '...'  # and ship it to data/
    python -m clip2gan.evaluation.sweeps --comparisons --size full --out results/   # published methods (comparisons.py)
    python -m clip2gan.evaluation.sweeps --size full --clip PATH --clip-name patch4 --out DIR  # the sweep on another CLIP
    python -m clip2gan.evaluation.sweeps --backbone --size full --clip PATH --clip-name patch4 --out results/  # Table 3

A sweep trains one mapping network M per *variant* with `clip2gan.train.Trainer` (frozen CLIP and G,
a fresh D per variant, the same seed, data and step budget), evaluates each M with
`clip2gan.evaluation.protocol.evaluate` under the evaluation settings (`protocol.SETTINGS`) and writes
one CSV row per (variant, evaluation setting) (`clip2gan.evaluation.tables`):

    variants (trained)            Table   what changes
    base    12 layers, L_adv, L_div  1, 3-6  the paper's configuration (eq. 10, every term)
    layers8 / layers4              3       M's depth (the paper's 8 and 4 layers)
    no_adv / no_div / no_adv_div   4       L_adv and/or L_div removed (λ = 0)

Every evaluation setting runs on `base`; 'paper' and 'nearest' on every variant. The metrics, the
evaluation data and how differences are judged are described in `clip2gan.evaluation.protocol`.

LPIPS is the world's (`losses.LPIPSLoss.for_profile`): for toyfaces the CLIP-trunk distance, the same
network as M's LPIPS training term (there is no ImageNet network offline) and on its own scale (not
the AlexNet LPIPS's 0-1 range). Toy FIDs use 256-d classifier features: below a few hundred images
they are dominated by the estimator's bias, so CI-size numbers only show that the pipeline runs.

Each variant trains into `<work>/<variant>/` (a normal run folder: `log.jsonl`, checkpoints,
`mapping.safetensors`); a finished variant is not retrained and an interrupted one resumes, so the
full sweep can be stopped and restarted. The CSV, a figure (`sweeps.png`) and `sweeps.json` (size,
command, the weights used, timings) go to `--out`. The command line is built from `SweepCommand`
(`clip2gan.cli`).

Table 3's second axis, the CLIP backbone (ViT-B/32 vs ViT-B/16 in the paper), is a sweep on another toy CLIP
file (`--clip PATH`, named by `--clip-name` in the `clip` column): only the CLIP that M reads changes
(`backbone_world`), and its runs live in their own work folder (`default_work`: runs/sweeps-<size>-<name>),
which the reuse check (`SAME_RUN_KEYS`, and the CLIP file's sha256) guards. `--train-seed` trains with another
seed while scoring on the same evaluation data (the `train_seed` column). `run_backbone` (`--backbone`) runs
Table 3's grid for the shipped CLIP and the given one (4, 8, 12 layers; 12 layers with seeds 0, 1, 2) under
both methods and writes `backbone.csv`, `.json`, `.png`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from clip2gan import hub
from clip2gan.cli import add_config_args, config_from_args, option
from clip2gan.clip_encoder import ClipEncoder
from clip2gan.evaluation import comparison_report
from clip2gan.evaluation.protocol import SETTINGS, bars, eval_data, evaluate
from clip2gan.evaluation.tables import plot_backbone, plot_sweep, write_csv
from clip2gan.losses import LPIPSLoss
from clip2gan.model import CLIP2GAN, METHODS, load_mapping, world_fingerprint
from clip2gan.profiles import PROFILES
from clip2gan.runtime import device_label, pick_device
from clip2gan.toy.faces import AttributeClassifier
from clip2gan.train import TrainConfig, Trainer, build_world, discriminator_like
from clip2gan.viz import read_jsonl

__all__ = [
    "VARIANTS",
    "SIZES",
    "SweepSize",
    "train_config",
    "SAME_RUN_KEYS",
    "run_seconds",
    "train_variant",
    "SHIPPED_CLIP",
    "BACKBONE_GRID",
    "default_work",
    "backbone_world",
    "run_backbone",
    "weights_record",
    "model_from_mapping",
    "evaluate_mapping",
    "ship_mapping",
    "run_sweep",
    "weights_changed",
    "SweepCommand",
    "parse_args",
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


#: the `clip` column's name for the shipped toy CLIP. Its vision tower cuts a 32-px image into 8-px patches
#: (4 × 4 = 16 tokens), as ViT-B/32 cuts 224 px into 32-px ones (49 tokens); a toy CLIP of the same width and
#: depth with 4-px patches (64 tokens, 4× as many) is the ViT-B/16 analogue (196 tokens).
SHIPPED_CLIP = "patch8"

#: Table 3's grid: variant → the training seeds it is trained with (the 12-layer cell with three, for its spread)
BACKBONE_GRID: dict[str, tuple[int, ...]] = {"layers4": (0,), "layers8": (0,), "base": (0, 1, 2)}


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
    # 512 steps) and the evaluation sizes this project set (500 captions, 8 samples per prompt, 500 edits).
    "full": SweepSize("full", tuple(VARIANTS), dict(epochs=8, epoch_size=2048, batch_size=32),
                      n_captions=500, n_div_prompts=50, n_per_prompt=8, n_edit=500),
}


# -------------------------------------------------------------------------------------------------
# training


def train_config(size: SweepSize, variant: str, work: str | Path, profile: str = "toyfaces", seed: int = 0,
                 device: str = "auto", **overrides: Any) -> TrainConfig:
    """The `TrainConfig` of one variant of a sweep (08_evaluation.ipynb)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; known: {list(VARIANTS)}")
    fields = {"profile": profile, "seed": seed, "device": device, "sample_every": 0, "log_every": 1,
              **size.train, **VARIANTS[variant], **overrides, "out": str(Path(work) / variant)}
    return TrainConfig(**fields)


def _fresh_d(G: torch.nn.Module, seed: int, device: torch.device) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return discriminator_like(G).to(device)


def run_seconds(run: Path) -> float | None:
    """The training seconds a run folder's log records last (None without a log) (08_evaluation.ipynb)."""
    log = run / "log.jsonl"
    rows = read_jsonl(log) if log.is_file() else []
    return rows[-1].get("seconds") if rows else None


#: the settings that make two finished runs the same run (a finished run is reused only when they all agree; the
#: CLIP file is also compared by its sha256 when the checkpoint recorded one, `train_variant`)
SAME_RUN_KEYS = ("layers", "adv", "div", "epochs", "epoch_size", "batch_size", "seed", "max_steps", "inputs", "c3_sigma",
                 "lafite_xi", "synthetic_data", "latent_d", "delta_reg", "delta_progressive", "free_rows", "latent_loss",
                 "clip")


def default_work(size: str, clip_name: str | None = None, train_seed: int = 0) -> Path:
    """The run folders of a sweep: runs/sweeps-<size>, plus -<clip name> for another CLIP than the shipped one
    and -seed<n> for another training seed (08_evaluation.ipynb) — so runs on two CLIPs or seeds never mix."""
    name = f"sweeps-{size}"
    if clip_name and clip_name != SHIPPED_CLIP:
        name += f"-{clip_name}"
    if train_seed:
        name += f"-seed{train_seed}"
    return Path("runs") / name


def _clip_sha256(world: dict[str, Any]) -> str | None:
    """sha256 of the CLIP file a world record resolves to (None for injected or missing weights)."""
    return world_fingerprint(world).get("clip_sha256") if isinstance(world, dict) and "profile" in world else None


def train_variant(config: TrainConfig, world: dict[str, Any], dataset: torch.utils.data.Dataset | None = None,
                  progress: bool = False) -> dict[str, Any]:
    """Train (or resume, or skip if finished) one variant; returns {'mapping', 'steps', 'train_seconds'} (08_evaluation.ipynb).

    world: `clip2gan.train.build_world`'s dict; its frozen CLIP, G, identity and LPIPS are shared by
    every variant and D is replaced by a fresh one (same seed for every variant).
    """
    run = Path(config.out)
    mapping = run / "mapping.safetensors"
    if mapping.is_file():
        _, cfg = load_mapping(mapping)
        done = cfg.get("train", {})
        defaults = TrainConfig()  # a run written before a setting existed had its default
        differ = [k for k in SAME_RUN_KEYS if done.get(k, getattr(defaults, k)) != getattr(config, k)]
        recorded = cfg.get("world_sha256", {}).get("clip_sha256")
        wanted = _clip_sha256(world.get("world")) if recorded else None
        if recorded and wanted and recorded != wanted:
            differ.append("the CLIP file (sha256)")
        if not differ:
            return {"mapping": mapping, "steps": cfg.get("steps"), "train_seconds": run_seconds(run)}
        raise FileExistsError(f"{run} holds a finished run with other settings ({', '.join(differ)}); move it away "
                              "or choose another --work folder")
    device = next(world["G"].parameters()).device
    trainer = Trainer(config, world={**world, "D": _fresh_d(world["G"], config.seed, device)}, dataset=dataset,
                      progress=progress)
    summary = trainer.fit(resume=(run / "checkpoint.safetensors").is_file())
    return {"mapping": Path(summary["mapping"]), "steps": summary["steps"], "train_seconds": run_seconds(run)}


def backbone_world(world: dict[str, Any], clip: str | Path | None, device: str | torch.device = "cpu") -> dict[str, Any]:
    """The sweep's world with M's CLIP replaced by the checkpoint `clip` (Table 3's backbone axis, 08_evaluation.ipynb).

    Only the CLIP that M reads (training images, feature bank, test-time text) changes; G, the identity
    network and the LPIPS (the toy LPIPS is the *shipped* CLIP's trunk) stay the shipped world's, so a
    training term and the evaluation's LPIPS do not change with the backbone. clip None returns `world`.
    The run's checkpoint records `clip` (and its sha256), so `from_checkpoint` later loads the same CLIP.
    """
    if clip is None:
        return world
    encoder = ClipEncoder.from_profile(world["world"]["profile"], device=device, clip=str(clip))
    return {**world, "clip": encoder, "world": {**world["world"], "clip": str(clip)}}


def model_from_mapping(world: dict[str, Any], mapping: str | Path, correction: str = "none") -> CLIP2GAN:
    """A `CLIP2GAN` from a trained M and the sweep's shared CLIP and G, not reloaded (08_evaluation.ipynb).

    correction: 'none' gives `method='paper'` (bare text features, the paper's noise, eq. 11-14),
    'nearest' `method='bridged'`, 'recentre' a custom model with that correction and the paper's edit
    mode. The evaluation passes every setting's edit mode explicitly.
    """
    if correction in ("none", "nearest"):  # the two methods, exactly as CLIP2GAN(method=...) defines them
        return CLIP2GAN.from_checkpoint(mapping, clip=world["clip"], generator=world["G"],
                                        method="paper" if correction == "none" else "bridged")
    return CLIP2GAN.from_checkpoint(mapping, clip=world["clip"], generator=world["G"], text_correction=correction,
                                    edit_mode="paper")


# -------------------------------------------------------------------------------------------------
# one trained M: evaluate it, ship it


def evaluate_mapping(path: str | Path, size: str | SweepSize = "full", seed: int = 0, device: str = "cpu",
                     progress: bool = False) -> dict[str, Any]:
    """`evaluate` for one trained M (a run folder or a mapping file) on the world it was trained with (05_training.ipynb).

    Under the checkpoint's defaults: setting 'nearest' for a checkpoint with a feature bank, else
    'paper'; adds 'setting', 'bars' (the targets of `protocol.BARS`) and, when the default is not the
    paper's, 'paper_rule': the generation and editing metrics of the paper's bare rule.
    """

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
        model.text_correction, model.edit_mode = METHODS["paper"]  # the same M under method='paper'
        out["paper_rule"] = rounded(evaluate(model, data, classifier, lpips, size, setting="paper", seed=seed,
                                             groups=("generation", "editing"), progress=progress))
    return out


def ship_mapping(run: str | Path, command: str, device_note: str, size: str = "full", seed: int = 0,
                 data_dir: str | Path | None = None) -> dict[str, Any]:
    """Evaluate a finished run's M, copy it to `data/toyfaces-mapping.{safetensors,json}` and write its
    manifest entry (sha256, the reproducing command, training time, device, the metrics and bars) (05_training.ipynb)."""
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
        dst, command, device=device_note, train_seconds=run_seconds(run), steps=cfg.get("steps"),
        world_sha256=cfg.get("world_sha256"), metrics=metrics, bars=bar_flags,
        evaluation=(f"python -m clip2gan.evaluation.sweeps --evaluate {run} --size {size} "
                    f"(clip2gan.evaluation.protocol.evaluate under the checkpoint's default setting {metrics['setting']!r}; "
                    f"'paper_rule': the paper's rule (text features as they are, n = M(t)); {size_obj.n_captions} held-out "
                    f"captions/renders, {size_obj.n_per_prompt} samples × {size_obj.n_div_prompts} prompts for "
                    f"diversity, {size_obj.n_edit} edits at β = 1)"))


# -------------------------------------------------------------------------------------------------
# the sweep


def _score_rows(size: SweepSize, name: str, trained: dict[str, Any], settings: Sequence[str], world: dict[str, Any],
                data: Any, classifier: AttributeClassifier, lpips: torch.nn.Module, seed: int, clip_name: str,
                train_seed: int, log: Callable[[str], Any]) -> list[dict[str, Any]]:
    """One trained variant's rows, one per evaluation setting. Text is encoded by `world['clip']` (the CLIP M was
    trained on); the LPIPS is the one given (the shipped world's, whatever the backbone)."""
    rows = []
    for setting in settings:
        spec = SETTINGS[setting]
        model = model_from_mapping(world, trained["mapping"], correction=spec["correction"])
        metrics = evaluate(model, data, classifier, lpips, size, setting, seed=seed, progress=False)
        row = {"size": size.name, "variant": name, "setting": setting,
               **{k: VARIANTS[name][k] for k in ("layers", "adv", "div")}, **spec,
               "steps": trained["steps"], "train_seconds": trained["train_seconds"], **metrics,
               "clip": clip_name, "train_seed": train_seed}
        rows.append(row)
        log(f"[{size.name}] {clip_name} {name} (training seed {train_seed})/{setting}: " + ", ".join(
            f"{k}={row[k]:.3f}" for k in ("fid", "text_acc", "lpips_div", "rec_match", "edit_acc", "edit_pres")
            if isinstance(row.get(k), float)))
    return rows


def _clip_label(clip: str | Path | None, clip_name: str | None) -> str:
    if clip is None:
        return clip_name or SHIPPED_CLIP
    return clip_name or Path(clip).stem


def run_sweep(size: str | SweepSize = "ci", out: str | Path = "results", work: str | Path | None = None,
              profile: str = "toyfaces", device: str = "auto", seed: int = 0, variants: Sequence[str] | None = None,
              world: dict[str, Any] | None = None, classifier: AttributeClassifier | None = None,
              dataset_factory: Callable[[TrainConfig], torch.utils.data.Dataset] | None = None, progress: bool = True,
              log: Callable[[str], Any] = print, clip: str | Path | None = None, clip_name: str | None = None,
              train_seed: int | None = None) -> list[dict[str, Any]]:
    """Train and evaluate every variant of a sweep size; write `<out>/sweeps.csv`, `.png`, `.json` (08_evaluation.ipynb).

    world: a `build_world` dict to use instead of the profile's (tests inject a tiny one); classifier:
    the toy `AttributeClassifier` (default: the shipped one); dataset_factory(config) → the training
    Dataset (default: the profile's). clip: another toy CLIP checkpoint for M to read (`backbone_world`;
    its name `clip_name`, default the file's stem, goes into the `clip` column and the default work folder);
    train_seed: the training seed when it differs from `seed` (which also seeds the evaluation). Returns the
    rows (dicts with `COLUMNS`).
    """
    size = SIZES[size] if isinstance(size, str) else size
    names = list(variants) if variants is not None else list(size.variants)
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    if "base" not in names:
        names.insert(0, "base")  # the reference every table compares with
    train_seed = seed if train_seed is None else train_seed
    label = _clip_label(clip, clip_name)
    out = Path(out)
    work = Path(work) if work is not None else default_work(size.name, label, train_seed)
    dev = pick_device(device)
    started = time.perf_counter()
    if world is None:
        world = build_world(train_config(size, "base", work, profile=profile, seed=train_seed, device=str(dev)), dev)
    lpips = world["lpips"]  # the shipped CLIP's trunk: the evaluation's LPIPS does not change with the backbone
    world = backbone_world(world, clip, dev)
    if classifier is None:
        classifier = AttributeClassifier.from_pretrained(device=dev)
    data = eval_data(size, int(world["G"].img_resolution), seed=seed)
    rows: list[dict[str, Any]] = []
    for name in names:
        config = train_config(size, name, work, profile=profile, seed=train_seed, device=str(dev),
                              clip=None if clip is None else str(clip))
        log(f"[{size.name}] {name}: training ({config.layers} layers, adv={config.adv}, div={config.div}, CLIP {label}, "
            f"seed {train_seed}) → {config.out}")
        dataset = dataset_factory(config) if dataset_factory is not None else None
        trained = train_variant(config, world, dataset=dataset, progress=progress)
        settings = ([s for s in size.settings if s in SETTINGS] if name == "base"
                    else [s for s in ("paper", "nearest") if s in size.settings])
        if "paper" not in settings:
            settings.insert(0, "paper")
        rows += _score_rows(size, name, trained, settings, world, data, classifier, lpips, seed, label, train_seed, log)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "sweeps.csv")
    fig = plot_sweep(rows)
    fig.savefig(out / "sweeps.png", dpi=110)
    import matplotlib.pyplot as plt  # here, after the caller chose a backend (the command line: Agg)

    plt.close(fig)
    command = f"python -m clip2gan.evaluation.sweeps --size {size.name} --out {out}"
    if seed:
        command += f" --seed {seed}"
    if train_seed != seed:
        command += f" --train-seed {train_seed}"
    if clip is not None:
        command += f" --clip {clip} --clip-name {label}"
    if variants is not None:
        command += f" --variants {','.join(names)}"
    train_total = sum(r["train_seconds"] or 0 for r in rows if r["setting"] == "paper")
    meta = {"size": dataclasses.asdict(size), "command": command, "profile": profile, "seed": seed,
            "train_seed": train_seed, "clip": {"name": label, "path": None if clip is None else str(clip),
                                               "sha256": (_clip_sha256(world.get("world")) or "")[:16] or None},
            "device": str(dev), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "seconds": round(time.perf_counter() - started, 1), "train_seconds": round(train_total, 1),
            "weights": weights_record(profile), "variants": names}
    (out / "sweeps.json").write_text(json.dumps(meta, indent=2) + "\n")
    return rows


def _mapping_stamp(mapping: Path) -> str:
    return hub.sha256_file(mapping)[:16]


def run_backbone(size: str | SweepSize = "full", clip: str | Path | None = None, clip_name: str | None = None,
                 out: str | Path = "results", work: dict[tuple[str, int], str | Path] | None = None,
                 profile: str = "toyfaces", device: str = "auto", seed: int = 0,
                 grid: dict[str, tuple[int, ...]] | None = None, settings: Sequence[str] = ("paper", "nearest"),
                 world: dict[str, Any] | None = None, classifier: AttributeClassifier | None = None,
                 dataset_factory: Callable[[TrainConfig], torch.utils.data.Dataset] | None = None,
                 progress: bool = True, train: bool = True, log: Callable[[str], Any] = print) -> list[dict[str, Any]]:
    """Table 3 on the toy world: M's depth × the CLIP backbone, each cell under both methods (08_evaluation.ipynb).

    For the shipped CLIP (`SHIPPED_CLIP`) and the checkpoint `clip` (named `clip_name`), every variant of `grid`
    (default `BACKBONE_GRID`: 4 and 8 layers with training seed 0, 12 layers with seeds 0, 1, 2) is trained as
    `run_sweep` trains it, in `default_work(size, clip name, training seed)` (or `work[(clip name, seed)]`), and
    scored under `settings` ('paper': method='paper'; 'nearest': method='bridged') on the evaluation data of `seed`.
    Scores are kept in each run folder (`scores.json`, keyed by size, setting, evaluation seed and the sha256 of
    M), so a rerun reads them back. train=False scores only the runs that are finished and leaves the others out
    (`log` names them). Writes `<out>/backbone.csv` (`COLUMNS`), `.json` (command, sizes, CLIP files, timings)
    and `.png`; returns the rows.
    """
    if clip is None:
        raise ValueError("run_backbone needs the second CLIP's checkpoint (clip=PATH)")
    size = SIZES[size] if isinstance(size, str) else size
    grid = dict(BACKBONE_GRID if grid is None else grid)
    unknown = [v for v in grid if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}")
    label = _clip_label(clip, clip_name)
    if label == SHIPPED_CLIP:
        raise ValueError(f"--clip-name {label!r} is the shipped CLIP's name; choose another")
    out = Path(out)
    dev = pick_device(device)
    started = time.perf_counter()
    if world is None:
        world = build_world(train_config(size, "base", default_work(size.name), profile=profile, device=str(dev)), dev)
    lpips = world["lpips"]
    worlds = {SHIPPED_CLIP: (None, world), label: (str(clip), backbone_world(world, clip, dev))}
    if classifier is None:
        classifier = AttributeClassifier.from_pretrained(device=dev)
    data = eval_data(size, int(world["G"].img_resolution), seed=seed)
    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    cached = 0
    for name_clip, (path, w) in worlds.items():
        for variant, train_seeds in grid.items():
            for s in train_seeds:
                folder = Path((work or {}).get((name_clip, s)) or default_work(size.name, name_clip, s))
                config = train_config(size, variant, folder, profile=profile, seed=s, device=str(dev), clip=path)
                run = Path(config.out)
                if not train and not (run / "mapping.safetensors").is_file():
                    missing.append(f"{name_clip} {variant} seed {s} ({run})")
                    log(f"[{size.name}] {name_clip} {variant} seed {s}: not trained yet ({run})")
                    continue
                dataset = dataset_factory(config) if dataset_factory is not None else None
                trained = train_variant(config, w, dataset=dataset, progress=progress)
                stamp = _mapping_stamp(Path(trained["mapping"]))
                store = run / "scores.json"
                scores = json.loads(store.read_text()) if store.is_file() else {}
                todo = []
                for setting in settings:
                    hit = scores.get(f"{size.name}/{setting}/seed{seed}")
                    if hit and hit.get("mapping_sha256") == stamp:
                        rows.append(hit["row"])
                        cached += 1
                    else:
                        todo.append(setting)
                for row in _score_rows(size, variant, trained, todo, w, data, classifier, lpips, seed, name_clip, s, log):
                    rows.append(row)
                    scores[f"{size.name}/{row['setting']}/seed{seed}"] = {"mapping_sha256": stamp, "row": row}
                    store.write_text(json.dumps(scores, indent=1, default=str) + "\n")
    order = {v: i for i, v in enumerate(grid)}
    rows.sort(key=lambda r: (r["clip"] != SHIPPED_CLIP, order[r["variant"]], r["train_seed"], r["setting"] != "paper"))
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "backbone.csv")
    if rows:
        fig = plot_backbone(rows)
        fig.savefig(out / "backbone.png", dpi=110)
        import matplotlib.pyplot as plt  # here, after the caller chose a backend (the command line: Agg)

        plt.close(fig)
    command = (f"python -m clip2gan.evaluation.sweeps --backbone --size {size.name} --clip {clip} --clip-name {label} "
               f"--out {out}" + (f" --seed {seed}" if seed else "") + ("" if train else " --no-train"))
    clips = {n: {"path": p, "sha256": (_clip_sha256(w.get("world")) or "")[:16] or None} for n, (p, w) in worlds.items()}
    meta = {"size": dataclasses.asdict(size), "command": command, "profile": profile, "seed": seed,
            "grid": {v: list(s) for v, s in grid.items()}, "settings": list(settings), "clips": clips,
            "not_trained_yet": missing, "rows_from_cache": cached, "device": str(dev), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - started, 1),
            "weights": weights_record(profile)}
    (out / "backbone.json").write_text(json.dumps(meta, indent=2) + "\n")
    return rows


def weights_record(profile: str) -> dict[str, str]:
    """sha256 (first 16 hex digits) of the toy weights a sweep or comparison used, so a CSV can be traced to them
    (08_evaluation.ipynb)."""
    record = {}
    for name in PROFILES[profile].artifacts if profile in PROFILES else ():
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
    current = weights_record(profile)
    return {name: (recorded.get(name, "not recorded"), now) for name, now in current.items()
            if recorded.get(name) != now}


# -------------------------------------------------------------------------------------------------
# command line


@dataclass
class SweepCommand:
    """The flags of `python -m clip2gan.evaluation.sweeps`, one per field (`clip2gan.cli`) (08_evaluation.ipynb)."""

    size: str = option("ci", "sweep size: the variants, their training recipe and the evaluation set sizes",
                       choices=tuple(SIZES))
    out: str = option("results", "folder for sweeps.csv, sweeps.png and sweeps.json")
    work: str | None = option(None, "run folders of the variants, runs/sweeps-<size> when unset")
    profile: str = option("toyfaces", "the world; only the toy world has a classifier to score with", choices=("toyfaces",))
    variants: str | None = option(None, f"comma-separated subset of {','.join(VARIANTS)} (base is always run)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    seed: int = option(0, "training and evaluation seed")
    threads: int | None = option(None, "torch CPU threads, torch's default when unset")
    list_only: bool = option(False, "print the variants, settings and size, run nothing", flag="--list")
    evaluate: str | None = option(None, "instead of a sweep: evaluate one trained M (run folder or mapping file) at "
                                        "--size and print JSON")
    ship: bool = option(False, "with --evaluate RUN: also copy its M to data/ and write its manifest entry (needs --command)")
    command: str | None = option(None, "with --ship: the training command that reproduces the run")
    device_note: str | None = option(None, "with --ship: where it trained, this machine's CPU and torch version when unset")
    comparisons: bool = option(False, "instead of the ablation sweep: CLIP2GAN against published methods "
                                      "(clip2gan.evaluation.comparisons; --size ci or full) → <out>/comparisons.*")
    clip: str | None = option(None, "another toy CLIP checkpoint for M to read (Table 3's backbone axis); its runs go to "
                                    "runs/sweeps-<size>-<clip name> unless --work is set")
    clip_name: str | None = option(None, f"the --clip CLIP's name in the 'clip' column (default: the file's stem; the "
                                         f"shipped CLIP is {SHIPPED_CLIP!r})")
    train_seed: int | None = option(None, "training seed when it differs from --seed (which also seeds the evaluation); "
                                          "its runs go to runs/sweeps-<size>[-<clip name>]-seed<n> unless --work is set")
    backbone: bool = option(False, "instead of the ablation sweep: Table 3's grid (4, 8, 12 layers; 12 with training "
                                   "seeds 0, 1, 2) for the shipped CLIP and --clip → <out>/backbone.*")
    no_train: bool = option(False, "with --backbone: score the finished runs only, list the others as not trained yet")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clip2gan.evaluation.sweeps", description=__doc__.split("\n")[0])
    return add_config_args(parser, SweepCommand)


def parse_args(argv: Sequence[str] | None = None) -> SweepCommand:
    """The `SweepCommand` of a command line (argv without the program name) (08_evaluation.ipynb)."""
    return config_from_args(SweepCommand, _parser().parse_args(argv))


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m clip2gan.evaluation.sweeps` (08_evaluation.ipynb); returns the exit status."""
    parser = _parser()
    args = config_from_args(SweepCommand, parser.parse_args(argv))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.ship and not (args.evaluate and args.command):
        parser.error("--ship needs --evaluate RUN and --command 'the training command'")
    if args.evaluate:
        if args.ship:
            note = args.device_note or device_label("cpu")
            entry = ship_mapping(args.evaluate, args.command, note, size=args.size, seed=args.seed)
            print(json.dumps(entry, indent=1))
        else:
            print(json.dumps(evaluate_mapping(args.evaluate, size=args.size, seed=args.seed), indent=1))
        return 0
    import matplotlib  # here: the backend must be chosen before pyplot is first imported

    matplotlib.use("Agg")  # the command line draws into a file only
    if args.comparisons:
        return _comparisons(args)
    if args.backbone:
        if not args.clip:
            parser.error("--backbone needs --clip PATH (the second CLIP)")
        try:
            rows = run_backbone(args.size, clip=args.clip, clip_name=args.clip_name, out=args.out, profile=args.profile,
                                device=args.device, seed=args.seed, train=not args.no_train)
        except ValueError as err:
            print(f"clip2gan.evaluation.sweeps: error: {err}", file=sys.stderr)
            return 1
        from clip2gan.evaluation.tables import backbone_table, backbone_verdicts

        for method in ("paper", "bridged"):
            print(backbone_table(rows, method) + "\n")
        for claim, word, numbers in backbone_verdicts(rows):
            print(f"{claim}: {word} ({numbers})")
        print(f"wrote {Path(args.out) / 'backbone.csv'}, .json and .png")
        return 0
    size = SIZES[args.size]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    if args.list_only:
        for name in variants or size.variants:
            print(f"variant {name:<11} {VARIANTS[name]}")
        for name in size.settings:
            print(f"setting {name:<11} {SETTINGS[name]}")
        print(f"size {size.name}: train {size.train or 'TrainConfig defaults'}; captions {size.n_captions}, "
              f"diversity {size.n_div_prompts} × {size.n_per_prompt}, edits {size.n_edit}")
        return 0
    try:
        run_sweep(size, out=args.out, work=args.work, profile=args.profile, device=args.device, seed=args.seed,
                  variants=variants, clip=args.clip, clip_name=args.clip_name, train_seed=args.train_seed)
    except ValueError as err:
        print(f"clip2gan.evaluation.sweeps: error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {Path(args.out) / 'sweeps.csv'} and {Path(args.out) / 'sweeps.png'}")
    return 0


def _comparisons(args: SweepCommand) -> int:
    """`--comparisons`: run `clip2gan.evaluation.comparisons.run_comparisons` and print its tables."""
    from clip2gan.evaluation import comparisons  # it imports this module: a real cycle, broken here

    if args.size not in comparisons.SIZES:
        print(f"clip2gan.evaluation.sweeps: error: --comparisons takes --size {' or '.join(comparisons.SIZES)}",
              file=sys.stderr)
        return 2
    record = comparisons.run_comparisons(args.size, out=args.out, work=args.work, device=args.device, seed=args.seed)
    for text in comparison_report.comparison_tables(record).values():
        print(text + "\n")
    for claim, word in comparison_report.comparison_verdicts(record).items():
        print(f"{claim}: {word}")
    print(f"wrote {Path(args.out) / 'comparisons.csv'}, .json, .png and the sample figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
