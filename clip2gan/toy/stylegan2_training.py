"""Training the toy world's StyleGAN2: the trainer, resumable, on CPU (00_setup.ipynb, 02_stylegan2_wplus.ipynb).

CLIP2GAN needs a *pretrained* StyleGAN2. In the offline `toyfaces` profile the project trains its own,
with the networks of `clip2gan.stylegan2` (the code path that also loads NVIDIA's FFHQ pickles) and the
recipe of NVIDIA's stylegan2-ada-pytorch (`training/loss.py`, `training/training_loop.py`), re-written
here for one process on a CPU:

The recipe itself (losses, regularisers, EMA, conditioning, architecture: `GANTrainConfig` and its
pieces) is in `clip2gan.toy.stylegan2_recipe`; this module runs it.

**Run folder** (`train(out_dir)`): `checkpoints/ckpt-<step>.safetensors` (+ .json) with G, D, G_ema,
both optimisers, step, nimg and every RNG state (torch, numpy) — written to a temporary file and
renamed, with a checksum of all tensors in the metadata, so a `kill -9` at any moment loses at most
the steps since the last checkpoint and never leaves a damaged file that is taken for a good one; the
last 3 are kept. `grids/fakes-<step>.png` (fixed z and c; rows = attribute sets, columns = z;
`grids/reals.png` shows renders with the same rows), `snapshots/G_ema-<step>.safetensors` (fp16) for
the bar's curve, `log.jsonl` (training stats, evaluations, events), `bar_curve.png`, and
`train.lock` (an flock held while a process trains the run, so a second trainer is refused instead of
interleaving checkpoints; the kernel drops it when the process dies). SIGTERM checkpoints and exits.

Here: the trainer (`GANTrainer`, `train`), its checkpoints and the command line. Judging, the curve
and the shipped file: `clip2gan.toy.stylegan2_eval`.
Every flag of the command line is a field of `GANTrainConfig`, `GANRunOptions`, `GANExportOptions` or
`GANEvalOptions` (`clip2gan.cli`).

Commands::

    python -m clip2gan.toy.stylegan2_training --out runs/toyfaces-stylegan2 --resume     # train / continue
    python -m clip2gan.toy.stylegan2_training export --run runs/toyfaces-stylegan2       # -> data/toyfaces-stylegan2.safetensors
    python -m clip2gan.toy.stylegan2_training eval --run runs/toyfaces-stylegan2 --curve # bar on the snapshots
    python -m clip2gan.toy.stylegan2_training --profile toypets --out runs/toypets-stylegan2 --resume  # the pets world

Either toy world (08_evaluation.ipynb): `--profile toypets` (the config's `world`, fixed once a run
exists) trains on pets' renders and labels and judges snapshots with the pets classifier; export
and eval read the world from the run or the file.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import math
import os
import re
import signal
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from clip2gan import stylegan2
from clip2gan.checkpoint import (
    CorruptCheckpoint,
    load_config,
    load_optimizer_tensors,
    load_safetensors,
    optimizer_tensors,
    save_safetensors,
)
from clip2gan.cli import add_config_args, config_from_args, given_fields, option
from clip2gan.hub import resolve, write_manifest_entry
from clip2gan.profiles import get_profile
from clip2gan.runtime import device_label
from clip2gan.stylegan2 import Generator
from clip2gan.toy import world_module, world_profile
from clip2gan.toy.stylegan2_eval import (
    DEFAULT_EXPORT,
    DEFAULT_RUN,
    bar_line,
    device_history,
    eval_records,
    evaluate,
    evaluate_run,
    export_generator,
    generator_world,
    plot_curve,
    read_log,
    shipped_classifier,
)
from clip2gan.toy.stylegan2_recipe import (
    GANTrainConfig,
    attribute_ce,
    build_networks,
    ema_beta,
    lazy_adam,
    r1_penalty,
    update_ema,
)
from clip2gan.viz import save_grid

__all__ = [
    "GANRunOptions",
    "GANExportOptions",
    "GANEvalOptions",
    "GANTrainer",
    "train",
    "list_checkpoints",
    "load_checkpoint",
    "latest_checkpoint",
    "generator_from_checkpoint",
    "main",
]

FORMAT = "clip2gan-stylegan2-train/1"
_CKPT_RE = re.compile(r"^ckpt-(\d+)\.safetensors$")


# ----------------------------------------------------------------------------------------------
# Checkpoints


def _rng_to_json(rng: np.random.Generator) -> dict[str, Any]:
    return rng.bit_generator.state


def _rng_from_json(state: dict[str, Any]) -> np.random.Generator:
    bitgen = getattr(np.random, state["bit_generator"])()
    bitgen.state = state
    return np.random.Generator(bitgen)


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """`[(step, path)]` of the run's checkpoints, newest first (00_setup.ipynb)."""
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _CKPT_RE.match(p.name))]
    return sorted(found, reverse=True)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """`(tensors, config)` of one training checkpoint; `CorruptCheckpoint` with a clear message if
    the file is truncated, not safetensors, or its tensors do not match their checksum (00_setup.ipynb)."""
    path = Path(path)
    state, config = load_safetensors(path)  # verifies the tensors against their checksum
    if "tensor_sha256" not in config:
        raise CorruptCheckpoint(f"{path} has no tensor checksum: not a complete checkpoint of this trainer")
    if config.get("format") != FORMAT:
        raise CorruptCheckpoint(f"{path} is not a {FORMAT} training checkpoint (format {config.get('format')!r})")
    return state, config


def latest_checkpoint(run_dir: str | os.PathLike, log: Any = None) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]] | None:
    """The newest checkpoint of `run_dir` that loads and verifies, as `(path, tensors, config)`.

    Damaged ones are reported (a warning and a `log` event) and skipped, falling back to the previous
    good one; None if the run has no checkpoint; `CorruptCheckpoint` if every one is damaged (00_setup.ipynb).
    """
    found = list_checkpoints(run_dir)
    errors = []
    for _step, path in found:
        try:
            state, config = load_checkpoint(path)
            if errors:
                msg = f"using the previous good checkpoint {path.name}; damaged: " + "; ".join(errors)
                warnings.warn(msg, stacklevel=2)
                if log is not None:
                    log({"kind": "event", "event": "damaged_checkpoint", "message": msg})
            return path, state, config
        except CorruptCheckpoint as err:
            errors.append(str(err))
        except FileNotFoundError:  # removed by the training process (it keeps the last 3) meanwhile
            continue
    if errors:
        raise CorruptCheckpoint(f"every checkpoint in {Path(run_dir) / 'checkpoints'} is damaged: " + "; ".join(errors)
                                + ". Delete them to start again (or restore one from a backup).")
    return None


# ----------------------------------------------------------------------------------------------
# The trainer


class GANTrainer:
    """One StyleGAN2 run in `out_dir` (see the module docstring): `GANTrainer(out_dir, cfg).run(...)` (00_setup.ipynb)."""

    GRID_ROWS = 8
    GRID_COLS = 8

    def __init__(self, out_dir: str | os.PathLike, cfg: GANTrainConfig | None = None, resume: bool = True,
                 overrides: dict[str, Any] | None = None, device: str | torch.device = "cpu"):
        self.out_dir = Path(out_dir)
        self.device = torch.device(device)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "checkpoints").mkdir(exist_ok=True)
        self.log_path = self.out_dir / "log.jsonl"
        _RunLock(self.out_dir).check()  # refuse to touch a run another process is training
        for stale in [*self.out_dir.glob("checkpoints/.*.tmp"), *self.out_dir.glob("snapshots/.*.tmp")]:
            stale.unlink(missing_ok=True)  # left by a kill -9 during a write; never a valid file
        found = latest_checkpoint(self.out_dir, log=self.log) if resume else None
        if not resume and list_checkpoints(self.out_dir):
            raise FileExistsError(f"{self.out_dir} already holds checkpoints; pass resume=True (--resume) "
                                  "to continue it, or choose a new folder")
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        if found is not None:
            path, tensors, config = found
            saved = GANTrainConfig.from_dict(config["train_config"])
            for k, v in overrides.items():
                if k in GANTrainConfig.ARCH_FIELDS and getattr(saved, k) != v:
                    raise ValueError(f"--{k}={v} differs from the run's {getattr(saved, k)}: the architecture of an "
                                     "existing run cannot change; use a new --out folder")
            changed = {k: (getattr(saved, k), v) for k, v in overrides.items() if getattr(saved, k) != v}
            self.cfg = dataclasses.replace(saved, **overrides)
            self._init_state()
            self._restore(tensors, config)
            self._apply_noise_setting()
            self.log({"kind": "event", "event": "resume", "checkpoint": path.name, "step": self.step,
                      "kimg": self.nimg / 1000, "device": device_label(self.device),
                      "changed": {k: list(v) for k, v in changed.items()}})
            print(f"resumed from {path} (step {self.step}, {self.nimg / 1000:.1f} kimg)"
                  + (f"; changed: {changed}" if changed else ""), flush=True)
        else:
            base = cfg or GANTrainConfig()
            self.cfg = dataclasses.replace(base, **overrides)
            self._init_state()
            self._apply_noise_setting()
            self.log({"kind": "event", "event": "start", "config": self.cfg.to_dict(), "kimg": 0.0,
                      "device": device_label(self.device),
                      "G_params": sum(p.numel() for p in self.G.parameters()),
                      "D_params": sum(p.numel() for p in self.D.parameters())})

    # -- state ------------------------------------------------------------------------------

    def _init_state(self) -> None:
        cfg = self.cfg
        self.world = world_module(cfg.world)
        torch.manual_seed(cfg.seed)
        self.G, self.D = build_networks(cfg)
        self.G.to(self.device)
        self.D.to(self.device)
        self.G.requires_grad_(False)
        self.D.requires_grad_(False)
        self.G_ema = copy.deepcopy(self.G).eval()
        betas = (cfg.beta1, cfg.beta2)
        self.opt_G = lazy_adam(self.G.parameters(), cfg.lr_G, betas, cfg.G_reg_interval if cfg.pl_weight > 0 else None)
        self.opt_D = lazy_adam(self.D.parameters(), cfg.lr_D, betas, cfg.D_reg_interval if cfg.r1_gamma > 0 else None)
        # auxiliary attribute head on D's features at cfg.d_aux_tap (trained only when cfg.d_aux_weight > 0);
        # its own generator so that creating it leaves the run's random streams untouched
        self._d_features: torch.Tensor | None = None
        taps = [4] + [r // 2 for r in self.D.block_resolutions if r // 2 > 4]
        if cfg.d_aux_tap not in taps:
            raise ValueError(f"d_aux_tap={cfg.d_aux_tap}: choose one of {taps} (the resolutions of D's features)")
        if cfg.d_aux_tap == 4:
            self.D.b4.fc.register_forward_hook(lambda _m, _i, out: setattr(self, "_d_features", out))
        else:
            getattr(self.D, f"b{2 * cfg.d_aux_tap}").register_forward_hook(
                lambda _m, _i, out: setattr(self, "_d_features", out[0].flatten(1).float()))
        with torch.no_grad():  # one dry pass to size the head (deterministic: no random state is used)
            self.D(torch.zeros(1, 3, cfg.resolution, cfg.resolution, device=self.device),
                   torch.zeros(1, cfg.c_dim, device=self.device) if cfg.conditional else None)
        self.aux = torch.nn.Linear(self._d_features.shape[1], self.world.C_DIM).to(self.device).requires_grad_(False)
        with torch.no_grad():
            gen = torch.Generator().manual_seed(cfg.seed + 11)
            self.aux.weight.copy_(torch.randn(self.aux.weight.shape, generator=gen) * 0.01)
            self.aux.bias.zero_()
        self.opt_aux = torch.optim.Adam(self.aux.parameters(), lr=cfg.lr_D, betas=betas)
        self.pl_mean = torch.zeros([], device=self.device)
        self.step = 0
        self.nimg = 0
        self.cpu_seconds = 0.0
        self.wall_seconds = 0.0
        self.data_rng = np.random.default_rng([cfg.seed, 1])
        torch.manual_seed(cfg.seed + 2)
        # Fixed grid inputs: GRID_ROWS attribute sets x GRID_COLS latents.
        grid_rng = np.random.default_rng([cfg.seed, 7])
        self.grid_attrs = [self.world.sample_attributes(grid_rng) for _ in range(self.GRID_ROWS)]
        gen = torch.Generator().manual_seed(cfg.seed + 7)
        self.grid_z = torch.randn(self.GRID_ROWS * self.GRID_COLS, cfg.z_dim, generator=gen)
        self.grid_c = self.world.attributes_to_c([a for a in self.grid_attrs for _ in range(self.GRID_COLS)])
        reals = self.out_dir / "grids" / "reals.png"
        if not reals.exists():
            attrs = [a for a in self.grid_attrs for _ in range(self.GRID_COLS)]
            save_grid(self.world.render_batch(attrs, np.random.default_rng([cfg.seed, 8]), cfg.resolution), reals,
                      nrow=self.GRID_COLS)

    def _apply_noise_setting(self) -> None:
        # use_noise=False: noise strengths fixed at 0 in G and G_ema; their grads are dropped in
        # `_drop_frozen_grads` (so Adam skips them and the optimiser's parameter list is unchanged).
        self._frozen = []
        if not self.cfg.use_noise:
            for net in (self.G, self.G_ema):
                for name, p in net.named_parameters():
                    if name.endswith("noise_strength"):
                        with torch.no_grad():
                            p.zero_()
                        if net is self.G:
                            self._frozen.append(p)

    def _drop_frozen_grads(self) -> None:
        for p in self._frozen:
            p.grad = None

    def state_tensors(self) -> dict[str, torch.Tensor]:
        t: dict[str, torch.Tensor] = {}
        for name, net in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            t.update({f"{name}.{k}": v for k, v in net.state_dict().items()})
        t.update(optimizer_tensors(self.opt_G, "opt_G"))
        t.update(optimizer_tensors(self.opt_D, "opt_D"))
        t.update({f"aux.{k}": v for k, v in self.aux.state_dict().items()})
        t.update(optimizer_tensors(self.opt_aux, "opt_aux"))
        t["loss.pl_mean"] = self.pl_mean.detach().cpu().reshape([])
        t["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            t["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        return t

    def _restore(self, tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
        for name, net in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            sd = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
            net.load_state_dict(sd, strict=True)
        load_optimizer_tensors(self.opt_G, tensors, "opt_G")
        load_optimizer_tensors(self.opt_D, tensors, "opt_D")
        # a checkpoint from before the head, or with the head on other features, keeps the fresh head
        if "aux.weight" in tensors and tensors["aux.weight"].shape == self.aux.weight.shape:
            self.aux.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("aux.")})
            load_optimizer_tensors(self.opt_aux, tensors, "opt_aux")
        self.pl_mean = tensors["loss.pl_mean"].clone().to(self.device)
        torch.set_rng_state(tensors["rng.torch"].clone())
        if self.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"].clone(), self.device)
        self.data_rng = _rng_from_json(config["rng_numpy"])
        self.step = int(config["step"])
        self.nimg = int(config["nimg"])
        self.cpu_seconds = float(config.get("cpu_seconds", 0.0))
        self.wall_seconds = float(config.get("wall_seconds", 0.0))

    def save_checkpoint(self, keep: int = 3) -> Path:
        path = self.out_dir / "checkpoints" / f"ckpt-{self.step:08d}.safetensors"
        config = {
            "format": FORMAT,
            "train_config": self.cfg.to_dict(),
            "G_kwargs": self.G.init_kwargs,
            "D_kwargs": self.D.init_kwargs,
            "step": self.step,
            "nimg": self.nimg,
            "rng_numpy": _rng_to_json(self.data_rng),
            "cpu_seconds": self._cpu_now(),
            "wall_seconds": self._wall_now(),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        save_safetensors(self.state_tensors(), path, config, checksum=True)
        for _step, old in list_checkpoints(self.out_dir)[keep:]:
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)
        return path

    def save_snapshot(self) -> Path:
        """G_ema (fp16) for the bar's curve: `snapshots/G_ema-<step>.safetensors` (kimg in its metadata)."""
        path = self.out_dir / "snapshots" / f"G_ema-{self.step:08d}.safetensors"
        export_generator(self.G_ema, path, extra={"step": self.step, "nimg": self.nimg,
                                                   "cpu_seconds": self._cpu_now()}, write_json=False, world=self.world)
        return path

    # -- bookkeeping ---------------------------------------------------------------------------

    def _cpu_now(self) -> float:
        return self.cpu_seconds + (time.process_time() - self._cpu0) if hasattr(self, "_cpu0") else self.cpu_seconds

    def _wall_now(self) -> float:
        return self.wall_seconds + (time.time() - self._wall0) if hasattr(self, "_wall0") else self.wall_seconds

    def log(self, record: dict[str, Any]) -> None:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    # -- one training step ---------------------------------------------------------------------

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        attrs = [self.world.sample_attributes(self.data_rng) for _ in range(self.cfg.batch)]
        img = self.world.render_batch(attrs, self.data_rng, self.cfg.resolution)
        return img.to(self.device), self._c(attrs)

    def _c(self, attrs: list[dict[str, Any]]) -> torch.Tensor:
        if not self.cfg.conditional:
            return torch.zeros(len(attrs), 0, device=self.device)
        return self.world.attributes_to_c(attrs).to(self.device)

    def _gen_inputs(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(n, self.cfg.z_dim).to(self.device)
        return z, self._c([self.world.sample_attributes(self.data_rng) for _ in range(n)])

    def run_G(self, z: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        ws = self.G.mapping(z, c)
        if self.cfg.style_mixing_prob > 0:
            cutoff = int(torch.randint(1, ws.shape[1], []))
            if float(torch.rand([])) >= self.cfg.style_mixing_prob:
                cutoff = ws.shape[1]
            if cutoff < ws.shape[1]:
                ws = ws.clone()
                ws[:, cutoff:] = self.G.mapping(torch.randn_like(z), c, skip_w_avg_update=True)[:, cutoff:]
        return self.G.synthesis(ws, noise_mode="random"), ws

    @staticmethod
    def _finite_grads(module: torch.nn.Module) -> None:
        for p in module.parameters():
            if p.grad is not None:
                torch.nan_to_num(p.grad, nan=0, posinf=1e5, neginf=-1e5, out=p.grad)

    def train_step(self) -> dict[str, float]:
        """One iteration: G main (+ PL every G_reg_interval), D main (+ R1 every D_reg_interval), EMA."""
        cfg = self.cfg
        stats: dict[str, float] = {}
        real, real_c = self._real_batch()
        gz, gc = self._gen_inputs(cfg.batch)  # G phase
        dz, dc = self._gen_inputs(cfg.batch)  # D phase

        # G main: non-saturating loss.
        self.G.requires_grad_(True)
        self.opt_G.zero_grad(set_to_none=True)
        fake, _ = self.run_G(gz, gc)
        fake_logits = self.D(fake, gc)
        loss_G = F.softplus(-fake_logits).mean()
        loss = loss_G
        if cfg.d_aux_weight > 0:  # G: make the auxiliary head read the labels G was given
            aux_G = attribute_ce(self.aux(self._d_features), gc, self.world.C_SLICES)
            stats["aux_G"] = float(aux_G.detach())
            loss = loss + cfg.d_aux_weight * aux_G
        loss.backward()
        self._drop_frozen_grads()
        self._finite_grads(self.G)
        self.opt_G.step()
        stats["loss_G"] = float(loss_G.detach())
        stats["score_fake"] = float(fake_logits.detach().mean())

        # G reg: path length (off by default; see the module docstring).
        if cfg.pl_weight > 0 and self.step % cfg.G_reg_interval == 0:
            self.opt_G.zero_grad(set_to_none=True)
            n = max(cfg.batch // cfg.pl_batch_shrink, 1)
            img, ws = self.run_G(gz[:n], gc[:n])
            pl_noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
            (pl_grads,) = torch.autograd.grad(outputs=[(img * pl_noise).sum()], inputs=[ws], create_graph=True)
            pl_lengths = pl_grads.square().sum(2).mean(1).sqrt()
            pl_mean = self.pl_mean.lerp(pl_lengths.mean(), cfg.pl_decay)
            self.pl_mean.copy_(pl_mean.detach())
            pl_penalty = (pl_lengths - pl_mean).square()
            (img[:, 0, 0, 0] * 0 + pl_penalty * cfg.pl_weight).mean().mul(cfg.G_reg_interval).backward()
            self._drop_frozen_grads()
            self._finite_grads(self.G)
            self.opt_G.step()
            stats["pl_penalty"] = float(pl_penalty.detach().mean())
        self.G.requires_grad_(False)

        # D main: logistic loss on fakes (G frozen) and reals.
        self.D.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        with torch.no_grad():
            fake, _ = self.run_G(dz, dc)
        loss_Dgen = F.softplus(self.D(fake, dc)).mean()
        real_logits = self.D(real, real_c)
        loss_Dreal = F.softplus(-real_logits).mean()
        loss_D = loss_Dgen + loss_Dreal
        if cfg.d_aux_weight > 0:  # D and the head: read the attributes of real renders
            self.aux.requires_grad_(True)
            self.opt_aux.zero_grad(set_to_none=True)
            aux_D = attribute_ce(self.aux(self._d_features), real_c, self.world.C_SLICES)
            stats["aux_D"] = float(aux_D.detach())
            loss_D = loss_D + cfg.d_aux_weight * aux_D
        loss_D.backward()
        self._finite_grads(self.D)
        self.opt_D.step()
        if cfg.d_aux_weight > 0:
            self.opt_aux.step()
            self.aux.requires_grad_(False)
        stats["loss_D"] = float((loss_Dgen + loss_Dreal).detach())
        stats["score_real"] = float(real_logits.detach().mean())

        # D reg: lazy R1 on reals.
        if cfg.r1_gamma > 0 and self.step % cfg.D_reg_interval == 0:
            self.opt_D.zero_grad(set_to_none=True)
            penalty, logits = r1_penalty(self.D, real, real_c)
            (logits * 0 + penalty * (cfg.r1_gamma / 2)).mean().mul(cfg.D_reg_interval).backward()
            self._finite_grads(self.D)
            self.opt_D.step()
            stats["r1_penalty"] = float(penalty.detach().mean())
        self.D.requires_grad_(False)

        # G_ema.
        beta = ema_beta(self.nimg, cfg.batch, cfg.ema_kimg_effective, cfg.ema_rampup)
        update_ema(self.G_ema, self.G, beta)
        stats["ema_beta"] = beta

        self.nimg += cfg.batch
        self.step += 1
        return stats

    # -- the loop ------------------------------------------------------------------------------

    @torch.no_grad()
    def save_fakes(self) -> Path:
        with torch.random.fork_rng(devices=[]):
            imgs = torch.cat([self.G_ema(z.to(self.device), c.to(self.device) if self.cfg.conditional else None,
                                         noise_mode="const").cpu()
                              for z, c in zip(self.grid_z.split(16), self.grid_c.split(16))])
        return save_grid(imgs, self.out_dir / "grids" / f"fakes-{self.step:08d}.png", nrow=self.GRID_COLS)

    def run(self, steps: int | None = None, kimg: float | None = None, minutes: float | None = None,
            checkpoint_minutes: float = 5.0, checkpoint_every: int | None = None, grid_every: int = 500,
            snapshot_kimg: float | None = 16.0, eval_snapshots: bool = True, eval_n: int = 1000,
            log_every: int = 20, progress: bool = True, keep_history: bool = False) -> list[dict[str, Any]]:
        """Train until `steps` (total, counted from the run's start) or `kimg` (total) or `minutes` (this call).

        Checkpoints every `checkpoint_minutes` (and every `checkpoint_every` steps if given) and at the end;
        SIGTERM / Ctrl-C checkpoint, then stop. Returns the per-step stats of this call when `keep_history`.
        """
        lock = _RunLock(self.out_dir).acquire()
        try:
            return self._run(steps, kimg, minutes, checkpoint_minutes, checkpoint_every, grid_every, snapshot_kimg,
                             eval_snapshots, eval_n, log_every, progress, keep_history)
        finally:
            lock.release()

    def _run(self, steps, kimg, minutes, checkpoint_minutes, checkpoint_every, grid_every, snapshot_kimg,
             eval_snapshots, eval_n, log_every, progress, keep_history) -> list[dict[str, Any]]:
        target = steps if steps is not None else (math.ceil(kimg * 1000 / self.cfg.batch) if kimg is not None else None)
        history: list[dict[str, Any]] = []
        self._cpu0, self._wall0 = time.process_time(), time.time()
        t_end = time.time() + minutes * 60 if minutes is not None else None
        last_ckpt = time.time()
        stop = {"flag": False}

        def _on_signal(signum, frame):  # finish the step, checkpoint, exit
            stop["flag"] = True

        old_handler = None
        if hasattr(signal, "SIGTERM") and _in_main_thread():
            old_handler = signal.signal(signal.SIGTERM, _on_signal)
        bar = None
        if progress:
            bar = tqdm(total=target, initial=self.step, unit="step", dynamic_ncols=True, mininterval=5.0,
                       desc="stylegan2")
        if self.step == 0:
            self.save_fakes()
        acc: dict[str, list[float]] = {}
        t_last = time.time()
        step_last = self.step
        try:
            while (target is None or self.step < target) and not stop["flag"]:
                if t_end is not None and time.time() >= t_end:
                    break
                prev_nimg = self.nimg
                stats = self.train_step()
                for k, v in stats.items():
                    acc.setdefault(k, []).append(v)
                if keep_history:
                    history.append({"step": self.step, **stats})
                if bar is not None:
                    bar.update(1)
                    if self.step % 10 == 0:
                        bar.set_postfix(kimg=f"{self.nimg / 1000:.1f}", G=f"{stats['loss_G']:.3f}",
                                        D=f"{stats['loss_D']:.3f}", refresh=False)
                if self.step % log_every == 0:
                    now = time.time()
                    rec = {"kind": "train", "step": self.step, "kimg": self.nimg / 1000,
                           **{k: float(np.mean(v)) for k, v in acc.items()},
                           "sec_per_step": (now - t_last) / max(self.step - step_last, 1),
                           "cpu_seconds": self._cpu_now(), "wall_seconds": self._wall_now()}
                    self.log(rec)
                    acc, t_last, step_last = {}, now, self.step
                if grid_every and self.step % grid_every == 0:
                    self.save_fakes()
                if snapshot_kimg and self.nimg // int(snapshot_kimg * 1000) > prev_nimg // int(snapshot_kimg * 1000):
                    snap = self.save_snapshot()
                    if eval_snapshots:
                        self._eval_snapshot(snap, eval_n)
                if (checkpoint_every and self.step % checkpoint_every == 0) or \
                        time.time() - last_ckpt >= checkpoint_minutes * 60:
                    self.save_checkpoint()
                    last_ckpt = time.time()
        except KeyboardInterrupt:
            stop["flag"] = True
        finally:
            if bar is not None:
                bar.close()
            if old_handler is not None:
                signal.signal(signal.SIGTERM, old_handler)
        path = self.save_checkpoint()
        self.save_fakes()
        self.log({"kind": "event", "event": "stop" if stop["flag"] else "done", "step": self.step,
                  "checkpoint": path.name, "cpu_seconds": self._cpu_now()})
        return history

    def _eval_snapshot(self, snap: Path, n: int) -> None:
        """Evaluate a snapshot if the attribute classifier is available (else `eval --curve` does it later)."""
        try:
            clf = shipped_classifier(self.world)
        except Exception as err:  # not trained yet: say so once
            if not getattr(self, "_warned_clf", False):
                self.log({"kind": "event", "event": "no_classifier", "message": str(err)[:300]})
                self._warned_clf = True
            return
        with torch.random.fork_rng(devices=[]):
            G = stylegan2.load(snap)
            res = evaluate(G, n=n, classifier=clf, world=self.world)
        self.log({"kind": "eval", "snapshot": snap.name, "step": self.step, "kimg": self.nimg / 1000,
                  "cpu_seconds": self._cpu_now(), **res})
        try:
            plot_curve(self.out_dir)
        except Exception as err:  # plotting must never stop training
            self.log({"kind": "event", "event": "plot_failed", "message": str(err)[:300]})


class _RunLock:
    """An exclusive `flock` on `<run>/train.lock` while a process trains the run (released by the
    kernel if the process dies, so a kill -9 never leaves a stale lock)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / "train.lock"
        self.fd: int | None = None

    def acquire(self) -> _RunLock:
        try:
            import fcntl  # POSIX only: imported here so that other systems run without the lock
        except ImportError:  # not POSIX: no lock
            return self
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            pid = os.read(self.fd, 32).decode(errors="replace").strip()
            os.close(self.fd)
            self.fd = None
            raise RuntimeError(f"{self.path.parent} is being trained by another process (pid {pid or '?'}); "
                               "stop it first (kill -TERM <pid> checkpoints and exits), then resume") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, str(os.getpid()).encode())
        return self

    def check(self) -> None:
        self.acquire().release()

    def release(self) -> None:
        if self.fd is not None:
            import fcntl  # POSIX only (a lock is held only where it imported)

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def train(out_dir: str | os.PathLike = DEFAULT_RUN, steps: int | None = None, kimg: float | None = None,
          batch: int | None = None, resume: bool = True, cfg: GANTrainConfig | None = None,
          threads: int | None = 1, device: str = "cpu", **run_kwargs: Any) -> GANTrainer:
    """Train (or continue) the toy StyleGAN2 in `out_dir`; returns the `GANTrainer` (00_setup.ipynb).

    steps/kimg: the total length of the run (not of this call); resume: continue from the newest good
    checkpoint. `cfg` fields (or `batch`) override a resumed run's loss/schedule settings; the
    architecture of an existing run cannot change. Other keyword arguments go to `GANTrainer.run`.
    """
    if threads:
        torch.set_num_threads(int(threads))
    overrides = {}
    if cfg is not None:
        overrides = {k: v for k, v in cfg.to_dict().items() if v != getattr(GANTrainConfig(), k)}
    if batch is not None:
        overrides["batch"] = batch
    trainer = GANTrainer(out_dir, cfg=cfg, resume=resume, overrides=overrides, device=device)
    history = trainer.run(steps=steps, kimg=kimg, **run_kwargs)
    trainer.history = history
    return trainer


# ----------------------------------------------------------------------------------------------
# Command line


@dataclass
class GANRunOptions:
    """How `python -m clip2gan.toy.stylegan2_training [train]` runs (the run's own settings are
    `GANTrainConfig`'s flags) (00_setup.ipynb)."""

    out: str | None = option(None, "run folder (checkpoints, grids, snapshots, log.jsonl; none: runs/<profile>-stylegan2)")
    profile: str | None = option(None, "the toy world: toyfaces or toypets (sets the run's world; none: the run's "
                                 "own when resuming, else toyfaces)", choices=("toyfaces", "toypets"))
    resume: bool = option(False, "continue from the newest good checkpoint in --out")
    kimg: float | None = option(None, "total length of the run in thousands of real images")
    steps: int | None = option(None, "total length of the run in steps (instead of --kimg)")
    minutes: float | None = option(None, "stop this call after so many minutes (checkpointed; --resume continues)")
    threads: int = option(1, "torch CPU threads (1: the CPUs are shared)")
    device: str = option("cpu", "cpu, cuda or cuda:N")
    checkpoint_minutes: float = option(5.0, "minutes between checkpoints (also one at the end)")
    grid_every: int = option(500, "steps between sample grids (0: only at the start and end)")
    snapshot_kimg: float = option(16.0, "kimg between G_ema snapshots for the curve (0: none)")
    eval_snapshots: bool = option(True, "evaluate each snapshot while training (--no-eval: later, with eval --curve)",
                                  flag="--eval")
    progress: bool = option(True, "show a progress bar")


@dataclass
class GANExportOptions:
    """The settings of `python -m clip2gan.toy.stylegan2_training export` (00_setup.ipynb)."""

    run: str | None = option(None, "the run folder to export from (none: runs/<profile>-stylegan2)")
    out: str | None = option(None, "the generator file to write (fp16 safetensors, a .json beside it; none: "
                             "data/<profile>-stylegan2.safetensors)")
    profile: str | None = option(None, "the toy world, toyfaces or toypets: names the defaults and must be the run's "
                                 "(none: toyfaces)", choices=("toyfaces", "toypets"))
    manifest: bool = option(False, "also evaluate the written file and record it in data/MANIFEST.json")
    command: str | None = option(None, "the training command to record in the manifest")
    history: str | None = option(None, "how the run got here (changes made on resume), for the manifest")
    snapshot: int | None = option(None, "export the G_ema snapshot of this step, exactly as the run evaluated it, "
                                  "instead of the newest checkpoint's G_ema")


@dataclass
class GANEvalOptions:
    """The settings of `python -m clip2gan.toy.stylegan2_training eval` (00_setup.ipynb)."""

    run: str | None = option(None, "the run whose newest checkpoint is evaluated (none: runs/<profile>-stylegan2)")
    profile: str | None = option(None, "the toy world, toyfaces or toypets: names the default run and must be the "
                                 "run's or file's (none: toyfaces)", choices=("toyfaces", "toypets"))
    weights: str | None = option(None, "an exported generator (path or hub name) instead of the run's newest checkpoint")
    curve: bool = option(False, "evaluate every snapshot of the run not yet evaluated, then plot the curve")
    n: int = option(1000, "samples to judge")
    seed: int = option(0, "seed of the samples' z and c")
    truncation_psi: float = option(1.0, "truncation psi of the samples (1: none)")
    threads: int = option(1, "torch CPU threads")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clip2gan.toy.stylegan2_training",
                                     description="Train, export and evaluate the toy world's StyleGAN2.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    train_p = sub.add_parser("train", help="train or continue a run (the default subcommand)")
    add_config_args(train_p, GANRunOptions)
    # only the settings given on the command line change a resumed run's stored ones
    add_config_args(train_p, GANTrainConfig, only_given=True, title="the run's settings (fixed: architecture)")
    add_config_args(sub.add_parser("export", help="write the run's G_ema (fp16) to data/, optionally to the manifest"),
                    GANExportOptions)
    add_config_args(sub.add_parser("eval", help="the bar for a run's newest checkpoint, a weights file, or all snapshots"),
                    GANEvalOptions)
    return parser


def generator_from_checkpoint(tensors: dict[str, torch.Tensor], config: dict[str, Any], name: str = "G_ema") -> Generator:
    """The generator `name` ('G' or 'G_ema') of a training checkpoint's `(tensors, config)`, in eval mode
    (00_setup.ipynb)."""
    G = Generator(**config["G_kwargs"])
    G.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}, strict=True)
    return G.eval()


def _cmd_train(args: argparse.Namespace) -> int:
    opts = config_from_args(GANRunOptions, args)
    torch.set_num_threads(opts.threads)
    overrides = given_fields(GANTrainConfig, args)
    if opts.profile is not None:
        world = world_module(get_profile(opts.profile)).NAME
        if overrides.get("world", world) != world:
            raise SystemExit(f"--profile {opts.profile} and --world {overrides['world']} disagree: give one of them")
        overrides["world"] = world
    out = opts.out or f"runs/{opts.profile or 'toyfaces'}-stylegan2"
    trainer = GANTrainer(out, resume=opts.resume, overrides=overrides, device=opts.device)
    trainer.run(steps=opts.steps, kimg=opts.kimg, minutes=opts.minutes, checkpoint_minutes=opts.checkpoint_minutes,
                grid_every=opts.grid_every, snapshot_kimg=opts.snapshot_kimg, eval_snapshots=opts.eval_snapshots,
                progress=opts.progress)
    return 0


def _with_run_defaults(opts: Any) -> Any:
    """`--run` (and export's `--out`) from `--profile` where not given: the faces' paths for toyfaces."""
    profile = opts.profile or "toyfaces"
    run = opts.run or (str(DEFAULT_RUN) if profile == "toyfaces" else f"runs/{profile}-stylegan2")
    changes: dict[str, Any] = {"run": run}
    if hasattr(opts, "out"):
        changes["out"] = opts.out or (str(DEFAULT_EXPORT) if profile == "toyfaces"
                                      else str(DEFAULT_EXPORT.parent / f"{profile}-stylegan2.safetensors"))
    return dataclasses.replace(opts, **changes)


def _check_world(opts: Any, world: Any, parser: argparse.ArgumentParser, what: str) -> None:
    """A `--profile` given must name the world of the run or file (a faces G judged as pets reads nonsense)."""
    if opts.profile is not None and world_module(get_profile(opts.profile)) is not world:
        parser.error(f"{what} is a {world.NAME} generator, not one of --profile {opts.profile}")


def _cmd_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    opts = _with_run_defaults(config_from_args(GANExportOptions, args))
    found = latest_checkpoint(opts.run)
    if found is None:
        parser.error(f"{opts.run} has no checkpoint to export")
    path, tensors, config = found
    log = read_log(opts.run)
    if opts.snapshot is not None:  # a G_ema snapshot the run evaluated, exactly as evaluated
        snap = Path(opts.run) / "snapshots" / f"G_ema-{opts.snapshot:08d}.safetensors"
        if not snap.is_file():
            have = sorted(p.name for p in (Path(opts.run) / "snapshots").glob("G_ema-*.safetensors"))
            parser.error(f"{snap} does not exist; snapshots: {', '.join(have[-5:]) or 'none'}")
        G, meta = stylegan2.load(snap), load_config(snap)
        step, nimg, cpu_seconds = meta["step"], meta["nimg"], meta.get("cpu_seconds")
        wall_seconds = max((r["wall_seconds"] for r in log if r.get("kind") == "train" and "wall_seconds" in r
                            and r.get("step", 0) <= step), default=None)
        source = {"from_snapshot": snap.name}
    else:
        G = generator_from_checkpoint(tensors, config, "G_ema")
        step, nimg = config["step"], config["nimg"]
        cpu_seconds, wall_seconds = config.get("cpu_seconds"), config.get("wall_seconds")
        source = {"from_checkpoint": path.name}
    extra = {"step": step, "kimg": nimg / 1000, "cpu_seconds": cpu_seconds,
             "train_config": config["train_config"], **source}
    world = generator_world(config)
    _check_world(opts, world, parser, opts.run)
    out = export_generator(G, opts.out, extra=extra, world=world)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) from {next(iter(source.values()))}", flush=True)
    if opts.manifest:
        resumes = [{k: r.get(k) for k in ("time", "step", "changed")} for r in log
                   if r.get("event") == "resume" and r.get("changed") and r.get("step", 0) <= step]
        segments = [seg for seg in device_history(opts.run) if (seg["from_kimg"] or 0) <= nimg / 1000]
        info: dict[str, Any] = {"train_cpu_seconds": cpu_seconds, "history": opts.history,
                                "changes_on_resume": resumes, "device_history": segments,
                                "device": "; ".join(dict.fromkeys(seg["device"] for seg in segments)),
                                "train_wall_seconds": wall_seconds, "kimg": nimg / 1000,
                                "step": step, "train_config": config["train_config"], **source}
        try:
            res = evaluate(stylegan2.load(out), n=1000, seed=0, world=world)
            info["metrics"] = {k: res[k] for k in ("confident", "confident_data", "freq_max_dev",
                                                   "freq_worst_attribute", "cond_all", "cond_mean", "cond_accuracy", "fid",
                                                   "bar_met")}
            print(bar_line({"snapshot": out.name, "kimg": nimg / 1000, **res}), flush=True)
        except Exception as err:  # the classifier may not exist yet
            info["metrics"] = f"not measured: {err}"
        profile = "" if world.NAME == "faces" else f" --profile {world_profile(world).name}"
        command = opts.command or (f"python -m clip2gan.toy.stylegan2_training{profile} --out {opts.run} --resume && "
                                   f"python -m clip2gan.toy.stylegan2_training export{profile} --run {opts.run}")
        write_manifest_entry(out, command, **info)
    return 0


def _cmd_eval(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    opts = _with_run_defaults(config_from_args(GANEvalOptions, args))
    torch.set_num_threads(opts.threads)
    if opts.curve:
        evaluate_run(opts.run, n=opts.n, seed=opts.seed)
        for r in eval_records(opts.run):
            print(bar_line(r))
        return 0
    if opts.weights:
        path = resolve(opts.weights)
        meta = load_config(path)
        G, name, kimg = stylegan2.load(path), path.name, meta.get("kimg", meta.get("nimg", 0) / 1000)
        world = generator_world(meta)
        _check_world(opts, world, parser, path.name)
    else:
        found = latest_checkpoint(opts.run)
        if found is None:
            parser.error(f"{opts.run} has no checkpoint")
        path, tensors, config = found
        G, name, kimg = generator_from_checkpoint(tensors, config, "G_ema"), path.name, config["nimg"] / 1000
        world = generator_world(config)
        _check_world(opts, world, parser, opts.run)
    res = evaluate(G, n=opts.n, seed=opts.seed, truncation_psi=opts.truncation_psi, world=world)
    print(bar_line({"snapshot": name, "kimg": kimg or 0, **res}))
    print(json.dumps({k: res[k] for k in ("cond_accuracy", "freq_dev")}, indent=1))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m clip2gan.toy.stylegan2_training [train] --out DIR --resume | export | eval` (00_setup.ipynb).

    Without a subcommand (the first argument a flag) the command trains."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["train"] + argv
    parser = _parser()
    args = parser.parse_args(argv)
    if args.cmd == "train":
        return _cmd_train(args)
    if args.cmd == "export":
        return _cmd_export(args, parser)
    return _cmd_eval(args, parser)


if __name__ == "__main__":
    sys.exit(main())
