"""Training the toy world's StyleGAN2: the full recipe, resumable, on CPU (00_setup.ipynb, 02_stylegan2_wplus.ipynb).

CLIP2GAN needs a *pretrained* StyleGAN2. In the offline `toyfaces` profile the project trains its own,
with the networks of `clip2gan.stylegan2` (the code path that also loads NVIDIA's FFHQ pickles) and the
recipe of NVIDIA's stylegan2-ada-pytorch (`training/loss.py`, `training/training_loop.py`), re-written
here for one process on a CPU:

* non-saturating logistic loss: G minimises softplus(-D(G(z, c), c)); D minimises
  softplus(D(fake)) + softplus(-D(real));
* R1 penalty (γ/2)·‖∇ₓD(x_real, c)‖² with lazy regularisation: applied every `D_reg_interval` = 16
  D steps with the gain 16, and the D optimiser's lr and betas rescaled by 16/17 (StyleGAN2 paper
  App. B). γ = 0.01: NVIDIA's value for 32 px (their `cifar` config; the `auto` heuristic
  0.0002·res²/batch gives 0.0064-0.013 for batch 32-16). DESIGN §6's first toy run used 0.1;
* generator EMA: G_ema ← lerp(G, G_ema, β), β = 0.5^(batch / ema_nimg), ema_nimg = ema_kimg·1000
  ramped up as min(ema_nimg, nimg·ema_rampup) (ema_kimg = 10·batch/32 and rampup 0.05: NVIDIA's
  `auto` config); G_ema is what gets shipped and evaluated;
* the mapping network's learning-rate multiplier 0.01 (inside `MappingNetwork`, NVIDIA's default);
  2 mapping layers (NVIDIA's `auto`/`cifar` choice below 128 px);
* minibatch standard deviation in D (group 4, one channel);
* style-mixing regularisation (probability 0.9, as NVIDIA's FFHQ configs; their 32-px `cifar`
  config turns it off for FID; we keep it because notebook 02 mixes styles by layer ranges and
  CLIP2GAN writes w+ row by row, which needs rows that act independently). `--style-mixing 0` turns it off;
* path-length regularisation: implemented (`pl_weight`, every 4 G steps, batch shrink 2) but **off by
  default at 32 px**: it costs an extra double-backward pass through G (≈ +30 % CPU per step), and its
  benefit — a smoother w → image map for high-resolution inversion and interpolation — is small at
  32 px, where NVIDIA's own 32-px config also disables it (and it worsened their CIFAR-10 FID).
  With it off, G has no lazy regularisation and its optimiser keeps the plain lr and betas.
* per-pixel noise inputs **switched off** (`use_noise=False`, documented deviation): toy faces are
  vector drawings with no stochastic detail (no hair strands, pores or freckles) for the noise to
  model. In the first run (noise on) the 32-px layer's `noise_strength` drifted to |0.06| within
  1,000 steps — about what Adam's random walk on a zero-mean, one-sample gradient gives — and every
  sample was covered in coloured speckle that vanished with `noise_mode='none'`. The parameters stay
  in place (NVIDIA's layout, so checkpoints and `clip2gan.stylegan2.load` are unchanged) but are
  set to 0 and get no updates; `--use-noise true` restores NVIDIA's behaviour.

**Stabiliser: conditioning on the attributes (documented deviation).** DESIGN §6 records that a plain,
unconditional StyleGAN2 on toy faces collapsed after 20 min and, after 35 min, drew blurry faces with
no glasses, hats or smiles. Here G and D are *conditional* on the attribute labels, through NVIDIA's
own conditional path: `c` is the concatenation of one one-hot vector per attribute in `ATTRIBUTES`
order (hair colour all zeros for a bald face), `c_dim = 28`; G's mapping network embeds c and
concatenates it with z; D maps c to `cmap` and projects its output onto it (projection
discriminator). Every value of every attribute is then asked for explicitly in every batch, which
counters mode collapse and missing rare values directly. It changes nothing downstream: CLIP2GAN's
mapping network writes w+ itself and never goes through G's mapping network, so conditioning only
changes how one *samples* G (`G.mapping(z, labels_to_c(attrs))`; sampling c from the data
distribution reproduces the data's attribute frequencies).

**Architecture, chosen by the CPU budget** (DESIGN §6: the 32-px layers dominate the cost): 32 px,
`channel_base=1024, channel_max=128` → 128/128/64/32 channels at 4/8/16/32 px in G and D
(≈ 1.0 M parameters each; 0.5 s per G+D step at batch 16 on one core, vs. 0.9 s for 64 channels at
every resolution — most attributes are decided at 4-16 px, where the width is), z_dim = w_dim = 128
(28 label bits and a little nuisance variation need far less than 512; a small w+ of 8 × 128 also keeps
CLIP2GAN's mapping network small), batch 16 (more updates per CPU second than 32 at the same
images/s), Adam lr 0.0025, betas (0, 0.99) (NVIDIA's 32-px values). D: NVIDIA's resnet architecture.

**Optional auxiliary attribute term** (`d_aux_weight`, default 0, AC-GAN style): a linear head on D's
features (`d_aux_tap`: the epilogue's, or a finer block's output) learns the attributes of real renders and G is pushed to make it read the labels it was
given (`attribute_ce`). Added after D's projection term was measured to ignore the expression
entirely (and G with it); off by default, so runs without it are unchanged.

**Data**: rendered on the fly (`toyfaces.render_batch`, ~1,000+ images/s per core, < 5 % of a step),
attributes from `sample_attributes`; fake labels are drawn from the same distribution.

**Run folder** (`train(out_dir)`): `checkpoints/ckpt-<step>.safetensors` (+ .json) with G, D, G_ema,
both optimisers, step, nimg and every RNG state (torch, numpy) — written to a temporary file and
renamed, with a checksum of all tensors in the metadata, so a `kill -9` at any moment loses at most
the steps since the last checkpoint and never leaves a damaged file that is taken for a good one; the
last 3 are kept. `grids/fakes-<step>.png` (fixed z and c; rows = attribute sets, columns = z;
`grids/reals.png` shows renders with the same rows), `snapshots/G_ema-<step>.safetensors` (fp16) for
the bar's curve, `log.jsonl` (training stats, evaluations, events), `bar_curve.png`, and
`train.lock` (an flock held while a process trains the run, so a second trainer is refused instead of
interleaving checkpoints; the kernel drops it when the process dies). SIGTERM checkpoints and exits.

Commands::

    python -m clip2gan.toy.stylegan2_training --out runs/toyfaces-stylegan2 --resume     # train / continue
    python -m clip2gan.toy.stylegan2_training export --run runs/toyfaces-stylegan2       # -> data/toyfaces-stylegan2.safetensors
    python -m clip2gan.toy.stylegan2_training eval --run runs/toyfaces-stylegan2 --curve # bar on the snapshots
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import math
import os
import re
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from clip2gan.checkpoint import CorruptCheckpoint, atomic_path, load_safetensors, save_safetensors
from clip2gan.hub import DATA_DIR
from clip2gan.runtime import device_label

__all__ = [
    "TrainConfig",
    "C_DIM",
    "attributes_to_c",
    "attribute_ce",
    "sample_c",
    "build_networks",
    "r1_penalty",
    "ema_beta",
    "update_ema",
    "Trainer",
    "train",
    "latest_checkpoint",
    "load_checkpoint",
    "export_generator",
    "load_generator",
    "evaluate",
    "evaluate_run",
    "eval_records",
    "plot_curve",
    "save_grid",
    "list_checkpoints",
    "main",
]

FORMAT = "clip2gan-stylegan2-train/1"
EXPORT_FORMAT = "clip2gan.stylegan2"  # the format of clip2gan.stylegan2.save / load
_LEGACY_EXPORT_FORMAT = "clip2gan-stylegan2-generator/1"  # the first snapshots of runs/toyfaces-stylegan2
DEFAULT_RUN = Path("runs/toyfaces-stylegan2")
DEFAULT_EXPORT = DATA_DIR / "toyfaces-stylegan2.safetensors"
_CKPT_RE = re.compile(r"^ckpt-(\d+)\.safetensors$")
_SNAP_RE = re.compile(r"^G_ema-(\d+)\.safetensors$")


# ----------------------------------------------------------------------------------------------
# Labels


def _attributes():
    from clip2gan.toy.faces import ATTRIBUTES

    return ATTRIBUTES


def _c_dim() -> int:
    return sum(len(v) for v in _attributes().values())


C_DIM = 28  # 5+3+2+3+2+2+3+2+2+4 one-hot slots (checked against ATTRIBUTES in `attributes_to_c`)


def attributes_to_c(attrs_list: Sequence[dict[str, Any]]) -> torch.Tensor:
    """Conditioning labels `c: [N, 28]`: one one-hot block per attribute in `ATTRIBUTES` order;
    a bald face's hair-colour block is all zeros (02_stylegan2_wplus.ipynb)."""
    attributes = _attributes()
    assert _c_dim() == C_DIM, "ATTRIBUTES changed: update C_DIM"
    c = torch.zeros(len(attrs_list), C_DIM)
    for i, attrs in enumerate(attrs_list):
        off = 0
        for name, values in attributes.items():
            v = attrs.get(name)
            if v is not None:
                c[i, off + values.index(v)] = 1.0
            off += len(values)
    return c


def attribute_ce(logits: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Mean over attributes of the cross-entropy between `logits: [N, 28]` (one block of scores per
    attribute, `attributes_to_c`'s layout) and the one-hot labels `c: [N, 28]`; rows whose block is
    all zeros (a bald face's hair colour) are left out of that attribute's term.

    The optional auxiliary term of the toy StyleGAN2 (`TrainConfig.d_aux_weight`): a linear head on
    the discriminator's features (`TrainConfig.d_aux_tap`) learns the attributes of *real* renders, and G is trained so
    that the head reads its samples' conditioning labels. It exists because D's projection term alone
    never learnt to check the mouth: swapping the expression in c changed D's score on real renders
    no more than chance (50 % against 67-79 % for lipstick, hair colour, glasses, skin), and G's
    expression ignored c entirely."""
    losses = []
    off = 0
    for values in _attributes().values():
        k = len(values)
        block = c[:, off:off + k]
        has = block.sum(dim=1) > 0
        if bool(has.any()):
            losses.append(F.cross_entropy(logits[has, off:off + k], block[has].argmax(dim=1)))
        off += k
    return torch.stack(losses).mean()


def sample_c(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """`n` label vectors drawn from the data distribution (`sample_attributes`): `(c [n, 28], attrs)`."""
    from clip2gan.toy.faces import sample_attributes

    attrs = [sample_attributes(rng) for _ in range(n)]
    return attributes_to_c(attrs), attrs


# ----------------------------------------------------------------------------------------------
# Configuration and networks


@dataclass
class TrainConfig:
    """Everything that defines a run. Architecture fields are fixed once a run exists; the loss and
    schedule fields may be changed when resuming (the change is logged)."""

    # architecture (see the module docstring for the reasons)
    resolution: int = 32
    z_dim: int = 128
    w_dim: int = 128
    mapping_layers: int = 2
    channel_base: int = 1024
    channel_max: int = 128
    conditional: bool = True
    mbstd_group: int = 4
    d_architecture: str = "resnet"
    # optimisation
    batch: int = 16
    lr_G: float = 0.0025
    lr_D: float = 0.0025
    beta1: float = 0.0
    beta2: float = 0.99
    r1_gamma: float = 0.01
    D_reg_interval: int = 16
    pl_weight: float = 0.0
    G_reg_interval: int = 4
    pl_batch_shrink: int = 2
    pl_decay: float = 0.01
    style_mixing_prob: float = 0.9
    use_noise: bool = False  # per-pixel noise inputs: zeroed and frozen (see the module docstring)
    ema_kimg: Optional[float] = None  # None: 10 * batch / 32 (NVIDIA auto)
    ema_rampup: Optional[float] = 0.05
    # auxiliary attribute classifier on D's features (AC-GAN style), 0 = off (see `attribute_ce`)
    d_aux_weight: float = 0.0
    # which D features the head reads: 4 = the epilogue's fc features; 8, 16, ... = the (flattened)
    # output of the block that downsamples to that size (finer detail, e.g. the mouth, survives there)
    d_aux_tap: int = 4
    seed: int = 0

    ARCH_FIELDS = ("resolution", "z_dim", "w_dim", "mapping_layers", "channel_base", "channel_max",
                   "conditional", "mbstd_group", "d_architecture")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @property
    def c_dim(self) -> int:
        return C_DIM if self.conditional else 0

    @property
    def ema_kimg_effective(self) -> float:
        return self.ema_kimg if self.ema_kimg is not None else 10.0 * self.batch / 32


def build_networks(cfg: TrainConfig) -> tuple[torch.nn.Module, torch.nn.Module]:
    """`(G, D)` from `clip2gan.stylegan2` for this config, in training mode, on CPU."""
    from clip2gan.stylegan2 import Discriminator, Generator

    G = Generator(z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, img_resolution=cfg.resolution, img_channels=3,
                  mapping_kwargs=dict(num_layers=cfg.mapping_layers),
                  synthesis_kwargs=dict(channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=0))
    D = Discriminator(c_dim=cfg.c_dim, img_resolution=cfg.resolution, img_channels=3, architecture=cfg.d_architecture,
                      channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=0,
                      epilogue_kwargs=dict(mbstd_group_size=cfg.mbstd_group))
    return G.train(), D.train()


# ----------------------------------------------------------------------------------------------
# The recipe's pieces (each tested on its own)


def r1_penalty(D: torch.nn.Module, real: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """R1: `‖∇ₓ Σᵢ D(xᵢ, cᵢ)‖²` per sample `[N]`, differentiable (create_graph), and the logits `[N, 1]`.

    The gradient of the *summed* logits w.r.t. the real batch, as NVIDIA computes it (with
    minibatch-std the samples of a group interact, and this is that total derivative).
    """
    real = real.detach().requires_grad_(True)
    logits = D(real, c)
    (grad,) = torch.autograd.grad(outputs=[logits.sum()], inputs=[real], create_graph=True, only_inputs=True)
    return grad.square().sum(dim=[1, 2, 3]), logits


def ema_beta(cur_nimg: int, batch: int, ema_kimg: float, ema_rampup: Optional[float]) -> float:
    """The EMA decay for one step: `0.5 ** (batch / ema_nimg)`, ema_nimg = min(ema_kimg·1000, nimg·rampup)."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch / max(ema_nimg, 1e-8))


@torch.no_grad()
def update_ema(G_ema: torch.nn.Module, G: torch.nn.Module, beta: float) -> None:
    """`p_ema ← p + β (p_ema − p)` for parameters; buffers (w_avg, noise_const) copied from G."""
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.copy_(p.lerp(p_ema, beta))
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def _lazy_adam(params, lr: float, betas: tuple[float, float], interval: Optional[int]) -> torch.optim.Adam:
    # Lazy regularisation (StyleGAN2 App. B): the regulariser runs every `interval` steps with gain
    # `interval`, so the optimiser sees interval+1 updates per interval main steps; rescale lr and betas.
    ratio = interval / (interval + 1) if interval else 1.0
    return torch.optim.Adam(params, lr=lr * ratio, betas=(float(betas[0] ** ratio), float(betas[1] ** ratio)), eps=1e-8)


# ----------------------------------------------------------------------------------------------
# Checkpoints


def _tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        h.update(k.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _save_checked(tensors: dict[str, torch.Tensor], path: Path, config: dict[str, Any], half: bool = False,
                  write_json: bool = True) -> Path:
    """`save_safetensors` plus a sha256 of the stored tensors in the config (checked on load)."""
    stored = {k: (v.detach().cpu().half() if half and v.is_floating_point() else v.detach().cpu()).contiguous()
              for k, v in tensors.items()}
    config = dict(config, tensor_sha256=_tensor_digest(stored))
    return save_safetensors(stored, path, config, half=False, write_json=write_json)


def _load_checked(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state, config = load_safetensors(path)
    want = config.get("tensor_sha256")
    if want is None:
        raise CorruptCheckpoint(f"{path} has no tensor checksum: not a complete checkpoint of this trainer")
    if _tensor_digest(state) != want:
        raise CorruptCheckpoint(f"{path}: tensor checksum mismatch (the file is damaged); delete it")
    return state, config


def _optimizer_tensors(opt: torch.optim.Optimizer, prefix: str) -> dict[str, torch.Tensor]:
    out = {}
    for idx, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            out[f"{prefix}.{idx}.{k}"] = v if isinstance(v, torch.Tensor) else torch.tensor(v)
    return out


def _load_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, v in tensors.items():
        if key.startswith(prefix + "."):
            idx, name = key[len(prefix) + 1:].split(".", 1)
            state.setdefault(int(idx), {})[name] = v.clone()
    sd = opt.state_dict()  # current hyper-parameters (possibly changed on resume) are kept
    sd["state"] = state
    opt.load_state_dict(sd)


def _rng_to_json(rng: np.random.Generator) -> dict[str, Any]:
    return rng.bit_generator.state


def _rng_from_json(state: dict[str, Any]) -> np.random.Generator:
    bitgen = getattr(np.random, state["bit_generator"])()
    bitgen.state = state
    return np.random.Generator(bitgen)


def list_checkpoints(run_dir: str | os.PathLike) -> list[tuple[int, Path]]:
    """`[(step, path)]` of the run's checkpoints, newest first."""
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _CKPT_RE.match(p.name))]
    return sorted(found, reverse=True)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """`(tensors, config)` of one training checkpoint; `CorruptCheckpoint` with a clear message if
    the file is truncated, not safetensors, or its tensors do not match their checksum."""
    path = Path(path)
    state, config = _load_checked(path)
    if config.get("format") != FORMAT:
        raise CorruptCheckpoint(f"{path} is not a {FORMAT} training checkpoint (format {config.get('format')!r})")
    return state, config


def latest_checkpoint(run_dir: str | os.PathLike, log: Any = None) -> Optional[tuple[Path, dict, dict]]:
    """The newest checkpoint of `run_dir` that loads and verifies, as `(path, tensors, config)`.

    Damaged ones are reported (a warning and a `log` event) and skipped, falling back to the previous
    good one; None if the run has no checkpoint; `CorruptCheckpoint` if every one is damaged.
    """
    found = list_checkpoints(run_dir)
    errors = []
    for _step, path in found:
        try:
            state, config = load_checkpoint(path)
            if errors:
                msg = f"using the previous good checkpoint {path.name}; damaged: " + "; ".join(errors)
                warnings.warn(msg)
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
# Images


def _to_uint8_grid(images: torch.Tensor, cols: int, scale: int = 2) -> np.ndarray:
    """images [N, 3, H, W] in [-1, 1] -> one uint8 RGB grid [rows*H*scale, cols*W*scale, 3]."""
    n, ch, h, w = images.shape
    rows = math.ceil(n / cols)
    x = ((images.detach().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    if rows * cols > n:
        x = torch.cat([x, torch.full((rows * cols - n, ch, h, w), 255, dtype=torch.uint8)])
    x = x.reshape(rows, cols, ch, h, w).permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, ch)
    if scale > 1:
        x = x.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    return x.numpy()


def save_grid(images: torch.Tensor, path: str | os.PathLike, cols: int, scale: int = 2) -> Path:
    """Write images [N, 3, H, W] in [-1, 1] as a PNG grid (atomically)."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(_to_uint8_grid(images, cols, scale)).save(tmp, format="PNG")
    return path


# ----------------------------------------------------------------------------------------------
# The trainer


class _Stop(Exception):
    pass


class Trainer:
    """One StyleGAN2 run in `out_dir` (see the module docstring). `Trainer(out_dir, cfg).run(...)`."""

    GRID_ROWS = 8
    GRID_COLS = 8

    def __init__(self, out_dir: str | os.PathLike, cfg: Optional[TrainConfig] = None, resume: bool = True,
                 overrides: Optional[dict[str, Any]] = None, device: str | torch.device = "cpu"):
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
            saved = TrainConfig.from_dict(config["train_config"])
            for k, v in overrides.items():
                if k in TrainConfig.ARCH_FIELDS and getattr(saved, k) != v:
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
            base = cfg or TrainConfig()
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
        torch.manual_seed(cfg.seed)
        self.G, self.D = build_networks(cfg)
        self.G.to(self.device)
        self.D.to(self.device)
        self.G.requires_grad_(False)
        self.D.requires_grad_(False)
        self.G_ema = copy.deepcopy(self.G).eval()
        betas = (cfg.beta1, cfg.beta2)
        self.opt_G = _lazy_adam(self.G.parameters(), cfg.lr_G, betas, cfg.G_reg_interval if cfg.pl_weight > 0 else None)
        self.opt_D = _lazy_adam(self.D.parameters(), cfg.lr_D, betas, cfg.D_reg_interval if cfg.r1_gamma > 0 else None)
        # auxiliary attribute head on D's features at cfg.d_aux_tap (trained only when cfg.d_aux_weight > 0);
        # its own generator so that creating it leaves the run's random streams untouched
        self._d_features: Optional[torch.Tensor] = None
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
        self.aux = torch.nn.Linear(self._d_features.shape[1], C_DIM).to(self.device).requires_grad_(False)
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
        from clip2gan.toy.faces import render_batch, sample_attributes

        self.grid_attrs = [sample_attributes(grid_rng) for _ in range(self.GRID_ROWS)]
        gen = torch.Generator().manual_seed(cfg.seed + 7)
        self.grid_z = torch.randn(self.GRID_ROWS * self.GRID_COLS, cfg.z_dim, generator=gen)
        self.grid_c = attributes_to_c([a for a in self.grid_attrs for _ in range(self.GRID_COLS)])
        reals = self.out_dir / "grids" / "reals.png"
        if not reals.exists():
            attrs = [a for a in self.grid_attrs for _ in range(self.GRID_COLS)]
            save_grid(render_batch(attrs, np.random.default_rng([cfg.seed, 8]), cfg.resolution), reals, self.GRID_COLS)

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
        t.update(_optimizer_tensors(self.opt_G, "opt_G"))
        t.update(_optimizer_tensors(self.opt_D, "opt_D"))
        t.update({f"aux.{k}": v for k, v in self.aux.state_dict().items()})
        t.update(_optimizer_tensors(self.opt_aux, "opt_aux"))
        t["loss.pl_mean"] = self.pl_mean.detach().cpu().reshape([])
        t["rng.torch"] = torch.get_rng_state()
        if self.device.type == "cuda":
            t["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        return t

    def _restore(self, tensors: dict[str, torch.Tensor], config: dict[str, Any]) -> None:
        for name, net in (("G", self.G), ("D", self.D), ("G_ema", self.G_ema)):
            sd = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}
            net.load_state_dict(sd, strict=True)
        _load_optimizer(self.opt_G, tensors, "opt_G")
        _load_optimizer(self.opt_D, tensors, "opt_D")
        # a checkpoint from before the head, or with the head on other features, keeps the fresh head
        if "aux.weight" in tensors and tensors["aux.weight"].shape == self.aux.weight.shape:
            self.aux.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("aux.")})
            _load_optimizer(self.opt_aux, tensors, "opt_aux")
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
        _save_checked(self.state_tensors(), path, config)
        for _step, old in list_checkpoints(self.out_dir)[keep:]:
            old.unlink(missing_ok=True)
            old.with_suffix(".json").unlink(missing_ok=True)
        return path

    def save_snapshot(self) -> Path:
        """G_ema (fp16) for the bar's curve: `snapshots/G_ema-<step>.safetensors` (kimg in its metadata)."""
        path = self.out_dir / "snapshots" / f"G_ema-{self.step:08d}.safetensors"
        export_generator(self.G_ema, path, extra={"step": self.step, "nimg": self.nimg,
                                                   "cpu_seconds": self._cpu_now()}, write_json=False)
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
        from clip2gan.toy.faces import render_batch, sample_attributes

        attrs = [sample_attributes(self.data_rng) for _ in range(self.cfg.batch)]
        img = render_batch(attrs, self.data_rng, self.cfg.resolution)
        return img.to(self.device), self._c(attrs)

    def _c(self, attrs: list[dict[str, Any]]) -> torch.Tensor:
        if not self.cfg.conditional:
            return torch.zeros(len(attrs), 0, device=self.device)
        return attributes_to_c(attrs).to(self.device)

    def _gen_inputs(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        from clip2gan.toy.faces import sample_attributes

        z = torch.randn(n, self.cfg.z_dim).to(self.device)
        return z, self._c([sample_attributes(self.data_rng) for _ in range(n)])

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
            aux_G = attribute_ce(self.aux(self._d_features), gc)
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
            aux_D = attribute_ce(self.aux(self._d_features), real_c)
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
        return save_grid(imgs, self.out_dir / "grids" / f"fakes-{self.step:08d}.png", self.GRID_COLS)

    def run(self, steps: Optional[int] = None, kimg: Optional[float] = None, minutes: Optional[float] = None,
            checkpoint_minutes: float = 5.0, checkpoint_every: Optional[int] = None, grid_every: int = 500,
            snapshot_kimg: Optional[float] = 16.0, eval_snapshots: bool = True, eval_n: int = 1000,
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
            from tqdm.auto import tqdm

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
            clf = _classifier()
        except Exception as err:  # not trained yet: say so once
            if not getattr(self, "_warned_clf", False):
                self.log({"kind": "event", "event": "no_classifier", "message": str(err)[:300]})
                self._warned_clf = True
            return
        with torch.random.fork_rng(devices=[]):
            G = load_generator(snap)
            res = evaluate(G, n=n, classifier=clf)
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
        self.fd: Optional[int] = None

    def acquire(self) -> "_RunLock":
        try:
            import fcntl
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
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def train(out_dir: str | os.PathLike = DEFAULT_RUN, steps: Optional[int] = None, kimg: Optional[float] = None,
          batch: Optional[int] = None, resume: bool = True, cfg: Optional[TrainConfig] = None,
          threads: Optional[int] = 1, device: str = "cpu", **run_kwargs: Any) -> Trainer:
    """Train (or continue) the toy StyleGAN2 in `out_dir`; returns the `Trainer` (00_setup.ipynb).

    steps/kimg: the total length of the run (not of this call); resume: continue from the newest good
    checkpoint. `cfg` fields (or `batch`) override a resumed run's loss/schedule settings; the
    architecture of an existing run cannot change. Other keyword arguments go to `Trainer.run`.
    """
    if threads:
        torch.set_num_threads(int(threads))
    overrides = {}
    if cfg is not None:
        overrides = {k: v for k, v in cfg.to_dict().items() if v != getattr(TrainConfig(), k)}
    if batch is not None:
        overrides["batch"] = batch
    trainer = Trainer(out_dir, cfg=cfg, resume=resume, overrides=overrides, device=device)
    history = trainer.run(steps=steps, kimg=kimg, **run_kwargs)
    trainer.history = history
    return trainer


# ----------------------------------------------------------------------------------------------
# Export


def export_generator(G: torch.nn.Module, path: str | os.PathLike = DEFAULT_EXPORT, extra: Optional[dict] = None,
                     write_json: bool = True) -> Path:
    """Write a generator alone, fp16, as safetensors + JSON config (00_setup.ipynb).

    The format is `clip2gan.stylegan2.save`'s (so `clip2gan.stylegan2.load` and `load_generator` both
    read it): `class`, `init_kwargs` (the Generator's constructor arguments), plus the label layout
    `c_layout` (attribute -> values, the order of the one-hot blocks of c), a checksum of the tensors
    and whatever `extra` holds (training step, kimg, CPU time).
    """
    config = {
        "format": EXPORT_FORMAT,
        "version": 1,
        "class": "Generator",
        "init_kwargs": json.loads(json.dumps(G.init_kwargs)),
        "c_layout": {name: list(values) for name, values in _attributes().items()} if G.c_dim else None,
        "dtype": "float16",
        **(extra or {}),
    }
    return _save_checked(G.state_dict(), Path(path), config, half=True, write_json=write_json)


def load_generator(path: str | os.PathLike = DEFAULT_EXPORT, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A Generator written by `export_generator` (fp16 storage -> float32 module, eval mode), checksum
    verified; its config is attached as `G.meta`."""
    from clip2gan.stylegan2 import Generator

    state, config = _load_checked(Path(path))
    if config.get("format") not in (EXPORT_FORMAT, _LEGACY_EXPORT_FORMAT) or config.get("class") != "Generator":
        raise CorruptCheckpoint(f"{path} is not an exported generator (format {config.get('format')!r})")
    G = Generator(**config["init_kwargs"])
    G.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    G.meta = config
    return G.to(device).eval()


# ----------------------------------------------------------------------------------------------
# Evaluation: the bar of issue #4


_CLF = None


def _classifier():
    global _CLF
    if _CLF is None:
        from clip2gan.toy.faces import AttributeClassifier

        _CLF = AttributeClassifier.from_pretrained()
    return _CLF


def _frechet(feat1: torch.Tensor, feat2: torch.Tensor) -> float:
    from clip2gan.evaluation.metrics import feature_statistics, frechet_distance

    return frechet_distance(*feature_statistics(feat1), *feature_statistics(feat2))


def _frequencies(proba: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    """Argmax frequency of each value; hair colour only over faces not read as bald."""
    attributes = _attributes()
    idx = {a: p.argmax(1) for a, p in proba.items()}
    haired = idx["hair_length"] != attributes["hair_length"].index("bald")
    out = {}
    for a, values in attributes.items():
        sel = idx[a][haired] if a == "hair_color" else idx[a]
        counts = torch.bincount(sel, minlength=len(values)).double()
        out[a] = (counts / max(len(sel), 1)).tolist()
    return out


def _confident(proba: dict[str, torch.Tensor], threshold: float = 0.9) -> torch.Tensor:
    """[N] bool: max probability ≥ threshold for every attribute (hair colour skipped where read bald)."""
    attributes = _attributes()
    bald = proba["hair_length"].argmax(1) == attributes["hair_length"].index("bald")
    ok = torch.ones(len(bald), dtype=torch.bool)
    for a, p in proba.items():
        conf = p.max(1).values >= threshold
        if a == "hair_color":
            conf = conf | bald
        ok &= conf
    return ok


@torch.no_grad()
def _sample(G: torch.nn.Module, n: int, seed: int, truncation_psi: float = 1.0, batch: int = 250):
    rng = np.random.default_rng([seed, 11])
    c, attrs = sample_c(n, rng)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, G.z_dim, generator=gen)
    dev = next(G.parameters()).device
    imgs = []
    for i in range(0, n, batch):
        ci = c[i:i + batch].to(dev) if G.c_dim else torch.zeros(len(z[i:i + batch]), 0, device=dev)
        imgs.append(G(z[i:i + batch].to(dev), ci, truncation_psi=truncation_psi, noise_mode="const").cpu())
    return torch.cat(imgs).clamp(-1, 1), attrs


_DATA_CACHE: dict[tuple, Any] = {}


def _data_reference(classifier, n: int, seed: int):
    """Classifier reading of `n` held-out renders: (frequencies, confident fraction, features)."""
    key = (id(classifier), n, seed)
    if key not in _DATA_CACHE:
        from clip2gan.toy.faces import EVAL_SEED, render_labeled_batch

        images, _labels, _attrs = render_labeled_batch(n, np.random.default_rng([EVAL_SEED, seed]))
        proba = classifier.predict_proba(images)
        _DATA_CACHE[key] = (_frequencies(proba), float(_confident(proba).float().mean()), classifier.features(images))
    return _DATA_CACHE[key]


def evaluate(G: torch.nn.Module, n: int = 1000, seed: int = 0, truncation_psi: float = 1.0, classifier=None,
             n_fid: int = 2000) -> dict[str, Any]:
    """Issue #4's bar for a generator, read by the attribute classifier (00_setup.ipynb).

    Samples `n` images at `truncation_psi` with labels c drawn from the data distribution and returns
    `confident` (fraction where every attribute's max probability is ≥ 0.9, hair colour not counted
    where the classifier reads bald; bar ≥ 0.85), `freq_max_dev` (largest |sample − data| frequency
    gap over all attribute values, in points; bar ≤ 5) with per-value details, `cond_accuracy` (how
    often the classifier reads back each conditioned value; `cond_all` = every attribute right,
    `cond_mean` = the mean over attributes) and
    `fid` (Fréchet distance in the classifier's feature space, `n_fid` samples vs `n_fid` renders).
    """
    clf = classifier if classifier is not None else _classifier()
    was_training = G.training
    G.eval()
    try:
        imgs, attrs = _sample(G, max(n, n_fid), seed, truncation_psi)
    finally:
        G.train(was_training)
    proba_all = clf.predict_proba(imgs)
    proba = {a: p[:n] for a, p in proba_all.items()}
    attributes = _attributes()
    data_freq, data_conf, data_feat = _data_reference(clf, max(n, n_fid), seed)
    freq = _frequencies(proba)
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
    conf = _confident(proba)
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


def _read_log(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "log.jsonl"
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
    """Evaluate every snapshot of a run not yet evaluated (appending to its log.jsonl), then plot the curve."""
    run_dir = Path(run_dir)
    done = {r.get("snapshot") for r in _read_log(run_dir) if r.get("kind") == "eval" and r.get("n") == n}
    snaps = sorted((p for p in (run_dir / "snapshots").glob("G_ema-*.safetensors")), key=lambda p: p.name)
    out = []
    for snap in snaps:
        if snap.name in done:
            continue
        G = load_generator(snap)
        res = evaluate(G, n=n, seed=seed)
        rec = {"kind": "eval", "snapshot": snap.name, "step": G.meta.get("step"), "kimg": G.meta.get("nimg", 0) / 1000,
               "cpu_seconds": G.meta.get("cpu_seconds"), **res}
        with open(run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **rec}) + "\n")
        print(_bar_line(rec), flush=True)
        out.append(rec)
    plot_curve(run_dir)
    return out


def _bar_line(r: dict[str, Any]) -> str:
    return (f"{r.get('snapshot', '')} kimg {r.get('kimg', 0):.1f}: confident {100 * r['confident']:.1f}% "
            f"(bar ≥ 85), worst frequency gap {r['freq_max_dev']:.1f} pts on {r['freq_worst_attribute']} (bar ≤ 5), "
            f"conditioning accuracy all-attributes {100 * r['cond_all']:.1f}%, FID(classifier) {r['fid']:.2f}")


def eval_records(run_dir: str | os.PathLike = DEFAULT_RUN) -> list[dict[str, Any]]:
    """The run's evaluations, one per snapshot (the latest record wins), ordered by kimg."""
    latest: dict[str, dict] = {}
    for r in _read_log(Path(run_dir)):
        if r.get("kind") == "eval":
            latest[r.get("snapshot")] = r
    return sorted(latest.values(), key=lambda r: r.get("kimg", 0))


def _event_kimg(rows: list[dict[str, Any]], i: int) -> Optional[float]:
    """The kimg at which the start/resume event `rows[i]` of a run's log happened (older logs did not
    record it: then the kimg of the first training row after the event)."""
    r = rows[i]
    if "kimg" in r:
        return float(r["kimg"])
    if r.get("event") == "start":
        return 0.0
    return next((float(x["kimg"]) for x in rows[i + 1:] if x.get("kind") == "train"), None)


def _setting_changes(run_dir: str | os.PathLike) -> list[tuple[float, str]]:
    """(kimg, 'name a→b, ...') for each resume that changed a training setting, from the run's log."""
    rows = _read_log(Path(run_dir))
    out = []
    for i, r in enumerate(rows):
        if r.get("event") == "resume" and r.get("changed"):
            kimg = _event_kimg(rows, i)
            if kimg is not None:
                out.append((float(kimg), ", ".join(f"{k} {a}→{b}" for k, (a, b) in r["changed"].items())))
    return out


def plot_curve(run_dir: str | os.PathLike = DEFAULT_RUN) -> Optional[Path]:
    """`bar_curve.png`: confident fraction, worst frequency gap, conditioning accuracy and FID vs kimg."""
    recs = eval_records(run_dir)
    if not recs:
        return None
    import matplotlib

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
    changes = _setting_changes(run_dir)
    for ax in axes:
        ax.set_xlabel("kimg")
        ax.grid(alpha=0.3)
        for kimg, _text in changes:
            ax.axvline(kimg, color="tab:red", ls=":", lw=1)
    for kimg, text in changes:  # what changed on resume, written once along the first panel's top
        axes[0].text(kimg, 99, " " + text, rotation=90, va="top", ha="left", fontsize=6, color="tab:red")
    fig.suptitle(f"toy StyleGAN2: issue #4 bar over training ({Path(run_dir).name}; red: settings changed on resume)")
    fig.tight_layout()
    path = Path(run_dir) / "bar_curve.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------------------------
# Command line


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=str(DEFAULT_RUN), help="run folder (checkpoints, grids, log.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue from the newest good checkpoint in --out")
    p.add_argument("--kimg", type=float, default=None, help="total length in thousands of real images")
    p.add_argument("--steps", type=int, default=None, help="total length in steps (instead of --kimg)")
    p.add_argument("--minutes", type=float, default=None, help="stop this call after so many minutes")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the CPUs are shared)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--grid-every", type=int, default=500, help="steps between sample grids")
    p.add_argument("--snapshot-kimg", type=float, default=16.0, help="kimg between G_ema snapshots (+ evaluation)")
    p.add_argument("--no-eval", action="store_true", help="do not evaluate snapshots during training")
    p.add_argument("--no-progress", action="store_true")
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        if f.name == "ARCH_FIELDS":
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            p.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=None,
                           help=f"(default {getattr(defaults, f.name)})")
        else:
            kind = {"int": int, "float": float, "str": str, "Optional[float]": float}.get(str(f.type), str)
            p.add_argument(flag, type=kind, default=None, help=f"(default {getattr(defaults, f.name)})")
    p.add_argument("--style-mixing", dest="style_mixing_prob", type=float, default=None, help=argparse.SUPPRESS)


def device_history(run: str | Path) -> list[dict[str, Any]]:
    """Which device trained which stretch of a run, from its log's start/resume events (for the manifest).

    Returns [{'from_kimg', 'device'}] in order; events written before the log recorded devices
    say 'not recorded'. Consecutive stretches on the same device are merged.
    """
    segments: list[dict[str, Any]] = []
    rows = _read_log(Path(run))
    for i, r in enumerate(rows):
        if r.get("kind") != "event" or r.get("event") not in ("start", "resume"):
            continue
        device = r.get("device", "not recorded")
        if segments and segments[-1]["device"] == device:
            continue
        kimg = _event_kimg(rows, i)
        segments.append({"from_kimg": None if kimg is None else round(kimg, 1), "device": device})
    return segments


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m clip2gan.toy.stylegan2_training [train] --out DIR --resume | export | eval` (00_setup.ipynb)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        argv = ["train"] + argv
    parser = argparse.ArgumentParser(prog="python -m clip2gan.toy.stylegan2_training",
                                     description="Train, export and evaluate the toy world's StyleGAN2.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    _add_train_args(sub.add_parser("train", help="train or continue a run"))
    pe = sub.add_parser("export", help="write the run's G_ema (fp16) to data/ and optionally the manifest")
    pe.add_argument("--run", default=str(DEFAULT_RUN))
    pe.add_argument("--out", default=str(DEFAULT_EXPORT))
    pe.add_argument("--manifest", action="store_true", help="also evaluate and write data/MANIFEST.json's entry")
    pe.add_argument("--command", default=None, help="the training command to record in the manifest")
    pe.add_argument("--history", default=None, help="how the run got here (changes made on resume), for the manifest")
    pe.add_argument("--snapshot", type=int, default=None, metavar="STEP",
                    help="export the G_ema snapshot of that step (as the run evaluated it) instead of the newest checkpoint")
    pv = sub.add_parser("eval", help="the issue #4 bar for a run's newest checkpoint, a weights file, or all snapshots")
    pv.add_argument("--run", default=str(DEFAULT_RUN))
    pv.add_argument("--weights", default=None, help="an exported generator instead of the run's newest checkpoint")
    pv.add_argument("--curve", action="store_true", help="evaluate every snapshot not yet evaluated, plot the curve")
    pv.add_argument("--n", type=int, default=1000)
    pv.add_argument("--seed", type=int, default=0)
    pv.add_argument("--truncation-psi", type=float, default=1.0)
    pv.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)

    if args.cmd == "train":
        torch.set_num_threads(args.threads)
        overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
                     if f.name != "ARCH_FIELDS" and getattr(args, f.name, None) is not None}
        trainer = Trainer(args.out, resume=args.resume, overrides=overrides, device=args.device)
        trainer.run(steps=args.steps, kimg=args.kimg, minutes=args.minutes, checkpoint_minutes=args.checkpoint_minutes,
                    grid_every=args.grid_every, snapshot_kimg=args.snapshot_kimg, eval_snapshots=not args.no_eval,
                    progress=not args.no_progress)
        return 0
    if args.cmd == "export":
        found = latest_checkpoint(args.run)
        if found is None:
            parser.error(f"{args.run} has no checkpoint to export")
        path, tensors, config = found
        log = _read_log(Path(args.run))
        if args.snapshot is not None:  # a G_ema snapshot the run evaluated, exactly as evaluated
            snap = Path(args.run) / "snapshots" / f"G_ema-{args.snapshot:08d}.safetensors"
            if not snap.is_file():
                have = sorted(p.name for p in (Path(args.run) / "snapshots").glob("G_ema-*.safetensors"))
                parser.error(f"{snap} does not exist; snapshots: {', '.join(have[-5:]) or 'none'}")
            G = load_generator(snap)
            step, nimg, cpu_seconds = G.meta["step"], G.meta["nimg"], G.meta.get("cpu_seconds")
            wall_seconds = max((r["wall_seconds"] for r in log if r.get("kind") == "train" and "wall_seconds" in r
                                and r.get("step", 0) <= step), default=None)
            source = {"from_snapshot": snap.name}
        else:
            G = _generator_from_checkpoint(tensors, config, "G_ema")
            step, nimg = config["step"], config["nimg"]
            cpu_seconds, wall_seconds = config.get("cpu_seconds"), config.get("wall_seconds")
            source = {"from_checkpoint": path.name}
        extra = {"step": step, "kimg": nimg / 1000, "cpu_seconds": cpu_seconds,
                 "train_config": config["train_config"], **source}
        out = export_generator(G, args.out, extra=extra)
        print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) from {next(iter(source.values()))}", flush=True)
        if args.manifest:
            from clip2gan.hub import write_manifest_entry

            resumes = [{k: r.get(k) for k in ("time", "step", "changed")} for r in log
                       if r.get("event") == "resume" and r.get("changed") and r.get("step", 0) <= step]
            segments = [seg for seg in device_history(args.run) if (seg["from_kimg"] or 0) <= nimg / 1000]
            info: dict[str, Any] = {"train_cpu_seconds": cpu_seconds, "history": args.history,
                                    "changes_on_resume": resumes, "device_history": segments,
                                    "device": "; ".join(dict.fromkeys(seg["device"] for seg in segments)),
                                    "train_wall_seconds": wall_seconds, "kimg": nimg / 1000,
                                    "step": step, "train_config": config["train_config"], **source}
            try:
                res = evaluate(load_generator(out), n=1000, seed=0)
                info["metrics"] = {k: res[k] for k in ("confident", "confident_data", "freq_max_dev",
                                                       "freq_worst_attribute", "cond_all", "cond_mean", "cond_accuracy", "fid",
                                                       "bar_met")}
                print(_bar_line({"snapshot": out.name, "kimg": nimg / 1000, **res}), flush=True)
            except Exception as err:  # the classifier may not exist yet
                info["metrics"] = f"not measured: {err}"
            command = args.command or (f"python -m clip2gan.toy.stylegan2_training --out {args.run} --resume && "
                                       f"python -m clip2gan.toy.stylegan2_training export --run {args.run}")
            write_manifest_entry(out, command, **info)
        return 0
    if args.cmd == "eval":
        torch.set_num_threads(args.threads)
        if args.curve:
            evaluate_run(args.run, n=args.n, seed=args.seed)
            for r in eval_records(args.run):
                print(_bar_line(r))
            return 0
        if args.weights:
            G, name = load_generator(args.weights), Path(args.weights).name
            kimg = G.meta.get("kimg", G.meta.get("nimg", 0) / 1000)
        else:
            found = latest_checkpoint(args.run)
            if found is None:
                parser.error(f"{args.run} has no checkpoint")
            path, tensors, config = found
            G, name, kimg = _generator_from_checkpoint(tensors, config, "G_ema"), path.name, config["nimg"] / 1000
        res = evaluate(G, n=args.n, seed=args.seed, truncation_psi=args.truncation_psi)
        print(_bar_line({"snapshot": name, "kimg": kimg or 0, **res}))
        print(json.dumps({k: res[k] for k in ("cond_accuracy", "freq_dev")}, indent=1))
        return 0
    return 2


def _generator_from_checkpoint(tensors: dict[str, torch.Tensor], config: dict[str, Any], name: str = "G_ema"):
    from clip2gan.stylegan2 import Generator

    G = Generator(**config["G_kwargs"])
    G.load_state_dict({k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + ".")}, strict=True)
    return G.eval()


if __name__ == "__main__":
    sys.exit(main())
