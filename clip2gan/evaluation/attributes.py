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
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from clip2gan.evaluation.inception import inception_feature_extractor
from clip2gan.profiles import get_profile
from clip2gan.toy.faces import ATTRIBUTES, AttributeClassifier, caption_mentions, value_prompt

__all__ = [
    "classifier_proba",
    "text_attribute_accuracy",
    "editing_scores",
    "toy_feature_extractor",
    "feature_extractor_for",
    "EDIT_PHRASES",
    "edit_prompts",
    "prompt_targets",
]


def _predict(classifier: AttributeClassifier, images: Any) -> list[dict[str, Any]]:
    """Classifier reads; `images` may already be a list of attribute dicts (predictions)."""
    if isinstance(images, list) and (not images or isinstance(images[0], dict)):
        return images
    return classifier.predict(_to_classifier_size(classifier, images))


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
    hits: dict[str, list[bool]] = {}
    skipped = 0
    for pred, wanted in zip(preds, mentioned):
        for attr, value in wanted.items():
            if value is None:
                continue
            if attr not in pred:
                raise ValueError(f"unknown attribute {attr!r} in mentioned")
            if attr == "hair_color" and pred.get("hair_length") == "bald":
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


def _implied(target_attr: str, target_value: str) -> set[str]:
    """Attributes the toy world's bald constraint ties to the target (not scored for preservation)."""
    if target_attr == "hair_length":
        return {"hair_color", "bangs"}  # going bald drops colour and bangs; growing hair shows a colour
    if target_attr in ("hair_color", "bangs"):
        return {"hair_length"}  # a colour or bangs on a bald head needs hair
    return set()


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
    n = len(pa)
    attrs = [target_attr] * n if isinstance(target_attr, str) else list(target_attr)
    values = [target_value] * n if isinstance(target_value, str) else list(target_value)
    if len(attrs) != n or len(values) != n:
        raise ValueError(f"need one target per image ({n}), got {len(attrs)} attributes and {len(values)} values")
    for a, v in zip(attrs, values):
        if a not in ATTRIBUTES or v not in ATTRIBUTES[a]:
            raise ValueError(f"unknown target {a}={v!r}; attributes and values: {ATTRIBUTES}")
    hit = [p[a] == v for p, a, v in zip(pa, attrs, values)]
    kept: dict[str, list[bool]] = {}
    for b, e, a, v in zip(pb, pa, attrs, values):
        skip = {a} | _implied(a, v)
        if b.get("hair_length") == "bald" or e.get("hair_length") == "bald":
            skip.add("hair_color")
        for name in ATTRIBUTES:
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


def _edit_phrases() -> dict[tuple[str, str], tuple[str, ...]]:
    short = {
        ("hair_length", "bald"): "bald", ("hair_length", "short"): "short hair", ("hair_length", "long"): "long hair",
        ("bangs", "no"): "a bare forehead", ("bangs", "yes"): "with bangs",
        ("expression", "neutral"): "a neutral expression", ("expression", "smiling"): "smiling",
        ("expression", "open_mouth"): "an open mouth",
        ("eyeglasses", "no"): "without glasses", ("eyeglasses", "yes"): "wearing eyeglasses",
        ("beard", "no"): "clean-shaven", ("beard", "yes"): "with a beard",
        ("hat", "no"): "bare-headed", ("hat", "yes"): "wearing a hat",
        ("lipstick", "no"): "natural lips", ("lipstick", "yes"): "wearing lipstick",
    }
    short.update({("hair_color", v): f"{v} hair" for v in ATTRIBUTES["hair_color"]})
    short.update({("skin", v): f"{v} skin" for v in ATTRIBUTES["skin"]})
    short.update({("background", v): f"a {v} background" for v in ATTRIBUTES["background"]})
    return {(a, v): (value_prompt(a, v), short[(a, v)]) for a, vs in ATTRIBUTES.items() for v in vs}


# (attribute, value) → (canonical prompt, bare phrase)
EDIT_PHRASES: dict[tuple[str, str], tuple[str, ...]] = _edit_phrases()


def edit_prompts(style: str = "all") -> list[tuple[str, str, str]]:
    """The toy edit vocabulary as (text, attribute, value) (07_editing.ipynb, 08_evaluation.ipynb).

    Two phrasings per attribute value: the canonical sentence-frame prompt
    (`toyfaces.value_prompt`, "a person wearing eyeglasses"; style 'prompt') and a bare phrase
    ("wearing eyeglasses"; style 'short'). style 'all' gives both.
    """
    if style not in ("all", "prompt", "short"):
        raise ValueError(f"style must be 'all', 'prompt' or 'short', got {style!r}")
    pick = {"all": slice(None), "prompt": slice(0, 1), "short": slice(1, 2)}[style]
    return [(text, a, v) for (a, v), texts in EDIT_PHRASES.items() for text in texts[pick]]


def prompt_targets(text: str) -> tuple[str, str]:
    """The (attribute, value) an edit text asks for in the toy world (07_editing.ipynb).

    `prompt_targets("wearing eyeglasses") == ("eyeglasses", "yes")`; read with
    `toyfaces.caption_mentions`, so every phrasing captions use works. A text that names no
    attribute or several raises ValueError.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"an edit text must be a non-empty string, got {text!r}")
    found = caption_mentions(text)
    if len(found) != 1:
        what = "no toy attribute" if not found else f"{len(found)} attributes ({found})"
        raise ValueError(f"edit text {text!r} names {what}; an edit must name exactly one")
    return next(iter(found.items()))
