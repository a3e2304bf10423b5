"""Judging and shipping the toy world's StyleGAN2 (00_setup.ipynb, 02_stylegan2_wplus.ipynb).

The generator trained by `clip2gan.toy.stylegan2_training` is judged by the world's attribute
classifier (`clip2gan.toy.nets.AttributeClassifier`), which reads back every attribute of a sample:

* `evaluate(G)`: the bar for a generator — the fraction of *confident* samples (every attribute's top
  probability ≥ 0.9; bar ≥ 0.85), the largest gap between a value's frequency among samples and among
  renders (bar ≤ 5 points), how often the classifier reads back the attributes G was conditioned on,
  and a Fréchet distance in the classifier's feature space;
* `evaluate_run(run)`, `eval_records`, `plot_curve`: the same over a run's G_ema snapshots, appended
  to its `log.jsonl` and drawn as `bar_curve.png` (settings changed on resume marked in red);
* `export_generator(G)`: the shipped file, in `clip2gan.stylegan2.save`'s format (so
  `clip2gan.stylegan2.load` reads it) plus the label layout, a tensor checksum and the
  training step; `device_history(run)`: which device trained which stretch, for the manifest.

Either toy world (08_evaluation.ipynb): `evaluate(G, world="pets")` samples pets' labels and reads
them with the pets classifier (`shipped_classifier("pets")`, the hub's `toypets-classifier`); the
bald rule is the faces' `UNSCORED_WHEN`. An exported file of another world than faces records it
(`world`), and `generator_world(meta)` reads it back (from `c_layout` for older files).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clip2gan import stylegan2
from clip2gan.checkpoint import atomic_path, load_config, save_safetensors
from clip2gan.evaluation.metrics import feature_statistics, frechet_distance
from clip2gan.hub import DATA_DIR
from clip2gan.toy import world_for_attributes, world_module, world_profile
from clip2gan.toy.faces import EVAL_SEED
from clip2gan.toy.nets import AttributeClassifier

__all__ = [
    "EXPORT_FORMAT",
    "DEFAULT_RUN",
    "DEFAULT_EXPORT",
    "export_generator",
    "shipped_classifier",
    "generator_world",
    "confident_mask",
    "evaluate",
    "evaluate_run",
    "eval_records",
    "plot_curve",
    "bar_line",
    "read_log",
    "setting_changes",
    "device_history",
]

EXPORT_FORMAT = "clip2gan.stylegan2"  # the format of clip2gan.stylegan2.save / load
DEFAULT_RUN = Path("runs/toyfaces-stylegan2")
DEFAULT_EXPORT = DATA_DIR / "toyfaces-stylegan2.safetensors"


# ----------------------------------------------------------------------------------------------
# Export


def export_generator(G: torch.nn.Module, path: str | os.PathLike = DEFAULT_EXPORT, extra: dict[str, Any] | None = None,
                     write_json: bool = True, world: Any = None) -> Path:
    """Write a generator alone, fp16, as safetensors + JSON config (00_setup.ipynb).

    The format is `clip2gan.stylegan2.save`'s (so `clip2gan.stylegan2.load` reads it): `class`,
    `init_kwargs` (the Generator's constructor arguments), plus the label layout `c_layout`
    (attribute -> values, the order of the one-hot blocks of c), a checksum of the tensors
    (`tensor_sha256`, verified on every load) and whatever `extra` holds (training step, kimg, CPU
    time; read back with `clip2gan.checkpoint.load_config`). world: the toy world of the labels
    (None: faces; another world is recorded as `world`).
    """
    module = world_module(world)
    config = {
        "format": EXPORT_FORMAT,
        "version": 1,
        "class": "Generator",
        "init_kwargs": json.loads(json.dumps(G.init_kwargs)),
        "c_layout": {name: list(values) for name, values in module.ATTRIBUTES.items()} if G.c_dim else None,
        **({"world": module.NAME} if module.NAME != "faces" else {}),
        "dtype": "float16",
        **(extra or {}),
    }
    return save_safetensors(G.state_dict(), path, config, half=True, write_json=write_json, checksum=True)


# ----------------------------------------------------------------------------------------------
# Evaluation: the bar


_CLF: dict[str, AttributeClassifier] = {}


def shipped_classifier(world: Any = None) -> AttributeClassifier:
    """The shipped attribute classifier of a toy world (None: faces), loaded once (00_setup.ipynb).

    The hub name is the world's profile's `classifier` ('toypets-classifier' for pets: a file trained
    elsewhere is found through its variable, `CLIP2GAN_TOYPETS_CLASSIFIER=/path/to/file`).
    """
    module = world_module(world)
    if module.NAME not in _CLF:
        _CLF[module.NAME] = AttributeClassifier.from_pretrained(world_profile(module).classifier)
    return _CLF[module.NAME]


def generator_world(meta: dict[str, Any] | None):
    """The toy world module of an exported generator or training checkpoint from its config: its `world`,
    its `train_config`'s, or the attributes of its `c_layout`; faces when none says (08_evaluation.ipynb)."""
    meta = meta or {}
    name = meta.get("world") or (meta.get("train_config") or {}).get("world")
    if name:
        return world_module(name)
    if meta.get("c_layout"):
        return world_for_attributes(meta["c_layout"])
    return world_module(None)


def _world_of(classifier: Any, world: Any):
    """The world to judge in: `world` if given, else the classifier's, else faces."""
    if world is not None:
        return world_module(world)
    return world_module(getattr(classifier, "world", None))


def _frechet(feat1: torch.Tensor, feat2: torch.Tensor) -> float:
    return frechet_distance(*feature_statistics(feat1), *feature_statistics(feat2))


def _unscored(proba: dict[str, torch.Tensor], world) -> dict[str, torch.Tensor]:
    """{attribute: [N] bool}: where the world does not score it (faces: hair colour where read bald)."""
    out = {}
    for attr, (other, value) in world.UNSCORED_WHEN.items():
        out[attr] = proba[other].argmax(1) == world.ATTRIBUTES[other].index(value)
    return out


def _frequencies(proba: dict[str, torch.Tensor], world: Any = None) -> dict[str, list[float]]:
    """Argmax frequency of each value; hair colour only over faces not read as bald."""
    world = world_module(world) if world is not None else world_for_attributes(proba)
    idx = {a: p.argmax(1) for a, p in proba.items()}
    unscored = _unscored(proba, world)
    out = {}
    for a, values in world.ATTRIBUTES.items():
        sel = idx[a][~unscored[a]] if a in unscored else idx[a]
        counts = torch.bincount(sel, minlength=len(values)).double()
        out[a] = (counts / max(len(sel), 1)).tolist()
    return out


def confident_mask(proba: dict[str, torch.Tensor], threshold: float = 0.9, world: Any = None) -> torch.Tensor:
    """[N] bool: max probability ≥ threshold for every attribute (hair colour skipped where read bald): the
    realism reading of the generator's bar and of the comparisons (00_setup.ipynb, 10_comparisons.ipynb).

    world: the toy world (None: the one whose attributes `proba` has; 08_evaluation.ipynb)."""
    world = world_module(world) if world is not None else world_for_attributes(proba)
    unscored = _unscored(proba, world)
    ok = torch.ones(len(next(iter(proba.values()))), dtype=torch.bool)
    for a, p in proba.items():
        conf = p.max(1).values >= threshold
        if a in unscored:
            conf = conf | unscored[a]
        ok &= conf
    return ok


@torch.no_grad()
def _sample(G: torch.nn.Module, n: int, seed: int, truncation_psi: float = 1.0,
            batch: int = 250, world: Any = None) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    rng = np.random.default_rng([seed, 11])
    c, attrs = world_module(world).sample_c(n, rng)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=gen)
    dev = next(G.parameters()).device
    imgs = []
    for i in range(0, n, batch):
        ci = c[i:i + batch].to(dev) if G.c_dim else torch.zeros(len(z[i:i + batch]), 0, device=dev)
        imgs.append(G(z[i:i + batch].to(dev), ci, truncation_psi=truncation_psi, noise_mode="const").cpu())
    return torch.cat(imgs).clamp(-1, 1), attrs


_DATA_CACHE: dict[tuple, Any] = {}


def _data_reference(classifier: AttributeClassifier, n: int, seed: int,
                    world: Any = None) -> tuple[dict[str, list[float]], float, torch.Tensor]:
    """Classifier reading of `n` held-out renders: (frequencies, confident fraction, features)."""
    world = world_module(world)
    key = (id(classifier), n, seed, world.NAME)
    if key not in _DATA_CACHE:
        images, _labels, _attrs = world.render_labeled_batch(n, np.random.default_rng([EVAL_SEED, seed]))
        proba = classifier.predict_proba(images)
        _DATA_CACHE[key] = (_frequencies(proba, world), float(confident_mask(proba, world=world).float().mean()),
                            classifier.features(images))
    return _DATA_CACHE[key]


def evaluate(G: torch.nn.Module, n: int = 1000, seed: int = 0, truncation_psi: float = 1.0,
             classifier: AttributeClassifier | None = None, n_fid: int = 2000, world: Any = None) -> dict[str, Any]:
    """The bar for a generator, read by the attribute classifier (00_setup.ipynb).

    world: the toy world of G's labels (None: the classifier's, else faces; 08_evaluation.ipynb); the
    classifier defaults to that world's shipped one.

    Samples `n` images at `truncation_psi` with labels c drawn from the data distribution and returns
    `confident` (fraction where every attribute's max probability is ≥ 0.9, hair colour not counted
    where the classifier reads bald; bar ≥ 0.85), `freq_max_dev` (largest |sample − data| frequency
    gap over all attribute values, in points; bar ≤ 5) with per-value details, `cond_accuracy` (how
    often the classifier reads back each conditioned value; `cond_all` = every attribute right,
    `cond_mean` = the mean over attributes) and
    `fid` (Fréchet distance in the classifier's feature space, `n_fid` samples vs `n_fid` renders).
    """
    module = _world_of(classifier, world)
    clf = classifier if classifier is not None else shipped_classifier(module)
    was_training = G.training
    G.eval()
    try:
        imgs, attrs = _sample(G, max(n, n_fid), seed, truncation_psi, world=module)
    finally:
        G.train(was_training)
    proba_all = clf.predict_proba(imgs)
    proba = {a: p[:n] for a, p in proba_all.items()}
    attributes = module.ATTRIBUTES
    data_freq, data_conf, data_feat = _data_reference(clf, max(n, n_fid), seed, module)
    freq = _frequencies(proba, module)
    dev = {a: [100 * (f - d) for f, d in zip(freq[a], data_freq[a])] for a in attributes}
    worst_attr, worst = max(((a, max(abs(x) for x in v)) for a, v in dev.items()), key=lambda t: t[1])
    cond_acc, all_right = {}, torch.ones(n, dtype=torch.bool)
    for a, values in attributes.items():
        want = torch.tensor([values.index(x[a]) if x[a] is not None else -1 for x in attrs[:n]])
        got = proba[a].argmax(1)
        mask = want >= 0
        right = (got == want) | ~mask
        cond_acc[a] = float(right[mask].float().mean()) if mask.any() else float("nan")
        all_right &= right
    conf = confident_mask(proba, world=module)
    fid = _frechet(clf.features(imgs[:n_fid]), data_feat[:n_fid]) if n_fid else float("nan")
    return {
        "n": n, "seed": seed, "truncation_psi": truncation_psi,
        "confident": float(conf.float().mean()),
        "confident_data": data_conf,
        "freq_max_dev": float(worst), "freq_worst_attribute": worst_attr,
        "freq_dev": dev, "freq_samples": freq, "freq_data": data_freq,
        "cond_accuracy": cond_acc, "cond_all": float(all_right.float().mean()),
        "cond_mean": float(np.nanmean(list(cond_acc.values()))),
        "fid": fid, "n_fid": n_fid,
        "bar_met": bool(float(conf.float().mean()) >= 0.85 and worst <= 5.0),
    }


def read_log(run_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a run's `log.jsonl` (training stats, evaluations, events), skipping a line cut short
    by a killed process (00_setup.ipynb)."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by kill -9
            continue
    return out


def evaluate_run(run_dir: str | os.PathLike = DEFAULT_RUN, n: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """Evaluate every snapshot of a run not yet evaluated (appending to its log.jsonl), then plot the curve
    (00_setup.ipynb)."""
    run_dir = Path(run_dir)
    done = {r.get("snapshot") for r in read_log(run_dir) if r.get("kind") == "eval" and r.get("n") == n}
    snaps = sorted((p for p in (run_dir / "snapshots").glob("G_ema-*.safetensors")), key=lambda p: p.name)
    out = []
    for snap in snaps:
        if snap.name in done:
            continue
        meta = load_config(snap)
        res = evaluate(stylegan2.load(snap), n=n, seed=seed, world=generator_world(meta))
        rec = {"kind": "eval", "snapshot": snap.name, "step": meta.get("step"), "kimg": meta.get("nimg", 0) / 1000,
               "cpu_seconds": meta.get("cpu_seconds"), **res}
        with open(run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **rec}) + "\n")
        print(bar_line(rec), flush=True)
        out.append(rec)
    plot_curve(run_dir)
    return out


def bar_line(r: dict[str, Any]) -> str:
    """One line that reports an evaluation record against the bar (00_setup.ipynb)."""
    return (f"{r.get('snapshot', '')} kimg {r.get('kimg', 0):.1f}: confident {100 * r['confident']:.1f}% "
            f"(bar ≥ 85), worst frequency gap {r['freq_max_dev']:.1f} pts on {r['freq_worst_attribute']} (bar ≤ 5), "
            f"conditioning accuracy all-attributes {100 * r['cond_all']:.1f}%, FID(classifier) {r['fid']:.2f}")


def eval_records(run_dir: str | os.PathLike = DEFAULT_RUN) -> list[dict[str, Any]]:
    """The run's evaluations, one per snapshot (the latest record wins), ordered by kimg (00_setup.ipynb)."""
    latest: dict[str, dict] = {}
    for r in read_log(Path(run_dir)):
        if r.get("kind") == "eval":
            latest[r.get("snapshot")] = r
    return sorted(latest.values(), key=lambda r: r.get("kimg", 0))


def _event_kimg(rows: list[dict[str, Any]], i: int) -> float | None:
    """The kimg at which the start/resume event `rows[i]` of a run's log happened (older logs did not
    record it: then the kimg of the first training row after the event)."""
    r = rows[i]
    if "kimg" in r:
        return float(r["kimg"])
    if r.get("event") == "start":
        return 0.0
    return next((float(x["kimg"]) for x in rows[i + 1:] if x.get("kind") == "train"), None)


def setting_changes(run_dir: str | os.PathLike) -> list[tuple[float, str]]:
    """(kimg, 'name a→b, ...') for each resume that changed a training setting, from the run's log
    (00_setup.ipynb)."""
    rows = read_log(Path(run_dir))
    out = []
    for i, r in enumerate(rows):
        if r.get("event") == "resume" and r.get("changed"):
            kimg = _event_kimg(rows, i)
            if kimg is not None:
                out.append((float(kimg), ", ".join(f"{k} {a}→{b}" for k, (a, b) in r["changed"].items())))
    return out


def plot_curve(run_dir: str | os.PathLike = DEFAULT_RUN) -> Path | None:
    """`bar_curve.png`: confident fraction, worst frequency gap, conditioning accuracy and FID vs kimg
    (00_setup.ipynb)."""
    recs = eval_records(run_dir)
    if not recs:
        return None
    import matplotlib  # deferred: the headless backend must be chosen before pyplot is first imported

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = [r["kimg"] for r in recs]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(k, [100 * r["confident"] for r in recs], "o-", label="confident (all attributes ≥ 0.9)")
    axes[0].plot(k, [100 * r["cond_all"] for r in recs], "s-", label="conditioning: all attributes read back")
    axes[0].plot(k, [100 * float(np.nanmean(list(r["cond_accuracy"].values()))) for r in recs], "^-",
                 label="conditioning: mean per-attribute accuracy")
    axes[0].axhline(85, color="gray", ls="--", lw=1, label="bar 85 %")
    axes[0].set_ylabel("% of samples")
    axes[0].set_ylim(0, 100)
    axes[0].legend(fontsize=7)
    axes[1].plot(k, [r["freq_max_dev"] for r in recs], "o-")
    axes[1].axhline(5, color="gray", ls="--", lw=1)
    axes[1].set_ylabel("worst |freq sample − data| (points)")
    axes[2].plot(k, [r["fid"] for r in recs], "o-")
    axes[2].set_ylabel("FID in classifier features")
    axes[2].set_yscale("log")
    changes = setting_changes(run_dir)
    for ax in axes:
        ax.set_xlabel("kimg")
        ax.grid(alpha=0.3)
        for kimg, _text in changes:
            ax.axvline(kimg, color="tab:red", ls=":", lw=1)
    for kimg, text in changes:  # what changed on resume, written once along the first panel's top
        axes[0].text(kimg, 99, " " + text, rotation=90, va="top", ha="left", fontsize=6, color="tab:red")
    fig.suptitle(f"toy StyleGAN2: the bar over training ({Path(run_dir).name}; red: settings changed on resume)")
    fig.tight_layout()
    path = Path(run_dir) / "bar_curve.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path



def device_history(run: str | Path) -> list[dict[str, Any]]:
    """Which device trained which stretch of a run, from its log's start/resume events (for the manifest;
    00_setup.ipynb).

    Returns [{'from_kimg', 'device'}] in order; events written before the log recorded devices
    say 'not recorded'. Consecutive stretches on the same device are merged.
    """
    segments: list[dict[str, Any]] = []
    rows = read_log(Path(run))
    for i, r in enumerate(rows):
        if r.get("kind") != "event" or r.get("event") not in ("start", "resume"):
            continue
        device = r.get("device", "not recorded")
        if segments and segments[-1]["device"] == device:
            continue
        kimg = _event_kimg(rows, i)
        segments.append({"from_kimg": None if kimg is None else round(kimg, 1), "device": device})
    return segments

