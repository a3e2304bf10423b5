"""ClipEncoder: differentiable preprocessing, text validation, offline errors, the profiles' CLIPs."""

from __future__ import annotations

import socket
import time
import warnings

import numpy as np
import open_clip
import pytest
import torch

from clip2gan import clip_encoder, hub
from clip2gan.clip_encoder import (
    ClipEncoder,
    PromptTruncatedWarning,
    check_prompts,
    differentiable_preprocess,
)
from clip2gan.hub import WeightsNotFound
from clip2gan.toy import clip as toyclip

CONTEXT = 12  # a 12-token context: a 10-word prompt already overflows it, no long strings needed


def tiny_clip() -> ClipEncoder:
    """A random open_clip CLIP: 16 px images, patch 4, width 32, 2+1 layers (~1.7 M parameters, almost
    all of them the 49k-token embedding); builds in ~0.1 s and runs a batch in milliseconds."""
    torch.manual_seed(0)
    model = open_clip.CLIP(
        embed_dim=16,
        vision_cfg=dict(image_size=16, patch_size=4, width=32, layers=2, head_width=16),
        text_cfg=dict(context_length=CONTEXT, vocab_size=49408, width=32, heads=2, layers=1),
    )
    return ClipEncoder(model, open_clip.SimpleTokenizer(context_length=CONTEXT), name="tiny")


@pytest.fixture(scope="module")
def enc() -> ClipEncoder:
    return tiny_clip()


# -- images ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(16, 16), (37, 23), (8, 8), (64, 48)])  # equal, odd, smaller, larger than 16 px
def test_encode_image_any_size_unit_norm_and_gradient(enc, size):
    torch.manual_seed(1)
    x = (torch.rand(2, 3, *size) * 2 - 1).requires_grad_(True)
    f = enc.encode_image(x)
    assert f.shape == (2, enc.embed_dim)
    assert torch.allclose(f.norm(dim=-1), torch.ones(2), atol=1e-5)
    (f * torch.randn_like(f)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("bad", [torch.zeros(3, 16, 16), torch.zeros(1, 1, 16, 16), torch.zeros(1, 3, 16, 16, dtype=torch.uint8)])
def test_encode_image_rejects_bad_shapes(enc, bad):
    with pytest.raises((ValueError, TypeError)):
        enc.encode_image(bad)


@pytest.mark.parametrize("h, w, s", [(48, 40, 16), (40, 48, 16), (10, 12, 16), (224, 200, 64)])  # small: < 0.1 s each
def test_preprocess_matches_open_clip_pil_pipeline(h, w, s):
    """Same result as open_clip's own (PIL) eval transform, within one 8-bit level."""
    from open_clip.transform import image_transform
    from PIL import Image

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3)).astype(np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BILINEAR)
    ref = image_transform(s, is_train=False)(img)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 127.5 - 1
    out = differentiable_preprocess(x, s)[0]
    one_level = 1 / 255 / min(0.26130258, 0.26862954, 0.27577711)
    assert out.shape == ref.shape
    assert (out - ref).abs().max() <= 1.1 * one_level
    assert (out - ref).abs().mean() < 0.5 * one_level


def test_frozen_by_default_and_stays_in_eval(enc):
    assert all(not p.requires_grad for p in enc.parameters())
    enc.train()
    assert not enc.model.training
    enc.eval()


def test_image_intermediates_are_feature_maps(enc):
    maps = enc.image_intermediates(torch.zeros(2, 3, 20, 20))
    assert len(maps) == 2 and all(m.shape == (2, 32, 4, 4) for m in maps)  # 16 px / patch 4


# -- text --------------------------------------------------------------------------------------


def test_encode_text_unit_norm(enc):
    f = enc.encode_text(["a smiling person with red hair", "a man wearing eyeglasses"])
    assert f.shape == (2, enc.embed_dim)
    assert torch.allclose(f.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert enc.encode_text("one prompt").shape == (1, enc.embed_dim)


@pytest.mark.parametrize(
    "prompts, match",
    [
        ([], "empty list"),
        ([""], "prompt 0 is empty"),
        (["ok", "   \n"], "prompt 1 is empty"),
        (["ok", 3], "prompt 1 is a int"),
        ([None], "prompt 0 is a NoneType"),
        (("fine", b"bytes"), "prompt 1 is a bytes"),
        (42, "list of strings"),
    ],
)
def test_bad_prompts_raise_clear_errors(enc, prompts, match):
    with pytest.raises(ValueError, match=match):
        enc.encode_text(prompts)
    with pytest.raises(ValueError, match=match):
        check_prompts(prompts)


def test_overlong_prompt_is_truncated_with_warning(enc):
    long = "a person with very long red hair and big round glasses and a blue hat"
    assert enc.count_tokens(long) > CONTEXT
    with pytest.warns(PromptTruncatedWarning, match="prompt 1 has"):
        tokens = enc.tokenize(["short prompt", long])
    eot = enc.tokenizer.eot_token_id
    assert tokens.shape == (2, CONTEXT) and tokens[1, -1] == eot  # cut, and still closed by the end token
    with pytest.warns(PromptTruncatedWarning):
        f = enc.encode_text([long])
    assert torch.isfinite(f).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a prompt that fits must not warn
        enc.encode_text(["short prompt"])


# -- weights -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ViT-B-32-quickgelu", "ViT-B-16-quickgelu"])
def test_missing_openai_weights_offline_raise_weights_not_found(name, tmp_path):
    """Offline (HF_HUB_OFFLINE=1 from conftest) and an empty cache: a clear error before any model is built."""
    with pytest.raises(WeightsNotFound) as info:
        ClipEncoder.from_open_clip(name, "openai", cache_dir=str(tmp_path))
    msg = str(info.value)
    assert name in msg and "HF_HUB_OFFLINE" in msg and "timm/vit_base_patch" in msg and "openaipublic" in msg


def test_ffhq_profile_uses_paper_clip_and_reports_missing_weights(tmp_path):
    with pytest.raises(WeightsNotFound, match="ViT-B-16-quickgelu"):
        ClipEncoder.from_profile("ffhq", cache_dir=str(tmp_path))
    with pytest.raises(WeightsNotFound, match="ViT-B-32-quickgelu"):
        ClipEncoder.from_profile("afhqcat", clip_model="ViT-B-32-quickgelu", cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="unknown profile"):
        ClipEncoder.from_profile("nope")


def test_openai_weights_need_quickgelu_name():
    with pytest.raises(ValueError, match="QuickGELU"):
        ClipEncoder.from_open_clip("ViT-B-16", "openai")


def test_toyfaces_profile_goes_through_toyclip_load(monkeypatch):
    """from_profile('toyfaces') wraps whatever toyclip.load returns; random weights stand in for the shipped ones."""
    # one layer per tower: the packaged architecture with the fewest blocks, built in well under a second
    config = toyclip.model_config(vision_cfg={"layers": 1}, text_cfg={"layers": 1})
    calls = []

    def fake_load(name="toyfaces-clip", device="cpu"):
        calls.append(name)
        return toyclip.create_model(config), toyclip.get_tokenizer(config)

    monkeypatch.setattr(toyclip, "load", fake_load)
    enc = ClipEncoder.from_profile("toyfaces")
    assert calls == ["toyfaces-clip"] and enc.image_size == (32, 32)
    assert enc.context_length == config["text_cfg"]["context_length"]
    assert enc.encode_image(torch.zeros(2, 3, 64, 64)).shape == (2, config["embed_dim"])
    assert enc.encode_text(["a smiling person with red hair"]).shape == (1, config["embed_dim"])
    assert all(not p.requires_grad for p in enc.parameters())


def test_toyfaces_profile_with_shipped_weights():
    try:
        enc = ClipEncoder.from_profile("toyfaces")
    except WeightsNotFound:
        pytest.skip("toyfaces-clip weights are not shipped in data/ yet")
    f = enc.encode_image(torch.zeros(1, 3, 32, 32))
    assert f.shape == (1, enc.embed_dim) and torch.allclose(f.norm(dim=-1), torch.ones(1), atol=1e-5)


def test_without_permission_to_download_the_paper_clip_fails_at_once(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE unset but no CLIP2GAN_DOWNLOAD: nothing reaches the network (the guard in conftest
    would raise if it did); one clear message says how to allow the download."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.perf_counter()
    with pytest.raises(WeightsNotFound, match="CLIP2GAN_DOWNLOAD=1"):
        ClipEncoder.from_open_clip("ViT-B-16-quickgelu", "openai", cache_dir=str(tmp_path))
    assert time.perf_counter() - start < 5


def test_no_network_is_detected_once_not_retried(monkeypatch, tmp_path):
    """Downloads allowed but no network: one connection attempt, then WeightsNotFound in seconds — the
    library's download (which retries for about a minute) is never started."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("CLIP2GAN_DOWNLOAD", "1")
    attempts, downloads = [], []

    def no_route(address, timeout=None):
        attempts.append(address)
        raise OSError("Network is unreachable")

    monkeypatch.setattr(hub.socket, "create_connection", no_route)
    monkeypatch.setattr(clip_encoder.ocp, "download_pretrained", lambda *a, **k: downloads.append(a))
    start = time.perf_counter()
    with pytest.raises(WeightsNotFound, match="no network: huggingface.co"):
        ClipEncoder.from_open_clip("ViT-B-16-quickgelu", "openai", cache_dir=str(tmp_path))
    assert time.perf_counter() - start < 5 and len(attempts) == 1 and downloads == []


def test_reachable_tells_an_open_port_from_a_closed_one():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        assert hub.reachable("127.0.0.1", server.getsockname()[1], timeout=2)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # bound, never listening: connections are refused
        assert not hub.reachable("127.0.0.1", closed, timeout=2)
