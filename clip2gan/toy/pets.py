"""The toy-pets world: procedural cartoon cat and dog heads with exact attributes and captions (08_evaluation.ipynb).

The paper also runs CLIP2GAN on AFHQ's cats and dogs (supp. Table 7, Figs. 12-13), a world without
faces' identity loss. This module is that world's offline stand-in, built like `clip2gan.toy.faces`
and with the same public names and signatures, so that the world-generic code (the attribute
classifier, the small CLIP, the toy StyleGAN2, M's trainer; `clip2gan.toy.world_module`) takes either.
The profile is `toypets` (`clip2gan.profiles`).

Attributes (`ATTRIBUTES`, values in this order), each drawn boldly enough to read at 32 px:

    species      cat, dog                         (cat: wide head, pink nose, whiskers; dog: muzzle,
                                                   big black nose, tongue)
    fur          orange, gray, brown, black, white
    pattern      plain, striped, spotted          (stripes and spots in a shade that contrasts with the fur)
    ears         pointed, floppy, round
    eyes         green, blue, yellow              (large irises with a dark rim)
    collar       none, red, blue                  (a thick band below the head, with a tag)
    background   green, yellow, pink, purple

No constraints: every combination occurs (a toy world; it keeps every attribute pair observable),
so nothing is left unscored (`UNSCORED_WHEN` is empty) and every label is a value index.

Rendering (`render`): PIL draws at 4x the target resolution, then a 4x4 box filter downsamples.
Nuisance variation from the `rng` (head position, size, tilt, a sideways turn that moves the
features, shade jitter on every colour, where the spots fall, ear length) makes pets with equal
attributes differ. `RESOLUTION = 32`.

Captions (`caption`) use the faces' sentence style ("This cat has orange striped fur and floppy
ears. It wears a red collar."), a random subset of at least two attributes, synonyms, and a
positive phrase for every value ("plain fur", "collarless", "round ears"). `caption_mentions` reads
back what a caption states; `value_prompt` is the one prompt per value for zero-shot accuracy.

Labels (`attributes_to_labels`, `attributes_to_c`, `sample_c`, `C_SLICES`), the dataset (`ToyPets`,
also `WorldDataset`) and `check_images` have the faces' layout: both worlds bind the same code in
`clip2gan.toy.world` to their own schema, drawing and phrase tables.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from clip2gan.toy import world
from clip2gan.toy.world import EVAL_SEED, RESOLUTION, check_images  # noqa: F401 (EVAL_SEED, check_images: WORLD_API)

# The world's public names (`clip2gan.toy.world.WORLD_API`, the same in every world) and its dataset.
__all__ = [*world.WORLD_API, "ToyPets"]

NAME = "pets"
_THIS = sys.modules[__name__]  # this world, for the generic code in `clip2gan.toy.world` that calls it

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "species": ("cat", "dog"),
    "fur": ("orange", "gray", "brown", "black", "white"),
    "pattern": ("plain", "striped", "spotted"),
    "ears": ("pointed", "floppy", "round"),
    "eyes": ("green", "blue", "yellow"),
    "collar": ("none", "red", "blue"),
    "background": ("green", "yellow", "pink", "purple"),
}
ATTRIBUTE_NAMES: tuple[str, ...] = tuple(ATTRIBUTES)

# Not scored when another attribute has a value ({attribute: (other, value)}): none in this world.
UNSCORED_WHEN: dict[str, tuple[str, str]] = {}

# Which attribute the toy CLIP's minimal pairs flip (relative weights): the small features more often.
MINIMAL_PAIR_WEIGHTS: dict[str, float] = {
    "species": 1.0, "fur": 1.0, "pattern": 2.0, "ears": 2.0, "eyes": 2.0, "collar": 1.5, "background": 0.5,
}

_MARGINALS: dict[str, tuple[float, ...]] = {
    "species": (0.5, 0.5),
    "fur": (0.2, 0.2, 0.2, 0.2, 0.2),
    "pattern": (0.4, 0.3, 0.3),
    "ears": (1 / 3, 1 / 3, 1 / 3),
    "eyes": (1 / 3, 1 / 3, 1 / 3),
    "collar": (0.4, 0.3, 0.3),
    "background": (0.25, 0.25, 0.25, 0.25),
}


def sample_attributes(rng: np.random.Generator) -> dict[str, str]:
    """Draw one attribute dict from the world's marginals; attributes are independent (08_evaluation.ipynb)."""
    return world.sample_values(ATTRIBUTES, _MARGINALS, rng)


def check_attributes(attrs: dict[str, Any]) -> None:
    """Raise ValueError unless `attrs` is a complete attribute dict of this world (08_evaluation.ipynb)."""
    world.check_keys(ATTRIBUTES, attrs)
    for name, values in ATTRIBUTES.items():
        if attrs[name] not in values:
            raise ValueError(f"{name}={attrs[name]!r} is not one of {values}")


def flippable_attributes(attrs: dict[str, Any]) -> list[str]:
    """The attributes an edit or a minimal pair may change, and a caption may state: all of them here."""
    return list(ATTRIBUTES)


def flip_attribute(attrs: dict[str, Any], name: str, rng: np.random.Generator) -> dict[str, Any]:
    """A copy of `attrs` with attribute `name` changed to another value (08_evaluation.ipynb)."""
    if name not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {name!r}; expected one of {list(ATTRIBUTES)}")
    return world.flip_value(ATTRIBUTES, attrs, name, rng)


def tied_attributes(target_attr: str) -> set[str]:
    """Attributes a change of `target_attr` may change with it (not scored for preservation): none here."""
    return set()


def describe(attrs: dict[str, Any]) -> str:
    """A short label of a pet for pickers and grids: 'orange striped cat, floppy ears'."""
    pattern = "" if attrs["pattern"] == "plain" else f" {attrs['pattern']}"
    return f"{attrs['fur']}{pattern} {attrs['species']}, {attrs['ears']} ears"


# ----------------------------------------------------------------------------------------------
# Rendering

_BACKGROUND = {"green": (88, 178, 92), "yellow": (246, 214, 72), "pink": (242, 152, 204), "purple": (132, 92, 200)}
_FUR = {"orange": (236, 132, 38), "gray": (146, 148, 156), "brown": (128, 80, 42), "black": (34, 31, 32),
        "white": (246, 243, 236)}
_EYES = {"green": (52, 196, 66), "blue": (46, 122, 250), "yellow": (250, 232, 30)}
_COLLAR = {"red": (222, 26, 30), "blue": (28, 64, 220)}
_TAG = (250, 200, 40)
_INNER_EAR = (236, 148, 160)
_CAT_NOSE = (240, 120, 150)
_DOG_NOSE = (20, 18, 20)
_TONGUE = (232, 84, 110)
_OUTLINE = (24, 20, 20)


def _jitter(rng: np.random.Generator | None, color: Sequence[int], amount: float = 0.07) -> tuple[int, ...]:
    return world.jitter_color(rng, color, amount, 5)


def _marking_color(fur_name: str, fur: Sequence[int]) -> tuple[int, ...]:
    """Stripes and spots: darker than the fur, lighter on black fur, near-black on white fur."""
    if fur_name == "black":
        return (176, 174, 170)
    if fur_name == "white":
        return (44, 40, 40)
    return world.mix(fur, (0, 0, 0), 0.6)


def _ear_shade(fur_name: str, fur: Sequence[int]) -> tuple[int, ...]:
    """Floppy ears hang in a shade of the fur that stands out from it."""
    return world.mix(fur, (255, 255, 255), 0.35) if fur_name == "black" else world.mix(fur, (0, 0, 0), 0.35)


def _draw_head(c: world.Canvas, attrs: dict[str, Any], rng: np.random.Generator | None, cx: float, cy: float,
               s: float, fur: tuple[int, ...]) -> None:
    """The head (ears, face, markings, eyes, nose and mouth) around (cx, cy) at scale s, on a transparent layer."""
    d = c.draw
    cat = attrs["species"] == "cat"
    outline = world.mix(fur, (0, 0, 0), 0.45) if attrs["fur"] != "black" else (92, 88, 88)
    marking = _marking_color(attrs["fur"], fur)
    hw, hh = (40 * s, 32 * s) if cat else (34 * s, 35 * s)  # half width / height of the head
    top = cy - hh
    turn = world.uniform(rng, -3.5, 3.5) * s  # a sideways turn: the features move, the outline stays
    fx = cx + turn

    # ears behind the head: pointed triangles or round discs on the crown
    ear_len = world.uniform(rng, 0.9, 1.1)
    if attrs["ears"] == "pointed":
        for sx in (-1, 1):
            base_out, base_in = cx + sx * hw * 0.95, cx + sx * hw * 0.22
            tip = (cx + sx * hw * 0.82, top - 24 * s * ear_len)
            yb = top + 12 * s
            d.polygon(c.pts([(base_out, yb + 4 * s), (base_in, top + 2 * s), tip]), fill=fur, outline=outline)
            inner = [(base_out + 0.2 * (tip[0] - base_out), yb - 1 * s), (base_in + 0.25 * (tip[0] - base_in), top + 6 * s),
                     (tip[0] - sx * 2 * s, tip[1] + 10 * s)]
            d.polygon(c.pts(inner), fill=_INNER_EAR)
    elif attrs["ears"] == "round":
        r = 14 * s * ear_len
        for sx in (-1, 1):
            ex, ey = cx + sx * hw * 0.66, top + 2 * s
            d.ellipse(c.box(ex - r, ey - r, ex + r, ey + r), fill=fur, outline=outline, width=c.w(2))
            d.ellipse(c.box(ex - r * 0.55, ey - r * 0.55, ex + r * 0.55, ey + r * 0.55), fill=_INNER_EAR)

    # the face
    d.ellipse(c.box(cx - hw, cy - hh, cx + hw, cy + hh), fill=fur, outline=outline, width=c.w(2))
    if cat:  # cheek tufts widen a cat's face at the bottom
        for sx in (-1, 1):
            x = cx + sx * hw
            d.polygon(c.pts([(x - sx * 6 * s, cy + 2 * s), (x + sx * 7 * s, cy + 12 * s), (x - sx * 8 * s, cy + 20 * s)]),
                      fill=fur)

    # markings on the face
    if attrs["pattern"] == "striped":
        for i, dx in enumerate((-13, 0, 13)):
            x = fx + dx * s
            length = (22 if i == 1 else 17) * s
            d.polygon(c.pts([(x - 4.5 * s, top + 3 * s), (x + 4.5 * s, top + 3 * s), (x, top + 3 * s + length)]),
                      fill=marking)
        for sx in (-1, 1):
            for j, dy in enumerate((4, 13)):
                x0 = cx + sx * hw * 0.98
                x1 = cx + sx * hw * (0.45 if j == 0 else 0.55)
                y = cy + dy * s
                d.polygon(c.pts([(x0, y - 4 * s), (x0, y + 4 * s), (x1, y)]), fill=marking)
    elif attrs["pattern"] == "spotted":
        spots = [(-0.62, -0.55), (0.55, -0.6), (-0.7, 0.35), (0.68, 0.3), (0.05, -0.78)]
        order = [0, 1, 2, 3, 4] if rng is None else list(rng.permutation(len(spots)))
        for idx in order[:3]:
            ox, oy = spots[idx]
            r = world.uniform(rng, 7.5, 9.5) * s
            x, y = cx + ox * hw, cy + oy * hh
            d.ellipse(c.box(x - r, y - r * 0.85, x + r, y + r * 0.85), fill=marking)

    # eyes: a large iris in the eye colour with a dark rim; slit pupils for cats, round ones for dogs
    iris = _jitter(rng, _EYES[attrs["eyes"]], 0.04)
    ey = cy - (5 if cat else 9) * s
    ex = (16 if cat else 14) * s
    for sx in (-1, 1):
        x = fx + sx * ex
        rx, ry = (9.5 * s, 8.5 * s) if cat else (8.5 * s, 8.5 * s)
        d.ellipse(c.box(x - rx, ey - ry, x + rx, ey + ry), fill=iris, outline=_OUTLINE, width=c.w(1.6))
        if cat:
            d.ellipse(c.box(x - 1.6 * s, ey - 5.5 * s, x + 1.6 * s, ey + 5.5 * s), fill=_OUTLINE)
        else:
            d.ellipse(c.box(x - 2.6 * s, ey - 2.6 * s, x + 2.6 * s, ey + 2.6 * s), fill=_OUTLINE)
        d.ellipse(c.box(x + 1.5 * s, ey - 4.5 * s, x + 4 * s, ey - 2 * s), fill=(255, 255, 255))

    if cat:  # small pink nose, a "w" mouth and whiskers
        ny = cy + 8 * s
        d.polygon(c.pts([(fx - 5 * s, ny - 3 * s), (fx + 5 * s, ny - 3 * s), (fx, ny + 3 * s)]), fill=_CAT_NOSE)
        mouth = [(fx - 7 * s, ny + 7 * s), (fx - 3.5 * s, ny + 9 * s), (fx, ny + 4 * s), (fx + 3.5 * s, ny + 9 * s),
                 (fx + 7 * s, ny + 7 * s)]
        d.line(c.pts(mouth), fill=outline, width=c.w(2))
        whisker = (250, 250, 250) if attrs["fur"] in ("black", "brown", "gray") else (40, 36, 36)
        for sx in (-1, 1):
            for dy in (-3, 3):
                d.line(c.pts([(fx + sx * 9 * s, ny + 3 * s), (fx + sx * 38 * s, ny + (dy * 2.2) * s)]),
                       fill=whisker, width=c.w(1.8))
    else:  # a light muzzle with a big black nose and a pink tongue
        muzzle = (206, 198, 186) if attrs["fur"] == "white" else world.mix(fur, (255, 255, 255), 0.55)
        my = cy + 14 * s
        d.ellipse(c.box(fx - 19 * s, my - 14 * s, fx + 19 * s, my + 15 * s), fill=muzzle)
        d.polygon(c.pts([(fx - 5 * s, my + 11 * s), (fx + 5 * s, my + 11 * s), (fx + 6 * s, my + 23 * s),
                         (fx - 6 * s, my + 23 * s)]), fill=_TONGUE)
        d.ellipse(c.box(fx - 10 * s, my - 9 * s, fx + 10 * s, my + 3 * s), fill=_DOG_NOSE)
        d.line(c.pts([(fx, my + 2 * s), (fx, my + 9 * s)]), fill=_DOG_NOSE, width=c.w(2))
        d.line(c.pts([(fx - 9 * s, my + 10 * s), (fx, my + 9 * s), (fx + 9 * s, my + 10 * s)]), fill=_DOG_NOSE,
               width=c.w(2))

    # floppy ears hang over the sides of the head, in front of it
    if attrs["ears"] == "floppy":
        shade = _ear_shade(attrs["fur"], fur)
        for sx in (-1, 1):
            x_in, x_out = cx + sx * hw * 0.55, cx + sx * (hw + 10 * s)
            y0, y1 = top - 3 * s, cy + (16 + 6 * ear_len) * s
            d.ellipse(c.box(min(x_in, x_out), y0, max(x_in, x_out), y1), fill=shade, outline=_OUTLINE, width=c.w(1.5))


def _render_pil(attrs: dict[str, Any], resolution: int, rng: np.random.Generator | None) -> Image.Image:
    size = resolution * world.SUPERSAMPLE
    k = size / 128
    img = Image.new("RGB", (size, size), _jitter(rng, _BACKGROUND[attrs["background"]], 0.05))
    c = world.Canvas(ImageDraw.Draw(img), k)
    fur = _jitter(rng, _FUR[attrs["fur"]])
    cx = 64 + world.uniform(rng, -5, 5)
    cy = 56 + world.uniform(rng, -4, 4)
    s = world.uniform(rng, 0.92, 1.06)
    tilt = world.uniform(rng, -9, 9)

    # the body below the head, and the collar on the neck
    outline = world.mix(fur, (0, 0, 0), 0.45) if attrs["fur"] != "black" else (92, 88, 88)
    c.draw.ellipse(c.box(cx - 38 * s, cy + 28 * s, cx + 38 * s, cy + 120 * s), fill=fur, outline=outline, width=c.w(2))
    if attrs["pattern"] == "striped":
        for dx in (-22, 0, 22):
            c.draw.polygon(c.pts([(cx + (dx - 5) * s, 128), (cx + (dx + 5) * s, 128), (cx + dx * s, cy + 50 * s)]),
                           fill=_marking_color(attrs["fur"], fur))
    elif attrs["pattern"] == "spotted":
        for ox, oy in ((-18, 62), (16, 70)):
            c.draw.ellipse(c.box(cx + (ox - 8) * s, cy + (oy - 7) * s, cx + (ox + 8) * s, cy + (oy + 7) * s),
                           fill=_marking_color(attrs["fur"], fur))

    # the head on its own layer, tilted about its centre
    layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    _draw_head(world.Canvas(ImageDraw.Draw(layer), k), attrs, rng, cx, cy, s, fur)
    if tilt:
        layer = layer.rotate(tilt, resample=Image.BICUBIC, center=(cx * k, cy * k))
    img.paste(layer, (0, 0), layer)

    if attrs["collar"] != "none":
        collar = _jitter(rng, _COLLAR[attrs["collar"]], 0.05)
        y0 = cy + 38 * s
        c.draw.rounded_rectangle(c.box(cx - 30 * s, y0, cx + 30 * s, y0 + 12 * s), radius=c.w(5), fill=collar,
                                 outline=_OUTLINE, width=c.w(1.5))
        c.draw.ellipse(c.box(cx - 5 * s, y0 + 9 * s, cx + 5 * s, y0 + 19 * s), fill=_TAG, outline=_OUTLINE,
                       width=c.w(1.2))
    return img.reduce(world.SUPERSAMPLE)


def render(attrs: dict[str, Any], resolution: int = RESOLUTION, rng: np.random.Generator | None = None) -> torch.Tensor:
    """Draw one pet: `[3, resolution, resolution]` float32 in [-1, 1] (08_evaluation.ipynb).

    rng: a `numpy.random.Generator` for the nuisance variation (position, size, tilt, turn, shades,
    spot placement); None draws the canonical pet of these attributes, with no jitter.
    """
    return world.render(_render_pil, check_attributes, attrs, resolution, rng)


def render_batch(
    attrs_list: Sequence[dict[str, Any]], rng: np.random.Generator | None = None, resolution: int = RESOLUTION
) -> torch.Tensor:
    """Draw many pets: `[N, 3, resolution, resolution]` float32 in [-1, 1] (08_evaluation.ipynb)."""
    return world.render_batch(_render_pil, check_attributes, attrs_list, rng, resolution)


# ----------------------------------------------------------------------------------------------
# Captions
#
# Clauses and their assembly into sentences: `clip2gan.toy.world` ("This cat has orange striped fur
# and wears a red collar."). Every value has a positive phrasing, so "no collar" is never the only
# way to say "collarless".

_FUR_WORDS = {"orange": ("orange", "ginger"), "gray": ("gray", "grey"), "brown": ("brown", "chocolate"),
              "black": ("black", "jet-black"), "white": ("white", "snow-white")}
_PATTERN_WORDS = {"plain": ("plain", "solid-coloured"), "striped": ("striped",), "spotted": ("spotted",)}
_SPECIES_WORDS = {"cat": ("cat", "kitty"), "dog": ("dog", "pup")}
_CLAUSES: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "pattern": {
        "plain": (("has", "plain fur"), ("has", "a solid-coloured coat"), ("has", "unpatterned fur")),
        "striped": (("has", "striped fur"), ("has", "stripes"), ("is", "striped")),
        "spotted": (("has", "spotted fur"), ("has", "spots"), ("is", "spotted")),
    },
    "ears": {
        "pointed": (("has", "pointed ears"), ("has", "pointy ears")),
        "floppy": (("has", "floppy ears"), ("has", "droopy ears")),
        "round": (("has", "round ears"), ("has", "rounded ears")),
    },
    "eyes": {v: (("has", f"{w} eyes"),) for v, w in (("green", "green"), ("blue", "blue"), ("yellow", "yellow"))},
    "collar": {
        "none": (("is", "collarless"), ("has", "a bare neck"), ("wears", "no collar")),
        "red": (("wears", "a red collar"), ("has", "a red collar on")),
        "blue": (("wears", "a blue collar"), ("has", "a blue collar on")),
    },
}
_EYE_SENTENCE = ("Its eyes are {}.", "The eyes are {}.")
_GENERIC_FIRST = ("This pet", "The pet", "This animal", "The animal in the picture")
_LATER = ("It", "It", "This pet", "The animal")


def caption(attrs: dict[str, Any], rng: np.random.Generator,
            return_mentioned: bool = False) -> str | tuple[str, tuple[str, ...]]:
    """A caption in the faces' style stating a random subset (>= 2) of `attrs` (08_evaluation.ipynb).

    "This cat has orange striped fur and floppy ears. It wears a red collar." The species is stated
    through the subject ("This dog ..."; "This pet ..." when it is not stated); wording, synonyms
    (grey/gray, pointy/pointed, ginger/orange) and sentence order vary with `rng`; only true values are
    stated, each also in a positive phrasing. With `return_mentioned=True` returns `(text, names)`,
    `names` the stated attributes in `ATTRIBUTES` order.
    """
    check_attributes(attrs)
    chosen = world.choose_mentioned(list(ATTRIBUTES), rng)

    clauses: list[tuple[str, str]] = []
    sentences: list[str] = []
    fur = world.pick(rng, _FUR_WORDS[attrs["fur"]]) if "fur" in chosen else None
    if fur is not None and "pattern" in chosen:
        pattern = world.pick(rng, _PATTERN_WORDS[attrs["pattern"]])
        words = f"{pattern} {fur}" if attrs["pattern"] == "plain" or rng.random() < 0.5 else f"{fur} {pattern}"
        clauses.append(("has", world.pick(rng, (f"{words} fur", f"a {words} coat"))))
    elif fur is not None:
        if rng.random() < 0.25:
            sentences.append(f"{world.pick(rng, ('Its fur is', 'Its coat is'))} {fur}.")
        else:
            clauses.append(("has", world.pick(rng, (f"{fur} fur", f"a {fur} coat"))))
    elif "pattern" in chosen:
        clauses.append(world.pick(rng, _CLAUSES["pattern"][attrs["pattern"]]))
    for name in ("ears", "collar"):
        if name in chosen:
            clauses.append(world.pick(rng, _CLAUSES[name][attrs[name]]))
    if "eyes" in chosen:
        if rng.random() < 0.25:
            sentences.append(world.pick(rng, _EYE_SENTENCE).format(attrs["eyes"]))
        else:
            clauses.append(world.pick(rng, _CLAUSES["eyes"][attrs["eyes"]]))
    if "background" in chosen:
        world.add_background(attrs["background"], rng, clauses, sentences)

    noun = world.pick(rng, _SPECIES_WORDS[attrs["species"]]) if "species" in chosen else None

    def first(group: Sequence[tuple[str, str]]) -> str:
        if rng.random() < 0.25:
            return world.noun_phrase_sentence(noun or world.pick(rng, ("pet", "animal")), group)
        subject = f"{world.pick(rng, ('This', 'The'))} {noun}" if noun else world.pick(rng, _GENERIC_FIRST)
        return world.sentence(subject, group)

    # with only standalone sentences, the caption opens with the species, or the pet, on its own: "A cat."
    text = world.assemble(clauses, sentences, rng, first, _LATER, opening=f"A {noun or 'pet'}.")
    if return_mentioned:
        return text, tuple(a for a in ATTRIBUTES if a in chosen)
    return text


_FUR_RE = {v: world.alternatives(ws) for v, ws in _FUR_WORDS.items()}
_PATTERN_ADJ = r"(?:striped|spotted|plain|solid-coloured)"
# What a caption states, read back by patterns (tried in order; the first match per attribute wins).
_PATTERNS: dict[str, list[tuple[str, str]]] = {
    "species": [(r"\b(?:cat|kitty|kitten)s?\b", "cat"), (r"\b(?:dog|pup|puppy)s?\b", "dog")],
    "fur": [(rf"(?<![\w-])(?:{_FUR_RE[v]})(?:\s{_PATTERN_ADJ})?\s(?:fur|coat)\b|\b(?:fur|coat) is (?:{_FUR_RE[v]})\b", v)
            for v in ATTRIBUTES["fur"]],
    "pattern": [(r"\bplain\b|\bsolid-coloured\b|\bunpatterned\b", "plain"), (r"\bstripe", "striped"),
                (r"\bspot", "spotted")],
    "ears": [(r"\bpoint(?:ed|y) ears", "pointed"), (r"\b(?:floppy|droopy) ears", "floppy"),
             (r"\bround(?:ed)? ears", "round")],
    "eyes": [(rf"\b{c} eyes|\beyes are {c}\b", c) for c in ATTRIBUTES["eyes"]],
    "collar": [(r"\bcollarless|\bbare neck|\bno collar|\bwithout a collar", "none"), (r"\bred collar", "red"),
               (r"\bblue collar", "blue")],
    "background": world.background_patterns(ATTRIBUTES["background"]),
}


def caption_mentions(text: str) -> dict[str, str]:
    """The attribute values a caption from `caption` states, read back from its words (08_evaluation.ipynb).

    Returns `{attribute: value}` for the attributes the text mentions; raises ValueError if it states
    two values of one attribute. Works on prompts too: `caption_mentions(value_prompt("ears", "round"))
    == {"ears": "round"}`.
    """
    return world.caption_mentions(_PATTERNS, text)


_PROMPTS: dict[str, dict[str, str]] = {
    "species": {"cat": "a photo of a cat", "dog": "a photo of a dog"},
    "fur": {v: f"a pet with {v} fur" for v in ATTRIBUTES["fur"]},
    "pattern": {"plain": "a pet with plain fur", "striped": "a pet with striped fur", "spotted": "a pet with spotted fur"},
    "ears": {v: f"a pet with {v} ears" for v in ATTRIBUTES["ears"]},
    "eyes": {v: f"a pet with {v} eyes" for v in ATTRIBUTES["eyes"]},
    "collar": {"none": "a collarless pet", "red": "a pet wearing a red collar", "blue": "a pet wearing a blue collar"},
    "background": {v: f"a pet in front of a {v} background" for v in ATTRIBUTES["background"]},
}


def value_prompt(attr: str, value: str) -> str:
    """The one canonical prompt for an attribute value, for zero-shot accuracy (08_evaluation.ipynb).

    `value_prompt("species", "dog") == "a photo of a dog"`; `value_prompt("collar", "none") == "a collarless pet"`.
    """
    return world.value_prompt(ATTRIBUTES, _PROMPTS, attr, value)


_SHORT_PHRASES: dict[tuple[str, str], str] = {
    ("species", "cat"): "a cat", ("species", "dog"): "a dog",
    **{("fur", v): f"{v} fur" for v in ATTRIBUTES["fur"]},
    ("pattern", "plain"): "plain fur", ("pattern", "striped"): "striped fur", ("pattern", "spotted"): "spotted fur",
    **{("ears", v): f"{v} ears" for v in ATTRIBUTES["ears"]},
    **{("eyes", v): f"{v} eyes" for v in ATTRIBUTES["eyes"]},
    ("collar", "none"): "collarless", ("collar", "red"): "wearing a red collar", ("collar", "blue"): "wearing a blue collar",
    **{("background", v): f"a {v} background" for v in ATTRIBUTES["background"]},
}


def value_phrase(attr: str, value: str) -> str:
    """The bare phrase of an attribute value, an edit text without a subject (08_evaluation.ipynb).

    `value_phrase("ears", "floppy") == "floppy ears"`; `value_phrase("collar", "none") == "collarless"`.
    """
    return world.value_phrase(ATTRIBUTES, _PROMPTS, _SHORT_PHRASES, attr, value)


# ----------------------------------------------------------------------------------------------
# Labels: attribute indices and the generator's conditioning vector c


def attributes_to_labels(attrs: dict[str, Any]) -> torch.Tensor:
    """`LongTensor [n_attributes]`: each value's index in `ATTRIBUTES` (08_evaluation.ipynb)."""
    check_attributes(attrs)
    return world.attributes_to_labels(ATTRIBUTES, attrs)


def labels_to_attributes(labels: torch.Tensor | Sequence[int]) -> dict[str, str | None]:
    """Inverse of `attributes_to_labels` (-1, never produced here, → None) (08_evaluation.ipynb)."""
    return world.labels_to_attributes(ATTRIBUTES, labels)


C_SLICES: dict[str, slice] = world.c_slices(ATTRIBUTES)
C_DIM: int = sum(len(values) for values in ATTRIBUTES.values())  # 23 = 2+5+3+3+3+3+4


def attributes_to_c(attrs_list: Sequence[dict[str, Any]]) -> torch.Tensor:
    """Conditioning labels `c: [N, C_DIM]` (23): one one-hot block per attribute at `C_SLICES` (08_evaluation.ipynb)."""
    return world.attributes_to_c(ATTRIBUTES, attrs_list)


def sample_c(n: int, rng: np.random.Generator) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """`n` label vectors drawn from the data distribution: `(c [n, C_DIM], attrs)` (08_evaluation.ipynb)."""
    return world.sample_c(_THIS, n, rng)


# ----------------------------------------------------------------------------------------------
# The dataset


class ToyPets(world.RenderedDataset):
    """`n` toy pets generated on the fly, item `i` deterministic per `(seed, i)` (08_evaluation.ipynb).

    Items as `clip2gan.toy.faces.ToyFaces`'s: `dict(image=[3, R, R] float32 in [-1, 1], attributes,
    caption, label=LongTensor [n_attributes], mentioned=BoolTensor [n_attributes])`; `ToyPets.collate`
    batches them.
    """

    _world = _THIS


WorldDataset = ToyPets  # the world-generic name of the dataset (`clip2gan.toy.faces.WorldDataset` is ToyFaces)


def render_labeled_batch(
    n: int, rng: np.random.Generator, resolution: int = RESOLUTION
) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """`n` fresh pets from one generator: `(images [n,3,R,R], labels [n, n_attributes], attrs)` (08_evaluation.ipynb)."""
    return world.render_labeled_batch(_THIS, n, rng, resolution)

