"""Metrics read by the toy world's attribute classifier, and the toy edit vocabulary (08_evaluation.ipynb).

Every image of the toy world comes from known attributes, so a classifier trained on renders
(`clip2gan.toy.faces.AttributeClassifier`) replaces the paper's user study:

* `text_attribute_accuracy` (text → image): the attributes a caption states, read in the sample.
* `editing_scores`: edit accuracy (the asked value reads after the edit) and preservation (the other
  attributes read as before).
* `toy_feature_extractor`: the classifier's penultimate features, the toy world's FID features
  (`clip2gan.evaluation.metrics.fid`; toy FIDs are not comparable with Inception FIDs);
  `feature_extractor_for(profile)` picks them or Inception's.
* The edit vocabulary: `EDIT_PHRASES`, `edit_prompts`, and `prompt_targets` (the (attribute, value) an
  edit text asks for).

Either toy world: the scores follow the classifier's world (`AttributeClassifier.world`; faces'
bald rule is its `UNSCORED_WHEN` and `tied_attributes`), and the edit vocabulary takes `world`
('pets' for `clip2gan.toy.pets`; `edit_phrases(world)`).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from clip2gan.evaluation.inception import inception_feature_extractor
from clip2gan.profiles import get_profile
from clip2gan.toy import world_for_attributes, world_module
from clip2gan.toy.faces import AttributeClassifier

__all__ = [
    "classifier_proba",
    "text_attribute_accuracy",
    "editing_scores",
    "toy_feature_extractor",
    "feature_extractor_for",
    "EDIT_PHRASES",
    "edit_phrases",
    "edit_prompts",
    "prompt_targets",
]


def _predict(classifier: AttributeClassifier, images: Any) -> list[dict[str, Any]]:
    """Classifier reads; `images` may already be a list of attribute dicts (predictions)."""
    if isinstance(images, list) and (not images or isinstance(images[0], dict)):
        return images
    return classifier.predict(_to_classifier_size(classifier, images))


def _world_of(classifier: Any, preds: Sequence[dict[str, Any]] = ()):
    """The toy world being scored: the classifier's, else the one whose attributes the predictions have, else faces."""
    if getattr(classifier, "world", None) is not None:
        return world_module(classifier.world)
    if preds:
        try:
            return world_for_attributes(preds[0])
        except ValueError:
            pass
    return world_module(None)


def _to_classifier_size(classifier: AttributeClassifier, images: torch.Tensor) -> torch.Tensor:
    res = int(getattr(classifier, "resolution", images.shape[-1]))
    if images.ndim == 4 and images.shape[-1] != res:
        images = torch.nn.functional.interpolate(images.float(), size=(res, res), mode="area")
    return images


def classifier_proba(classifier: AttributeClassifier, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """{attribute: `[N, values]` probabilities} for images of any size (resized to the classifier's) (10_comparisons.ipynb)."""
    return classifier.predict_proba(_to_classifier_size(classifier, images))


def text_attribute_accuracy(classifier: AttributeClassifier, images: torch.Tensor | list[dict[str, Any]],
                            mentioned: Sequence[Mapping[str, Any]], bald_hair_color: str = "skip",
                            details: bool = False) -> float | dict[str, Any]:
    """Fraction of (caption, mentioned attribute) pairs whose value the classifier reads (08_evaluation.ipynb).

    images: `[N, 3, H, W]` in [-1, 1] (resized to the classifier's resolution if needed) or the
    classifier's predictions. mentioned: per image, `{attribute: value}` the caption states
    (`toyfaces.caption_mentions(caption)`, or the attributes restricted to `caption(...,
    return_mentioned=True)`'s names); None values are ignored. Hair colour when the image reads
    bald: `bald_hair_color='skip'` (default) leaves the pair out — the classifier reports no colour
    for a bald head, and if the caption also states the length the miss is already counted there;
    'miss' counts it wrong (a stated colour that is not shown). The skipped pairs are reported in
    `details=True`'s dict: accuracy, per_attribute, n_pairs, n_skipped.
    """
    if bald_hair_color not in ("skip", "miss"):
        raise ValueError(f"bald_hair_color must be 'skip' or 'miss', got {bald_hair_color!r}")
    preds = _predict(classifier, images)
    if len(preds) != len(mentioned):
        raise ValueError(f"{len(preds)} images but {len(mentioned)} mention dicts")
    unscored_when = _world_of(classifier, preds).UNSCORED_WHEN
    hits: dict[str, list[bool]] = {}
    skipped = 0
    for pred, wanted in zip(preds, mentioned):
        for attr, value in wanted.items():
            if value is None:
                continue
            if attr not in pred:
                raise ValueError(f"unknown attribute {attr!r} in mentioned")
            rule = unscored_when.get(attr)
            if rule is not None and pred.get(rule[0]) == rule[1]:
                if bald_hair_color == "skip":
                    skipped += 1
                    continue
            hits.setdefault(attr, []).append(pred[attr] == value)
    n_pairs = sum(len(v) for v in hits.values())
    if n_pairs == 0:
        raise ValueError("no (caption, attribute) pairs to score")
    accuracy = sum(sum(v) for v in hits.values()) / n_pairs
    if not details:
        return accuracy
    return {"accuracy": accuracy, "per_attribute": {a: float(np.mean(v)) for a, v in hits.items()},
            "n_pairs": n_pairs, "n_skipped": skipped}


def editing_scores(classifier: AttributeClassifier, before: torch.Tensor | list[dict[str, Any]],
                   after: torch.Tensor | list[dict[str, Any]],
                   target_attr: str | Sequence[str], target_value: str | Sequence[str],
                   details: bool = False) -> tuple[float, float] | dict[str, Any]:
    """(accuracy, preservation) of edits, read by the toy classifier (08_evaluation.ipynb).

    accuracy: the fraction of edited images whose `target_attr` reads `target_value`.
    preservation: over every edited image and every other attribute, the fraction that reads the
    same after as before. before / after: `[N, 3, H, W]` (or the classifier's predictions); pass
    the reconstructions (β = 0) as `before` to score the edit alone, the originals to include the
    reconstruction error. target_attr / target_value: one for all images or one per image.
    Not scored for preservation: attributes the bald constraint ties to the target (hair colour
    and bangs for a hair-length edit, hair length for a colour or bangs edit), and hair colour when
    either image reads bald (no colour is shown). `details=True` adds per-attribute preservation.
    """
    pb, pa = _predict(classifier, before), _predict(classifier, after)
    if len(pb) != len(pa) or not pa:
        raise ValueError(f"before and after must be non-empty and paired, got {len(pb)} and {len(pa)}")
    world = _world_of(classifier, pa)
    attributes = world.ATTRIBUTES
    n = len(pa)
    attrs = [target_attr] * n if isinstance(target_attr, str) else list(target_attr)
    values = [target_value] * n if isinstance(target_value, str) else list(target_value)
    if len(attrs) != n or len(values) != n:
        raise ValueError(f"need one target per image ({n}), got {len(attrs)} attributes and {len(values)} values")
    for a, v in zip(attrs, values):
        if a not in attributes or v not in attributes[a]:
            raise ValueError(f"unknown target {a}={v!r}; attributes and values: {attributes}")
    hit = [p[a] == v for p, a, v in zip(pa, attrs, values)]
    kept: dict[str, list[bool]] = {}
    for b, e, a in zip(pb, pa, attrs):
        skip = {a} | world.tied_attributes(a)
        for attr, (other, value) in world.UNSCORED_WHEN.items():  # faces: no colour shown where either reads bald
            if b.get(other) == value or e.get(other) == value:
                skip.add(attr)
        for name in attributes:
            if name not in skip:
                kept.setdefault(name, []).append(b[name] == e[name])
    n_kept = sum(len(v) for v in kept.values())
    accuracy = float(np.mean(hit))
    preservation = sum(sum(v) for v in kept.values()) / n_kept if n_kept else float("nan")
    if not details:
        return accuracy, preservation
    return {"accuracy": accuracy, "preservation": preservation, "n": n,
            "per_attribute_preservation": {a: float(np.mean(v)) for a, v in kept.items()}}


# ------------------------------------------------------------------------------------------------
# FID features


def toy_feature_extractor(classifier: AttributeClassifier) -> Callable[[torch.Tensor], torch.Tensor]:
    """images `[B, 3, H, W]` in [-1, 1] → the toy classifier's penultimate features `[B, 256]` (08_evaluation.ipynb).

    Images of another size are area-resized to the classifier's resolution (32 px).
    """

    def extract(images: torch.Tensor) -> torch.Tensor:
        return classifier.features(_to_classifier_size(classifier, images).clamp(-1, 1))

    return extract


def feature_extractor_for(profile: str, classifier: AttributeClassifier | None = None, device: str | torch.device = "cpu"
                          ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The FID features of a world: its attribute classifier's where the profile has one (the toy
    world; loaded from the hub when `classifier` is None), Inception's otherwise (08_evaluation.ipynb)."""
    record = get_profile(profile)
    if record.classifier is not None:
        if classifier is None:
            classifier = AttributeClassifier.from_pretrained(record.classifier, device=device)
        return toy_feature_extractor(classifier)
    return inception_feature_extractor(device=device)


# ------------------------------------------------------------------------------------------------
# the toy edit vocabulary


def edit_phrases(world: Any = None) -> dict[tuple[str, str], tuple[str, ...]]:
    """(attribute, value) → (canonical prompt, bare phrase) of a toy world (None: faces; 08_evaluation.ipynb):
    the world's `value_prompt` and `value_phrase`."""
    module = world_module(world)
    return {(a, v): (module.value_prompt(a, v), module.value_phrase(a, v)) for a, vs in module.ATTRIBUTES.items()
            for v in vs}


# (attribute, value) → (canonical prompt, bare phrase) of the faces
EDIT_PHRASES: dict[tuple[str, str], tuple[str, ...]] = edit_phrases()


def edit_prompts(style: str = "all", world: Any = None) -> list[tuple[str, str, str]]:
    """The toy edit vocabulary as (text, attribute, value) (07_editing.ipynb, 08_evaluation.ipynb).

    Two phrasings per attribute value: the canonical sentence-frame prompt
    (`toyfaces.value_prompt`, "a person wearing eyeglasses"; style 'prompt') and a bare phrase
    ("wearing eyeglasses"; style 'short'). style 'all' gives both. world: None (faces) or 'pets'.
    """
    if style not in ("all", "prompt", "short"):
        raise ValueError(f"style must be 'all', 'prompt' or 'short', got {style!r}")
    pick = {"all": slice(None), "prompt": slice(0, 1), "short": slice(1, 2)}[style]
    phrases = EDIT_PHRASES if world is None else edit_phrases(world)
    return [(text, a, v) for (a, v), texts in phrases.items() for text in texts[pick]]


def prompt_targets(text: str, world: Any = None) -> tuple[str, str]:
    """The (attribute, value) an edit text asks for in the toy world (07_editing.ipynb).

    `prompt_targets("wearing eyeglasses") == ("eyeglasses", "yes")`; read with
    `toyfaces.caption_mentions` (world None; 'pets': the pets' own), so every phrasing captions use
    works. A text that names no attribute or several raises ValueError.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"an edit text must be a non-empty string, got {text!r}")
    found = world_module(world).caption_mentions(text)
    if len(found) != 1:
        what = "no toy attribute" if not found else f"{len(found)} attributes ({found})"
        raise ValueError(f"edit text {text!r} names {what}; an edit must name exactly one")
    return next(iter(found.items()))
