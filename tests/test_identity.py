"""Identity networks: the IR-SE50 key layout of model_ir_se50.pth, strict loading, crops, profiles."""

from __future__ import annotations

import pickle

import pytest
import torch

from clip2gan.hub import WeightsNotFound
from clip2gan.identity import (
    IR_SE50_STAGES,
    IRSE50,
    ArcFaceIdentity,
    ToyIdentity,
    face_crop,
    identity_net_for,
    load_arcface,
)
from clip2gan.toy.nets import ToyIdentityNet


@pytest.fixture(scope="module")
def irse50() -> IRSE50:
    """The real architecture (43.8 M parameters, ~0.3 s to build): no smaller model has the checkpoint's layout."""
    torch.manual_seed(0)
    net = IRSE50()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so a bad load would change the output
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def test_irse50_key_layout_matches_model_ir_se50_pth(irse50):
    """Names and shapes of TreB1eN/InsightFace_Pytorch's IR-SE50 (as loaded by pSp/e4e)."""
    sd = irse50.state_dict()
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    expected = {
        "input_layer.0.weight": (64, 3, 3, 3),
        "input_layer.1.running_var": (64,),
        "input_layer.2.weight": (64,),  # PReLU
        "body.0.res_layer.0.weight": (64,),  # first BN of the first unit
        "body.0.res_layer.1.weight": (64, 64, 3, 3),
        "body.0.res_layer.2.weight": (64,),
        "body.0.res_layer.3.weight": (64, 64, 3, 3),
        "body.0.res_layer.5.fc1.weight": (4, 64, 1, 1),  # SE, reduction 16
        "body.0.res_layer.5.fc2.weight": (64, 4, 1, 1),
        "body.3.shortcut_layer.0.weight": (128, 64, 1, 1),  # first unit of stage 2: projection shortcut
        "body.3.shortcut_layer.1.running_mean": (128,),
        "body.7.shortcut_layer.0.weight": (256, 128, 1, 1),
        "body.21.shortcut_layer.0.weight": (512, 256, 1, 1),
        "body.23.res_layer.4.bias": (512,),
        "body.23.res_layer.5.fc1.weight": (32, 512, 1, 1),
        "output_layer.0.weight": (512,),
        "output_layer.3.weight": (512, 512 * 7 * 7),
        "output_layer.3.bias": (512,),
        "output_layer.4.weight": (512,),  # BatchNorm1d with affine parameters
        "output_layer.4.running_var": (512,),
    }
    for key, shape in expected.items():
        assert shapes.get(key) == shape, key
    n_units = sum(n for _, _, n in IR_SE50_STAGES)
    assert n_units == 24 and len(irse50.body) == 24
    assert not any(k.startswith("body.0.shortcut_layer") for k in sd)  # width kept: MaxPool2d(1, 2), no weights
    assert not any(k.startswith(("output_layer.1", "output_layer.2")) for k in sd)  # Dropout, Flatten
    assert sum(p.numel() for p in irse50.parameters()) == 43_797_696
    # input layer 6 tensors, 24 units × 13, 3 projection shortcuts × 5, output layer 10
    assert sum(not k.endswith("num_batches_tracked") for k in sd) == 6 + 24 * 13 + 3 * 5 + 10 == 343


def test_irse50_embeds_112px_faces(irse50):
    y = irse50(torch.zeros(2, 3, 112, 112))
    assert y.shape == (2, 512) and torch.allclose(y.norm(dim=-1), torch.ones(2), atol=1e-5)
    with pytest.raises(ValueError, match="112"):
        irse50(torch.zeros(1, 3, 128, 128))


def test_strict_round_trip_through_weights_only_file(irse50, tmp_path):
    """An old-style checkpoint (DataParallel 'module.' prefix, no num_batches_tracked) loads strictly."""
    sd = {("module." + k): v.clone() for k, v in irse50.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "model_ir_se50.pth"
    torch.save(sd, path)
    loaded = load_arcface(str(path))
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    assert torch.allclose(loaded(x), ArcFaceIdentity(irse50)(x), atol=1e-5)
    assert all(not p.requires_grad for p in loaded.parameters())


def test_state_dict_with_missing_or_unexpected_keys_fails_strictly(irse50, tmp_path):
    # a small file (two tensors) is enough: strict loading lists what is missing and what is unexpected
    sd = {"input_layer.0.weight": irse50.input_layer[0].weight.detach(), "head.weight": torch.zeros(3)}
    torch.save(sd, tmp_path / "bad.pth")
    with pytest.raises(RuntimeError, match=r"(?s)Missing key.*output_layer\.3\.bias.*Unexpected key.*head\.weight"):
        load_arcface(str(tmp_path / "bad.pth"))


class _Evil:
    def __reduce__(self):
        return (print, ("code from a checkpoint ran",))


def test_loader_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"x": _Evil()}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_arcface(str(path))


@pytest.mark.parametrize("size", [256, 1024, 64])  # pSp's size, FFHQ's full size, and a small generator
def test_face_crop(size):
    x = torch.rand(1, 3, size, size)
    out = face_crop(x)
    assert out.shape == (1, 3, 112, 112)
    if size == 256:  # exactly pSp: crop [35:223, 32:220], then adaptive average pooling to 112
        ref = torch.nn.functional.adaptive_avg_pool2d(x[:, :, 35:223, 32:220], (112, 112))
        assert torch.allclose(out, ref)


def test_identity_net_for_profiles(monkeypatch):
    for p in ("afhqcat", "afhqdog", "lsunchurch"):
        assert identity_net_for(p) is None  # the paper drops L_id for non-face worlds
    with pytest.raises(WeightsNotFound, match="model_ir_se50.pth"):
        identity_net_for("ffhq")  # isolated cache (conftest): the file is not there
    with pytest.raises(ValueError, match="unknown profile"):
        identity_net_for("celeba")
    import clip2gan.identity as identity

    calls = []
    monkeypatch.setattr(identity, "load_arcface", lambda name, device="cpu": calls.append(name) or "arcface")
    assert identity_net_for("ffhq") == "arcface" and calls == ["arcface-ir-se50"]


def test_toy_identity_adapter_resizes_and_freezes():
    torch.manual_seed(0)
    wrapped = ToyIdentity(ToyIdentityNet(widths=(8, 8, 8, 8), feature_dim=16, embed_dim=8))  # 8 channels: instant
    wrapped.train()
    assert not wrapped.net.training and all(not p.requires_grad for p in wrapped.parameters())
    for size in (32, 64, 16):
        e = wrapped(torch.rand(2, 3, size, size) * 2 - 1)
        assert e.shape == (2, 8)
    assert wrapped.embed_dim == 8


def test_toyfaces_identity_from_shipped_weights():
    try:
        net = identity_net_for("toyfaces")
    except (WeightsNotFound, NotImplementedError):
        pytest.skip("toyfaces-identity weights are not shipped in data/ yet")
    assert net(torch.zeros(1, 3, 32, 32)).shape[0] == 1
