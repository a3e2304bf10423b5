"""Training the mapping network, text-free (05_training.ipynb).

    python -m clip2gan.train --profile toyfaces --epochs 12 --out runs/toyfaces-mapping
    python -m clip2gan.train --profile ffhq --data /data/celeba-hq --batch-size 8 --out runs/ffhq
    torchrun --nproc_per_node 4 -m clip2gan.train --profile ffhq --data ... --out runs/ffhq-ddp
    python -m clip2gan.train --out runs/ffhq --resume                  # continue a run

One step: x → f = C_img(x) (frozen CLIP) → ws = M(f) → x' = G.synthesis(ws) (frozen G);
with the diversity term also f₁ = f + noise → x'₁ = G(M(f₁)). M minimises eq. 10
(`losses.total_loss`); then D takes one step on eq. 7 (`losses.d_loss`). Only M and D learn.

Optimisation follows the paper: Adam, lr 2e-3, linear decay to 0 over the second half of the epochs.
M uses Adam's default betas (the paper gives none); D uses StyleGAN's (0, 0.99).

A run folder holds `config.json`, `log.jsonl` (one record per logged step), `samples/` (input vs
reconstruction grids), `checkpoint.safetensors` (M, D, both optimisers, schedulers, step, RNG
states; written atomically every `--ckpt-minutes` and at each epoch's end) and, at the end,
`mapping.safetensors` (M alone, what `CLIP2GAN.from_checkpoint` loads). `--resume` continues from
the checkpoint, mid-epoch included: each epoch's order is a function of (seed, epoch), so the
batches already done are skipped. A `kill -9` loses at most the steps since the last checkpoint.

Data: `--profile toyfaces` renders its training set (ToyFaces, `--epoch-size` images; `--profile toypets`
the toy pets, which have no identity loss); `--data DIR`
reads an image folder (grayscale, RGBA, palette and 16-bit images are converted, other sizes resized
and centre-cropped, unreadable files skipped — each counted and reported, never a crash);
`--synthetic-data` trains on the generator's own samples when no dataset is at hand — a departure
from the paper, which trains on real images (CelebA-HQ).

Against the distortion-perception-editability trade-off (05_training.ipynb). Images out of M are
less clean than G's own samples because M's w+ codes leave the distribution of G's own w. The
published remedies are options, all off by default (a default run trains exactly as before them):
e4e's latent discriminator (`--latent-d`) and delta regulariser (`--delta-reg`, with the progressive
schedule `--delta-progressive`) from Tov et al., "Designing an Encoder for StyleGAN Image
Manipulation", SIGGRAPH 2021; fewer free rows of w+ (`--free-rows`, `clip2gan.mapping`); and, with
`--synthetic-data`, a latent loss to the generator's own code (`--latent-loss`). Each term is added
to eq. 10 with its weight; the formulas are in `clip2gan.losses` and under `TrainConfig`.

Distributed: under `torchrun` every process takes its share of each batch order, gradients are
averaged with `all_reduce` (gloo on CPU, NCCL on GPU), and process 0 writes the run folder.
Mixed precision (`--amp`, on by default) applies on CUDA only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch import nn
from tqdm.auto import tqdm

from clip2gan.checkpoint import CorruptCheckpoint, atomic_write_text, load_state, save_state
from clip2gan.cli import add_config_args, option
from clip2gan.cli import config_from_args as cli_config
from clip2gan.identity import identity_net_for
from clip2gan.images import convert_image
from clip2gan.losses import (
    IdentityLoss,
    LatentDiscriminator,
    LossWeights,
    LPIPSLoss,
    NoiseConfig,
    add_clip_noise,
    d_loss,
    delta_regularizer,
    latent_d_loss,
    latent_g_loss,
    latent_loss,
    latent_r1,
    requires_grad,
    total_loss,
)
from clip2gan.mapping import MappingNetwork
from clip2gan.modality_gap import c3_corrupt, feature_bank, lafite_perturb, vocabulary_text_mean
from clip2gan.model import attach_feature_bank, build_clip, load_generator_for_profile, load_mapping, save_mapping
from clip2gan.profiles import get_profile
from clip2gan.runtime import pick_device
from clip2gan.stylegan2 import Discriminator
from clip2gan.toy import world_module
from clip2gan.viz import save_grid

__all__ = ["TrainConfig", "Trainer", "ImageFolderDataset", "build_world", "main"]

#: what M can be trained on (`TrainConfig.inputs`) and the text correction its checkpoint defaults to
#: ('image': the bridged method when a feature bank is stored, as `clip2gan.model.save_mapping` decides).
INPUTS = ("image", "c3", "lafite")
INPUT_TEXT_CORRECTIONS = {"c3": "collapse", "lafite": None}

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}


@dataclass
class TrainConfig:
    """Every knob of a training run (stored in the run's config.json) (05_training.ipynb).

    Each field is a flag of `python -m clip2gan.train` (`epoch_size` → `--epoch-size`; booleans also
    take `--no-...`), with the help text written beside it.

    Options against the distortion-perception-editability trade-off (all off by default; the module
    docstring says why). With ws = M(f) `[N, num_ws, w_dim]` and n the rows unlocked so far (num_ws
    unless `delta_progressive`), M's loss becomes

        L_M = eq. 10 + latent_d · L_adv,w + delta_reg · L_d-reg + latent_loss · L_w

    * `latent_d`: L_adv,w = (1/n) Σ_{i<n} E[softplus(−D_w(w_i))] (`losses.latent_g_loss`), with e4e's
      latent discriminator D_w (`losses.LatentDiscriminator`, a 4-layer MLP on single w vectors, its own
      Adam at `latent_d_lr`, betas (0.9, 0.999), constant lr) trained after each M step on
      E[softplus(−D_w(w_real))] + E[softplus(D_w(w_i))] (`losses.latent_d_loss`): reals are G's own
      w = G.mapping(z, c) for batch_size fresh z (c: toy labels from `clip2gan.toy.faces.sample_c` for a
      conditional toy G, zeros otherwise), drawn from seeds fixed by (seed, step, rank); fakes are the
      first n rows of every code of the batch. Every `latent_d_reg_every` = k steps, an extra D_w step
      on (latent_d_r1 / 2) · k · E[‖∇_w D_w(w_real)‖²] (R1 on reals, lazy, as e4e). e4e: weight 0.1,
      lr 2e-5, γ 10, k 16. Not rebuilt: e4e's pool of past codes (`--use_w_pool`).
    * `delta_reg`: L_d-reg = Σ_{i=1}^{n-1} E‖w_i − w_0‖₂ (`losses.delta_regularizer`; e4e: 2e-4).
    * `delta_progressive`: e4e's progressive training. Row i ≥ 1 of w+ is unlocked at step i · K and is
      a copy of row 0 before (`MappingNetwork.set_unlocked_rows`): n = min(num_ws, 1 + step // K), one w
      alone for the first K steps. K = `delta_progressive_every`, default total_steps // (2 num_ws): every
      row is free by half of training, before the learning rate decays (the toy run of 8 epochs × 64
      steps, 8 rows: K = 32, all rows free at step 224). e4e: 20,000 steps of one w, then a row every
      2,000, of 200,000+ steps.
    * `free_rows`: M emits k rows spread over the num_ws rows in contiguous groups (`clip2gan.mapping`).
    * `latent_loss`: L_w = mean over batch, rows and coordinates of (M(C_img(G(w))) − w)², w broadcast
      to the rows (`losses.latent_loss`); needs `synthetic_data`, whose items carry the code w
      (`SyntheticImages`). A departure from the paper, which trains on real images with image losses only.
    """

    profile: str = option("toyfaces", "the world: toyfaces, toypets, ffhq, afhqcat, afhqdog or lsunchurch")
    out: str = option("", "run folder (default runs/<profile>-mapping)")
    data: str | None = option(None, "image folder to train on (the paper: CelebA-HQ)")
    synthetic_data: bool = option(False, "train on the generator's own samples (not the paper's setting)")
    epochs: int = option(12, "passes over the training set (the paper: 100)")
    epoch_size: int = option(2048, "images per epoch for the toy world and --synthetic-data")
    batch_size: int = option(32, "images per step")
    lr: float = option(2e-3, "Adam learning rate of M (the paper: 2e-3, linear decay over the second half)")
    d_lr: float = option(2e-3, "Adam learning rate of D")
    layers: int = option(12, "fully connected layers of M (the paper: 12)")
    hidden_dim: int = option(512, "width of M's hidden layers")
    adv: bool = option(True, "the adversarial term L_G and D (Table 4 drops it)")
    div: bool = option(True, "the diversity term L_div (Table 4 drops it)")
    identity: bool = option(True, "the identity term L_id (worlds without an identity net have none)", flag="--id")
    adv_form: str = option("paper", "adversarial loss: eq. 6-7 as written, non-saturating, or WGAN",
                           choices=("paper", "nonsaturating", "wgan"))
    gp_on: str = option("fake", "where the gradient penalty is taken (the paper: on x')", choices=("fake", "real"))
    noise_std: float = option(0.5, "std of the training noise added to f for L_div")
    noise_mean: float = option(0.0, "mean of the training noise added to f for L_div")
    noise_scale: str = option("unit", "'unit': std per unit-norm feature (divided by sqrt(D)); 'absolute': as given",
                              choices=("unit", "absolute"))
    weights: dict[str, float] = option(default_factory=dict, help="overrides of the loss weights (--weight NAME=VALUE)")
    lpips_trunk: str | None = option(None, "LPIPS trunk: clip, alex or alex-random (default: the profile's)")
    clip: str | None = option(None, "a toy CLIP checkpoint, path or hub name (default: the profile's)")
    clip_model: str | None = option(None, "open_clip model name for paper profiles (default ViT-B-16-quickgelu)")
    clip_pretrained: str | None = option(None, "open_clip pretrained tag or checkpoint path (default openai)")
    generator: str | None = option(None, "a generator, path or hub name (default: the profile's)")
    seed: int = option(0, "seed of M's initialisation, the data order and the noise")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps")
    amp: bool = option(True, "mixed precision (CUDA only)")
    num_workers: int = option(0, "data-loader worker processes")
    log_every: int = option(10, "steps between log records")
    sample_every: int = option(200, "steps between reconstruction grids (0: only at the end)")
    ckpt_minutes: float = option(5.0, "minutes between checkpoints (also at each epoch's end)")
    max_steps: int | None = option(None, "stop after so many steps (the lr schedule still spans all epochs)")
    bank_size: int = option(2048, "training images whose CLIP features are stored with M (0: no feature bank)")
    inputs: str = option("image", "what M is fed in training: the image features ('image', the paper), centred image "
                         "features plus noise ('c3': Zhang et al. 2024) or perturbed ones ('lafite': Zhou et al. 2022)",
                         choices=INPUTS)
    c3_sigma: float = option(0.5, "with --inputs c3: norm of the Gaussian noise added to the centred features")
    lafite_xi: float = option(1.0, "with --inputs lafite: the perturbation level ξ of h' = normalise(h + ξ ε ‖h‖/‖ε‖)")
    latent_d: float = option(0.0, "weight of e4e's latent-discriminator term on M's w+ rows (Tov et al. 2021: 0.1; "
                             "default 0: off, no D_w)")
    latent_d_lr: float = option(2e-5, "Adam learning rate of the latent discriminator D_w (e4e: 2e-5)")
    latent_d_r1: float = option(10.0, "R1 weight γ of D_w: (γ/2) E‖∇D_w(w)‖² on G's own w (e4e: 10)")
    latent_d_reg_every: int = option(16, "steps between D_w's lazy R1 steps (e4e: 16)")
    delta_reg: float = option(0.0, "weight of e4e's delta regulariser Σ_i≥1 ‖w_i − w_0‖₂ over M's w+ rows "
                              "(Tov et al. 2021: 2e-4; default 0: off)")
    delta_progressive: bool = option(False, "e4e's progressive training: one w first, then one more free w+ row "
                                     "every --delta-progressive-every steps")
    delta_progressive_every: int | None = option(None, "steps between two unlocked rows (default: total steps // "
                                                 "(2 num_ws): every row free by half of training)")
    free_rows: int | None = option(None, "distinct w rows M emits, spread over the w+ rows in contiguous groups "
                                   "(1: StyleGAN's w; default: every row free, the paper)")
    latent_loss: float = option(0.0, "with --synthetic-data: weight of ‖M(C_img(G(w))) − w‖² to the code that made "
                                "each image (not in the paper; default 0: off)")

    def __post_init__(self) -> None:
        if not self.out:
            self.out = f"runs/{self.profile}-mapping"
        if self.inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {self.inputs!r}")
        if self.c3_sigma < 0 or self.lafite_xi < 0:
            raise ValueError(f"c3_sigma and lafite_xi must be >= 0, got {self.c3_sigma} and {self.lafite_xi}")
        for name in ("latent_d", "latent_d_lr", "latent_d_r1", "delta_reg", "latent_loss"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise ValueError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")
        for name, value in (("latent_d_reg_every", self.latent_d_reg_every),
                            ("delta_progressive_every", self.delta_progressive_every), ("free_rows", self.free_rows)):
            if value is None and name != "latent_d_reg_every":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be an integer >= 1"
                                 f"{' (or none)' if name != 'latent_d_reg_every' else ''}, got {value!r}")
        if self.latent_loss > 0 and not self.synthetic_data:
            raise ValueError("--latent-loss needs --synthetic-data: only the generator's own samples have a known "
                             f"code w (got latent_loss={self.latent_loss} without synthetic data)")
        if self.delta_progressive_every is not None and not self.delta_progressive:
            raise ValueError("--delta-progressive-every is the schedule of --delta-progressive: pass both")

    def loss_weights(self) -> LossWeights:
        w = LossWeights.from_dict(self.weights)
        return dataclasses.replace(w, adv=w.adv if self.adv else 0.0, div=w.div if self.div else 0.0,
                                   id=w.id if self.identity else 0.0)

    def noise(self) -> NoiseConfig:
        return NoiseConfig(mean=self.noise_mean, std=self.noise_std, scale=self.noise_scale)


# -------------------------------------------------------------------------------------------------
# data


class ImageFolderDataset(torch.utils.data.Dataset):
    """Images under `root` (recursively), as `[3, R, R]` tensors in [-1, 1] (05_training.ipynb).

    Every file is made usable or skipped, and each case is counted instead of crashing a run hours
    in: `clip2gan.images.convert_image` turns grayscale / palette / RGBA / CMYK / 16-bit images into RGB
    (alpha composited on white, 16-bit scaled) and other sizes into R × R (shorter side, centre crop).
    An unreadable file yields `ok=False`; the trainer drops it from the batch and counts it.
    """

    def __init__(self, root: str | os.PathLike, resolution: int):
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"--data {self.root} is not a folder")
        self.files = sorted(p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not self.files:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {self.root}")
        self.resolution = int(resolution)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, path: Path) -> tuple[torch.Tensor, str]:
        """Read one file → (`[3, R, R]` in [-1, 1], 'ok' or 'converted'); the rules are `images.convert_image`'s."""
        with Image.open(path) as im:
            im.load()
            x, notes = convert_image(im, self.resolution)
        return x, "converted" if notes else "ok"

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            image, status = self.load(self.files[i])
            return {"image": image, "ok": True, "status": status}
        except Exception as err:  # noqa: BLE001 — any unreadable file is skipped and counted
            return {"image": torch.zeros(3, self.resolution, self.resolution), "ok": False,
                    "status": f"skipped: {self.files[i].name}: {type(err).__name__}"}


class ToyImages(torch.utils.data.Dataset):
    """The toy world's training images (captions exist but are never used: training is text-free).

    world: the toy world (None: faces; 'pets', or a profile such as 'toypets'; 08_evaluation.ipynb)."""

    def __init__(self, n: int, seed: int, resolution: int, world: Any = None):
        self.faces = world_module(world).WorldDataset(n, seed=seed, resolution=resolution)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.faces[i]["image"], "ok": True, "status": "ok"}


class SyntheticImages(torch.utils.data.Dataset):
    """Images sampled from the frozen generator itself (`--synthetic-data`; not the paper's setting).

    Item i is G(z_i, c_i) with z_i, c_i drawn from a generator seeded by (seed, i): deterministic.
    A conditional toy generator gets attribute labels sampled from the toy world. Besides 'image',
    'ok' and 'status', an item holds 'w' `[w_dim]`: the code G.mapping(z_i, c_i) the image was made
    from (every w+ row equal), which `--latent-loss` compares M's code with (05_training.ipynb).
    """

    def __init__(self, G: nn.Module, n: int, seed: int, profile: str):
        self.G, self.n, self.seed, self.profile = G, n, seed, profile

    def __len__(self) -> int:
        return self.n

    @torch.no_grad()
    def __getitem__(self, i: int) -> dict[str, Any]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        z = torch.randn([1, self.G.z_dim], generator=g)
        c = torch.zeros([1, self.G.c_dim])
        if self.G.c_dim:
            c = conditioning_for(self.G, 1, np.random.default_rng([self.seed, i]), self.profile)
        device = next(self.G.parameters()).device
        ws = self.G.mapping(z.to(device), c.to(device))  # what G(z, c) computes, in its two halves
        img = self.G.synthesis(ws, noise_mode="const")[0].clamp(-1, 1).cpu()
        return {"image": img, "ok": True, "status": "ok", "w": ws[0, 0].float().cpu()}


def build_dataset(config: "TrainConfig", G: nn.Module) -> torch.utils.data.Dataset:
    """The training images of a run: `--data DIR`, `--synthetic-data`, or the toy world's renders."""
    c = config
    res = int(G.img_resolution)
    if c.data and c.synthetic_data:
        raise ValueError("give either --data DIR or --synthetic-data, not both")
    if c.data:
        return ImageFolderDataset(c.data, res)
    if c.synthetic_data:
        return SyntheticImages(G, c.epoch_size, c.seed, c.profile)
    if get_profile(c.profile).toy_world:
        return ToyImages(c.epoch_size, c.seed, res, world=get_profile(c.profile))
    raise ValueError(f"profile {c.profile!r} needs --data DIR (e.g. CelebA-HQ images) or --synthetic-data")


def add_feature_bank(path: str | Path, n: int | None = None, device: str = "cpu", progress: bool = True) -> Path:
    """Add a feature bank to a mapping file written before banks existed (rewritten atomically).

    path: a `mapping.safetensors` or its run folder. The bank is built from the run's own training
    images (its stored `train` config: the toy renders, the synthetic samples or the `--data` folder)
    with the CLIP of its world. n: bank size (default: the config's `bank_size`, 2,048).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "mapping.safetensors"
    _, cfg = load_mapping(path)
    if "train" not in cfg:
        raise ValueError(f"{path} records no training config: build a bank and call model.attach_feature_bank")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in cfg["train"].items() if k in known})
    world = cfg["world"]
    dev = torch.device(device)
    G = load_generator_for_profile(world["profile"], device=dev, generator=world.get("generator"))
    bank = feature_bank(build_clip(world, dev), build_dataset(config, G), n or config.bank_size or 2048,
                        progress=progress)
    return attach_feature_bank(path, bank)


def conditioning_for(G: nn.Module, n: int, rng: np.random.Generator, profile: str) -> torch.Tensor:
    """c for a conditional generator: toy-world attribute one-hots sampled from the data
    (`clip2gan.toy.faces.sample_c`, or the profile's own world's), else zeros."""
    if get_profile(profile).toy_world:
        c, _ = world_module(get_profile(profile)).sample_c(n, rng)
        if c.shape[1] == G.c_dim:
            return c
    return torch.zeros([n, G.c_dim])


# -------------------------------------------------------------------------------------------------
# the world: CLIP, G, D, identity, LPIPS


def build_world(config: TrainConfig, device: torch.device) -> dict[str, Any]:
    """Frozen CLIP and G, a fresh (or pretrained) D, the identity and LPIPS losses of a profile."""
    world = world_record(config)
    clip = build_clip(world, device)
    G = load_generator_for_profile(config.profile, device=device, generator=config.generator)
    D = discriminator_like(G).to(device)
    identity = None
    if config.identity:
        net = identity_net_for(config.profile, device=device)
        identity = IdentityLoss(net).to(device) if net is not None else None
    lpips = LPIPSLoss.for_profile(config.profile, clip_encoder=clip, trunk=config.lpips_trunk).to(device)
    return {"clip": clip, "G": G, "D": D, "identity": identity, "lpips": lpips, "world": world}


def discriminator_like(G: nn.Module) -> nn.Module:
    """A fresh unconditional resnet D with the generator's resolution and channel table.

    The paper trains D from scratch alongside M; a pretrained D (NVIDIA pickles carry one) could
    start it, but its real/fake boundary is about G's samples, not about reconstructions."""
    kwargs = G.init_kwargs
    synthesis = {**kwargs, **(kwargs.get("synthesis_kwargs") or {})}  # NVIDIA's nested form or the flat one
    return Discriminator(c_dim=0, img_resolution=G.img_resolution, img_channels=G.img_channels,
                         channel_base=synthesis.get("channel_base", 32768), channel_max=synthesis.get("channel_max", 512))


def world_record(config: TrainConfig) -> dict[str, Any]:
    """What a mapping checkpoint records about the world it maps into."""
    return {"profile": config.profile, "clip": config.clip, "clip_model": config.clip_model,
            "clip_pretrained": config.clip_pretrained, "generator": config.generator}


# -------------------------------------------------------------------------------------------------
# distributed helpers (no-ops in a single process)


def _dist_env() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _init_distributed(device: torch.device) -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return _dist_env()


def _broadcast_params(module: nn.Module) -> None:
    rank, world = _dist_env()
    if world > 1:
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)


def _average_grads(module: nn.Module) -> None:
    rank, world = _dist_env()
    if world > 1:
        for p in module.parameters():
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world


# -------------------------------------------------------------------------------------------------
# the trainer


def _lr_factor(step: int, total: int) -> float:
    """1 for the first half of training, then linear to 0 (the paper's schedule)."""
    half = total / 2
    return 1.0 if step < half else max(0.0, (total - step) / max(total - half, 1))


class Trainer:
    """Trains M (and D) for a `TrainConfig`; components may be injected (tests, notebooks).

    world: dict with 'clip', 'G', 'D', 'identity', 'lpips', 'world' (see `build_world`); None builds
    the profile's. dataset: a Dataset of dicts with 'image' (and 'ok'); None builds the configured one.
    """

    def __init__(self, config: TrainConfig, world: dict[str, Any] | None = None,
                 dataset: torch.utils.data.Dataset | None = None, progress: bool = True):
        self.config = config
        self.device = pick_device(config.device)
        self.rank, self.world_size = _init_distributed(self.device)
        self.is_main = self.rank == 0
        self.progress = progress and self.is_main
        torch.manual_seed(config.seed)
        world = world or build_world(config, self.device)
        self.clip, self.G, self.D = world["clip"], world["G"], world["D"]
        self.identity, self.lpips, self.world = world.get("identity"), world.get("lpips"), world["world"]
        self.G.eval().requires_grad_(False)
        self.clip.eval().requires_grad_(False)
        num_ws = int(self.G.num_ws)
        if config.free_rows is not None and config.free_rows > num_ws:
            raise ValueError(f"--free-rows must be from 1 to the generator's num_ws = {num_ws}, got {config.free_rows}")
        rows = {"free_rows": config.free_rows} if config.free_rows is not None else {}
        self.M = MappingNetwork.for_generator(self.G, in_dim=self.clip.embed_dim, n_layers=config.layers,
                                              hidden_dim=config.hidden_dim,
                                              centre_input=config.inputs == "c3", **rows).to(self.device)
        # e4e's latent discriminator, only when asked for (seeded apart: the other networks' draws stay as they were)
        self.D_w: LatentDiscriminator | None = None
        if config.latent_d > 0:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(config.seed + 31)
                self.D_w = LatentDiscriminator(int(self.G.w_dim)).to(self.device)
        _broadcast_params(self.M)
        _broadcast_params(self.D)
        if self.D_w is not None:
            _broadcast_params(self.D_w)
        self.weights = config.loss_weights()
        self.noise = config.noise()
        if config.inputs == "c3":  # C3's inputs are centred and unnormalised: keep the diversity noise additive only
            self.noise = dataclasses.replace(self.noise, renormalize=False)
        self.opt_M = torch.optim.Adam(self.M.parameters(), lr=config.lr)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=config.d_lr, betas=(0.0, 0.99))
        self.opt_D_w = torch.optim.Adam(self.D_w.parameters(), lr=config.latent_d_lr) if self.D_w is not None else None
        self.dataset = dataset if dataset is not None else self._build_dataset()
        per_rank = len(self.dataset) // self.world_size
        self.steps_per_epoch = per_rank // config.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"{len(self.dataset)} images cannot fill one batch of {config.batch_size} per process "
                             f"({self.world_size} processes): lower --batch-size or add data")
        self.total_steps = self.steps_per_epoch * config.epochs
        self.progressive_every: int | None = None
        if config.delta_progressive:
            self.progressive_every = config.delta_progressive_every or max(1, self.total_steps // (2 * num_ws))
            if (num_ws - 1) * self.progressive_every > self.total_steps and self.is_main:
                warnings.warn(f"--delta-progressive: the last of {num_ws} rows is unlocked at step "
                              f"{(num_ws - 1) * self.progressive_every}, after the run's {self.total_steps} steps; "
                              "the saved M keeps the rows not yet unlocked equal to row 0", stacklevel=2)
            self._apply_schedule(0)
        if config.latent_loss > 0 and "w" not in self.dataset[0]:
            raise ValueError("--latent-loss needs training items with the generator's code 'w' (SyntheticImages, "
                             f"--synthetic-data); {type(self.dataset).__name__} has none")
        self.use_amp = bool(config.amp) and self.device.type == "cuda"
        self.scaler_M = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.scaler_D = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.noise_rng = torch.Generator().manual_seed(config.seed + 17)
        self.step = 0
        self.data_counts: Counter = Counter()
        self.feature_sum = torch.zeros(self.clip.embed_dim, dtype=torch.float64)
        self.feature_count = 0
        self.out = Path(config.out)
        self.ckpt_path = self.out / "checkpoint.safetensors"
        self.sample_batch = self._fixed_samples()
        if config.inputs == "c3":  # C3's collapse: M subtracts the training images' mean feature from its input
            self.M.set_input_mean(feature_bank(self.clip, self.dataset, config.bank_size or 2048).mean(0))

    # -- set-up ----------------------------------------------------------------------------------
    def _build_dataset(self) -> torch.utils.data.Dataset:
        return build_dataset(self.config, self.G)

    def _fixed_samples(self, n: int = 8) -> torch.Tensor:
        items = [self.dataset[i] for i in range(min(n, len(self.dataset)))]
        return torch.stack([it["image"] for it in items])

    def _order(self, epoch: int) -> list[int]:
        """This process's share of epoch `epoch`'s permutation (a function of seed and epoch only)."""
        g = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        perm = torch.randperm(len(self.dataset), generator=g).tolist()
        return perm[self.rank::self.world_size]

    def _batches(self, epoch: int, start_batch: int) -> Iterator[torch.Tensor]:
        order = self._order(epoch)
        bs = self.config.batch_size
        batch_ids = [order[b * bs:(b + 1) * bs] for b in range(start_batch, self.steps_per_epoch)]
        loader = torch.utils.data.DataLoader(batch_ids, batch_size=None, num_workers=self.config.num_workers,
                                             collate_fn=self._collate)
        yield from loader

    def _collate(self, ids: list[int]) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None:
        """The batch of images `[B, 3, R, R]`; with `--latent-loss`, (images, their codes w `[B, w_dim]`)."""
        items = [self.dataset[i] for i in ids]
        for it in items:
            self.data_counts[it["status"].split(":")[0]] += 1
            if not it["ok"] and self.is_main:
                warnings.warn(f"training data: {it['status']}", stacklevel=2)
        good = [it for it in items if it["ok"]]
        if not good:
            return None
        # Refill to the full batch by repeating readable images: D's minibatch-std layer needs a batch
        # divisible by its group size, and a constant batch keeps the loss scale steady.
        x = torch.stack([good[i % len(good)]["image"] for i in range(len(items))])
        if self.config.latent_loss <= 0:
            return x
        return x, torch.stack([good[i % len(good)]["w"] for i in range(len(items))])

    # -- one step ------------------------------------------------------------------------------------
    def training_inputs(self, f: torch.Tensor) -> torch.Tensor:
        """What M is fed for image features f `[N, D]` (`TrainConfig.inputs`) (10_comparisons.ipynb).

        'image': f (the paper); 'c3': f + σ ε / √D (`modality_gap.c3_corrupt`; M subtracts the image mean
        itself); 'lafite': normalise(f + ξ ε ‖f‖/‖ε‖) (`modality_gap.lafite_perturb`). The diversity term's
        noise is added on top of these inputs.
        """
        c = self.config
        if c.inputs == "c3":
            return c3_corrupt(f, c.c3_sigma, generator=self.noise_rng)
        if c.inputs == "lafite":
            return lafite_perturb(f, c.lafite_xi, generator=self.noise_rng)
        return f

    # -- the options against the trade-off (TrainConfig's docstring) --------------------------------
    def unlocked_rows(self, step: int) -> int:
        """n, the w+ rows M may set freely at step `step`: min(num_ws, 1 + step // K) under
        `--delta-progressive`, else num_ws (05_training.ipynb)."""
        num_ws = self.M.num_ws
        if self.progressive_every is None:
            return num_ws
        return min(num_ws, 1 + step // self.progressive_every)

    def _apply_schedule(self, step: int) -> None:
        if self.progressive_every is not None:
            self.M.set_unlocked_rows(self.unlocked_rows(step))

    def real_ws(self, n: int, step: int) -> torch.Tensor:
        """n of G's own codes w = G.mapping(z, c) `[n, w_dim]`, D_w's reals at step `step` (05_training.ipynb).

        z and c come from generators seeded by (seed, step, rank): a resumed run draws what an
        uninterrupted one would, with no state to store.
        """
        c = self.config
        g = torch.Generator().manual_seed((c.seed * 1_000_003 + step) * 64 + self.rank)
        z = torch.randn([n, self.G.z_dim], generator=g)
        cond = conditioning_for(self.G, n, np.random.default_rng([c.seed, step, self.rank, 41]), c.profile)
        with torch.no_grad():
            ws = self.G.mapping(z.to(self.device), cond.to(self.device), update_emas=False)
        return ws[:, 0].float()

    def quality_terms(self, ws: torch.Tensor, w_true: torch.Tensor | None, rows: int) -> dict[str, tuple[float, torch.Tensor]]:
        """The options' terms of M's loss as {name: (weight, value)}, only those switched on (05_training.ipynb).

        ws: M's codes `[N, num_ws, w_dim]` (with their graph); w_true: the codes of synthetic images
        `[N, w_dim]` (or None); rows: the rows unlocked so far.
        """
        c = self.config
        terms: dict[str, tuple[float, torch.Tensor]] = {}
        if self.D_w is not None:
            with requires_grad(self.D_w, False):
                terms["latent_adv"] = (c.latent_d, latent_g_loss(self.D_w, ws.float(), rows))
        if c.delta_reg > 0:
            terms["delta_reg"] = (c.delta_reg, delta_regularizer(ws.float(), rows))
        if c.latent_loss > 0:
            if w_true is None:
                raise ValueError("--latent-loss: this batch came without the generator's codes")
            terms["latent"] = (c.latent_loss, latent_loss(ws.float(), w_true.to(self.device)))
        return terms

    def latent_d_step(self, ws: torch.Tensor, rows: int) -> dict[str, float]:
        """One D_w step on `losses.latent_d_loss` (reals: `real_ws`, fakes: the first `rows` rows of ws),
        and every `latent_d_reg_every` steps one more on (γ/2) k R1 (05_training.ipynb)."""
        c = self.config
        real = self.real_ws(ws.shape[0], self.step)
        fake = ws[:, :rows].detach().float().reshape(-1, ws.shape[-1])
        self.D_w.train()
        loss, parts = latent_d_loss(self.D_w, real, fake)
        self.opt_D_w.zero_grad(set_to_none=True)
        loss.backward()
        _average_grads(self.D_w)
        self.opt_D_w.step()
        logged = {f"D_w_{k}": float(v) for k, v in parts.items()}
        if c.latent_d_r1 > 0 and self.step % c.latent_d_reg_every == 0:
            r1 = latent_r1(self.D_w, real)
            self.opt_D_w.zero_grad(set_to_none=True)
            (c.latent_d_r1 / 2 * c.latent_d_reg_every * r1).backward()
            _average_grads(self.D_w)
            self.opt_D_w.step()
            logged["D_w_r1"] = float(r1.detach())
        return logged

    def train_step(self, x: torch.Tensor, w_true: torch.Tensor | None = None) -> dict[str, float]:
        """One M step on eq. 10 (plus the options switched on) and one D step on eq. 7 (and one D_w step
        with `--latent-d`); returns the logged values. w_true: the codes of synthetic images (`--latent-loss`)."""
        c, dev = self.config, self.device
        x = x.to(dev, non_blocking=True)
        self._apply_schedule(self.step)
        rows = self.unlocked_rows(self.step)
        for group in self.opt_M.param_groups:
            group["lr"] = c.lr * _lr_factor(self.step, self.total_steps)
        for group in self.opt_D.param_groups:
            group["lr"] = c.d_lr * _lr_factor(self.step, self.total_steps)
        amp = torch.autocast(dev.type, enabled=self.use_amp)

        with torch.no_grad(), amp:
            f = self.clip.encode_image(x).float()
        self.feature_sum += f.double().sum(0).cpu()
        self.feature_count += f.shape[0]
        f = self.training_inputs(f)
        use_div = self.weights.div > 0
        self.M.train()
        with amp:
            ws = self.M(f)  # [N, num_ws, w_dim]
            x_rec = self.G.synthesis(ws, noise_mode="const")
            f1 = x_rec1 = None
            if use_div:
                f1 = add_clip_noise(f, self.noise, generator=self.noise_rng)
                x_rec1 = self.G.synthesis(self.M(f1), noise_mode="const")
            with requires_grad(self.D, False):
                loss, parts = total_loss(
                    x, x_rec.float(), weights=self.weights, lpips=self.lpips,
                    D=self.D if self.weights.adv else None, adv_form=c.adv_form, identity=self.identity,
                    f_img=f if use_div else None, f_img_noisy=f1,
                    x_rec_noisy=x_rec1.float() if use_div else None)
        for name, (weight, value) in self.quality_terms(ws, w_true, rows).items():
            loss = loss + weight * value
            parts[name] = value.detach()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"step {self.step}: the loss is {loss.item()} ({ {k: float(v) for k, v in parts.items()} })")
        self.opt_M.zero_grad(set_to_none=True)
        self.scaler_M.scale(loss).backward()
        _average_grads(self.M)
        self.scaler_M.step(self.opt_M)
        self.scaler_M.update()
        logged = {"loss_M": float(loss.detach()), **{k: float(v) for k, v in parts.items()}}

        if self.weights.adv:
            self.D.train()
            with amp:
                ld, d_parts = d_loss(self.D, x, x_rec.detach().float(), form=c.adv_form,
                                     gp_weight=self.weights.gp, gp_on=c.gp_on)
            self.opt_D.zero_grad(set_to_none=True)
            self.scaler_D.scale(ld).backward()
            _average_grads(self.D)
            self.scaler_D.step(self.opt_D)
            self.scaler_D.update()
            logged["loss_D"] = float(ld.detach())
            logged.update({f"D_{k}": float(v) for k, v in d_parts.items()})
        if self.D_w is not None:
            logged.update(self.latent_d_step(ws, rows))
        if self.progressive_every is not None:
            logged["rows"] = rows
        self.step += 1
        return logged

    # -- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        state = {
            "M": self.M.state_dict(), "D": self.D.state_dict(),
            "opt_M": self.opt_M.state_dict(), "opt_D": self.opt_D.state_dict(),
            "scaler_M": self.scaler_M.state_dict(), "scaler_D": self.scaler_D.state_dict(),
            "step": self.step,
            "noise_rng": self.noise_rng.get_state(), "torch_rng": torch.get_rng_state(),
            "feature_sum": self.feature_sum, "feature_count": self.feature_count,
            "data_counts": dict(self.data_counts), "config": dataclasses.asdict(self.config),
        }
        if self.D_w is not None:  # e4e's latent discriminator and its Adam, as D and opt_D
            state.update(D_w=self.D_w.state_dict(), opt_D_w=self.opt_D_w.state_dict())
        return state

    def save_checkpoint(self) -> None:
        """Write the checkpoint atomically (process 0). Position in the data = divmod(step, steps_per_epoch)."""
        if self.is_main:
            save_state(self.ckpt_path, self.state())

    def load_checkpoint(self) -> None:
        """Restore M, D, optimisers, step, RNG states and statistics from the run's checkpoint."""
        try:
            s = load_state(self.ckpt_path, device="cpu")
        except CorruptCheckpoint as err:
            raise CorruptCheckpoint(f"cannot resume: {err}. Move it away to start the run afresh.") from None
        saved = s["config"]
        for key in ("layers", "hidden_dim", "batch_size", "profile", "epoch_size", "seed", "free_rows"):
            if saved.get(key) != getattr(self.config, key):
                raise ValueError(f"--resume: {key} was {saved.get(key)!r} in the checkpoint but is "
                                 f"{getattr(self.config, key)!r} now; resume with the run's settings")
        self.M.load_state_dict(s["M"])
        self.D.load_state_dict(s["D"])
        self.opt_M.load_state_dict(s["opt_M"])
        self.opt_D.load_state_dict(s["opt_D"])
        if self.D_w is not None:
            if "D_w" not in s:
                raise ValueError("--resume: the checkpoint holds no latent discriminator (it was written with "
                                 "--latent-d 0); resume with the run's settings")
            self.D_w.load_state_dict(s["D_w"])
            self.opt_D_w.load_state_dict(s["opt_D_w"])
        if s.get("scaler_M"):
            self.scaler_M.load_state_dict(s["scaler_M"])
            self.scaler_D.load_state_dict(s["scaler_D"])
        self.step = int(s["step"])
        self.noise_rng.set_state(s["noise_rng"])
        torch.set_rng_state(s["torch_rng"])
        self.feature_sum = s["feature_sum"].double()
        self.feature_count = int(s["feature_count"])
        self.data_counts = Counter(s.get("data_counts", {}))
        self._apply_schedule(max(self.step - 1, 0))  # M as the last step left it (what samples and export see)

    # -- outputs -----------------------------------------------------------------------------------
    @torch.no_grad()
    def save_samples(self) -> Path | None:
        if not self.is_main:
            return None
        self.M.eval()
        x = self.sample_batch.to(self.device)
        rec = self.G.synthesis(self.M(self.clip.encode_image(x)), noise_mode="const").clamp(-1, 1)
        return save_grid(torch.cat([x, rec]).cpu(), self.out / "samples" / f"step-{self.step:06d}.png",
                         nrow=len(x), upscale=max(1, 128 // x.shape[-1]))

    def _log(self, record: dict[str, Any]) -> None:
        if self.is_main:
            with open(self.out / "log.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def export(self) -> Path:
        """Write M alone (`mapping.safetensors`) with the world and the feature means it saw."""
        image_mean = (self.feature_sum / max(self.feature_count, 1)).float()
        text_mean = vocabulary_text_mean(self.clip, self.config.profile)
        if self.M.centre_input:  # the mean M subtracts is the image mean its text correction must add back
            image_mean = self.M.input_mean.detach().float().cpu()
        extra = {"feature_means": {"image": image_mean.tolist(), "text": text_mean.tolist()},
                 "train": dataclasses.asdict(self.config), "steps": self.step,
                 "data_counts": dict(self.data_counts)}
        bank = feature_bank(self.clip, self.dataset, self.config.bank_size) if self.config.bank_size > 0 else None
        if self.config.inputs in INPUT_TEXT_CORRECTIONS:  # a published bridge: its checkpoint defaults to its own test rule
            extra.update(text_correction=INPUT_TEXT_CORRECTIONS[self.config.inputs], edit_mode="paper")
        return save_mapping(self.M, self.out / "mapping.safetensors", self.world, extra, feature_bank=bank)

    # -- the loop ------------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict[str, Any]:
        """Train to the end (or `max_steps`); returns a summary."""
        c = self.config
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        if resume and self.ckpt_path.exists():
            self.load_checkpoint()
            if self.is_main:
                print(f"resumed {self.ckpt_path} at step {self.step}")
        elif self.ckpt_path.exists() and not resume:
            raise FileExistsError(f"{self.ckpt_path} exists: pass --resume to continue the run, or choose another --out")
        if self.is_main:
            atomic_write_text(self.out / "config.json", json.dumps(dataclasses.asdict(c), indent=2) + "\n")
        last_ckpt = time.monotonic()
        t0 = time.perf_counter()
        stop_at = min(self.total_steps, c.max_steps) if c.max_steps else self.total_steps
        bar = tqdm(total=stop_at, initial=self.step, desc="train M", disable=not self.progress, dynamic_ncols=True)
        running: dict[str, float] = {}
        start_epoch, start_batch = divmod(self.step, self.steps_per_epoch)
        for epoch in range(start_epoch, c.epochs):
            first = start_batch if epoch == start_epoch else 0
            for x in self._batches(epoch, first):
                if self.step >= stop_at:
                    break
                if x is None:  # every image of this batch was unreadable (counted in data_counts)
                    self.step += 1
                    continue
                logged = self.train_step(*x) if isinstance(x, tuple) else self.train_step(x)
                running = {k: 0.9 * running.get(k, v) + 0.1 * v for k, v in logged.items()}
                bar.update(1)
                bar.set_postfix({k: f"{running[k]:.3f}" for k in ("loss_M", "rec", "loss_D") if k in running})
                if self.step % c.log_every == 0 or self.step == 1:
                    self._log({"step": self.step, "epoch": epoch, "lr": self.opt_M.param_groups[0]["lr"],
                               "seconds": round(time.perf_counter() - t0, 2), **logged})
                if c.sample_every and self.step % c.sample_every == 0:
                    self.save_samples()
                if time.monotonic() - last_ckpt > 60 * c.ckpt_minutes:
                    self.save_checkpoint()
                    last_ckpt = time.monotonic()
            if self.step >= stop_at:
                break
            self.save_checkpoint()
            last_ckpt = time.monotonic()
        bar.close()
        self.save_checkpoint()
        summary = {"steps": self.step, "seconds": round(time.perf_counter() - t0, 1),
                   "data": dict(self.data_counts), "out": str(self.out)}
        if self.is_main:
            self.save_samples()
            summary["mapping"] = str(self.export())
            skipped = sum(v for k, v in self.data_counts.items() if k == "skipped")
            converted = self.data_counts.get("converted", 0)
            if skipped or converted:
                print(f"training data: {converted} images converted (mode/size), {skipped} unreadable and skipped")
        return summary


# -------------------------------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m clip2gan.train", description="Train the CLIP2GAN mapping network M.")
    add_config_args(p, TrainConfig, exclude=("weights",))
    p.add_argument("--weight", action="append", default=[], metavar="NAME=VALUE",
                   help="override a loss weight, e.g. --weight lpips=0.5 (names: rec lpips adv id div gp)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--add-feature-bank", metavar="PATH", default=None,
                   help="add a feature bank to an existing mapping file or run folder, then exit")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The `TrainConfig` of parsed `python -m clip2gan.train` flags (`--weight NAME=VALUE` checked here)."""
    weights = {}
    for item in args.weight:
        name, _, value = item.partition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            raise SystemExit(f"--weight {item!r}: expected NAME=NUMBER") from None
    LossWeights.from_dict(weights)  # unknown names fail here, before any model is built
    return cli_config(TrainConfig, args, weights=weights)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.add_feature_bank:
        path = add_feature_bank(args.add_feature_bank, n=args.bank_size or None)
        print(f"feature bank added to {path}")
        return 0
    config = config_from_args(args)
    saved_path = Path(config.out) / "config.json"
    if args.resume and saved_path.exists():
        # A resumed run keeps its own settings; only these may be changed on the command line.
        given = config
        config = TrainConfig(**json.loads(saved_path.read_text()))
        defaults = config_from_args(_parser().parse_args([]))
        for key in ("epochs", "max_steps", "device", "num_workers", "log_every", "sample_every", "ckpt_minutes"):
            if getattr(given, key) != getattr(defaults, key):
                setattr(config, key, getattr(given, key))
    trainer = Trainer(config)
    summary = trainer.fit(resume=args.resume)
    if trainer.is_main:
        print(json.dumps(summary, indent=2))
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
