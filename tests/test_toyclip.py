"""The toy world's small CLIP (clip2gan.toy.clip): registration, training, checkpoints, shipped weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from clip2gan.checkpoint import CorruptCheckpoint
from clip2gan.hub import WeightsNotFound
from clip2gan.toy import clip as toyclip
from clip2gan.toy.faces import ATTRIBUTES, caption_mentions

# Tiny architecture: 16 px renders, one 32-wide layer per tower, so a training step takes ~20 ms and
# the whole file stays within seconds; the 49,408-token vocabulary is kept (open_clip's tokenizer).
TINY = toyclip.model_config(
    embed_dim=32,
    vision_cfg={"image_size": 16, "patch_size": 8, "width": 32, "head_width": 16, "layers": 1},
    text_cfg={"width": 32, "heads": 2, "layers": 1},
)


def tiny_train(tmp_path, steps, name="run", **kw):
    kw = {"batch_size": 16, "lr": 3e-3, "seed": 0, "warmup": 2, "progress": False, "half": False, **kw}
    return toyclip.train(tmp_path / f"{name}.safetensors", steps=steps, run_dir=tmp_path / name, config=TINY,
                         log=lambda s: None, **kw)


def test_register_create_model_and_tokenizer():
    import open_clip
    from open_clip.model import CLIP

    toyclip.register()
    toyclip.register()  # idempotent
    assert open_clip.list_models().count("toyfaces-clip") == 1
    model = open_clip.create_model("toyfaces-clip")
    tokenizer = open_clip.get_tokenizer("toyfaces-clip")
    assert type(model) is CLIP
    cfg = toyclip.model_config()
    assert model.visual.preprocess_cfg["size"] in (32, (32, 32))
    assert tuple(model.visual.preprocess_cfg["mean"]) == toyclip.PREPROCESS_CFG["mean"]
    assert tokenizer.context_length == cfg["text_cfg"]["context_length"] == model.context_length
    n_params = sum(p.numel() for p in model.parameters())
    assert 2 * n_params < 20e6, "fp16 weights must stay under the 20 MB per-file limit"
    with torch.no_grad():
        img = model.encode_image(torch.zeros(2, 3, 32, 32))
        txt = model.encode_text(tokenizer(["a person with red hair", "a bald person"]))
    assert img.shape == txt.shape == (2, cfg["embed_dim"])


def test_trimmed_text_encoding_equals_open_clip():
    model = toyclip.create_model(TINY).eval()
    tokens = toyclip.get_tokenizer(TINY)(toyclip.make_batch(0, 24, seed=3, resolution=16)[1])
    with torch.no_grad():
        ref = model.encode_text(tokens)
        for buckets in (1, 4):
            torch.testing.assert_close(toyclip.encode_text_trimmed(model, tokens, buckets=buckets), ref,
                                       rtol=1e-5, atol=1e-5)


def test_make_batch_is_deterministic_with_minimal_pairs():
    images, texts, attrs = toyclip.make_batch(5, 12, seed=1, hard_fraction=0.5, resolution=16)
    images2, texts2, _ = toyclip.make_batch(5, 12, seed=1, hard_fraction=0.5, resolution=16)
    assert images.shape == (12, 3, 16, 16) and torch.equal(images, images2) and texts == texts2
    assert not torch.equal(images, toyclip.make_batch(6, 12, seed=1, resolution=16)[0])
    for i in range(0, 6, 2):  # 3 minimal pairs, then 6 independent faces
        a, b = attrs[i], attrs[i + 1]
        changed = [k for k in ATTRIBUTES if a[k] != b[k]]
        flipped = [k for k in changed if k not in ("hair_color", "bangs") or "hair_length" not in changed]
        assert len(flipped) == 1, (a, b)
        name = flipped[0]
        assert caption_mentions(texts[i]).get(name) == a[name] or a[name] is None
        assert caption_mentions(texts[i + 1]).get(name) == b[name] or b[name] is None


def test_flip_attribute_keeps_constraints():
    rng = np.random.default_rng(0)
    bald = {"hair_color": None, "hair_length": "bald", "bangs": "no", "expression": "neutral", "eyeglasses": "no",
            "beard": "no", "skin": "tan", "hat": "no", "lipstick": "no", "background": "blue"}
    haired = toyclip.flip_attribute(bald, "hair_length", rng)
    assert haired["hair_length"] != "bald" and haired["hair_color"] in ATTRIBUTES["hair_color"]
    assert toyclip.flip_attribute(haired, "hair_length", rng)["hair_length"] != haired["hair_length"]
    with pytest.raises(ValueError):
        toyclip.flip_attribute(bald, "hair_color", rng)


def test_tiny_model_trains_and_loss_falls(tmp_path):
    # batch 32 of independent pairs: chance level is log(32) = 3.47; 50 steps reach ~3.0
    result = tiny_train(tmp_path, steps=50, batch_size=32, warmup=5, hard_fraction=0.0, weight_decay=0.0,
                        aux_weight=0.0)  # the contrastive loss alone, so its chance level applies
    losses = result["losses"]
    assert len(losses) == 50 and result["step"] == 50
    assert np.mean(losses[-5:]) < min(np.mean(losses[:5]) - 0.5, np.log(32) - 0.2), losses
    assert (tmp_path / "run.safetensors").is_file() and (tmp_path / "run.json").is_file()
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["model_cfg"] == TINY and meta["training"]["steps"] == 50


def test_save_load_round_trip_gives_identical_embeddings(tmp_path):
    torch.manual_seed(0)
    model = toyclip.create_model(TINY).eval()
    images = toyclip.make_batch(0, 8, seed=2, resolution=16)[0]
    texts = ["a person with red hair", "a bald person wearing a hat"]
    tokenizer = toyclip.get_tokenizer(TINY)
    ref_img, ref_txt = toyclip.encode_images(model, images), toyclip.encode_texts(model, tokenizer, texts)

    path = toyclip.save(model, tmp_path / "full.safetensors", TINY, half=False)
    loaded, tokenizer2 = toyclip.load(path)
    assert not loaded.training
    assert torch.equal(toyclip.encode_images(loaded, images), ref_img)
    assert torch.equal(toyclip.encode_texts(loaded, tokenizer2, texts), ref_txt)
    assert loaded.visual.preprocess_cfg["mean"] == toyclip.PREPROCESS_CFG["mean"]

    half, _ = toyclip.load(toyclip.save(model, tmp_path / "half.safetensors", TINY, half=True))
    torch.testing.assert_close(toyclip.encode_images(half, images), ref_img, atol=5e-3, rtol=0)


def test_resume_continues_from_the_saved_step_exactly(tmp_path):
    # with the auxiliary attribute heads on, so that their weights and moments are resumed too
    straight = tiny_train(tmp_path, steps=6, name="straight", aux_weight=0.5)
    first = tiny_train(tmp_path, steps=6, name="resumed", aux_weight=0.5, max_seconds=0)  # stops after step 1
    assert first["step"] == 1 and first["out"] is None
    second = tiny_train(tmp_path, steps=6, name="resumed", aux_weight=0.5)
    assert second["step"] == 6 and len(second["losses"]) == 5
    assert second["losses"] == straight["losses"][1:]
    a, _ = toyclip.load(tmp_path / "straight.safetensors")
    b, _ = toyclip.load(tmp_path / "resumed.safetensors")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    with pytest.raises(ValueError, match="other settings"):
        tiny_train(tmp_path, steps=6, name="resumed", aux_weight=0.5, lr=1e-2)


def test_load_errors_are_clear(tmp_path):
    with pytest.raises(WeightsNotFound):
        toyclip.load(tmp_path / "missing.safetensors")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x00" * 100)
    with pytest.raises(CorruptCheckpoint):
        toyclip.load(broken)


def test_command_line_eval(tmp_path, capsys):
    model = toyclip.create_model(TINY)
    path = toyclip.save(model, tmp_path / "cli.safetensors", TINY)
    assert toyclip.main(["eval", "--weights", str(path), "--n", "100", "--json", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    assert "zero-shot" in out and "top-1" in out
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert set(metrics["zero_shot"]) == set(ATTRIBUTES) and metrics["retrieval_groups"] == 1
    assert toyclip.main([]) == 0 and toyclip.main(["nope"]) == 2


def test_shipped_weights_zero_shot_and_manifest():
    """The shipped CLIP on 200 fresh renders (another seed than the manifest's 1,000): zero-shot
    accuracy >= 85% for every attribute (the toy CLIP's bar is 90% on 1,000 renders; 85% leaves room for
    200-render noise), and the accuracies recorded in data/MANIFEST.json are reproduced within 4
    binomial standard errors, with a `bar_met` flag that agrees with the recorded figures."""
    import math

    from clip2gan.hub import read_manifest

    try:
        model, tokenizer = toyclip.load("toyfaces-clip")
    except WeightsNotFound:
        pytest.skip("data/toyfaces-clip.safetensors is absent: train it with the command in data/MANIFEST.json")
    metrics = toyclip.evaluate(model, tokenizer, n=200, seed=20_240_601)
    low = {k: round(v, 3) for k, v in metrics["zero_shot"].items() if v < 0.85}
    assert not low, f"zero-shot below 85% on 200 fresh renders: {low}"
    assert metrics["retrieval_top1"] >= 0.4, metrics["retrieval_top1"]

    entry = read_manifest()["files"]["toyfaces-clip.safetensors"]
    recorded = entry["metrics"]
    for attr, p in recorded["zero_shot"].items():
        tolerance = 4 * math.sqrt(max(p * (1 - p), 0.01) / 200)
        assert abs(metrics["zero_shot"][attr] - p) <= tolerance, (attr, metrics["zero_shot"][attr], p)
    bar = recorded["zero_shot_min"] >= 0.9 and recorded["retrieval_top1"] >= 0.5
    assert entry.get("bar_met", bar) == bar
