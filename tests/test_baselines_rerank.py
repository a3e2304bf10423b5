"""Re-ranking by CLIP score (clip2gan.baselines.rerank): the best candidate is kept, for any sampler."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from clip2gan.baselines.rerank import clip_scores, rerank

# A 3-d "CLIP" where the answer is known: an image's embedding is its mean colour, a caption's is
# the axis of the colour it names. Constant 4 px images: the test runs in milliseconds.
AXES = {"red": [1.0, 0.0, 0.0], "green": [0.0, 1.0, 0.0], "blue": [0.0, 0.0, 1.0]}


class ColourClip:
    embed_dim = 3

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x.mean(dim=(2, 3)) + 1.0, dim=-1)  # colours in [-1, 1] -> positive mean colour

    def encode_text(self, prompts) -> torch.Tensor:
        return torch.tensor([AXES[p] for p in prompts])


def solid(colour) -> torch.Tensor:
    """A 4 px image of one colour given in [0, 1] per channel (stored in [-1, 1])."""
    return (torch.tensor(colour, dtype=torch.float32) * 2 - 1).view(3, 1, 1).expand(3, 4, 4).clone()


class ColourSampler:
    """Returns, per caption, the candidate colours listed for it (cycled), prompt-major; records its calls."""

    def __init__(self, candidates: dict[str, list[tuple[float, float, float]]]):
        self.candidates = candidates
        self.calls: list[tuple[list[str], int, int]] = []

    def __call__(self, captions, n_per_prompt=1, seed=0):
        self.calls.append((list(captions), n_per_prompt, seed))
        out = []
        for c in captions:
            colours = self.candidates[c]
            out += [solid(colours[i % len(colours)]) for i in range(n_per_prompt)]
        return torch.stack(out)


CANDIDATES = {
    "red": [(0.2, 0.9, 0.1), (0.9, 0.1, 0.1), (0.5, 0.5, 0.5)],  # best: index 1
    "blue": [(0.1, 0.1, 0.9), (0.6, 0.1, 0.5), (0.3, 0.8, 0.2)],  # best: index 0
}


def test_rerank_keeps_the_highest_scoring_candidate():
    sampler = ColourSampler(CANDIDATES)
    images, scores = rerank(sampler, ColourClip(), ["red", "blue"], n_candidates=3, seed=5, return_scores=True)
    assert images.shape == (2, 3, 4, 4)
    assert torch.equal(images[0], solid(CANDIDATES["red"][1]))
    assert torch.equal(images[1], solid(CANDIDATES["blue"][0]))
    assert sampler.calls == [(["red", "blue"], 3, 5)]  # one call, n_per_prompt * n_candidates samples, the seed
    want = [F.normalize(torch.tensor(CANDIDATES["red"][1]), dim=0)[0], F.normalize(torch.tensor(CANDIDATES["blue"][0]), dim=0)[2]]
    assert torch.allclose(scores, torch.stack(want), atol=1e-5)


def test_rerank_groups_candidates_per_output_with_several_outputs_per_caption():
    # 2 outputs x 3 candidates: caption 'red' gets colours 0,1,2 | 0,1,2 -> each group keeps index 1
    sampler = ColourSampler(CANDIDATES)
    images = rerank(sampler, ColourClip(), ["red", "blue"], n_candidates=3, n_per_prompt=2)
    assert images.shape == (4, 3, 4, 4)
    for row, want in enumerate([CANDIDATES["red"][1]] * 2 + [CANDIDATES["blue"][0]] * 2):
        assert torch.equal(images[row], solid(want))
    assert sampler.calls[0][1] == 6


def test_one_candidate_returns_the_sampler_output():
    sampler = ColourSampler(CANDIDATES)
    images = rerank(sampler, ColourClip(), ["red", "blue"], n_candidates=1, n_per_prompt=2)
    assert torch.equal(images, sampler(["red", "blue"], n_per_prompt=2))


def test_a_model_holding_its_clip_is_accepted():
    model = SimpleNamespace(clip=ColourClip())
    images = rerank(ColourSampler(CANDIDATES), model, "red", n_candidates=3)
    assert torch.equal(images[0], solid(CANDIDATES["red"][1]))


def test_clip_scores_are_the_cosines_prompt_major():
    images = torch.stack([solid((1, 0, 0)), solid((0, 1, 0)), solid((0, 0, 1)), solid((1, 1, 0))])
    scores = clip_scores(ColourClip(), images, ["red", "green"])  # 2 images per caption
    assert torch.allclose(scores, torch.tensor([1.0, 0.0, 0.0, 2 ** -0.5]), atol=1e-6)
    with pytest.raises(ValueError, match="cannot be split"):
        clip_scores(ColourClip(), images[:3], ["red", "green"])
    with pytest.raises(ValueError, match=r"\[N, 3, H, W\]"):
        clip_scores(ColourClip(), images[0], ["red"])


@pytest.mark.parametrize("n_candidates", [0, -2, 1.5, True, "3"])
def test_bad_candidate_counts_are_refused(n_candidates):
    with pytest.raises(ValueError, match="n_candidates"):
        rerank(ColourSampler(CANDIDATES), ColourClip(), ["red"], n_candidates=n_candidates)


def test_bad_inputs_are_refused_clearly():
    sampler = ColourSampler(CANDIDATES)
    with pytest.raises(ValueError, match="empty"):
        rerank(sampler, ColourClip(), [], n_candidates=2)
    with pytest.raises(ValueError, match="n_per_prompt"):
        rerank(sampler, ColourClip(), ["red"], n_candidates=2, n_per_prompt=0)
    with pytest.raises(TypeError, match="callable"):
        rerank("not a sampler", ColourClip(), ["red"], n_candidates=2)
    with pytest.raises(TypeError, match="CLIP encoder"):
        rerank(sampler, object(), ["red"], n_candidates=2)
    with pytest.raises(ValueError, match=r"expected \[6, 3, R, R\]"):
        rerank(lambda c, n_per_prompt, seed: torch.zeros(5, 3, 4, 4), ColourClip(), ["red", "blue"], n_candidates=3)
    with pytest.raises(ValueError, match="expected"):
        rerank(lambda c, n_per_prompt, seed: [solid((1, 0, 0))], ColourClip(), ["red"], n_candidates=1)


def test_rerank_works_with_the_shipped_clip2gan():
    from clip2gan import CLIP2GAN

    model = CLIP2GAN.from_pretrained("toyfaces")
    caption = "This person has red hair and is smiling."
    kept, score = rerank(model.generate, model, [caption], n_candidates=3, seed=0, return_scores=True)
    candidates = model.generate([caption], n_per_prompt=3, seed=0)
    all_scores = clip_scores(model.clip, candidates, [caption])
    assert kept.shape == (1, 3, model.resolution, model.resolution)
    assert torch.allclose(score, all_scores.max().unsqueeze(0), atol=1e-5)
    assert torch.allclose(kept[0], candidates[all_scores.argmax()])
