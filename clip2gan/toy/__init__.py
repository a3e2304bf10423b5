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

* `pets` — a second world, cartoon cat and dog heads (the paper's AFHQ experiment in kind; profile
  `toypets`), with the same public names as `faces` (`WORLD_API`).
* `world` — what the worlds share, written once: the world interface (`WORLD_API`), the code that is
  the same in every world (image conversion, caption assembly and read-back, label vectors, the
  dataset, `check_images`), parametrised by each world's schema, drawing and phrase tables.

Worlds: every network above reads either world. `world_module(x)` turns a world's short name
('faces', 'pets'), a profile name or record ('toyfaces', 'toypets'; `Profile.world` names the module)
or the module itself into the module; None is the default world, faces. Faces-only things (the
identity net, the bald rule's special cases) stay in `faces` and `nets`; generic code asks the
world (`UNSCORED_WHEN`, `flip_attribute`, `tied_attributes`) instead of naming attributes.

The public names of `faces` and `nets` are re-exported here (`from clip2gan.toy import render,
AttributeClassifier`); the other modules are imported by name (`from clip2gan.toy import clip`).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, Iterable

# The default world's public names (`faces.__all__`: the `WORLD_API` and the faces-only names).
from clip2gan.toy import faces as _faces
from clip2gan.toy.faces import *  # noqa: F403
from clip2gan.toy.world import WORLD_API

# The names from `nets` resolve on first use: the package never imports `nets` itself, so that
# `python -m clip2gan.toy.nets` runs a module its package has not already loaded.
_FROM_NETS = ("AttributeClassifier", "ToyIdentityNet", "evaluate_classifier", "evaluate_identity")

__all__ = [
    *_faces.__all__,
    *_FROM_NETS,
    "WORLDS",
    "WORLD_API",
    "world_module",
    "world_profile",
    "world_for_attributes",
]

# The toy worlds by short name: the module that draws each.
WORLDS: dict[str, str] = {"faces": "clip2gan.toy.faces", "pets": "clip2gan.toy.pets"}


def world_module(world: Any = None) -> ModuleType:
    """The module of a toy world (08_evaluation.ipynb).

    world: None (faces, the default world), a short name ('faces', 'pets'), a module path
    ('clip2gan.toy.pets'), a profile name or `Profile` whose `world` names one ('toypets'), or a world
    module (returned as it is). A profile without a toy world (the paper's image-folder worlds) and an
    unknown name raise ValueError.
    """
    if world is None:
        world = "faces"
    if isinstance(world, ModuleType):
        if not hasattr(world, "ATTRIBUTES") or not hasattr(world, "render"):
            raise ValueError(f"{world.__name__} is not a toy world module (no ATTRIBUTES / render)")
        return world
    from clip2gan.profiles import PROFILES, Profile  # deferred: profiles is a leaf module, kept import-light

    if isinstance(world, Profile) or (isinstance(world, str) and world in PROFILES):
        record = world if isinstance(world, Profile) else PROFILES[world]
        if record.world is None:
            raise ValueError(f"profile {record.name!r} has no toy world (its images come from {record.data})")
        world = record.world
    if isinstance(world, str):
        path = WORLDS.get(world, world)
        if path in WORLDS.values():
            return importlib.import_module(path)
    known = ", ".join([*WORLDS, *(n for n, p in PROFILES.items() if p.world)])
    raise ValueError(f"unknown toy world {world!r}; known: {known}")


def world_profile(world: Any = None):
    """The profile record whose toy world is `world` (faces → 'toyfaces', pets → 'toypets') (08_evaluation.ipynb)."""
    from clip2gan.profiles import PROFILES

    module = world_module(world)
    for record in PROFILES.values():
        if record.world == module.__name__:
            return record
    raise ValueError(f"no profile has the toy world {module.__name__}")


def world_for_attributes(names: Iterable[str]) -> ModuleType:
    """The world whose attributes are exactly `names` (in any order): e.g. the keys of a classifier's
    probabilities or a generator's label layout (`c_layout`) (08_evaluation.ipynb)."""
    wanted = set(names)
    for path in WORLDS.values():
        module = importlib.import_module(path)
        if set(module.ATTRIBUTES) == wanted:
            return module
    raise ValueError(f"no toy world has exactly the attributes {sorted(wanted)}")


def __getattr__(name: str) -> Any:
    if name in _FROM_NETS:
        from clip2gan.toy import nets

        return getattr(nets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
