"""The toy world's small CLIP: open_clip's own `CLIP` class, a custom config, trained here (01_clip_embedding.ipynb).

No pretrained CLIP can be downloaded where this project is built, so the `toyfaces` profile
uses a CLIP that this module trains contrastively on captioned toy faces
(`clip2gan.toy.faces`) with open_clip's `ClipLoss`. The model is an ordinary open_clip model:

    from clip2gan.toy import clip as toyclip
    toyclip.register()                                   # once; idempotent
    model = open_clip.create_model("toyfaces-clip")      # random weights, offline
    tokenizer = open_clip.get_tokenizer("toyfaces-clip")
    model, tokenizer = toyclip.load()                    # the shipped weights (data/toyfaces-clip.safetensors)

Architecture (`clip2gan/model_configs/toyfaces-clip.json`; 7.78 M parameters, 15.6 MB in float16):

* vision: ViT, 32 px input, 8 px patches (16 tokens + class token), width 128, 4 layers, 4 heads
  (0.84 M parameters). 8 px rather than 4 px patches: the vision tower costs a quarter as much,
  which matters on two shared CPU cores, and the linear patch embedding (8·8·3 = 192 pixel values
  → 128 dimensions) keeps what the bold toy features need;
* text: causal transformer, context 64 tokens (the longest toy caption is 61 tokens with the start
  and end tokens, so no caption is cut), width 128, 3 layers, 4 heads, open_clip's BPE vocabulary
  (49,408 tokens: the embedding table is 6.3 M of the 7.8 M parameters, which is why the text
  width stays small);
* joint embedding: `embed_dim = 128` (the toy world has 10 attributes with 2-5 values each:
  128 dimensions are plenty, and a small `embed_dim` keeps the mapping network's input small).

Preprocessing: images in [-1, 1] become `(x + 1) / 2`, then are normalised with OpenAI's CLIP
mean/std (`PREPROCESS_CFG`), at 32 px. These are open_clip's defaults, so the preprocessing config
is correct wherever the model comes from: `open_clip.create_model("toyfaces-clip")` sets
`model.visual.preprocess_cfg == {"size": (32, 32), "mean": OPENAI_DATASET_MEAN, ...}` itself, and
`load()` sets the copy stored with the weights (`config["preprocess_cfg"]` in the JSON beside the
`.safetensors`). `ClipEncoder` reads `model.visual.preprocess_cfg`; `to_model_input` applies it.

Training (`train`, `python -m clip2gan.toy.clip train`): pairs rendered on the fly, batch `b` of
step `s` drawn from `numpy.random.default_rng([seed, s, 0x7C11])` (so a resumed run sees exactly
the batches it would have seen); part of every batch is *minimal pairs* — two faces with the same
pose, shading and caption wording that differ in one attribute, captioned so that the caption
states that attribute (the hard negatives that teach the small features: glasses, beard, bangs,
lipstick, expression, hat). An auxiliary loss (`aux_weight`) adds linear attribute classifiers on
the image embedding: contrastive training alone stays on a plateau where glasses, beard, lipstick
and expression are at chance (measured: 1,750 steps × 128 pairs, minimal pairs included, left all
four at 27-64% zero-shot while colours were at 99-100%), because neither tower's features for a
small feature can grow before the other's do. The supervised term breaks that symmetry on the
image side only; the text tower learns from captions alone, and the heads are not exported.
AdamW, linear warm-up then cosine decay, gradient clipping,
`logit_scale` clamped at 100 as open_clip's trainer does. Checkpoints (`<run_dir>/last.safetensors`:
fp32 weights, AdamW moments and the step, written atomically, so `kill -9` leaves the previous one)
every `ckpt_every` steps; `resume=True` continues from it bit-for-bit. The shipped file is the final
model in float16 with its config (`save`).

Evaluation (`evaluate`, `python -m clip2gan.toy.clip eval`): zero-shot accuracy per attribute on
held-out renders (one prompt per value, `clip2gan.toy.faces.value_prompt`, argmax cosine; a bald face's hair
colour is not scored) and caption → image top-1 retrieval among groups of 100.

Worlds: the same recipe trains the CLIP of the toy-pets world (`--profile toypets`, `world="pets"`;
08_evaluation.ipynb): batches, minimal pairs, the auxiliary heads and the evaluation come from the
world's module (`clip2gan.toy.world_module`), and the saved file records its world (faces' files
record none), so `evaluate` and `load` know which world a CLIP reads. The architecture keeps its
open_clip name, `toyfaces-clip`, whichever world trains it.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from clip2gan.checkpoint import load_optimizer_tensors, load_safetensors, optimizer_tensors, save_safetensors
from clip2gan.cli import add_config_args, config_from_args, option
from clip2gan.hub import DATA_DIR, resolve, write_manifest_entry
from clip2gan.profiles import get_profile
from clip2gan.toy import world_module
from clip2gan.toy.faces import EVAL_SEED, RESOLUTION

__all__ = [
    "MODEL_NAME",
    "CONFIG_PATH",
    "PREPROCESS_CFG",
    "register",
    "model_config",
    "create_model",
    "get_tokenizer",
    "to_model_input",
    "encode_images",
    "encode_texts",
    "encode_text_trimmed",
    "flip_attribute",
    "make_batch",
    "lr_at",
    "train",
    "save",
    "load",
    "evaluate",
    "ClipTrainOptions",
    "ClipEvalOptions",
    "cmd_train",
    "cmd_eval",
    "main",
]

MODEL_NAME = "toyfaces-clip"
Tokenizer = Callable[[Sequence[str]], torch.Tensor]  # open_clip's: texts -> token ids [N, context_length]
CONFIG_PATH = Path(__file__).resolve().parent.parent / "model_configs" / f"{MODEL_NAME}.json"

# open_clip's defaults (OpenAI CLIP mean/std); `size` is the ViT's input resolution.
PREPROCESS_CFG: dict[str, Any] = {
    "size": 32,
    "mode": "RGB",
    "mean": (0.48145466, 0.4578275, 0.40821073),
    "std": (0.26862954, 0.26130258, 0.27577711),
    "interpolation": "bicubic",
    "resize_mode": "shortest",
    "fill_color": 0,
}

_DATA_SALT = 0x7C11  # third entropy word of the training stream: no ToyFaces(seed, i) item collides with it


# ----------------------------------------------------------------------------------------------
# The model: config, registration, creation, preprocessing


def register() -> None:
    """Make `toyfaces-clip` known to open_clip (`create_model`, `get_tokenizer`); idempotent (01_clip_embedding.ipynb).

    Adds only this package's JSON file to open_clip's config search path (once), so it works
    offline and changes nothing else in open_clip.
    """
    import open_clip  # deferred: importing open_clip takes seconds, and only these functions need it

    if MODEL_NAME not in open_clip.list_models():
        open_clip.add_model_config(CONFIG_PATH)


def model_config(**overrides: Any) -> dict[str, Any]:
    """The packaged architecture (a fresh dict), with top-level keys or `vision_cfg`/`text_cfg` entries
    replaced by `overrides` (e.g. `model_config(embed_dim=32, vision_cfg={"layers": 1})`) (01_clip_embedding.ipynb)."""
    cfg = json.loads(CONFIG_PATH.read_text())
    for key, value in overrides.items():
        if key in ("vision_cfg", "text_cfg") and isinstance(value, dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


def _preprocess_cfg(config: dict[str, Any]) -> dict[str, Any]:
    return {**PREPROCESS_CFG, "size": int(config["vision_cfg"]["image_size"])}


def create_model(config: dict[str, Any] | None = None, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A randomly initialised `open_clip.model.CLIP` for `config` (default: the packaged one) (01_clip_embedding.ipynb).

    Built through `open_clip.create_model("toyfaces-clip", ...)`, with `config`'s `embed_dim`,
    `vision_cfg` and `text_cfg` passed as overrides; `model.visual.preprocess_cfg` is set.
    """
    import open_clip  # deferred: importing open_clip takes seconds
    from open_clip.model import set_model_preprocess_cfg

    register()
    config = model_config() if config is None else copy.deepcopy(config)
    level = logging.root.level  # open_clip warns "no pretrained weights loaded": expected here
    logging.root.setLevel(max(level, logging.ERROR))
    try:
        model = open_clip.create_model(MODEL_NAME, device=device, **config)
    finally:
        logging.root.setLevel(level)
    set_model_preprocess_cfg(model, _preprocess_cfg(config))
    return model


def get_tokenizer(config: dict[str, Any] | None = None) -> Tokenizer:
    """open_clip's tokenizer for `toyfaces-clip` with `config`'s context length (01_clip_embedding.ipynb)."""
    import open_clip  # deferred: importing open_clip takes seconds

    register()
    config = model_config() if config is None else config
    return open_clip.get_tokenizer(MODEL_NAME, context_length=int(config["text_cfg"]["context_length"]))


def to_model_input(images: torch.Tensor, preprocess_cfg: dict[str, Any] | None = None) -> torch.Tensor:
    """Images `[N, 3, H, W]` in [-1, 1] → the ViT's input: `(x + 1) / 2` normalised with the config's
    mean/std, area-resized to its size if needed (differentiable) (01_clip_embedding.ipynb)."""
    cfg = preprocess_cfg or PREPROCESS_CFG
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [N, 3, H, W] in [-1, 1], got shape {tuple(images.shape)}")
    size = cfg["size"]
    size = (size, size) if isinstance(size, int) else tuple(size)
    if tuple(images.shape[-2:]) != size:
        images = F.interpolate(images, size=size, mode="area" if images.shape[-1] > size[-1] else "bilinear")
    mean = torch.tensor(cfg["mean"], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(cfg["std"], dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return ((images + 1) / 2 - mean) / std


def encode_text_trimmed(model: torch.nn.Module, tokens: torch.Tensor, normalize: bool = False,
                        buckets: int = 1) -> torch.Tensor:
    """`model.encode_text(tokens)` computed without the padding after each caption's end token (01_clip_embedding.ipynb).

    Equal to `model.encode_text` up to float rounding (a test checks it), not an approximation:
    the text transformer is causal and pools at the end token, so the padding after the end token
    never influences the result. The batch is cut to its longest caption; with `buckets > 1` the
    captions are first sorted by length and encoded in that many groups, each cut to its own
    longest caption. On toy captions (mean 32 of 64 tokens) this halves the text tower's time.
    """
    lengths = (tokens != 0).sum(dim=1).clamp(min=1)
    if buckets > 1 and len(tokens) > buckets:
        order = lengths.argsort()
        parts = [encode_text_trimmed(model, tokens[idx], normalize) for idx in order.chunk(buckets)]
        out = torch.empty(len(tokens), parts[0].shape[-1], dtype=parts[0].dtype, device=parts[0].device)
        return out.index_copy(0, order, torch.cat(parts))
    length = int(lengths.max())
    tokens = tokens[:, :length]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)  # [N, L, width]
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]  # the end token (highest id)
    if model.text_projection is not None:
        x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else x @ model.text_projection
    return F.normalize(x, dim=-1) if normalize else x


def _model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def encode_images(model: torch.nn.Module, images: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """L2-normalised image features `[N, embed_dim]` for images `[N, 3, H, W]` in [-1, 1] (01_clip_embedding.ipynb)."""
    cfg = getattr(model.visual, "preprocess_cfg", None)
    device = _model_device(model)
    out = [model.encode_image(to_model_input(images[i:i + batch_size].to(device), cfg), normalize=True).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.empty(0, model.text_projection.shape[-1])


@torch.no_grad()
def encode_texts(model: torch.nn.Module, tokenizer: Tokenizer, texts: Sequence[str], batch_size: int = 500) -> torch.Tensor:
    """L2-normalised text features `[N, embed_dim]` (01_clip_embedding.ipynb)."""
    device = _model_device(model)
    texts = list(texts)
    out = [encode_text_trimmed(model, tokenizer(texts[i:i + batch_size]).to(device), normalize=True, buckets=4).float().cpu()
           for i in range(0, len(texts), batch_size)]
    return torch.cat(out) if out else torch.empty(0, model.text_projection.shape[-1])


# ----------------------------------------------------------------------------------------------
# Training data: independent pairs plus minimal pairs (hard negatives)


def flip_attribute(attrs: dict[str, Any], name: str, rng: np.random.Generator, world: Any = None) -> dict[str, Any]:
    """A copy of `attrs` with attribute `name` changed to another value, keeping the world's
    constraints (faces: bald → no hair colour, no bangs; un-balding draws a hair colour) (01_clip_embedding.ipynb).

    The world's own `flip_attribute` (`world`: None for faces). Flipping a bald face's `hair_color`
    or `bangs` is not possible: raises ValueError.
    """
    return world_module(world).flip_attribute(attrs, name, rng)


def _minimal_pair(rng: np.random.Generator, resolution: int, world: Any, tries: int = 30):
    """Two renders differing in one attribute, same nuisance draws and wording, both captions stating it."""
    a = world.sample_attributes(rng)
    names = world.flippable_attributes(a)
    weights = np.array([world.MINIMAL_PAIR_WEIGHTS.get(n, 1.0) for n in names])
    name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
    b = world.flip_attribute(a, name, rng)
    image_seed = int(rng.integers(2**62))
    images = [world.render(x, resolution, np.random.default_rng(image_seed)) for x in (a, b)]
    texts = None
    for _ in range(tries):
        caption_seed = int(rng.integers(2**62))
        (ta, ma), (tb, mb) = (world.caption(x, np.random.default_rng(caption_seed), return_mentioned=True)
                              for x in (a, b))
        texts = (ta, tb)
        if name in ma and name in mb:
            break
    return images, list(texts), [a, b]


def make_batch(step: int, batch_size: int, seed: int = 0, hard_fraction: float = 0.5,
               resolution: int | None = None, world: Any = None) -> tuple[torch.Tensor, list[str], list[dict[str, Any]]]:
    """Training batch `step` of the stream `seed`: `(images [B, 3, R, R] in [-1, 1], captions, attrs)` (01_clip_embedding.ipynb).

    Deterministic per `(seed, step)`. A fraction `hard_fraction` of the batch is minimal pairs
    (adjacent items), the rest independent renders with the world's captions
    (`clip2gan.toy.faces.caption`; `world`: None for faces, 'pets' for `clip2gan.toy.pets`).
    """
    world = world_module(world)
    resolution = resolution or RESOLUTION
    rng = np.random.default_rng([int(seed), int(step), _DATA_SALT])
    n_pairs = int(batch_size * hard_fraction) // 2
    images: list[torch.Tensor] = []
    texts: list[str] = []
    attrs: list[dict[str, Any]] = []
    for _ in range(n_pairs):
        im, tx, at = _minimal_pair(rng, resolution, world)
        images += im
        texts += tx
        attrs += at
    for _ in range(batch_size - 2 * n_pairs):
        a = world.sample_attributes(rng)
        images.append(world.render(a, resolution, rng))
        texts.append(world.caption(a, rng))
        attrs.append(a)
    return torch.stack(images), texts, attrs


# ----------------------------------------------------------------------------------------------
# Optimisation, checkpoints


def lr_at(step: int, steps: int, lr: float, warmup: int, min_lr_ratio: float = 0.0) -> float:
    """Learning rate at `step`: linear warm-up over `warmup` steps, then cosine decay to `min_lr_ratio * lr`
    (01_clip_embedding.ipynb)."""
    if step < warmup:
        return lr * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, steps - warmup))
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """open_clip's rule: no weight decay on gains, biases, norms and the logit scale."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name:
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]


def _checkpoint_tensors(modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    tensors = {f"{prefix}.{k}": v for prefix, module in modules.items() for k, v in module.state_dict().items()}
    return {**tensors, **optimizer_tensors(opt, "optim")}


def _restore_checkpoint(modules: dict[str, torch.nn.Module], opt: torch.optim.Optimizer,
                        tensors: dict[str, torch.Tensor]) -> None:
    for prefix, module in modules.items():
        n = len(prefix) + 1
        module.load_state_dict({k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}, strict=True)
    load_optimizer_tensors(opt, tensors, "optim")


def save(model: torch.nn.Module, path: str | os.PathLike, config: dict[str, Any], half: bool = True,
         **info: Any) -> Path:
    """Write `model`'s weights (float16 by default) and `{"model_cfg", "preprocess_cfg", ...info}` (01_clip_embedding.ipynb).

    The file loads with `load(path)`; writes are atomic (`clip2gan.checkpoint`). `info` may hold
    `world='pets'` (the world it was trained on; none means faces).
    """
    meta = {"format": "clip2gan.toy.clip/1", "open_clip_model": MODEL_NAME, "model_cfg": config,
            "preprocess_cfg": {k: list(v) if isinstance(v, tuple) else v
                               for k, v in getattr(model.visual, "preprocess_cfg", _preprocess_cfg(config)).items()},
            **info}
    return save_safetensors(model.state_dict(), path, meta, half=half)


def load(path_or_name: str | os.PathLike = MODEL_NAME, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Tokenizer]:
    """`(model, tokenizer)` from shipped weights (by artefact name, through `clip2gan.hub.resolve`) or a file,
    in eval mode, float32 (01_clip_embedding.ipynb).

    A missing file raises `hub.WeightsNotFound`; a damaged one `checkpoint.CorruptCheckpoint` or
    `hub.ChecksumMismatch` — each names the file and what to do.
    """
    from open_clip.model import set_model_preprocess_cfg  # deferred: importing open_clip takes seconds

    path = resolve(path_or_name)
    state, meta = load_safetensors(path)
    if "model_cfg" not in meta:
        raise ValueError(f"{path} has no 'model_cfg' in its config: not a toyclip checkpoint (written by toyclip.save)")
    config = meta["model_cfg"]
    model = create_model(config)
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()}, strict=True)
    if "preprocess_cfg" in meta:
        pp = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["preprocess_cfg"].items()}
        set_model_preprocess_cfg(model, pp)
    model.meta = meta
    return model.to(device).eval(), get_tokenizer(config)


class _AttributeHeads(torch.nn.Module):
    """Linear attribute classifiers on the normalised image embedding: an optional auxiliary loss.

    Contrastive training alone sits for a long time on a plateau where neither tower separates
    the small features (glasses, beard, lipstick, expression): the gradient that would separate the
    image features is proportional to how much the text features already differ, and vice versa.
    A small supervised term on the image side breaks that symmetry; the text tower still learns
    only from captions through `ClipLoss`. The heads are not part of the exported CLIP.
    """

    def __init__(self, embed_dim: int, world: Any = None):
        super().__init__()
        self.world = world_module(world)
        self.heads = torch.nn.ModuleDict({a: torch.nn.Linear(embed_dim, len(v)) for a, v in self.world.ATTRIBUTES.items()})

    def loss(self, image_features: torch.Tensor, attrs: Sequence[dict[str, Any]]) -> torch.Tensor:
        labels = torch.stack([self.world.attributes_to_labels(a) for a in attrs]).to(image_features.device)  # [N, n_attr]
        x = image_features * 10.0  # unit-norm features: a fixed scale so the heads need no large weights
        return sum(F.cross_entropy(head(x), labels[:, j], ignore_index=-1)
                   for j, head in enumerate(self.heads.values())) / len(self.heads)


def _checkpoint_path(run_dir: Path) -> Path:
    return run_dir / "last.safetensors"


def train(
    out: str | os.PathLike,
    steps: int = 2000,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    resume: bool = True,
    run_dir: str | os.PathLike | None = None,
    config: dict[str, Any] | None = None,
    hard_fraction: float = 0.5,
    aux_weight: float = 5.0,
    warmup: int | None = None,
    weight_decay: float = 0.1,
    grad_clip: float = 1.0,
    ckpt_every: int = 100,
    eval_every: int = 0,
    eval_n: int = 500,
    threads: int | None = 1,
    progress: bool = True,
    half: bool = True,
    max_seconds: float | None = None,
    log: Callable[[str], None] | None = None,
    world: Any = None,
) -> dict[str, Any]:
    """Train the toy CLIP contrastively (open_clip `ClipLoss`) and write it to `out` (01_clip_embedding.ipynb).

    run_dir: where the resumable checkpoint (`last.safetensors` + `.json`: fp32 weights, AdamW
    state, step, cumulative training seconds) and `log.jsonl` go; default `runs/<out stem>`.
    With `resume=True` an existing checkpoint is continued (asking for more `steps` than it was
    started with extends the cosine schedule). `max_seconds` stops early after a checkpoint (the
    run can be resumed later); `out` is written only when all `steps` are done.
    Returns `{"step", "train_seconds", "loss" (mean of the last 50), "losses" (this call's, per step),
    "out" (None if stopped early), "metrics" (the last monitoring evaluation, if eval_every)}`.
    world: the toy world of the captioned renders (None: faces; 'pets': `clip2gan.toy.pets`; 08_evaluation.ipynb).
    """
    from open_clip.loss import ClipLoss  # deferred: importing open_clip takes seconds

    log = log or (lambda s: print(s, file=sys.stderr))
    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out)
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / out.stem
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt = _checkpoint_path(run_dir)
    config = model_config() if config is None else copy.deepcopy(config)
    warmup = int(warmup if warmup is not None else min(500, max(1, steps // 10)))
    hparams = {"batch_size": batch_size, "lr": lr, "seed": seed, "hard_fraction": hard_fraction,
               "warmup": warmup, "weight_decay": weight_decay, "grad_clip": grad_clip, "aux_weight": aux_weight}
    world = world_module(world)
    if world.NAME != "faces":  # faces' checkpoints record no world, as before worlds existed
        hparams["world"] = world.NAME

    torch.manual_seed(seed)
    model = create_model(config)
    aux = _AttributeHeads(int(config["embed_dim"]), world)  # trained only if aux_weight > 0; never exported
    modules = {"model": model, "aux": aux}
    groups = _param_groups(model, weight_decay) + ([{"params": list(aux.parameters()), "weight_decay": 0.0}]
                                                   if aux_weight else [])
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.98), eps=1e-6)
    step, train_seconds = 0, 0.0
    if resume and ckpt.is_file():
        tensors, meta = load_safetensors(ckpt)
        if meta.get("model_cfg") != config:
            raise ValueError(f"{ckpt} was trained with another architecture; use another run_dir or resume=False")
        changed = {k: (meta["hparams"].get(k), v) for k, v in hparams.items() if meta["hparams"].get(k) != v}
        if changed:
            raise ValueError(f"{ckpt} was trained with other settings {changed}; use another run_dir or resume=False")
        _restore_checkpoint(modules, opt, tensors)
        step, train_seconds = int(meta["step"]), float(meta["train_seconds"])
        if meta.get("steps") != steps:
            log(f"resuming {ckpt} at step {step}: schedule length {meta.get('steps')} → {steps}")
        else:
            log(f"resuming {ckpt} at step {step}")

    def save_checkpoint() -> None:
        save_safetensors(_checkpoint_tensors(modules, opt), ckpt,
                         {"step": step, "steps": steps, "train_seconds": round(train_seconds, 1),
                          "model_cfg": config, "hparams": hparams})

    loss_fn = ClipLoss()
    tokenizer = get_tokenizer(config)
    pp = _preprocess_cfg(config)
    resolution = int(config["vision_cfg"]["image_size"])
    log_path = run_dir / "log.jsonl"
    metrics: dict[str, Any] | None = None
    losses: list[float] = []
    started = time.time()
    bar = tqdm(total=steps, initial=step, desc="toyclip", disable=not progress, dynamic_ncols=True)
    model.train()
    last_save = step
    try:
        while step < steps:
            t0 = time.time()
            images, texts, attrs = make_batch(step, batch_size, seed, hard_fraction, resolution, world)
            tokens = tokenizer(texts)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, steps, lr, warmup)
            image_features = model.encode_image(to_model_input(images, pp), normalize=True)
            text_features = encode_text_trimmed(model, tokens, normalize=True, buckets=4)
            loss = loss_fn(image_features, text_features, model.logit_scale.exp())
            if aux_weight:
                loss = loss + aux_weight * aux.loss(image_features, attrs)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            step += 1
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", scale=f"{model.logit_scale.exp().item():.1f}")
            record: dict[str, Any] = {"step": step, "loss": round(losses[-1], 4), "lr": opt.param_groups[0]["lr"],
                                      "logit_scale": round(model.logit_scale.exp().item(), 2),
                                      "train_seconds": round(train_seconds, 1)}
            if eval_every and (step % eval_every == 0 or step == steps):
                model.eval()
                metrics = evaluate(model, tokenizer, n=eval_n, seed=_EVAL_SEED_VAL, world=world)
                model.train()
                record["eval"] = metrics
                log(f"step {step}: zero-shot min {metrics['zero_shot_min']:.3f} "
                    f"({json.dumps({k: round(v, 3) for k, v in metrics['zero_shot'].items()})}), "
                    f"retrieval top-1 {metrics['retrieval_top1']:.3f}")
            if step % 10 == 0 or "eval" in record:
                with open(log_path, "a") as f:
                    f.write(json.dumps(record) + "\n")
            train_seconds += time.time() - t0  # wall time, monitoring evaluations included
            if step - last_save >= ckpt_every or step == steps:
                save_checkpoint()
                last_save = step
            if max_seconds is not None and time.time() - started > max_seconds and step < steps:
                save_checkpoint()
                last_save = step
                log(f"stopping after {time.time() - started:.0f} s at step {step} (resume to continue)")
                break
    finally:
        bar.close()
        if step > last_save:  # an exception (e.g. KeyboardInterrupt): keep the work done so far
            save_checkpoint()
    result: dict[str, Any] = {"step": step, "train_seconds": round(train_seconds, 1),
                              "loss": float(np.mean(losses[-50:])) if losses else None, "losses": losses,
                              "out": None}
    if step >= steps:
        model.eval()
        save(model, out, config, half=half,
             training={"steps": steps, **hparams, "train_seconds": round(train_seconds, 1)},
             **({"world": world.NAME} if world.NAME != "faces" else {}))
        result["out"] = str(out)
    if metrics is not None:
        result["metrics"] = metrics
    return result


# ----------------------------------------------------------------------------------------------
# Evaluation

# held-out renders for the monitoring evaluation during training (the final one uses EVAL_SEED)
_EVAL_SEED_VAL = 1_000_033


@torch.no_grad()
def evaluate(model: torch.nn.Module, tokenizer: Tokenizer | None = None, n: int = 1000, seed: int | None = None,
             group_size: int = 100, world: Any = None) -> dict[str, Any]:
    """Zero-shot accuracy per attribute and caption → image retrieval on `n` held-out renders (01_clip_embedding.ipynb).

    world: the toy world of the renders and prompts (None: the one the loaded model records, else faces;
    08_evaluation.ipynb).

    Zero-shot: one prompt per value (`clip2gan.toy.faces.value_prompt`), the value whose prompt has the
    highest cosine with the image wins; a bald face's hair colour is not scored. Retrieval: the
    renders are cut into groups of `group_size`; each caption ranks the images of its group, and
    top-1 is the fraction whose own image ranks first (averaged over all groups).
    Returns `{"zero_shot": {attr: acc}, "zero_shot_min", "zero_shot_mean", "retrieval_top1", "n", "seed"}`.
    """
    seed = EVAL_SEED if seed is None else int(seed)
    world = world_module(world if world is not None else getattr(model, "meta", {}).get("world"))
    attributes = world.ATTRIBUTES
    if tokenizer is None:
        tokenizer = get_tokenizer(model_config(text_cfg={"context_length": int(model.context_length)}))
    was_training = model.training
    model.eval()
    try:
        size = getattr(model.visual, "preprocess_cfg", {}).get("size", PREPROCESS_CFG["size"])
        data = world.WorldDataset(n, seed=seed, resolution=int(size if isinstance(size, int) else size[0]))
        items = [data[i] for i in range(n)]
        images = torch.stack([it["image"] for it in items])
        labels = torch.stack([it["label"] for it in items])  # [n, n_attributes], -1: not scored
        image_features = encode_images(model, images)
        zero_shot: dict[str, float] = {}
        for j, (name, values) in enumerate(attributes.items()):
            text_features = encode_texts(model, tokenizer, [world.value_prompt(name, v) for v in values])
            pred = (image_features @ text_features.T).argmax(dim=1)
            keep = labels[:, j] >= 0
            zero_shot[name] = float((pred[keep] == labels[keep, j]).float().mean()) if keep.any() else float("nan")
        caption_features = encode_texts(model, tokenizer, [it["caption"] for it in items])
        hits, total = 0, 0
        for g in range(0, n - group_size + 1, group_size):
            sim = caption_features[g:g + group_size] @ image_features[g:g + group_size].T
            hits += int((sim.argmax(dim=1) == torch.arange(group_size)).sum())
            total += group_size
    finally:
        model.train(was_training)
    return {
        "zero_shot": zero_shot,
        "zero_shot_min": min(zero_shot.values()),
        "zero_shot_mean": float(np.mean(list(zero_shot.values()))),
        "retrieval_top1": hits / total if total else float("nan"),
        "retrieval_groups": total // group_size if total else 0,
        "n": n,
        "seed": seed,
    }


# ----------------------------------------------------------------------------------------------
# Command line


def _repo_relative(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


@dataclass
class ClipTrainOptions:
    """The settings of `python -m clip2gan.toy.clip train` (01_clip_embedding.ipynb)."""

    out: str | None = option(None, "where the final float16 weights go (+ .json; none: data/<profile>-clip.safetensors)")
    run_dir: str | None = option(None, "checkpoint and log folder (none: runs/<out stem>)")
    steps: int = option(2000, "training steps (more than a resumed run had extends its cosine schedule)")
    batch_size: int = option(128, "caption-image pairs per step")
    lr: float = option(1e-3, "peak AdamW learning rate")
    seed: int = option(0, "seed of the initial weights and of the stream of training pairs")
    hard_fraction: float = option(0.5, "share of each batch in minimal pairs (faces differing in one attribute)")
    aux_weight: float = option(5.0, "weight of the auxiliary attribute loss on image features (0: contrastive only)")
    warmup: int | None = option(None, "linear warm-up steps (none: a tenth of the steps, at most 500)")
    weight_decay: float = option(0.1, "AdamW weight decay (not on gains, biases, norms and the logit scale)")
    ckpt_every: int = option(100, "steps between resumable checkpoints")
    eval_every: int = option(0, "steps between monitoring evaluations on 500 renders (0: none)")
    threads: int = option(1, "torch CPU threads")
    max_seconds: float | None = option(None, "stop after this many seconds, resumably")
    resume: bool = option(True, "continue from the run's checkpoint if it exists (--no-resume: start over)")
    config: str | None = option(None, "JSON file with an architecture (none: the packaged one)")
    manifest: str = option("auto", "evaluate and record in data/MANIFEST.json (auto: when --out is in data/)",
                           choices=("auto", "yes", "no"))
    progress: bool = option(True, "show a progress bar")
    profile: str = option("toyfaces", "the toy world whose captioned renders train it", choices=("toyfaces", "toypets"))


@dataclass
class ClipEvalOptions:
    """The settings of `python -m clip2gan.toy.clip eval` (01_clip_embedding.ipynb)."""

    weights: str | None = option(None, "artefact name or .safetensors path (none: <profile>-clip)")
    n: int = option(1000, "held-out renders")
    seed: int = option(EVAL_SEED, "seed of the held-out renders")
    threads: int = option(1, "torch CPU threads")
    json: str | None = option(None, "also write the metrics to this file")
    profile: str = option("toyfaces", "the toy world (names the default weights; a file's own world wins)",
                          choices=("toyfaces", "toypets"))


def cmd_train(argv: Sequence[str] | None = None) -> int:
    """`python -m clip2gan.toy.clip train [options]` (01_clip_embedding.ipynb)."""
    p = argparse.ArgumentParser(prog="python -m clip2gan.toy.clip train",
                                description="Train the toy world's small CLIP (resumable).")
    add_config_args(p, ClipTrainOptions)
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = config_from_args(ClipTrainOptions, p.parse_args(argv))
    config = json.loads(Path(opts.config).read_text()) if opts.config else None
    world = world_module(get_profile(opts.profile))
    out_path = opts.out or str(DATA_DIR / f"{opts.profile}-clip.safetensors")
    result = train(out_path, steps=opts.steps, batch_size=opts.batch_size, lr=opts.lr, seed=opts.seed,
                   resume=opts.resume, run_dir=opts.run_dir, config=config, hard_fraction=opts.hard_fraction,
                   aux_weight=opts.aux_weight, warmup=opts.warmup, weight_decay=opts.weight_decay,
                   ckpt_every=opts.ckpt_every, eval_every=opts.eval_every, threads=opts.threads,
                   progress=opts.progress, max_seconds=opts.max_seconds, world=world)
    print(json.dumps({k: v for k, v in result.items() if k not in ("metrics", "losses")}))
    if result["out"] is None:
        return 0
    out = Path(result["out"])
    record = opts.manifest == "yes" or (opts.manifest == "auto" and out.resolve().parent == DATA_DIR.resolve())
    if record:
        model, tokenizer = load(out)
        metrics = evaluate(model, tokenizer, n=1000, world=world)
        _print_metrics(metrics)
        command = "python -m clip2gan.toy.clip train " + shlex.join(argv)
        bar_met = metrics["zero_shot_min"] >= 0.9 and metrics["retrieval_top1"] >= 0.5  # the toy CLIP's bar
        write_manifest_entry(out, command=command, train_seconds=result["train_seconds"], metrics=metrics,
                             bar_met=bar_met, steps=opts.steps, pairs_seen=opts.steps * opts.batch_size,
                             threads=opts.threads, params=sum(p.numel() for p in model.parameters()))
    return 0


def _print_metrics(metrics: dict[str, Any]) -> None:
    width = max(len(a) for a in metrics["zero_shot"])
    print(f"zero-shot accuracy on {metrics['n']} held-out renders (seed {metrics['seed']}):")
    for name, acc in metrics["zero_shot"].items():
        print(f"  {name:<{width}}  {100 * acc:6.2f}%")
    print(f"  {'minimum':<{width}}  {100 * metrics['zero_shot_min']:6.2f}%")
    print(f"caption → image top-1 among 100 ({metrics['retrieval_groups']} groups): "
          f"{100 * metrics['retrieval_top1']:.2f}%")


def cmd_eval(argv: Sequence[str] | None = None) -> int:
    """`python -m clip2gan.toy.clip eval [--weights NAME_OR_PATH] [--n 1000] [--seed S] [--json FILE]`
    (01_clip_embedding.ipynb)."""
    p = argparse.ArgumentParser(prog="python -m clip2gan.toy.clip eval",
                                description="Zero-shot accuracy and retrieval of the toy CLIP on held-out renders.")
    add_config_args(p, ClipEvalOptions)
    opts = config_from_args(ClipEvalOptions, p.parse_args(list(argv) if argv is not None else None))
    torch.set_num_threads(opts.threads)
    model, tokenizer = load(opts.weights or f"{opts.profile}-clip")
    metrics = evaluate(model, tokenizer, n=opts.n, seed=opts.seed)
    _print_metrics(metrics)
    if opts.json:
        Path(opts.json).write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m clip2gan.toy.clip {train,eval} [options]` (01_clip_embedding.ipynb)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"train": cmd_train, "eval": cmd_eval}
    if not argv or argv[0] not in commands:
        print("usage: python -m clip2gan.toy.clip {train,eval} [options]   (each takes --help)")
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    return commands[argv[0]](argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
