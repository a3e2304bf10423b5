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

Data: `--profile toyfaces` renders its training set (ToyFaces, `--epoch-size` images); `--data DIR`
reads an image folder (grayscale, RGBA, palette and 16-bit images are converted, other sizes resized
and centre-cropped, unreadable files skipped — each counted and reported, never a crash);
`--synthetic-data` trains on the generator's own samples when no dataset is at hand — a departure
from the paper, which trains on real images (CelebA-HQ).

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
    LossWeights,
    LPIPSLoss,
    NoiseConfig,
    add_clip_noise,
    d_loss,
    requires_grad,
    total_loss,
)
from clip2gan.mapping import MappingNetwork
from clip2gan.modality_gap import c3_corrupt, feature_bank, lafite_perturb, vocabulary_text_mean
from clip2gan.model import attach_feature_bank, build_clip, load_generator_for_profile, load_mapping, save_mapping
from clip2gan.profiles import get_profile
from clip2gan.runtime import pick_device
from clip2gan.stylegan2 import Discriminator
from clip2gan.toy.faces import ToyFaces, attributes_to_c, sample_attributes
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
    """

    profile: str = option("toyfaces", "the world: toyfaces, ffhq, afhqcat, afhqdog or lsunchurch")
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

    def __post_init__(self) -> None:
        if not self.out:
            self.out = f"runs/{self.profile}-mapping"
        if self.inputs not in INPUTS:
            raise ValueError(f"inputs must be one of {INPUTS}, got {self.inputs!r}")
        if self.c3_sigma < 0 or self.lafite_xi < 0:
            raise ValueError(f"c3_sigma and lafite_xi must be >= 0, got {self.c3_sigma} and {self.lafite_xi}")

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
    """The toy world's training images (captions exist but are never used: training is text-free)."""

    def __init__(self, n: int, seed: int, resolution: int):
        self.faces = ToyFaces(n, seed=seed, resolution=resolution)

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.faces[i]["image"], "ok": True, "status": "ok"}


class SyntheticImages(torch.utils.data.Dataset):
    """Images sampled from the frozen generator itself (`--synthetic-data`; not the paper's setting).

    Item i is G(z_i, c_i) with z_i, c_i drawn from a generator seeded by (seed, i): deterministic.
    A conditional toy generator gets attribute labels sampled from the toy world.
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
        img = self.G(z.to(device), c.to(device), noise_mode="const")[0].clamp(-1, 1).cpu()
        return {"image": img, "ok": True, "status": "ok"}


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
        return ToyImages(c.epoch_size, c.seed, res)
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
    """c for a conditional generator: toy-world attribute one-hots sampled from the data, else zeros."""
    if get_profile(profile).toy_world:
        c = attributes_to_c([sample_attributes(rng) for _ in range(n)])
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
        self.M = MappingNetwork.for_generator(self.G, in_dim=self.clip.embed_dim, n_layers=config.layers,
                                              hidden_dim=config.hidden_dim,
                                              centre_input=config.inputs == "c3").to(self.device)
        _broadcast_params(self.M)
        _broadcast_params(self.D)
        self.weights = config.loss_weights()
        self.noise = config.noise()
        if config.inputs == "c3":  # C3's inputs are centred and unnormalised: keep the diversity noise additive only
            self.noise = dataclasses.replace(self.noise, renormalize=False)
        self.opt_M = torch.optim.Adam(self.M.parameters(), lr=config.lr)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=config.d_lr, betas=(0.0, 0.99))
        self.dataset = dataset if dataset is not None else self._build_dataset()
        per_rank = len(self.dataset) // self.world_size
        self.steps_per_epoch = per_rank // config.batch_size
        if self.steps_per_epoch < 1:
            raise ValueError(f"{len(self.dataset)} images cannot fill one batch of {config.batch_size} per process "
                             f"({self.world_size} processes): lower --batch-size or add data")
        self.total_steps = self.steps_per_epoch * config.epochs
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

    def _collate(self, ids: list[int]) -> torch.Tensor:
        items = [self.dataset[i] for i in ids]
        for it in items:
            self.data_counts[it["status"].split(":")[0]] += 1
            if not it["ok"] and self.is_main:
                warnings.warn(f"training data: {it['status']}", stacklevel=2)
        good = [it["image"] for it in items if it["ok"]]
        if not good:
            return None
        # Refill to the full batch by repeating readable images: D's minibatch-std layer needs a batch
        # divisible by its group size, and a constant batch keeps the loss scale steady.
        return torch.stack([good[i % len(good)] for i in range(len(items))])

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

    def train_step(self, x: torch.Tensor) -> dict[str, float]:
        """One M step on eq. 10 and one D step on eq. 7; returns the logged values."""
        c, dev = self.config, self.device
        x = x.to(dev, non_blocking=True)
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
            x_rec = self.G.synthesis(self.M(f), noise_mode="const")
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
        self.step += 1
        return logged

    # -- checkpoints -----------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "M": self.M.state_dict(), "D": self.D.state_dict(),
            "opt_M": self.opt_M.state_dict(), "opt_D": self.opt_D.state_dict(),
            "scaler_M": self.scaler_M.state_dict(), "scaler_D": self.scaler_D.state_dict(),
            "step": self.step,
            "noise_rng": self.noise_rng.get_state(), "torch_rng": torch.get_rng_state(),
            "feature_sum": self.feature_sum, "feature_count": self.feature_count,
            "data_counts": dict(self.data_counts), "config": dataclasses.asdict(self.config),
        }

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
        for key in ("layers", "hidden_dim", "batch_size", "profile", "epoch_size", "seed"):
            if saved.get(key) != getattr(self.config, key):
                raise ValueError(f"--resume: {key} was {saved.get(key)!r} in the checkpoint but is "
                                 f"{getattr(self.config, key)!r} now; resume with the run's settings")
        self.M.load_state_dict(s["M"])
        self.D.load_state_dict(s["D"])
        self.opt_M.load_state_dict(s["opt_M"])
        self.opt_D.load_state_dict(s["opt_D"])
        if s.get("scaler_M"):
            self.scaler_M.load_state_dict(s["scaler_M"])
            self.scaler_D.load_state_dict(s["scaler_D"])
        self.step = int(s["step"])
        self.noise_rng.set_state(s["noise_rng"])
        torch.set_rng_state(s["torch_rng"])
        self.feature_sum = s["feature_sum"].double()
        self.feature_count = int(s["feature_count"])
        self.data_counts = Counter(s.get("data_counts", {}))

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
                logged = self.train_step(x)
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
