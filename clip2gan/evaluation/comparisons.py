"""CLIP2GAN against the published ways to bridge text and a GAN, on the toy world (10_comparisons.ipynb).

    python -m clip2gan.evaluation.sweeps --comparisons --size ci   --out results/ci-comparisons   # minutes; numbers meaningless
    python -m clip2gan.evaluation.sweeps --comparisons --size full --out results/                 # the committed table

The paper compares CLIP2GAN with other text → image methods (Table 1: FID and LPIPS; Table 2: a paired
user study of accuracy and realism) and other editing methods (Table 5: FID, accuracy and realism, on
CelebA-HQ and on images outside it). Here every method runs on the same frozen toy CLIP and StyleGAN2, is
scored by one protocol on the same held-out captions, edit pairs, seeds and sample counts, and the toy
world's attribute classifier replaces the user study.

Text → image (`GENERATION`):

    paper        CLIP2GAN as written: M(C_text(t)), M trained on image features (the paper)
    bridged      the project's default: the text feature replaced by the softmax mean of its nearest
                 training-image features (retrieval: KNN-Diffusion, Sheynin et al., ICLR 2023; DeCap,
                 Li et al., ICLR 2023)
    mean_shift   the same M, text features moved by the image − text mean and renormalised (Liang et
                 al., "Mind the Gap", NeurIPS 2022)
    c3           M trained on centred image features plus noise, text features centred at test time
                 (Zhang et al., "Connect, Collapse, Corrupt", ICLR 2024)
    lafite       M trained on pseudo text features normalise(h + ξ ε ‖h‖/‖ε‖), text features as they are
                 (Zhou et al., "Towards Language-Free Training for Text-to-Image Generation", CVPR 2022)
    clip2latent  a diffusion prior over G's own w, conditioned on noise-augmented CLIP image embeddings of
                 G's samples, classifier-free guidance (Pinkney & Li, BMVC 2022)
    styleclip    per-prompt optimisation of a w+ code with the CLIP loss from the mean code (Patashnik et
                 al., "StyleCLIP", ICCV 2021): no training, the slow reference
    … + rerank   any sampler drawing `rerank` candidates per caption and keeping the best CLIP score
                 (`clip2gan.baselines.rerank`, as clip2latent does)

Editing (`EDITING`): CLIP2GAN's eq. 11-14 (`paper`), the bridged per-image neighbour directions
(`bridged`), the directional variant n = M(t) − M(t_neutral) (`directional`), DeltaEdit (Lyu et al.,
CVPR 2023: text-free training on image pairs), StyleCLIP optimisation per image (CLIP loss + L2 +
identity loss). Edits start from CLIP2GAN's inversion M(C_img(x)).

Reference rows frame the tables (`REFERENCES`): `ceiling` — the conditional toy G given each caption's
stated attributes (the unstated ones drawn from the data distribution): what a perfect text reader could
reach with this G; `g_samples` — G's own samples with labels from the data distribution (the FID a method
would reach if its images were as good as G draws; it ignores the captions, so accuracy does not apply);
`renders` — a second set of renders (the floor of the FID estimator at this sample count).

Metrics (one function each, the same for every row): text → image attribute accuracy over the stated
attributes (`text_acc`), toy FID in the classifier's features (`fid`) and in the toy CLIP image tower's
(`fid_clip`: a network trained on captions, never on the attribute labels the classifier was trained on),
each with a bootstrap standard error, LPIPS to the caption's render (`lpips_ref`, Table 1's LPIPS), LPIPS
diversity among `n_per_prompt` samples, CLIP score (mean cosine of C_img(x') and C_text(t); methods that
optimise it — StyleCLIP, re-ranking — are scored by their own objective there), realism (the share of
samples every attribute head reads with probability ≥ 0.9, G's own bar), seconds per image. Editing:
target reached at β = 1 (`edit_acc`) over the floor at β = 0, other attributes kept (`edit_pres`), identity
kept (cosine of the toy identity net's embeddings of reconstruction and edit), FID and realism of the edits,
seconds per edit; on renders and on zoomed renders (Table 5's "Not-in-CelebA-HQ"). Methods that train
something are trained with three seeds; the tables show mean ± standard deviation over seeds.

Table 2's paired user study becomes a paired comparison per caption (`paired`): for CLIP2GAN against
each method, the share of captions where CLIP2GAN's sample reads more stated attributes (Acc.) and where it
is the more confidently read (Real.: the lowest per-attribute top probability), ties counted half.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from clip2gan.baselines.deltaedit import DeltaEditConfig, DeltaEditor, DeltaEditTrainer
from clip2gan.baselines.rerank import rerank
from clip2gan.baselines.styleclip import StyleCLIPOptimizer
from clip2gan.checkpoint import atomic_write_text
from clip2gan.evaluation.attributes import classifier_proba, text_attribute_accuracy, toy_feature_extractor
from clip2gan.evaluation.comparison_report import plot_comparisons, sample_figures
from clip2gan.evaluation.metrics import lpips_diversity, lpips_to_reference
from clip2gan.evaluation.protocol import (
    EvalData,
    clip_feature_extractor,
    edit_pairs,
    eval_data,
    fid_with_se,
    score_edits,
    zoom,
)
from clip2gan.evaluation.sweeps import run_seconds, train_variant, weights_record
from clip2gan.evaluation.tables import write_csv
from clip2gan.identity import identity_net_for
from clip2gan.model import CLIP2GAN
from clip2gan.runtime import pick_device
from clip2gan.toy import world_module
from clip2gan.toy.faces import ATTRIBUTES, EVAL_SEED, AttributeClassifier, ToyFaces
from clip2gan.toy.stylegan2_eval import confident_mask
from clip2gan.train import TrainConfig, build_world

__all__ = [
    "GENERATION",
    "EDITING",
    "REFERENCES",
    "RERANKED",
    "ComparisonSize",
    "SIZES",
    "VALIDATION_SEED",
    "TEXT_MEAN_SEED",
    "validation_data",
    "caption_text_mean",
    "stated_attributes",
    "ceiling_sampler",
    "g_sampler",
    "renders_sampler",
    "clip_feature_extractor",
    "model_sampler",
    "model_editor",
    "per_sample_reading",
    "generation_scores",
    "editing_scores",
    "paired_preference",
    "select_level",
    "validation_accuracy",
    "aggregate",
    "summarise",
    "run_comparisons",
]

#: text → image methods: name → (family, what it is)
GENERATION: dict[str, tuple[str, str]] = {
    "paper": ("CLIP2GAN", "the paper's rule: M(C_text(t)), M trained on image features"),
    "bridged": ("CLIP2GAN", "the project's bridge: nearest training-image features (KNN-Diffusion / DeCap family)"),
    "mean_shift": ("gap", "Mind the Gap (NeurIPS 2022): text features shifted by the image − text mean"),
    "c3": ("gap", "C3 (ICLR 2024): M trained on centred image features + noise; text features centred"),
    "lafite": ("gap", "LAFITE (CVPR 2022): M trained on pseudo text features h + ξ ε ‖h‖/‖ε‖"),
    "clip2latent": ("prior", "clip2latent (BMVC 2022): diffusion prior over G's w from G's own samples"),
    "styleclip": ("optimisation", "StyleCLIP (ICCV 2021): w+ optimised per prompt with the CLIP loss"),
}
#: editing methods: name → (family, what it is)
EDITING: dict[str, tuple[str, str]] = {
    "paper": ("CLIP2GAN", "eq. 11-14: z + β M(C_text(t)) on every row"),
    "bridged": ("CLIP2GAN", "per-image neighbour directions from the feature bank"),
    "directional": ("CLIP2GAN", "z + β (M(t) − M(t_neutral))"),
    "deltaedit": ("delta", "DeltaEdit (CVPR 2023): image-feature deltas → latent deltas, text delta at test time"),
    "styleclip": ("optimisation", "StyleCLIP (ICCV 2021): w+ optimised per image (CLIP + L2 + identity)"),
}
#: the rows that frame the generation table
REFERENCES: dict[str, str] = {
    "ceiling": "G conditioned on each caption's stated attributes (what a perfect text reader reaches with this G)",
    "g_samples": "G's own samples, labels from the data distribution (G's image quality; ignores the captions)",
    "renders": "a second set of renders (the FID floor at this sample count)",
}
#: samplers that get a re-ranked row (`<name>+rerank`)
RERANKED = ("paper", "bridged", "clip2latent")

VALIDATION_SEED = EVAL_SEED + 500  # captions for choosing ξ and σ: no training or evaluation stream uses it
TEXT_MEAN_SEED = EVAL_SEED + 900  # unpaired captions whose mean is the text modality's mean (mean shift, C3)


@dataclass(frozen=True)
class ComparisonSize:
    """How big a comparison is (10_comparisons.ipynb).

    train: the `TrainConfig` recipe of every trained M (CLIP2GAN seeds, C3, LAFITE); select_train: the
    cheaper recipe of the runs that choose C3's σ and LAFITE's ξ (`levels`) on `n_validation` validation
    captions; seeds: the training seeds of every trained method; rerank: candidates per caption;
    clip2latent, deltaedit, styleclip: keyword overrides of those methods' configs.
    """

    name: str
    train: dict[str, Any]
    select_train: dict[str, Any]
    levels: dict[str, tuple[float, ...]]
    seeds: tuple[int, ...] = (0, 1, 2)
    n_captions: int = 500
    n_div_prompts: int = 50
    n_per_prompt: int = 8
    n_edit: int = 500
    n_validation: int = 200
    n_text_mean: int = 1000
    rerank: int = 8
    clip2latent: dict[str, Any] = field(default_factory=dict)
    deltaedit: dict[str, Any] = field(default_factory=dict)
    styleclip: dict[str, Any] = field(default_factory=dict)


SIZES: dict[str, ComparisonSize] = {
    # CI: 3 steps per trained network, a handful of captions: the pipeline runs, the numbers mean nothing.
    "ci": ComparisonSize("ci", dict(epochs=1, epoch_size=32, batch_size=8, max_steps=3, bank_size=32),
                         dict(epochs=1, epoch_size=32, batch_size=8, max_steps=2, bank_size=32),
                         {"lafite": (0.5, 1.0), "c3": (0.5,)}, seeds=(0, 1), n_captions=16, n_div_prompts=2,
                         n_per_prompt=2, n_edit=8, n_validation=8, n_text_mean=32, rerank=2,
                         clip2latent=dict(pairs=64, steps=3, batch_size=16, sample_steps=4),
                         deltaedit=dict(n_images=32, steps=3, batch_size=8), styleclip=dict(steps=2)),
    # full: the paper's recipe on renders (8 epochs × 2,048 renders, batch 32 = 512 steps) for every trained M; the
    # levels chosen with a quarter of it (4 epochs × 1,024 = 128 steps) on 200 validation captions.
    "full": ComparisonSize("full", dict(epochs=8, epoch_size=2048, batch_size=32),
                           dict(epochs=4, epoch_size=1024, batch_size=32),
                           {"lafite": (0.25, 0.5, 1.0, 1.5), "c3": (0.1, 0.25, 0.5, 1.0)}),
}


# -------------------------------------------------------------------------------------------------
# data and the reference samplers


def validation_data(n: int, resolution: int) -> tuple[list[str], list[dict[str, Any]]]:
    """`n` validation captions and the attributes each states, from a stream no other set uses (10_comparisons.ipynb)."""
    faces = ToyFaces(n, seed=VALIDATION_SEED, resolution=resolution)
    items = [faces[i] for i in range(len(faces))]
    mentioned = [{a: it["attributes"][a] for a, m in zip(ATTRIBUTES, it["mentioned"].tolist()) if m} for it in items]
    return [it["caption"] for it in items], mentioned


@torch.no_grad()
def caption_text_mean(clip: Any, n: int = 1000, resolution: int = 32) -> torch.Tensor:
    """The text modality's mean CLIP feature `[D]`, over `n` captions of a stream no image set uses (10_comparisons.ipynb).

    Mean shift and C3 subtract each modality's mean. Training stays text-free: these captions are never
    paired with an image; C3 likewise estimates each modality's mean from unpaired data. The prompt-vocabulary
    mean stored with M (`modality_gap.vocabulary_text_mean`: one short phrase per attribute value) sits
    elsewhere than full captions' mean, and shifting captions by it moves them past the image cone.
    """
    faces = ToyFaces(n, seed=TEXT_MEAN_SEED, resolution=resolution)
    captions = [faces[i]["caption"] for i in range(len(faces))]
    return torch.cat([clip.encode_text(captions[i:i + 256]).float().cpu() for i in range(0, len(captions), 256)]).mean(0)


def stated_attributes(mentioned: Mapping[str, Any], rng: np.random.Generator, world: Any = None) -> dict[str, Any]:
    """A complete attribute dict with the stated values and the others drawn from the data distribution
    (10_comparisons.ipynb). Faces (world None): a stated hair colour on a drawn bald head gets the head a length; a
    stated bald head drops colour and bangs. Another world (`clip2gan.toy.world_module`, e.g. 'toypets') whose
    attributes are independent takes the stated values as they are."""
    module = world_module(world)
    attrs = module.sample_attributes(rng)
    attrs.update({a: v for a, v in mentioned.items() if v is not None})
    if module.NAME != "faces":
        return attrs
    if mentioned.get("hair_length") == "bald":
        attrs["hair_color"], attrs["bangs"] = None, "no"
    elif attrs["hair_length"] == "bald" and ("hair_color" in mentioned or mentioned.get("bangs") == "yes"):
        attrs["hair_length"] = ("short", "long")[int(rng.integers(2))]
    if attrs["hair_length"] != "bald" and attrs["hair_color"] is None:
        attrs["hair_color"] = ATTRIBUTES["hair_color"][int(rng.integers(len(ATTRIBUTES["hair_color"])))]
    return attrs


def _g_images(G: torch.nn.Module, c: torch.Tensor, seed: int, batch: int = 250) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(len(c), G.z_dim, generator=gen)
    dev = next(G.parameters()).device
    out = [G(z[i:i + batch].to(dev), c[i:i + batch].to(dev), noise_mode="const").cpu() for i in range(0, len(z), batch)]
    return torch.cat(out).clamp(-1, 1)


def ceiling_sampler(G: torch.nn.Module, captions: Sequence[str], mentioned: Sequence[Mapping[str, Any]],
                    world: Any = None) -> Callable[..., torch.Tensor]:
    """The ceiling: the conditional G given each caption's stated attributes (10_comparisons.ipynb).

    Returns `sample(captions, n_per_prompt, seed)` for any of `captions`, whose stated attributes are
    `mentioned` (same order); the unstated ones are drawn per sample (`stated_attributes`). world: the toy world
    (None: faces).
    """
    lookup = dict(zip(captions, mentioned))
    module = world_module(world)

    def sample(wanted: Sequence[str], n_per_prompt: int = 1, seed: int = 0) -> torch.Tensor:
        unknown = [t for t in wanted if t not in lookup]
        if unknown:
            raise ValueError(f"the ceiling knows the stated attributes of its own captions only, not of {unknown[:2]}")
        rng = np.random.default_rng([seed, 31])
        attrs = [stated_attributes(lookup[t], rng, module) for t in wanted for _ in range(n_per_prompt)]
        return _g_images(G, module.attributes_to_c(attrs), seed)

    return sample


def g_sampler(G: torch.nn.Module, world: Any = None) -> Callable[..., torch.Tensor]:
    """G's own samples, labels drawn from the data distribution of `world` (None: faces); the captions only set the
    count (10_comparisons.ipynb)."""
    module = world_module(world)

    def sample(captions: Sequence[str], n_per_prompt: int = 1, seed: int = 0) -> torch.Tensor:
        rng = np.random.default_rng([seed, 37])
        attrs = [module.sample_attributes(rng) for _ in range(len(captions) * n_per_prompt)]
        return _g_images(G, module.attributes_to_c(attrs), seed)

    return sample


# -------------------------------------------------------------------------------------------------
# scoring


def per_sample_reading(classifier: AttributeClassifier, images: torch.Tensor, mentioned: Sequence[Mapping[str, Any]]
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image: (share of its stated attributes read, lowest per-attribute top probability, confident?)
    (10_comparisons.ipynb). Hair colour is skipped where the image reads bald, as in `text_attribute_accuracy`."""
    proba = classifier_proba(classifier, images)
    preds = {a: p.argmax(1) for a, p in proba.items()}
    bald = preds["hair_length"] == ATTRIBUTES["hair_length"].index("bald")
    acc = torch.full((len(images),), float("nan"))
    for i, wanted in enumerate(mentioned):
        hits = [bool(preds[a][i] == ATTRIBUTES[a].index(v)) for a, v in wanted.items()
                if v is not None and not (a == "hair_color" and bald[i])]
        if hits:
            acc[i] = float(np.mean(hits))
    top = torch.stack([p.max(1).values for a, p in proba.items() if a != "hair_color"]
                      + [torch.where(bald, torch.ones_like(bald, dtype=torch.float), proba["hair_color"].max(1).values)])
    return acc, top.min(0).values, confident_mask(proba)


def generation_scores(sample: Callable[..., torch.Tensor], data: EvalData, classifier: AttributeClassifier,
                      lpips: Callable[..., torch.Tensor], clip: Any, size: ComparisonSize, seed: int = 0,
                      text_free: bool = False) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The text → image metrics of one sampler `sample(captions, n_per_prompt, seed)` (10_comparisons.ipynb).

    Returns (metrics, per-caption readings for the paired comparison). text_free: the sampler ignores
    the captions (G's own samples): accuracy, CLIP score and the per-caption readings are left out.
    """
    start = time.perf_counter()
    fake = sample(data.captions, 1, seed).float().cpu()
    seconds = time.perf_counter() - start
    if tuple(fake.shape) != tuple(data.images.shape):
        raise ValueError(f"a sampler returned {tuple(fake.shape)} for {tuple(data.images.shape)} renders")
    out: dict[str, Any] = {"sec_per_image": seconds / len(fake)}
    out["fid"], out["fid_se"] = fid_with_se(data.images, fake, toy_feature_extractor(classifier), seed=seed)
    out["fid_clip"], out["fid_clip_se"] = fid_with_se(data.images, fake, clip_feature_extractor(clip), seed=seed)
    out["lpips_ref"] = lpips_to_reference(fake, data.images, lpips, progress=False)
    acc, low, conf = per_sample_reading(classifier, fake, data.mentioned)
    out["realism"] = float(conf.float().mean())
    readings = {"accuracy": acc, "lowest_top": low}
    if not text_free:
        details = text_attribute_accuracy(classifier, fake, data.mentioned, details=True)
        out["text_acc"], out["text_pairs"] = details["accuracy"], details["n_pairs"]
        with torch.no_grad():
            fi = clip.encode_image(fake.to(clip.device)).float()
            ft = clip.encode_text(list(data.captions)).float()
        out["clip_score"] = float((F.normalize(fi, dim=-1) * F.normalize(ft, dim=-1)).sum(-1).mean())
    k, n = min(size.n_div_prompts, len(data.captions)), size.n_per_prompt
    samples = sample(data.captions[:k], n, seed + 1).float().cpu()
    out["lpips_div"] = lpips_diversity(samples.view(k, n, *samples.shape[1:]), lpips, progress=False)
    return out, readings


def editing_scores(edit: Callable[..., tuple[torch.Tensor, torch.Tensor]], data: EvalData, classifier: AttributeClassifier,
                   identity: Callable[[torch.Tensor], torch.Tensor] | None, seed: int = 0, zoomed: bool = False
                   ) -> dict[str, Any]:
    """The editing metrics of one editor `edit(images, texts, beta, seed) -> (before, after)` (10_comparisons.ipynb).

    zoomed: edit renders zoomed 1.25× (faces larger than any training render: Table 5's out-of-dataset column).
    FID compares the edits with the unzoomed renders in both cases, as the paper's Table 5 compares with real faces.
    """
    images = zoom(data.edit_images) if zoomed else data.edit_images
    start = time.perf_counter()
    before, after = edit(images, data.edit_texts, 1.0, seed)
    seconds = time.perf_counter() - start
    before, after = before.float().cpu(), after.float().cpu()
    scores = score_edits(classifier, before, after, data.edit_targets)
    out: dict[str, Any] = {"edit_acc": scores.accuracy, "edit_acc_beta0": scores.floor, "edit_pres": scores.preservation,
                           "edit_n": scores.n, "sec_per_edit": seconds / len(images)}
    out["edit_fid"], out["edit_fid_se"] = fid_with_se(data.edit_images, after, toy_feature_extractor(classifier), seed=seed)
    out["edit_realism"] = float(confident_mask(classifier_proba(classifier, after)).float().mean())
    if identity is not None:
        with torch.no_grad():
            out["identity"] = float(F.cosine_similarity(identity(before), identity(after), dim=-1).mean())
    return out


def paired_preference(ours: Mapping[str, torch.Tensor], theirs: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Table 2 in kind: the share of captions where our sample beats theirs, ties counted half (10_comparisons.ipynb).

    'acc': more stated attributes read; 'real': a higher lowest per-attribute top probability (the
    classifier reads every attribute of ours more confidently). Captions without a scorable attribute drop out.
    """
    def share(a: torch.Tensor, b: torch.Tensor) -> float:
        ok = ~(torch.isnan(a) | torch.isnan(b))
        if not ok.any():
            return float("nan")
        a, b = a[ok], b[ok]
        return float(((a > b).float() + 0.5 * (a == b).float()).mean())

    return {"acc": share(ours["accuracy"], theirs["accuracy"]), "real": share(ours["lowest_top"], theirs["lowest_top"]),
            "n": int((~torch.isnan(ours["accuracy"])).sum())}


# -------------------------------------------------------------------------------------------------
# choosing C3's σ and LAFITE's ξ


def select_level(curve: Mapping[float, float]) -> float:
    """The level with the highest validation accuracy (the smallest on a tie) (10_comparisons.ipynb)."""
    if not curve:
        raise ValueError("no levels to choose from")
    best = max(curve.values())
    return min(level for level, acc in curve.items() if acc == best)


# -------------------------------------------------------------------------------------------------
# aggregation over training seeds


def aggregate(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """{metric: {'mean', 'sd', 'n'}} over the rows of one method (its training seeds) (10_comparisons.ipynb).

    'sd' is the sample standard deviation over seeds (0 for one seed): the spread training seeds give."""
    out = {}
    for k in keys:
        values = [float(r[k]) for r in rows if isinstance(r.get(k), (int, float)) and not math.isnan(float(r[k]))]
        if values:
            out[k] = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                      "n": len(values)}
    return out


# -------------------------------------------------------------------------------------------------
# the trained methods


def _mapping_config(size: ComparisonSize, out: Path, seed: int, device: str, select: bool = False,
                    **overrides: Any) -> TrainConfig:
    recipe = size.select_train if select else size.train
    return TrainConfig(**{"profile": "toyfaces", "seed": seed, "device": device, "sample_every": 0, "log_every": 10,
                          **recipe, **overrides, "out": str(out)})


def _model(world: Mapping[str, Any], mapping: str | Path, text_mean: torch.Tensor | None = None, **kwargs: Any) -> CLIP2GAN:
    """A CLIP2GAN on the world's CLIP and G; text_mean: replaces the stored text mean (mean shift, C3: `caption_text_mean`)."""
    model = CLIP2GAN.from_checkpoint(mapping, clip=world["clip"], generator=world["G"], **kwargs)
    if text_mean is not None:
        model.text_mean.copy_(text_mean.to(model.text_mean))
    return model


def model_sampler(model: CLIP2GAN, **generate_kwargs: Any) -> Callable[..., torch.Tensor]:
    """`sample(captions, n_per_prompt, seed)` of a CLIP2GAN model, with `generate`'s other arguments fixed
    (e.g. `truncation=ψ`) (10_comparisons.ipynb)."""

    def sample(captions: Sequence[str], n_per_prompt: int = 1, seed: int = 0) -> torch.Tensor:
        return model.generate(list(captions), n_per_prompt=n_per_prompt, seed=seed, **generate_kwargs)

    return sample


def model_editor(model: CLIP2GAN, mode: str) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    """`edit(images, texts, beta, seed) -> (reconstructions, edits)` of a CLIP2GAN model in w+ with edit `mode`
    (10_comparisons.ipynb)."""

    def edit(images: torch.Tensor, texts: Sequence[str], beta: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        return edit_pairs(model, images, texts, space="wplus", mode=mode, beta=beta)

    return edit


def validation_accuracy(sample: Callable[..., torch.Tensor], classifier: AttributeClassifier, n: int, resolution: int,
                        seed: int = 0) -> float:
    """Text → image attribute accuracy of a sampler on `n` validation captions (`validation_data`) (10_comparisons.ipynb)."""
    captions, mentioned = validation_data(n, resolution)
    return float(text_attribute_accuracy(classifier, sample(captions, 1, seed).float().cpu(), mentioned))


def _clip2latent(size: ComparisonSize, world: Mapping[str, Any], out: Path, seed: int,
                 progress: bool) -> tuple[Any, float | None]:
    """Train (or resume, or reuse) one clip2latent prior; returns (the prior, training seconds)."""
    from clip2gan.baselines.clip2latent import Clip2Latent, Clip2LatentConfig, Clip2LatentTrainer  # diffusers: 5 s to import

    path = out / "prior.safetensors"
    if not path.is_file():
        config = Clip2LatentConfig(out=str(out), seed=seed, **size.clip2latent)
        Clip2LatentTrainer(config, clip=world["clip"], generator=world["G"], progress=progress).fit(
            resume=(out / "checkpoint.safetensors").is_file())
    return Clip2Latent.from_checkpoint(path, clip=world["clip"], generator=world["G"]), run_seconds(out)


def _deltaedit(size: ComparisonSize, model: CLIP2GAN, mapping: str | Path, out: Path, seed: int,
               progress: bool) -> tuple[Any, float | None]:
    """Train (or resume, or reuse) one DeltaEdit mapper on the inversions of `model` (whose M is the file `mapping`);
    returns (the editor, training seconds)."""
    path = out / "delta.safetensors"
    if not path.is_file():
        config = DeltaEditConfig(out=str(out), seed=seed, mapping=str(mapping), **size.deltaedit)
        DeltaEditTrainer(config, model=model, progress=progress).fit(resume=(out / "checkpoint.safetensors").is_file())
    return DeltaEditor.from_checkpoint(path, model=model), run_seconds(out)


def _styleclip(size: ComparisonSize, model: CLIP2GAN) -> Any:
    """StyleCLIP on `model`'s CLIP and G, editing from its inversion, with the world's identity loss."""
    return StyleCLIPOptimizer.from_model(model, **size.styleclip)


def _reranked(sample: Callable[..., torch.Tensor], clip: Any, k: int) -> Callable[..., torch.Tensor]:
    def sample_best(captions: Sequence[str], n_per_prompt: int = 1, seed: int = 0) -> torch.Tensor:
        return rerank(sample, clip, list(captions), k, seed=seed, n_per_prompt=n_per_prompt)

    return sample_best


def renders_sampler(resolution: int, captions: Sequence[str], mentioned: Sequence[Mapping[str, Any]], world: Any = None
                    ) -> Callable[..., torch.Tensor]:
    """The renderer as a generator: a fresh render of each caption's stated attributes, the unstated ones drawn
    from the data distribution — the FID floor and the accuracy a perfect generator of this world reaches
    (10_comparisons.ipynb). world: the toy world (None: faces)."""
    lookup = dict(zip(captions, mentioned))
    module = world_module(world)

    def sample(wanted: Sequence[str], n_per_prompt: int = 1, seed: int = 0) -> torch.Tensor:
        rng = np.random.default_rng([seed, 41])
        return torch.stack([module.render(stated_attributes(lookup[t], rng, module), resolution, rng=rng)
                            for t in wanted for _ in range(n_per_prompt)])

    return sample


# -------------------------------------------------------------------------------------------------
# the run


LEVEL_FIELDS = {"c3": "c3_sigma", "lafite": "lafite_xi"}
GEN_KEYS = ("fid", "fid_se", "fid_clip", "fid_clip_se", "lpips_ref", "text_acc", "text_pairs", "clip_score", "realism",
            "lpips_div", "sec_per_image", "train_seconds")
EDIT_KEYS = ("edit_acc", "edit_acc_beta0", "edit_pres", "identity", "edit_fid", "edit_fid_se", "edit_realism", "edit_n",
             "sec_per_edit", "train_seconds")


def run_comparisons(size: str | ComparisonSize = "ci", out: str | Path = "results", work: str | Path | None = None,
                    device: str = "auto", seed: int = 0, world: dict[str, Any] | None = None,
                    classifier: AttributeClassifier | None = None, identity: Any = None,
                    dataset_factory: Callable[[TrainConfig], torch.utils.data.Dataset] | None = None,
                    progress: bool = True, log: Callable[[str], Any] = print,
                    methods: Sequence[str] | None = None) -> dict[str, Any]:
    """Train what the comparison needs, score every method and reference, write `<out>/comparisons.{csv,json,png}`
    and the sample figures (10_comparisons.ipynb).

    Every trained network goes to `<work>/<name>-s<seed>/` (default work folder `runs/comparisons-<size>`); a
    finished one is reused, an interrupted one resumes. Every scored row is kept in `<work>/scores/` and reused
    by a later run of the same size and evaluation seed, so a long comparison can be stopped and restarted.
    world: a `clip2gan.train.build_world` dict to use instead of the toy world's (tests inject a tiny one);
    identity: the network whose embeddings measure identity kept by edits (default: the toy identity net).
    methods: score only these (names of `GENERATION`, `EDITING` or `REFERENCES`; their training included) and
    write nothing to `out` — to fill the score cache in parallel with training. Returns the JSON record.
    """
    size = SIZES[size] if isinstance(size, str) else size
    out, work = Path(out), Path(work) if work is not None else Path("runs") / f"comparisons-{size.name}"
    dev = pick_device(device)
    started = time.perf_counter()
    shipped_world = world is None
    if world is None:
        world = build_world(_mapping_config(size, work / "world", 0, str(dev)), dev)
        identity = identity if identity is not None else identity_net_for("toyfaces", device=dev)
    classifier = classifier if classifier is not None else AttributeClassifier.from_pretrained(device=dev)
    G = world["G"]
    res = int(G.img_resolution)
    data = eval_data(size, res, seed)
    text_mean = caption_text_mean(world["clip"], size.n_text_mean, res)

    def dataset(config: TrainConfig) -> torch.utils.data.Dataset | None:
        return dataset_factory(config) if dataset_factory is not None else None

    unknown = set(methods or ()) - set(GENERATION) - set(EDITING) - set(REFERENCES)
    if unknown:
        raise ValueError(f"unknown method(s) {sorted(unknown)}; known: {sorted({*GENERATION, *EDITING, *REFERENCES})}")

    def want(name: str) -> bool:
        return methods is None or name.split("+")[0] in methods

    scores_dir = work / "scores"

    # 1. C3's σ and LAFITE's ξ, chosen on validation captions with the cheaper recipe (seed 0)
    curves: dict[str, dict[float, float]] = {}
    for kind, levels in ((k, v) for k, v in size.levels.items() if want(k)):
        curves[kind] = {}
        for level in levels:
            config = _mapping_config(size, work / "select" / f"{kind}-{level:g}", 0, str(dev), select=True, inputs=kind,
                                     **{LEVEL_FIELDS[kind]: level})
            trained = train_variant(config, world, dataset(config), progress)
            model = _model(world, trained["mapping"], text_mean=text_mean if kind == "c3" else None)
            acc = validation_accuracy(model_sampler(model), classifier, size.n_validation, res, seed)
            curves[kind][level] = acc
            log(f"[{size.name}] select {kind} {LEVEL_FIELDS[kind]}={level:g}: validation text → image {acc:.3f}")
    chosen = {kind: select_level(curve) for kind, curve in curves.items()}

    # 2. every trained method, three seeds
    trained: dict[str, list[dict[str, Any]]] = {"clip2gan": [], "c3": [], "lafite": []}
    for s in size.seeds:
        config = _mapping_config(size, work / f"clip2gan-s{s}", s, str(dev))
        trained["clip2gan"].append(train_variant(config, world, dataset(config), progress))
        for kind in (k for k in ("c3", "lafite") if want(k)):
            config = _mapping_config(size, work / f"{kind}-s{s}", s, str(dev), inputs=kind, **{LEVEL_FIELDS[kind]: chosen[kind]})
            trained[kind].append(train_variant(config, world, dataset(config), progress))
        log(f"[{size.name}] seed {s}: M, C3 and LAFITE trained")

    rows: list[dict[str, Any]] = []
    readings: dict[tuple[str, int], dict[str, torch.Tensor]] = {}

    reused: list[str] = []

    def cached(key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        path = scores_dir / f"{size.name}-eval{seed}-{key}.json"
        if path.is_file():
            reused.append(key)
            return json.loads(path.read_text())
        value = compute()
        scores_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(value, default=float))
        return value

    def add_generation(method: str, s: int | None, sample: Callable[..., torch.Tensor], train_seconds: float | None = None,
                       text_free: bool = False, kind: str = "method") -> None:
        if not want(method):
            return

        def compute() -> dict[str, Any]:
            metrics, read = generation_scores(sample, data, classifier, world["lpips"], world["clip"], size, seed=seed,
                                              text_free=text_free)
            return {"metrics": metrics, "readings": {k: v.tolist() for k, v in read.items()}}

        got = cached(f"generation-{method}-s{s}", compute)
        metrics = got["metrics"]
        rows.append({"table": "generation", "kind": kind, "method": method, "seed": s, "images": "renders",
                     "train_seconds": train_seconds, **metrics})
        readings[(method, -1 if s is None else s)] = {k: torch.tensor(v) for k, v in got["readings"].items()}
        log(f"[{size.name}] generation {method} seed {s}: " + ", ".join(
            f"{k}={metrics[k]:.3f}" for k in ("text_acc", "fid", "fid_clip", "lpips_div", "realism") if k in metrics))

    def add_editing(method: str, s: int | None, edit: Callable[..., Any], train_seconds: float | None = None) -> None:
        if not want(method):
            return
        for zoomed in (False, True):
            images = "zoomed" if zoomed else "renders"
            metrics = cached(f"editing-{method}-s{s}-{images}",
                             lambda z=zoomed: editing_scores(edit, data, classifier, identity, seed=seed, zoomed=z))
            rows.append({"table": "editing", "kind": "method", "method": method, "seed": s,
                         "images": images, "train_seconds": train_seconds, **metrics})
            log(f"[{size.name}] editing {method} seed {s} ({'zoomed' if zoomed else 'renders'}): "
                f"acc {metrics['edit_acc']:.3f}, kept {metrics['edit_pres']:.3f}, FID {metrics['edit_fid']:.1f}")

    # references
    add_generation("renders", None, renders_sampler(res, data.captions, data.mentioned), kind="reference")
    add_generation("ceiling", None, ceiling_sampler(G, data.captions, data.mentioned), kind="reference")
    add_generation("g_samples", None, g_sampler(G), text_free=True, kind="reference")

    styleclip = None
    shown: dict[str, Callable[..., Any]] = {}  # the first seed's samplers and editors, for the figures
    shown_edits: dict[str, Callable[..., Any]] = {}
    for i, s in enumerate(size.seeds):
        m = trained["clip2gan"][i]
        paper = _model(world, m["mapping"], method="paper")
        bridged = _model(world, m["mapping"], method="bridged")
        shifted = _model(world, m["mapping"], text_mean=text_mean, text_correction="recentre", edit_mode="paper")
        samplers = {"paper": model_sampler(paper), "bridged": model_sampler(bridged), "mean_shift": model_sampler(shifted)}
        seconds = {"paper": m["train_seconds"], "bridged": m["train_seconds"], "mean_shift": m["train_seconds"]}
        for kind in (k for k in ("c3", "lafite") if want(k)):
            other = _model(world, trained[kind][i]["mapping"], text_mean=text_mean if kind == "c3" else None)
            samplers[kind] = model_sampler(other)
            seconds[kind] = trained[kind][i]["train_seconds"]
        if want("clip2latent"):
            prior, seconds["clip2latent"] = _clip2latent(size, world, work / f"clip2latent-s{s}", s, progress)
            samplers["clip2latent"] = prior.generate
        for name, sample in samplers.items():
            add_generation(name, s, sample, seconds[name])
        for name in (n for n in RERANKED if n in samplers):
            add_generation(f"{name}+rerank", s, _reranked(samplers[name], world["clip"], size.rerank), seconds[name])
        add_editing("paper", s, model_editor(paper, "paper"), m["train_seconds"])
        add_editing("bridged", s, model_editor(bridged, "neighbours"), m["train_seconds"])
        add_editing("directional", s, model_editor(paper, "directional"), m["train_seconds"])
        editor = None
        if want("deltaedit"):
            editor, delta_seconds = _deltaedit(size, bridged, m["mapping"], work / f"deltaedit-s{s}", s, progress)
            add_editing("deltaedit", s, editor.edit_pairs, delta_seconds)
        if styleclip is None:  # trains nothing: one run, from the first seed's inversion
            styleclip = _styleclip(size, paper)
            add_generation("styleclip", None, styleclip.generate)
            add_editing("styleclip", None, styleclip.edit_pairs)
            shown = {**samplers, "styleclip": styleclip.generate}
            shown_edits = {"paper": model_editor(paper, "paper"), "bridged": model_editor(bridged, "neighbours"),
                           "directional": model_editor(paper, "directional"), "styleclip": styleclip.edit_pairs}
            if editor is not None:
                shown_edits["deltaedit"] = editor.edit_pairs

    if methods is not None:
        log(f"[{size.name}] scored {sorted(methods)} into {scores_dir}; nothing written to {out} (a subset)")
        return {"rows": rows, "chosen": chosen, "selection": curves}

    # Table 2 in kind: CLIP2GAN's samples against each other method's, caption by caption, seed by seed
    paired: dict[str, dict[str, dict[str, float]]] = {}
    for ours in ("paper", "bridged"):
        paired[ours] = {}
        for theirs in [r["method"] for r in rows if r["table"] == "generation" and r["kind"] == "method"]:
            if theirs == ours or theirs in paired[ours]:
                continue
            shares = []
            for s in size.seeds:
                other = readings.get((theirs, s), readings.get((theirs, -1)))
                if other is not None:
                    shares.append(paired_preference(readings[(ours, s)], other))
            paired[ours][theirs] = {k: float(np.nanmean([p[k] for p in shares])) for k in ("acc", "real")}
            paired[ours][theirs].update(acc_sd=float(np.std([p["acc"] for p in shares], ddof=1)) if len(shares) > 1 else 0.0,
                                        real_sd=float(np.std([p["real"] for p in shares], ddof=1)) if len(shares) > 1 else 0.0,
                                        n=shares[0]["n"], seeds=len(shares))

    record = {"command": f"python -m clip2gan.evaluation.sweeps --comparisons --size {size.name} --out {out}",
              "size": dataclasses.asdict(size), "seed": seed, "device": str(dev), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "seconds": round(time.perf_counter() - started, 1),
              "selection": {k: {f"{lv:g}": a for lv, a in c.items()} for k, c in curves.items()},
              "chosen": chosen, "summary": summarise(rows), "paired": paired,
              "work": str(work), "rows_from_cache": len(reused),
              "rows_scored": sum(1 for r in rows if r["table"] == "generation") + sum(
                  1 for r in rows if r["table"] == "editing")}
    record["weights"] = weights_record("toyfaces") if shipped_world else {}
    out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out / "comparisons.csv", CSV_COLUMNS)
    (out / "comparisons.json").write_text(json.dumps(record, indent=1, default=float) + "\n")
    plot_comparisons(record, out / "comparisons.png")
    references = {"renders": renders_sampler(res, data.captions, data.mentioned),
                  "ceiling": ceiling_sampler(G, data.captions, data.mentioned)}
    sample_figures(data, {**references, **shown}, shown_edits, out, size.name, seed)
    return record


# -------------------------------------------------------------------------------------------------
# results: rows, summary, files


CSV_COLUMNS = ["table", "kind", "method", "seed", "images", *dict.fromkeys(GEN_KEYS + EDIT_KEYS)]



def summarise(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{'generation'|'editing'|'editing_zoomed': {method: {metric: {'mean', 'sd', 'n'}, 'kind': …}}}: every
    method's rows aggregated over its training seeds (`aggregate`) (10_comparisons.ipynb)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        table = r["table"] if r["images"] == "renders" else f"{r['table']}_zoomed"
        out.setdefault(table, {}).setdefault(r["method"], {"kind": r["kind"], "rows": []})["rows"].append(r)
    for table, methods in out.items():
        keys = GEN_KEYS if table == "generation" else EDIT_KEYS
        for name, entry in methods.items():
            methods[name] = {"kind": entry["kind"], **aggregate(entry["rows"], keys)}
    return out
