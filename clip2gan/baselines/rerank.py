"""Re-ranking by CLIP score: keep the best of n samples of a caption (10_comparisons.ipynb).

clip2latent (Pinkney & Li, BMVC 2022) draws several samples per caption and shows, and scores, the
one CLIP finds closest to the caption; DALL·E and DALL·E 2 re-rank the same way. Given any sampler
`sample_fn(captions, n_per_prompt, seed) -> images` (prompt-major, as every `generate` of this
package), `rerank` draws k candidates per output and keeps

    x* = argmax_{x ∈ candidates} cos(C_img(x), C_text(t))

so it turns any text → image method into its best-of-k version with no training. It spends k times
the sampling and asks CLIP, the same model the method is conditioned on, to judge: a gain it brings
on a CLIP-based score is partly self-grading, while an independent judge (the toy world's attribute
classifier) measures what it really adds.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from clip2gan.clip_encoder import check_prompts

__all__ = ["clip_scores", "rerank"]

SampleFn = Callable[..., torch.Tensor]


def _encoder(clip: Any) -> Any:
    """The CLIP of a model (`.clip`: CLIP2GAN, Clip2Latent) or the encoder itself."""
    encoder = getattr(clip, "clip", clip)
    if not (hasattr(encoder, "encode_image") and hasattr(encoder, "encode_text")):
        raise TypeError(f"clip must be a CLIP encoder (encode_image, encode_text) or a model holding one as .clip, "
                        f"got {type(clip).__name__}")
    return encoder


def _device(encoder: Any) -> torch.device:
    params = getattr(encoder, "parameters", None)
    first = next(iter(params()), None) if callable(params) else None
    return first.device if first is not None else torch.device("cpu")


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


@torch.no_grad()
def clip_scores(clip: Any, images: torch.Tensor, captions: Sequence[str] | str, batch_size: int = 256) -> torch.Tensor:
    """cos(C_img(x_i), C_text(t_i)) per image → `[N]` (10_comparisons.ipynb).

    clip: a CLIP encoder or a model with one at `.clip`. images: `[N, 3, H, W]` in [-1, 1].
    captions: one per image, or P captions for N = P · n images in prompt-major order.
    """
    encoder = _encoder(clip)
    captions = check_prompts(captions)
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be [N, 3, H, W] in [-1, 1], got {got}")
    n = len(images)
    if n == 0 or n % len(captions):
        raise ValueError(f"{n} images cannot be split over {len(captions)} captions (need the same number, > 0, "
                         "of images per caption, in prompt-major order)")
    device = _device(encoder)
    text = F.normalize(encoder.encode_text(captions).float().cpu(), dim=-1).repeat_interleave(n // len(captions), dim=0)
    feats = torch.cat([encoder.encode_image(b.to(device)).float().cpu() for b in images.split(batch_size)])
    return (F.normalize(feats, dim=-1) * text).sum(-1)


@torch.no_grad()
def rerank(sample_fn: SampleFn, clip: Any, captions: Sequence[str] | str, n_candidates: int, seed: int | None = 0,
           n_per_prompt: int = 1, return_scores: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Best-of-`n_candidates` samples per output by CLIP score (10_comparisons.ipynb).

    sample_fn: any sampler called as `sample_fn(captions, n_per_prompt=m, seed=seed)` that returns
    `[len(captions) * m, 3, R, R]` in prompt-major order (`CLIP2GAN.from_pretrained("toyfaces").generate`,
    `Clip2Latent.generate`). It is called once with m = n_per_prompt · n_candidates; the candidates
    of output j of caption i are that caption's samples j·k … (j+1)·k − 1. clip: the CLIP that judges
    (an encoder or a model holding one as `.clip`).

    Returns `[len(captions) * n_per_prompt, 3, R, R]`, prompt-major, and with `return_scores` also the
    kept samples' scores `[len(captions) * n_per_prompt]`.
    """
    captions = check_prompts(captions)
    k = _check_count("n_candidates", n_candidates)
    n = _check_count("n_per_prompt", n_per_prompt)
    if not callable(sample_fn):
        raise TypeError(f"sample_fn must be callable (captions, n_per_prompt, seed) -> images, got {type(sample_fn).__name__}")
    images = sample_fn(captions, n_per_prompt=n * k, seed=seed)
    want = len(captions) * n * k
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or len(images) != want:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"sample_fn returned {got}; expected [{want}, 3, R, R] ({len(captions)} captions × "
                         f"{n} outputs × {k} candidates, prompt-major)")
    scores = clip_scores(clip, images, captions).view(len(captions) * n, k)  # [outputs, candidates]
    best = scores.argmax(dim=1)
    rows = torch.arange(len(best)) * k + best
    kept = images[rows.to(images.device)]
    return (kept, scores[torch.arange(len(best)), best]) if return_scores else kept
