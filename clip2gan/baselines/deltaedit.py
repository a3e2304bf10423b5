"""DeltaEdit: text-free training of a map from CLIP feature differences to latent differences (10_comparisons.ipynb).

Lyu, Lin, Li, He, Dong, Tan, "DeltaEdit: Exploring Text-free Training for Text-Driven Image
Manipulation", CVPR 2023. The paper's observation: CLIP image features and text features sit in
different regions (the modality gap), but *differences* of image features and differences of text
features are well aligned. So a network trained on image pairs alone can be driven by text.

Training, on pairs (x₁, x₂) of images with CLIP features f_k = C_img(x_k) and latent codes w_k:

    Δf = (f₂ − f₁) / ‖f₂ − f₁‖,      Δw = w₂ − w₁,      Δŵ = N(w₁, f₁, Δf),
    L = λ_rec · mean (Δŵ − Δw)²  +  λ_cos · (1 − cos(Δŵ, Δw))          (λ_rec = λ_cos = 1),

the cosine taken over each whole flattened delta and averaged over the batch (`delta_loss`). The
reconstruction term is the mean squared error, as in the authors' training code (`torch.nn.MSELoss`,
which the code names an L2 loss); `rec_loss='l1'` swaps in the mean absolute error for readers who
take the term as an L1 distance. Inference replaces the image delta by the text delta

    Δt = normalise(C_text(t) − C_text(t_neutral)),    w' = w + β · N(w, C_img(x), Δt),

with w the inversion of x and t_neutral a neutral prompt (theirs: 'face'; here the world's, 'a person').

The Delta Mapper N (`DeltaMapper`) has, per level — coarse, medium, fine — a *style module* (an MLP
on the source code's rows of that level), a *condition module* (an MLP on [f₁, Δf]) and a *fusion
module* (an MLP on both outputs, concatenated) that writes that level's part of Δŵ. Each MLP is 4
equalised-learning-rate layers (lr multiplier 0.01, leaky ReLU; style and condition modules start
with a pixel norm), trained with Adam at lr 0.5, batch 64, as the authors' code.

How this rebuild departs from the paper:

* w+ instead of StyleSpace. DeltaEdit predicts Δs in StyleGAN2's StyleSpace (9,088 channels for
  FFHQ 1024): coarse = 3 × 512 style vectors, medium = 4 × 512, fine = the remaining 2,464 channels
  flattened. Here the codes are G's w+ rows, split by `clip2gan.edit.layer_groups(num_ws)` (toy: rows
  0-1 coarse, 2-5 medium, 6-7 fine): the coarse and medium modules run row by row, as theirs run
  over style vectors, and the fine module reads its rows flattened, as theirs reads its channels.
  MLP widths follow the level (w_dim per row, 2 · w_dim for the toy fine level) instead of 512/2,464.
* The last fusion layer is linear (theirs ends in a leaky ReLU, which makes negative deltas five
  times harder to write than positive ones; a delta has no preferred sign).
* Data. DeltaEdit trains on 200,000 samples of G (codes from z) and 58,000 FFHQ photographs inverted
  by e4e, pairing each with a random other sample. Here the data are toy renders
  (`clip2gan.toy.faces.ToyFaces`) with CLIP2GAN's own inversions w = M(C_img(x)) (the toy world has no
  e4e; both mirror "real images + an encoder's inversions"), computed once, and each image is paired
  with its neighbour in a shuffled batch (no self-pairs). The run is ~40× shorter: 5,000 steps of 64
  on 16,384 codes (minutes on one CPU thread; `DeltaEditConfig`) against their ~200,000 steps of 64
  (50 passes over 258,000 codes).
* At inference the authors zero the channels of Δs whose relevance to Δt (StyleCLIP's global-direction
  relevance matrix of StyleSpace) is below a threshold. That matrix exists only in StyleSpace; this
  rebuild applies the predicted Δw as it is.
* Edits start from CLIP2GAN's inversion M(C_img(x)) (DeltaEdit: e4e), so every editing baseline and
  CLIP2GAN edit the same code; β scales the predicted delta (theirs applies it at strength 1).

Command line (one run; every field of `DeltaEditConfig` is a flag)::

    python -m clip2gan.baselines.deltaedit --out runs/deltaedit-s0 --seed 0
    python -m clip2gan.baselines.deltaedit --out runs/deltaedit-s0 --resume     # continue a killed run

A run folder holds `config.json`, `log.jsonl`, `checkpoint.safetensors` (network, Adam, step; written
atomically every `--ckpt-minutes` and at the end) and `delta.safetensors` + `delta.json` (the network
with its config and the command that made it), which `DeltaEditor.from_checkpoint` loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from clip2gan.checkpoint import CorruptCheckpoint, atomic_write_text, load_safetensors, load_state, save_safetensors, save_state
from clip2gan.cli import add_config_args, config_from_args, option
from clip2gan.edit import check_beta, check_text, default_neutral, layer_groups
from clip2gan.images import prepare_images
from clip2gan.runtime import pick_device
from clip2gan.stylegan2.networks import FullyConnectedLayer
from clip2gan.stylegan2.ops import normalize_2nd_moment

if TYPE_CHECKING:
    from clip2gan.model import CLIP2GAN

__all__ = ["DELTA_FORMAT", "DeltaEditConfig", "DeltaMapper", "pair_within_batch", "delta_loss", "text_delta",
           "encode_training_set", "DeltaEditTrainer", "DeltaEditor", "main"]

DELTA_FORMAT = "clip2gan.deltaedit"
LEVELS = ("coarse", "middle", "fine")  # DeltaEdit's coarse / medium / fine; `layer_groups` names the middle 'middle'
PER_ROW = ("coarse", "middle")  # levels whose modules run row by row (DeltaEdit: per style vector)


# -------------------------------------------------------------------------------------------------
# the Delta Mapper


class _MLP(nn.Module):
    """DeltaEdit's building block: [pixel norm] + `layers` equalised-lr layers with leaky ReLU (the last
    one linear if `last_linear`). Works on the last dimension of any `[..., in_dim]`."""

    def __init__(self, in_dim: int, out_dim: int, layers: int, lr_multiplier: float, norm: bool = True,
                 last_linear: bool = False):
        super().__init__()
        self.norm = norm
        widths = [in_dim] + [out_dim] * layers
        self.fcs = nn.ModuleList(
            FullyConnectedLayer(widths[i], widths[i + 1], lr_multiplier=lr_multiplier,
                                activation="linear" if (last_linear and i == layers - 1) else "lrelu")
            for i in range(layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        if self.norm:
            x = normalize_2nd_moment(x)
        for fc in self.fcs:
            x = fc(x)
        return x.reshape(*shape[:-1], x.shape[-1])


class DeltaMapper(nn.Module):
    """N(w₁, f₁, Δf) → Δŵ: DeltaEdit's Delta Mapper in w+ (the module docstring has the layout) (10_comparisons.ipynb).

    clip_dim: D of the CLIP features; num_ws, w_dim: G's w+ shape; layers: per MLP (DeltaEdit: 4);
    lr_multiplier: equalised-lr multiplier (DeltaEdit: 0.01). forward(ws `[N, num_ws, w_dim]`,
    features `[N, D]`, deltas `[N, D]`) → `[N, num_ws, w_dim]`.
    """

    def __init__(self, clip_dim: int, num_ws: int, w_dim: int, layers: int = 4, lr_multiplier: float = 0.01):
        super().__init__()
        if min(clip_dim, num_ws, w_dim, layers) < 1:
            raise ValueError(f"clip_dim, num_ws, w_dim and layers must be >= 1, got {clip_dim}, {num_ws}, {w_dim}, {layers}")
        self.clip_dim, self.num_ws, self.w_dim = int(clip_dim), int(num_ws), int(w_dim)
        self.layers, self.lr_multiplier = int(layers), float(lr_multiplier)
        self.groups = {name: rows for name, rows in layer_groups(num_ws).items() if len(rows)}
        self.style, self.condition, self.fusion = nn.ModuleDict(), nn.ModuleDict(), nn.ModuleDict()
        for name, rows in self.groups.items():
            width = w_dim if name in PER_ROW else len(rows) * w_dim
            self.style[name] = _MLP(width, width, layers, lr_multiplier)
            self.condition[name] = _MLP(2 * clip_dim, width, layers, lr_multiplier)
            self.fusion[name] = _MLP(2 * width, width, layers, lr_multiplier, norm=False, last_linear=True)

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments (stored with a checkpoint)."""
        return {"clip_dim": self.clip_dim, "num_ws": self.num_ws, "w_dim": self.w_dim, "layers": self.layers,
                "lr_multiplier": self.lr_multiplier}

    def check_inputs(self, ws: torch.Tensor, features: torch.Tensor, deltas: torch.Tensor) -> None:
        """ValueError naming the tensor whose shape does not fit."""
        if ws.ndim != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        for name, t in (("features", features), ("deltas", deltas)):
            if t.ndim != 2 or t.shape != (ws.shape[0], self.clip_dim):
                raise ValueError(f"{name} must be [N, {self.clip_dim}] with N = {ws.shape[0]}, got {tuple(t.shape)}")

    def forward(self, ws: torch.Tensor, features: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        self.check_inputs(ws, features, deltas)
        n = ws.shape[0]
        cond = torch.cat([features, deltas], dim=1).float()  # DeltaEdit's [i₁, Δi]
        out = torch.empty(n, self.num_ws, self.w_dim, device=ws.device, dtype=torch.float32)
        for name, rows in self.groups.items():
            s = ws[:, rows.start:rows.stop].float()  # [N, rows, w_dim]
            if name in PER_ROW:
                c = self.condition[name](cond)[:, None].expand(n, len(rows), self.w_dim)
                delta = self.fusion[name](torch.cat([self.style[name](s), c], dim=-1))
            else:
                flat = s.reshape(n, -1)
                delta = self.fusion[name](torch.cat([self.style[name](flat), self.condition[name](cond)], dim=-1))
            out[:, rows.start:rows.stop] = delta.reshape(n, len(rows), self.w_dim)
        return out


# -------------------------------------------------------------------------------------------------
# training pairs, loss, the test-time input


def pair_within_batch(features: torch.Tensor, ws: torch.Tensor
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training pairs of a (shuffled) batch: image i with image i − 1 (cyclically) (10_comparisons.ipynb).

    features `[B, D]`, ws `[B, num_ws, w_dim]` → (f₁, Δf, w₁, Δw) with f₁ = features, w₁ = ws,
    Δf = normalise(f₂ − f₁) (a zero difference stays zero) and Δw = w₂ − w₁, where x₂ of row i is
    row i − 1. B ≥ 2, so no image is paired with itself.
    """
    if features.ndim != 2 or ws.ndim != 3 or len(features) != len(ws):
        raise ValueError(f"features must be [B, D] and ws [B, num_ws, w_dim] with the same B, got "
                         f"{tuple(features.shape)} and {tuple(ws.shape)}")
    if len(features) < 2:
        raise ValueError(f"pairs within a batch need at least 2 images, got {len(features)}")
    f2, w2 = features.roll(1, dims=0), ws.roll(1, dims=0)
    return features, F.normalize(f2 - features, dim=-1, eps=1e-5), ws, w2 - ws


def delta_loss(pred: torch.Tensor, target: torch.Tensor, rec_weight: float = 1.0, cos_weight: float = 1.0,
               rec_loss: str = "mse") -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DeltaEdit's loss: rec_weight · rec(Δŵ, Δw) + cos_weight · (1 − mean_i cos(Δŵ_i, Δw_i)) (10_comparisons.ipynb).

    pred, target: `[N, ...]` deltas; the cosine is over each flattened delta. rec_loss: 'mse' (the
    mean squared error, the authors' code) or 'l1' (mean absolute error). Returns (loss, {'rec', 'cos'}).
    """
    if pred.shape != target.shape:
        raise ValueError(f"pred and target must have the same shape, got {tuple(pred.shape)} and {tuple(target.shape)}")
    if rec_loss == "mse":
        rec = F.mse_loss(pred, target)
    elif rec_loss == "l1":
        rec = F.l1_loss(pred, target)
    else:
        raise ValueError(f"rec_loss must be 'mse' or 'l1', got {rec_loss!r}")
    cos = 1.0 - F.cosine_similarity(pred.flatten(1), target.flatten(1), dim=-1).mean()
    return rec_weight * rec + cos_weight * cos, {"rec": rec.detach(), "cos": cos.detach()}


@torch.no_grad()
def text_delta(clip: nn.Module, texts: Sequence[str], neutral: str) -> torch.Tensor:
    """Δt = normalise(C_text(t) − C_text(t_neutral)) per text, `[N, D]` (DeltaEdit's test-time input) (10_comparisons.ipynb)."""
    texts = [check_text(t, f"texts[{i}]") for i, t in enumerate(texts)]
    if not texts:
        raise ValueError("texts is empty: give one edit text per image")
    check_text(neutral, "neutral")
    f = clip.encode_text([*texts, neutral]).float()
    return F.normalize(f[:-1] - f[-1:], dim=-1, eps=1e-5)


@torch.no_grad()
def encode_training_set(model: CLIP2GAN, n: int, seed: int = 0, batch_size: int = 256,
                        progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(f `[n, D]`, w `[n, num_ws, w_dim]`): CLIP features of `n` toy renders (`ToyFaces(n, seed)`) and their
    CLIP2GAN inversions w = M(f), computed once (10_comparisons.ipynb)."""
    from clip2gan.toy.faces import ToyFaces

    faces = ToyFaces(n, seed=seed, resolution=model.resolution)
    fs, ws = [], []
    for lo in tqdm(range(0, n, batch_size), desc="encode renders", disable=not progress):
        x = torch.stack([faces[i]["image"] for i in range(lo, min(n, lo + batch_size))])
        f = model.image_features(x).float()
        fs.append(f.cpu())
        ws.append(model.map(f).float().cpu())
    return torch.cat(fs), torch.cat(ws)


# -------------------------------------------------------------------------------------------------
# training


@dataclass
class DeltaEditConfig:
    """Every knob of a DeltaEdit run (its config.json); each field is a flag of
    `python -m clip2gan.baselines.deltaedit` (10_comparisons.ipynb).

    The defaults (16,384 renders, 5,000 steps of 64) run in about four minutes on one CPU thread,
    encoding included; DeltaEdit's own run has ~40× more steps (module docstring).
    """

    out: str = option("runs/deltaedit", "run folder")
    profile: str = option("toyfaces", "the world (its CLIP, G and renders)")
    mapping: str | None = option(None, "CLIP2GAN mapping checkpoint whose inversions M(C_img(x)) are the codes "
                                       "(default: the profile's shipped M)")
    n_images: int = option(16384, "toy renders encoded once (CLIP features and inversions) for training")
    data_seed: int = option(0, "ToyFaces seed of the training renders (the held-out sets use other seeds)")
    steps: int = option(5000, "training steps (about 20 passes over the default 16,384 codes)")
    batch_size: int = option(64, "images per step, paired within the batch (DeltaEdit: 64)")
    lr: float = option(0.5, "Adam learning rate (DeltaEdit: 0.5, with the 0.01 multiplier of every layer)")
    lr_multiplier: float = option(0.01, "equalised-learning-rate multiplier of every layer (DeltaEdit: 0.01)")
    layers: int = option(4, "layers of each MLP of the Delta Mapper (DeltaEdit: 4)")
    rec_loss: str = option("mse", "reconstruction term: mean squared error (DeltaEdit's code) or L1",
                           choices=("mse", "l1"))
    rec_weight: float = option(1.0, "weight of the reconstruction term (DeltaEdit: 1)")
    cos_weight: float = option(1.0, "weight of the cosine term (DeltaEdit: 1)")
    seed: int = option(0, "seed of the initialisation and of the batch order")
    device: str = option("cpu", "cpu, auto, cuda, cuda:N or mps")
    log_every: int = option(100, "steps between log records")
    ckpt_minutes: float = option(1.0, "minutes between checkpoints (also at the end)")
    max_steps: int | None = option(None, "stop (with a checkpoint) after so many steps; --resume continues")

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (pairs are made within a batch), got {self.batch_size}")
        if self.n_images < self.batch_size:
            raise ValueError(f"n_images ({self.n_images}) must hold at least one batch ({self.batch_size})")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


# fields a resumed run must share with its checkpoint (the data, the network and the order of batches)
_RESUME_KEYS = ("profile", "mapping", "n_images", "data_seed", "batch_size", "layers", "lr_multiplier", "seed")


class DeltaEditTrainer:
    """Trains a `DeltaMapper` for a `DeltaEditConfig` (10_comparisons.ipynb).

    model: the CLIP2GAN whose CLIP and M give the features and codes (None: built from the config);
    data: precomputed (f `[n, D]`, w `[n, num_ws, w_dim]`) (None: `encode_training_set`). Each epoch's
    batch order is a function of (seed, epoch), so a resumed run continues exactly where it stopped.
    """

    def __init__(self, config: DeltaEditConfig, model: CLIP2GAN | None = None,
                 data: tuple[torch.Tensor, torch.Tensor] | None = None, progress: bool = True):
        self.config, self.progress = config, progress
        self.device = pick_device(config.device)
        if model is None:
            from clip2gan.model import CLIP2GAN

            model = CLIP2GAN.from_pretrained(config.profile, device=self.device, mapping=config.mapping)
        self.model = model
        self.features, self.ws = data if data is not None else encode_training_set(
            model, config.n_images, config.data_seed, progress=progress)
        if len(self.features) < config.batch_size:
            raise ValueError(f"{len(self.features)} training codes cannot fill a batch of {config.batch_size}")
        torch.manual_seed(config.seed)
        self.net = DeltaMapper(self.features.shape[1], self.ws.shape[1], self.ws.shape[2], layers=config.layers,
                               lr_multiplier=config.lr_multiplier).to(self.device)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.steps_per_epoch = len(self.features) // config.batch_size
        self.step = 0
        self.out = Path(config.out)
        self.ckpt_path = self.out / "checkpoint.safetensors"

    def batch(self, step: int) -> torch.Tensor:
        """The indices of step `step`'s batch (a function of seed and step only)."""
        epoch, b = divmod(step, self.steps_per_epoch)
        g = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        perm = torch.randperm(len(self.features), generator=g)
        bs = self.config.batch_size
        return perm[b * bs:(b + 1) * bs]

    def train_step(self) -> dict[str, float]:
        """One Adam step on `delta_loss` over the pairs of one batch."""
        c = self.config
        idx = self.batch(self.step)
        f1, df, w1, dw = pair_within_batch(self.features[idx].to(self.device), self.ws[idx].to(self.device))
        self.net.train()
        pred = self.net(w1, f1, df)
        loss, parts = delta_loss(pred, dw, c.rec_weight, c.cos_weight, c.rec_loss)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {self.step}: the loss is {loss.item()}")
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step += 1
        return {"loss": float(loss.detach()), **{k: float(v) for k, v in parts.items()}}

    # -- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write network, Adam and step atomically (`checkpoint.safetensors`)."""
        save_state(self.ckpt_path, {"net": self.net.state_dict(), "opt": self.opt.state_dict(), "step": self.step,
                                    "config": dataclasses.asdict(self.config)})

    def load_checkpoint(self) -> None:
        """Restore the run's checkpoint; a damaged file or other settings raise with what to do."""
        try:
            s = load_state(self.ckpt_path)
        except CorruptCheckpoint as err:
            raise CorruptCheckpoint(f"cannot resume: {err}. Move it away to start the run afresh.") from None
        saved = s.get("config", {})
        for key in _RESUME_KEYS:
            if saved.get(key) != getattr(self.config, key):
                raise ValueError(f"--resume: {key} was {saved.get(key)!r} in {self.ckpt_path} but is "
                                 f"{getattr(self.config, key)!r} now; resume with the run's settings")
        self.net.load_state_dict(s["net"])
        self.opt.load_state_dict(s["opt"])
        self.step = int(s["step"])

    def export(self, command: str | None = None, extra: dict[str, Any] | None = None) -> Path:
        """Write `delta.safetensors` + `delta.json`: the network, its config, the training config and command."""
        from clip2gan.hub import resolve, sha256_file

        c = self.config
        mapping = c.mapping or f"{c.profile}-mapping"
        try:
            mapping_sha = sha256_file(resolve(mapping))
        except Exception:  # noqa: BLE001 — an injected model (tests) has no file to fingerprint
            mapping_sha = None
        config = {"format": DELTA_FORMAT, "version": 1, "net": self.net.config, "profile": c.profile,
                  "mapping": c.mapping, "mapping_sha256": mapping_sha, "neutral": default_neutral(c.profile),
                  "train": dataclasses.asdict(c), "steps": self.step, "command": command, **(extra or {})}
        return save_safetensors(self.net.state_dict(), self.out / "delta.safetensors", config, checksum=True)

    def _log(self, record: dict[str, Any]) -> None:
        with open(self.out / "log.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def fit(self, resume: bool = False, command: str | None = None) -> dict[str, Any]:
        """Train to `steps` (or `max_steps`), checkpointing; export the network at the end of the run."""
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        if resume and self.ckpt_path.exists():
            self.load_checkpoint()
            if self.progress:
                print(f"resumed {self.ckpt_path} at step {self.step}")
        elif self.ckpt_path.exists():
            raise FileExistsError(f"{self.ckpt_path} exists: pass --resume to continue the run, or choose another --out")
        atomic_write_text(self.out / "config.json", json.dumps(dataclasses.asdict(c), indent=2) + "\n")
        stop = min(c.steps, c.max_steps) if c.max_steps else c.steps
        t0, last_ckpt = time.perf_counter(), time.monotonic()
        bar = tqdm(total=stop, initial=self.step, desc="train DeltaEdit", disable=not self.progress, dynamic_ncols=True)
        logged: dict[str, float] = {}
        while self.step < stop:
            logged = self.train_step()
            bar.update(1)
            bar.set_postfix(loss=f"{logged['loss']:.4f}")
            if self.step % c.log_every == 0 or self.step == 1:
                self._log({"step": self.step, "epoch": (self.step - 1) // self.steps_per_epoch,
                           "seconds": round(time.perf_counter() - t0, 2), **logged})
            if time.monotonic() - last_ckpt > 60 * c.ckpt_minutes:
                self.save_checkpoint()
                last_ckpt = time.monotonic()
        bar.close()
        self.save_checkpoint()
        summary: dict[str, Any] = {"steps": self.step, "seconds": round(time.perf_counter() - t0, 1), "out": str(self.out)}
        if self.step >= c.steps:
            summary["delta"] = str(self.export(command, {"final": logged}))
        return summary


# -------------------------------------------------------------------------------------------------
# editing


class DeltaEditor:
    """Text edits with a trained `DeltaMapper`: w' = w + β N(w, C_img(x), Δt) (10_comparisons.ipynb).

        editor = DeltaEditor.from_checkpoint("runs/deltaedit-s0")
        before, after = editor.edit_pairs(images, ["a person wearing eyeglasses"] * len(images))

    net: the trained network; model: the CLIP2GAN whose CLIP, M (the inversion) and G it works with;
    neutral: t_neutral (default: the world's neutral prompt, 'a person' for toyfaces).
    """

    def __init__(self, net: DeltaMapper, model: CLIP2GAN, neutral: str | None = None):
        if (net.clip_dim, net.num_ws, net.w_dim) != (model.clip.embed_dim, model.num_ws, model.w_dim):
            raise ValueError(f"the network takes {net.clip_dim}-d features and writes [{net.num_ws}, {net.w_dim}] "
                             f"codes, but the model has {model.clip.embed_dim}-d CLIP features and "
                             f"[{model.num_ws}, {model.w_dim}] codes")
        self.net = net.to(model.device).eval().requires_grad_(False)
        self.model = model
        self.neutral = check_text(neutral if neutral is not None else default_neutral(model), "neutral")

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, model: CLIP2GAN | None = None,
                        device: str | torch.device = "cpu") -> "DeltaEditor":
        """Load `delta.safetensors` (or a run folder holding it) (10_comparisons.ipynb).

        model: the CLIP2GAN to edit with (None: the checkpoint's world and M, `CLIP2GAN.from_pretrained`).
        A missing file raises FileNotFoundError, a damaged one `CorruptCheckpoint`, another format ValueError.
        """
        path = Path(path)
        if path.is_dir():
            path = path / "delta.safetensors"
        state, config = load_safetensors(path)
        if config.get("format") != DELTA_FORMAT:
            raise ValueError(f"{path} is not a DeltaEdit checkpoint (format {config.get('format')!r}); "
                             "train one with python -m clip2gan.baselines.deltaedit")
        try:
            net = DeltaMapper(**config["net"])
            net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
        except (KeyError, TypeError, RuntimeError) as err:
            raise CorruptCheckpoint(f"{path}: its tensors do not match its network config ({err})") from None
        if model is None:
            from clip2gan.model import CLIP2GAN

            model = CLIP2GAN.from_pretrained(config.get("profile", "toyfaces"), device=device, mapping=config.get("mapping"))
        return cls(net, model, neutral=config.get("neutral"))

    @torch.no_grad()
    def directions(self, features: torch.Tensor, ws: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """Δŵ = N(w, f, Δt) per image, `[N, num_ws, w_dim]`: features `[N, D]` = C_img(x), ws = M(f), one text each."""
        texts = list(texts) if not isinstance(texts, str) else [texts]
        if len(texts) != len(ws):
            raise ValueError(f"{len(ws)} images but {len(texts)} texts: give one edit text per image")
        unique = sorted(set(texts))
        dt = text_delta(self.model.clip, unique, self.neutral).to(ws.device)
        deltas = dt[torch.tensor([unique.index(t) for t in texts], device=ws.device)]
        return self.net(ws, features.to(ws.device), deltas)

    @torch.no_grad()
    def edit_latents(self, images: Any, texts: Sequence[str], beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(w, w + β Δŵ) `[N, num_ws, w_dim]` each, w = M(C_img(x)) (10_comparisons.ipynb)."""
        beta = check_beta(beta)
        x = prepare_images(images, self.model.resolution, warn=False)
        f = self.model.image_features(x).float()
        ws = self.model.map(f).float()
        texts = list(texts) if not isinstance(texts, str) else [texts]
        if len(texts) != len(ws):
            raise ValueError(f"{len(ws)} images but {len(texts)} texts: give one edit text per image")
        if beta == 0.0:
            return ws, ws.clone()
        return ws, ws + beta * self.directions(f, ws, texts)

    @torch.no_grad()
    def edit_pairs(self, images: Any, texts: Sequence[str], beta: float = 1.0, seed: int = 0
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """(before, after) `[N, 3, R, R]` in [-1, 1] on the CPU: G(w) and G(w + β Δŵ) (10_comparisons.ipynb).

        images: `[N, 3, H, W]` (anything `clip2gan.images.prepare_images` reads); texts: one edit per
        image. β = 0 returns the reconstruction G(M(C_img(x))) twice. Deterministic: `seed` is accepted
        for the common interface and unused.
        """
        ws, edited = self.edit_latents(images, texts, beta)
        both = self.model.synthesize(torch.cat([ws, edited])).clamp(-1, 1).float().cpu()
        return both[:len(ws)], both[len(ws):]


# -------------------------------------------------------------------------------------------------
# command line

_CHANGEABLE_ON_RESUME = ("steps", "device", "log_every", "ckpt_minutes")  # when given; max_steps is always this call's


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m clip2gan.baselines.deltaedit",
                                description="Train DeltaEdit's Delta Mapper, text-free, on toy renders and their inversions.")
    add_config_args(p, DeltaEditConfig)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = config_from_args(DeltaEditConfig, args)
    saved = Path(config.out) / "config.json"
    if args.resume and saved.exists():
        # a resumed run keeps its own settings; only these may be changed on the command line
        given, defaults = config, DeltaEditConfig()
        config = DeltaEditConfig(**json.loads(saved.read_text()))
        for key in _CHANGEABLE_ON_RESUME:
            if getattr(given, key) != getattr(defaults, key):
                setattr(config, key, getattr(given, key))
        config.max_steps = given.max_steps
    command = shlex.join(["python", "-m", "clip2gan.baselines.deltaedit", *argv])
    summary = DeltaEditTrainer(config).fit(resume=args.resume, command=command)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
