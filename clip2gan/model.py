"""The assembled CLIP2GAN model: frozen CLIP + trained mapping network M + frozen StyleGAN2 G.

Introduced in 05_training.ipynb and used from 06_generation.ipynb on:

    model = CLIP2GAN.from_pretrained("toyfaces")          # shipped toy CLIP, G and trained M
    ws = model.encode_image(images)                       # [N, num_ws, w_dim]  = M(C_img(x))
    ws_t = model.encode_text(prompts)                     # [N, num_ws, w_dim]  = M(C_text(t))
    rec = model.reconstruct(images)                       # G(M(C_img(x)))
    imgs = model.generate(prompts, n_per_prompt=4, seed=0)
    out = model.edit(images, "wearing eyeglasses", beta=1.0)

Images are `[N, 3, H, W]` in [-1, 1]; `encode_image` accepts any H, W (CLIP resizes them).
A mapping checkpoint (`save_mapping`) stores M's weights with a JSON config that names the world
it was trained in (profile, CLIP, generator), so `from_checkpoint` can rebuild the rest, and a
*feature bank*: the CLIP image features of (up to 2,048 of) the training images.

Text features and the modality gap (`clip2gan.modality_gap`). M is trained on image features only
and meets text features only at test time. `text_correction` says what happens to a text feature
before M: None is the paper (as it is), 'recentre' shifts it from the text cone's centre to the
image cone's ('collapse': the same without renormalising, for an M trained the C3 way), 'nearest'
replaces it by the softmax-weighted mean of its nearest image features in the bank
(`clip2gan.modality_gap.nearest_image_features`). A checkpoint names its default in its config
(`text_correction`); checkpoints written since the feature bank exists default to 'nearest' — a
departure from the paper, made because the paper's bare rule decodes text features off the image
manifold (toyfaces: text → image 52-76 % over training seeds against 94-96 % with 'nearest';
06_generation.ipynb, results/README.md). `text_correction=None` gives the paper's rule. In the same
way such checkpoints edit with `edit_mode='neighbours'` (`clip2gan.edit`), and `mode='paper'` gives
the paper's z + β M(C_text(t)).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from clip2gan import hub, stylegan2
from clip2gan.checkpoint import load_safetensors, save_safetensors
from clip2gan.clip_encoder import ClipEncoder
from clip2gan.edit import MODES, edit_image
from clip2gan.generate import generate
from clip2gan.mapping import MappingNetwork
from clip2gan.modality_gap import (
    BANK_KEY,
    bank_from_state,
    check_bank,
    collapse,
    load_feature_bank,
    nearest_image_features,
    recentre,
    require_bank,
)
from clip2gan.profiles import get_profile
from clip2gan.runtime import pick_device

__all__ = ["CLIP2GAN", "WorldMismatchWarning", "world_fingerprint", "check_world", "build_clip",
           "load_generator_for_profile", "save_mapping", "load_mapping", "attach_feature_bank", "MAPPING_FORMAT",
           "TEXT_CORRECTIONS", "METHODS"]

MAPPING_FORMAT = "clip2gan.mapping"
TEXT_CORRECTIONS = (None, "recentre", "collapse", "nearest")
# The two methods and what each sets at test time: (text_correction, edit_mode). 'custom' names any
# other combination (set through text_correction / edit_mode directly, as the ablation sweeps do).
METHODS = {"paper": (None, "paper"), "bridged": ("nearest", "neighbours")}


def load_generator_for_profile(profile: str, device: str | torch.device = "cpu", generator: str | None = None):
    """The frozen StyleGAN2 generator of a world: the shipped toy G (safetensors) or an NVIDIA pickle."""
    return stylegan2.load_generator(hub.resolve(generator or get_profile(profile).generator), device=device)


def build_clip(world: dict[str, Any], device: str | torch.device = "cpu") -> ClipEncoder:
    """The frozen CLIP of a world record (`profile`, and optionally `clip`, `clip_model`, `clip_pretrained`)."""
    return ClipEncoder.from_profile(world["profile"], device=device, clip=world.get("clip"),
                                    clip_model=world.get("clip_model"), pretrained=world.get("clip_pretrained"))


class WorldMismatchWarning(UserWarning):
    """A mapping network is being used with other CLIP or generator weights than it was trained with."""


def world_fingerprint(world: dict[str, Any]) -> dict[str, str]:
    """sha256 of the CLIP and generator files a world resolves to (toy CLIP and any file-based G).

    Stored with a mapping checkpoint, so that loading M beside different weights (a retrained toy
    CLIP, another generator) is noticed instead of producing silent garbage.
    """
    profile = get_profile(world["profile"])
    wanted = {"generator_sha256": world.get("generator") or profile.generator}
    if profile.toy_clip and not world.get("clip_model"):
        wanted["clip_sha256"] = world.get("clip") or profile.clip
    prints = {}
    for key, name in wanted.items():
        try:
            prints[key] = hub.sha256_file(hub.resolve(name))
        except (hub.WeightsNotFound, TypeError):  # weights given as objects (tests) or absent: nothing to record
            continue
    return prints


def check_world(config: dict[str, Any], path: str | os.PathLike) -> None:
    """Warn (`WorldMismatchWarning`) when the weights found now differ from those M was trained with."""
    recorded = config.get("world_sha256") or {}
    if not recorded:
        return
    current = world_fingerprint(config["world"])
    for key, value in recorded.items():
        if key in current and current[key] != value:
            what = "CLIP" if key.startswith("clip") else "generator"
            warnings.warn(
                f"{path}: this mapping network was trained with another {what} (sha256 {value[:12]}…) than the one "
                f"found now ({current[key][:12]}…); its outputs will not match. Retrain M (python -m clip2gan.train) "
                "or restore the weights it was trained with.", WorldMismatchWarning, stacklevel=3)


def save_mapping(M: MappingNetwork, path: str | os.PathLike, world: dict[str, Any], extra: dict[str, Any] | None = None,
                 half: bool = False, feature_bank: torch.Tensor | None = None) -> Path:
    """Save M (safetensors) with its config and the world it maps into (profile, clip, generator).

    feature_bank: `[B, D]` CLIP image features of training images (for `text_correction='nearest'`),
    stored in the same file (float16); a file with a bank defaults to that correction.
    """
    config = {"format": MAPPING_FORMAT, "version": 1, "mapping": M.config, "world": world,
              "world_sha256": world_fingerprint(world), **(extra or {})}
    state = dict(M.state_dict())
    if feature_bank is not None:
        check_bank(feature_bank, M.in_dim)
        state[BANK_KEY] = feature_bank.detach().half()
        config = {"text_correction": "nearest", "edit_mode": "neighbours", **config,
                  "feature_bank_size": int(feature_bank.shape[0])}
    return save_safetensors(state, path, config, half=half)


def load_mapping(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[MappingNetwork, dict[str, Any]]:
    """Load a mapping network written by `save_mapping`; returns (M, config)."""
    state, config = load_safetensors(path)
    if config.get("format") != MAPPING_FORMAT:
        raise ValueError(f"{path} is not a clip2gan mapping checkpoint (format {config.get('format')!r})")
    bank_from_state(state)  # M's weights only
    M = MappingNetwork(**config["mapping"])
    M.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return M.to(device).eval(), config


def attach_feature_bank(path: str | os.PathLike, bank: torch.Tensor) -> Path:
    """Rewrite a mapping file (atomically) with `bank` `[B, D]` as its feature bank; M's weights, their
    dtype and the rest of its config are kept (`clip2gan.train.add_feature_bank` builds the bank)."""
    M, config = load_mapping(path)
    state, _ = load_safetensors(path)
    half = any(v.dtype == torch.float16 for k, v in state.items() if k != BANK_KEY)
    written_by_save = ("format", "version", "mapping", "world", "world_sha256", "text_correction", "edit_mode",
                       "feature_bank_size")
    extra = {k: v for k, v in config.items() if k not in written_by_save}
    return save_mapping(M, path, config["world"], extra, half=half, feature_bank=bank)


class CLIP2GAN(nn.Module):
    """CLIP (frozen) → M → StyleGAN2 synthesis (frozen) (05_training.ipynb).

    method — one switch for every test-time choice:

    * 'paper': the paper as written. Generation: x' = G(M(C_text(t) ⊙ ε)), ε ~ N(1, 0.36) per
      coordinate, renormalised (`clip2gan.generate`: the paper's test-time noise, read as a factor);
      editing: n = M(C_text(t)), z'_i = z_i + β n_i on every row (eq. 11-14). No bank is used.
    * 'bridged' (the default of checkpoints with a feature bank): text features are replaced by the
      mean of their nearest training-image features before M, the noise is the training noise, and
      edits use per-image neighbour directions (`clip2gan.modality_gap`, `clip2gan.edit`).
    * 'custom': any other `text_correction` / `edit_mode` pair, set explicitly (the ablation sweeps).

    `model.method` says which one a model is. Functions that implement a paper rule (`edit.text_direction`
    with mode 'paper') use the bare text features whatever the model's method; per-call overrides
    (`generate(..., method="paper")`, `correction=`) are named for what they do.

    clip: a `ClipEncoder`; mapping: a `MappingNetwork` with `in_dim == clip.embed_dim` and
    `(num_ws, w_dim)` equal to G's; generator: a StyleGAN2 `Generator` (only `.synthesis` is used).
    text_correction: None (the paper: text features go into M as they are), 'recentre' (move text
    features from the text cone to the image cone, using `image_mean` and
    `text_mean`, the mean CLIP features of training images and of a prompt vocabulary, and renormalise:
    the mean shift of Liang et al.), 'collapse' (the same shift without renormalising, for an M trained
    the C3 way on centred image features; `clip2gan.modality_gap.collapse`) or 'nearest'
    (the mean of the `nearest_k` nearest image features in `feature_bank` `[B, D]`, softmax weights at
    `nearest_temperature`; see the module docstring). edit_mode: the default of `edit` ('paper',
    'directional' or 'neighbours'; `clip2gan.edit`).
    """

    def __init__(self, clip: ClipEncoder, mapping: MappingNetwork, generator: nn.Module, profile: str = "custom",
                 text_correction: str | None = None, image_mean: torch.Tensor | None = None,
                 text_mean: torch.Tensor | None = None, noise_mode: str = "const",
                 feature_bank: torch.Tensor | None = None, nearest_k: int = 16, nearest_temperature: float = 0.01,
                 edit_mode: str | None = None, method: str | None = None):
        super().__init__()
        if method is not None:
            if method not in METHODS:
                raise ValueError(f"method must be one of {tuple(METHODS)}, got {method!r}")
            wanted = METHODS[method]
            given = (text_correction, edit_mode)
            if any(g is not None and g != w for g, w in zip(given, wanted)):
                raise ValueError(f"method={method!r} sets text_correction={wanted[0]!r} and edit_mode={wanted[1]!r}; "
                                 f"got text_correction={text_correction!r}, edit_mode={edit_mode!r} as well. Pass "
                                 "either the method or the two settings (a custom combination), not both")
            if method == "bridged":
                require_bank(feature_bank, "method='bridged'")
            text_correction, edit_mode = wanted
        if mapping.in_dim != clip.embed_dim:
            raise ValueError(f"M takes {mapping.in_dim}-d features but the CLIP gives {clip.embed_dim}-d")
        if (mapping.num_ws, mapping.w_dim) != (generator.num_ws, generator.w_dim):
            raise ValueError(f"M writes [{mapping.num_ws}, {mapping.w_dim}] but G takes "
                             f"[{generator.num_ws}, {generator.w_dim}]")
        if text_correction not in TEXT_CORRECTIONS:
            raise ValueError(f"text_correction must be one of {TEXT_CORRECTIONS}, got {text_correction!r}")
        dim = clip.embed_dim
        if feature_bank is not None and (feature_bank.ndim != 2 or feature_bank.shape[1] != dim):
            raise ValueError(f"feature_bank must be [B, {dim}], got {tuple(feature_bank.shape)}")
        if text_correction == "nearest":
            require_bank(feature_bank, "text_correction='nearest'")
        self.clip, self.mapping, self.generator = clip, mapping, generator
        self.profile = profile
        self.text_correction = text_correction
        self.noise_mode = noise_mode
        self.nearest_k, self.nearest_temperature = int(nearest_k), float(nearest_temperature)
        edit_mode = edit_mode or "paper"
        if edit_mode not in MODES:
            raise ValueError(f"edit_mode must be one of {MODES}, got {edit_mode!r}")
        if edit_mode == "neighbours":
            require_bank(feature_bank, "edit_mode='neighbours'")
        self.edit_mode = edit_mode
        bank = torch.zeros(0, dim) if feature_bank is None else feature_bank.detach().float().cpu()
        self.register_buffer("feature_bank", bank)
        self.register_buffer("image_mean", torch.zeros(dim) if image_mean is None else image_mean.detach().float().cpu())
        self.register_buffer("text_mean", torch.zeros(dim) if text_mean is None else text_mean.detach().float().cpu())
        self.generator.requires_grad_(False).eval()
        self.mapping.eval()

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, profile: str = "toyfaces", device: str | torch.device = "cpu",
                        mapping: str | os.PathLike | None = None, **kwargs: Any) -> "CLIP2GAN":
        """The shipped world of `profile` with a trained M ('toyfaces': everything from `data/`).

        mapping: a mapping checkpoint path or hub name (default `<profile>-mapping`). method: 'paper'
        (every test-time choice the paper's) or 'bridged' (the project's default; see the class
        docstring). `CLIP2GAN.from_pretrained("toyfaces", method="paper")` is the paper's model.
        """
        device = pick_device(device)
        path = hub.resolve(mapping or f"{profile}-mapping")
        return cls.from_checkpoint(path, device=device, **kwargs)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device | None = None,
                        clip: ClipEncoder | None = None, generator: nn.Module | None = None,
                        **kwargs: Any) -> "CLIP2GAN":
        """Rebuild a model from a mapping checkpoint or a training run folder (`runs/NAME`).

        method: 'paper' or 'bridged' (see the class docstring); None: the checkpoint's default (bridged
        when it stores a feature bank). clip, generator: an already loaded CLIP and G to use instead of
        loading the ones the checkpoint names (a sweep shares one pair between many Ms; the world check
        is then skipped, and the device defaults to G's). Other keyword arguments go to `CLIP2GAN(...)`.
        """
        if device is None:
            device = next(generator.parameters()).device if generator is not None else "cpu"
        device = pick_device(device)
        path = Path(path)
        if path.is_dir():
            path = path / "mapping.safetensors"
        M, config = load_mapping(path, device=device)
        world = config["world"]
        if clip is None or generator is None:
            check_world(config, path)
        clip = clip if clip is not None else build_clip(world, device)
        G = generator if generator is not None else load_generator_for_profile(
            world["profile"], device=device, generator=world.get("generator"))
        stats = config.get("feature_means", {})
        opts: dict[str, Any] = {"feature_bank": load_feature_bank(path)}
        if kwargs.get("method") is None and "text_correction" not in kwargs and "edit_mode" not in kwargs:
            # the checkpoint's own default (a checkpoint with a feature bank defaults to the bridged method)
            opts.update(text_correction=config.get("text_correction"), edit_mode=config.get("edit_mode"))
        opts.update(kwargs)
        model = cls(clip, M, G, profile=world.get("profile", "custom"),
                    image_mean=torch.tensor(stats["image"]) if "image" in stats else None,
                    text_mean=torch.tensor(stats["text"]) if "text" in stats else None, **opts)
        return model.to(device).eval()

    # -- properties --------------------------------------------------------------------------
    @property
    def method(self) -> str:
        """'paper', 'bridged' or 'custom', read off the model's current settings (see the class docstring)."""
        return next((m for m, v in METHODS.items() if v == (self.text_correction, self.edit_mode)), "custom")

    @property
    def device(self) -> torch.device:
        return self.image_mean.device

    @property
    def resolution(self) -> int:
        return int(self.generator.img_resolution)

    @property
    def num_ws(self) -> int:
        return int(self.generator.num_ws)

    @property
    def w_dim(self) -> int:
        return int(self.generator.w_dim)

    # -- the maps ----------------------------------------------------------------------------
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """C_img(x): `[N, 3, H, W]` in [-1, 1] → `[N, D]` unit vectors."""
        return self.clip.encode_image(images.to(self.device))

    def text_features(self, prompts: Sequence[str] | str, correction: str | None | bool = True) -> torch.Tensor:
        """C_text(t) → `[N, D]`; with the model's text correction unless `correction=False`."""
        return self.correct_text_features(self.clip.encode_text(prompts), correction)

    def correct_text_features(self, f: torch.Tensor, correction: str | None | bool = True) -> torch.Tensor:
        """Apply a text correction to text features `[N, D]` (True: the model's own; False/None: none)."""
        mode = self.text_correction if correction is True else (correction or None)
        if mode not in TEXT_CORRECTIONS:
            raise ValueError(f"correction must be one of {TEXT_CORRECTIONS} or True/False, got {correction!r}")
        if mode == "recentre":
            return recentre(f, self.image_mean, self.text_mean)
        if mode == "collapse":
            return collapse(f, self.text_mean, self.image_mean)
        if mode == "nearest":
            require_bank(self.feature_bank, "correction 'nearest'")
            return nearest_image_features(f, self.feature_bank, k=self.nearest_k, temperature=self.nearest_temperature)
        return f

    def map(self, features: torch.Tensor) -> torch.Tensor:
        """M: `[N, D]` → ws `[N, num_ws, w_dim]`."""
        return self.mapping(features.to(self.device))

    def synthesize(self, ws: torch.Tensor, noise_mode: str | None = None) -> torch.Tensor:
        """G: ws `[N, num_ws, w_dim]` → images `[N, 3, R, R]` in ≈[-1, 1]."""
        if ws.ndim != 3 or tuple(ws.shape[1:]) != (self.num_ws, self.w_dim):
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {tuple(ws.shape)}")
        return self.generator.synthesis(ws.to(self.device), noise_mode=noise_mode or self.noise_mode)

    @torch.no_grad()
    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """ws = M(C_img(x)): `[N, 3, H, W]` in [-1, 1] → `[N, num_ws, w_dim]`."""
        return self.map(self.image_features(images))

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str] | str) -> torch.Tensor:
        """ws = M(C_text(t)): N prompts → `[N, num_ws, w_dim]`."""
        return self.map(self.text_features(prompts))

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """x' = G(M(C_img(x))) at the generator's resolution."""
        return self.synthesize(self.encode_image(images)).clamp(-1, 1)

    def generate(self, prompts: Sequence[str] | str, n_per_prompt: int = 1, seed: int | None = None, **kwargs: Any):
        """Text → images `[len(prompts) * n_per_prompt, 3, R, R]` (see `clip2gan.generate.generate`)."""
        return generate(self, prompts, n_per_prompt=n_per_prompt, seed=seed, **kwargs)

    def edit(self, images: Any, text: str, beta: float = 1.0, space: str = "wplus", layers: Any = None, **kwargs: Any):
        """Edit images with a text (see `clip2gan.edit.edit_image`)."""
        return edit_image(self, images, text, beta=beta, space=space, layers=layers, **kwargs)
