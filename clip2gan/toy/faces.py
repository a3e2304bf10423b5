"""The toy-faces world: procedural cartoon faces with exact attributes and captions (00_setup.ipynb).

No pretrained CLIP, StyleGAN2 or face data can be downloaded where this project is built, so the
default `toyfaces` profile (DESIGN §2) is a world the project renders itself. Every image is drawn
from a known attribute dict, which gives exact ground truth for the whole method: a held-out
`AttributeClassifier` scores text→image accuracy, editing accuracy and identity preservation.

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
is only feasible at 32 px (DESIGN §6), so every feature is drawn bold enough to read there.

Captions (`caption`) follow the Multi-Modal CelebA-HQ sentence style with varied wording,
synonyms and sentence order, a random subset of at least two attributes, and a positive phrase
for every value ("bare-headed", "clean-shaven", "natural lips").
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch import nn

__all__ = [
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
    "attributes_to_labels",
    "labels_to_attributes",
    "identity_labels",
    "ToyFaces",
    "check_images",
    "AttributeClassifier",
    "ToyIdentityNet",
    "evaluate_classifier",
    "evaluate_identity",
    "SUBCOMMANDS",
    "main",
]

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
    if attrs["hair_length"] == "bald":
        return [a for a in ATTRIBUTES if a not in ("hair_color", "bangs")]
    return list(ATTRIBUTES)


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


def caption(attrs: dict[str, Any], rng: np.random.Generator, return_mentioned: bool = False):
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
    import re

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


# ----------------------------------------------------------------------------------------------
# Labels and the dataset


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


def render_labeled_batch(
    n: int, rng: np.random.Generator, resolution: int = RESOLUTION
) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """`n` fresh faces from one generator: `(images [n,3,R,R], labels [n, n_attributes], attrs)` (00_setup.ipynb)."""
    attrs = [sample_attributes(rng) for _ in range(n)]
    images = render_batch(attrs, rng, resolution)
    labels = torch.stack([attributes_to_labels(a) for a in attrs]) if n else torch.empty(0, len(ATTRIBUTES), dtype=torch.long)
    return images, labels, attrs


# ----------------------------------------------------------------------------------------------
# Evaluation networks: the attribute classifier and the toy identity network

EVAL_SEED = 1_000_003  # held-out renders: no training stream uses this seed
IDENTITY_ATTRIBUTES: tuple[str, ...] = ("skin", "hair_color", "hair_length", "beard", "background")


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
        from clip2gan.checkpoint import load_safetensors
        from clip2gan.hub import resolve

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
    generator samples are still read (`python -m clip2gan.toy.faces train-classifier`).
    """

    artifact_name = "toyfaces-classifier"

    def __init__(self, resolution: int = RESOLUTION, widths: Sequence[int] = (32, 64, 128, 256), feature_dim: int = 256):
        super().__init__(resolution, widths, feature_dim)
        self.heads = nn.ModuleDict({a: nn.Linear(feature_dim, len(v)) for a, v in ATTRIBUTES.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per attribute, `{name: [N, n_values]}` (no input validation: the training path)."""
        f = self.trunk(images)
        return {a: head(f) for a, head in self.heads.items()}

    def predict_proba(self, images: torch.Tensor, batch_size: int = 512) -> dict[str, torch.Tensor]:
        """`{attribute: [N, n_values]}` probabilities, columns in `ATTRIBUTES` order."""
        outs = self._batched(images, lambda x: {a: l.softmax(-1).cpu() for a, l in self(x).items()}, batch_size)
        return {a: torch.cat([o[a] for o in outs]) if outs else torch.empty(0, len(v)) for a, v in ATTRIBUTES.items()}

    def predict(self, images: torch.Tensor, batch_size: int = 512) -> list[dict[str, str | None]]:
        """The most likely attribute dict per image; a face read as bald gets `hair_color=None`."""
        proba = self.predict_proba(images, batch_size)
        idx = {a: p.argmax(-1).tolist() for a, p in proba.items()}
        n = len(next(iter(proba.values())))
        out = []
        for i in range(n):
            d = {a: ATTRIBUTES[a][idx[a][i]] for a in ATTRIBUTES}
            if d["hair_length"] == "bald":
                d["hair_color"] = None
            out.append(d)
        return out


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


class ToyIdentityNet(_WorldNet):
    """The toy world's stand-in for ArcFace: L2-normalised embeddings that agree for faces with equal
    identity attributes (skin, hair colour and length, beard, background) whatever their expression,
    glasses, hat, lipstick, bangs or pose (00_setup.ipynb; used by the identity loss L_id).

    Trained as a CosFace-style normalised classifier over the 264 identity classes
    (`python -m clip2gan.toy.faces train-identity`). `forward(images) -> [N, embed_dim]`, unit norm,
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
    """Per-attribute accuracy on `n` held-out renders `ToyFaces(n, seed)` (00_setup.ipynb).

    Hair colour is scored on faces with hair only (a bald face has none).
    """
    data = ToyFaces(n, seed=seed, resolution=model.resolution)
    correct = torch.zeros(len(ATTRIBUTES))
    count = torch.zeros(len(ATTRIBUTES))
    for start in range(0, n, batch_size):
        batch = ToyFaces.collate([data[i] for i in range(start, min(n, start + batch_size))])
        proba = model.predict_proba(batch["image"])
        pred = torch.stack([proba[a].argmax(-1) for a in ATTRIBUTES], 1)
        valid = batch["label"] >= 0
        correct += ((pred == batch["label"]) & valid).sum(0).float()
        count += valid.sum(0).float()
    return {a: round(float(c / max(k, 1)), 5) for a, c, k in zip(ATTRIBUTES, correct, count)}


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
        same[name] = _pick(rng, [v for v in ATTRIBUTES[name] if v != attrs[name]])
        diff = dict(attrs)
        name = _pick(rng, ("skin", "hair_color", "beard", "background"))
        if name == "hair_color" and attrs["hair_length"] == "bald":
            name = "skin"
        diff[name] = _pick(rng, [v for v in ATTRIBUTES[name] if v != attrs[name]])
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
# Training (resumable; `python -m clip2gan.toy.faces train-classifier | train-identity`)

_STREAM_TAG = {"classifier": 7919, "identity": 7927}  # training streams never collide with ToyFaces(seed)


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


def _optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optimizer.{idx}.{k}"] = v
            else:
                scalars[f"{idx}.{k}"] = v
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, {"param_groups": groups, "scalars": scalars}


def _optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        _, idx, k = key.split(".", 2)
        state.setdefault(int(idx), {})[k] = v
    for key, v in meta["scalars"].items():
        idx, k = key.split(".", 1)
        state.setdefault(int(idx), {})[k] = v
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in meta["param_groups"]]
    opt.load_state_dict({"state": state, "param_groups": groups})


def _train(kind: str, args) -> dict[str, Any]:
    """The shared loop: fresh renders every step, Adam with warm-up and cosine decay, periodic atomic
    training-state checkpoints (resume with --resume), then half-precision weights + eval."""
    import time

    from tqdm.auto import tqdm

    from clip2gan.checkpoint import load_safetensors, save_safetensors

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    state_path = Path(args.state) if args.state else Path("runs") / out.stem / "train-state.safetensors"
    torch.manual_seed(args.seed)  # initial weights; batches come from per-step generators below
    model: _WorldNet = AttributeClassifier() if kind == "classifier" else ToyIdentityNet()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999))
    step, seconds = 0, 0.0
    if args.resume and state_path.is_file():
        tensors, cfg = load_safetensors(state_path)
        if cfg.get("kind") != kind or cfg.get("steps") != args.steps or cfg.get("batch") != args.batch:
            raise SystemExit(f"{state_path} was written by another run ({cfg.get('kind')}, steps={cfg.get('steps')}, "
                             f"batch={cfg.get('batch')}); delete it or use the same settings")
        model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
        _optimizer_from_tensors(opt, {k: v for k, v in tensors.items() if k.startswith("optimizer.")}, cfg["optimizer"])
        step, seconds = int(cfg["step"]), float(cfg["train_seconds"])
        print(f"resumed {state_path} at step {step} ({seconds:.0f} s trained)")

    def save_state():
        opt_t, opt_meta = _optimizer_to_tensors(opt)
        tensors = {**{f"model.{k}": v for k, v in model.state_dict().items()}, **opt_t}
        save_safetensors(tensors, state_path, {"kind": kind, "step": step, "steps": args.steps, "batch": args.batch,
                                               "train_seconds": seconds, "optimizer": opt_meta}, write_json=False)

    warmup = min(200, args.steps // 10)

    def lr_at(s: int) -> float:
        if s < warmup:
            return args.lr * (s + 1) / warmup
        return args.lr * 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, args.steps - warmup)))

    model.train()
    start_step = step
    bar = tqdm(total=args.steps, initial=step, desc=f"train-{kind}", unit="step", dynamic_ncols=True)
    last_save = time.time()
    while step < args.steps:
        t0 = time.time()
        rng = np.random.default_rng([args.seed, _STREAM_TAG[kind], step])
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        images, labels, attrs = render_labeled_batch(args.batch, rng)
        images = _augment(images, gen)
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        if kind == "classifier":
            logits = model(images)
            losses = [F.cross_entropy(logits[a], labels[:, j], ignore_index=-1) for j, a in enumerate(ATTRIBUTES)]
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
        stop = args.stop_after is not None and step - start_step >= args.stop_after
        if step == args.steps or stop or time.time() - last_save > args.save_every:
            save_state()
            last_save = time.time()
        if stop and step < args.steps:
            bar.close()
            print(f"stopped at step {step} of {args.steps}; continue with --resume ({state_path})")
            return {}
    bar.close()

    model.eval()
    if kind == "classifier":
        metrics = {"heldout_accuracy": evaluate_classifier(model, n=args.eval_n)}
    else:
        metrics = evaluate_identity(model, n=args.eval_n)
    command = (f"python -m clip2gan.toy.faces train-{kind} --out {args.out} --steps {args.steps} --batch {args.batch} "
               f"--lr {args.lr} --seed {args.seed} --threads {args.threads}")
    config = {"class": type(model).__name__, "arch": model.config, "command": command,
              "train": {"steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed,
                        "threads": args.threads, "train_seconds": round(seconds, 1)},
              "metrics": metrics, "eval": {"n": args.eval_n, "seed": EVAL_SEED}}
    save_safetensors(model.state_dict(), out, config, half=not args.fp32)
    print(json.dumps(metrics, indent=2))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB) after {seconds:.0f} s of training")
    if args.manifest:
        from clip2gan.hub import write_manifest_entry

        write_manifest_entry(out, command, train_seconds=round(seconds, 1), metrics=metrics,
                             eval={"n": args.eval_n, "seed": EVAL_SEED},
                             device=f"CPU, {args.threads} thread(s), torch {torch.__version__}")
        print("recorded in data/MANIFEST.json")
    return metrics


def _train_parser(kind: str, default_steps: int):
    import argparse

    p = argparse.ArgumentParser(prog=f"python -m clip2gan.toy.faces train-{kind}",
                                description=f"Train the toy world's {kind} network on fresh renders.")
    p.add_argument("--out", default=f"data/toyfaces-{kind}.safetensors", help="weights to write (+ .json)")
    p.add_argument("--steps", type=int, default=default_steps)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: leave the other cores free)")
    p.add_argument("--state", default=None, help="training-state checkpoint (default runs/<out stem>/train-state.safetensors)")
    p.add_argument("--resume", action="store_true", help="continue from the training-state checkpoint if present")
    p.add_argument("--save-every", type=float, default=60.0, help="seconds between training-state checkpoints")
    p.add_argument("--stop-after", type=int, default=None,
                   help="stop (saving the training state) after this many steps of this invocation")
    p.add_argument("--eval-n", type=int, default=2000, help="held-out renders for the final evaluation")
    p.add_argument("--fp32", action="store_true", help="store float32 weights (default float16)")
    p.add_argument("--manifest", action="store_true", help="record the result in data/MANIFEST.json")
    return p


def _cmd_train_classifier(argv: list[str]) -> int:
    _train("classifier", _train_parser("classifier", 1600).parse_args(argv))
    return 0


def _cmd_train_identity(argv: list[str]) -> int:
    _train("identity", _train_parser("identity", 1600).parse_args(argv))
    return 0


def _cmd_eval(kind: str, argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog=f"python -m clip2gan.toy.faces eval-{kind}",
                                description=f"Evaluate the toy world's {kind} network on held-out renders.")
    p.add_argument("--weights", default=f"toyfaces-{kind}", help="artefact name or path")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--seed", type=int, default=EVAL_SEED)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if kind == "classifier":
        metrics = evaluate_classifier(AttributeClassifier.from_pretrained(args.weights), n=args.n, seed=args.seed)
        width = max(map(len, metrics))
        for name, acc in metrics.items():
            print(f"{name:<{width}}  {100 * acc:6.2f}%")
        print(f"{'minimum':<{width}}  {100 * min(metrics.values()):6.2f}%   ({args.n} renders, seed {args.seed})")
    else:
        metrics = evaluate_identity(ToyIdentityNet.from_pretrained(args.weights), n=args.n, seed=args.seed)
        for name, v in metrics.items():
            print(f"{name:<22} {v}")
    return 0


# Subcommands of `python -m clip2gan.toy.faces`: name -> "module:function", the function taking the
# remaining argv and returning an exit code. Other modules add their own entries (train-clip,
# train-stylegan2) here; they are imported only when called.
SUBCOMMANDS: dict[str, str] = {
    "train-classifier": "clip2gan.toy.faces:_cmd_train_classifier",
    "eval-classifier": "clip2gan.toy.faces:_cmd_eval_classifier",
    "train-identity": "clip2gan.toy.faces:_cmd_train_identity",
    "eval-identity": "clip2gan.toy.faces:_cmd_eval_identity",
}


def _cmd_eval_classifier(argv: list[str]) -> int:
    return _cmd_eval("classifier", argv)


def _cmd_eval_identity(argv: list[str]) -> int:
    return _cmd_eval("identity", argv)


def main(argv: list[str] | None = None) -> int:
    """`python -m clip2gan.toy.faces <subcommand> [options]` (00_setup.ipynb)."""
    import importlib
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print("usage: python -m clip2gan.toy.faces {" + ",".join(SUBCOMMANDS) + "} [options]")
        print("  each subcommand takes --help")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"unknown subcommand {argv[0]!r}")
            return 2
        return 0
    module, func = SUBCOMMANDS[argv[0]].split(":")
    return int(getattr(importlib.import_module(module), func)(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
