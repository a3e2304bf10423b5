"""The evaluation protocol: what is measured on a trained M, on which images, how a difference is judged (08_evaluation.ipynb).

Data (`eval_data`, `edit_set`; `world=` picks the toy world): held-out captions with their renders (`ToyFaces(seed=EVAL_SEED)`),
and (render, edit) pairs from a second held-out stream, each edit asking for a value the face does not
have (the same data for every variant and setting).

Settings (`SETTINGS`; evaluation only, no training):

    paper       the paper at test time: text features as they are, β-editing in w+, n = M(t)
    recentre    modality-gap correction of the text features (re-centred from the text cone to the image cone)
    nearest     text features replaced by their nearest training-image features, edits with per-image
                'neighbours' directions (the defaults of a checkpoint with a feature bank, as shipped;
                `clip2gan.model`, `clip2gan.edit`)
    clip_space  editing arithmetic in CLIP space (supp. Table 6)
    directional editing with n = M(t) − M(t_neutral) (the paper leaves open whether n is a whole code or a direction)
    zoomed      editing images outside the training distribution (renders zoomed 1.25×: Table 5's
                "Not-in-CelebA-HQ" analogue)

Metrics (`evaluate`; the CSV columns of `clip2gan.evaluation.tables.COLUMNS`):

* generation, on `n_captions` held-out captions, one sample each with the default test-time noise
  (`clip2gan.generate`): `fid` — Fréchet distance between the generated images and the captions' own
  renders in the toy classifier's features (`attributes.toy_feature_extractor`; not comparable with
  Inception FIDs), `fid_se` its bootstrap standard error (`fid_with_se`); `fid_clip` (± `fid_clip_se`)
  the same in the toy CLIP image tower's features (`clip_feature_extractor`: a second space, from a
  network trained on captions and never on the attribute labels the classifier learnt); `lpips_ref` — mean LPIPS
  between each sample and its caption's render (the paper's "distance between generated and real
  images"; the caption states only some attributes, so it is a loose measure); `text_acc` — the
  fraction of (caption, stated attribute) pairs the classifier reads in the sample
  (`attributes.text_attribute_accuracy`), with `text_pairs` pairs; `lpips_div` — mean pairwise LPIPS
  among `n_per_prompt` samples of each of the first `n_div_prompts` captions.
* reconstruction: `rec_match` — attributes of G(M(C_img(x))) that read as x's, over every
  (image, attribute) pair of the caption renders.
* editing, on `n_edit` (render, edit) pairs at β = 1 (`score_edits`): `edit_acc` — the target reads
  after the edit; `edit_acc_beta0` — it already read at β = 0 (the reconstruction), the floor
  `edit_acc` must beat; `edit_pres` — other attributes unchanged from the reconstruction
  (`attributes.editing_scores`); `edit_fid` — FID of the edited images against the renders
  (± `edit_fid_se`); `edit_lpips` — LPIPS between each edit and its input.

Judging a difference. An accuracy is a proportion p over n pairs: its binomial standard error is
√(p (1 − p) / n) (`binomial_se`), at most √(0.25 / n) (`max_binomial_se`), and two proportions differ
when |p₁ − p₂| > 2 √(se₁² + se₂²) (`compare_proportions`). A FID counts beyond two bootstrap
standard errors. `verdict` turns a claim's comparisons into one word; `BARS` are the targets this
project set for a trained M.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Hashable, Mapping, Sequence

import numpy as np
import torch

from clip2gan.edit import EncodedImages, edited_latents, encode_for_edit, text_direction
from clip2gan.evaluation.attributes import (
    edit_prompts,
    editing_scores,
    text_attribute_accuracy,
    toy_feature_extractor,
)
from clip2gan.evaluation.metrics import feature_statistics, frechet_distance, lpips_diversity, lpips_to_reference
from clip2gan.model import CLIP2GAN
from clip2gan.toy import world_module
from clip2gan.toy.faces import AttributeClassifier

if TYPE_CHECKING:  # sweeps.py imports this module; SweepSize is only a type here
    from clip2gan.evaluation.sweeps import SweepSize

__all__ = [
    "SETTINGS",
    "EvalData",
    "eval_data",
    "edit_set",
    "zoom",
    "edit_pairs",
    "fid_with_se",
    "clip_feature_extractor",
    "EditScores",
    "score_edits",
    "edit_scores",
    "evaluate",
    "BARS",
    "EDIT_TARGETS",
    "bars",
    "meets_edit_targets",
    "binomial_se",
    "max_binomial_se",
    "compare_proportions",
    "verdict",
    "largest_gain",
    "rises_with_beta",
]

# name → (text correction, edit space, edit mode, edit images); evaluation only, no training.
SETTINGS: dict[str, dict[str, Any]] = {
    "paper": {"correction": "none", "edit_space": "wplus", "edit_mode": "paper", "edit_images": "renders"},
    "recentre": {"correction": "recentre", "edit_space": "wplus", "edit_mode": "paper", "edit_images": "renders"},
    "nearest": {"correction": "nearest", "edit_space": "wplus", "edit_mode": "neighbours", "edit_images": "renders"},
    "clip_space": {"correction": "none", "edit_space": "clip", "edit_mode": "paper", "edit_images": "renders"},
    "directional": {"correction": "none", "edit_space": "wplus", "edit_mode": "directional", "edit_images": "renders"},
    "zoomed": {"correction": "none", "edit_space": "wplus", "edit_mode": "paper", "edit_images": "zoomed"},
}
# which metric groups a setting changes (the others equal the 'paper' row's and are not recomputed)
_SETTING_GROUPS = {"paper": ("generation", "reconstruction", "editing"), "recentre": ("generation", "editing"),
                   "nearest": ("generation", "editing"),
                   "clip_space": ("editing",), "directional": ("editing",), "zoomed": ("editing",)}


# -------------------------------------------------------------------------------------------------
# evaluation data: the same captions, renders and edit pairs for every variant


@dataclass
class EvalData:
    """Held-out renders with captions, and the edit pairs (08_evaluation.ipynb).

    images: `[N, 3, R, R]` renders; attributes: their true attribute dicts; captions; mentioned:
    per caption `{attribute: value}` it states. edit_images: `[E, 3, R, R]` (the first E renders of a
    second held-out stream), edit_attrs, edit_texts / edit_targets: one (text, (attribute, value)) each.
    """

    images: torch.Tensor
    attributes: list[dict[str, Any]]
    captions: list[str]
    mentioned: list[dict[str, Any]]
    edit_images: torch.Tensor
    edit_attributes: list[dict[str, Any]]
    edit_texts: list[str]
    edit_targets: list[tuple[str, str]]


def _edit_choice(attrs: dict[str, Any], rng: np.random.Generator, world: Any = None) -> tuple[str, str, str]:
    """One edit from the toy vocabulary that asks for a value the image does not have (a real change), on an
    attribute the world lets an edit change (`flippable_attributes`: on a bald face no hair colour or bangs,
    which would also have to grow hair)."""
    module = world_module(world)
    flippable = set(module.flippable_attributes(attrs))
    options = [(t, a, v) for t, a, v in edit_prompts("prompt", world=None if module.NAME == "faces" else module.NAME)
               if attrs[a] != v and a in flippable]
    return options[int(rng.integers(len(options)))]


def edit_set(n: int, resolution: int, seed: int = 0, world: Any = None
             ) -> tuple[torch.Tensor, list[dict[str, Any]], list[str], list[tuple[str, str]]]:
    """`n` held-out renders, each with one edit asking for a value it does not have (07_editing.ipynb).

    Returns (images `[n, 3, R, R]`, their attributes, edit texts, (attribute, value) targets);
    deterministic per seed, drawn from a stream no training run uses. world: the toy world (None: faces;
    anything `clip2gan.toy.world_module` takes, e.g. 'pets' or the profile 'toypets').
    """
    module = world_module(world)
    renders = module.WorldDataset(n, seed=module.EVAL_SEED + seed + 1, resolution=resolution)
    items = [renders[i] for i in range(len(renders))]
    rng = np.random.default_rng([seed, 6])
    choices = [_edit_choice(it["attributes"], rng, module) for it in items]
    images = torch.stack([it["image"] for it in items]) if items else torch.empty(0, 3, resolution, resolution)
    return images, [it["attributes"] for it in items], [c[0] for c in choices], [(c[1], c[2]) for c in choices]


def eval_data(size: SweepSize, resolution: int, seed: int = 0, world: Any = None) -> EvalData:
    """The evaluation set of a sweep size at the generator's resolution, deterministic per seed (08_evaluation.ipynb).

    Uses `size.n_captions` and `size.n_edit`. world: the toy world (None: faces; see `edit_set`).
    """
    module = world_module(world)
    renders = module.WorldDataset(size.n_captions, seed=module.EVAL_SEED + seed, resolution=resolution)
    items = [renders[i] for i in range(len(renders))]
    mentioned = [{a: it["attributes"][a] for a, m in zip(module.ATTRIBUTES, it["mentioned"].tolist()) if m}
                 for it in items]
    edit_images, edit_attributes, edit_texts, edit_targets = edit_set(size.n_edit, resolution, seed, module)
    return EvalData(images=torch.stack([it["image"] for it in items]), attributes=[it["attributes"] for it in items],
                    captions=[it["caption"] for it in items], mentioned=mentioned, edit_images=edit_images,
                    edit_attributes=edit_attributes, edit_texts=edit_texts, edit_targets=edit_targets)


def zoom(images: torch.Tensor, factor: float = 1.25) -> torch.Tensor:
    """Centre crop 1/factor of each side and resize back: faces larger than any training render (08_evaluation.ipynb)."""
    r = images.shape[-1]
    c = max(1, round(r / factor))
    top = (r - c) // 2
    crop = images[..., top:top + c, top:top + c]
    return torch.nn.functional.interpolate(crop, size=(r, r), mode="bicubic", align_corners=False,
                                           antialias=True).clamp(-1, 1)


# -------------------------------------------------------------------------------------------------
# edits and FID


@torch.no_grad()
def edit_pairs(model: CLIP2GAN, images: torch.Tensor, texts: Sequence[str], space: str = "wplus", mode: str = "paper",
               beta: float = 1.0, layers: Any = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(reconstructions, edits) `[N, 3, R, R]` of images[i] edited with texts[i] (07_editing.ipynb).

    The same as `clip2gan.edit.edit_image(model, images[i], texts[i], beta, space, layers, mode)` per
    pair, batched: one encode, one direction per distinct text, one synthesis of every code.
    """
    if len(texts) != len(images):
        raise ValueError(f"{len(images)} images but {len(texts)} texts")
    enc = encode_for_edit(model, images, warn=False)
    ws = enc.ws.clone()
    for text in sorted(set(texts)):
        idx = torch.tensor([i for i, t in enumerate(texts) if t == text], device=ws.device)
        sub = EncodedImages(images=enc.images[idx.cpu()], features=enc.features[idx], ws=enc.ws[idx])
        ws[idx] = edited_latents(model, sub, text_direction(model, text, mode=mode, space=space, features=sub.features), beta,
                                 space=space, layers=layers)
    both = model.synthesize(torch.cat([enc.ws, ws])).clamp(-1, 1).float().cpu()
    return both[:len(ws)], both[len(ws):]


@torch.no_grad()
def fid_with_se(real: torch.Tensor, fake: torch.Tensor, extractor: Callable[[torch.Tensor], torch.Tensor],
                n_boot: int = 20, seed: int = 0, batch_size: int = 256) -> tuple[float, float]:
    """(FID, its bootstrap standard error) between two image sets in `extractor`'s features (08_evaluation.ipynb).

    The error bar resamples both feature sets with replacement `n_boot` times and takes the standard
    deviation of the bootstrap FIDs: the spread a different draw of images of the same size would
    give. (Bootstrap FIDs are biased upwards — duplicates shrink the effective sample — so only
    their spread is used.)
    """
    fr = torch.cat([extractor(b).float().cpu() for b in real.split(batch_size)]).double()
    ff = torch.cat([extractor(b).float().cpu() for b in fake.split(batch_size)]).double()
    value = frechet_distance(*feature_statistics(fr), *feature_statistics(ff))
    g = torch.Generator().manual_seed(seed)
    boots = []
    for _ in range(n_boot):
        ir = torch.randint(len(fr), (len(fr),), generator=g)
        jf = torch.randint(len(ff), (len(ff),), generator=g)
        boots.append(frechet_distance(*feature_statistics(fr[ir]), *feature_statistics(ff[jf])))
    return value, float(np.std(boots, ddof=1))


def clip_feature_extractor(clip: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """images → the toy CLIP's image embeddings (unit norm): the second FID space (08_evaluation.ipynb).

    Independent enough of the classifier: trained contrastively on captions, never on the attribute labels."""

    @torch.no_grad()
    def extract(images: torch.Tensor) -> torch.Tensor:
        return clip.encode_image(images.to(clip.device)).float().cpu()

    return extract


# -------------------------------------------------------------------------------------------------
# editing scores


@dataclass(frozen=True)
class EditScores:
    """Edit accuracy at the edit's β, the accuracy already at β = 0 (`floor`), preservation, over `n` pairs (07_editing.ipynb)."""

    accuracy: float
    floor: float
    preservation: float
    n: int

    @property
    def gain(self) -> float:
        """How much the edit raised the accuracy over the reconstruction's."""
        return self.accuracy - self.floor


def score_edits(classifier: AttributeClassifier, before: torch.Tensor, after: torch.Tensor,
                targets: Sequence[tuple[str, str]]) -> EditScores:
    """`EditScores` of edited images `after` against their reconstructions `before` (07_editing.ipynb).

    targets: one (attribute, value) per pair. The floor is the accuracy of `before` itself: the
    reconstruction can already show the asked value by mistake.
    """
    attrs = [a for a, _ in targets]
    values = [v for _, v in targets]
    acc, pres = editing_scores(classifier, before, after, attrs, values)
    floor, _ = editing_scores(classifier, before, before, attrs, values)
    return EditScores(accuracy=acc, floor=floor, preservation=pres, n=len(targets))


def edit_scores(model: CLIP2GAN, classifier: AttributeClassifier, images: torch.Tensor, texts: Sequence[str],
                targets: Sequence[tuple[str, str]], space: str = "wplus", mode: str = "paper", beta: float = 1.0,
                layers: Any = None) -> EditScores:
    """Edit every image with its text (`edit_pairs`) and score the edits (`score_edits`) (07_editing.ipynb)."""
    before, after = edit_pairs(model, images, texts, space=space, mode=mode, beta=beta, layers=layers)
    return score_edits(classifier, before, after, targets)


# -------------------------------------------------------------------------------------------------
# one trained M under one setting


@torch.no_grad()
def evaluate(model: CLIP2GAN, data: EvalData, classifier: AttributeClassifier, lpips: Callable[..., torch.Tensor],
             size: SweepSize, setting: str = "paper", seed: int = 0, groups: Sequence[str] | None = None,
             progress: bool = False) -> dict[str, Any]:
    """The metrics of one trained M under one evaluation setting (see the module docstring) (08_evaluation.ipynb).

    groups: which of 'generation', 'reconstruction', 'editing' to compute (default: the setting's).
    Returns a dict with the metric columns of `tables.COLUMNS` (absent groups are missing).
    """
    spec = SETTINGS[setting]
    groups = tuple(groups if groups is not None else _SETTING_GROUPS[setting])
    extract = toy_feature_extractor(classifier)
    out: dict[str, Any] = {}
    start = time.perf_counter()
    if "generation" in groups:
        fake = model.generate(data.captions, n_per_prompt=1, seed=seed)
        out["fid"], out["fid_se"] = fid_with_se(data.images, fake, extract, seed=seed)
        out["fid_clip"], out["fid_clip_se"] = fid_with_se(data.images, fake, clip_feature_extractor(model.clip), seed=seed)
        out["lpips_ref"] = lpips_to_reference(fake, data.images, lpips, progress=progress)
        acc = text_attribute_accuracy(classifier, fake, data.mentioned, details=True)
        out["text_acc"], out["text_pairs"] = acc["accuracy"], acc["n_pairs"]
        k, n = min(size.n_div_prompts, len(data.captions)), size.n_per_prompt
        samples = model.generate(data.captions[:k], n_per_prompt=n, seed=seed + 1)
        out["lpips_div"] = lpips_diversity(samples.view(k, n, *samples.shape[1:]), lpips, progress=progress)
    if "reconstruction" in groups:
        rec = model.reconstruct(data.images).float().cpu()
        out["rec_match"] = text_attribute_accuracy(classifier, rec, data.attributes)
    if "editing" in groups:
        images = zoom(data.edit_images) if spec["edit_images"] == "zoomed" else data.edit_images
        before, after = edit_pairs(model, images, data.edit_texts, spec["edit_space"], spec["edit_mode"])
        scores = score_edits(classifier, before, after, data.edit_targets)
        edit_fid, edit_fid_se = fid_with_se(data.edit_images, after, extract, seed=seed)
        out.update(edit_acc=scores.accuracy, edit_acc_beta0=scores.floor, edit_pres=scores.preservation, edit_n=scores.n,
                   edit_fid=edit_fid, edit_fid_se=edit_fid_se,
                   edit_lpips=lpips_to_reference(after, images, lpips, progress=progress))
    out["eval_seconds"] = round(time.perf_counter() - start, 1)
    return out


# -------------------------------------------------------------------------------------------------
# targets

#: the targets this project set for a trained M at full size: (metric, threshold, label). 'core': M works
#: (the round trip keeps the attributes, text reaches the image); 'quality': generation and editing are
#: good enough to use. `bars` turns them into the keys recorded in data/MANIFEST.json.
BARS: tuple[tuple[str, float, str], ...] = (("rec_match", 0.90, "core"), ("text_acc", 0.75, "core"),
                                            ("text_acc", 0.85, "quality"), ("lpips_div", 0.05, "quality"),
                                            ("edit_acc", 0.80, "quality"), ("edit_pres", 0.90, "quality"))
#: the editing targets: accuracy at β = 1 and preservation of the other attributes (the last two `BARS`)
EDIT_TARGETS: tuple[float, float] = (0.80, 0.90)


def bars(metrics: Mapping[str, Any]) -> dict[str, bool]:
    """{'text_acc>=0.75 (label)': met?, ...} for the metrics of `evaluate` (those present) (05_training.ipynb)."""
    return {f"{k}>={t:.2f} ({label})": bool(metrics[k] >= t) for k, t, label in BARS if k in metrics}


def meets_edit_targets(scores: EditScores) -> bool:
    """Whether edits reach both `EDIT_TARGETS` (accuracy ≥ 0.80 and preservation ≥ 0.90) (07_editing.ipynb)."""
    accuracy, preservation = EDIT_TARGETS
    return scores.accuracy >= accuracy and scores.preservation >= preservation


# -------------------------------------------------------------------------------------------------
# standard errors, comparisons, verdicts


def binomial_se(p: float, n: int) -> float:
    """Standard error √(p (1 − p) / n) of a proportion p over n trials (n < 1 counts as 1; p (1 − p) at least
    1e-12, so that a proportion of 0 or 1 still has a tiny error bar) (08_evaluation.ipynb)."""
    return math.sqrt(max(p * (1 - p), 1e-12) / max(n, 1))


def max_binomial_se(n: int) -> float:
    """The largest binomial standard error at n trials, √(0.25 / n) (p = 0.5) (07_editing.ipynb)."""
    return math.sqrt(0.25 / n)


def compare_proportions(p1: float, n1: int, p2: float, n2: int) -> tuple[float, float]:
    """(p1 − p2, 2 standard errors of the difference, 2 √(se₁² + se₂²)) (08_evaluation.ipynb)."""
    return p1 - p2, 2 * math.sqrt(binomial_se(p1, n1) ** 2 + binomial_se(p2, n2) ** 2)


def verdict(better: Sequence[bool | None]) -> str:
    """A claim's verdict from its comparisons (True: as the paper says, False: against it, None: undecided) (08_evaluation.ipynb).

    'holds here' needs every comparison decided in the paper's favour; 'partly holds' when the
    decided ones agree and the others are within noise; 'does not hold here' when every decided one
    disagrees; 'mixed' when decided ones disagree with each other; 'inconclusive' when none is decided.
    """
    known = [b for b in better if b is not None]
    if not known:
        return "inconclusive (differences within 2 standard errors)"
    if all(known):
        return "holds here" if len(known) == len(better) else "partly holds (the rest is within 2 standard errors)"
    if not any(known):
        return "does not hold here"
    return "mixed"


def largest_gain(scores: Mapping[Hashable, EditScores]) -> tuple[Hashable, bool]:
    """(the key whose edits raise accuracy most over β = 0, whether that gain exceeds 2 · `max_binomial_se`) (07_editing.ipynb).

    The first key wins a tie.
    """
    if not scores:
        raise ValueError("no scores")
    best = max(scores, key=lambda k: scores[k].gain)
    return best, scores[best].gain > 2 * max_binomial_se(scores[best].n)


def rises_with_beta(accuracies: Sequence[float], n: int) -> bool:
    """Whether edit accuracy rises along increasing β (07_editing.ipynb).

    True when no step falls by more than 2 · `max_binomial_se(n)` and the last value exceeds the
    first by more than that margin (n: pairs behind each accuracy).
    """
    if len(accuracies) < 2:
        raise ValueError(f"need accuracies at two or more βs, got {len(accuracies)}")
    margin = 2 * max_binomial_se(n)
    steady = all(a2 >= a1 - margin for a1, a2 in zip(accuracies, accuracies[1:]))
    return steady and accuracies[-1] > accuracies[0] + margin
