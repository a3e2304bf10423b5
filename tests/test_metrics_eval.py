"""Evaluation metrics on constructed cases with known answers: LPIPS diversity/reference, CLIP score,
toy attribute accuracy, editing scores, feature extractors, the edit vocabulary."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clip2gan import hub
from clip2gan.evaluation.attributes import (
    edit_prompts,
    editing_scores,
    prompt_targets,
    text_attribute_accuracy,
    toy_feature_extractor,
)
from clip2gan.evaluation.inception import FIDInceptionV3, inception_feature_extractor, quantise
from clip2gan.evaluation.metrics import clip_score, fid, lpips_diversity, lpips_to_reference
from clip2gan.toy.faces import ATTRIBUTES, AttributeClassifier


def l1(a, b):
    """A stand-in LPIPS with a known value: mean absolute difference per pair, [N]."""
    return (a - b).abs().flatten(1).mean(dim=1)


def const(*values, size=4):
    return torch.stack([torch.full((3, size, size), float(v)) for v in values])


# ------------------------------------------------------------------------------------------------
# LPIPS


def test_lpips_diversity_known_values():
    groups = [const(0.3, 0.3, 0.3), const(0.0, 0.5, 1.0)]  # pairwise: 0,0,0 and 0.5, 1.0, 0.5
    assert lpips_diversity(groups, l1, progress=False) == pytest.approx((0 + 2 / 3) / 2)
    assert lpips_diversity(groups, l1, progress=False, per_prompt=True) == pytest.approx([0.0, 2 / 3])
    stacked = torch.stack([const(0.0, 1.0), const(0.0, -1.0)])  # [P=2, n=2, 3, 4, 4]
    assert lpips_diversity(stacked, l1, progress=False) == pytest.approx(1.0)


def test_lpips_diversity_batches_pairs_and_accepts_other_output_shapes():
    x = [torch.rand(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))]
    ref = lpips_diversity(x, l1, progress=False)
    assert lpips_diversity(x, l1, batch_size=4, progress=False) == pytest.approx(ref)  # 15 pairs in 4 batches
    assert lpips_diversity(x, lambda a, b: l1(a, b)[:, None, None, None], progress=False) == pytest.approx(ref)  # lpips.LPIPS
    assert lpips_diversity(x, lambda a, b: l1(a, b).mean(), progress=False) == pytest.approx(ref)  # scalar-only: per pair


def test_lpips_diversity_uses_lpipsloss_reduction_none():
    from clip2gan.losses import LPIPSLoss

    lp = LPIPSLoss("alex-random")  # random AlexNet: offline; the metric plumbing is what is tested
    same = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).expand(3, -1, -1, -1) * 2 - 1
    other = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1  # 64 px: AlexNet's smallest sane input
    assert lpips_diversity([same], lp, progress=False) == pytest.approx(0.0, abs=1e-6)
    assert lpips_diversity([other], lp, progress=False) > 0


def test_lpips_diversity_errors():
    with pytest.raises(ValueError, match="at least 2"):
        lpips_diversity([const(0.0)], l1, progress=False)
    with pytest.raises(ValueError, match="empty"):
        lpips_diversity([], l1, progress=False)
    with pytest.raises(ValueError, match="\\[P, n, 3, H, W\\]"):
        lpips_diversity(torch.zeros(2, 3, 4, 4), l1, progress=False)


def test_lpips_to_reference():
    real = torch.rand(5, 3, 4, 4) * 0.5
    assert lpips_to_reference(real, real, l1, progress=False) == 0.0
    assert lpips_to_reference(real + 0.25, real, l1, batch_size=2, progress=False) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="paired"):
        lpips_to_reference(real[:4], real, l1, progress=False)


# ------------------------------------------------------------------------------------------------
# CLIP score


class StubClip(torch.nn.Module):
    """Image feature: the unit vector along the image's mean colour channel values; text: fixed per prompt."""

    TEXT = {"red": [1.0, 0.0, 0.0], "green": [0.0, 1.0, 0.0], "not red": [-1.0, 0.0, 0.0]}

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def encode_image(self, x):
        return torch.nn.functional.normalize(x.mean(dim=(2, 3)) + 1, dim=-1)

    def encode_text(self, prompts):
        return torch.tensor([self.TEXT[p] for p in prompts])


def _colour(r, g, b):
    return torch.tensor([r, g, b], dtype=torch.float32).view(1, 3, 1, 1).expand(1, 3, 4, 4) * 2 - 1  # [0, 1] colour → [-1, 1]


def test_clip_score_known_cosines():
    red, green, yellow = _colour(1, 0, 0), _colour(0, 1, 0), _colour(1, 1, 0)
    clip = StubClip()
    assert clip_score(clip, torch.cat([red, green]), ["red", "green"], progress=False) == pytest.approx(100.0)
    assert clip_score(clip, yellow, "red", progress=False) == pytest.approx(100 / np.sqrt(2), rel=1e-5)
    assert clip_score(clip, red, ["not red"], progress=False) == 0.0  # negative cosines count as 0
    # prompt-major: 2 prompts x 2 images
    both = torch.cat([red, yellow, green, green])
    assert clip_score(clip, both, ["red", "green"], batch_size=3, progress=False) == pytest.approx(
        (100 + 100 / np.sqrt(2) + 100 + 100) / 4, rel=1e-5)
    with pytest.raises(ValueError, match="cannot be split"):
        clip_score(clip, torch.cat([red, red, red]), ["red", "green"], progress=False)


def test_clip_score_with_a_clip2gan_model_uses_its_clip():
    from tiny_editing import tiny_model

    model = tiny_model()
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    score = clip_score(model, x, ["a person", "a hat"], progress=False)
    assert score == pytest.approx(clip_score(model.clip, x, ["a person", "a hat"], progress=False))
    assert 0.0 <= score <= 100.0


# ------------------------------------------------------------------------------------------------
# toy attribute metrics


def face(**kw):
    base = {"hair_color": "brown", "hair_length": "short", "bangs": "no", "expression": "neutral", "eyeglasses": "no",
            "beard": "no", "skin": "tan", "hat": "no", "lipstick": "no", "background": "white"}
    base.update(kw)
    if base["hair_length"] == "bald":
        base["hair_color"] = None
    return base


class StubClassifier:
    """Reads image i as the i-th of the given attribute dicts (a classifier with a known answer)."""

    resolution = 32

    def __init__(self, reads):
        self.reads = reads

    def predict(self, images):
        assert images.shape[-1] == 32
        return [self.reads[int(i)] for i in images[:, 0, 0, 0].round()]


def test_text_attribute_accuracy_known_fraction():
    preds = [face(hat="yes", eyeglasses="no"), face(hair_color="red", smiling="x")]
    mentioned = [{"hat": "yes", "eyeglasses": "yes"}, {"hair_color": "red", "skin": "tan", "beard": None}]
    assert text_attribute_accuracy(None, preds, mentioned) == pytest.approx(3 / 4)
    d = text_attribute_accuracy(None, preds, mentioned, details=True)
    assert d["per_attribute"] == {"hat": 1.0, "eyeglasses": 0.0, "hair_color": 1.0, "skin": 1.0} and d["n_pairs"] == 4


def test_text_attribute_accuracy_skips_hair_colour_of_faces_read_bald():
    preds = [face(hair_length="bald"), face(hair_color="red")]
    mentioned = [{"hair_color": "red", "hat": "no"}, {"hair_color": "red"}]
    d = text_attribute_accuracy(None, preds, mentioned, details=True)
    assert d["accuracy"] == 1.0 and d["n_skipped"] == 1 and d["n_pairs"] == 2
    assert text_attribute_accuracy(None, preds, mentioned, bald_hair_color="miss") == pytest.approx(2 / 3)


def test_text_attribute_accuracy_with_a_classifier_on_images():
    reads = [face(hat="yes"), face(hat="no")]
    images = torch.stack([torch.full((3, 16, 16), float(i)) for i in range(2)])  # 16 px: resized to the classifier's 32
    assert text_attribute_accuracy(StubClassifier(reads), images, [{"hat": "yes"}, {"hat": "yes"}]) == 0.5
    with pytest.raises(ValueError, match="2 images but 1"):
        text_attribute_accuracy(StubClassifier(reads), images, [{"hat": "yes"}])
    with pytest.raises(ValueError, match="no \\(caption, attribute\\) pairs"):
        text_attribute_accuracy(None, reads, [{}, {}])


def test_editing_scores_known_values():
    before = [face(), face(), face(beard="yes")]
    after = [face(eyeglasses="yes"),                      # hit, all 9 others kept
             face(eyeglasses="yes", hat="yes"),           # hit, 8 of 9 kept
             face(beard="no")]                            # miss, beard changed: 8 of 9 kept
    acc, keep = editing_scores(None, before, after, "eyeglasses", "yes")
    assert acc == pytest.approx(2 / 3) and keep == pytest.approx(25 / 27)
    d = editing_scores(None, before, after, "eyeglasses", "yes", details=True)
    assert d["per_attribute_preservation"]["hat"] == pytest.approx(2 / 3) and "eyeglasses" not in d["per_attribute_preservation"]


def test_editing_scores_skip_what_the_bald_constraint_ties_to_the_target():
    before = [face(hair_color="red", bangs="yes")]
    after = [face(hair_length="bald", bangs="no")]  # going bald removes colour and bangs: not a preservation failure
    assert editing_scores(None, before, after, "hair_length", "bald") == (1.0, 1.0)
    # per-image targets, and a colour edit that left the face bald: a miss
    acc, _ = editing_scores(None, [face(), face(hair_length="bald")], [face(hair_color="red"), face(hair_length="bald")],
                            ["hair_color", "hair_color"], ["red", "red"])
    assert acc == 0.5
    with pytest.raises(ValueError, match="unknown target"):
        editing_scores(None, before, after, "hair", "bald")
    with pytest.raises(ValueError, match="one target per image"):
        editing_scores(None, before, after, ["hat", "hat"], "yes")


# ------------------------------------------------------------------------------------------------
# feature extractors


def test_toy_feature_extractor_resizes_and_feeds_fid():
    torch.manual_seed(0)
    clf = AttributeClassifier(widths=(8, 8, 8, 8), feature_dim=16)  # 8 channels: shapes only, an untrained net
    extract = toy_feature_extractor(clf)
    x = torch.rand(40, 3, 16, 16) * 2 - 1
    assert extract(x).shape == (40, 16)
    assert fid(x, x, extract, progress=False) == pytest.approx(0.0, abs=1e-6)


def test_inception_is_a_clear_weights_not_found_offline(monkeypatch, tmp_path):
    monkeypatch.delenv("CLIP2GAN_INCEPTION_FID", raising=False)
    monkeypatch.delenv("CLIP2GAN_DOWNLOAD", raising=False)
    monkeypatch.setenv("CLIP2GAN_HOME", str(tmp_path))
    if (hub.DATA_DIR / hub.ARTIFACTS["inception-fid"].filename).is_file():
        pytest.skip("the Inception FID weights are present in data/")
    with pytest.raises(hub.WeightsNotFound, match="CLIP2GAN_INCEPTION_FID"):
        inception_feature_extractor()


def test_inception_has_the_fid_weights_layout_and_loads_strictly(monkeypatch, tmp_path):
    from torchvision.models import inception as tv

    net = FIDInceptionV3()
    # pytorch-fid's pt_inception-2015-12-05 file holds torchvision's Inception3(num_classes=1008, aux_logits=False) names
    reference = tv.Inception3(num_classes=1008, aux_logits=False, init_weights=False).state_dict()
    assert {k: tuple(v.shape) for k, v in net.state_dict().items()} == {k: tuple(v.shape) for k, v in reference.items()}
    path = tmp_path / "pt_inception.pth"
    torch.save(net.state_dict(), path)
    monkeypatch.setenv("CLIP2GAN_INCEPTION_FID", str(path))
    extract = inception_feature_extractor()
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1  # 2 images: resized to 299 anyway
    f = extract(x)
    assert f.shape == (2, 2048) and torch.allclose(f, net(x), atol=1e-5)


def test_inception_blocks_pool_like_tensorflow():
    # the network is torch-fidelity's: its blocks carry the TF graph's pooling
    from torch_fidelity.feature_extractor_inceptionv3 import InceptionA, InceptionE_2

    torch.manual_seed(0)
    x = torch.rand(1, 8, 5, 5)
    a = InceptionA(8, pool_features=4).eval()
    tf_pool = torch.nn.functional.avg_pool2d(x, 3, 1, 1, count_include_pad=False)  # padding not averaged in
    assert torch.allclose(a(x)[:, -4:], a.branch_pool(tf_pool), atol=1e-6)
    e = InceptionE_2(8).eval()
    assert torch.allclose(e(x)[:, -192:], e.branch_pool(torch.nn.functional.max_pool2d(x, 3, 1, 1)), atol=1e-6)


def test_inception_takes_images_in_minus_one_one_as_uint8():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.999, 1.0, 2.0]).view(1, 1, 1, 6).expand(1, 3, 1, 6)
    assert quantise(x)[0, 0, 0].tolist() == [0, 64, 128, 255, 255, 255]  # (x + 1) · 127.5, rounded; clamped to [-1, 1]
    net = FIDInceptionV3()
    y = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert torch.equal(net(y), net(quantise(y).float() / 127.5 - 1))  # what the network sees is the uint8 image


def test_every_edit_phrase_reads_back_as_its_target():
    vocab = edit_prompts()
    assert len(vocab) == 2 * sum(len(v) for v in ATTRIBUTES.values())  # two phrasings per value
    for text, attr, value in vocab:
        assert prompt_targets(text) == (attr, value), text
    assert {t for t, _, _ in edit_prompts("short")} >= {"wearing eyeglasses", "smiling", "bald", "red hair"}
    assert prompt_targets("wearing eyeglasses") == ("eyeglasses", "yes")
    assert prompt_targets("a person wearing eyeglasses") == ("eyeglasses", "yes")


@pytest.mark.parametrize("text, match", [("a person", "no toy attribute"), ("red hair and a hat", "2 attributes"),
                                         ("", "non-empty")])
def test_prompt_targets_errors(text, match):
    with pytest.raises(ValueError, match=match):
        prompt_targets(text)


# ------------------------------------------------------------------------------------------------
# with the shipped toy classifier (skipped while it is absent)


def test_shipped_classifier_reads_the_captions_of_real_renders():
    try:
        clf = AttributeClassifier.from_pretrained()
    except hub.WeightsNotFound:
        pytest.skip("data/toyfaces-classifier.safetensors is not shipped yet")
    from clip2gan.toy.faces import ToyFaces, caption_mentions

    items = [ToyFaces(64, seed=123)[i] for i in range(64)]  # 64 renders: a few seconds on one core
    images = torch.stack([it["image"] for it in items])
    mentioned = [caption_mentions(it["caption"]) for it in items]
    assert text_attribute_accuracy(clf, images, mentioned) >= 0.95
    acc, keep = editing_scores(clf, images, images, "hat", [it["attributes"]["hat"] for it in items])
    assert acc >= 0.95 and keep == 1.0
