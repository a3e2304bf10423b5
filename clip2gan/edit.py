"""β-controlled text editing of real images in w+ (the paper) or in CLIP space (07_editing.ipynb).

The paper's rule (§3.3, eq. 11-14):

    z = M(C_img(x)),   n = M(C_text(t)),   z'_i = z_i + β n_i  (i = 1 … num_ws),   x' = G(z'),

with β ∈ [0, 1] (Fig. 9 shows β strips). Everything here is one of these pieces:

* `text_direction(model, text, mode, neutral, space, features)`: n. `mode='paper'` is eq. 13, the
  whole mapped text code. It contains M's offset (the average latent and everything a face shares),
  so z + βn also moves every other attribute. `mode='directional'` is
  n = M(C_text(t)) − M(C_text(t_neutral)): only what the text adds to a neutral description.
  `mode='neighbours'` (`neighbour_direction`) is a directional edit made of image features only, one
  per image: among the training images' features (the model's feature bank), the K that best match
  both the text and the image, minus the K nearest the image,

      n_i = mean_{b ∈ N_t(x_i)} M(f_b) − mean_{b ∈ N(x_i)} M(f_b),

  the code of "faces like this one that match t" minus that of "faces like this one": what has to
  change in this face, with the rest averaged out. It crosses the modality gap (the text only ranks
  image features, as `text_correction='nearest'` does in generation) and needs no neutral prompt.
  Checkpoints with a feature bank default to it (`CLIP2GAN.edit_mode`); the paper's rule is
  `mode='paper'`. 07_editing.ipynb and results/README.md compare the three.
* `edit_latent(ws, n, β, layers)`: eq. 11 on all rows or on a layer range (`layer_groups`).
* `edit_image(model, image, text, β, space, layers, mode)`: eq. 11-14 end to end on any image;
  `space='clip'` is the supplement's Table 6 ablation: f' = normalize(f_img + β f_text), x' = G(M(f'))
  (directional: f_text − f_neutral).
* `BetaStrip`: one encode of the image and of the text, then any number of βs (Fig. 9 strips, the
  `EditingApp` slider).

Layer ranges (`layer_groups(num_ws)`). StyleGAN2's w+ row 2k and 2k + 1 drive roughly the
2^(k+2)-px synthesis level (rows are shared at block boundaries). For num_ws ≥ 10 (64 px and up)
the StyleGAN split by resolution (Karras et al. 2019, §3) is used: coarse = 4²-8² = rows 0-3,
middle = 16²-32² = rows 4-7, fine = 64² and up = rows 8…num_ws-1 (18 rows at 1024 px: 4/4/10; 14 at
256 px: 4/4/6). Below 64 px that split leaves nothing fine, so small generators (the 32 px toy, 8
rows; the 16 px test world, 6 rows) split by level instead: coarse = the 4² level (rows 0-1), fine =
the full-resolution level (the last two rows), middle = the rows between (toy: 2/4/2).

Neutral prompts (`default_neutral`): 'a face' (the StyleCLIP convention) for photo profiles;
'a person' for toyfaces, whose captions and value prompts all describe "a person" / "this person"
("a person wearing eyeglasses"), so t and t_neutral share the sentence frame and differ only in the
attribute. Use whole prompts in that frame with the directional mode.

Input images go through `clip2gan.images.prepare_images` (any PIL mode, NumPy array or tensor; clear
errors for bad shapes and oversized images).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import torch
import torch.nn.functional as F

from clip2gan.images import MAX_PIXELS, prepare_images
from clip2gan.modality_gap import require_bank
from clip2gan.profiles import PROFILES

if TYPE_CHECKING:  # the model module imports this one: only the type checker needs the class
    from clip2gan.model import CLIP2GAN

__all__ = [
    "DEFAULT_NEUTRAL",
    "SPACES",
    "MODES",
    "LAYER_NAMES",
    "default_neutral",
    "check_beta",
    "check_text",
    "layer_groups",
    "layer_mask",
    "text_direction",
    "neighbour_direction",
    "default_mode",
    "edit_latent",
    "EncodedImages",
    "encode_for_edit",
    "edited_latents",
    "edit_image",
    "BetaStrip",
]

DEFAULT_NEUTRAL = "a face"  # the StyleCLIP convention for photos of faces
SPACES = ("wplus", "clip")
MODES = ("paper", "directional", "neighbours")
NEIGHBOUR_K = 32            # bank images averaged on each side of a 'neighbours' direction
NEIGHBOUR_IMAGE_WEIGHT = 0.5  # how much resembling the image counts beside matching the text
LAYER_NAMES = ("all", "coarse", "middle", "fine")


# ------------------------------------------------------------------------------------------------
# checks


def default_neutral(model_or_profile: Any) -> str:
    """The neutral prompt of a world, from its profile record ('a person' for toyfaces, 'a face' for
    ffhq); 'a face' for a model of no known profile (07_editing.ipynb)."""
    profile = model_or_profile if isinstance(model_or_profile, str) else getattr(model_or_profile, "profile", "")
    return PROFILES[profile].neutral_prompt if profile in PROFILES else DEFAULT_NEUTRAL


def check_beta(beta: Any) -> float:
    """β as a finite float; NaN, ±inf, booleans and non-numbers raise ValueError (07_editing.ipynb)."""
    if isinstance(beta, bool) or (isinstance(beta, torch.Tensor) and beta.numel() != 1):
        raise ValueError(f"beta must be a finite number, got {beta!r}")
    try:
        value = float(beta)
    except (TypeError, ValueError):
        raise ValueError(f"beta must be a finite number, got {beta!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"beta must be a finite number, got {value} (the paper uses 0 <= beta <= 1)")
    return value


def check_text(text: Any, name: str = "text") -> str:
    """An edit text: a non-empty string (07_editing.ipynb)."""
    if not isinstance(text, str):
        raise ValueError(f"{name} must be a string describing the edit (e.g. 'wearing eyeglasses'), "
                         f"got {type(text).__name__}")
    if not text.strip():
        raise ValueError(f"{name} is empty: describe the edit, e.g. 'a person wearing eyeglasses'")
    return text


def _check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


# ------------------------------------------------------------------------------------------------
# layer ranges


def layer_groups(num_ws: int) -> dict[str, range]:
    """Rows of w+ per group: {'coarse', 'middle', 'fine'} → range (the rule: module docstring) (07_editing.ipynb).

    `layer_groups(18) == {'coarse': range(0, 4), 'middle': range(4, 8), 'fine': range(8, 18)}`;
    `layer_groups(8) == {'coarse': range(0, 2), 'middle': range(2, 6), 'fine': range(6, 8)}`.
    """
    num_ws = int(num_ws)
    if num_ws < 1:
        raise ValueError(f"num_ws must be >= 1, got {num_ws}")
    if num_ws >= 10:
        return {"coarse": range(0, 4), "middle": range(4, 8), "fine": range(8, num_ws)}
    lo, hi = min(2, num_ws), max(min(2, num_ws), num_ws - 2)
    return {"coarse": range(0, lo), "middle": range(lo, hi), "fine": range(hi, num_ws)}


def layer_mask(num_ws: int, layers: Any = None) -> torch.Tensor:
    """BoolTensor `[num_ws]`: the w+ rows an edit touches (07_editing.ipynb).

    layers: None or 'all' (every row, the paper), 'coarse' / 'middle' / 'fine' (`layer_groups`), a
    slice, or a sequence / range of row indices (negative indices count from the end).
    """
    mask = torch.zeros(num_ws, dtype=torch.bool)
    if layers is None or (isinstance(layers, str) and layers == "all"):
        mask[:] = True
        return mask
    if isinstance(layers, str):
        groups = layer_groups(num_ws)
        if layers not in groups:
            raise ValueError(f"layers must be None, one of {list(LAYER_NAMES)}, a slice or a list of rows; got {layers!r}")
        rows = list(groups[layers])
        if not rows:
            raise ValueError(f"a generator with {num_ws} w+ rows has no {layers!r} rows ({layer_groups(num_ws)})")
        mask[rows] = True
        return mask
    if isinstance(layers, slice):
        mask[layers] = True
    elif isinstance(layers, (range, list, tuple)) or (isinstance(layers, torch.Tensor) and layers.ndim == 1):
        rows = [int(i) for i in layers]
        bad = [i for i in rows if not -num_ws <= i < num_ws]
        if bad:
            raise ValueError(f"layer rows {bad} out of range for {num_ws} w+ rows")
        mask[rows] = True
    else:
        raise ValueError(f"layers must be None, one of {list(LAYER_NAMES)}, a slice or a list of rows; "
                         f"got {type(layers).__name__}")
    if not mask.any():
        raise ValueError(f"layers={layers!r} selects none of the {num_ws} w+ rows")
    return mask


# ------------------------------------------------------------------------------------------------
# eq. 11 and 13


@torch.no_grad()
def default_mode(model: CLIP2GAN) -> str:
    """The edit mode a model uses when none is given: `model.edit_mode` ('paper' if it has none)."""
    return getattr(model, "edit_mode", None) or "paper"


def _zscore(s: torch.Tensor) -> torch.Tensor:
    return (s - s.mean(-1, keepdim=True)) / s.std(-1, keepdim=True).clamp_min(1e-8)


@torch.no_grad()
def neighbour_direction(model: CLIP2GAN, features: torch.Tensor, text: str, space: str = "wplus", k: int = NEIGHBOUR_K,
                        image_weight: float = NEIGHBOUR_IMAGE_WEIGHT) -> torch.Tensor:
    """Per-image edit vectors from the feature bank (mode 'neighbours'; see the module docstring) (07_editing.ipynb).

    features: C_img(x) `[N, D]`. Bank image b scores z(cos(f_b, C_text(t))) + image_weight ·
    z(cos(f_b, f_i)) for image i (z: standardised over the bank); N_t(x_i) is its k best, N(x_i) the
    k nearest by image similarity alone. Returns `[N, num_ws, w_dim]` ('wplus': means of M(f_b)) or
    `[N, D]` ('clip': means of f_b).
    """
    check_text(text)
    _check_choice("space", space, SPACES)
    bank = require_bank(getattr(model, "feature_bank", None), "mode 'neighbours' (or use mode='paper' or 'directional')")
    if features.ndim != 2 or features.shape[1] != bank.shape[1]:
        raise ValueError(f"features must be [N, {bank.shape[1]}], got {tuple(features.shape)}")
    k = min(int(k), len(bank))
    bank = bank.to(features.device, torch.float32)
    f_text = model.text_features([text], correction=False).float().to(features.device)  # [1, D]
    image_sim = _zscore(F.normalize(features.float(), dim=-1) @ bank.T)  # [N, B]
    both = _zscore(f_text @ bank.T) + float(image_weight) * image_sim
    pos, neg = both.topk(k, dim=1).indices, image_sim.topk(k, dim=1).indices  # [N, k]
    codes = model.map(bank) if space == "wplus" else bank  # [B, num_ws, w_dim] or [B, D]
    return codes[pos].mean(1) - codes[neg].mean(1)


def text_direction(model: CLIP2GAN, text: str, mode: str | None = None, neutral: str | None = None, space: str = "wplus",
                   features: torch.Tensor | None = None) -> torch.Tensor:
    """The edit vector n of a text (eq. 13), `[1, num_ws, w_dim]` ('wplus') or `[1, D]` ('clip') (07_editing.ipynb).

    mode (None: `default_mode(model)`): 'paper': n = M(C_text(t)) (w+) or C_text(t) (CLIP), with the
    bare text feature C_text(t) whatever the model's method (eq. 13 as written). 'directional' (this
    project's variant): the same minus the neutral prompt's (`default_neutral(model)` when None), with
    the text features through the model's text correction (`CLIP2GAN.text_features`), as in generation.
    'neighbours': `neighbour_direction` for the images whose CLIP features `[N, D]` are `features`
    (required), one row per image.
    """
    check_text(text)
    mode = default_mode(model) if mode is None else mode
    _check_choice("mode", mode, MODES)
    _check_choice("space", space, SPACES)
    if mode == "neighbours":
        if features is None:
            raise ValueError("mode 'neighbours' makes one direction per image: pass the images' CLIP features")
        return neighbour_direction(model, features, text, space=space)
    prompts = [text]
    if mode == "directional":
        prompts.append(check_text(neutral if neutral is not None else default_neutral(model), "neutral"))
    # eq. 13 is M(C_text(t)) with the bare text feature; the directional variant follows the model's method
    f = model.text_features(prompts, correction=mode != "paper").float()  # [1 or 2, D]
    v = model.map(f) if space == "wplus" else f
    return v[:1] - v[1:2] if mode == "directional" else v[:1]


def edit_latent(ws: torch.Tensor, direction: torch.Tensor, beta: float, layers: Any = None) -> torch.Tensor:
    """z'_i = z_i + β n_i on the rows `layers` selects (eq. 11); other rows are copied (07_editing.ipynb).

    ws: `[N, num_ws, w_dim]`; direction: `[num_ws, w_dim]`, `[1, num_ws, w_dim]` or `[N, num_ws, w_dim]`.
    Returns a new tensor `[N, num_ws, w_dim]`; β = 0 returns ws's values exactly.
    """
    beta = check_beta(beta)
    if ws.ndim != 3:
        raise ValueError(f"ws must be [N, num_ws, w_dim], got {tuple(ws.shape)}")
    n = direction if direction.ndim == 3 else direction[None]
    if n.ndim != 3 or tuple(n.shape[1:]) != tuple(ws.shape[1:]) or n.shape[0] not in (1, ws.shape[0]):
        raise ValueError(f"direction must be [num_ws, w_dim] or [1 or N, num_ws, w_dim] matching ws "
                         f"{tuple(ws.shape)}, got {tuple(direction.shape)}")
    mask = layer_mask(ws.shape[1], layers).to(ws.device)
    out = ws.clone()
    if beta != 0.0:
        out[:, mask] = ws[:, mask] + beta * n.to(ws)[:, mask]
    return out


# ------------------------------------------------------------------------------------------------
# encode once, edit many times


@dataclass
class EncodedImages:
    """What an edit needs from its images, computed once (07_editing.ipynb).

    images: `[N, 3, R, R]` the prepared inputs (CPU); features: C_img(x) `[N, D]`;
    ws: z = M(C_img(x)) `[N, num_ws, w_dim]` (eq. 14).
    """

    images: torch.Tensor
    features: torch.Tensor
    ws: torch.Tensor


def encode_for_edit(model: CLIP2GAN, images: Any, max_pixels: int = MAX_PIXELS, warn: bool = True) -> EncodedImages:
    """Prepare images (`prepare_images`) and encode them: C_img(x) and z = M(C_img(x)) (07_editing.ipynb)."""
    x = prepare_images(images, model.resolution, max_pixels=max_pixels, warn=warn)
    with torch.no_grad():  # a block, not a decorator: conversion warnings then point at the caller's line
        f = model.image_features(x).float()
        return EncodedImages(images=x, features=f, ws=model.map(f))


@torch.no_grad()
def edited_latents(model: CLIP2GAN, encoded: EncodedImages, direction: torch.Tensor, beta: float, space: str = "wplus",
                   layers: Any = None) -> torch.Tensor:
    """z' `[N, num_ws, w_dim]` for one β (07_editing.ipynb).

    'wplus': eq. 11 on `encoded.ws`. 'clip': f' = normalize(f_img + β n) with n `[1, D]` from
    `text_direction(space='clip')`, z' = M(f'); with `layers`, only those rows take M(f') and the
    others keep z (so layer ranges mean the same in both spaces).
    """
    beta = check_beta(beta)
    _check_choice("space", space, SPACES)
    if space == "wplus":
        if direction.ndim != 3:
            raise ValueError(f"a w+ edit needs a [1 or N, num_ws, w_dim] direction, got {tuple(direction.shape)} "
                             "(use text_direction(..., space='wplus'))")
        return edit_latent(encoded.ws, direction, beta, layers)
    if direction.ndim != 2 or direction.shape[-1] != encoded.features.shape[-1] or \
            direction.shape[0] not in (1, encoded.features.shape[0]):
        raise ValueError(f"a CLIP-space edit needs a [1 or N, {encoded.features.shape[-1]}] direction, got "
                         f"{tuple(direction.shape)} (use text_direction(..., space='clip'))")
    mask = layer_mask(encoded.ws.shape[1], layers).to(encoded.ws.device)
    f_new = F.normalize(encoded.features + beta * direction.to(encoded.features), dim=-1)
    ws_new = model.map(f_new)
    return torch.where(mask[None, :, None], ws_new, encoded.ws)


class BetaStrip:
    """One image (or batch), one text, many βs: the encodes happen once (Fig. 9; 07_editing.ipynb).

        strip = BetaStrip(model, image, "a person wearing eyeglasses")
        row = strip.images([0, 0.25, 0.5, 0.75, 1.0])[0]      # [5, 3, R, R]
        viz.show_strip([row], ["eyeglasses"], ["0", ".25", ".5", ".75", "1"])

    `strip.image(beta)` equals `edit_image(model, image, text, beta, ...)` for the same settings.
    """

    def __init__(self, model: CLIP2GAN, images: Any, text: str, space: str = "wplus", layers: Any = None, mode: str | None = None,
                 neutral: str | None = None, noise_mode: str | None = None, encoded: EncodedImages | None = None):
        check_text(text)
        mode = default_mode(model) if mode is None else mode
        _check_choice("space", space, SPACES)
        _check_choice("mode", mode, MODES)
        layer_mask(model.num_ws, layers)  # validate now, not at the first β
        self.model, self.text, self.space, self.layers, self.mode = model, text, space, layers, mode
        self.noise_mode = noise_mode
        self.encoded = encoded if encoded is not None else encode_for_edit(model, images)
        self.direction = text_direction(model, text, mode=mode, neutral=neutral, space=space,
                                        features=self.encoded.features)

    def latents(self, beta: float) -> torch.Tensor:
        """z' `[N, num_ws, w_dim]` for β."""
        return edited_latents(self.model, self.encoded, self.direction, beta, self.space, self.layers)

    @torch.no_grad()
    def image(self, beta: float) -> torch.Tensor:
        """The edited images `[N, 3, R, R]` in [-1, 1] (CPU) for β."""
        return self.model.synthesize(self.latents(beta), noise_mode=self.noise_mode).clamp(-1, 1).float().cpu()

    def images(self, betas: Sequence[float]) -> torch.Tensor:
        """`[N, len(betas), 3, R, R]`: row i is image i's strip over `betas`."""
        betas = [check_beta(b) for b in betas]
        if not betas:
            raise ValueError("betas is empty")
        return torch.stack([self.image(b) for b in betas], dim=1)


def edit_image(model: CLIP2GAN, image: Any, text: str, beta: float = 1.0, space: str = "wplus", layers: Any = None,
               mode: str | None = None, neutral: str | None = None, noise_mode: str | None = None) -> torch.Tensor:
    """Edit real image(s) with a text (eq. 11-14), `[N, 3, R, R]` in [-1, 1] on the CPU (07_editing.ipynb).

    image: anything `prepare_images` reads. text: the edit ("wearing eyeglasses"). beta: the edit
    strength (paper: [0, 1]; any finite value works). space: 'wplus' (the paper) or 'clip' (supp.
    Table 6). layers: None (all rows), 'coarse' / 'middle' / 'fine', a slice or row indices. mode:
    None (the model's default, `default_mode`), 'paper', 'directional' (with `neutral`, default
    `default_neutral(model)`) or 'neighbours'. β = 0 in 'wplus' returns `model.reconstruct(x)` exactly.
    """
    beta = check_beta(beta)
    check_text(text)
    return BetaStrip(model, image, text, space=space, layers=layers, mode=mode, neutral=neutral,
                     noise_mode=noise_mode).image(beta)
