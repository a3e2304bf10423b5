"""Evaluation metrics: FID with pluggable features, LPIPS, CLIP score, toy attribute metrics (08_evaluation.ipynb).

* FID: `fid(real, fake, extractor)` with `toy_feature_extractor(classifier)` (toyfaces: the
  attribute classifier's penultimate features; toy FIDs are not comparable with the paper's) or
  `inception_feature_extractor()` (the paper's worlds: the TF-Inception 2015-12-05 pool3 features of
  the standard FID, as ported by pytorch-fid; weights through `clip2gan.hub.resolve('inception-fid')`).
* LPIPS: `lpips_diversity` (mean pairwise among the samples of one prompt, averaged over prompts;
  Fig. 6/10, Table 1) and `lpips_to_reference` (paired), with any LPIPS callable (`LPIPSLoss`).
* `clip_score`: mean 100 · max(cos(C_img(x), C_text(t)), 0), the torchmetrics convention.
* Toy ground truth: `text_attribute_accuracy` (text → image), `editing_scores` (edit accuracy and
  preservation), read by the toy `AttributeClassifier`; `prompt_targets` maps an edit text to the
  (attribute, value) it asks for, over the edit vocabulary `EDIT_PHRASES`.

The Fréchet distance between two Gaussians N(μ₁, Σ₁) and N(μ₂, Σ₂) is

    d² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½ .

`tr (Σ₁ Σ₂)^½` equals the sum of the square roots of the eigenvalues of the symmetric positive
semi-definite matrix Σ₁^½ Σ₂ Σ₁^½, so two symmetric eigendecompositions (`numpy.linalg.eigh`)
replace `scipy.linalg.sqrtm` (whose `disp=` argument SciPy ≥ 1.18 removed, breaking pytorch-fid and
clean-fid). Both are computed in float64.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from clip2gan.toy.faces import ATTRIBUTES, caption_mentions, value_prompt

__all__ = [
    "frechet_distance",
    "feature_statistics",
    "fid",
    "lpips_diversity",
    "lpips_to_reference",
    "clip_score",
    "text_attribute_accuracy",
    "editing_scores",
    "toy_feature_extractor",
    "inception_feature_extractor",
    "FIDInceptionV3",
    "feature_extractor_for",
    "EDIT_PHRASES",
    "edit_prompts",
    "prompt_targets",
]


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (tiny negative eigenvalues from round-off → 0)."""
    vals, vecs = np.linalg.eigh(matrix)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), from eigenvalues (see module doc).

    mu: [D], sigma: [D, D] symmetric PSD. Returns a float ≥ 0.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    if mu1.shape != mu2.shape or mu1.ndim != 1:
        raise ValueError(f"means must be 1-D of equal length, got {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"covariances must be [{d}, {d}], got {sigma1.shape} and {sigma2.shape}")
    sigma1 = (sigma1 + sigma1.T) / 2
    sigma2 = (sigma2 + sigma2.T) / 2
    root1 = _sqrt_psd(sigma1)
    inner = root1 @ sigma2 @ root1
    eig = np.linalg.eigvalsh((inner + inner.T) / 2)
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean
    return float(max(value, 0.0))


def feature_statistics(features: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (unbiased) of features [N, D], in float64."""
    x = features.detach().cpu().double().numpy() if isinstance(features, torch.Tensor) else np.asarray(features, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be [N ≥ 2, D], got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


@torch.no_grad()
def _extract(images: torch.Tensor | Iterable[torch.Tensor], extractor: Callable[[torch.Tensor], torch.Tensor],
             batch_size: int, desc: str, progress: bool) -> torch.Tensor:
    from tqdm.auto import tqdm

    if isinstance(images, torch.Tensor):
        batches = list(images.split(batch_size))
    else:
        batches = list(images)
    feats = [extractor(b).float().cpu() for b in tqdm(batches, desc=desc, disable=not progress, leave=False)]
    return torch.cat(feats)


def fid(real: torch.Tensor | Iterable[torch.Tensor], fake: torch.Tensor | Iterable[torch.Tensor],
        extractor: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 100, progress: bool = True) -> float:
    """FID between two image sets in the feature space of `extractor` (images → [B, D] features).

    The standard FID uses Inception features (`inception-fid` in `clip2gan.hub`); the toy world uses
    its attribute classifier's penultimate features, so toy FIDs are not comparable with the paper's.
    """
    f_real = _extract(real, extractor, batch_size, "features (real)", progress)
    f_fake = _extract(fake, extractor, batch_size, "features (fake)", progress)
    return frechet_distance(*feature_statistics(f_real), *feature_statistics(f_fake))


# ------------------------------------------------------------------------------------------------
# LPIPS


def _distances(lpips_fn: Callable[..., torch.Tensor], a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pair distances `[N]` from an LPIPS callable: `LPIPSLoss` (reduction='none'), `lpips.LPIPS`
    (`[N, 1, 1, 1]`) or any function returning `[N]`; a callable that only returns a scalar is
    called pair by pair."""
    n = a.shape[0]
    try:
        out = lpips_fn(a, b, reduction="none")
    except TypeError:
        out = lpips_fn(a, b)
    out = torch.as_tensor(out).detach().float().reshape(-1).cpu()
    if out.numel() == n:
        return out
    if out.numel() == 1 and n > 1:
        return torch.stack([torch.as_tensor(lpips_fn(a[i:i + 1], b[i:i + 1])).detach().float().reshape(()).cpu()
                            for i in range(n)])
    raise ValueError(f"lpips_fn returned {out.numel()} values for {n} pairs")


def _check_batch(x: Any, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name} must be a tensor [N, 3, H, W] in [-1, 1], got {shape}")
    return x


@torch.no_grad()
def lpips_diversity(images_per_prompt: torch.Tensor | Sequence[torch.Tensor], lpips_fn: Callable[..., torch.Tensor],
                    batch_size: int = 256, progress: bool = True, per_prompt: bool = False) -> float | list[float]:
    """Mean pairwise LPIPS among the samples of each prompt, averaged over prompts (08_evaluation.ipynb).

    images_per_prompt: `[P, n, 3, H, W]` or a list of `[n_i, 3, H, W]` (n_i ≥ 2), in [-1, 1], e.g.
    `generate(...).view(P, n, 3, R, R)`. lpips_fn: an LPIPS callable (`LPIPSLoss.for_profile(...)`).
    Every unordered pair i < j counts once. per_prompt=True returns the list of per-prompt means.
    """
    from tqdm.auto import tqdm

    groups = list(images_per_prompt.unbind(0)) if isinstance(images_per_prompt, torch.Tensor) else list(images_per_prompt)
    if isinstance(images_per_prompt, torch.Tensor) and images_per_prompt.ndim != 5:
        raise ValueError(f"images_per_prompt must be [P, n, 3, H, W] or a list of [n, 3, H, W], got {tuple(images_per_prompt.shape)}")
    if not groups:
        raise ValueError("images_per_prompt is empty")
    means = []
    for p, x in enumerate(tqdm(groups, desc="LPIPS diversity", disable=not progress, leave=False)):
        _check_batch(x, f"prompt {p}'s samples")
        if x.shape[0] < 2:
            raise ValueError(f"prompt {p} has {x.shape[0]} sample(s); diversity needs at least 2")
        i, j = torch.triu_indices(x.shape[0], x.shape[0], offset=1)
        d = torch.cat([_distances(lpips_fn, x[i[k:k + batch_size]], x[j[k:k + batch_size]])
                       for k in range(0, len(i), batch_size)])
        means.append(float(d.mean()))
    return means if per_prompt else float(np.mean(means))


@torch.no_grad()
def lpips_to_reference(fake: torch.Tensor, real: torch.Tensor, lpips_fn: Callable[..., torch.Tensor],
                       batch_size: int = 256, progress: bool = True) -> float:
    """Mean LPIPS between paired images fake[i] and real[i], `[N, 3, H, W]` each (08_evaluation.ipynb)."""
    from tqdm.auto import tqdm

    _check_batch(fake, "fake")
    _check_batch(real, "real")
    if fake.shape != real.shape:
        raise ValueError(f"fake and real must be paired and equally shaped, got {tuple(fake.shape)} and {tuple(real.shape)}")
    if fake.shape[0] == 0:
        raise ValueError("no images")
    starts = range(0, fake.shape[0], batch_size)
    d = torch.cat([_distances(lpips_fn, fake[k:k + batch_size], real[k:k + batch_size])
                   for k in tqdm(starts, desc="LPIPS", disable=not progress, leave=False)])
    return float(d.mean())


# ------------------------------------------------------------------------------------------------
# CLIP score


@torch.no_grad()
def clip_score(model_or_clip: Any, images: torch.Tensor, prompts: Sequence[str] | str, batch_size: int = 64,
               progress: bool = True) -> float:
    """Mean 100 · max(cos(C_img(x_i), C_text(t_i)), 0) (the torchmetrics CLIPScore convention) (08_evaluation.ipynb).

    model_or_clip: a `CLIP2GAN` (its CLIP is used, text features *without* the model's text
    correction: the score asks CLIP, not M) or a `ClipEncoder`. images: `[N, 3, H, W]` in [-1, 1].
    prompts: one per image, or P prompts for N = P · n images in prompt-major order (`generate`'s
    output), or one string for all. The score depends on the CLIP: toy and OpenAI scores are not
    comparable.
    """
    from tqdm.auto import tqdm

    from clip2gan.clip_encoder import check_prompts

    clip = getattr(model_or_clip, "clip", model_or_clip)
    _check_batch(images, "images")
    prompts = check_prompts(prompts)
    n = images.shape[0]
    if n == 0:
        raise ValueError("no images")
    if n % len(prompts):
        raise ValueError(f"{n} images cannot be split over {len(prompts)} prompts (need one per image, "
                         "or the same number of images per prompt in prompt-major order)")
    text = clip.encode_text(prompts).float().cpu().repeat_interleave(n // len(prompts), dim=0)  # [N, D]
    device = next(clip.parameters()).device if any(True for _ in clip.parameters()) else torch.device("cpu")
    feats = [clip.encode_image(images[k:k + batch_size].to(device)).float().cpu()
             for k in tqdm(range(0, n, batch_size), desc="CLIP score", disable=not progress, leave=False)]
    cos = torch.nn.functional.cosine_similarity(torch.cat(feats), text, dim=-1)
    return float(100.0 * cos.clamp(min=0).mean())


# ------------------------------------------------------------------------------------------------
# toy attribute metrics


def _predict(classifier: Any, images: Any) -> list[dict[str, Any]]:
    """Classifier reads; `images` may already be a list of attribute dicts (predictions)."""
    if isinstance(images, list) and (not images or isinstance(images[0], dict)):
        return images
    return classifier.predict(_to_classifier_size(classifier, images))


def _to_classifier_size(classifier: Any, images: torch.Tensor) -> torch.Tensor:
    res = int(getattr(classifier, "resolution", images.shape[-1]))
    if images.ndim == 4 and images.shape[-1] != res:
        images = torch.nn.functional.interpolate(images.float(), size=(res, res), mode="area")
    return images


def text_attribute_accuracy(classifier: Any, images: torch.Tensor | list[dict[str, Any]],
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


def editing_scores(classifier: Any, before: torch.Tensor | list[dict[str, Any]], after: torch.Tensor | list[dict[str, Any]],
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
# feature extractors for FID


def toy_feature_extractor(classifier: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """images `[B, 3, H, W]` in [-1, 1] → the toy classifier's penultimate features `[B, 256]` (08_evaluation.ipynb).

    Images of another size are area-resized to the classifier's resolution (32 px).
    """

    def extract(images: torch.Tensor) -> torch.Tensor:
        return classifier.features(_to_classifier_size(classifier, images).clamp(-1, 1))

    return extract


def _fid_blocks():
    """torchvision's Inception blocks with TF-Inception's pooling (the FID network's only differences):
    average pools exclude the padding, and the last block's pool branch max-pools."""
    from torchvision.models import inception as tv

    class _TFPool:
        pool = "avg"

        def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
            outputs = super()._forward(x)[:-1]  # the branches before the pool branch are unchanged
            if self.pool == "max":
                pooled = torch.nn.functional.max_pool2d(x, kernel_size=3, stride=1, padding=1)
            else:
                pooled = torch.nn.functional.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
            return outputs + [self.branch_pool(pooled)]

    class A(_TFPool, tv.InceptionA):
        pass

    class C(_TFPool, tv.InceptionC):
        pass

    class E(_TFPool, tv.InceptionE):
        pass

    class EMax(E):
        pool = "max"

    return A, C, E, EMax


class FIDInceptionV3(torch.nn.Module):
    """The standard FID feature network: TF Inception-v3 (2015-12-05) up to pool3, `[B, 2048]` (08_evaluation.ipynb).

    torchvision's `Inception3(num_classes=1008, aux_logits=False)` with the pooling changes of the TF
    graph, so the parameter names are those of pytorch-fid's `pt_inception-2015-12-05-6726825d.pth`
    (loaded strictly by `inception_feature_extractor`). Input: `[B, 3, H, W]` in [-1, 1], resized
    bilinearly to 299 × 299 (pytorch-fid's convention; TF's FID resizes the same way, values may
    differ in the last digits from the TF implementation).
    """

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import inception as tv

        A, C, E, EMax = _fid_blocks()
        net = tv.Inception3(num_classes=1008, aux_logits=False, init_weights=False)
        net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = A(192, pool_features=32), A(256, pool_features=64), A(288, pool_features=64)
        net.Mixed_6b = C(768, channels_7x7=128)
        net.Mixed_6c, net.Mixed_6d = C(768, channels_7x7=160), C(768, channels_7x7=160)
        net.Mixed_6e = C(768, channels_7x7=192)
        net.Mixed_7b, net.Mixed_7c = E(1280), EMax(2048)
        self.net = net.eval().requires_grad_(False)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):  # the file's names, no prefix
        return self.net.load_state_dict(state_dict, strict=strict, assign=assign)

    def state_dict(self, *args, **kwargs):
        return self.net.state_dict(*args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        x = torch.nn.functional.interpolate(x.float(), size=(299, 299), mode="bilinear", align_corners=False)
        x = torch.nn.functional.max_pool2d(n.Conv2d_2b_3x3(n.Conv2d_2a_3x3(n.Conv2d_1a_3x3(x))), kernel_size=3, stride=2)
        x = torch.nn.functional.max_pool2d(n.Conv2d_4a_3x3(n.Conv2d_3b_1x1(x)), kernel_size=3, stride=2)
        for name in ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                     "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(n, name)(x)
        return x.mean(dim=(2, 3))  # pool3: [B, 2048]


def inception_feature_extractor(path: str | None = None, device: str | torch.device = "cpu",
                                download: bool | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
    """images `[B, 3, H, W]` in [-1, 1] → standard FID features `[B, 2048]` (08_evaluation.ipynb).

    Weights: `path`, or `clip2gan.hub.resolve('inception-fid')` (`CLIP2GAN_INCEPTION_FID`, `data/`,
    the cache, or a download when allowed); offline without the file: `clip2gan.hub.WeightsNotFound`
    naming the file, its URL and the variable to set.
    """
    from clip2gan.hub import resolve

    file = resolve(path or "inception-fid", download=download)
    state = torch.load(file, map_location="cpu", weights_only=True)
    net = FIDInceptionV3()
    net.load_state_dict(state, strict=True)
    net = net.to(device)

    @torch.no_grad()
    def extract(images: torch.Tensor) -> torch.Tensor:
        return net(images.to(device).clamp(-1, 1))

    return extract


def feature_extractor_for(profile: str, classifier: Any = None, device: str | torch.device = "cpu"
                          ) -> Callable[[torch.Tensor], torch.Tensor]:
    """The FID features of a world: the toy classifier's for 'toyfaces' (loaded from the hub when
    `classifier` is None), Inception's otherwise (08_evaluation.ipynb)."""
    if profile == "toyfaces":
        if classifier is None:
            from clip2gan.toy.faces import AttributeClassifier

            classifier = AttributeClassifier.from_pretrained(device=device)
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
