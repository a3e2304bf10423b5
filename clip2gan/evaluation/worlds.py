"""Another world under the same method: the paper's Table 7 in kind, toy pets beside toy faces (12_other_worlds.ipynb).

    python -m clip2gan.evaluation.worlds --size ci   --out results/ci-worlds   # a minute; numbers meaningless
    python -m clip2gan.evaluation.worlds --size full --out results/            # results/worlds.{csv,json,png}

The paper (Table 7) trains CLIP2GAN on AFHQ cat, AFHQ dog and LSUN church (no identity loss there) and reports
the FID of text-driven generation per dataset. Here each world is a profile with its own renderer, captions,
attribute classifier, toy CLIP, toy StyleGAN2 and M (`clip2gan.profiles`: 'toyfaces' and 'toypets'), each M
trained with the same recipe, and every world is scored by one code path:

* references: a second set of renders (the estimator's floor) and the world's G's own samples, labels drawn from
  the data (FID, and the share of the captions' stated attributes such caption-blind samples show by chance);
* per method ('paper': bare text features into M; 'bridged': the feature-bank bridge): generation and the round
  trip (`clip2gan.evaluation.protocol.evaluate`: FID ± SE in the world classifier's features and in its toy CLIP
  image tower's, LPIPS to the caption's render, text → image accuracy, LPIPS diversity, `rec_match`), and β = 1
  edits in w+ with the method's edit mode (`clip2gan.evaluation.generators.edit_metrics`).

FIDs are toy FIDs in each world's own classifier features, so a number is only comparable within its world; what
carries across worlds is the ratio to that world's G (`fid_ratio`: text → image FID / G's own samples' FID) and
the accuracies. Every scored row is cached in `<work>/scores/`, keyed by the sha256 of the world's M, so a stopped
run restarts where it was. `table7_rows` turns the record into the table, `table7_verdicts` into one verdict per
claim.
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

from clip2gan import hub
from clip2gan.checkpoint import atomic_write_text
from clip2gan.cli import option
from clip2gan.evaluation.comparisons import g_sampler, renders_sampler
from clip2gan.evaluation.generators import edit_metrics, reference_scores, repo_relative
from clip2gan.evaluation.protocol import compare_proportions, edit_pairs, eval_data, evaluate, verdict
from clip2gan.evaluation.sweeps import weights_record
from clip2gan.evaluation.tables import format_table, write_csv
from clip2gan.model import CLIP2GAN
from clip2gan.profiles import get_profile
from clip2gan.runtime import batch_command_args, pick_device
from clip2gan.toy.nets import AttributeClassifier

__all__ = [
    "WORLDS",
    "LABELS",
    "METHODS",
    "WorldsSize",
    "SIZES",
    "world_models",
    "score_world",
    "run_worlds",
    "table7_rows",
    "table7_text",
    "table7_verdicts",
    "plot_worlds",
    "ship_world",
    "WorldsCommand",
    "main",
]

#: the toy worlds, as profiles
WORLDS = ("toyfaces", "toypets")
#: the worlds' names in tables and figures
LABELS = {"toyfaces": "toy faces", "toypets": "toy pets"}
#: method → its edit mode (`CLIP2GAN(method=...)`'s defaults) and its `evaluate` setting
METHODS = {"paper": ("paper", "paper"), "bridged": ("neighbours", "nearest")}
ROOT = hub.DATA_DIR.parent  # the repository: records store paths relative to it


@dataclass(frozen=True)
class WorldsSize:
    """How big a run is (12_other_worlds.ipynb): the evaluation sizes per world (the field names `evaluate` reads) and
    the number of columns in the figure."""

    name: str
    n_captions: int = 500
    n_div_prompts: int = 50
    n_per_prompt: int = 8
    n_edit: int = 500
    n_figure: int = 6


SIZES: dict[str, WorldsSize] = {
    # CI: 16 captions and edits per world, so the code paths run in about a minute; the numbers mean nothing.
    "ci": WorldsSize("ci", n_captions=16, n_div_prompts=2, n_per_prompt=2, n_edit=16, n_figure=3),
    # full: the sweeps' evaluation sizes (500 captions, 8 samples × 50 captions for diversity, 500 edits).
    "full": WorldsSize("full"),
}


def world_models(profile: str, device: str | torch.device = "cpu", mapping: str | Path | None = None
                 ) -> dict[str, CLIP2GAN]:
    """{method: CLIP2GAN} of one world's shipped M (or `mapping`), one loaded CLIP and G shared by both methods
    (12_other_worlds.ipynb)."""
    first = CLIP2GAN.from_pretrained(profile, device=device, mapping=mapping, method="paper")
    path = hub.resolve(mapping or f"{profile}-mapping")
    return {"paper": first, "bridged": CLIP2GAN.from_checkpoint(path, clip=first.clip, generator=first.generator,
                                                                method="bridged")}


def _lpips(profile: str, model: CLIP2GAN) -> Any:
    from clip2gan.losses import LPIPSLoss

    return LPIPSLoss.for_profile(profile, clip_encoder=model.clip).to(model.device)


def run_worlds(size: str | WorldsSize = "ci", out: str | Path = "results", work: str | Path | None = None,
               worlds: Sequence[str] = WORLDS, device: str = "auto", seed: int = 0,
               mappings: Mapping[str, str | Path] | None = None,
               models: Mapping[str, Mapping[str, CLIP2GAN]] | None = None,
               classifiers: Mapping[str, AttributeClassifier] | None = None,
               log: Callable[[str], Any] = print, write: bool = True) -> dict[str, Any]:
    """Score every world under both methods and its references, write `<out>/worlds.{csv,json,png}`
    (12_other_worlds.ipynb).

    mappings: {profile: M file} in place of the shipped `<profile>-mapping`; models / classifiers: already built
    ones per profile (tests inject tiny worlds; nothing is cached then). Returns the JSON record.
    """
    size = SIZES[size] if isinstance(size, str) else size
    out, work = Path(out), Path(work) if work is not None else Path("runs") / f"worlds-{size.name}"
    dev = pick_device(device)
    started = time.perf_counter()
    injected = models is not None
    rows: list[dict[str, Any]] = []
    record_mappings: dict[str, str] = {}
    built: dict[str, dict[str, CLIP2GAN]] = {}
    for profile in worlds:
        if profile not in LABELS:
            raise ValueError(f"unknown world {profile!r}; known: {list(LABELS)}")
        built[profile] = dict(models[profile]) if injected else world_models(profile, dev, (mappings or {}).get(profile))
        classifier = (classifiers or {}).get(profile) or AttributeClassifier.from_pretrained(
            get_profile(profile).classifier, device=dev)
        cache = None
        if not injected:
            path = hub.resolve((mappings or {}).get(profile) or f"{profile}-mapping")
            record_mappings[profile] = repo_relative(path)
            cache = work / "scores" / f"{size.name}-eval{seed}-{profile}-{hub.sha256_file(path)[:12]}"
        rows += score_world(profile, built[profile], classifier, size, seed, cache, log)
    record: dict[str, Any] = {
        "command": f"python -m clip2gan.evaluation.worlds --size {size.name} --out {out}",
        "size": dataclasses.asdict(size), "seed": seed, "device": str(dev), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - started, 1), "work": str(work),
        "worlds": list(worlds), "mappings": record_mappings,
        "mapping_sha256": {k: hub.sha256_file(ROOT / v) for k, v in record_mappings.items()},
        "weights": {} if injected else {p: weights_record(p) for p in worlds}, "rows": rows}
    if write:
        out.mkdir(parents=True, exist_ok=True)
        write_csv(rows, out / "worlds.csv", CSV_COLUMNS)
        atomic_write_text(out / "worlds.json", json.dumps(record, indent=1, default=float) + "\n")
        plot_worlds(built, size.name, out / "worlds.png", n=size.n_figure, seed=seed)
    return record


def score_world(profile: str, by_method: Mapping[str, CLIP2GAN], classifier: AttributeClassifier, size: WorldsSize,
                seed: int = 0, cache: Path | None = None, log: Callable[[str], Any] = print) -> list[dict[str, Any]]:
    """One world's rows of Table 7 (12_other_worlds.ipynb): its references (renders, G's own samples), then per method
    generation, the round trip and w+ edits, each with `fid_ratio` (its FID over G's own samples' FID).

    cache: a path prefix; each scored part is stored as `<cache>-<part>.json` and read back on the next run."""
    model = by_method["paper"]
    data = eval_data(size, model.resolution, seed, world=profile)
    lpips = _lpips(profile, model)

    def cached(part: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = None if cache is None else cache.with_name(f"{cache.name}-{part}.json")
        if path is not None and path.is_file():
            return json.loads(path.read_text())
        value = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in compute().items()}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(value, default=float))
        return value

    renders = renders_sampler(model.resolution, data.captions, data.mentioned, profile)
    rows = [{"world": profile, "method": "renders",
             **cached("reference-renders", lambda: reference_scores(renders, data, classifier, model.clip, seed=seed))},
            {"world": profile, "method": "g_samples", **cached("reference-g", lambda: reference_scores(
                g_sampler(model.generator, profile), data, classifier, model.clip, seed=seed))}]
    g_fid = rows[-1]["fid"]
    for method, m in by_method.items():
        mode, setting = METHODS[method]
        gen = cached(f"{method}-generation", lambda m=m, s=setting: evaluate(
            m, data, classifier, lpips, size, setting=s, seed=seed, groups=("generation", "reconstruction")))
        edit = cached(f"{method}-edit", lambda m=m, md=mode: edit_metrics(m, data, classifier, lpips, "wplus", md,
                                                                          seed=seed))
        # what carries across worlds: text → image FID over the world's G's own
        rows.append({"world": profile, "method": method, **gen, **edit,
                     "fid_ratio": round(gen["fid"] / g_fid, 3) if g_fid > 0 else None})
        log(f"[{size.name}] {LABELS[profile]} {method}: FID {gen['fid']:.1f} ({rows[-1]['fid_ratio']} × G's), accuracy "
            f"{gen['text_acc']:.3f}, round trip {gen['rec_match']:.3f}; edits {edit['edit_acc']:.3f} reached / "
            f"{edit['edit_pres']:.3f} kept")
    return rows


CSV_COLUMNS = ["world", "method", "fid", "fid_se", "fid_ratio", "fid_clip", "fid_clip_se", "lpips_ref", "text_acc",
               "text_pairs", "lpips_div", "rec_match", "edit_acc", "edit_acc_beta0", "edit_pres", "edit_fid",
               "edit_fid_se", "edit_lpips", "edit_n", "eval_seconds"]



# -------------------------------------------------------------------------------------------------
# Table 7 and its verdicts


def _row(record: Mapping[str, Any], world: str, method: str) -> Mapping[str, Any] | None:
    return next((r for r in record["rows"] if r["world"] == world and r["method"] == method), None)


def _f(value: Any, digits: int = 3) -> str | None:
    return None if value is None else f"{value:.{digits}f}"


def table7_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Table 7's rows from a `run_worlds` record (12_other_worlds.ipynb): per world and method the text → image
    FID ± SE (and its ratio to the world's G), accuracy, LPIPS diversity, round trip and w+ edits; then each world's
    references (renders, G's own samples)."""
    out = []
    for world in record["worlds"]:
        for method in ("paper", "bridged", "renders", "g_samples"):
            r = _row(record, world, method)
            if r is None:
                continue
            label = {"renders": "renders (floor)", "g_samples": "G's own samples (no text)"}.get(method, method)
            out.append({"world": LABELS[world], "method": label, "FID": r["fid"], "FID se": r["fid_se"],
                        "FID / G's": r.get("fid_ratio"), "accuracy": r["text_acc"], "diversity": r.get("lpips_div"),
                        "round trip": r.get("rec_match"), "edit accuracy": r.get("edit_acc"),
                        "edit floor": r.get("edit_acc_beta0"), "edit kept": r.get("edit_pres")})
    return out


def table7_text(record: Mapping[str, Any]) -> str:
    """Table 7 as a plain-text table (12_other_worlds.ipynb)."""
    header = ["world", "method", "FID", "FID / G's", "accuracy", "diversity", "round trip", "edit acc. (β=0)", "kept"]
    rows = [[r["world"], r["method"], f"{r['FID']:.1f} ± {r['FID se']:.1f}", _f(r["FID / G's"], 2), _f(r["accuracy"]),
             _f(r["diversity"]), _f(r["round trip"]),
             None if r["edit accuracy"] is None else f"{r['edit accuracy']:.3f} ({r['edit floor']:.3f})",
             _f(r["edit kept"])] for r in table7_rows(record)]
    size = record["size"]
    title = (f"Table 7 in kind ({size['name']} size; per world {size['n_captions']} captions vs as many renders per "
             f"FID, {size['n_edit']} edits in w+ at β = 1; toy FID in the world classifier's features ± bootstrap SE, "
             f"comparable within a world only; methods: 'paper' = bare text features (the paper's rule), 'bridged' = "
             f"the feature-bank bridge)")
    return format_table(header, rows, title=title)


def _higher(a: Mapping[str, Any], a_key: str, a_n: str, b: Mapping[str, Any], b_key: str, b_n: str) -> bool | None:
    diff, margin = compare_proportions(a[a_key], a[a_n], b[b_key], b[b_n])
    return None if abs(diff) <= margin else diff > 0


def table7_verdicts(record: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """One verdict per claim of Table 7, each from comparisons beyond two standard errors (`protocol.verdict`)
    (12_other_worlds.ipynb). Returns {claim: {'verdict', 'checks': {what: True/False/None}}}.

    1. M turns text into images in every world: text → image accuracy above the chance its world's caption-blind
       G samples reach, per world and method.
    2. Text edits work in every world: edit accuracy at β = 1 above the β = 0 floor, per world and method.
    3. The images are as clean in the other world as in faces (the paper reports one FID per dataset): text → image
       FID at most twice its world's G's own (this project's quality goal), per world and method — a bar, not a
       comparison, so it is True or False.
    """
    gen: dict[str, bool | None] = {}
    edits: dict[str, bool | None] = {}
    clean: dict[str, bool | None] = {}
    for world in record["worlds"]:
        chance = _row(record, world, "g_samples")
        for method in ("paper", "bridged"):
            r = _row(record, world, method)
            if r is None:
                continue
            name = f"{LABELS[world]}, {method}"
            if chance is not None:
                gen[f"{name}: accuracy {r['text_acc']:.3f} vs chance {chance['text_acc']:.3f}"] = _higher(
                    r, "text_acc", "text_pairs", chance, "text_acc", "text_pairs")
            edits[f"{name}: edit accuracy {r['edit_acc']:.3f} vs β = 0 {r['edit_acc_beta0']:.3f}"] = _higher(
                r, "edit_acc", "edit_n", r, "edit_acc_beta0", "edit_n")
            if r.get("fid_ratio") is not None:
                clean[f"{name}: FID {r['fid']:.1f} = {r['fid_ratio']:.2f} × G's own"] = bool(r["fid_ratio"] <= 2.0)
    claims = {"M turns text into images in every world (accuracy above chance)": gen,
              "text edits work in every world (edit accuracy above β = 0)": edits,
              "images as clean as the world's G allows (FID ≤ 2 × G's own)": clean}
    return {claim: {"verdict": verdict(list(c.values())), "checks": c} for claim, c in claims.items()}


# -------------------------------------------------------------------------------------------------
# the figure


def _rule(method: str) -> str:
    return "the paper's rule (method='paper')" if method == "paper" else f"the {method} method (method={method!r})"


@torch.no_grad()
def plot_worlds(models: Mapping[str, Mapping[str, CLIP2GAN]], size_name: str, path: str | Path | None = None,
                n: int = 6, seed: int = 0):
    """Per world (12_other_worlds.ipynb): G's own samples; text → image on the first `n` held-out captions under
    both methods; the first `n` held-out edits (input renders, then the edit in w+ at β = 1 under both methods).
    Titles carry the world, the method and the run size. Returns the figure."""
    import matplotlib.pyplot as plt  # here, after the caller chose a backend (the command line: Agg)

    from clip2gan.viz import make_grid

    strips: list[tuple[str, torch.Tensor]] = []
    for world, by_method in models.items():
        first = by_method["paper"]
        data = eval_data(WorldsSize("figure", n_captions=n, n_edit=n), first.resolution, seed, world=world)
        strips.append((f"{LABELS[world]}: G's own samples (no text)", g_sampler(first.generator, world)([""] * n, 1, seed)))
        for method, model in by_method.items():
            strips.append((f"{LABELS[world]}, text → image (held-out captions), {_rule(method)}",
                           model.generate(data.captions[:n], n_per_prompt=1, seed=seed).cpu()))
        strips.append((f"{LABELS[world]}: edit inputs (renders); texts: " + " | ".join(
            t.removeprefix("a pet ").removeprefix("a person ") for t in data.edit_texts[:n]), data.edit_images[:n]))
        for method, model in by_method.items():
            _, after = edit_pairs(model, data.edit_images[:n], data.edit_texts[:n], space="wplus",
                              mode=METHODS[method][0])
            strips.append((f"{LABELS[world]}, edits in w+ (β = 1), {_rule(method)}", after))
    fig, axes = plt.subplots(len(strips), 1, figsize=(max(1.3 * n + 0.5, 5.5), 1.45 * len(strips) + 0.6), squeeze=False)
    for ax, (label, imgs) in zip(axes[:, 0], strips):
        ax.imshow(make_grid(imgs.float().clamp(-1, 1), nrow=n, upscale=2), interpolation="nearest")
        ax.set_title(label, fontsize=6.5, loc="left")
        ax.axis("off")
    fig.suptitle(f"Two toy worlds under M: samples, text → image and edits under both methods ({size_name} size)",
                 fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
    return fig


# -------------------------------------------------------------------------------------------------
# shipping a world's M


def ship_world(profile: str, run: str | Path, size: str | WorldsSize = "full", out: str | Path = "results",
               work: str | Path | None = None, device: str = "auto", seed: int = 0, tolerance: float = 0.01,
               log: Callable[[str], Any] = print) -> tuple[dict[str, Any], dict[str, Any]]:
    """Ship the M of a finished run as `data/<profile>-mapping.safetensors` in float16, score every world with it
    (`run_worlds`, which writes `<out>/worlds.*`) and write its manifest entry: the training command read back from
    the run, the world's rows, and a float16 check — the run's float32 M scored on the same data, every accuracy
    within `tolerance` or nothing is shipped (12_other_worlds.ipynb). Returns (the record, the manifest entry)."""
    from clip2gan.checkpoint import load_config
    from clip2gan.evaluation.generators import half_mapping

    size = SIZES[size] if isinstance(size, str) else size
    src = Path(run) / "mapping.safetensors"
    if not src.is_file():
        raise FileNotFoundError(f"{src} does not exist: train it first (python -m clip2gan.train --profile {profile} "
                                f"--out {run})")
    config = load_config(src)
    if config.get("train", {}).get("profile") != profile:
        raise ValueError(f"{src} was trained for profile {config.get('train', {}).get('profile')!r}, not {profile!r}")
    dst = hub.DATA_DIR / f"{profile}-mapping.safetensors"
    work = Path(work) if work is not None else Path("runs") / f"worlds-{size.name}"
    full = run_worlds(size, out=out, work=work, worlds=(profile,), device=device, seed=seed, mappings={profile: src},
                      log=log, write=False)
    t = config["train"]
    command = (f"python -m clip2gan.train --profile {profile} --epochs {t['epochs']} --epoch-size {t['epoch_size']} "
               f"--batch-size {t['batch_size']} --threads 1 --sample-every 0 --log-every {t['log_every']} --seed {t['seed']}"
               + (" --synthetic-data" if t.get("synthetic_data") else "")
               + (f" --latent-loss {t['latent_loss']}" if t.get("latent_loss") else "")
               + f" --out {repo_relative(Path(run))} && python -m clip2gan.evaluation.worlds --size {size.name} --out {out} "
               f"--ship {profile} --run {repo_relative(Path(run))}")
    half_mapping(src, dst)
    # its sha256 first (a file shipped before has another): the scoring below loads it through the hub's check
    hub.write_manifest_entry(dst, command, note="being scored (python -m clip2gan.evaluation.worlds --ship)")
    record = run_worlds(size, out=out, work=work, device=device, seed=seed, log=log)
    check: dict[str, list[float]] = {}
    for method in METHODS:
        a, b = _row(full, profile, method), _row(record, profile, method)
        for key in ("text_acc", "rec_match", "edit_acc", "edit_pres"):
            check[f"{method}/{key}"] = [a[key], b[key]]
    worst = max(abs(a - b) for a, b in check.values())
    if worst > tolerance:
        dst.unlink()
        dst.with_suffix(".json").unlink(missing_ok=True)
        raise ValueError(f"float16 moves an accuracy by {worst:.4f} > {tolerance}: {check}; nothing shipped (its "
                         "manifest entry now names a removed file: restore the previous file or ship another)")
    metrics = {r["method"]: {k: r.get(k) for k in CSV_COLUMNS[2:19]} for r in record["rows"] if r["world"] == profile}
    entry = hub.write_manifest_entry(
        dst, command, steps=config.get("steps"), metrics=metrics, float16_check=check,
        evaluation=f"python -m clip2gan.evaluation.worlds --size {size.name} ({size.n_captions} held-out captions, "
                   f"{size.n_edit} edits in w+ at β = 1; results/worlds.json)")
    return record, entry


# -------------------------------------------------------------------------------------------------
# command line


@dataclass
class WorldsCommand:
    """The flags of `python -m clip2gan.evaluation.worlds`, one per field (`clip2gan.cli`) (12_other_worlds.ipynb)."""

    size: str = option("ci", "the evaluation sizes", choices=tuple(SIZES))
    out: str = option("results", "folder for worlds.csv, worlds.json and worlds.png")
    work: str | None = option(None, "the score cache's folder, runs/worlds-<size> when unset")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    seed: int = option(0, "evaluation seed")
    threads: int | None = option(None, "torch CPU threads, torch's default when unset")
    ship: str | None = option(None, "a world's profile: first ship the M of --run as data/<profile>-mapping.safetensors "
                                    "in float16 (if its accuracies hold) with its manifest entry", choices=WORLDS)
    run: str | None = option(None, "with --ship: the finished training run whose M ships")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m clip2gan.evaluation.worlds` (12_other_worlds.ipynb); returns the exit status."""
    args = batch_command_args(WorldsCommand, "python -m clip2gan.evaluation.worlds", __doc__.split("\n")[0], argv)
    try:
        if args.ship:
            if not args.run:
                raise ValueError("--ship needs --run RUN (the training run whose M ships)")
            record, entry = ship_world(args.ship, args.run, args.size, out=args.out, work=args.work,
                                       device=args.device, seed=args.seed)
            print(json.dumps({"shipped": f"{args.ship}-mapping.safetensors", "sha256": entry["sha256"],
                              "size": entry["size"]}))
        else:
            record = run_worlds(args.size, out=args.out, work=args.work, device=args.device, seed=args.seed)
    except (ValueError, FileNotFoundError, hub.WeightsNotFound) as err:
        print(f"clip2gan.evaluation.worlds: error: {err}", file=sys.stderr)
        return 1
    print(table7_text(record) + "\n")
    for claim, v in table7_verdicts(record).items():
        print(f"{claim}: {v['verdict']}")
        for what, ok in v["checks"].items():
            print(f"    {what}: {'holds' if ok else 'fails' if ok is False else 'within 2 SE'}")
    print(f"wrote {Path(args.out) / 'worlds.csv'}, .json and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
