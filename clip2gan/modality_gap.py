"""The modality gap and the project's two bridges across it (introduced in 01_clip_embedding.ipynb).

CLIP puts images and texts in one space, but not in one region of it: image features and text
features occupy two narrow cones on the sphere, some distance apart (Liang et al., "Mind the Gap:
Understanding the Modality Gap in Multi-modal Contrastive Representation Learning", NeurIPS 2022).
CLIP2GAN trains M on image features only and meets text features only at test time, so where M sends
a text feature depends on how it extrapolates across that gap. This module holds everything about it:

* measuring it: `modality_gap` (centroid distance, cone widths);
* re-centring: `recentre` moves text features from the text cone's centre to the image cone's and
  renormalises (the mean shift of Liang et al.), with the text mean taken over the world's prompt
  vocabulary (`vocabulary_text_mean`);
* the published bridges that change what M is trained on (10_comparisons.ipynb): C3 (Zhang et al.,
  "Connect, Collapse, Corrupt: Learning Cross-Modal Tasks with Uni-Modal Data", ICLR 2024) trains on
  centred image features plus noise (`c3_corrupt`) and centres text features at test time (`collapse`);
  LAFITE (Zhou et al., "Towards Language-Free Training for Text-to-Image Generation", CVPR 2022) trains
  on perturbed image features that stand in for text features (`lafite_perturb`);
* nearest image features: `nearest_image_features` replaces a text feature by the softmax-weighted
  mean of its nearest image features in a *feature bank* — the CLIP image features of training images
  (no captions: training stays text-free). Its family is published: KNN-Diffusion (Sheynin et al.,
  ICLR 2023) conditions on the nearest image embeddings of a text embedding, and DeCap (Li et al.,
  ICLR 2023) projects a text embedding onto a memory of embeddings with softmax weights;
* the feature bank itself: `feature_bank` builds one from a training set, `bank_from_state` /
  `BANK_KEY` say how it is stored in a mapping file beside M's weights (`clip2gan.model.save_mapping`),
  `load_feature_bank` reads it back, `require_bank` is the one check (and message) for code that needs one.

None of these is in the paper, whose rule feeds C_text(t) to M as it is; `clip2gan.model.CLIP2GAN`
offers them as its `text_correction`, and `clip2gan.edit` builds per-image edit directions from the bank.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from clip2gan.checkpoint import load_safetensors
from clip2gan.profiles import get_profile
from clip2gan.toy import world_module

__all__ = ["modality_gap", "recentre", "collapse", "c3_corrupt", "lafite_perturb", "nearest_image_features",
           "vocabulary_prompts", "vocabulary_text_mean",
           "feature_bank", "BANK_KEY", "bank_from_state", "load_feature_bank", "require_bank", "check_bank"]

BANK_KEY = "feature_bank"  # the bank's tensor in a mapping file, beside M's state dict
_BANK_HELP = ("needs a feature bank (CLIP image features of training images): load a checkpoint that has one, pass "
              "feature_bank=clip2gan.modality_gap.feature_bank(clip, images), or add one to a mapping file with "
              "`python -m clip2gan.train --add-feature-bank PATH`")


# ---------------------------------------------------------------------------------------------
# Measuring the gap and re-centring


def modality_gap(f_img: torch.Tensor, f_text: torch.Tensor) -> dict[str, float]:
    """How far apart CLIP's image and text cones are (01_clip_embedding.ipynb).

    f_img: `[N, D]`, f_text: `[M, D]`, both unit norm. Returns the distance between the two centroids
    (`gap`, the measure of Liang et al. 2022), the cosine between the centroids' directions, and the
    mean cosine of each set to its own centroid direction (how narrow each cone is).
    """
    if f_img.ndim != 2 or f_text.ndim != 2 or f_img.shape[1] != f_text.shape[1]:
        raise ValueError(f"expected [N, D] and [M, D], got {tuple(f_img.shape)} and {tuple(f_text.shape)}")
    mi, mt = f_img.float().mean(0), f_text.float().mean(0)
    di, dt = F.normalize(mi, dim=0), F.normalize(mt, dim=0)
    return {
        "gap": float((mi - mt).norm()),
        "centroid_cosine": float(di @ dt),
        "image_cone_cosine": float((F.normalize(f_img.float(), dim=-1) @ di).mean()),
        "text_cone_cosine": float((F.normalize(f_text.float(), dim=-1) @ dt).mean()),
    }


def recentre(f_text: torch.Tensor, image_mean: torch.Tensor, text_mean: torch.Tensor) -> torch.Tensor:
    """Move text features from the text cone to the image cone, then renormalise (01_clip_embedding.ipynb).

    f_text: `[N, D]`; image_mean, text_mean: `[D]`, the mean (not normalised) image and text
    features of the training world. Returns `normalize(f_text - text_mean + image_mean)`: the mapping
    network, trained on image features only, then receives inputs centred where it was trained.
    This is the mean shift of Liang et al. (NeurIPS 2022): move embeddings along the gap vector
    (image mean − text mean), then back onto the unit sphere. An option beside the paper's noise, not
    part of the paper.
    """
    if f_text.ndim != 2:
        raise ValueError(f"f_text must be [N, D], got {tuple(f_text.shape)}")
    d = f_text.shape[1]
    if tuple(image_mean.shape) != (d,) or tuple(text_mean.shape) != (d,):
        raise ValueError(f"image_mean and text_mean must be [{d}], got {tuple(image_mean.shape)}, {tuple(text_mean.shape)}")
    shifted = f_text - text_mean.to(f_text) + image_mean.to(f_text)
    return F.normalize(shifted, dim=-1)


def collapse(f_text: torch.Tensor, text_mean: torch.Tensor, image_mean: torch.Tensor) -> torch.Tensor:
    """C3's "collapse" at test time for an M trained on centred image features (10_comparisons.ipynb).

    Zhang et al., "Connect, Collapse, Corrupt: Learning Cross-Modal Tasks with Uni-Modal Data" (ICLR 2024)
    remove each modality's mean: a decoder trained on e_img − E[e_img] meets e_text − E[e_text] at test time.
    An M trained with `centre_input` subtracts E[e_img] itself (`clip2gan.mapping.MappingNetwork`), so the
    text feature handed to it is `f_text − text_mean + image_mean` (`[N, D]`), which M turns into
    `f_text − text_mean`. Unlike `recentre` (the mean shift of Liang et al.) nothing is renormalised: C3
    works with the centred, unnormalised embeddings.
    """
    if f_text.ndim != 2:
        raise ValueError(f"f_text must be [N, D], got {tuple(f_text.shape)}")
    d = f_text.shape[1]
    if tuple(image_mean.shape) != (d,) or tuple(text_mean.shape) != (d,):
        raise ValueError(f"image_mean and text_mean must be [{d}], got {tuple(image_mean.shape)}, {tuple(text_mean.shape)}")
    return f_text - text_mean.to(f_text) + image_mean.to(f_text)


def c3_corrupt(f: torch.Tensor, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """C3's "corrupt" in training: `f + σ ε / √D`, ε ~ N(0, I), not renormalised (10_comparisons.ipynb).

    f: `[N, D]`. σ is in units of a unit-norm feature (the noise vector's norm is about σ), as the
    project's other feature noises (`clip2gan.losses.NoiseConfig`, scale 'unit'). The noise makes the
    decoder robust to the residual between centred image and centred text features (Zhang et al., ICLR 2024).
    """
    if f.ndim != 2:
        raise ValueError(f"features must be [N, D], got {tuple(f.shape)}")
    if not sigma >= 0:
        raise ValueError(f"sigma must be >= 0, got {sigma!r}")
    eps = torch.randn(f.shape, generator=generator, device=generator.device if generator is not None else f.device)
    return f + sigma * eps.to(f) / f.shape[1] ** 0.5


def lafite_perturb(f: torch.Tensor, xi: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """LAFITE's pseudo text features `h' = normalise(h + ξ ε ‖h‖ / ‖ε‖)`, ε ~ N(0, I) (10_comparisons.ipynb).

    Zhou et al., "Towards Language-Free Training for Text-to-Image Generation" (CVPR 2022), the Gaussian
    perturbation of their eq. 2: a generator trained on image features perturbed this way also accepts the
    text features of the same content, which lie elsewhere on the sphere. f: `[N, D]` → `[N, D]` unit
    vectors; ξ = 0 returns normalise(f). For a high-dimensional ε, cos(h, h') ≈ 1 / √(1 + ξ²).
    """
    if f.ndim != 2:
        raise ValueError(f"features must be [N, D], got {tuple(f.shape)}")
    if not xi >= 0:
        raise ValueError(f"xi must be >= 0, got {xi!r}")
    eps = torch.randn(f.shape, generator=generator, device=generator.device if generator is not None else f.device).to(f)
    h = f.float()
    step = xi * eps.float() * h.norm(dim=-1, keepdim=True) / eps.float().norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return F.normalize(h + step, dim=-1).to(f.dtype)


def nearest_image_features(f_text: torch.Tensor, bank: torch.Tensor, k: int = 16, temperature: float = 0.01) -> torch.Tensor:
    """Replace each text feature by the mean of its k nearest image features (06_generation.ipynb).

    f_text: `[N, D]` (unit norm); bank: `[B, D]`, CLIP image features of training images (unit norm;
    `feature_bank`). Each row of f_text picks its k most similar bank rows (cosine),
    weights them by softmax(similarity / temperature) and the weighted mean, renormalised, is
    returned `[N, D]`. Small temperatures approach the single nearest image (temperature → 0),
    large ones the plain mean of the k neighbours. The result lies among the image features M was
    trained on, on the far side of the modality gap from f_text. Noise added to f_text *before*
    this step (as `clip2gan.generate` does) picks other neighbours: the diversity of generation.
    """
    if f_text.ndim != 2 or bank.ndim != 2 or f_text.shape[1] != bank.shape[1]:
        raise ValueError(f"expected f_text [N, D] and bank [B, D], got {tuple(f_text.shape)} and {tuple(bank.shape)}")
    if bank.shape[0] == 0:
        raise ValueError("the feature bank is empty: build one with clip2gan.modality_gap.feature_bank")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    bank = bank.to(device=f_text.device, dtype=torch.float32)
    sim = F.normalize(f_text.float(), dim=-1) @ bank.T  # [N, B]
    top, idx = sim.topk(min(k, bank.shape[0]), dim=1)  # [N, k]
    weights = torch.softmax(top / temperature, dim=1)
    return F.normalize((weights[..., None] * bank[idx]).sum(1), dim=-1).to(f_text.dtype)


def vocabulary_prompts(profile: str) -> list[str]:
    """Prompts describing a world's attributes (01_clip_embedding.ipynb): a toy world's value prompts
    (`clip2gan.toy.faces.value_prompt`, `clip2gan.toy.pets.value_prompt`), or the profile's own vocabulary
    (CelebA-style face phrases for 'ffhq', one phrase for the single-class worlds)."""
    p = get_profile(profile)
    if p.toy_world:
        world = world_module(p)
        return [world.value_prompt(a, v) for a, vals in world.ATTRIBUTES.items() for v in vals]
    return list(p.vocabulary)


@torch.no_grad()
def vocabulary_text_mean(clip, profile: str) -> torch.Tensor:
    """Mean CLIP text feature `[D]` of the world's prompt vocabulary: the text mean of `recentre` (05_training.ipynb)."""
    prompts = vocabulary_prompts(profile)
    return clip.encode_text(prompts).float().mean(0).cpu()


# ---------------------------------------------------------------------------------------------
# The feature bank


def require_bank(bank: torch.Tensor | None, what: str) -> torch.Tensor:
    """`bank` if it holds at least one feature, else a `ValueError` saying how to get one (06_generation.ipynb)."""
    if bank is None or len(bank) == 0:
        raise ValueError(f"{what} {_BANK_HELP}")
    return bank


def check_bank(bank: torch.Tensor, dim: int) -> None:
    """A bank must be `[B, dim]` with B >= 1."""
    if bank.ndim != 2 or bank.shape[1] != dim or bank.shape[0] == 0:
        raise ValueError(f"feature_bank must be [B, {dim}] with B >= 1, got {tuple(bank.shape)}")


def bank_from_state(state: dict[str, torch.Tensor]) -> torch.Tensor | None:
    """Take the bank out of a mapping file's tensors (removing it), as float32 `[B, D]`, or None."""
    bank = state.pop(BANK_KEY, None)
    return None if bank is None else bank.float()


def load_feature_bank(path: str | os.PathLike) -> torch.Tensor | None:
    """The feature bank `[B, D]` (float32) stored in a mapping file, or None if it has none (06_generation.ipynb)."""
    state, _ = load_safetensors(path)
    return bank_from_state(state)


@torch.no_grad()
def feature_bank(clip, dataset: torch.utils.data.Dataset, n: int = 2048, batch_size: int = 256,
                 progress: bool = False) -> torch.Tensor:
    """CLIP image features `[B, D]` of the first `n` readable images of a training set (06_generation.ipynb).

    The bank behind `text_correction='nearest'` (`nearest_image_features`): image
    features only, so training stays text-free. B = min(n, readable images); unreadable files
    (items with `ok=False`) are skipped.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    device = next(clip.parameters()).device
    feats, batch, count = [], [], 0
    for i in tqdm(range(len(dataset)), desc="feature bank", disable=not progress, leave=False):
        if count + len(batch) >= n:
            break
        item = dataset[i]
        if item.get("ok", True):
            batch.append(item["image"])
        if len(batch) == batch_size:
            feats.append(clip.encode_image(torch.stack(batch).to(device)).float().cpu())
            count, batch = count + len(batch), []
    if batch:
        feats.append(clip.encode_image(torch.stack(batch).to(device)).float().cpu())
    if not feats:
        raise ValueError("no readable image in the dataset: cannot build a feature bank")
    return torch.cat(feats)[:n]
