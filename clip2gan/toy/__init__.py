"""The toy world: everything the offline `toyfaces` profile builds for itself (introduced in 00_setup.ipynb).

No pretrained CLIP, StyleGAN2 or face data can be downloaded where this project is built, so the
toy world stands in for CelebA-HQ, OpenAI's CLIP and NVIDIA's FFHQ generator. Its modules, from the
world outwards:

* `faces` — the world itself: the attribute schema (`ATTRIBUTES`), the renderer (`render`), the
  captions (`caption`, `caption_mentions`, `value_prompt`), every label vector of an attribute dict
  (`attributes_to_labels`, the generator's conditioning `attributes_to_c` / `sample_c`,
  `identity_labels`), the dataset (`ToyFaces`) and the image checks (`check_images`).
* `nets` — the networks that read the world: `AttributeClassifier` (the judge of every accuracy)
  and `ToyIdentityNet` (the identity loss's face recogniser), their training, evaluation and
  command line (`python -m clip2gan.toy.nets`).
* `clip` — the small CLIP: an open_clip model with a packaged config, trained contrastively on
  captioned renders (`python -m clip2gan.toy.clip`).
* `stylegan2_recipe` — the toy StyleGAN2's recipe: its settings (`GANTrainConfig`), networks
  (`build_networks`, from `clip2gan.stylegan2`) and training terms (R1, EMA, the auxiliary attribute term).
* `stylegan2_training` — the trainer that runs it (`GANTrainer`, resumable checkpoints,
  `python -m clip2gan.toy.stylegan2_training`).
* `stylegan2_eval` — what judges and ships that generator: the bar (`evaluate`), the run's curve
  (`evaluate_run`, `plot_curve`), and `export_generator`.

The public names of `faces` and `nets` are re-exported here (`from clip2gan.toy import render,
AttributeClassifier`); the other modules are imported by name (`from clip2gan.toy import clip`).
"""

from __future__ import annotations

from typing import Any

from clip2gan.toy.faces import (
    ATTRIBUTE_NAMES,
    ATTRIBUTES,
    C_DIM,
    C_SLICES,
    EVAL_SEED,
    IDENTITY_ATTRIBUTES,
    N_IDENTITIES,
    RESOLUTION,
    ToyFaces,
    attributes_to_c,
    attributes_to_labels,
    caption,
    caption_mentions,
    check_attributes,
    check_images,
    identity_labels,
    labels_to_attributes,
    render,
    render_batch,
    render_labeled_batch,
    sample_attributes,
    sample_c,
    value_prompt,
)

__all__ = [
    "ATTRIBUTES",
    "ATTRIBUTE_NAMES",
    "RESOLUTION",
    "EVAL_SEED",
    "IDENTITY_ATTRIBUTES",
    "C_DIM",
    "C_SLICES",
    "N_IDENTITIES",
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
    "attributes_to_c",
    "sample_c",
    "identity_labels",
    "ToyFaces",
    "check_images",
    "AttributeClassifier",
    "ToyIdentityNet",
    "evaluate_classifier",
    "evaluate_identity",
]

# The names from `nets` resolve on first use: the package never imports `nets` itself, so that
# `python -m clip2gan.toy.nets` runs a module its package has not already loaded.
_FROM_NETS = ("AttributeClassifier", "ToyIdentityNet", "evaluate_classifier", "evaluate_identity")


def __getattr__(name: str) -> Any:
    if name in _FROM_NETS:
        from clip2gan.toy import nets

        return getattr(nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
