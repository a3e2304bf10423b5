"""What every toy world shares: the world interface and the code that is the same in each (00_setup.ipynb).

A toy world (`clip2gan.toy.faces`, `clip2gan.toy.pets`) is a module with the public names of
`WORLD_API`. What differs between worlds stays in the world's module: the attribute schema
(`ATTRIBUTES`) and its rules (`check_attributes`, `flip_attribute`, ...), the drawing (`_render_pil`),
the caption grammar and its phrase tables. What does not differ lives here once, parametrised by
those: the drawing helpers (`Canvas`, `jitter_color`), the image conversion (`render`,
`render_batch`), the caption machinery (`sentence`, `assemble`, `caption_mentions`, `value_prompt`),
the label vectors (`attributes_to_labels`, `attributes_to_c`, ...), the dataset (`RenderedDataset`)
and the image checks (`check_images`).

A world module binds these to its schema in small public functions that keep their own signatures
and docstrings (`faces.render(attrs)`, `pets.render(attrs)`); the functions here that call a
world's own public functions (`sample_c`, `render_labeled_batch`) take the world module itself.
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any, Callable, ClassVar, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

__all__ = [
    "WORLD_API",
    "RESOLUTION",
    "SUPERSAMPLE",
    "EVAL_SEED",
    "sample_values",
    "check_keys",
    "flip_value",
    "Canvas",
    "jitter_color",
    "mix",
    "uniform",
    "render",
    "render_batch",
    "render_labeled_batch",
    "pick",
    "join",
    "sentence",
    "noun_phrase_sentence",
    "choose_mentioned",
    "BACKGROUND_CLAUSES",
    "add_background",
    "assemble",
    "alternatives",
    "background_patterns",
    "caption_mentions",
    "value_prompt",
    "value_phrase",
    "attributes_to_labels",
    "labels_to_attributes",
    "c_slices",
    "attributes_to_c",
    "sample_c",
    "RenderedDataset",
    "check_images",
]

# The public names every world module has, with the same signatures (tests/test_pets.py checks them).
WORLD_API: tuple[str, ...] = (
    "NAME", "ATTRIBUTES", "ATTRIBUTE_NAMES", "RESOLUTION", "EVAL_SEED", "C_SLICES", "C_DIM", "UNSCORED_WHEN",
    "MINIMAL_PAIR_WEIGHTS", "sample_attributes", "check_attributes", "flippable_attributes", "flip_attribute",
    "tied_attributes", "describe", "render", "render_batch", "render_labeled_batch", "caption", "caption_mentions",
    "value_prompt", "value_phrase", "attributes_to_labels", "labels_to_attributes", "attributes_to_c", "sample_c", "WorldDataset",
    "check_images",
)

Attributes = Mapping[str, Sequence[str]]  # a world's `ATTRIBUTES`: each attribute's values, in order
Clause = tuple[str, str]  # (verb, object), verb in {"has", "is", "wears"}: ("has", "long blond hair")

RESOLUTION = 32  # every world's image size: StyleGAN2 training on two CPU cores is only feasible at 32 px
SUPERSAMPLE = 4  # worlds draw at 4x, then box-downsample: anti-aliased edges at the target resolution
EVAL_SEED = 1_000_003  # held-out renders: no training stream uses this seed


# ----------------------------------------------------------------------------------------------
# Attribute dicts


def sample_values(attributes: Attributes, marginals: Mapping[str, Sequence[float]],
                  rng: np.random.Generator) -> dict[str, Any]:
    """One value per attribute drawn independently from `marginals` (in value order), in `attributes`
    order; a world applies its constraints to the result (00_setup.ipynb)."""
    return {name: values[int(rng.choice(len(values), p=marginals[name]))] for name, values in attributes.items()}


def check_keys(attributes: Attributes, attrs: Mapping[str, Any]) -> None:
    """Raise ValueError unless `attrs` has exactly the keys of `attributes` (00_setup.ipynb)."""
    missing = [a for a in attributes if a not in attrs]
    if missing:
        raise ValueError(f"attributes missing: {missing}; expected keys {list(attributes)}")
    extra = [a for a in attrs if a not in attributes]
    if extra:
        raise ValueError(f"unknown attributes: {extra}; expected keys {list(attributes)}")


def flip_value(attributes: Attributes, attrs: Mapping[str, Any], name: str, rng: np.random.Generator) -> dict[str, Any]:
    """A copy of `attrs` with `name` set to another of its values, drawn uniformly (01_clip_embedding.ipynb)."""
    out = dict(attrs)
    others = [v for v in attributes[name] if v != attrs[name]]
    out[name] = others[int(rng.integers(len(others)))]
    return out


# ----------------------------------------------------------------------------------------------
# Drawing helpers and rendering


class Canvas:
    """Drawing in 128-unit coordinates on a canvas of 128·k pixels (00_setup.ipynb)."""

    def __init__(self, draw: ImageDraw.ImageDraw, k: float):
        self.draw, self.k = draw, k

    def box(self, x0: float, y0: float, x1: float, y1: float) -> list[float]:
        return [x0 * self.k, y0 * self.k, x1 * self.k, y1 * self.k]

    def pts(self, points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
        return [(x * self.k, y * self.k) for x, y in points]

    def w(self, width: float) -> int:
        return max(1, int(round(width * self.k)))


def jitter_color(rng: np.random.Generator | None, color: Sequence[int], amount: float, offset: float) -> tuple[int, ...]:
    """`color` with a random shade: scaled by 1 ± `amount`, each channel shifted by ± `offset` (00_setup.ipynb).

    rng None (a canonical render) returns the colour unchanged.
    """
    if rng is None:
        return tuple(int(c) for c in color)
    scale = 1.0 + rng.uniform(-amount, amount)
    return tuple(int(min(255, max(0, c * scale + rng.uniform(-offset, offset)))) for c in color)


def mix(a: Sequence[int], b: Sequence[int], t: float) -> tuple[int, ...]:
    """The colour a fraction `t` of the way from `a` to `b` (00_setup.ipynb)."""
    return tuple(int(round(x * (1 - t) + y * t)) for x, y in zip(a, b))


def uniform(rng: np.random.Generator | None, lo: float, hi: float) -> float:
    """A uniform draw in [lo, hi), or the middle when `rng` is None (a canonical render) (00_setup.ipynb)."""
    return (lo + hi) / 2 if rng is None else float(rng.uniform(lo, hi))


RenderPil = Callable[[Mapping[str, Any], int, "np.random.Generator | None"], Image.Image]


def render(render_pil: RenderPil, check_attributes: Callable[[Any], None], attrs: dict[str, Any], resolution: int,
           rng: np.random.Generator | None) -> torch.Tensor:
    """A world's `render`: `attrs` drawn by `render_pil` as `[3, resolution, resolution]` float32 in [-1, 1]
    (00_setup.ipynb)."""
    check_attributes(attrs)
    if resolution < 8:
        raise ValueError(f"resolution must be >= 8, got {resolution}")
    arr = np.asarray(render_pil(attrs, resolution, rng), dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1).div_(127.5).sub_(1.0).contiguous()


def render_batch(render_pil: RenderPil, check_attributes: Callable[[Any], None], attrs_list: Sequence[dict[str, Any]],
                 rng: np.random.Generator | None, resolution: int) -> torch.Tensor:
    """A world's `render_batch`: `[N, 3, resolution, resolution]` float32 in [-1, 1] (00_setup.ipynb)."""
    if len(attrs_list) == 0:
        return torch.empty(0, 3, resolution, resolution)
    for attrs in attrs_list:
        check_attributes(attrs)
    arr = np.stack([np.asarray(render_pil(a, resolution, rng), dtype=np.uint8) for a in attrs_list])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0).contiguous()


def render_labeled_batch(world: ModuleType, n: int, rng: np.random.Generator,
                         resolution: int) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, Any]]]:
    """A world's `render_labeled_batch`: `n` fresh samples of `world` from one generator,
    `(images [n, 3, R, R], labels [n, n_attributes], attrs)` (00_setup.ipynb)."""
    attrs = [world.sample_attributes(rng) for _ in range(n)]
    images = world.render_batch(attrs, rng, resolution)
    labels = (torch.stack([world.attributes_to_labels(a) for a in attrs]) if n
              else torch.empty(0, len(world.ATTRIBUTES), dtype=torch.long))
    return images, labels, attrs


# ----------------------------------------------------------------------------------------------
# Captions
#
# A clause is (verb, object) with verb in {"has", "is", "wears"}; a sentence joins 1-3 clauses under
# one subject ("This person has long blond hair with bangs and wears eyeglasses."). A world's
# `caption` chooses the attributes to state (`choose_mentioned`), turns their values into clauses
# and standalone sentences with its own phrase tables, and `assemble` orders and joins them.

_PLURAL = {"has": "have", "is": "are", "wears": "wear"}


def pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    """One of `options`, uniformly (00_setup.ipynb)."""
    return options[int(rng.integers(len(options)))]


def join(items: Sequence[str]) -> str:
    """'a', 'a and b', 'a, b and c' (00_setup.ipynb)."""
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " and " + items[-1]


def sentence(subject: str, clauses: Sequence[Clause]) -> str:
    """One sentence of `clauses` under `subject`, clauses of one verb joined: "This cat has orange fur and
    floppy ears and wears a red collar." The subject "They" takes plural verbs (00_setup.ipynb)."""
    plural = subject == "They"
    groups: dict[str, list[str]] = {}
    for verb, obj in clauses:
        groups.setdefault(verb, []).append(obj)
    parts = [f"{_PLURAL[v] if plural else v} {join(objs)}" for v, objs in groups.items()]
    body = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + (", and " if len(parts) > 2 else " and ") + parts[-1]
    return f"{subject} {body}."


def noun_phrase_sentence(noun: str, clauses: Sequence[Clause], article: str | None = None) -> str:
    """`clauses` as one noun phrase: "A smiling, bare-headed person with long red hair, wearing eyeglasses."
    (00_setup.ipynb).

    article: None chooses "A" or "An" by the first letter; the faces world passes "A" (its captions,
    which the shipped toy models were trained on, have always said "A open-mouthed person").
    """
    adjectives = [o for v, o in clauses if v == "is" and " " not in o]
    with_ = [o for v, o in clauses if v == "has"]
    wearing = [o for v, o in clauses if v == "wears"]
    rest = [o for v, o in clauses if v == "is" and " " in o]
    words = ", ".join(adjectives) + " " + noun if adjectives else noun
    if article is None:
        article = "An" if words[0] in "aeiou" else "A"
    head = article + " " + words
    tails = []
    if with_:
        tails.append("with " + join(with_))
    if wearing:
        tails.append("wearing " + join(wearing))
    tails += rest
    return head + (" " + ", ".join(tails) if tails else "") + "."


def choose_mentioned(pool: Sequence[str], rng: np.random.Generator) -> set[str]:
    """The attributes a caption states: a random subset of at least two of `pool` (00_setup.ipynb)."""
    k = int(rng.integers(2, len(pool) + 1))
    return {pool[i] for i in rng.choice(len(pool), size=k, replace=False)}


BACKGROUND_CLAUSES: tuple[Clause, ...] = (("is", "in front of a {} background"), ("is", "pictured against a {} backdrop"),
                                          ("is", "on a {} background"))


def add_background(color: str, rng: np.random.Generator, clauses: list[Clause], sentences: list[str]) -> None:
    """State the background colour: a standalone sentence ("The backdrop is pink.") or a clause (00_setup.ipynb)."""
    if rng.random() < 0.3:
        sentences.append(f"The {pick(rng, ('background', 'backdrop'))} is {color}.")
    else:
        verb, template = pick(rng, BACKGROUND_CLAUSES)
        clauses.append((verb, template.format(color)))


def assemble(clauses: Sequence[Clause], sentences: Sequence[str], rng: np.random.Generator,
             first: Callable[[Sequence[Clause]], str], later_subjects: Sequence[str], opening: str | None = None) -> str:
    """A caption's text: `clauses` shuffled and grouped 1-3 to a sentence, the first group written by `first`,
    the others under one of `later_subjects`; `sentences` go anywhere after the first (00_setup.ipynb).

    opening: the first sentence when there are no clauses at all (None: none).
    """
    clauses = [clauses[i] for i in rng.permutation(len(clauses))]
    out: list[str] = [opening] if opening is not None and not clauses else []
    i = 0
    while i < len(clauses):
        n = int(rng.integers(1, 4))
        group = clauses[i:i + n]
        i += n
        out.append(first(group) if not out else sentence(pick(rng, later_subjects), group))
    for s in sentences:  # standalone sentences go anywhere after the first
        out.insert(int(rng.integers(1 if out else 0, len(out) + 1)), s)
    return " ".join(out)


def alternatives(words: Sequence[str]) -> str:
    """A regular-expression alternation of `words`, spaces matched as `\\s` (00_setup.ipynb)."""
    return "|".join(w.replace(" ", r"\s") for w in words)


def background_patterns(colors: Sequence[str]) -> list[tuple[str, str]]:
    """`caption_mentions` patterns for the background colour ("a pink backdrop", "the background is pink")
    (00_setup.ipynb)."""
    return [(rf"\b{c} (?:background|backdrop)|(?:background|backdrop) is {c}\b", c) for c in colors]


def caption_mentions(patterns: Mapping[str, Sequence[tuple[str, str]]], text: str) -> dict[str, str]:
    """A world's `caption_mentions`: `{attribute: value}` for each attribute whose `(pattern, value)` list
    matches `text` (lowercased; each match is masked before the next pattern is tried); ValueError when two
    values of one attribute match (00_setup.ipynb)."""
    low = text.lower()
    found: dict[str, str] = {}
    for name, named_patterns in patterns.items():
        values = []
        masked = low
        for pattern, value in named_patterns:
            if re.search(pattern, masked):
                values.append(value)
                masked = re.sub(pattern, " ", masked)
        if len(set(values)) > 1:
            raise ValueError(f"caption states {name} = {sorted(set(values))}: {text!r}")
        if values:
            found[name] = values[0]
    return found


def value_prompt(attributes: Attributes, prompts: Mapping[str, Mapping[str, str]], attr: str, value: str) -> str:
    """A world's `value_prompt`: `prompts[attr][value]`, with errors that name the world's attributes and
    values (00_setup.ipynb)."""
    if attr not in prompts:
        raise ValueError(f"unknown attribute {attr!r}; expected one of {list(attributes)}")
    if value not in prompts[attr]:
        raise ValueError(f"{attr} has no value {value!r}; expected one of {attributes[attr]}")
    return prompts[attr][value]


def value_phrase(attributes: Attributes, prompts: Mapping[str, Mapping[str, str]],
                 phrases: Mapping[tuple[str, str], str], attr: str, value: str) -> str:
    """A world's `value_phrase`: `phrases[(attr, value)]`, with `value_prompt`'s errors (07_editing.ipynb)."""
    value_prompt(attributes, prompts, attr, value)  # the same errors for unknown attributes and values
    return phrases[(attr, value)]


# ----------------------------------------------------------------------------------------------
# Labels: attribute indices and the generator's conditioning vector c


def attributes_to_labels(attributes: Attributes, attrs: Mapping[str, Any]) -> torch.Tensor:
    """`LongTensor [n_attributes]`: each value's index in `attributes`, -1 where the value is None (not
    scored) (00_setup.ipynb). `attrs` is checked by the world first."""
    return torch.tensor([-1 if attrs[a] is None else attributes[a].index(attrs[a]) for a in attributes],
                        dtype=torch.long)


def labels_to_attributes(attributes: Attributes, labels: torch.Tensor | Sequence[int]) -> dict[str, str | None]:
    """Inverse of `attributes_to_labels` (-1 → None) (00_setup.ipynb)."""
    labels = [int(v) for v in (labels.tolist() if isinstance(labels, torch.Tensor) else labels)]
    if len(labels) != len(attributes):
        raise ValueError(f"expected {len(attributes)} labels, got {len(labels)}")
    out: dict[str, str | None] = {}
    for (name, values), v in zip(attributes.items(), labels):
        if not -1 <= v < len(values):
            raise ValueError(f"label {v} out of range for {name} ({len(values)} values)")
        out[name] = None if v == -1 else values[v]
    return out


def c_slices(attributes: Attributes) -> dict[str, slice]:
    """Where each attribute's one-hot block sits in the conditioning vector c, in `attributes` order
    (02_stylegan2_wplus.ipynb)."""
    out, start = {}, 0
    for name, values in attributes.items():
        out[name] = slice(start, start + len(values))
        start += len(values)
    return out


def attributes_to_c(attributes: Attributes, attrs_list: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    """A world's `attributes_to_c`: `c: [N, C_DIM]`, one one-hot block per attribute at `c_slices(attributes)`;
    a None value's block is all zeros (02_stylegan2_wplus.ipynb)."""
    slices = c_slices(attributes)
    c = torch.zeros(len(attrs_list), sum(len(values) for values in attributes.values()))
    for i, attrs in enumerate(attrs_list):
        for name, values in attributes.items():
            v = attrs.get(name)
            if v is not None:
                c[i, slices[name].start + values.index(v)] = 1.0
    return c


def sample_c(world: ModuleType, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, list[dict[str, Any]]]:
    """A world's `sample_c`: `n` attribute dicts from `world.sample_attributes`, `(c [n, C_DIM], attrs)`
    (02_stylegan2_wplus.ipynb)."""
    attrs = [world.sample_attributes(rng) for _ in range(n)]
    return world.attributes_to_c(attrs), attrs


# ----------------------------------------------------------------------------------------------
# The dataset


class RenderedDataset(torch.utils.data.Dataset):
    """`n` captioned, labelled renders of a world, made on the fly, item `i` deterministic per `(seed, i)`
    (00_setup.ipynb). A world's dataset (`faces.ToyFaces`, `pets.ToyPets`) subclasses it and sets `_world`
    to its module.

    Each item is `dict(image=[3, R, R] float32 in [-1, 1], attributes=dict, caption=str,
    label=LongTensor [n_attributes] (-1: not scored), mentioned=BoolTensor [n_attributes])`.
    Items are drawn from `np.random.default_rng([seed, i])`, so any worker, order or machine sees
    the same data. Use different seeds for training and held-out sets.
    """

    _world: ClassVar[ModuleType]  # the world module whose sample_attributes, render, caption and labels it calls

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
        i = i % self.n
        rng = np.random.default_rng([self.seed, i])
        world = self._world
        attrs = world.sample_attributes(rng)
        image = world.render(attrs, self.resolution, rng)
        text, mentioned = world.caption(attrs, rng, return_mentioned=True)
        return {
            "image": image,
            "attributes": attrs,
            "caption": text,
            "label": world.attributes_to_labels(attrs),
            "mentioned": torch.tensor([a in mentioned for a in world.ATTRIBUTES]),
        }

    @staticmethod
    def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """`DataLoader(collate_fn=ToyFaces.collate)` (or `ToyPets.collate`): stacks tensors, keeps attributes
        and captions as lists (00_setup.ipynb).

        (The default collate cannot batch a None value, such as a bald face's `hair_color`.)
        """
        return {
            "image": torch.stack([it["image"] for it in items]),
            "attributes": [it["attributes"] for it in items],
            "caption": [it["caption"] for it in items],
            "label": torch.stack([it["label"] for it in items]),
            "mentioned": torch.stack([it["mentioned"] for it in items]),
        }


# ----------------------------------------------------------------------------------------------
# Image checks (for every network that reads a world's images)


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
