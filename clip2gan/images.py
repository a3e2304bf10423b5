"""Images from users, made ready for CLIP and the generator (introduced in 07_editing.ipynb).

`prepare_images` takes a PIL image (any mode: L, P, RGBA, I;16, CMYK, …), a NumPy array (HW or HWC,
uint8 / uint16 / float in [0, 1]; NHWC batches), a torch tensor `[3, H, W]` or `[N, 3, H, W]` in
[-1, 1], or a list of these, and returns `[N, 3, R, R]` float32 in [-1, 1]. Everything becomes RGB
(alpha composited on white, 16-bit scaled to 8-bit range), resized so the shorter side is R and
centre-cropped; an `ImageConversionWarning` says what changed. Images over `MAX_PIXELS` are refused
(`ImageTooLarge`); wrong shapes, dtypes and empty inputs are clear `ValueError`s / `TypeError`s.
`convert_image` is the one-image version that returns its notes instead of warning (the trainer's
image-folder dataset counts them).
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = ["MAX_PIXELS", "ImageConversionWarning", "ImageTooLarge", "convert_image", "prepare_images"]

MAX_PIXELS = 40_000_000  # a 40-megapixel photo passes; a 10,000 × 10,000 image (100 MP) is refused


class ImageConversionWarning(UserWarning):
    """An input image was converted (mode, channels, range or size) before encoding."""


class ImageTooLarge(ValueError):
    """An input image has more pixels than allowed (`MAX_PIXELS`)."""




def _alpha_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """rgb, alpha in [0, 1] (HWC, HW1) → rgb composited onto white."""
    return rgb * alpha + (1.0 - alpha)


def _from_pil(image, max_pixels: int) -> tuple[np.ndarray, list[str]]:
    """PIL image → float32 HWC RGB in [0, 1], and notes on what changed."""

    w, h = image.size
    if w * h > max_pixels:
        raise ImageTooLarge(f"image is {w}x{h} px ({w * h:,} pixels), over the limit of {max_pixels:,}; "
                            "shrink it first (e.g. PIL's Image.thumbnail)")
    mode, notes = image.mode, []
    if mode == "RGB":
        arr = np.asarray(image, dtype=np.float32) / 255.0
    elif mode.startswith("I") or mode == "F":  # 16/32-bit integer or float grey
        grey = np.asarray(image, dtype=np.float64)
        if mode == "F":
            peak = 1.0 if grey.size == 0 or grey.max() <= 1.0 else 255.0
        else:
            peak = 65535.0 if grey.size and grey.max() > 255 else 255.0
        arr = np.repeat((grey / peak).clip(0, 1)[..., None], 3, axis=-1).astype(np.float32)
        notes.append(f"mode {mode} → RGB (grey scaled by 1/{peak:g})")
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        arr = _alpha_on_white(rgba[..., :3], rgba[..., 3:])
        notes.append(f"mode {mode} → RGB (alpha composited on white)")
    else:
        arr = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
        notes.append(f"mode {mode} → RGB")
    return arr, notes


def _from_numpy(arr: np.ndarray, max_pixels: int) -> tuple[np.ndarray, list[str]]:
    """NumPy HW / HWC / NHWC → float32 NHWC RGB in [0, 1], and notes."""
    notes: list[str] = []
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        hint = ""
        if arr.ndim == 4 and arr.shape[1] in (1, 3, 4) or arr.ndim == 3 and arr.shape[0] in (1, 3, 4):
            hint = " (this looks channels-first: NumPy images are HWC, use arr.transpose(1, 2, 0))"
        raise ValueError(f"a NumPy image must be HW, HWC or NHWC with 1, 3 or 4 channels, got shape {arr.shape}{hint}")
    h, w = arr.shape[1:3]
    if h * w > max_pixels:
        raise ImageTooLarge(f"image is {w}x{h} px ({w * h:,} pixels), over the limit of {max_pixels:,}; shrink it first")
    if arr.dtype == np.uint8:
        x = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        x = arr.astype(np.float32) / 65535.0
        notes.append("uint16 scaled by 1/65535")
    elif arr.dtype == np.bool_:
        x = arr.astype(np.float32)
    elif np.issubdtype(arr.dtype, np.integer):
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ValueError(f"integer image values range over [{lo}, {hi}]; expected 0-255 (uint8) or 0-65535")
        peak = 255.0 if hi <= 255 else 65535.0
        x = arr.astype(np.float32) / peak
    elif np.issubdtype(arr.dtype, np.floating):
        x = arr.astype(np.float32)
        if x.size and not np.isfinite(x).all():
            raise ValueError("the image contains NaN or infinite values")
        lo, hi = (float(x.min()), float(x.max())) if x.size else (0.0, 0.0)
        if lo < -1e-3:
            raise ValueError(f"a float NumPy image is read as [0, 1] but its values range over [{lo:.3g}, {hi:.3g}]; "
                             "for [-1, 1] pass a torch tensor [3, H, W], for 0-255 use uint8")
        if hi > 1.0 + 1e-3:
            if hi > 255.0 + 1e-3:
                raise ValueError(f"float image values range over [{lo:.3g}, {hi:.3g}]; expected [0, 1]")
            x = x / 255.0
            notes.append("float values above 1 read as 0-255")
        x = x.clip(0.0, 1.0)
    else:
        raise ValueError(f"unsupported NumPy image dtype {arr.dtype}")
    if x.shape[-1] == 4:
        x = _alpha_on_white(x[..., :3], x[..., 3:])
        notes.append("RGBA → RGB (alpha composited on white)")
    elif x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
        notes.append("grey → RGB")
    return x, notes


def _from_tensor(x: torch.Tensor, max_pixels: int) -> tuple[torch.Tensor, list[str]]:
    """torch [C, H, W] / [N, C, H, W] in [-1, 1] → float32 [N, 3, H, W] on the CPU, and notes."""
    notes: list[str] = []
    if not x.is_floating_point():
        raise ValueError(f"a tensor image must be floating point in [-1, 1], got dtype {x.dtype} "
                         "(convert uint8 with x.float() / 127.5 - 1)")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"a tensor image must be [3, H, W] or [N, 3, H, W] in [-1, 1], got shape {tuple(x.shape)}")
    h, w = x.shape[-2:]
    if h * w > max_pixels:
        raise ImageTooLarge(f"image is {w}x{h} px ({h * w:,} pixels), over the limit of {max_pixels:,}; shrink it first")
    x = x.detach().float().cpu()
    if x.numel():
        if not torch.isfinite(x).all():
            raise ValueError("the image contains NaN or infinite values")
        lo, hi = float(x.min()), float(x.max())
        if lo < -1.5 or hi > 1.5:
            raise ValueError(f"tensor images must be in [-1, 1], got values in [{lo:.3g}, {hi:.3g}] "
                             "(from [0, 1] use 2 * x - 1; from 0-255 use x / 127.5 - 1)")
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
        notes.append("grey → RGB")
    return x.clamp(-1.0, 1.0), notes


def _resize_crop(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """[N, 3, H, W] → [N, 3, R, R]: shorter side to R (antialiased bicubic), centre crop."""
    h, w = x.shape[-2:]
    scale = resolution / min(h, w)
    nh, nw = max(resolution, round(h * scale)), max(resolution, round(w * scale))
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(-1.0, 1.0)
    top, left = (nh - resolution) // 2, (nw - resolution) // 2
    return x[:, :, top:top + resolution, left:left + resolution].contiguous()


def _prepare_one(item: Any, resolution: int, max_pixels: int) -> tuple[torch.Tensor, list[str]]:

    if isinstance(item, Image.Image):
        arr, notes = _from_pil(item, max_pixels)
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)[None] * 2.0 - 1.0
    elif isinstance(item, np.ndarray):
        arr, notes = _from_numpy(item, max_pixels)
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2) * 2.0 - 1.0
    elif isinstance(item, torch.Tensor):
        x, notes = _from_tensor(item, max_pixels)
    else:
        raise ValueError(f"an image must be a PIL image, a NumPy array or a torch tensor, got {type(item).__name__}")
    h, w = x.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"the image is empty ({w}x{h} px)")
    if (h, w) != (resolution, resolution):
        x = _resize_crop(x, resolution)
        notes.append(f"resized {w}x{h} → {resolution}x{resolution} px (shorter side, centre crop)")
    return x.float(), notes


def convert_image(item: Any, resolution: int, max_pixels: int = MAX_PIXELS) -> tuple[torch.Tensor, list[str]]:
    """One image (PIL / NumPy / tensor, any size or mode) → `[3, R, R]` in [-1, 1] and notes on what
    was changed (mode, bit depth, alpha, size); also what training reads image folders with (05_training.ipynb)."""
    x, notes = _prepare_one(item, int(resolution), int(max_pixels))
    if x.shape[0] != 1:
        raise ValueError(f"expected one image, got a batch of {x.shape[0]}")
    return x[0], notes


def _caller_level() -> int:
    """The `stacklevel` of the first frame outside this package, seen from the caller of this helper,
    so a warning points at the user's line, however deep inside clip2gan it was raised."""
    package = os.path.dirname(os.path.abspath(__file__))
    level, frame = 1, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package + os.sep):
        frame, level = frame.f_back, level + 1
    return level


def prepare_images(images: Any, resolution: int, max_pixels: int = MAX_PIXELS, warn: bool = True) -> torch.Tensor:
    """Any image(s) → `[N, 3, resolution, resolution]` float32 in [-1, 1] on the CPU (07_editing.ipynb).

    Accepts what the module docstring lists; warns (`ImageConversionWarning`) when anything was
    converted, unless `warn=False`. Raises ValueError (or its subclass `ImageTooLarge`) with what
    to do for anything it cannot read.
    """
    items = list(images) if isinstance(images, (list, tuple)) else [images]
    if not items:
        raise ValueError("no images given")
    xs, notes = [], []
    for i, item in enumerate(items):
        x, changed = _prepare_one(item, int(resolution), int(max_pixels))
        xs.append(x)
        if changed:
            notes.append((f"image {i}: " if len(items) > 1 else "") + "; ".join(changed))
    if notes and warn:
        warnings.warn("converted the input: " + " | ".join(notes), ImageConversionWarning, stacklevel=_caller_level())
    return torch.cat(xs)
