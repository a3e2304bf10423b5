"""The toy-faces world: procedural cartoon faces with exact attributes and captions (00_setup.ipynb).

No pretrained CLIP, StyleGAN2 or face data can be downloaded where this project is built, so the
default `toyfaces` profile is a world the project renders itself. Every image is drawn from a known
attribute dict, which gives exact ground truth for the whole method: a held-out `AttributeClassifier`
(`clip2gan.toy.nets`, also importable from here) scores text→image accuracy, editing accuracy and
identity preservation.

Attributes (`ATTRIBUTES`, values in this order; the vocabulary of Multi-Modal CelebA-HQ captions):

    hair_color   black, brown, blond, red, gray
    hair_length  bald, short, long
    bangs        no, yes
    expression   neutral, smiling, open_mouth
    eyeglasses   no, yes
    beard        no, yes
    skin         pale, tan, dark
    hat          no, yes
    lipstick     no, yes
    background   white, blue, green, pink

Constraints (the only ones; every other combination occurs):

* bald → ``bangs == "no"`` and ``hair_color is None``: a bald head shows no hair colour, so the
  colour is not drawn, not captioned and not scored (label -1). A bald person's beard is drawn in a
  neutral dark grey-brown that is none of the five hair colours.
* Nothing hides another attribute. The hat sits on the crown, its brim at the hairline: bangs hang
  below the brim, short hair shows as thick side patches beside the temples and long hair falls to
  the shoulders, so hair colour and length stay readable under a hat. The beard covers the jaw but
  the mouth (expression, lipstick) is drawn over it; glasses sit below the bangs.
* Beards and lipstick are independent (a toy world; it keeps every attribute pair observable).

Rendering (`render`): PIL draws at 4× the target resolution, then a 4×4 box filter downsamples.
Nuisance variation drawn from the `rng` (position, scale and aspect jitter, a shade jitter on
every colour, three hair-shape variants per length and for bangs, shirt colour, eye spacing)
makes faces with equal attributes differ. `RESOLUTION = 32`: StyleGAN2 training on two CPU cores
is only feasible at 32 px, so every feature is drawn bold enough to read there.

Captions (`caption`) follow the Multi-Modal CelebA-HQ sentence style with varied wording,
synonyms and sentence order, a random subset of at least two attributes, and a positive phrase
for every value ("bare-headed", "clean-shaven", "natural lips").

Labels, every vector form of an attribute dict in one place: `attributes_to_labels` (one value index
per attribute, -1 where not scored; the classifier's targets), `attributes_to_c` / `sample_c` (the
toy StyleGAN2's conditioning vector c, one one-hot block per attribute at `C_SLICES`) and
`identity_labels` (the 264 identity classes of `IDENTITY_ATTRIBUTES`).

The dataset (`ToyFaces`) renders captioned, labelled faces on the fly, deterministic per
`(seed, index)`; `check_images` validates images for every network that reads this world.
"""

from __future__ import annotations

import math
import re
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

__all__ = [
    "NAME",
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "RESOLUTION",
    "EVAL_SEED",
    "IDENTITY_ATTRIBUTES",
    "sample_attributes",
    "check_attributes",
    "render",
    "render_batch",
    "render_labeled_batch",
    "caption",
    "caption_mentions",
    "value_prompt",
    "value_phrase",
    "attributes_to_labels",
    "labels_to_attributes",
    "C_SLICES",
    "C_DIM",
    "attributes_to_c",
    "sample_c",
    "identity_labels",
    "N_IDENTITIES",
    "ToyFaces",
    "WorldDataset",
    "check_images",
    "UNSCORED_WHEN",
    "MINIMAL_PAIR_WEIGHTS",
    "flippable_attributes",
    "flip_attribute",
    "tied_attributes",
    "describe",
]

NAME = "faces"  # the world's short name (`clip2gan.toy.world_module("faces")`)

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "hair_color": ("black", "brown", "blond", "red", "gray"),
    "hair_length": ("bald", "short", "long"),
    "bangs": ("no", "yes"),
    "expression": ("neutral", "smiling", "open_mouth"),
    "eyeglasses": ("no", "yes"),
    "beard": ("no", "yes"),
    "skin": ("pale", "tan", "dark"),
    "hat": ("no", "yes"),
    "lipstick": ("no", "yes"),
    "background": ("white", "blue", "green", "pink"),
}
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(ATTRIBUTES)

RESOLUTION = 32
_SUPERSAMPLE = 4  # draw at 4x, then box-downsample: anti-aliased edges at the target resolution

# Marginal probabilities used by `sample_attributes` (in ATTRIBUTES value order). Rarer values stay
# at >= 25% so that every model sees them often.
_MARGINALS: dict[str, tuple[float, ...]] = {
    "hair_color": (0.2, 0.2, 0.2, 0.2, 0.2),
    "hair_length": (0.2, 0.4, 0.4),
    "bangs": (0.6, 0.4),  # among faces with hair
    "expression": (0.4, 0.35, 0.25),
    "eyeglasses": (0.7, 0.3),
    "beard": (0.7, 0.3),
    "skin": (1 / 3, 1 / 3, 1 / 3),
    "hat": (0.7, 0.3),
    "lipstick": (0.7, 0.3),
    "background": (0.25, 0.25, 0.25, 0.25),
}


def sample_attributes(rng: np.random.Generator) -> dict[str, str | None]:
    """Draw one attribute dict from the world's marginals (00_setup.ipynb).

    Attributes are independent except for the bald constraint: a bald face has
    ``hair_color=None`` and ``bangs="no"``.
    """
    attrs: dict[str, str | None] = {}
    for name, values in ATTRIBUTES.items():
        attrs[name] = values[int(rng.choice(len(values), p=_MARGINALS[name]))]
    if attrs["hair_length"] == "bald":
        attrs["hair_color"] = None
        attrs["bangs"] = "no"
    return attrs


# What the world-generic code needs to know about the bald rule and the toy CLIP's minimal pairs.
# Not scored when another attribute has a value ({attribute: (other, value)}): a bald head's hair colour.
UNSCORED_WHEN: dict[str, tuple[str, str]] = {"hair_color": ("hair_length", "bald")}

# Which attribute the toy CLIP's minimal pairs flip (relative weights): small features twice as often.
MINIMAL_PAIR_WEIGHTS: dict[str, float] = {
    "hair_color": 1.0, "hair_length": 1.0, "bangs": 2.0, "expression": 2.0, "eyeglasses": 2.0,
    "beard": 2.0, "skin": 1.0, "hat": 2.0, "lipstick": 2.0, "background": 0.5,
}


def flippable_attributes(attrs: dict[str, Any]) -> list[str]:
    """The attributes an edit or a minimal pair may change, and a caption may state: all but a bald
    face's hair colour and bangs (00_setup.ipynb)."""
    if attrs["hair_length"] == "bald":
        return [a for a in ATTRIBUTES if a not in ("hair_color", "bangs")]
    return list(ATTRIBUTES)


def flip_attribute(attrs: dict[str, Any], name: str, rng: np.random.Generator) -> dict[str, Any]:
    """A copy of `attrs` with attribute `name` changed to another value, keeping the world's
    constraints (bald → no hair colour, no bangs; un-balding draws a hair colour) (01_clip_embedding.ipynb).

    Flipping a bald face's `hair_color` or `bangs` is not possible: raises ValueError.
    """
    bald = attrs["hair_length"] == "bald"
    if bald and name in ("hair_color", "bangs"):
        raise ValueError(f"a bald face has no {name} to flip")
    out = dict(attrs)
    others = [v for v in ATTRIBUTES[name] if v != attrs[name]]
    out[name] = others[int(rng.integers(len(others)))]
    if name == "hair_length":
        if out[name] == "bald":
            out["hair_color"], out["bangs"] = None, "no"
        elif bald:
            colors = ATTRIBUTES["hair_color"]
            out["hair_color"] = colors[int(rng.integers(len(colors)))]
    return out


def tied_attributes(target_attr: str) -> set[str]:
    """Attributes the bald constraint ties to `target_attr`, which an edit of it may change too (not
    scored for preservation; 08_evaluation.ipynb)."""
    if target_attr == "hair_length":
        return {"hair_color", "bangs"}  # going bald drops colour and bangs; growing hair shows a colour
    if target_attr in ("hair_color", "bangs"):
        return {"hair_length"}  # a colour or bangs on a bald head needs hair
    return set()


def describe(attrs: dict[str, Any]) -> str:
    """A short label of a face for pickers and grids: 'long blond hair, smiling' (07_editing.ipynb)."""
    hair = "bald" if attrs["hair_length"] == "bald" else f"{attrs['hair_length']} {attrs['hair_color']} hair"
    return f"{hair}, {attrs['expression'].replace('_', ' ')}"


def check_attributes(attrs: dict[str, Any]) -> None:
    """Raise ValueError unless `attrs` is a complete, consistent attribute dict (00_setup.ipynb)."""
    missing = [a for a in ATTRIBUTES if a not in attrs]
    if missing:
        raise ValueError(f"attributes missing: {missing}; expected keys {list(ATTRIBUTES)}")
    extra = [a for a in attrs if a not in ATTRIBUTES]
    if extra:
        raise ValueError(f"unknown attributes: {extra}; expected keys {list(ATTRIBUTES)}")
    for name, values in ATTRIBUTES.items():
        value = attrs[name]
        if name == "hair_color" and attrs["hair_length"] == "bald":
            if value is not None:
                raise ValueError(f"a bald face has hair_color None, got {value!r}")
            continue
        if value not in values:
            raise ValueError(f"{name}={value!r} is not one of {values}")
    if attrs["hair_length"] == "bald" and attrs["bangs"] != "no":
        raise ValueError("a bald face has bangs='no'")


# ----------------------------------------------------------------------------------------------
# Rendering

_BACKGROUND = {"white": (242, 242, 236), "blue": (70, 120, 215), "green": (80, 175, 95), "pink": (242, 150, 200)}
_SKIN = {"pale": (252, 224, 200), "tan": (214, 158, 104), "dark": (92, 56, 40)}
_HAIR = {"black": (28, 24, 26), "brown": (150, 84, 30), "blond": (240, 204, 72), "red": (214, 52, 26),
         "gray": (160, 162, 168)}
_BALD_BEARD = (116, 108, 106)  # a neutral dark grey-brown that is none of the hair colours
_HAT = (112, 44, 156)  # purple: no other attribute uses it
_LIPSTICK = (230, 16, 80)
_FRAME = (16, 16, 22)
_LENS = (205, 232, 250)
_TEETH = (252, 252, 252)
_MOUTH_INSIDE = (70, 12, 24)
_SHIRTS = ((60, 62, 72), (96, 40, 40), (44, 70, 96), (86, 86, 56), (128, 128, 132), (40, 40, 44))


def _jitter_color(rng: np.random.Generator | None, color: Sequence[int], amount: float = 0.08) -> tuple[int, ...]:
    if rng is None:
        return tuple(int(c) for c in color)
    scale = 1.0 + rng.uniform(-amount, amount)
    return tuple(int(min(255, max(0, c * scale + rng.uniform(-6, 6)))) for c in color)


def _mix(a: Sequence[int], b: Sequence[int], t: float) -> tuple[int, ...]:
    return tuple(int(round(x * (1 - t) + y * t)) for x, y in zip(a, b))


def _u(rng: np.random.Generator | None, lo: float, hi: float) -> float:
    return (lo + hi) / 2 if rng is None else float(rng.uniform(lo, hi))


def _variant(rng: np.random.Generator | None, n: int) -> int:
    return 0 if rng is None else int(rng.integers(n))


def _draw_face(draw: ImageDraw.ImageDraw, attrs: dict[str, Any], rng: np.random.Generator | None, k: float) -> None:
    """Draw one face on a 128*k canvas. All coordinates below are in 128-unit space, scaled by k."""

    def box(x0, y0, x1, y1):
        return [x0 * k, y0 * k, x1 * k, y1 * k]

    def pts(points):
        return [(x * k, y * k) for x, y in points]

    def w(width):
        return max(1, int(round(width * k)))

    bald = attrs["hair_length"] == "bald"
    skin = _jitter_color(rng, _SKIN[attrs["skin"]])
    skin_dark = _mix(skin, (40, 20, 10), 0.35)
    hair = _jitter_color(rng, _HAIR[attrs["hair_color"]]) if not bald else None
    beard_color = hair if hair is not None else _jitter_color(rng, _BALD_BEARD)

    # geometry with jitter
    cx = 64 + _u(rng, -6, 6)
    cy = 67 + _u(rng, -4, 4)
    scale = _u(rng, 0.92, 1.06)
    fw = 57 * scale * _u(rng, 0.95, 1.05)
    fh = 71 * scale
    fx0, fx1 = cx - fw / 2, cx + fw / 2
    fy0, fy1 = cy - fh / 2, cy + fh / 2
    ey = fy0 + 0.47 * fh
    ex = 0.23 * fw + _u(rng, -1.5, 1.5)
    my = fy0 + 0.77 * fh
    hairline = fy0 + 2

    # shoulders and neck
    shirt = _jitter_color(rng, _SHIRTS[_variant(rng, len(_SHIRTS))])
    # long hair behind the head
    if attrs["hair_length"] == "long":
        v = _variant(rng, 3)
        top = fy0 - 13
        if v == 0:  # straight, to the shoulders
            draw.rounded_rectangle(box(fx0 - 10, top, fx1 + 10, fy1 + 16), radius=w(22), fill=hair)
        elif v == 1:  # flared
            draw.ellipse(box(fx0 - 10, top, fx1 + 10, fy0 + 40), fill=hair)
            draw.polygon(pts([(fx0 - 10, fy0 + 18), (fx1 + 10, fy0 + 18), (fx1 + 18, fy1 + 16),
                              (fx0 - 18, fy1 + 16)]), fill=hair)
        else:  # rounded bob below the chin
            draw.ellipse(box(fx0 - 13, top, fx1 + 13, fy1 + 14), fill=hair)
    draw.rectangle(box(cx - 11, fy1 - 12, cx + 11, 130), fill=skin)
    draw.ellipse(box(cx - 52, fy1 + 10, cx + 52, fy1 + 60), fill=shirt)
    if attrs["hair_length"] == "long":  # strands in front of the shoulders
        draw.rectangle(box(fx0 - 8, fy0 + 30, fx0 + 4, fy1 + 14), fill=hair)
        draw.rectangle(box(fx1 - 4, fy0 + 30, fx1 + 8, fy1 + 14), fill=hair)

    # crown of hair (short or long); face drawn over it leaves a cap and thick side patches
    if not bald:
        v = _variant(rng, 3)
        side = 9
        if v == 0:  # rounded cap
            draw.ellipse(box(fx0 - side, fy0 - 13, fx1 + side, fy0 + 0.62 * fh), fill=hair)
        elif v == 1:  # flat top
            draw.rounded_rectangle(box(fx0 - side, fy0 - 12, fx1 + side, fy0 + 0.6 * fh), radius=w(14), fill=hair)
        else:  # spiky
            draw.ellipse(box(fx0 - side, fy0 - 11, fx1 + side, fy0 + 0.62 * fh), fill=hair)
            n = 5
            for i in range(n):
                x = fx0 - 2 + (fw + 4) * (i + 0.5) / n
                draw.polygon(pts([(x - 7, fy0 - 4), (x + 7, fy0 - 4), (x + _u(rng, -3, 3), fy0 - 19)]), fill=hair)

    # ears, face
    draw.ellipse(box(fx0 - 6, ey - 7, fx0 + 6, ey + 11), fill=skin)
    draw.ellipse(box(fx1 - 6, ey - 7, fx1 + 6, ey + 11), fill=skin)
    draw.ellipse(box(fx0, fy0, fx1, fy1), fill=skin, outline=skin_dark, width=w(1.5))

    # beard: the lower half of an ellipse over the jaw, reaching below the chin
    if attrs["beard"] == "yes":
        yt, yb = fy0 + 0.56 * fh, fy1 + 9
        draw.chord(box(fx0 - 2, 2 * yt - yb, fx1 + 2, yb), 0, 180, fill=beard_color,
                   outline=_mix(beard_color, (0, 0, 0), 0.5), width=w(3))

    # nose
    draw.line(pts([(cx, ey + 3), (cx - 3, my - 10), (cx + 2, my - 9)]), fill=skin_dark, width=w(2.5))

    # mouth
    if attrs["lipstick"] == "yes":
        lips = _jitter_color(rng, _LIPSTICK, 0.05)
    else:  # natural lips: a muted, darker red of the skin (darker still on dark skin, for contrast)
        lips = _mix(skin, (20, 0, 0) if attrs["skin"] == "dark" else (110, 20, 25), 0.55)
    mw = 12 + _u(rng, -1, 1.5)
    if attrs["expression"] == "neutral":
        lw = 7 if attrs["lipstick"] == "yes" else 5
        draw.line(pts([(cx - mw, my), (cx + mw, my)]), fill=lips, width=w(lw))
    elif attrs["expression"] == "smiling":
        draw.chord(box(cx - mw - 3, my - 9, cx + mw + 3, my + 11), 0, 180, fill=_TEETH, outline=lips, width=w(4.5))
    else:  # open mouth: a tall dark oval
        draw.ellipse(box(cx - 8, my - 7, cx + 8, my + 11), fill=_MOUTH_INSIDE, outline=lips, width=w(4.5))

    # eyes (with lens tint behind them when wearing glasses)
    lens_r = 11
    if attrs["eyeglasses"] == "yes":
        for sx in (-1, 1):
            draw.ellipse(box(cx + sx * ex - lens_r, ey - lens_r + 1, cx + sx * ex + lens_r, ey + lens_r - 1), fill=_LENS)
    for sx in (-1, 1):
        x = cx + sx * ex
        draw.ellipse(box(x - 5, ey - 3.5, x + 5, ey + 3.5), fill=(250, 250, 250))
        draw.ellipse(box(x - 3, ey - 3, x + 3, ey + 3), fill=(20, 20, 30))
        draw.line(pts([(x - 5, ey - 8), (x + 5, ey - 8.5)]), fill=skin_dark, width=w(2.5))

    # bangs: a fringe from the hairline to just above the eyebrows
    if attrs["bangs"] == "yes":
        v = _variant(rng, 3)
        yb = ey - 11 + _u(rng, -1.5, 1)
        a, b = fw / 2 + 4, yb - (fy0 - 13)
        arc = [(cx + a * math.cos(t), yb + b * math.sin(t)) for t in np.linspace(math.pi, 2 * math.pi, 13)]
        if v == 0:  # straight cut
            bottom = [(cx + a, yb), (cx - a, yb)]
        elif v == 1:  # jagged
            bottom = [(cx + a - i * (2 * a) / 8, yb + (4 if i % 2 else -1)) for i in range(9)]
        else:  # swept to one side
            sgn = 1 if rng is None or rng.random() < 0.5 else -1
            bottom = [(cx + a, yb - 3 * sgn), (cx - a, yb + 3 * sgn)]
        draw.polygon(pts(arc + bottom), fill=hair)

    # glasses: thick dark frames and a bridge
    if attrs["eyeglasses"] == "yes":
        for sx in (-1, 1):
            x = cx + sx * ex
            draw.ellipse(box(x - lens_r, ey - lens_r + 1, x + lens_r, ey + lens_r - 1), outline=_FRAME, width=w(4.5))
            draw.line(pts([(x + sx * lens_r, ey - 2), (cx + sx * (fw / 2 + 1), ey - 4)]), fill=_FRAME, width=w(3.5))
        draw.line(pts([(cx - ex + lens_r - 1, ey - 2), (cx + ex - lens_r + 1, ey - 2)]), fill=_FRAME, width=w(4))

    # hat: a wide brim at the hairline and a crown above it
    if attrs["hat"] == "yes":
        hat = _jitter_color(rng, _HAT)
        band = _mix(hat, (0, 0, 0), 0.5)
        hy = hairline + _u(rng, -1, 2)
        ch = 22 + _u(rng, -3, 3)
        draw.rounded_rectangle(box(fx0 + 5, hy - ch, fx1 - 5, hy + 1), radius=w(8), fill=hat)
        draw.rectangle(box(fx0 + 5, hy - 8, fx1 - 5, hy - 2), fill=band)
        draw.ellipse(box(fx0 - 14, hy - 5, fx1 + 14, hy + 5), fill=hat)


def _render_pil(attrs: dict[str, Any], resolution: int, rng: np.random.Generator | None) -> Image.Image:
    size = resolution * _SUPERSAMPLE
    bg = _jitter_color(rng, _BACKGROUND[attrs["background"]], 0.05)
    img = Image.new("RGB", (size, size), bg)
    _draw_face(ImageDraw.Draw(img), attrs, rng, size / 128)
    return img.reduce(_SUPERSAMPLE)


def render(attrs: dict[str, Any], resolution: int = RESOLUTION, rng: np.random.Generator | None = None) -> torch.Tensor:
    """Draw one face: `[3, resolution, resolution]` float32 in [-1, 1] (00_setup.ipynb).

    rng: a `numpy.random.Generator` for the nuisance variation (position, scale, shades, hair
    shapes); None draws the canonical face of these attributes, with no jitter.
    """
    check_attributes(attrs)
    if resolution < 8:
        raise ValueError(f"resolution must be >= 8, got {resolution}")
    arr = np.asarray(_render_pil(attrs, resolution, rng), dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1).div_(127.5).sub_(1.0).contiguous()


def render_batch(
    attrs_list: Sequence[dict[str, Any]], rng: np.random.Generator | None = None, resolution: int = RESOLUTION
) -> torch.Tensor:
    """Draw many faces: `[N, 3, resolution, resolution]` float32 in [-1, 1] (00_setup.ipynb)."""
    if len(attrs_list) == 0:
        return torch.empty(0, 3, resolution, resolution)
    for attrs in attrs_list:
        check_attributes(attrs)
    arr = np.stack([np.asarray(_render_pil(a, resolution, rng), dtype=np.uint8) for a in attrs_list])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous()


# ----------------------------------------------------------------------------------------------
# Captions
#
# A clause is (verb, object) with verb in {"has", "is", "wears"}; a sentence joins 1-3 clauses
# under one subject ("This person has long blond hair with bangs and wears eyeglasses."). Every
# value has positive phrasings, so "no hat" is never the only way to say "bare-headed".

_HAIR_COLOR_WORDS = {
    "black": ("black", "jet-black"),
    "brown": ("brown", "chestnut"),
    "blond": ("blond", "blonde", "golden blond"),
    "red": ("red", "ginger"),
    "gray": ("gray", "grey", "silver"),
}
_HAIR_LENGTH_WORDS = {"short": ("short", "cropped"), "long": ("long", "shoulder-length")}
_BALD_CLAUSES = (("is", "bald"), ("has", "a bald head"), ("has", "a shaved head"))
_BANGS_WITH = {"yes": ("with bangs", "with a fringe"), "no": ("without bangs", "and a bare forehead")}
_SKIN_WORDS = {"pale": ("pale", "fair", "light"), "tan": ("tan", "tanned", "medium"), "dark": ("dark", "deep")}
_CLAUSES: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "bangs": {
        "yes": (("has", "bangs"), ("has", "a fringe")),
        "no": (("has", "no bangs"), ("has", "a bare forehead")),
    },
    "expression": {
        "neutral": (("has", "a neutral expression"), ("has", "a straight face"), ("has", "a serious expression")),
        "smiling": (("is", "smiling"), ("is", "grinning"), ("has", "a big smile"), ("has", "a wide grin")),
        "open_mouth": (("has", "an open mouth"), ("has", "their mouth wide open"), ("is", "open-mouthed")),
    },
    "eyeglasses": {
        "yes": (("wears", "eyeglasses"), ("wears", "glasses"), ("has", "glasses on"), ("is", "wearing eyeglasses")),
        "no": (("is", "without glasses"), ("has", "no eyeglasses"), ("wears", "no glasses")),
    },
    "beard": {
        "yes": (("has", "a beard"), ("has", "a full beard"), ("is", "bearded")),
        "no": (("is", "clean-shaven"), ("has", "no beard")),
    },
    "hat": {
        "yes": (("wears", "a hat"), ("wears", "a purple hat"), ("has", "a hat on"), ("is", "wearing a hat")),
        "no": (("is", "bare-headed"), ("is", "hatless"), ("wears", "no hat")),
    },
    "lipstick": {
        "yes": (("wears", "lipstick"), ("wears", "bright crimson lipstick"), ("has", "painted lips"),
                ("is", "wearing lipstick")),
        "no": (("has", "natural lips"), ("wears", "no makeup"), ("wears", "no lipstick")),
    },
}
_BACKGROUND_CLAUSES = (("is", "in front of a {} background"), ("is", "pictured against a {} backdrop"),
                       ("is", "on a {} background"))
_SUBJECTS_FIRST = ("This person", "The person", "This individual", "The person in the picture")
_SUBJECTS_LATER = ("They", "They", "This person", "The person")
_PLURAL = {"has": "have", "is": "are", "wears": "wear"}


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _mentionable(attrs: dict[str, Any]) -> list[str]:
    """Attributes a caption may state: all but hair colour and bangs of a bald face."""
    return flippable_attributes(attrs)


def _join(items: Sequence[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def _hair_clauses(attrs: dict[str, Any], chosen: set[str], rng: np.random.Generator) -> tuple[list[tuple[str, str]], list[str]]:
    """Clauses (and whole sentences) that state the chosen hair attributes."""
    clauses: list[tuple[str, str]] = []
    sentences: list[str] = []
    if "hair_length" in chosen and attrs["hair_length"] == "bald":
        clauses.append(_pick(rng, _BALD_CLAUSES))
        return clauses, sentences
    color = _pick(rng, _HAIR_COLOR_WORDS[attrs["hair_color"]]) if "hair_color" in chosen else None
    length = _pick(rng, _HAIR_LENGTH_WORDS[attrs["hair_length"]]) if "hair_length" in chosen else None
    bangs = "bangs" in chosen
    if color is None and length is None:
        if bangs:
            clauses.append(_pick(rng, _CLAUSES["bangs"][attrs["bangs"]]))
        return clauses, sentences
    if not bangs and rng.random() < 0.25:  # "Their hair is long and blond."
        owner = _pick(rng, ("Their", "The person's", "His or her"))
        sentences.append(f"{owner} hair is {_join([w for w in (length, color) if w])}.")
        return clauses, sentences
    phrase = " ".join(w for w in (length, color) if w) + " hair"
    if bangs:
        phrase += " " + _pick(rng, _BANGS_WITH[attrs["bangs"]])
    clauses.append(("has", phrase))
    return clauses, sentences


def _sentence(subject: str, clauses: Sequence[tuple[str, str]]) -> str:
    plural = subject == "They"
    groups: dict[str, list[str]] = {}
    for verb, obj in clauses:
        groups.setdefault(verb, []).append(obj)
    parts = [f"{_PLURAL[v] if plural else v} {_join(objs)}" for v, objs in groups.items()]
    body = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + (", and " if len(parts) > 2 else " and ") + parts[-1]
    return f"{subject} {body}."


def _noun_phrase_sentence(clauses: Sequence[tuple[str, str]]) -> str:
    """"A smiling, bare-headed person with long red hair, wearing eyeglasses." """
    adjectives = [o for v, o in clauses if v == "is" and " " not in o]
    with_ = [o for v, o in clauses if v == "has"]
    wearing = [o for v, o in clauses if v == "wears"]
    rest = [o for v, o in clauses if v == "is" and " " in o]
    head = "A " + (", ".join(adjectives) + " " if adjectives else "") + "person"
    tails = []
    if with_:
        tails.append("with " + _join(with_))
    if wearing:
        tails.append("wearing " + _join(wearing))
    tails += rest
    return head + (" " + ", ".join(tails) if tails else "") + "."


def caption(attrs: dict[str, Any], rng: np.random.Generator,
            return_mentioned: bool = False) -> str | tuple[str, tuple[str, ...]]:
    """A Multi-Modal-CelebA-HQ-style caption stating a random subset (>= 2) of `attrs` (00_setup.ipynb).

    "This person has long blond hair with bangs and wears eyeglasses. They are smiling."
    Wording, synonyms (glasses/eyeglasses, blond/blonde, gray/grey, grin/smile) and sentence order
    vary with `rng`; only true values are stated, each value also in a positive phrasing
    ("bare-headed", "clean-shaven", "natural lips"). A bald face's hair colour and bangs are never
    mentioned. With `return_mentioned=True` returns `(text, names)`, `names` the stated attributes
    in `ATTRIBUTES` order.
    """
    check_attributes(attrs)
    pool = _mentionable(attrs)
    k = int(rng.integers(2, len(pool) + 1))
    chosen = {pool[i] for i in rng.choice(len(pool), size=k, replace=False)}

    clauses, sentences = _hair_clauses(attrs, chosen, rng)
    for name in ("expression", "eyeglasses", "beard", "hat", "lipstick"):
        if name in chosen:
            clauses.append(_pick(rng, _CLAUSES[name][attrs[name]]))
    if "skin" in chosen:
        if rng.random() < 0.7:
            clauses.append(("has", f"{_pick(rng, _SKIN_WORDS[attrs['skin']])} skin"))
        else:  # "fair-skinned", "tan-skinned", "dark-skinned"
            clauses.append(("is", f"{_pick(rng, _SKIN_WORDS[attrs['skin']][:2 if attrs['skin'] == 'pale' else 1])}-skinned"))
    if "background" in chosen:
        color = attrs["background"]
        if rng.random() < 0.3:
            sentences.append(f"The {_pick(rng, ('background', 'backdrop'))} is {color}.")
        else:
            verb, template = _pick(rng, _BACKGROUND_CLAUSES)
            clauses.append((verb, template.format(color)))

    order = rng.permutation(len(clauses))
    clauses = [clauses[i] for i in order]
    out: list[str] = []
    i = 0
    first = True
    while i < len(clauses):
        n = int(rng.integers(1, 4))
        group = clauses[i:i + n]
        i += n
        if first and rng.random() < 0.25:
            out.append(_noun_phrase_sentence(group))
        else:
            out.append(_sentence(_pick(rng, _SUBJECTS_FIRST if first else _SUBJECTS_LATER), group))
        first = False
    for s in sentences:  # standalone sentences go anywhere after the first
        out.insert(int(rng.integers(1 if out else 0, len(out) + 1)), s)
    text = " ".join(out)
    if return_mentioned:
        return text, tuple(a for a in ATTRIBUTES if a in chosen)
    return text


# What a caption states, read back by patterns (tried in order; the first match per attribute wins).
_WORDS = {v: "|".join(w.replace(" ", r"\s") for w in ws) for v, ws in _HAIR_COLOR_WORDS.items()}
_PATTERNS: dict[str, list[tuple[str, str]]] = {
    "hair_length": [(r"\bbald\b|\bshaved head", "bald"), (r"\bshort\b|\bcropped\b", "short"),
                    (r"\blong\b|\bshoulder-length\b", "long")],
    "hair_color": [(rf"(?<![\w-])(?:{_WORDS[v]})(?![\w-])", v) for v in ATTRIBUTES["hair_color"]],
    "bangs": [(r"\bno bangs|\bwithout bangs|\bbare forehead", "no"), (r"\bbangs\b|\bfringe\b", "yes")],
    "expression": [(r"neutral expression|straight face|serious expression", "neutral"),
                   (r"\bsmil|\bgrin", "smiling"), (r"open mouth|mouth wide open|open-mouthed", "open_mouth")],
    "eyeglasses": [(r"\bwithout glasses|\bno (?:eye)?glasses", "no"), (r"glasses", "yes")],
    "beard": [(r"clean-shaven|\bno beard", "no"), (r"\bbeard", "yes")],
    "skin": [(rf"\b(?:{'|'.join(ws)})(?: skin|-skinned)", v) for v, ws in _SKIN_WORDS.items()],
    "hat": [(r"bare-headed|\bhatless|\bno hat", "no"), (r"\bhat\b", "yes")],
    "lipstick": [(r"natural lips|no makeup|no lipstick", "no"), (r"lipstick|painted lips", "yes")],
    "background": [(rf"\b{c} (?:background|backdrop)|(?:background|backdrop) is {c}\b", c)
                   for c in ATTRIBUTES["background"]],
}


def caption_mentions(text: str) -> dict[str, str]:
    """The attribute values a caption from `caption` states, read back from its words (00_setup.ipynb).

    Returns `{attribute: value}` for the attributes the text mentions. Raises ValueError if the
    text states two values of one attribute (a contradiction). Works on prompts too, e.g.
    `caption_mentions(value_prompt("hat", "no")) == {"hat": "no"}`.
    """
    low = text.lower()
    found: dict[str, str] = {}
    for name, patterns in _PATTERNS.items():
        values = []
        masked = low
        for pattern, value in patterns:
            if re.search(pattern, masked):
                values.append(value)
                masked = re.sub(pattern, " ", masked)
        if len(set(values)) > 1:
            raise ValueError(f"caption states {name} = {sorted(set(values))}: {text!r}")
        if values:
            found[name] = values[0]
    return found


_PROMPTS: dict[str, dict[str, str]] = {
    "hair_color": {v: f"a person with {v} hair" for v in ATTRIBUTES["hair_color"]},
    "hair_length": {"bald": "a bald person", "short": "a person with short hair", "long": "a person with long hair"},
    "bangs": {"no": "a person with a bare forehead", "yes": "a person with bangs"},
    "expression": {"neutral": "a person with a neutral expression", "smiling": "a smiling person",
                   "open_mouth": "a person with an open mouth"},
    "eyeglasses": {"no": "a person without glasses", "yes": "a person wearing eyeglasses"},
    "beard": {"no": "a clean-shaven person", "yes": "a person with a beard"},
    "skin": {v: f"a person with {v} skin" for v in ATTRIBUTES["skin"]},
    "hat": {"no": "a bare-headed person", "yes": "a person wearing a hat"},
    "lipstick": {"no": "a person with natural lips", "yes": "a person wearing lipstick"},
    "background": {v: f"a person in front of a {v} background" for v in ATTRIBUTES["background"]},
}


def value_prompt(attr: str, value: str) -> str:
    """The one canonical prompt for an attribute value, for zero-shot accuracy (00_setup.ipynb).

    `value_prompt("hair_color", "red") == "a person with red hair"`;
    `value_prompt("hat", "no") == "a bare-headed person"`.
    """
    if attr not in _PROMPTS:
        raise ValueError(f"unknown attribute {attr!r}; expected one of {list(ATTRIBUTES)}")
    if value not in _PROMPTS[attr]:
        raise ValueError(f"{attr} has no value {value!r}; expected one of {ATTRIBUTES[attr]}")
    return _PROMPTS[attr][value]


_SHORT_PHRASES: dict[tuple[str, str], str] = {
    ("hair_length", "bald"): "bald", ("hair_length", "short"): "short hair", ("hair_length", "long"): "long hair",
    ("bangs", "no"): "a bare forehead", ("bangs", "yes"): "with bangs",
    ("expression", "neutral"): "a neutral expression", ("expression", "smiling"): "smiling",
    ("expression", "open_mouth"): "an open mouth",
    ("eyeglasses", "no"): "without glasses", ("eyeglasses", "yes"): "wearing eyeglasses",
    ("beard", "no"): "clean-shaven", ("beard", "yes"): "with a beard",
    ("hat", "no"): "bare-headed", ("hat", "yes"): "wearing a hat",
    ("lipstick", "no"): "natural lips", ("lipstick", "yes"): "wearing lipstick",
    **{("hair_color", v): f"{v} hair" for v in ATTRIBUTES["hair_color"]},
    **{("skin", v): f"{v} skin" for v in ATTRIBUTES["skin"]},
    **{("background", v): f"a {v} background" for v in ATTRIBUTES["background"]},
}


def value_phrase(attr: str, value: str) -> str:
    """The bare phrase of an attribute value, an edit text without a subject (07_editing.ipynb).

    `value_phrase("eyeglasses", "yes") == "wearing eyeglasses"`; `value_phrase("hair_color", "red") == "red hair"`.
    """
    value_prompt(attr, value)  # the same errors for unknown attributes and values
    return _SHORT_PHRASES[(attr, value)]


# ----------------------------------------------------------------------------------------------
# Labels: attribute indices, the generator's conditioning vector c, identity classes


def attributes_to_labels(attrs: dict[str, Any]) -> torch.Tensor:
    """`LongTensor [n_attributes]`: each value's index in `ATTRIBUTES`, -1 where not scored (00_setup.ipynb).

    The only unscored entry is a bald face's hair colour.
    """
    check_attributes(attrs)
    return torch.tensor([-1 if attrs[a] is None else ATTRIBUTES[a].index(attrs[a]) for a in ATTRIBUTES],
                        dtype=torch.long)


def labels_to_attributes(labels: torch.Tensor | Sequence[int]) -> dict[str, str | None]:
    """Inverse of `attributes_to_labels` (-1 → None) (00_setup.ipynb)."""
    labels = [int(v) for v in (labels.tolist() if isinstance(labels, torch.Tensor) else labels)]
    if len(labels) != len(ATTRIBUTES):
        raise ValueError(f"expected {len(ATTRIBUTES)} labels, got {len(labels)}")
    out: dict[str, str | None] = {}
    for (name, values), v in zip(ATTRIBUTES.items(), labels):
        if not -1 <= v < len(values):
            raise ValueError(f"label {v} out of range for {name} ({len(values)} values)")
        out[name] = None if v == -1 else values[v]
    return out

def _c_slices() -> dict[str, slice]:
    out, start = {}, 0
    for name, values in ATTRIBUTES.items():
        out[name] = slice(start, start + len(values))
        start += len(values)
    return out


# The generator's conditioning vector c: one one-hot block per attribute, in `ATTRIBUTES` order.
C_SLICES: dict[str, slice] = _c_slices()
C_DIM: int = sum(len(values) for values in ATTRIBUTES.values())  # 28 = 5+3+2+3+2+2+3+2+2+4


def attributes_to_c(attrs_list: Sequence[dict[str, Any]]) -> torch.Tensor:
    """Conditioning labels `c: [N, C_DIM]` (28): one one-hot block per attribute (`C_SLICES`), in
    `ATTRIBUTES` order; a bald face's hair-colour block is all zeros (02_stylegan2_wplus.ipynb)."""
    c = torch.zeros(len(attrs_list), C_DIM)
    for i, attrs in enumerate(attrs_list):
        for name, values in ATTRIBUTES.items():
            v = attrs.get(name)
            if v is not None:
                c[i, C_SLICES[name].start + values.index(v)] = 1.0
    return c


def sample_c(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """`n` label vectors drawn from the data distribution (`sample_attributes`): `(c [n, C_DIM], attrs)`
    (02_stylegan2_wplus.ipynb)."""
    attrs = [sample_attributes(rng) for _ in range(n)]
    return attributes_to_c(attrs), attrs


# Identity classes: the attributes a face-recognition network should see as "who" (the toy
# identity net and the identity loss), all others being changeable by an edit.
IDENTITY_ATTRIBUTES: tuple[str, ...] = ("skin", "hair_color", "hair_length", "beard", "background")


def identity_labels(attrs: dict[str, Any]) -> int:
    """The identity class of a face: its skin, hair (colour × length, bald one class), beard and background.

    264 classes = 3 skins × 11 hair styles × 2 beards × 4 backgrounds (00_setup.ipynb).
    """
    hair = 0 if attrs["hair_length"] == "bald" else 1 + ATTRIBUTES["hair_color"].index(attrs["hair_color"]) * 2 + (
        attrs["hair_length"] == "long")
    idx = ATTRIBUTES["skin"].index(attrs["skin"])
    idx = idx * 11 + hair
    idx = idx * 2 + ATTRIBUTES["beard"].index(attrs["beard"])
    idx = idx * 4 + ATTRIBUTES["background"].index(attrs["background"])
    return idx


N_IDENTITIES = 3 * 11 * 2 * 4


# ----------------------------------------------------------------------------------------------
# The dataset

EVAL_SEED = 1_000_003  # held-out renders: no training stream uses this seed


class ToyFaces(torch.utils.data.Dataset):
    """`n` toy faces generated on the fly, item `i` deterministic per `(seed, i)` (00_setup.ipynb).

    Each item is `dict(image=[3, R, R] float32 in [-1, 1], attributes=dict, caption=str,
    label=LongTensor [n_attributes] (-1: not scored), mentioned=BoolTensor [n_attributes])`.
    Items are drawn from `np.random.default_rng([seed, i])`, so any worker, order or machine sees
    the same data. Use different seeds for training and held-out sets.
    """

    def __init__(self, n: int, seed: int = 0, resolution: int = RESOLUTION):
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        self.n, self.seed, self.resolution = int(n), int(seed), int(resolution)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Any]:
        i = int(i)
        if not -self.n <= i < self.n:
            raise IndexError(f"index {i} out of range for {self.n} items")
        i = i % self.n if self.n else i
        rng = np.random.default_rng([self.seed, i])
        attrs = sample_attributes(rng)
        image = render(attrs, self.resolution, rng)
        text, mentioned = caption(attrs, rng, return_mentioned=True)
        return {
            "image": image,
            "attributes": attrs,
            "caption": text,
            "label": attributes_to_labels(attrs),
            "mentioned": torch.tensor([a in mentioned for a in ATTRIBUTES]),
        }

    @staticmethod
    def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """`DataLoader(collate_fn=ToyFaces.collate)`: stacks tensors, keeps attributes and captions as lists.

        (The default collate cannot batch a bald face's `hair_color=None`.)
        """
        return {
            "image": torch.stack([it["image"] for it in items]),
            "attributes": [it["attributes"] for it in items],
            "caption": [it["caption"] for it in items],
            "label": torch.stack([it["label"] for it in items]),
            "mentioned": torch.stack([it["mentioned"] for it in items]),
        }


WorldDataset = ToyFaces  # the world-generic name of the dataset (`clip2gan.toy.pets.WorldDataset` is ToyPets)


def render_labeled_batch(
    n: int, rng: np.random.Generator, resolution: int = RESOLUTION
) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """`n` fresh faces from one generator: `(images [n,3,R,R], labels [n, n_attributes], attrs)` (00_setup.ipynb)."""
    attrs = [sample_attributes(rng) for _ in range(n)]
    images = render_batch(attrs, rng, resolution)
    labels = torch.stack([attributes_to_labels(a) for a in attrs]) if n else torch.empty(0, len(ATTRIBUTES), dtype=torch.long)
    return images, labels, attrs


# ----------------------------------------------------------------------------------------------
# Image checks (for every network that reads the world's images)


def check_images(images: Any, resolution: int = RESOLUTION, name: str = "images") -> torch.Tensor:
    """Validate a batch of world images and return it clamped to [-1, 1] (00_setup.ipynb).

    images: `[N, 3, resolution, resolution]`, floating point, in [-1, 1]. Values slightly outside
    (a generator's overshoot, up to ±1.5) are clamped; anything further out, NaN, integer dtypes or
    another shape raise a ValueError that says what to do.
    """
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor [N, 3, {resolution}, {resolution}], got {type(images).__name__}")
    if not images.is_floating_point():
        raise ValueError(
            f"{name} has dtype {images.dtype}; expected floating point in [-1, 1] "
            "(convert uint8 with images.float() / 127.5 - 1)"
        )
    if images.ndim == 3:
        raise ValueError(f"{name} has shape {tuple(images.shape)}; expected a batch [N, 3, H, W] (use images[None])")
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} has shape {tuple(images.shape)}; expected [N, 3, {resolution}, {resolution}]")
    if images.shape[-2:] != (resolution, resolution):
        raise ValueError(
            f"{name} are {images.shape[-2]}x{images.shape[-1]} px; this network expects {resolution}x{resolution} "
            f"(resize with torch.nn.functional.interpolate(images, size={resolution}, mode='area'))"
        )
    if images.numel():
        if not torch.isfinite(images).all():
            raise ValueError(f"{name} contain NaN or infinite values")
        lo, hi = float(images.min()), float(images.max())
        if lo < -1.5 or hi > 1.5:
            raise ValueError(
                f"{name} range over [{lo:.3g}, {hi:.3g}]; expected [-1, 1] "
                "(from [0, 255] use x / 127.5 - 1; from [0, 1] use 2 * x - 1)"
            )
    return images.float().clamp(-1.0, 1.0)


# The attribute classifier (public API: `from clip2gan.toy.faces import AttributeClassifier`) lives in
# clip2gan.toy.nets, which imports this module; it stays reachable here, resolved on first use to avoid
# that import cycle.
_FROM_NETS = ("AttributeClassifier",)


def __getattr__(name: str) -> Any:
    if name in _FROM_NETS:
        from clip2gan.toy import nets

        return getattr(nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
