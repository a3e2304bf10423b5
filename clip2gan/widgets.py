"""An ipywidgets UI for β-controlled text editing (07_editing.ipynb).

    from clip2gan.widgets import EditingApp
    app = EditingApp(model)            # fresh toy faces to pick from, or EditingApp(model, images=...)
    app                                # shows app.widget in Jupyter / Colab

Controls: an image picker (the given images or fresh toy renders) and an upload button for your
own image; the edit prompt (applied on Enter); β (the paper's range [0, 1]; a checkbox extends it to
[-1, 2]); the w+ rows to edit (all / coarse / middle / fine, `clip2gan.edit.layer_groups`); the space
(w+, the paper, or CLIP, supp. Table 6) and the mode (paper: n = M(t); directional: M(t) − M(neutral);
neighbours: per-image directions from the feature bank, the default of a checkpoint that has one).
The original (the prepared input at the generator's resolution) and the edit are shown side by side,
upscaled with nearest-neighbour so 32 px pixels stay visible.

What is cached: each image's encoding (C_img(x) and z = M(C_img(x))) and each text's direction, so
moving the β slider or changing the layer range costs one `edited_latents` and one synthesis;
CLIP-space edits add one pass through M. Nothing is redrawn unless a value changed. Bad input (an
empty prompt, a file that is not an image, an image over `max_pixels`, β outside [-1, 2]) shows a
message in `app.message`'s panel; the widget stays usable.

For tests and scripts: `app.set_prompt(...)`, `app.set_beta(...)`, `app.select(...)`,
`app.upload_bytes(data, name)`, `app.edited_array()` / `app.original_array()` (uint8 HWC at the
generator's resolution), `app.message` and `app.n_redraws`. In a browser page each control carries
the CSS class `c2g-<attribute>` (`c2g-prompt`, `c2g-beta`, `c2g-edited`, `c2g-status`, …).
"""

from __future__ import annotations

import html
import io
import math
import warnings
from typing import Any

import ipywidgets as W
import numpy as np
import torch
from IPython.display import display
from PIL import Image

from clip2gan.edit import (
    LAYER_NAMES,
    MODES,
    SPACES,
    EncodedImages,
    check_text,
    default_mode,
    default_neutral,
    edited_latents,
    encode_for_edit,
    text_direction,
)
from clip2gan.images import MAX_PIXELS, ImageConversionWarning
from clip2gan.model import CLIP2GAN
from clip2gan.profiles import PROFILES
from clip2gan.toy import world_module
from clip2gan.toy.faces import RESOLUTION
from clip2gan.viz import to_uint8

__all__ = ["EditingApp", "png_bytes", "BETA_RANGE", "EXTENDED_BETA_RANGE"]

BETA_RANGE = (0.0, 1.0)  # the paper's
EXTENDED_BETA_RANGE = (-1.0, 2.0)


def png_bytes(image: np.ndarray, upscale: int = 1) -> bytes:
    """uint8 HWC → PNG bytes, optionally upscaled by an integer factor (nearest neighbour)."""

    if upscale > 1:
        image = image.repeat(upscale, axis=0).repeat(upscale, axis=1)
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _toy_faces(n: int, seed: int, resolution: int, profile: str = "toyfaces") -> dict[str, torch.Tensor]:
    """Fresh renders of the model's toy world (faces unless its profile has another: 'toypets' → pets)."""
    record = PROFILES.get(profile)
    world = world_module(record if record is not None and record.world else None)
    noun = "face" if world.NAME == "faces" else "pet"
    # rendered at the generator's resolution when that is small (no resize), else at the toy 32 px
    images, _, attrs = world.render_labeled_batch(n, np.random.default_rng(seed),
                                                  resolution if resolution <= 128 else RESOLUTION)
    return {f"toy {noun} {i} ({world.describe(a)})": images[i] for i, a in enumerate(attrs)}


def _example_edit(model: CLIP2GAN, neutral: str) -> str:
    """An edit to suggest in the prompt box: one the model's toy world can show ('a pet wearing a red collar' for the
    pets), else a face edit."""
    record = PROFILES.get(str(getattr(model, "profile", "")))
    if record is not None and record.world and world_module(record).NAME != "faces":
        world = world_module(record)
        name = next(a for a in world.ATTRIBUTES if a not in ("species", "background"))
        return world.value_prompt(name, world.ATTRIBUTES[name][-1])
    return f"{neutral} wearing eyeglasses"


def _as_named(images: Any) -> dict[str, Any]:
    if isinstance(images, dict):
        return {str(k): v for k, v in images.items()}
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return {f"image {i}": x for i, x in enumerate(images)}
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return {f"image {i}": x for i, x in enumerate(images)}
    if isinstance(images, (list, tuple)):
        return {f"image {i}": x for i, x in enumerate(images)}
    return {"image 0": images}


class EditingApp:
    """Interactive text editing of one image at a time (07_editing.ipynb; see the module docstring).

    model: a `CLIP2GAN`. images: a tensor `[N, 3, H, W]`, a list, a dict name → image, or one image
    (anything `clip2gan.images.prepare_images` reads); None: `n_toy` fresh toy faces (seed `seed`).
    prompt / beta / layers / space / mode: initial values (mode None: the model's `edit_mode`). neutral:
    the directional mode's neutral prompt (`default_neutral(model)` when None). max_pixels: larger
    uploads are refused. display_size: the approximate on-screen size of each image in pixels.
    """

    def __init__(self, model: CLIP2GAN, images: Any = None, prompt: str = "", beta: float = 0.5, layers: str = "all",
                 space: str = "wplus", mode: str | None = None, neutral: str | None = None, n_toy: int = 8, seed: int = 0,
                 max_pixels: int = MAX_PIXELS, display_size: int = 256):

        self.model = model
        self.neutral = neutral if neutral is not None else default_neutral(model)
        self.max_pixels = int(max_pixels)
        self.upscale = max(1, int(display_size) // int(model.resolution))
        self.n_redraws = 0
        self._images: dict[str, Any] = (_toy_faces(n_toy, seed, int(model.resolution), str(getattr(model, "profile", "")))
                                        if images is None else _as_named(images))
        if not self._images:
            raise ValueError("images is empty: give at least one image, or None for toy faces")
        self._encoded: dict[str, EncodedImages] = {}
        self._directions: dict[tuple, torch.Tensor] = {}
        self._notes: dict[str, str] = {}
        self._shown_original: str | None = None
        self._last_state: tuple | None = None
        self._edited = np.zeros((model.resolution, model.resolution, 3), np.uint8)
        self._original = self._edited.copy()
        self._message = ""
        self._n_uploads = 0

        side = f"{model.resolution * self.upscale}px"
        self.picker = W.Dropdown(options=list(self._images), description="image")
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="upload image")
        self.prompt = W.Text(value=prompt, placeholder=f"an edit, e.g. '{_example_edit(model, self.neutral)}' (Enter)",
                             description="prompt", continuous_update=False, layout=W.Layout(width="60%"))
        self.beta = W.FloatSlider(value=min(max(float(beta), BETA_RANGE[0]), BETA_RANGE[1]), min=BETA_RANGE[0],
                                  max=BETA_RANGE[1], step=0.05, description="β", readout_format=".2f",
                                  continuous_update=True)
        self.extend = W.Checkbox(value=False, description="β in [-1, 2]", indent=False)
        self.layers = W.Dropdown(options=list(LAYER_NAMES), value=layers, description="layers")
        self.space = W.Dropdown(options=list(SPACES), value=space, description="space")
        self.mode = W.Dropdown(options=list(MODES), value=mode or default_mode(model), description="mode")
        self.original = W.Image(format="png", width=side, height=side)
        self.edited = W.Image(format="png", width=side, height=side)
        self.status = W.HTML()
        self.widget = W.VBox([
            W.HBox([self.picker, self.upload]),
            self.prompt,
            W.HBox([self.beta, self.extend]),
            W.HBox([self.layers, self.space, self.mode]),
            W.HBox([W.VBox([W.HTML("<b>original</b>"), self.original]), W.VBox([W.HTML("<b>edited</b>"), self.edited])]),
            self.status,
        ])
        for name in ("picker", "upload", "prompt", "beta", "extend", "layers", "space", "mode", "original", "edited", "status"):
            getattr(self, name).add_class(f"c2g-{name}")  # stable handles for browser tests and styling
        for control in (self.picker, self.prompt, self.beta, self.layers, self.space, self.mode):
            control.observe(self._on_change, names="value")
        self.extend.observe(self._on_extend, names="value")
        self.upload.observe(self._on_upload, names="value")
        if not (BETA_RANGE[0] <= float(beta) <= BETA_RANGE[1]):
            self.set_beta(beta)
        self.update()

    # -- public driving API -----------------------------------------------------------------
    @property
    def message(self) -> str:
        """The message panel's text ('' when all is well)."""
        return self._message

    def edited_array(self) -> np.ndarray:
        """The displayed edited image, uint8 `[R, R, 3]` at the generator's resolution."""
        return self._edited.copy()

    def original_array(self) -> np.ndarray:
        """The displayed original (the prepared input), uint8 `[R, R, 3]`."""
        return self._original.copy()

    def set_prompt(self, text: str) -> None:
        """Type an edit prompt and press Enter."""
        self.prompt.value = text if isinstance(text, str) else str(text)

    def set_beta(self, beta: Any) -> None:
        """Move the β slider; values in [-1, 2] outside [0, 1] tick the extended-range box first."""
        try:
            value = float(beta)
        except (TypeError, ValueError):
            value = float("nan")
        if not math.isfinite(value) or not EXTENDED_BETA_RANGE[0] <= value <= EXTENDED_BETA_RANGE[1]:
            self._show_message(f"β must be a number in [{EXTENDED_BETA_RANGE[0]:g}, {EXTENDED_BETA_RANGE[1]:g}], "
                               f"got {beta!r}; β unchanged", error=True)
            return
        if not BETA_RANGE[0] <= value <= BETA_RANGE[1]:
            self.extend.value = True
        self.beta.value = value

    def select(self, name: str) -> None:
        """Pick an image by its name in the picker."""
        if name not in self._images:
            raise ValueError(f"no image named {name!r}; choose from {list(self._images)}")
        self.picker.value = name

    def upload_bytes(self, data: bytes, name: str = "upload") -> bool:
        """Add an uploaded file's bytes as an image and select it; False (and a message) if unusable."""

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im = Image.open(io.BytesIO(bytes(data)))
                w, h = im.size
                if w * h > self.max_pixels:
                    raise _Refused(f"{name!r} is {w}x{h} px ({w * h:,} pixels), over the limit of {self.max_pixels:,}: "
                                   "shrink it and upload again")
                im.load()
        except _Refused as err:
            self._show_message(str(err), error=True)
            return False
        except Image.DecompressionBombError:
            self._show_message(f"{name!r} is far too large to open (PIL's decompression-bomb limit): shrink it", error=True)
            return False
        except Exception as err:  # noqa: BLE001 — whatever PIL raises, the widget must survive it
            self._show_message(f"could not read {name!r} as an image ({type(err).__name__}); upload a PNG or JPEG",
                               error=True)
            return False
        self._n_uploads += 1
        key = f"upload {self._n_uploads}: {name}"
        self._images[key] = im
        self.picker.options = list(self._images)
        self.picker.value = key
        return True

    def update(self, force: bool = False) -> None:
        """Redraw if any control changed since the last draw (or always with force=True)."""
        state = (self.picker.value, self.prompt.value, float(self.beta.value), self.layers.value, self.space.value,
                 self.mode.value)
        if state == self._last_state and not force:
            return
        key, text, beta, layers, space, mode = state
        try:
            with torch.inference_mode():  # every cached tensor is made and used in here
                self._redraw(key, text, beta, layers, space, mode)
        except ValueError as err:
            self._show_message(str(err), error=True)
        except Exception as err:  # noqa: BLE001 — report, never leave a dead widget
            self._show_message(f"could not edit: {type(err).__name__}: {err}", error=True)
        self._last_state = state

    def _ipython_display_(self) -> None:

        display(self.widget)

    # -- internals --------------------------------------------------------------------------
    def _redraw(self, key: str, text: str, beta: float, layers: str, space: str, mode: str) -> None:
        encoded = self._encode(key)
        if self._shown_original != key:
            self._original = to_uint8(encoded.images)[0]
            self.original.value = png_bytes(self._original, self.upscale)
            self._shown_original = key
        if not text.strip():
            self._draw(self.model.synthesize(encoded.ws).clamp(-1, 1))
            self._show_message("Type an edit prompt and press Enter (showing the reconstruction, β = 0).")
            return
        check_text(text, "prompt")
        direction = self._direction(text, mode, space, key, encoded)
        ws = edited_latents(self.model, encoded, direction, beta, space, None if layers == "all" else layers)
        self._draw(self.model.synthesize(ws).clamp(-1, 1))
        self._show_message(self._notes.get(key, ""))

    def _draw(self, images: torch.Tensor) -> None:
        self._edited = to_uint8(images.float().cpu())[0]
        self.edited.value = png_bytes(self._edited, self.upscale)
        self.n_redraws += 1

    def _encode(self, key: str) -> EncodedImages:
        if key not in self._encoded:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ImageConversionWarning)
                self._encoded[key] = encode_for_edit(self.model, self._images[key], max_pixels=self.max_pixels)
            notes = [str(w.message) for w in caught if issubclass(w.category, ImageConversionWarning)]
            self._notes[key] = notes[0] if notes else ""
        return self._encoded[key]

    def _direction(self, text: str, mode: str, space: str, key: str, encoded: EncodedImages) -> torch.Tensor:
        per_image = key if mode == "neighbours" else None  # a 'neighbours' direction depends on the image too
        cache_key = (text, mode, space, self.neutral if mode == "directional" else None, per_image)
        if cache_key not in self._directions:
            self._directions[cache_key] = text_direction(self.model, text, mode=mode, neutral=self.neutral, space=space,
                                                         features=encoded.features)
        return self._directions[cache_key]

    def _show_message(self, text: str, error: bool = False) -> None:
        self._message = text
        color = "#b00020" if error else "#555555"
        self.status.value = f'<span style="color:{color}">{html.escape(text)}</span>' if text else ""

    def _on_change(self, change: dict) -> None:
        self.update()

    def _on_extend(self, change: dict) -> None:
        lo, hi = EXTENDED_BETA_RANGE if change["new"] else BETA_RANGE
        if change["new"]:
            self.beta.max, self.beta.min = hi, lo
        else:
            self.beta.value = min(max(self.beta.value, lo), hi)
            self.beta.min, self.beta.max = lo, hi

    def _on_upload(self, change: dict) -> None:
        files = change["new"]
        if not files:
            return
        f = files[-1]
        self.upload_bytes(f["content"], f.get("name", "upload"))


class _Refused(Exception):
    """An upload refused before decoding (too many pixels)."""
