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

What is the same in every world (the image conversion, caption assembly and read-back, the label
vectors, the dataset's items, `check_images`, `RESOLUTION`, `EVAL_SEED`) is written once in
`clip2gan.toy.world`; this module holds what is the faces' own and binds the rest to its schema.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from clip2gan.toy import world
from clip2gan.toy.world import EVAL_SEED, RESOLUTION, check_images  # noqa: F401 (EVAL_SEED, check_images: WORLD_API)

# The world's public names (`clip2gan.toy.world.WORLD_API`, the same in every world) and the faces-only ones.
__all__ = [*world.WORLD_API, "IDENTITY_ATTRIBUTES", "identity_labels", "N_IDENTITIES", "ToyFaces"]

NAME = "faces"  # the world's short name (`clip2gan.toy.world_module("faces")`)
_THIS = sys.modules[__name__]  # this world, for the generic code in `clip2gan.toy.world` that calls it

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
    attrs: dict[str, str | None] = world.sample_values(ATTRIBUTES, _MARGINALS, rng)
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
    out = world.flip_value(ATTRIBUTES, attrs, name, rng)
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
    world.check_keys(ATTRIBUTES, attrs)
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
    return world.jitter_color(rng, color, amount, 6)


def _variant(rng: np.random.Generator | None, n: int) -> int:
    return 0 if rng is None else int(rng.integers(n))


def _draw_face(draw: ImageDraw.ImageDraw, attrs: dict[str, Any], rng: np.random.Generator | None, k: float) -> None:
    """Draw one face on a 128*k canvas. All coordinates below are in 128-unit space, scaled by k."""

    canvas = world.Canvas(draw, k)
    box, pts, w = canvas.box, canvas.pts, canvas.w

    bald = attrs["hair_length"] == "bald"
    skin = _jitter_color(rng, _SKIN[attrs["skin"]])
    skin_dark = world.mix(skin, (40, 20, 10), 0.35)
    hair = _jitter_color(rng, _HAIR[attrs["hair_color"]]) if not bald else None
    beard_color = hair if hair is not None else _jitter_color(rng, _BALD_BEARD)

    # geometry with jitter
    cx = 64 + world.uniform(rng, -6, 6)
    cy = 67 + world.uniform(rng, -4, 4)
    scale = world.uniform(rng, 0.92, 1.06)
    fw = 57 * scale * world.uniform(rng, 0.95, 1.05)
    fh = 71 * scale
    fx0, fx1 = cx - fw / 2, cx + fw / 2
    fy0, fy1 = cy - fh / 2, cy + fh / 2
    ey = fy0 + 0.47 * fh
    ex = 0.23 * fw + world.uniform(rng, -1.5, 1.5)
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
                draw.polygon(pts([(x - 7, fy0 - 4), (x + 7, fy0 - 4), (x + world.uniform(rng, -3, 3), fy0 - 19)]), fill=hair)

    # ears, face
    draw.ellipse(box(fx0 - 6, ey - 7, fx0 + 6, ey + 11), fill=skin)
    draw.ellipse(box(fx1 - 6, ey - 7, fx1 + 6, ey + 11), fill=skin)
    draw.ellipse(box(fx0, fy0, fx1, fy1), fill=skin, outline=skin_dark, width=w(1.5))

    # beard: the lower half of an ellipse over the jaw, reaching below the chin
    if attrs["beard"] == "yes":
        yt, yb = fy0 + 0.56 * fh, fy1 + 9
        draw.chord(box(fx0 - 2, 2 * yt - yb, fx1 + 2, yb), 0, 180, fill=beard_color,
                   outline=world.mix(beard_color, (0, 0, 0), 0.5), width=w(3))

    # nose
    draw.line(pts([(cx, ey + 3), (cx - 3, my - 10), (cx + 2, my - 9)]), fill=skin_dark, width=w(2.5))

    # mouth
    if attrs["lipstick"] == "yes":
        lips = _jitter_color(rng, _LIPSTICK, 0.05)
    else:  # natural lips: a muted, darker red of the skin (darker still on dark skin, for contrast)
        lips = world.mix(skin, (20, 0, 0) if attrs["skin"] == "dark" else (110, 20, 25), 0.55)
    mw = 12 + world.uniform(rng, -1, 1.5)
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
        yb = ey - 11 + world.uniform(rng, -1.5, 1)
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
        band = world.mix(hat, (0, 0, 0), 0.5)
        hy = hairline + world.uniform(rng, -1, 2)
        ch = 22 + world.uniform(rng, -3, 3)
        draw.rounded_rectangle(box(fx0 + 5, hy - ch, fx1 - 5, hy + 1), radius=w(8), fill=hat)
        draw.rectangle(box(fx0 + 5, hy - 8, fx1 - 5, hy - 2), fill=band)
        draw.ellipse(box(fx0 - 14, hy - 5, fx1 + 14, hy + 5), fill=hat)


def _render_pil(attrs: dict[str, Any], resolution: int, rng: np.random.Generator | None) -> Image.Image:
    size = resolution * world.SUPERSAMPLE
    bg = _jitter_color(rng, _BACKGROUND[attrs["background"]], 0.05)
    img = Image.new("RGB", (size, size), bg)
    _draw_face(ImageDraw.Draw(img), attrs, rng, size / 128)
    return img.reduce(world.SUPERSAMPLE)


def render(attrs: dict[str, Any], resolution: int = RESOLUTION, rng: np.random.Generator | None = None) -> torch.Tensor:
    """Draw one face: `[3, resolution, resolution]` float32 in [-1, 1] (00_setup.ipynb).

    rng: a `numpy.random.Generator` for the nuisance variation (position, scale, shades, hair
    shapes); None draws the canonical face of these attributes, with no jitter.
    """
    return world.render(_render_pil, check_attributes, attrs, resolution, rng)


def render_batch(
    attrs_list: Sequence[dict[str, Any]], rng: np.random.Generator | None = None, resolution: int = RESOLUTION
) -> torch.Tensor:
    """Draw many faces: `[N, 3, resolution, resolution]` float32 in [-1, 1] (00_setup.ipynb)."""
    return world.render_batch(_render_pil, check_attributes, attrs_list, rng, resolution)


# ----------------------------------------------------------------------------------------------
# Captions
#
# Clauses and their assembly into sentences: `clip2gan.toy.world`. Every value has positive
# phrasings, so "no hat" is never the only way to say "bare-headed".

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
_SUBJECTS_FIRST = ("This person", "The person", "This individual", "The person in the picture")
_SUBJECTS_LATER = ("They", "They", "This person", "The person")


def _mentionable(attrs: dict[str, Any]) -> list[str]:
    """Attributes a caption may state: all but hair colour and bangs of a bald face."""
    return flippable_attributes(attrs)


def _hair_clauses(attrs: dict[str, Any], chosen: set[str], rng: np.random.Generator) -> tuple[list[tuple[str, str]], list[str]]:
    """Clauses (and whole sentences) that state the chosen hair attributes."""
    clauses: list[tuple[str, str]] = []
    sentences: list[str] = []
    if "hair_length" in chosen and attrs["hair_length"] == "bald":
        clauses.append(world.pick(rng, _BALD_CLAUSES))
        return clauses, sentences
    color = world.pick(rng, _HAIR_COLOR_WORDS[attrs["hair_color"]]) if "hair_color" in chosen else None
    length = world.pick(rng, _HAIR_LENGTH_WORDS[attrs["hair_length"]]) if "hair_length" in chosen else None
    bangs = "bangs" in chosen
    if color is None and length is None:
        if bangs:
            clauses.append(world.pick(rng, _CLAUSES["bangs"][attrs["bangs"]]))
        return clauses, sentences
    if not bangs and rng.random() < 0.25:  # "Their hair is long and blond."
        owner = world.pick(rng, ("Their", "The person's", "His or her"))
        sentences.append(f"{owner} hair is {world.join([w for w in (length, color) if w])}.")
        return clauses, sentences
    phrase = " ".join(w for w in (length, color) if w) + " hair"
    if bangs:
        phrase += " " + world.pick(rng, _BANGS_WITH[attrs["bangs"]])
    clauses.append(("has", phrase))
    return clauses, sentences


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
    chosen = world.choose_mentioned(_mentionable(attrs), rng)

    clauses, sentences = _hair_clauses(attrs, chosen, rng)
    for name in ("expression", "eyeglasses", "beard", "hat", "lipstick"):
        if name in chosen:
            clauses.append(world.pick(rng, _CLAUSES[name][attrs[name]]))
    if "skin" in chosen:
        if rng.random() < 0.7:
            clauses.append(("has", f"{world.pick(rng, _SKIN_WORDS[attrs['skin']])} skin"))
        else:  # "fair-skinned", "tan-skinned", "dark-skinned"
            clauses.append(("is", f"{world.pick(rng, _SKIN_WORDS[attrs['skin']][:2 if attrs['skin'] == 'pale' else 1])}-skinned"))
    if "background" in chosen:
        world.add_background(attrs["background"], rng, clauses, sentences)

    def first(group: Sequence[tuple[str, str]]) -> str:
        if rng.random() < 0.25:
            return world.noun_phrase_sentence("person", group, article="A")
        return world.sentence(world.pick(rng, _SUBJECTS_FIRST), group)

    text = world.assemble(clauses, sentences, rng, first, _SUBJECTS_LATER)
    if return_mentioned:
        return text, tuple(a for a in ATTRIBUTES if a in chosen)
    return text


# What a caption states, read back by patterns (tried in order; the first match per attribute wins).
_WORDS = {v: world.alternatives(ws) for v, ws in _HAIR_COLOR_WORDS.items()}
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
    "background": world.background_patterns(ATTRIBUTES["background"]),
}


def caption_mentions(text: str) -> dict[str, str]:
    """The attribute values a caption from `caption` states, read back from its words (00_setup.ipynb).

    Returns `{attribute: value}` for the attributes the text mentions. Raises ValueError if the
    text states two values of one attribute (a contradiction). Works on prompts too, e.g.
    `caption_mentions(value_prompt("hat", "no")) == {"hat": "no"}`.
    """
    return world.caption_mentions(_PATTERNS, text)


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
    return world.value_prompt(ATTRIBUTES, _PROMPTS, attr, value)


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
    return world.value_phrase(ATTRIBUTES, _PROMPTS, _SHORT_PHRASES, attr, value)


# ----------------------------------------------------------------------------------------------
# Labels: attribute indices, the generator's conditioning vector c, identity classes


def attributes_to_labels(attrs: dict[str, Any]) -> torch.Tensor:
    """`LongTensor [n_attributes]`: each value's index in `ATTRIBUTES`, -1 where not scored (00_setup.ipynb).

    The only unscored entry is a bald face's hair colour.
    """
    check_attributes(attrs)
    return world.attributes_to_labels(ATTRIBUTES, attrs)


def labels_to_attributes(labels: torch.Tensor | Sequence[int]) -> dict[str, str | None]:
    """Inverse of `attributes_to_labels` (-1 → None) (00_setup.ipynb)."""
    return world.labels_to_attributes(ATTRIBUTES, labels)


# The generator's conditioning vector c: one one-hot block per attribute, in `ATTRIBUTES` order.
C_SLICES: dict[str, slice] = world.c_slices(ATTRIBUTES)
C_DIM: int = sum(len(values) for values in ATTRIBUTES.values())  # 28 = 5+3+2+3+2+2+3+2+2+4


def attributes_to_c(attrs_list: Sequence[dict[str, Any]]) -> torch.Tensor:
    """Conditioning labels `c: [N, C_DIM]` (28): one one-hot block per attribute (`C_SLICES`), in
    `ATTRIBUTES` order; a bald face's hair-colour block is all zeros (02_stylegan2_wplus.ipynb)."""
    return world.attributes_to_c(ATTRIBUTES, attrs_list)


def sample_c(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """`n` label vectors drawn from the data distribution (`sample_attributes`): `(c [n, C_DIM], attrs)`
    (02_stylegan2_wplus.ipynb)."""
    return world.sample_c(_THIS, n, rng)


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


class ToyFaces(world.RenderedDataset):
    """`n` toy faces generated on the fly, item `i` deterministic per `(seed, i)` (00_setup.ipynb).

    Each item is `dict(image=[3, R, R] float32 in [-1, 1], attributes=dict, caption=str,
    label=LongTensor [n_attributes] (-1: not scored), mentioned=BoolTensor [n_attributes])`.
    Items are drawn from `np.random.default_rng([seed, i])`, so any worker, order or machine sees
    the same data. Use different seeds for training and held-out sets. `ToyFaces.collate` batches
    them (a bald face's `hair_color=None` defeats the default collate).
    """

    _world = _THIS


WorldDataset = ToyFaces  # the world-generic name of the dataset (`clip2gan.toy.pets.WorldDataset` is ToyPets)


def render_labeled_batch(
    n: int, rng: np.random.Generator, resolution: int = RESOLUTION
) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """`n` fresh faces from one generator: `(images [n,3,R,R], labels [n, n_attributes], attrs)` (00_setup.ipynb)."""
    return world.render_labeled_batch(_THIS, n, rng, resolution)


# `check_images`, every world's image check, is `clip2gan.toy.world.check_images`.


# The attribute classifier (public API: `from clip2gan.toy.faces import AttributeClassifier`) lives in
# clip2gan.toy.nets, which imports this module; it stays reachable here, resolved on first use to avoid
# that import cycle.
_FROM_NETS = ("AttributeClassifier",)


def __getattr__(name: str) -> Any:
    if name in _FROM_NETS:
        from clip2gan.toy import nets

        return getattr(nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
