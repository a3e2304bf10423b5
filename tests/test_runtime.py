"""runtime: device choice; the Colab defaults (clip2gan.colab)."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from clip2gan import colab, runtime


def test_pick_device():
    assert runtime.pick_device("cpu") == torch.device("cpu")
    assert runtime.pick_device("auto").type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA"):
            runtime.pick_device("cuda")


def test_colab_defaults(monkeypatch):
    assert colab.colab_defaults("toyfaces", "auto") == ("toyfaces", "auto")  # not Colab: unchanged
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("CLIP2GAN_DOWNLOAD", "1")
    assert colab.colab_defaults("toyfaces", "auto") == ("ffhq", "cuda")
    assert colab.colab_defaults("afhqcat", "cpu") == ("afhqcat", "cpu")  # explicit choices stay
    # notebooks 05-08 need a paper-profile M that no download provides: GPU yes, profile unchanged
    assert colab.colab_defaults("toyfaces", "auto", paper_profile=False) == ("toyfaces", "cuda")
    monkeypatch.delenv("CLIP2GAN_DOWNLOAD")
    assert colab.colab_defaults("toyfaces", "auto") == ("toyfaces", "cuda")  # no downloads: toy world on GPU
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert colab.colab_defaults("toyfaces", "auto") == ("toyfaces", "auto")


def test_seed_everything_repeats():
    g1 = runtime.seed_everything(3)
    a = torch.randn(3, generator=g1)
    g2 = runtime.seed_everything(3)
    assert torch.equal(a, torch.randn(3, generator=g2))
