"""Training the DCGAN on the toy faces: a resumable trainer on CPU (11_other_generators.ipynb).

The recipe is the DCGAN paper's (Radford, Metz & Chintala, ICLR 2016): Adam with lr 2e-4 and betas
(0.5, 0.999) for both networks, separate real and fake batches through the discriminator (its batch
norm sees one kind at a time), one D step then one G step per iteration, with the non-saturating
generator loss softplus(−D(G(z))) (D: softplus(D(G(z))) + softplus(−D(x)), the logistic loss). Real
images are toy faces rendered on the fly (`clip2gan.toy.faces.render_labeled_batch`; their labels are
not used: a DCGAN is unconditional). Added to the paper's recipe: an exponential moving average of G's
weights (StyleGAN's, half-life `ema_kimg` thousand images, `clip2gan.toy.stylegan2_recipe.ema_beta`;
`--ema-kimg 0` turns it off), whose batch-norm statistics are recomputed before it is sampled
(`recalibrate_batchnorm`).

**Run folder** (`--out`): `checkpoint.safetensors` (+ .json) with G, D, G_ema, both optimisers' state,
the step, every random state (torch, numpy) and a checksum of all tensors, written every
`--checkpoint-minutes` to a temporary file and renamed, so a kill at any moment leaves the previous one
intact and `--resume` continues bit-exactly from it; `log.jsonl` (training stats every `--log-every`
steps, evaluations, events); `grids/fakes-<step>.png` (64 fixed z); `snapshots/G-<step>.safetensors`
(float16, batch-norm statistics recomputed) every `--snapshot-every` steps, each judged by the toy
world's bar (`clip2gan.toy.stylegan2_eval.evaluate`: the share of samples the attribute classifier
reads confidently and the worst gap between a value's frequency among samples and among renders) if
`--eval`. SIGTERM or Ctrl-C: checkpoint, then stop. One process per run folder.

Commands::

    python -m clip2gan.dcgan.train --out runs/dcgan --steps 12000            # train / --resume to continue
    python -m clip2gan.dcgan.train eval --run runs/dcgan                      # the bar on every snapshot
    python -m clip2gan.dcgan.train export --run runs/dcgan                    # -> runs/dcgan/generator.safetensors
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from clip2gan.checkpoint import (
    CorruptCheckpoint,
    load_config,
    load_optimizer_tensors,
    load_safetensors,
    optimizer_tensors,
    save_safetensors,
)
from clip2gan.cli import add_config_args, config_from_args, given_fields, option
from clip2gan.dcgan import io as dcgan_io
from clip2gan.dcgan.networks import DCGANDiscriminator, DCGANGenerator, recalibrate_batchnorm
from clip2gan.runtime import device_label
from clip2gan.toy.faces import render_labeled_batch
from clip2gan.toy.stylegan2_eval import evaluate, read_log
from clip2gan.toy.stylegan2_recipe import ema_beta, update_ema
from clip2gan.viz import save_grid

__all__ = ["DCGANTrainConfig", "DCGANRunOptions", "DCGANExportOptions", "DCGANEvalOptions", "DCGANTrainer",
           "load_checkpoint", "generator_from_checkpoint", "sampling_generator", "bar", "bar_line",
           "evaluate_snapshots", "choose_snapshot", "export", "main", "CHECKPOINT", "FORMAT"]

FORMAT = "clip2gan-dcgan-train/1"
CHECKPOINT = "checkpoint.safetensors"
DEFAULT_RUN = Path("runs/dcgan")
#: what the bar keeps of `clip2gan.toy.stylegan2_eval.evaluate` (its conditioning figures compare with
#: labels an unconditional G never saw, so they are dropped)
BAR_KEYS = ("n", "seed", "truncation_psi", "confident", "confident_data", "freq_max_dev", "freq_worst_attribute",
            "freq_dev", "freq_samples", "freq_data", "fid", "n_fid")


# ----------------------------------------------------------------------------------------------
# Settings


@dataclass
class DCGANTrainConfig:
    """A DCGAN run's settings; stored in its checkpoint (11_other_generators.ipynb). The architecture fields
    (`ARCH_FIELDS`) cannot change when a run resumes; the others can (the change is logged)."""

    z_dim: int = option(100, "length of z (the DCGAN paper's 100); also M's w_dim")
    resolution: int = option(32, "image size in pixels (a power of two >= 8)")
    channel_base: int = option(1024, "channels of a map of resolution r: min(channel_base // r, channel_max)")
    channel_max: int = option(256, "the most channels of any layer")
    batch: int = option(64, "real and fake images per step (each)")
    lr_G: float = option(2e-4, "generator learning rate (the DCGAN paper's)", flag="--lr-G")
    lr_D: float = option(2e-4, "discriminator learning rate (the DCGAN paper's)", flag="--lr-D")
    beta1: float = option(0.5, "Adam beta1 (the DCGAN paper's 0.5)")
    beta2: float = option(0.999, "Adam beta2")
    ema_kimg: float = option(10.0, "half-life of G's weight average in thousands of images (0: no average)")
    ema_rampup: float = option(0.05, "the average's half-life is at most this fraction of the images seen so far")
    seed: int = option(0, "seed of the weights, z and the rendered faces")

    ARCH_FIELDS = ("z_dim", "resolution", "channel_base", "channel_max")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DCGANTrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class DCGANRunOptions:
    """How `python -m clip2gan.dcgan.train [train]` runs (the run's own settings: `DCGANTrainConfig`)
    (11_other_generators.ipynb)."""

    out: str = option(str(DEFAULT_RUN), "run folder (checkpoint, log.jsonl, grids, snapshots)")
    resume: bool = option(False, "continue from the run's checkpoint (a run without one starts afresh)")
    steps: int = option(12000, "total length of the run in steps, counted from its start")
    max_seconds: float | None = option(None, "stop this call after so many seconds (checkpointed; --resume continues)")
    checkpoint_minutes: float = option(5.0, "minutes between checkpoints (also one at the end)")
    checkpoint_every: int | None = option(None, "also checkpoint every so many steps")
    grid_every: int = option(500, "steps between sample grids (0: only at the start and end)")
    snapshot_every: int = option(1000, "steps between float16 snapshots of the sampling generator (0: none)")
    eval_snapshots: bool = option(True, "judge each snapshot by the bar while training (needs data/'s classifier)",
                                  flag="--eval")
    eval_n: int = option(1000, "samples the bar judges per snapshot")
    log_every: int = option(20, "steps between training records in log.jsonl")
    threads: int = option(1, "torch CPU threads (1: the CPUs are shared)")
    device: str = option("cpu", "cpu, cuda or cuda:N")
    progress: bool = option(True, "show a progress bar")


@dataclass
class DCGANExportOptions:
    """The settings of `python -m clip2gan.dcgan.train export` (11_other_generators.ipynb)."""

    run: str = option(str(DEFAULT_RUN), "the run folder to export from")
    out: str | None = option(None, "the generator file to write (default <run>/generator.safetensors; a .json beside it)")
    snapshot: int | None = option(None, "export the snapshot of this step instead of the checkpoint's sampling generator")
    eval_n: int = option(1000, "samples for the float16 check (0: write float16 unchecked)")
    tolerance: float = option(1.0, "largest change of either bar figure (points) for which float16 is written")


@dataclass
class DCGANEvalOptions:
    """The settings of `python -m clip2gan.dcgan.train eval` (11_other_generators.ipynb)."""

    run: str = option(str(DEFAULT_RUN), "the run whose snapshots not yet judged are judged (appended to its log)")
    weights: str | None = option(None, "judge this generator file instead (an export or a snapshot)")
    n: int = option(1000, "samples to judge")
    seed: int = option(0, "seed of the samples' z")
    threads: int = option(1, "torch CPU threads")


# ----------------------------------------------------------------------------------------------
# Checkpoints


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """`(tensors, config)` of a DCGAN training checkpoint; `CorruptCheckpoint` naming the file if it is
    truncated, not safetensors, fails its checksum or is another kind of checkpoint (11_other_generators.ipynb)."""
    path = Path(path)
    tensors, config = load_safetensors(path)  # verifies the checksum
    if config.get("format") != FORMAT or "tensor_sha256" not in config:
        raise CorruptCheckpoint(f"{path} is not a complete {FORMAT} training checkpoint (format "
                                f"{config.get('format')!r}); delete it to start again, or pass another --out")
    return tensors, config


def _rng_from_json(state: dict[str, Any]) -> np.random.Generator:
    bitgen = getattr(np.random, state["bit_generator"])()
    bitgen.state = state
    return np.random.Generator(bitgen)


def generator_from_checkpoint(tensors: dict[str, torch.Tensor], config: dict[str, Any],
                              name: str = "G_ema") -> DCGANGenerator:
    """The generator `name` ('G' or 'G_ema', which is G in a run without an average) of a training checkpoint,
    as stored (batch-norm statistics not recomputed; see `sampling_generator`), in eval mode (11_other_generators.ipynb)."""
    averaged = config["train_config"].get("ema_kimg", 0) > 0 and any(k.startswith("G_ema.") for k in tensors)
    if name == "G_ema" and not averaged:
        name = "G"  # a run without a weight average (or with it switched off)
    G = DCGANGenerator(**config["G_kwargs"])
    G.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}, strict=True)
    return G.eval()


def sampling_generator(G: DCGANGenerator, n: int = 4096, seed: int = 0) -> DCGANGenerator:
    """A copy of G to sample from: batch-norm statistics recomputed over `n` samples, eval mode,
    `requires_grad=False` (11_other_generators.ipynb). The global random state is left as it was."""
    G = copy.deepcopy(G)
    recalibrate_batchnorm(G, n=n, seed=seed)
    return G.eval().requires_grad_(False)


# ----------------------------------------------------------------------------------------------
# The bar


def bar(G: torch.nn.Module, n: int = 1000, seed: int = 0, classifier: Any = None, n_fid: int = 2000) -> dict[str, Any]:
    """The toy world's bar for an unconditional generator (11_other_generators.ipynb): `evaluate` of
    `clip2gan.toy.stylegan2_eval` (confident share, worst value-frequency gap against renders, Fréchet
    distance in the classifier's features over `n_fid` samples) without its conditioning figures."""
    res = evaluate(G, n=n, seed=seed, classifier=classifier, n_fid=n_fid)
    out = {k: res[k] for k in BAR_KEYS}
    out["bar_met"] = bool(out["confident"] >= 0.85 and out["freq_max_dev"] <= 5.0)
    return out


def bar_line(r: dict[str, Any]) -> str:
    """One line reporting a bar record (11_other_generators.ipynb)."""
    return (f"{r.get('snapshot', '')} step {r.get('step', '?')}: confident {100 * r['confident']:.1f}% "
            f"(renders {100 * r['confident_data']:.1f}%, StyleGAN2's bar ≥ 85), worst value-frequency gap "
            f"{r['freq_max_dev']:.1f} pts on {r['freq_worst_attribute']} (bar ≤ 5), FID(classifier) {r['fid']:.2f}")


def _append_log(run_dir: Path, record: dict[str, Any]) -> None:
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
    with open(run_dir / "log.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def evaluate_snapshots(run_dir: str | os.PathLike = DEFAULT_RUN, n: int = 1000, seed: int = 0,
                       classifier: Any = None) -> list[dict[str, Any]]:
    """Judge every snapshot of a run not yet judged at this `n`, appending the records to its log.jsonl
    (11_other_generators.ipynb). Returns the new records."""
    run_dir = Path(run_dir)
    done = {r.get("snapshot") for r in read_log(run_dir) if r.get("kind") == "eval" and r.get("n") == n}
    out = []
    for snap in sorted((run_dir / "snapshots").glob("G-*.safetensors")):
        if snap.name in done:
            continue
        meta = load_config(snap)
        with torch.random.fork_rng(devices=[]):
            rec = {"kind": "eval", "snapshot": snap.name, "step": meta.get("step"), "kimg": meta.get("kimg"),
                   "cpu_seconds": meta.get("cpu_seconds"), **bar(dcgan_io.load(snap), n=n, seed=seed, classifier=classifier)}
        _append_log(run_dir, rec)
        print(bar_line(rec), flush=True)
        out.append(rec)
    return out


def choose_snapshot(records: Sequence[dict[str, Any]], n: int = 1000) -> dict[str, Any]:
    """The snapshot to export, by the bar's two figures (11_other_generators.ipynb).

    Among the eval records of `n` samples: the highest confident share, where every share within two binomial
    standard errors of it (√(p (1 − p) / n) each, combined) counts as tied with it; among the tied, the smallest
    worst value-frequency gap; then the later step. Returns that record with `tied` (the steps that tied).
    """
    evals = {r["snapshot"]: r for r in records if r.get("kind") == "eval" and r.get("n") == n and r.get("snapshot")}
    if not evals:
        raise ValueError(f"no snapshot judged at n={n}: run `python -m clip2gan.dcgan.train eval --run RUN` first")
    best = max(evals.values(), key=lambda r: r["confident"])
    p = best["confident"]

    def tied(r: dict[str, Any]) -> bool:
        q = r["confident"]
        return p - q <= 2 * ((p * (1 - p) + q * (1 - q)) / n) ** 0.5

    pool = [r for r in evals.values() if tied(r)]
    chosen = min(pool, key=lambda r: (r["freq_max_dev"], -(r.get("step") or 0)))
    return {**chosen, "tied": sorted(r.get("step") for r in pool)}


# ----------------------------------------------------------------------------------------------
# The trainer


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


class DCGANTrainer:
    """One DCGAN run in `out_dir` (see the module docstring): `DCGANTrainer(out, cfg).run(steps)`
    (11_other_generators.ipynb).

    resume: continue from `<out>/checkpoint.safetensors` if there is one (`overrides`: settings that
    change on resume; the architecture cannot). Without resume an existing checkpoint is an error.
    """

    GRID = 64

    def __init__(self, out_dir: str | os.PathLike, cfg: DCGANTrainConfig | None = None, resume: bool = False,
                 overrides: dict[str, Any] | None = None, device: str | torch.device = "cpu"):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.device = torch.device(device)
        self.ckpt_path = self.out_dir / CHECKPOINT
        for stale in [*self.out_dir.glob(".*.tmp"), *self.out_dir.glob("snapshots/.*.tmp")]:
            stale.unlink(missing_ok=True)  # left by a kill during a write; never a valid file
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        if self.ckpt_path.exists() and not resume:
            raise FileExistsError(f"{self.out_dir} already holds a checkpoint; pass --resume to continue it, "
                                  "or choose a new --out folder")
        if resume and self.ckpt_path.exists():
            tensors, config = load_checkpoint(self.ckpt_path)
            saved = DCGANTrainConfig.from_dict(config["train_config"])
            for k, v in overrides.items():
                if k in DCGANTrainConfig.ARCH_FIELDS and getattr(saved, k) != v:
                    raise ValueError(f"--{k.replace('_', '-')}={v} differs from the run's {getattr(saved, k)}: the "
                                     "architecture of an existing run cannot change; use a new --out folder")
            changed = {k: [getattr(saved, k), v] for k, v in overrides.items() if getattr(saved, k) != v}
            self.cfg = dataclasses.replace(saved, **overrides)
            self._init_state()
            self._restore(tensors, config)
            self.log({"kind": "event", "event": "resume", "step": self.step, "kimg": self.nimg / 1000,
                      "device": device_label(self.device), "changed": changed})
        else:
            self.cfg = dataclasses.replace(cfg or DCGANTrainConfig(), **overrides)
            self._init_state()
            self.log({"kind": "event", "event": "start", "config": self.cfg.to_dict(), "device": device_label(self.device),
                      "G_params": sum(p.numel() for p in self.G.parameters()),
                      "D_params": sum(p.numel() for p in self.D.parameters())})

    # -- state ------------------------------------------------------------------------------

    def _init_state(self) -> None:
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        arch = dict(img_resolution=cfg.resolution, img_channels=3, channel_base=cfg.channel_base,
                    channel_max=cfg.channel_max)
        self.G = DCGANGenerator(z_dim=cfg.z_dim, **arch).to(self.device).train()
        self.D = DCGANDiscriminator(**arch).to(self.device).train()
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False) if cfg.ema_kimg > 0 else None
        betas = (float(cfg.beta1), float(cfg.beta2))
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_G, betas=betas)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_D, betas=betas)
        self.step = self.nimg = 0
        self.cpu_seconds = self.wall_seconds = 0.0
        self.data_rng = np.random.default_rng([cfg.seed, 1])
        self.grid_z = torch.randn(self.GRID, cfg.z_dim, generator=torch.Generator().manual_seed(cfg.seed + 7))
        torch.manual_seed(cfg.seed + 2)  # the stream of z

    def _nets(self) -> list[tuple[str, torch.nn.Module]]:
        return [("G", self.G), ("D", self.D)] + ([("G_ema", self.G_ema)] if self.G_ema is not None else [])

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Everything a bit-exact resume needs, as tensors (the rest goes to the checkpoint's config)."""
        t: dict[str, torch.Tensor] = {}
        for name, net in self._nets():
            t.update({f"{name}.{k}": v for k, v in net.state_dict().items()})
        t.update(optimizer_tensors(self.opt_G, "opt_G"))
        t.update(optimizer_tensors(self.opt_D, "opt_D"))
        t["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            t["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        return t

    def _restore(self, tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
        if self.G_ema is None and any(k.startswith("G_ema.") for k in tensors):
            self.G_ema = copy.deepcopy(self.G).requires_grad_(False)  # --ema-kimg 0 on resume: keep the average frozen
        for name, net in self._nets():
            sd = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
            if name == "G_ema" and not sd:  # the average switched on at resume: it starts from G
                sd = {k[2:]: v for k, v in tensors.items() if k.startswith("G.")}
            net.load_state_dict(sd, strict=True)
        load_optimizer_tensors(self.opt_G, tensors, "opt_G")
        load_optimizer_tensors(self.opt_D, tensors, "opt_D")
        torch.set_rng_state(tensors["rng.torch"].clone())
        if self.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"].clone(), self.device)
        self.data_rng = _rng_from_json(config["rng_numpy"])
        self.step, self.nimg = int(config["step"]), int(config["nimg"])
        self.cpu_seconds = float(config.get("cpu_seconds", 0.0))
        self.wall_seconds = float(config.get("wall_seconds", 0.0))

    def save_checkpoint(self) -> Path:
        """Write `<out>/checkpoint.safetensors` (atomically, with a checksum of every tensor)."""
        config = {"format": FORMAT, "train_config": self.cfg.to_dict(), "G_kwargs": self.G.init_kwargs,
                  "D_kwargs": self.D.init_kwargs, "step": self.step, "nimg": self.nimg,
                  "rng_numpy": self.data_rng.bit_generator.state, "cpu_seconds": self._cpu_now(),
                  "wall_seconds": self._wall_now(), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        return save_safetensors(self.state_tensors(), self.ckpt_path, config, checksum=True)

    def sampling_generator(self) -> DCGANGenerator:
        """G_ema (G when the average is off), batch-norm statistics recomputed: what snapshots and exports hold."""
        averaged = self.G_ema is not None and self.cfg.ema_kimg > 0
        return sampling_generator(self.G_ema if averaged else self.G, seed=self.cfg.seed)

    def save_snapshot(self) -> Path:
        """`snapshots/G-<step>.safetensors`: the sampling generator in float16."""
        path = self.out_dir / "snapshots" / f"G-{self.step:08d}.safetensors"
        extra = {"step": self.step, "kimg": self.nimg / 1000, "cpu_seconds": self._cpu_now(),
                 "train_config": self.cfg.to_dict()}
        return dcgan_io.save(self.sampling_generator(), path, half=True, extra=extra, write_json=False)

    # -- bookkeeping ---------------------------------------------------------------------------

    def _cpu_now(self) -> float:
        return self.cpu_seconds + (time.process_time() - self._cpu0) if hasattr(self, "_cpu0") else self.cpu_seconds

    def _wall_now(self) -> float:
        return self.wall_seconds + (time.time() - self._wall0) if hasattr(self, "_wall0") else self.wall_seconds

    def log(self, record: dict[str, Any]) -> None:
        _append_log(self.out_dir, record)

    # -- one step -------------------------------------------------------------------------------

    def train_step(self) -> dict[str, float]:
        """One D step on a real and a fake batch, then one G step (non-saturating), then the average."""
        cfg = self.cfg
        real = render_labeled_batch(cfg.batch, self.data_rng, cfg.resolution)[0].to(self.device)  # [B, 3, R, R]
        z = torch.randn(cfg.batch, cfg.z_dim).to(self.device)  # [B, z_dim]
        fake = self.G(z)  # [B, 3, R, R]; batch norm on this batch's statistics

        # D: logistic loss, reals and fakes in separate batches (the DCGAN paper's practice).
        self.D.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        logits_fake = self.D(fake.detach())
        logits_real = self.D(real)
        loss_D = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
        loss_D.backward()
        self.opt_D.step()

        # G: non-saturating loss against the updated D.
        self.D.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        logits_G = self.D(fake)
        loss_G = F.softplus(-logits_G).mean()
        loss_G.backward()
        self.opt_G.step()

        self.nimg += cfg.batch
        self.step += 1
        stats = {"loss_G": float(loss_G.detach()), "loss_D": float(loss_D.detach()),
                 "score_real": float(logits_real.detach().mean()), "score_fake": float(logits_fake.detach().mean())}
        if self.G_ema is not None and cfg.ema_kimg > 0:
            beta = ema_beta(self.nimg, cfg.batch, cfg.ema_kimg, cfg.ema_rampup)
            update_ema(self.G_ema, self.G, beta)
            stats["ema_beta"] = beta
        return stats

    # -- the loop ------------------------------------------------------------------------------

    @torch.no_grad()
    def save_fakes(self) -> Path:
        """`grids/fakes-<step>.png`: the sampling generator on 64 fixed z."""
        G = self.sampling_generator()
        return save_grid(G(self.grid_z.to(self.device)).cpu(), self.out_dir / "grids" / f"fakes-{self.step:08d}.png", nrow=8)

    def run(self, steps: int, max_seconds: float | None = None, checkpoint_minutes: float = 5.0,
            checkpoint_every: int | None = None, grid_every: int = 500, snapshot_every: int = 1000,
            eval_snapshots: bool = True, eval_n: int = 1000, log_every: int = 20, progress: bool = True,
            keep_history: bool = False) -> list[dict[str, Any]]:
        """Train until `steps` (total, from the run's start) or for `max_seconds` (this call); checkpoint
        every `checkpoint_minutes` (and `checkpoint_every` steps) and at the end. Returns the per-step
        stats of this call when `keep_history`."""
        history: list[dict[str, Any]] = []
        self._cpu0, self._wall0 = time.process_time(), time.time()
        t_end = time.time() + max_seconds if max_seconds is not None else None
        last_ckpt = time.time()
        stop = {"flag": False}

        def _on_signal(signum, frame):  # finish the step, checkpoint, exit
            stop["flag"] = True

        old_handler = signal.signal(signal.SIGTERM, _on_signal) if _in_main_thread() else None
        bar_ = tqdm(total=steps, initial=self.step, unit="step", dynamic_ncols=True, mininterval=5.0,
                    desc="dcgan") if progress else None
        if self.step == 0 and grid_every:
            self.save_fakes()
        acc: dict[str, list[float]] = {}
        t_last, step_last = time.time(), self.step
        try:
            while self.step < steps and not stop["flag"] and (t_end is None or time.time() < t_end):
                stats = self.train_step()
                for k, v in stats.items():
                    acc.setdefault(k, []).append(v)
                if keep_history:
                    history.append({"step": self.step, **stats})
                if bar_ is not None:
                    bar_.update(1)
                    if self.step % 10 == 0:
                        bar_.set_postfix(G=f"{stats['loss_G']:.3f}", D=f"{stats['loss_D']:.3f}", refresh=False)
                if log_every and self.step % log_every == 0:
                    now = time.time()
                    self.log({"kind": "train", "step": self.step, "kimg": self.nimg / 1000,
                              **{k: float(np.mean(v)) for k, v in acc.items()},
                              "sec_per_step": (now - t_last) / max(self.step - step_last, 1),
                              "cpu_seconds": self._cpu_now(), "wall_seconds": self._wall_now()})
                    acc, t_last, step_last = {}, now, self.step
                if grid_every and self.step % grid_every == 0:
                    self.save_fakes()
                if snapshot_every and self.step % snapshot_every == 0:
                    self.save_snapshot()
                    if eval_snapshots:
                        self._eval_snapshots(eval_n)
                if (checkpoint_every and self.step % checkpoint_every == 0) or \
                        time.time() - last_ckpt >= checkpoint_minutes * 60:
                    self.save_checkpoint()
                    last_ckpt = time.time()
        except KeyboardInterrupt:
            stop["flag"] = True
        finally:
            if bar_ is not None:
                bar_.close()
            if old_handler is not None:
                signal.signal(signal.SIGTERM, old_handler)
        self.save_checkpoint()
        if grid_every:
            self.save_fakes()
        self.log({"kind": "event", "event": "stop" if stop["flag"] or self.step < steps else "done", "step": self.step,
                  "cpu_seconds": self._cpu_now()})
        return history

    def _eval_snapshots(self, n: int) -> None:
        try:
            evaluate_snapshots(self.out_dir, n=n, seed=0)
        except Exception as err:  # no classifier in data/, or a plotting/IO problem: judging never stops training
            self.log({"kind": "event", "event": "eval_failed", "message": str(err)[:300]})


# ----------------------------------------------------------------------------------------------
# Export


def export(run_dir: str | os.PathLike = DEFAULT_RUN, out: str | os.PathLike | None = None, snapshot: int | None = None,
           eval_n: int = 1000, tolerance: float = 1.0, classifier: Any = None) -> tuple[Path, dict[str, Any]]:
    """Write a run's sampling generator to `out` (safetensors + JSON; `clip2gan.stylegan2.load_generator`
    reads it) in float16 if the bar's figures hold (11_other_generators.ipynb).

    The float32 generator and its float16 rounding are judged on the same `eval_n` samples; if neither
    the confident share nor the worst frequency gap moves by more than `tolerance` points, float16 is
    written, else float32. Both readings go into the file's config. Returns `(path, config extras)`.
    """
    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "generator.safetensors"
    if snapshot is not None:
        snap = run_dir / "snapshots" / f"G-{snapshot:08d}.safetensors"
        G, meta = dcgan_io.load(snap), load_config(snap)  # already float16-rounded and recalibrated
        info = {"step": meta.get("step"), "kimg": meta.get("kimg"), "train_config": meta.get("train_config"),
                "from_snapshot": snap.name}
    else:
        tensors, config = load_checkpoint(run_dir / CHECKPOINT)
        G = sampling_generator(generator_from_checkpoint(tensors, config), seed=config["train_config"]["seed"])
        info = {"step": config["step"], "kimg": config["nimg"] / 1000, "train_config": config["train_config"],
                "from_checkpoint": CHECKPOINT}
    half = True
    if eval_n:
        G16 = copy.deepcopy(G)
        with torch.no_grad():
            for t in [*G16.parameters(), *G16.buffers()]:
                if t.is_floating_point():
                    t.copy_(t.half().float())
        r32, r16 = bar(G, n=eval_n, classifier=classifier), bar(G16, n=eval_n, classifier=classifier)
        delta = max(100 * abs(r32["confident"] - r16["confident"]), abs(r32["freq_max_dev"] - r16["freq_max_dev"]))
        half = delta <= tolerance
        keep = ("confident", "freq_max_dev", "freq_worst_attribute", "fid", "n")
        info.update(bar_float32={k: r32[k] for k in keep}, bar_float16={k: r16[k] for k in keep},
                    float16_change_points=delta)
    return dcgan_io.save(G, out, half=half, extra=info), info


# ----------------------------------------------------------------------------------------------
# Command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clip2gan.dcgan.train",
                                     description="Train, judge and export a DCGAN on the toy faces.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    train_p = sub.add_parser("train", help="train or continue a run (the default subcommand)")
    add_config_args(train_p, DCGANRunOptions)
    # only the settings given on the command line change a resumed run's stored ones
    add_config_args(train_p, DCGANTrainConfig, only_given=True, title="the run's settings (fixed on resume: architecture)")
    add_config_args(sub.add_parser("export", help="write the run's generator (float16 if the bar holds)"),
                    DCGANExportOptions)
    add_config_args(sub.add_parser("eval", help="the bar on every snapshot not yet judged, or on one file"),
                    DCGANEvalOptions)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m clip2gan.dcgan.train [train] --out DIR [--resume] | export | eval` (11_other_generators.ipynb).

    Without a subcommand (the first argument a flag) the command trains."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["train"] + argv
    args = _parser().parse_args(argv)
    if args.cmd == "train":
        opts = config_from_args(DCGANRunOptions, args)
        torch.set_num_threads(opts.threads)
        trainer = DCGANTrainer(opts.out, resume=opts.resume, overrides=given_fields(DCGANTrainConfig, args),
                               device=opts.device)
        print(f"{'resumed at' if trainer.step else 'starting'} step {trainer.step} in {opts.out}", flush=True)
        trainer.run(opts.steps, max_seconds=opts.max_seconds, checkpoint_minutes=opts.checkpoint_minutes,
                    checkpoint_every=opts.checkpoint_every, grid_every=opts.grid_every,
                    snapshot_every=opts.snapshot_every, eval_snapshots=opts.eval_snapshots, eval_n=opts.eval_n,
                    log_every=opts.log_every, progress=opts.progress)
        return 0
    if args.cmd == "export":
        opts = config_from_args(DCGANExportOptions, args)
        path, info = export(opts.run, opts.out, opts.snapshot, opts.eval_n, opts.tolerance)
        dtype = load_config(path)["dtype"]
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB, {dtype}) from step {info['step']}", flush=True)
        if "bar_float32" in info:
            print(json.dumps({k: info[k] for k in ("bar_float32", "bar_float16", "float16_change_points")}), flush=True)
        return 0
    opts = config_from_args(DCGANEvalOptions, args)
    torch.set_num_threads(opts.threads)
    if opts.weights:
        meta = load_config(opts.weights)
        rec = {"snapshot": Path(opts.weights).name, "step": meta.get("step"),
               **bar(dcgan_io.load(opts.weights), n=opts.n, seed=opts.seed)}
        print(bar_line(rec))
        return 0
    if not evaluate_snapshots(opts.run, n=opts.n, seed=opts.seed):
        print(f"{opts.run}: every snapshot already judged at n={opts.n}", flush=True)
    chosen = choose_snapshot(read_log(opts.run), n=opts.n)
    print(f"chosen (highest confident share, ties within 2 SE broken by the smaller frequency gap; tied: steps "
          f"{chosen['tied']}): {bar_line(chosen)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
