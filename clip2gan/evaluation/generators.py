"""Another generator under M: the supplement's Table 6 in kind, DCGAN against StyleGAN2 (11_other_generators.ipynb).

    python -m clip2gan.evaluation.generators --size ci   --out results/ci-generators   # minutes; numbers meaningless
    python -m clip2gan.evaluation.generators --size full --out results/                # results/dcgan.{csv,json,png}

The paper (supp. Table 6) swaps StyleGAN2 for a DCGAN under the same mapping network M and reports generation
FID/LPIPS, and editing FID/LPIPS with the arithmetic done in the GAN's latent space or in CLIP space. Here both
generators are the toy world's: the shipped StyleGAN2 and the DCGAN (`clip2gan.dcgan`, num_ws = 1: M writes z,
"editing in w+" is editing in z), each with an M of the paper's recipe on renders (`GeneratorsSize.train`; for the
StyleGAN2 the full sweep's 'base' run, the shipped M before the latent-loss M replaced it).
Every (generator, method, edit space) is scored by one code path:

* generation (`clip2gan.evaluation.protocol.evaluate`, groups generation and reconstruction): FID of one sample per
  held-out caption against the captions' renders in the attribute classifier's features (`fid` ± `fid_se`) and in
  the toy CLIP image tower's (`fid_clip`), LPIPS to the caption's render (`lpips_ref`: the paper's "LPIPS"),
  text → image attribute accuracy (`text_acc`), LPIPS diversity (`lpips_div`), the round trip (`rec_match`);
* editing (`edit_metrics`): each held-out render edited at β = 1 with a text asking for a value it lacks, the
  arithmetic in the GAN's code (space 'wplus') or in CLIP space ('clip'), with each method's edit mode: target
  reached (`edit_acc`), other attributes kept (`edit_pres`), FID of the edits against the renders (`edit_fid`),
  LPIPS of each edit to its input (`edit_lpips`);
* references (`reference_scores`): a second set of renders (the estimator's floor) and each G's own samples against
  the renders, with the share of the captions' stated attributes those caption-blind samples show by chance.

Both methods (`CLIP2GAN(method=...)`): 'paper' (bare text features into M, n = M(t)) and 'bridged' (the feature-bank
bridge, per-image 'neighbours' edits). LPIPS is the world's (the toy CLIP-trunk distance, not AlexNet's 0-1 scale),
and FIDs are toy FIDs in 256-d classifier features: only comparable with each other at equal counts. The full size
uses the sweep's evaluation sizes (`clip2gan.evaluation.sweeps.SIZES['full']`: 500 captions, 500 edits), so the
StyleGAN2 rows can be checked against the committed `results/sweeps.csv` (variant 'base' there is the shipped M):
`committed_check` in the JSON record.

Every scored row is cached in `<work>/scores/`, and M is trained (or resumed) in `<work>/<generator>/`, so a
stopped run restarts where it was. `table6_rows` turns the record into the table's rows, `table6_verdicts`
into one verdict per claim of the paper.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from clip2gan import hub
from clip2gan.checkpoint import atomic_write_text, load_config
from clip2gan.cli import option
from clip2gan.evaluation.attributes import text_attribute_accuracy, toy_feature_extractor
from clip2gan.evaluation.comparisons import g_sampler, renders_sampler
from clip2gan.evaluation.metrics import lpips_to_reference
from clip2gan.evaluation.protocol import (
    EvalData,
    clip_feature_extractor,
    compare_proportions,
    edit_pairs,
    eval_data,
    evaluate,
    fid_with_se,
    score_edits,
    verdict,
)
from clip2gan.evaluation.sweeps import train_variant, weights_record
from clip2gan.evaluation.tables import format_table, write_csv
from clip2gan.model import CLIP2GAN
from clip2gan.runtime import batch_command_args, pick_device
from clip2gan.toy.faces import AttributeClassifier
from clip2gan.train import TrainConfig, build_world, discriminator_like

__all__ = [
    "GENERATORS",
    "METHODS",
    "SPACES",
    "GeneratorsSize",
    "SIZES",
    "DCGAN_FILE",
    "DCGAN_MAPPING_FILE",
    "dcgan_model",
    "mapping_config",
    "repo_relative",
    "unconditional_sampler",
    "edit_metrics",
    "reference_scores",
    "run_generators",
    "table6_rows",
    "table6_text",
    "table6_verdicts",
    "committed_check",
    "DCGAN_COMMAND",
    "half_mapping",
    "ship_dcgan",
    "plot_generators",
    "GeneratorsCommand",
    "main",
]

GENERATORS = ("stylegan2", "dcgan")
#: the generators' names in tables and figures
LABELS = {"stylegan2": "StyleGAN2", "dcgan": "DCGAN"}
#: method → its edit mode (`CLIP2GAN(method=...)`'s defaults)
METHODS = {"paper": "paper", "bridged": "neighbours"}
#: edit space → how the tables name it ('wplus' is w+ for StyleGAN2 and z for the DCGAN: num_ws = 1)
SPACES = {"wplus": "GAN latent", "clip": "CLIP"}
#: the chosen DCGAN as shipped (float16; data/MANIFEST.json says how it was made)
DCGAN_FILE = hub.DATA_DIR / "toyfaces-dcgan.safetensors"
ROOT = hub.DATA_DIR.parent  # the repository: records store paths relative to it
#: the committed full sweep whose 'base' variant is the shipped M (for `committed_check`)
SWEEPS_CSV = hub.DATA_DIR.parent / "results" / "sweeps.csv"
#: the DCGAN's M as shipped (float16, with its feature bank)
DCGAN_MAPPING_FILE = hub.DATA_DIR / "toyfaces-dcgan-mapping.safetensors"


@dataclass(frozen=True)
class GeneratorsSize:
    """How big a run is (11_other_generators.ipynb): M's recipe (`train`, both generators' M at CI size, the DCGAN's
    at full size), the evaluation sizes (the field names of `clip2gan.evaluation.sweeps.SweepSize`, which `evaluate`
    reads), and the StyleGAN2's M: a finished run of the same recipe (`stylegan2_mapping`, relative to the repository)
    or, when None, trained with `train`."""

    name: str
    train: dict[str, Any] = field(default_factory=dict)
    n_captions: int = 500
    n_div_prompts: int = 50
    n_per_prompt: int = 8
    n_edit: int = 500
    stylegan2_mapping: str | None = None
    n_figure: int = 6


SIZES: dict[str, GeneratorsSize] = {
    # CI: both Ms train 2 steps of 8 images; 16 captions and edits: the code paths run, the numbers mean nothing.
    "ci": GeneratorsSize("ci", dict(epochs=1, epoch_size=16, batch_size=8, max_steps=2, bank_size=16, log_every=1),
                         n_captions=16, n_div_prompts=2, n_per_prompt=2, n_edit=16, n_figure=3),
    # full: the paper's recipe on renders for the DCGAN's M (8 epochs × 2,048 renders, batch 32 = 512 steps, seed 0);
    # the StyleGAN2's M of that recipe and seed is runs/toyfaces-mapping-3, the full sweep's 'base' (copied there),
    # whose rows results/sweeps.csv holds; the full sweep's evaluation sizes (500 captions, 8 × 50, 500 edits).
    "full": GeneratorsSize("full", dict(epochs=8, epoch_size=2048, batch_size=32, log_every=10),
                           stylegan2_mapping="runs/sweeps-full/base/mapping.safetensors"),
}


def mapping_config(size: GeneratorsSize, generator: str, work: str | Path, generator_file: str | None = None,
                   seed: int = 0, device: str = "auto") -> TrainConfig:
    """The `TrainConfig` of M on one generator; its run folder is `<work>/<generator>` (11_other_generators.ipynb).

    The full size's DCGAN run is the command line
    `python -m clip2gan.train --profile toyfaces --generator data/toyfaces-dcgan.safetensors --epochs 8
    --epoch-size 2048 --batch-size 32 --threads 1 --sample-every 0 --log-every 10 --seed 0 --out runs/generators-full/dcgan`.
    """
    if generator not in GENERATORS:
        raise ValueError(f"unknown generator {generator!r}; known: {list(GENERATORS)}")
    return TrainConfig(**{"profile": "toyfaces", "seed": seed, "device": device, "sample_every": 0, **size.train,
                          "generator": generator_file, "out": str(Path(work) / generator)})


def dcgan_model(method: str = "bridged", device: str | torch.device = "cpu", mapping: str | Path | None = None,
                generator: str | Path | None = None, clip: Any = None) -> CLIP2GAN:
    """CLIP2GAN on the DCGAN: the toy CLIP, the DCGAN and its M (default: the shipped files, checked against the
    manifest), under `method` (11_other_generators.ipynb). The M must have been trained on that DCGAN file."""
    from clip2gan.model import build_clip
    from clip2gan.stylegan2 import load_generator

    g_path = Path(generator) if generator is not None else hub.resolve("toyfaces-dcgan")
    m_path = Path(mapping) if mapping is not None else hub.resolve("toyfaces-dcgan-mapping")
    _check_generator(m_path, str(g_path))
    clip = clip if clip is not None else build_clip({"profile": "toyfaces"}, device)
    return CLIP2GAN.from_checkpoint(m_path, clip=clip, generator=load_generator(g_path, device=device), method=method)


# -------------------------------------------------------------------------------------------------
# scoring


def unconditional_sampler(G: torch.nn.Module) -> Callable[..., torch.Tensor]:
    """G's own samples, `sample(captions, n_per_prompt, seed)`; the captions only set the count (11_other_generators.ipynb).

    A conditional G (the toy StyleGAN2) draws its labels from the data distribution (`comparisons.g_sampler`);
    an unconditional one (the DCGAN, c_dim = 0) decodes z ~ N(0, I)."""
    if getattr(G, "c_dim", 0):
        return g_sampler(G)

    @torch.no_grad()
    def sample(captions: Sequence[str], n_per_prompt: int = 1, seed: int = 0, batch: int = 250) -> torch.Tensor:
        z = torch.randn(len(captions) * n_per_prompt, G.z_dim, generator=torch.Generator().manual_seed(seed))
        dev = next(G.parameters()).device
        return torch.cat([G(b.to(dev), None, noise_mode="const").float().cpu() for b in z.split(batch)]).clamp(-1, 1)

    return sample


@torch.no_grad()
def edit_metrics(model: CLIP2GAN, data: EvalData, classifier: AttributeClassifier, lpips: Callable[..., torch.Tensor],
                 space: str, mode: str, seed: int = 0) -> dict[str, Any]:
    """The editing metrics of `evaluate` (`clip2gan.evaluation.protocol`) for any (edit space, edit mode), including
    the pair `evaluate`'s settings lack, CLIP space with 'neighbours' directions (11_other_generators.ipynb).

    Returns edit_acc, edit_acc_beta0, edit_pres, edit_n, edit_fid ± edit_fid_se (against the renders, classifier
    features), edit_lpips (each edit to its input)."""
    before, after = edit_pairs(model, data.edit_images, data.edit_texts, space=space, mode=mode)
    scores = score_edits(classifier, before, after, data.edit_targets)
    out: dict[str, Any] = {"edit_acc": scores.accuracy, "edit_acc_beta0": scores.floor, "edit_pres": scores.preservation,
                           "edit_n": scores.n}
    out["edit_fid"], out["edit_fid_se"] = fid_with_se(data.edit_images, after, toy_feature_extractor(classifier),
                                                      seed=seed)
    out["edit_lpips"] = lpips_to_reference(after, data.edit_images, lpips, progress=False)
    return out


@torch.no_grad()
def reference_scores(sample: Callable[..., torch.Tensor], data: EvalData, classifier: AttributeClassifier, clip: Any,
                     seed: int = 0) -> dict[str, Any]:
    """FID (both feature spaces) of a sampler's images against the held-out renders, and the share of the captions'
    stated attributes they show (`text_acc`: chance for a caption-blind sampler) (11_other_generators.ipynb)."""
    fake = sample(data.captions, 1, seed).float().cpu()
    out: dict[str, Any] = {}
    out["fid"], out["fid_se"] = fid_with_se(data.images, fake, toy_feature_extractor(classifier), seed=seed)
    out["fid_clip"], out["fid_clip_se"] = fid_with_se(data.images, fake, clip_feature_extractor(clip), seed=seed)
    details = text_attribute_accuracy(classifier, fake, data.mentioned, details=True)
    out["text_acc"], out["text_pairs"] = details["accuracy"], details["n_pairs"]
    return out


# -------------------------------------------------------------------------------------------------
# the run


def _worlds(size: GeneratorsSize, work: Path, dcgan_file: str, dev: torch.device, seed: int) -> dict[str, dict[str, Any]]:
    base = build_world(mapping_config(size, "stylegan2", work, None, seed, str(dev)), dev)
    dcgan = build_world(mapping_config(size, "dcgan", work, dcgan_file, seed, str(dev)), dev)
    return {"stylegan2": base, "dcgan": {**base, "G": dcgan["G"], "D": dcgan["D"], "world": dcgan["world"]}}


def _fresh_d(G: torch.nn.Module, seed: int) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return discriminator_like(G).to(next(G.parameters()).device)


def repo_relative(path: str | Path) -> str:
    """A path relative to the repository when it lies inside it (records stay valid in any checkout)."""
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def _check_generator(mapping: Path, generator_file: str | None) -> None:
    """A finished M must have been trained on the generator file it is scored with."""
    if generator_file is None:
        return
    recorded = load_config(mapping).get("world_sha256", {}).get("generator_sha256")
    if recorded and recorded != hub.sha256_file(generator_file):
        raise FileExistsError(f"{mapping} was trained on another generator than {generator_file} (sha256 differs); "
                              "move the run away or pass the generator it was trained on")


def run_generators(size: str | GeneratorsSize = "ci", out: str | Path = "results", work: str | Path | None = None,
                   dcgan_file: str | Path | None = None, stylegan2_mapping: str | Path | None = None,
                   device: str = "auto", seed: int = 0,
                   worlds: Mapping[str, dict[str, Any]] | None = None, classifier: AttributeClassifier | None = None,
                   dataset_factory: Callable[[TrainConfig], torch.utils.data.Dataset] | None = None,
                   progress: bool = True, log: Callable[[str], Any] = print, write: bool = True,
                   trained_only: bool = False) -> dict[str, Any]:
    """Train (or reuse, or resume) M on each generator, score every (generator, method, edit space) and the
    references, write `<out>/dcgan.{csv,json,png}` (11_other_generators.ipynb).

    worlds: {'stylegan2': world, 'dcgan': world} (`clip2gan.train.build_world` dicts; tests inject tiny ones);
    dcgan_file: the DCGAN (default `DCGAN_FILE`); stylegan2_mapping: the StyleGAN2's M (default the size's).
    trained_only: train nothing, score what is finished and list the
    rest in `missing`. Returns the JSON record.
    """
    size = SIZES[size] if isinstance(size, str) else size
    out, work = Path(out), Path(work) if work is not None else Path("runs") / f"generators-{size.name}"
    dev = pick_device(device)
    started = time.perf_counter()
    dcgan_path = str(dcgan_file if dcgan_file is not None else DCGAN_FILE)
    injected = worlds is not None
    if worlds is None:
        if not Path(dcgan_path).is_file():
            raise FileNotFoundError(f"{dcgan_path} does not exist: export the DCGAN first "
                                    "(python -m clip2gan.dcgan.train export --run runs/dcgan --snapshot STEP)")
        worlds = _worlds(size, work, dcgan_path, dev, seed)
    classifier = classifier if classifier is not None else AttributeClassifier.from_pretrained(device=dev)
    clip, lpips = worlds["stylegan2"]["clip"], worlds["stylegan2"]["lpips"]
    res = int(worlds["stylegan2"]["G"].img_resolution)
    data = eval_data(size, res, seed)
    scores_dir = work / "scores"

    def cached(key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = scores_dir / f"{size.name}-eval{seed}-{key}.json"
        if path.is_file():
            return json.loads(path.read_text())
        value = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in compute().items()}
        scores_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(value, default=float))
        return value

    rows: list[dict[str, Any]] = []
    missing: list[str] = []
    models: dict[str, dict[str, CLIP2GAN]] = {}
    rows.append({"table": "references", "generator": "renders",
                 **cached("reference-renders", lambda: reference_scores(
                     renders_sampler(res, data.captions, data.mentioned), data, classifier, clip, seed=seed))})
    mappings: dict[str, str] = {}
    for name in GENERATORS:
        world = worlds[name]
        rows.append({"table": "references", "generator": name, **cached(f"reference-{name}-samples", lambda w=world: (
            reference_scores(unconditional_sampler(w["G"]), data, classifier, clip, seed=seed)))})
        train_seconds = None
        if name == "stylegan2" and size.stylegan2_mapping and not injected:
            mapping = Path(stylegan2_mapping or hub.DATA_DIR.parent / size.stylegan2_mapping)
            if not mapping.is_file():
                raise FileNotFoundError(f"{mapping} does not exist: the StyleGAN2's M of the same recipe (train it with "
                                        f"{mapping_config(size, name, work).out!r} as --out, or pass --stylegan2-mapping)")
        else:
            config = mapping_config(size, name, work, None if (injected or name == "stylegan2") else dcgan_path, seed,
                                    str(dev))
            if trained_only and not (Path(config.out) / "mapping.safetensors").is_file():
                missing.append(name)
                log(f"[{size.name}] {name}: M not trained, left out (--trained-only)")
                continue
            if not injected and (Path(config.out) / "mapping.safetensors").is_file():
                _check_generator(Path(config.out) / "mapping.safetensors", config.generator)
            trained = train_variant(config, {**world, "D": _fresh_d(world["G"], seed)},
                                    dataset_factory(config) if dataset_factory else None, progress)
            mapping, train_seconds = trained["mapping"], trained["train_seconds"]
        mappings[name] = repo_relative(mapping)
        models[name] = {m: CLIP2GAN.from_checkpoint(mapping, clip=clip, generator=world["G"], method=m) for m in METHODS}
        for method, model in models[name].items():
            setting = "paper" if method == "paper" else "nearest"
            gen = cached(f"{name}-{method}-generation", lambda m=model, s=setting: evaluate(
                m, data, classifier, lpips, size, setting=s, seed=seed, groups=("generation", "reconstruction")))
            for space in SPACES:
                edit = cached(f"{name}-{method}-edit-{space}", lambda m=model, sp=space, md=METHODS[method]: edit_metrics(
                    m, data, classifier, lpips, sp, md, seed=seed))
                rows.append({"table": "methods", "generator": name, "method": method, "space": space,
                             "train_seconds": train_seconds, **gen, **edit})
            log(f"[{size.name}] {name} {method}: FID {gen['fid']:.1f}, LPIPS {gen['lpips_ref']:.3f}, accuracy "
                f"{gen['text_acc']:.3f}; edits (z/w+ | CLIP) accuracy {rows[-2]['edit_acc']:.3f} | {rows[-1]['edit_acc']:.3f}, "
                f"FID {rows[-2]['edit_fid']:.1f} | {rows[-1]['edit_fid']:.1f}")
    record: dict[str, Any] = {
        "command": f"python -m clip2gan.evaluation.generators --size {size.name} --out {out}",
        "size": dataclasses.asdict(size), "seed": seed, "device": str(dev), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - started, 1), "work": str(work),
        "mappings": mappings, "mapping_sha256": {k: hub.sha256_file(ROOT / v) for k, v in mappings.items()},
        "dcgan_file": None if injected else repo_relative(dcgan_path), "rows": rows, "missing": missing,
        "weights": weights_record("toyfaces") if not injected else {}}
    if not injected:
        record["dcgan_sha256"] = hub.sha256_file(dcgan_path)
        if size.name == "full" and SWEEPS_CSV.is_file():
            record["committed_check"] = committed_check(rows, SWEEPS_CSV)
    if write:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(rows, out / "dcgan.csv", CSV_COLUMNS)
        atomic_write_text(out / "dcgan.json", json.dumps(record, indent=1, default=float) + "\n")
        if len(models) == len(GENERATORS):
            plot_generators(models, data, size.name, out / "dcgan.png", n=size.n_figure, seed=seed)
    return record


CSV_COLUMNS = ["table", "generator", "method", "space", "fid", "fid_se", "fid_clip", "fid_clip_se", "lpips_ref", "text_acc",
               "text_pairs", "lpips_div", "rec_match", "edit_acc", "edit_acc_beta0", "edit_pres", "edit_fid", "edit_fid_se",
               "edit_lpips", "edit_n", "eval_seconds", "train_seconds"]



def committed_check(rows: Sequence[Mapping[str, Any]], sweeps_csv: str | Path) -> dict[str, Any]:
    """The StyleGAN2 rows scored here beside the committed full sweep's 'base' rows (the shipped M; settings 'paper',
    'nearest' and 'clip_space'): {'setting/metric': [here, committed]} (11_other_generators.ipynb)."""
    with open(sweeps_csv, newline="") as f:
        committed = {r["setting"]: r for r in csv.DictReader(f) if r["size"] == "full" and r["variant"] == "base"}
    pairs = {"paper": ("paper", "wplus"), "nearest": ("bridged", "wplus"), "clip_space": ("paper", "clip")}
    out: dict[str, Any] = {}
    for setting, (method, space) in pairs.items():
        here = next((r for r in rows if r["table"] == "methods" and r["generator"] == "stylegan2"
                     and r["method"] == method and r["space"] == space), None)
        if here is None or setting not in committed:
            continue
        keys = ("text_acc", "fid", "lpips_ref", "edit_acc", "edit_pres", "edit_fid", "edit_lpips")
        for k in keys:
            if committed[setting].get(k) not in (None, "") and here.get(k) is not None:
                out[f"{setting}/{k}"] = [round(float(here[k]), 4), round(float(committed[setting][k]), 4)]
    return out


# -------------------------------------------------------------------------------------------------
# shipping the DCGAN and its M

#: how data/toyfaces-dcgan.safetensors was made (the snapshot step is filled in from the file's own record)
DCGAN_COMMAND = ("python -m clip2gan.dcgan.train --out runs/dcgan --steps 10000 --snapshot-every 1000 --grid-every 500 "
                 "[resumed with --resume] && python -m clip2gan.dcgan.train eval --run runs/dcgan "
                 "&& python -m clip2gan.dcgan.train export --run runs/dcgan --snapshot {step} "
                 "--out data/toyfaces-dcgan.safetensors")


def half_mapping(src: str | Path, dst: str | Path) -> Path:
    """A float16 copy of a mapping file (its config, world and feature bank unchanged), JSON beside it
    (11_other_generators.ipynb)."""
    from clip2gan.checkpoint import load_safetensors, save_safetensors

    state, config = load_safetensors(src)
    return save_safetensors(state, dst, config, half=True)


def ship_dcgan(record: Mapping[str, Any], data_dir: str | Path | None = None, classifier: AttributeClassifier | None = None,
               device: str = "cpu", seed: int = 0, tolerance: float = 0.01) -> dict[str, Any]:
    """Ship the DCGAN's M in float16 beside the DCGAN (already exported to data/) and write both manifest entries
    (sha256, the command, the figures) (11_other_generators.ipynb).

    The float16 M is scored again (generation under both methods, GAN-space edits) on the record's evaluation set;
    it is shipped only if no accuracy moves by more than `tolerance`, else `ValueError`. Returns both entries.
    """
    size = SIZES[record["size"]["name"]]
    data_dir = Path(data_dir) if data_dir is not None else hub.DATA_DIR
    g_path, m_src = ROOT / record["dcgan_file"], ROOT / record["mappings"]["dcgan"]
    if g_path.resolve() != (data_dir / DCGAN_FILE.name).resolve():
        raise ValueError(f"the record's DCGAN is {g_path}, not {data_dir / DCGAN_FILE.name}: export it there and re-run")
    dst = half_mapping(m_src, data_dir / DCGAN_MAPPING_FILE.name)
    dev = pick_device(device)
    classifier = classifier if classifier is not None else AttributeClassifier.from_pretrained(device=dev)
    check: dict[str, list[float]] = {}
    for method in METHODS:
        model = dcgan_model(method, dev, mapping=dst, generator=g_path)
        data = eval_data(size, model.resolution, seed)
        lpips = _lpips(model)
        gen = evaluate(model, data, classifier, lpips, size, seed=seed, groups=("generation",))
        edit = edit_metrics(model, data, classifier, lpips, "wplus", METHODS[method], seed=seed)
        ref = _row(record, "dcgan", method, "wplus")
        for k, v in (("text_acc", gen["text_acc"]), ("edit_acc", edit["edit_acc"]), ("edit_pres", edit["edit_pres"])):
            check[f"{method}/{k}"] = [round(float(ref[k]), 4), round(float(v), 4)]
    worst = max(abs(a - b) for a, b in check.values())
    if worst > tolerance:
        dst.unlink()
        dst.with_suffix(".json").unlink(missing_ok=True)
        raise ValueError(f"float16 moves an accuracy by {worst:.4f} > {tolerance}: {check}")
    g_config = load_config(g_path)
    rows = {f"{r['method']}/{r['space']}": {k: r[k] for k in CSV_COLUMNS[4:20] if k in r}
            for r in record["rows"] if r["table"] == "methods" and r["generator"] == "dcgan"}
    evaluation = (f"python -m clip2gan.evaluation.generators --size {size.name} (clip2gan.evaluation.generators: "
                  f"{size.n_captions} held-out captions, {size.n_edit} edits at β = 1; results/dcgan.json)")
    g_entry = hub.write_manifest_entry(
        g_path, DCGAN_COMMAND.format(step=g_config.get("step")), step=g_config.get("step"), kimg=g_config.get("kimg"),
        bar_float32=g_config.get("bar_float32"), bar_float16=g_config.get("bar_float16"),
        reference=_row(record, "dcgan"), evaluation=evaluation,
        note="the toy DCGAN chosen among the run's snapshots (clip2gan.dcgan.train.choose_snapshot); it misses the toy "
             "StyleGAN2's bar (docs/design.md, Another generator: DCGAN)")
    train = load_config(m_src).get("train", {})
    command = (f"python -m clip2gan.train --profile toyfaces --generator {DCGAN_FILE.relative_to(DCGAN_FILE.parents[1])} "
               f"--epochs {train.get('epochs')} --epoch-size {train.get('epoch_size')} --batch-size {train.get('batch_size')} "
               f"--threads 1 --sample-every 0 --log-every {train.get('log_every')} --seed {train.get('seed')} "
               f"--out {repo_relative(m_src.parent)} && "
               f"python -m clip2gan.evaluation.generators --size {size.name} --out results --ship")
    m_entry = hub.write_manifest_entry(dst, command, steps=load_config(m_src).get("steps"),
                                       train_seconds=record_train_seconds(record), metrics=rows, float16_check=check,
                                       evaluation=evaluation)
    return {"generator": g_entry, "mapping": m_entry}


def record_train_seconds(record: Mapping[str, Any]) -> float | None:
    """The DCGAN's M's training seconds in a record (None when it was not trained by the run)."""
    return next((r.get("train_seconds") for r in record["rows"] if r.get("generator") == "dcgan" and r["table"] == "methods"),
                None)


def _lpips(model: CLIP2GAN) -> Any:
    from clip2gan.losses import LPIPSLoss

    return LPIPSLoss.for_profile("toyfaces", clip_encoder=model.clip).to(model.device)


# -------------------------------------------------------------------------------------------------
# Table 6 and its verdicts


def _row(record: Mapping[str, Any], generator: str, method: str | None = None, space: str | None = None
         ) -> Mapping[str, Any] | None:
    for r in record["rows"]:
        if r["generator"] == generator and r.get("method") == method and r.get("space") == space:
            return r
    return None


def table6_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Table 6's rows from a `run_generators` record (11_other_generators.ipynb): per generator, method and edit
    space the generation FID ± SE / LPIPS / accuracy and the edit FID ± SE / LPIPS / accuracy / kept; then the
    reference rows (renders, each G's own samples: FID and the accuracy caption-blind samples reach by chance)."""
    out = []
    for g in GENERATORS:
        for method in METHODS:
            for space in SPACES:
                r = _row(record, g, method, space)
                if r is None:
                    continue
                out.append({"model": LABELS[g], "method": method, "edit space": SPACES[space], "FID": r["fid"],
                            "FID se": r["fid_se"], "LPIPS": r["lpips_ref"], "accuracy": r["text_acc"],
                            "edit FID": r["edit_fid"], "edit FID se": r["edit_fid_se"], "edit LPIPS": r["edit_lpips"],
                            "edit accuracy": r["edit_acc"], "edit kept": r["edit_pres"]})
    for g, label in (("renders", "renders (floor)"), *((g, f"{LABELS[g]} samples (no M)") for g in GENERATORS)):
        r = _row(record, g)
        if r is not None:
            out.append({"model": label, "method": "reference", "edit space": "–", "FID": r["fid"], "FID se": r["fid_se"],
                        "LPIPS": None, "accuracy": r["text_acc"], "edit FID": None, "edit FID se": None,
                        "edit LPIPS": None, "edit accuracy": None, "edit kept": None})
    return out


def _pm(value: Any, se: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f} ± {se:.{digits}f}" if se is not None else f"{value:.{digits}f}"


def table6_text(record: Mapping[str, Any]) -> str:
    """Table 6 as a plain-text table (11_other_generators.ipynb)."""
    header = ["model", "method", "edit space", "FID", "LPIPS", "accuracy", "edit FID", "edit LPIPS", "edit acc.", "kept"]
    rows = [[r["model"], r["method"], r["edit space"], _pm(r["FID"], r["FID se"]),
             None if r["LPIPS"] is None else f"{r['LPIPS']:.3f}", f"{r['accuracy']:.3f}",
             _pm(r["edit FID"], r["edit FID se"]), None if r["edit LPIPS"] is None else f"{r['edit LPIPS']:.3f}",
             None if r["edit accuracy"] is None else f"{r['edit accuracy']:.3f}",
             None if r["edit kept"] is None else f"{r['edit kept']:.3f}"] for r in table6_rows(record)]
    size = record["size"]
    title = (f"Table 6 in kind ({size['name']} size; {size['n_captions']} captions vs as many renders per FID, "
             f"{size['n_edit']} edits at β = 1; toy FID in classifier features ± bootstrap SE; LPIPS: the toy CLIP-trunk "
             f"distance; methods: 'paper' = bare text features, 'bridged' = the feature-bank bridge)")
    return format_table(header, rows, title=title)


def _lower_fid(a: Mapping[str, Any], b: Mapping[str, Any], key: str = "fid") -> bool | None:
    """True: a's FID is below b's beyond 2 combined SE; False: above; None: within."""
    diff, margin = a[key] - b[key], 2 * float(np.hypot(a[f"{key}_se"], b[f"{key}_se"]))
    return None if abs(diff) <= margin else diff < 0


def _higher(a: Mapping[str, Any], b: Mapping[str, Any], key: str, n_key: str) -> bool | None:
    diff, margin = compare_proportions(a[key], a[n_key], b[key], b[n_key])
    return None if abs(diff) <= margin else diff > 0


def table6_verdicts(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """One verdict per claim of Table 6 and its text, each from comparisons beyond two standard errors
    (`protocol.verdict`) (11_other_generators.ipynb). Returns {claim: {'verdict', 'checks': {what: True/False/None}}}.

    1. M works on another GAN: DCGAN text → image accuracy above what its caption-blind samples show by chance.
    2. The DCGAN generates worse than StyleGAN2: higher generation FID, under each method.
    3. Editing in the GAN's latent space is better than in CLIP space (lower edit FID; the paper's measure), per
       generator and method; `edit accuracy` is checked beside it as its own claim (4).
    """
    out: dict[str, dict[str, Any]] = {}
    g_ref = _row(record, "dcgan")
    checks: dict[str, bool | None] = {}
    for method in METHODS:
        r = _row(record, "dcgan", method, "wplus")
        if r is not None and g_ref is not None:
            checks[f"DCGAN {method}: accuracy {r['text_acc']:.3f} vs chance {g_ref['text_acc']:.3f}"] = _higher(
                r, g_ref, "text_acc", "text_pairs")
    out["M maps CLIP into another GAN (text → image accuracy above chance)"] = checks
    checks = {}
    for method in METHODS:
        d, s = _row(record, "dcgan", method, "wplus"), _row(record, "stylegan2", method, "wplus")
        if d is not None and s is not None:
            checks[f"{method}: FID {d['fid']:.1f} (DCGAN) vs {s['fid']:.1f} (StyleGAN2)"] = _lower_fid(s, d)
    d, s = _row(record, "dcgan"), _row(record, "stylegan2")
    if d is not None and s is not None:
        checks[f"G's own samples: FID {d['fid']:.1f} (DCGAN) vs {s['fid']:.1f} (StyleGAN2)"] = _lower_fid(s, d)
    out["the DCGAN generates worse than StyleGAN2 (higher FID)"] = checks
    fid_checks: dict[str, bool | None] = {}
    acc_checks: dict[str, bool | None] = {}
    for g in GENERATORS:
        for method in METHODS:
            z, c = _row(record, g, method, "wplus"), _row(record, g, method, "clip")
            if z is None or c is None:
                continue
            fid_checks[f"{LABELS[g]} {method}: edit FID {z['edit_fid']:.1f} (GAN) vs {c['edit_fid']:.1f} (CLIP)"] = \
                _lower_fid(z, c, "edit_fid")
            acc_checks[f"{LABELS[g]} {method}: edit accuracy {z['edit_acc']:.3f} (GAN) vs {c['edit_acc']:.3f} (CLIP)"] = \
                _higher(z, c, "edit_acc", "edit_n")
    out["editing in the GAN's latent space beats CLIP space (edit FID)"] = fid_checks
    out["editing in the GAN's latent space beats CLIP space (edit accuracy)"] = acc_checks
    return {claim: {"verdict": verdict(list(c.values())), "checks": c} for claim, c in out.items()}


# -------------------------------------------------------------------------------------------------
# the figure


def _rule(method: str) -> str:
    return "the paper's rule (method='paper')" if method == "paper" else f"the {method} method (method={method!r})"


@torch.no_grad()
def plot_generators(models: Mapping[str, Mapping[str, CLIP2GAN]], data: EvalData, size_name: str,
                    path: str | Path | None = None, n: int = 6, seed: int = 0):
    """Samples and edits of both generators (11_other_generators.ipynb): each G's own samples; text → image on the
    first `n` held-out captions under both methods; the first `n` edit pairs: input, the edit in the GAN's code and
    in CLIP space under both methods. Titles carry the method and the run size. Returns the figure."""
    import matplotlib.pyplot as plt  # here, after the caller chose a backend (the command line: Agg)

    from clip2gan.viz import make_grid

    strips: list[tuple[str, torch.Tensor]] = []
    images, texts = data.edit_images[:n], data.edit_texts[:n]
    for g, by_method in models.items():
        G = next(iter(by_method.values())).generator
        strips.append((f"{LABELS[g]}: G's own samples (no text)", unconditional_sampler(G)([""] * n, 1, seed)))
        for method, model in by_method.items():
            strips.append((f"{LABELS[g]}, text → image, {_rule(method)}",
                           model.generate(data.captions[:n], n_per_prompt=1, seed=seed).float().cpu()))
    strips.append(("edit inputs (renders); texts: " + " | ".join(texts), images))
    for g, by_method in models.items():
        for method, model in by_method.items():
            for space in SPACES:
                _, after = edit_pairs(model, images, texts, space=space, mode=METHODS[method])
                strips.append((f"{LABELS[g]}, edit in {SPACES[space]} space, {_rule(method)}", after))
    fig, axes = plt.subplots(len(strips), 1, figsize=(1.0 * n + 0.5, 1.22 * len(strips) + 0.6), squeeze=False)
    for ax, (label, imgs) in zip(axes[:, 0], strips):
        ax.imshow(make_grid(imgs.clamp(-1, 1), nrow=n, upscale=2), interpolation="nearest")
        ax.set_title(label, fontsize=6.5, loc="left")
        ax.axis("off")
    fig.suptitle(f"DCGAN vs StyleGAN2 under M: samples, text → image and edits (β = 1) under both methods "
                 f"({size_name} size)", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the title above the first strip
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
    return fig


# -------------------------------------------------------------------------------------------------
# command line


@dataclass
class GeneratorsCommand:
    """The flags of `python -m clip2gan.evaluation.generators`, one per field (`clip2gan.cli`) (11_other_generators.ipynb)."""

    size: str = option("ci", "M's recipe and the evaluation sizes", choices=tuple(SIZES))
    out: str = option("results", "folder for dcgan.csv, dcgan.json and dcgan.png")
    work: str | None = option(None, "M's run folders and the score cache, runs/generators-<size> when unset")
    dcgan: str | None = option(None, f"the DCGAN generator file ({DCGAN_FILE.relative_to(DCGAN_FILE.parents[1])} when unset)")
    stylegan2_mapping: str | None = option(None, "the StyleGAN2's M (the size's run of the same recipe when unset)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    seed: int = option(0, "training and evaluation seed")
    threads: int | None = option(None, "torch CPU threads, torch's default when unset")
    trained_only: bool = option(False, "train nothing: score the finished Ms, list the missing ones in the record")
    ship: bool = option(False, "also copy the DCGAN's M to data/ in float16 (if its accuracies hold) and write the manifest "
                               "entries of it and of data/toyfaces-dcgan.safetensors")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m clip2gan.evaluation.generators` (11_other_generators.ipynb); returns the exit status."""
    args = batch_command_args(GeneratorsCommand, "python -m clip2gan.evaluation.generators", __doc__.split("\n")[0], argv)
    try:
        record = run_generators(args.size, out=args.out, work=args.work, dcgan_file=args.dcgan,
                                stylegan2_mapping=args.stylegan2_mapping, device=args.device,
                                seed=args.seed, trained_only=args.trained_only)
    except (ValueError, FileExistsError, FileNotFoundError) as err:
        print(f"clip2gan.evaluation.generators: error: {err}", file=sys.stderr)
        return 1
    print(table6_text(record) + "\n")
    for claim, v in table6_verdicts(record).items():
        print(f"{claim}: {v['verdict']}")
        for what, ok in v["checks"].items():
            print(f"    {what}: {'as the paper says' if ok else 'against it' if ok is False else 'within 2 SE'}")
    print(f"wrote {Path(args.out) / 'dcgan.csv'}, .json and .png")
    if args.ship:
        entries = ship_dcgan(record, device=args.device, seed=args.seed)
        print(json.dumps({k: {"sha256": e["sha256"], "size": e["size"]} for k, e in entries.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
