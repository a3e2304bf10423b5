"""The networks that read the toy world: the attribute classifier and the toy identity net (00_setup.ipynb).

Both are small CNNs on 32 px renders of `clip2gan.toy.faces`, trained here on fresh renders:

* `AttributeClassifier`: one head per attribute, the world's judge. It scores text→image accuracy,
  editing accuracy and sample quality, so it is an evaluation instrument only, never a training loss.
  It reads either toy world: `AttributeClassifier(world="pets")` has the heads of `clip2gan.toy.pets`
  (`--profile toypets` on the command line; 08_evaluation.ipynb).
* `ToyIdentityNet`: the toy world's stand-in for ArcFace, unit-norm embeddings that agree for faces
  with equal identity attributes (`clip2gan.toy.faces.IDENTITY_ATTRIBUTES`); the identity loss L_id
  back-propagates through it.

Training is resumable (a training-state checkpoint of the weights and Adam's moments every
`--save-every` seconds; `--resume` continues bit for bit) and ends with float16 weights and a
held-out evaluation written beside them. Commands::

    python -m clip2gan.toy.nets train-classifier --out data/toyfaces-classifier.safetensors --steps 2000
    python -m clip2gan.toy.nets train-identity --out data/toyfaces-identity.safetensors
    python -m clip2gan.toy.nets eval-classifier --weights toyfaces-classifier
    python -m clip2gan.toy.nets eval-identity --weights toyfaces-identity
    python -m clip2gan.toy.nets train-classifier --profile toypets --out runs/pets/toypets-classifier.safetensors

The identity net is the faces' only: the pets world has no identity loss (the paper drops L_id for AFHQ).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from clip2gan.checkpoint import load_optimizer_tensors, load_safetensors, optimizer_tensors, save_safetensors
from clip2gan.cli import add_config_args, config_from_args, option
from clip2gan.hub import resolve, write_manifest_entry
from clip2gan.profiles import get_profile
from clip2gan.toy import world_module
from clip2gan.toy.faces import (
    ATTRIBUTES,
    EVAL_SEED,
    IDENTITY_ATTRIBUTES,
    N_IDENTITIES,
    RESOLUTION,
    check_images,
    identity_labels,
    render,
    sample_attributes,
)
from clip2gan.toy.world import pick

__all__ = [
    "AttributeClassifier",
    "ToyIdentityNet",
    "evaluate_classifier",
    "evaluate_identity",
    "NetTrainOptions",
    "NetEvalOptions",
    "train_network",
    "SUBCOMMANDS",
    "main",
]


# ----------------------------------------------------------------------------------------------
# The networks


class _ConvTrunk(nn.Module):
    """3×3 conv/BN/ReLU stages 32→64→128→256 channels (stride 2 between), global average pool,
    then a `feature_dim` fully connected layer. ~0.65 M parameters at the defaults."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128, 256), feature_dim: int = 256):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate(widths):
            stride = 1 if i == 0 else 2
            layers += [nn.Conv2d(c_in, c, 3, stride, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            if 0 < i < len(widths) - 1:
                layers += [nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True)]
            c_in = c
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Linear(c_in, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.convs(x)  # [N, C, R/8, R/8]
        return F.relu(self.fc(x.mean(dim=(2, 3))))  # [N, feature_dim]


class _WorldNet(nn.Module):
    """Shared loading, validation and batching for the toy world's evaluation networks."""

    artifact_name = ""

    def __init__(self, resolution: int = RESOLUTION, widths: Sequence[int] = (32, 64, 128, 256), feature_dim: int = 256):
        super().__init__()
        self.config = {"resolution": int(resolution), "widths": [int(c) for c in widths], "feature_dim": int(feature_dim)}
        self.resolution = int(resolution)
        self.trunk = _ConvTrunk(widths, feature_dim)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def _batched(self, images: torch.Tensor, fn, batch_size: int = 512):
        images = check_images(images, self.resolution)
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                outs = [fn(images[i:i + batch_size].to(self.device)) for i in range(0, len(images), batch_size)]
        finally:
            self.train(was_training)
        return outs

    def features(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Penultimate features `[N, feature_dim]` on the CPU (e.g. for a Fréchet distance in toy
        feature space; 00_setup.ipynb). No gradients; inputs are validated with `check_images`."""
        outs = self._batched(images, lambda x: self.trunk(x).cpu(), batch_size)
        return torch.cat(outs) if outs else torch.empty(0, self.config["feature_dim"])

    @classmethod
    def from_pretrained(cls, path_or_name: str | None = None, device: str | torch.device = "cpu"):
        """Load weights by artefact name (`clip2gan.hub.resolve`: data/, env var, cache) or file path,
        in eval mode on `device` (00_setup.ipynb). `model.meta` holds the file's config (the command
        that trained it, its measured metrics)."""
        path = resolve(path_or_name or cls.artifact_name)
        state, config = load_safetensors(path)
        arch = config.get("arch", {})
        if config.get("class") not in (None, cls.__name__):
            raise ValueError(f"{path} holds a {config.get('class')}, not a {cls.__name__}")
        model = cls(**arch)
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        model.meta = config
        return model.to(device).eval()


class AttributeClassifier(_WorldNet):
    """A small CNN (~0.65 M parameters) with one head per attribute: the toy world's judge (00_setup.ipynb).

    An evaluation instrument only: it scores text→image accuracy, editing accuracy and sample
    quality, so it must never be a training loss for the models it judges. Input: `[N, 3, 32, 32]`
    in [-1, 1]. Trained on renders with blur and noise augmentation so that slightly soft
    generator samples are still read (`python -m clip2gan.toy.nets train-classifier`).
    world: the toy world it reads ('faces', 'pets' or anything `clip2gan.toy.world_module` takes;
    08_evaluation.ipynb); `self.world` is its module, `self.attributes` its attribute schema.
    """

    artifact_name = "toyfaces-classifier"

    def __init__(self, resolution: int = RESOLUTION, widths: Sequence[int] = (32, 64, 128, 256), feature_dim: int = 256,
                 world: Any = None):
        super().__init__(resolution, widths, feature_dim)
        self.world = world_module(world)
        if self.world.NAME != "faces":  # the faces' files record no world, as before worlds existed
            self.config["world"] = self.world.NAME
        self.attributes: dict[str, tuple[str, ...]] = self.world.ATTRIBUTES
        self.heads = nn.ModuleDict({a: nn.Linear(feature_dim, len(v)) for a, v in self.attributes.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per attribute, `{name: [N, n_values]}` (no input validation: the training path)."""
        f = self.trunk(images)
        return {a: head(f) for a, head in self.heads.items()}

    def predict_proba(self, images: torch.Tensor, batch_size: int = 512) -> dict[str, torch.Tensor]:
        """`{attribute: [N, n_values]}` probabilities, columns in `ATTRIBUTES` order."""
        outs = self._batched(images, lambda x: {a: z.softmax(-1).cpu() for a, z in self(x).items()}, batch_size)
        return {a: torch.cat([o[a] for o in outs]) if outs else torch.empty(0, len(v)) for a, v in self.attributes.items()}

    def predict(self, images: torch.Tensor, batch_size: int = 512) -> list[dict[str, str | None]]:
        """The most likely attribute dict per image; an attribute the world does not score there is None
        (a face read as bald gets `hair_color=None`: the world's `UNSCORED_WHEN`)."""
        proba = self.predict_proba(images, batch_size)
        idx = {a: p.argmax(-1).tolist() for a, p in proba.items()}
        n = len(next(iter(proba.values())))
        out = []
        for i in range(n):
            d: dict[str, str | None] = {a: self.attributes[a][idx[a][i]] for a in self.attributes}
            for attr, (other, value) in self.world.UNSCORED_WHEN.items():
                if d[other] == value:
                    d[attr] = None
            out.append(d)
        return out




class ToyIdentityNet(_WorldNet):
    """The toy world's stand-in for ArcFace: L2-normalised embeddings that agree for faces with equal
    identity attributes (skin, hair colour and length, beard, background) whatever their expression,
    glasses, hat, lipstick, bangs or pose (00_setup.ipynb; used by the identity loss L_id).

    Trained as a CosFace-style normalised classifier over the 264 identity classes
    (`python -m clip2gan.toy.nets train-identity`). `forward(images) -> [N, embed_dim]`, unit norm,
    differentiable (the loss back-propagates through it); `embed` is the validated, no-grad form.
    """

    artifact_name = "toyfaces-identity"

    def __init__(self, resolution: int = RESOLUTION, widths: Sequence[int] = (32, 64, 128, 256), feature_dim: int = 256,
                 embed_dim: int = 128):
        super().__init__(resolution, widths, feature_dim)
        self.config["embed_dim"] = int(embed_dim)
        self.embed_head = nn.Linear(feature_dim, embed_dim)
        self.class_centers = nn.Parameter(torch.randn(N_IDENTITIES, embed_dim) * 0.1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.embed_head(self.trunk(images)), dim=-1)  # [N, embed_dim]

    def embed(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """Validated, no-grad embeddings `[N, embed_dim]` with unit norm, on the CPU."""
        outs = self._batched(images, lambda x: self(x).cpu(), batch_size)
        return torch.cat(outs) if outs else torch.empty(0, self.config["embed_dim"])

    def cosine_logits(self, emb: torch.Tensor) -> torch.Tensor:
        return emb @ F.normalize(self.class_centers, dim=-1).t()  # [N, N_IDENTITIES]


# ----------------------------------------------------------------------------------------------
# Evaluation


def evaluate_classifier(model: AttributeClassifier, n: int = 2000, seed: int = EVAL_SEED,
                        batch_size: int = 500) -> dict[str, float]:
    """Per-attribute accuracy on `n` held-out renders of the classifier's world, e.g. `ToyFaces(n, seed)`
    (00_setup.ipynb).

    Hair colour is scored on faces with hair only (a bald face has none).
    """
    world = model.world
    attributes = world.ATTRIBUTES
    data = world.WorldDataset(n, seed=seed, resolution=model.resolution)
    correct = torch.zeros(len(attributes))
    count = torch.zeros(len(attributes))
    for start in range(0, n, batch_size):
        batch = data.collate([data[i] for i in range(start, min(n, start + batch_size))])
        proba = model.predict_proba(batch["image"])
        pred = torch.stack([proba[a].argmax(-1) for a in attributes], 1)
        valid = batch["label"] >= 0
        correct += ((pred == batch["label"]) & valid).sum(0).float()
        count += valid.sum(0).float()
    return {a: round(float(c / max(k, 1)), 5) for a, c, k in zip(attributes, correct, count)}


def _identity_edit_pairs(n: int, seed: int, resolution: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Faces and their edits: one non-identity attribute changed (same identity) or one identity
    attribute changed (different identity), with the same nuisance draws."""
    a_img, same_img, diff_img = [], [], []
    base_labels = []
    non_identity = [a for a in ATTRIBUTES if a not in IDENTITY_ATTRIBUTES and a != "bangs"]
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        attrs = sample_attributes(rng)
        nuisance = int(rng.integers(2**31))
        same = dict(attrs)
        name = non_identity[int(rng.integers(len(non_identity)))]
        same[name] = pick(rng, [v for v in ATTRIBUTES[name] if v != attrs[name]])
        diff = dict(attrs)
        name = pick(rng, ("skin", "hair_color", "beard", "background"))
        if name == "hair_color" and attrs["hair_length"] == "bald":
            name = "skin"
        diff[name] = pick(rng, [v for v in ATTRIBUTES[name] if v != attrs[name]])
        for store, a in ((a_img, attrs), (same_img, same), (diff_img, diff)):
            store.append(render(a, resolution, np.random.default_rng(nuisance)))
        base_labels.append(identity_labels(attrs))
    return torch.stack(a_img), torch.stack(same_img), torch.stack(diff_img), torch.tensor(base_labels)


def evaluate_identity(model: ToyIdentityNet, n: int = 2000, seed: int = EVAL_SEED) -> dict[str, float]:
    """How well the toy identity net separates identities, on `n` held-out faces (00_setup.ipynb).

    Returns the identity-class accuracy (nearest class centre among 264), the mean cosine between a
    face and the same face with one non-identity attribute edited (expression, glasses, hat,
    lipstick: should be high) or with one identity attribute edited (should be low), and the
    verification accuracy of the threshold 0.5 on those pairs.
    """
    base, same, diff, labels = _identity_edit_pairs(n, seed, model.resolution)
    e0, e1, e2 = model.embed(base), model.embed(same), model.embed(diff)
    with torch.no_grad():
        acc = (model.cosine_logits(e0).argmax(-1) == labels).float().mean()
    cos_same, cos_diff = (e0 * e1).sum(-1), (e0 * e2).sum(-1)
    verification = torch.cat([cos_same > 0.5, cos_diff <= 0.5]).float().mean()
    return {"identity_accuracy": round(float(acc), 5), "cos_same_identity": round(float(cos_same.mean()), 4),
            "cos_other_identity": round(float(cos_diff.mean()), 4), "verification_accuracy": round(float(verification), 5)}


# ----------------------------------------------------------------------------------------------
# Training (resumable; `python -m clip2gan.toy.nets train-classifier | train-identity`)

_STREAM_TAG = {"classifier": 7919, "identity": 7927}  # training streams never collide with ToyFaces(seed)
_KINDS = ("classifier", "identity")


@dataclass
class NetTrainOptions:
    """The settings of `python -m clip2gan.toy.nets train-classifier | train-identity` (00_setup.ipynb)."""

    out: str | None = option(None, "weights to write, with a .json beside them (none: data/<profile>-<kind>.safetensors)")
    steps: int = option(1600, "training steps, each on a batch of fresh renders")
    batch: int = option(128, "renders per step")
    lr: float = option(2e-3, "peak Adam learning rate (linear warm-up, then cosine decay)")
    seed: int = option(0, "seed of the initial weights and of the stream of training renders")
    threads: int = option(1, "torch CPU threads (1 leaves the other cores free)")
    state: str | None = option(None, "training-state checkpoint (default runs/<out stem>/train-state.safetensors)")
    resume: bool = option(False, "continue from the training-state checkpoint if it exists")
    save_every: float = option(60.0, "seconds between training-state checkpoints")
    stop_after: int | None = option(None, "stop after this many steps of this invocation, saving the training state")
    eval_n: int = option(2000, "held-out renders for the final evaluation")
    fp32: bool = option(False, "store float32 weights instead of float16")
    manifest: bool = option(False, "record the result in data/MANIFEST.json")
    profile: str = option("toyfaces", "the toy world whose renders train it (toypets: the classifier only)",
                          choices=("toyfaces", "toypets"))


@dataclass
class NetEvalOptions:
    """The settings of `python -m clip2gan.toy.nets eval-classifier | eval-identity` (00_setup.ipynb)."""

    weights: str | None = option(None, "artefact name or .safetensors path (none: <profile>-<kind>)")
    n: int = option(2000, "held-out renders (identity: faces, each rendered three times)")
    seed: int = option(EVAL_SEED, "seed of the held-out renders")
    threads: int = option(1, "torch CPU threads")
    profile: str = option("toyfaces", "the toy world (names the default weights; a file's own world wins)",
                          choices=("toyfaces", "toypets"))


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Blur a third of the batch (σ 0.4-1 px) and add pixel noise to half, so the networks also read
    the softer images a generator makes. Colours are left alone: they carry attributes."""
    n = len(x)
    sigma = 0.4 + 0.6 * float(torch.rand((), generator=gen))
    t = torch.arange(-1, 2, dtype=torch.float32)
    k1 = torch.exp(-t**2 / (2 * sigma**2))
    k1 = k1 / k1.sum()
    kernel = (k1[:, None] * k1[None, :]).expand(3, 1, 3, 3)
    blurred = F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    pick = (torch.rand(n, 1, 1, 1, generator=gen) < 0.33).float()
    x = pick * blurred + (1 - pick) * x
    noisy = (torch.rand(n, 1, 1, 1, generator=gen) < 0.5).float()
    std = 0.05 * torch.rand(n, 1, 1, 1, generator=gen)
    return (x + noisy * std * torch.randn(x.shape, generator=gen)).clamp(-1, 1)


def train_network(kind: str, opts: NetTrainOptions) -> dict[str, Any]:
    """Train the `kind` ('classifier' or 'identity') network on fresh renders (00_setup.ipynb).

    Adam with warm-up and cosine decay; periodic atomic training-state checkpoints (`opts.resume`
    continues from one exactly); at the end float16 weights (`opts.fp32`: float32) and a held-out
    evaluation are written to `opts.out`. Returns the evaluation, or {} when stopped early.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, got {kind!r}")
    world = world_module(get_profile(opts.profile))
    if kind == "identity" and world.NAME != "faces":
        raise ValueError(f"the {opts.profile} world has no identity network: the identity loss is the faces' only "
                         "(the paper drops L_id outside faces)")
    attributes = world.ATTRIBUTES
    torch.set_num_threads(opts.threads)
    out = Path(opts.out or f"data/{opts.profile}-{kind}.safetensors")
    state_path = Path(opts.state) if opts.state else Path("runs") / out.stem / "train-state.safetensors"
    torch.manual_seed(opts.seed)  # initial weights; batches come from per-step generators below
    model: _WorldNet = AttributeClassifier(world=world) if kind == "classifier" else ToyIdentityNet()
    opt = torch.optim.Adam(model.parameters(), lr=opts.lr, betas=(0.9, 0.999))
    step, seconds = 0, 0.0
    if opts.resume and state_path.is_file():
        tensors, cfg = load_safetensors(state_path)
        if cfg.get("kind") != kind or cfg.get("steps") != opts.steps or cfg.get("batch") != opts.batch \
                or cfg.get("world", "faces") != world.NAME:
            raise SystemExit(f"{state_path} was written by another run ({cfg.get('kind')}, steps={cfg.get('steps')}, "
                             f"batch={cfg.get('batch')}, world={cfg.get('world', 'faces')}); delete it or use the same "
                             "settings")
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        load_optimizer_tensors(opt, tensors, "optimizer")
        step, seconds = int(cfg["step"]), float(cfg["train_seconds"])
        print(f"resumed {state_path} at step {step} ({seconds:.0f} s trained)")

    def save_state() -> None:
        tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()}, **optimizer_tensors(opt, "optimizer")}
        meta = {"kind": kind, "step": step, "steps": opts.steps, "batch": opts.batch, "train_seconds": seconds}
        if world.NAME != "faces":
            meta["world"] = world.NAME
        save_safetensors(tensors, state_path, meta, write_json=False)

    warmup = min(200, opts.steps // 10)

    def lr_at(s: int) -> float:
        if s < warmup:
            return opts.lr * (s + 1) / warmup
        return opts.lr * 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, opts.steps - warmup)))

    model.train()
    start_step = step
    bar = tqdm(total=opts.steps, initial=step, desc=f"train-{kind}", unit="step", dynamic_ncols=True)
    last_save = time.time()
    while step < opts.steps:
        t0 = time.time()
        rng = np.random.default_rng([opts.seed, _STREAM_TAG[kind], step])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        images, labels, attrs = world.render_labeled_batch(opts.batch, rng)
        images = _augment(images, gen)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        if kind == "classifier":
            logits = model(images)
            losses = [F.cross_entropy(logits[a], labels[:, j], ignore_index=-1) for j, a in enumerate(attributes)]
            loss = torch.stack(losses).sum()
        else:
            target = torch.tensor([identity_labels(a) for a in attrs])
            cos = model.cosine_logits(model(images))
            margin = F.one_hot(target, N_IDENTITIES).float() * 0.25
            loss = F.cross_entropy(16.0 * (cos - margin), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        seconds += time.time() - t0
        bar.update(1)
        if step % 25 == 0:
            bar.set_postfix(loss=f"{float(loss):.4f}", lr=f"{lr_at(step):.2e}")
        stop = opts.stop_after is not None and step - start_step >= opts.stop_after
        if step == opts.steps or stop or time.time() - last_save > opts.save_every:
            save_state()
            last_save = time.time()
        if stop and step < opts.steps:
            bar.close()
            print(f"stopped at step {step} of {opts.steps}; continue with --resume ({state_path})")
            return {}
    bar.close()

    model.eval()
    if kind == "classifier":
        metrics = {"heldout_accuracy": evaluate_classifier(model, n=opts.eval_n)}
    else:
        metrics = evaluate_identity(model, n=opts.eval_n)
    command = (f"python -m clip2gan.toy.nets train-{kind} --out {out} --steps {opts.steps} --batch {opts.batch} "
               f"--lr {opts.lr} --seed {opts.seed} --threads {opts.threads}")
    if opts.profile != "toyfaces":
        command += f" --profile {opts.profile}"
    config = {"class": type(model).__name__, "arch": model.config, "command": command,
              "train": {"steps": opts.steps, "batch": opts.batch, "lr": opts.lr, "seed": opts.seed,
                        "threads": opts.threads, "train_seconds": round(seconds, 1)},
              "metrics": metrics, "eval": {"n": opts.eval_n, "seed": EVAL_SEED}}
    save_safetensors(model.state_dict(), out, config, half=not opts.fp32)
    print(json.dumps(metrics, indent=2))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) after {seconds:.0f} s of training")
    if opts.manifest:
        write_manifest_entry(out, command, train_seconds=round(seconds, 1), metrics=metrics,
                             eval={"n": opts.eval_n, "seed": EVAL_SEED},
                             device=f"CPU, {opts.threads} thread(s), torch {torch.__version__}")
        print("recorded in data/MANIFEST.json")
    return metrics


# ----------------------------------------------------------------------------------------------
# Command line


def _parser(command: str) -> argparse.ArgumentParser:
    """The parser of one subcommand (`train-classifier`, `eval-identity`, ...)."""
    action, kind = command.split("-", 1)
    what = "Train the toy world's {} network on fresh renders." if action == "train" else \
        "Evaluate the toy world's {} network on held-out renders."
    p = argparse.ArgumentParser(prog=f"python -m clip2gan.toy.nets {command}", description=what.format(kind))
    return add_config_args(p, NetTrainOptions if action == "train" else NetEvalOptions)


def _train_command(kind: str) -> Callable[[Sequence[str]], int]:
    def run(argv: Sequence[str]) -> int:
        args = _parser(f"train-{kind}").parse_args(list(argv))
        train_network(kind, config_from_args(NetTrainOptions, args))
        return 0
    return run


def _eval_command(kind: str) -> Callable[[Sequence[str]], int]:
    def run(argv: Sequence[str]) -> int:
        opts = config_from_args(NetEvalOptions, _parser(f"eval-{kind}").parse_args(list(argv)))
        torch.set_num_threads(opts.threads)
        weights = opts.weights or f"{opts.profile}-{kind}"
        if kind == "classifier":
            metrics = evaluate_classifier(AttributeClassifier.from_pretrained(weights), n=opts.n, seed=opts.seed)
            width = max(map(len, metrics))
            for name, acc in metrics.items():
                print(f"{name:<{width}}  {100 * acc:6.2f}%")
            print(f"{'minimum':<{width}}  {100 * min(metrics.values()):6.2f}%   ({opts.n} renders, seed {opts.seed})")
        else:
            for name, v in evaluate_identity(ToyIdentityNet.from_pretrained(weights), n=opts.n, seed=opts.seed).items():
                print(f"{name:<22} {v}")
        return 0
    return run


# Subcommands of `python -m clip2gan.toy.nets`: each takes the remaining argv and returns an exit code.
SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "train-classifier": _train_command("classifier"),
    "eval-classifier": _eval_command("classifier"),
    "train-identity": _train_command("identity"),
    "eval-identity": _eval_command("identity"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m clip2gan.toy.nets <subcommand> [options]` (00_setup.ipynb)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print("usage: python -m clip2gan.toy.nets {" + ",".join(SUBCOMMANDS) + "} [options]")
        print("  each subcommand takes --help")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"unknown subcommand {argv[0]!r}")
            return 2
        return 0
    return int(SUBCOMMANDS[argv[0]](argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
