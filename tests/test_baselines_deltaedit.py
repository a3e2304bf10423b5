"""DeltaEdit (clip2gan.baselines.deltaedit) on the tiny random world.

The tiny CLIP2GAN of tiny_editing (16 px, 6 w+ rows of 16, 32-d CLIP) stands in for the toy world:
the training codes are random, not renders, because the formulas do not depend on what the codes
encode, and a step of the 4-layer Delta Mapper then costs a millisecond.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from tiny_editing import tiny_model

from clip2gan.baselines import deltaedit
from clip2gan.baselines.deltaedit import (
    DeltaEditConfig,
    DeltaEditor,
    DeltaEditTrainer,
    DeltaMapper,
    delta_loss,
    pair_within_batch,
    text_delta,
)
from clip2gan.checkpoint import CorruptCheckpoint, save_safetensors


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def _codes(model, n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n random unit features and their codes M(f): a stand-in for encoded renders."""
    f = F.normalize(torch.randn(n, model.clip.embed_dim, generator=torch.Generator().manual_seed(seed)), dim=-1)
    with torch.no_grad():
        return f, model.map(f)


def _config(tmp_path, **kw) -> DeltaEditConfig:
    # 64 codes, batches of 16, 2-layer MLPs: a training run of ~30 steps takes well under a second
    base = dict(out=str(tmp_path / "run"), n_images=64, batch_size=16, steps=30, layers=2, log_every=5, seed=0)
    return DeltaEditConfig(**{**base, **kw})


def _images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_training_pairs_are_the_formula():
    g = torch.Generator().manual_seed(0)
    f = F.normalize(torch.randn(5, 8, generator=g), dim=-1)
    w = torch.randn(5, 3, 4, generator=g)
    f1, df, w1, dw = pair_within_batch(f, w)
    assert torch.equal(f1, f) and torch.equal(w1, w)
    for i in range(5):
        j = (i - 1) % 5  # image i's partner: its neighbour in the (shuffled) batch
        diff = f[j] - f[i]
        torch.testing.assert_close(df[i], diff / diff.norm())
        torch.testing.assert_close(dw[i], w[j] - w[i])
    assert torch.allclose(df.norm(dim=1), torch.ones(5))  # Δf normalised
    same = f[:1].repeat(2, 1)
    _, d0, _, _ = pair_within_batch(same, w[:2])
    assert torch.equal(d0, torch.zeros_like(d0))  # identical images: a zero delta, not NaN
    with pytest.raises(ValueError, match="at least 2"):
        pair_within_batch(f[:1], w[:1])
    with pytest.raises(ValueError, match="same B"):
        pair_within_batch(f, w[:4])


def test_loss_is_the_formula():
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(4, 3, 5, generator=g), torch.randn(4, 3, 5, generator=g)
    loss, parts = delta_loss(pred, target, rec_weight=2.0, cos_weight=0.5)
    mse = ((pred - target) ** 2).mean()
    p, t = pred.reshape(4, -1), target.reshape(4, -1)
    cos = ((p * t).sum(1) / (p.norm(dim=1) * t.norm(dim=1))).mean()
    torch.testing.assert_close(parts["rec"], mse)
    torch.testing.assert_close(parts["cos"], 1 - cos)
    torch.testing.assert_close(loss, 2.0 * mse + 0.5 * (1 - cos))
    _, l1 = delta_loss(pred, target, rec_loss="l1")
    torch.testing.assert_close(l1["rec"], (pred - target).abs().mean())
    with pytest.raises(ValueError, match="rec_loss"):
        delta_loss(pred, target, rec_loss="l3")


def test_mapper_layout_and_shapes(model):
    net = DeltaMapper(32, model.num_ws, model.w_dim, layers=2)
    # tiny G has 6 rows: coarse 0-1 and middle 2-3 run row by row, fine 4-5 flattened
    assert {k: (r.start, r.stop) for k, r in net.groups.items()} == {"coarse": (0, 2), "middle": (2, 4), "fine": (4, 6)}
    assert net.style["coarse"].fcs[0].weight.shape[1] == model.w_dim
    assert net.style["fine"].fcs[0].weight.shape[1] == 2 * model.w_dim
    assert net.condition["middle"].fcs[0].weight.shape[1] == 2 * 32
    f, w = _codes(model, 3)
    out = net(w, f, f)
    assert out.shape == w.shape
    with pytest.raises(ValueError, match="ws must be"):
        net(w[:, :2], f, f)
    with pytest.raises(ValueError, match="deltas must be"):
        net(w, f, f[:2])
    with pytest.raises(ValueError, match="features must be"):
        net(w, f[:, :5], f)


def test_the_test_time_input_is_the_text_delta(model):
    texts = ["a person wearing eyeglasses", "a bald person"]
    got = text_delta(model.clip, texts, "a person")
    t = model.clip.encode_text(texts + ["a person"])
    want = (t[:2] - t[2:]) / (t[:2] - t[2:]).norm(dim=1, keepdim=True)
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="empty"):
        text_delta(model.clip, ["  "], "a person")
    with pytest.raises(ValueError, match="empty"):
        text_delta(model.clip, [], "a person")


def test_the_editor_feeds_the_text_delta(model, monkeypatch):
    net = DeltaMapper(32, model.num_ws, model.w_dim, layers=2)
    seen = {}
    forward = net.forward

    def spy(ws, features, deltas):
        seen.update(ws=ws, features=features, deltas=deltas)
        return forward(ws, features, deltas)

    monkeypatch.setattr(net, "forward", spy)
    editor = DeltaEditor(net, model, neutral="a person")
    x = _images(2)
    texts = ["a bald person", "a person wearing eyeglasses"]
    editor.edit_pairs(x, texts)
    f = model.image_features(x)
    torch.testing.assert_close(seen["features"], f)
    torch.testing.assert_close(seen["ws"], model.map(f))
    torch.testing.assert_close(seen["deltas"], text_delta(model.clip, texts, "a person"))


def test_a_tiny_training_lowers_the_loss(model, tmp_path):
    trainer = DeltaEditTrainer(_config(tmp_path, steps=40), model=model, data=_codes(model), progress=False)
    first = trainer.train_step()["loss"]
    for _ in range(39):
        last = trainer.train_step()["loss"]
    assert last < 0.7 * first, (first, last)


def test_checkpoint_round_trip(model, tmp_path):
    trainer = DeltaEditTrainer(_config(tmp_path), model=model, data=_codes(model), progress=False)
    summary = trainer.fit(command="python -m clip2gan.baselines.deltaedit --out run")
    path = tmp_path / "run" / "delta.safetensors"
    assert summary["delta"] == str(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["command"].startswith("python -m clip2gan.baselines.deltaedit") and meta["steps"] == 30
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 5, 10, 15, 20, 25, 30]
    editor = DeltaEditor.from_checkpoint(tmp_path / "run", model=model)  # the run folder or the file
    for name, value in trainer.net.state_dict().items():
        torch.testing.assert_close(editor.net.state_dict()[name], value)
    x = _images(3)
    texts = ["a bald person"] * 3
    direct = DeltaEditor(trainer.net, model, neutral=meta["neutral"])
    torch.testing.assert_close(editor.edit_pairs(x, texts)[1], direct.edit_pairs(x, texts)[1])


def test_resume_continues_the_run(model, tmp_path):
    data = _codes(model)
    whole = DeltaEditTrainer(_config(tmp_path / "a"), model=model, data=data, progress=False)
    whole.fit()
    first = DeltaEditTrainer(_config(tmp_path / "b", max_steps=12), model=model, data=data, progress=False)
    assert "delta" not in first.fit()  # stopped early: a checkpoint, no export
    with pytest.raises(FileExistsError, match="--resume"):
        DeltaEditTrainer(_config(tmp_path / "b"), model=model, data=data, progress=False).fit()
    second = DeltaEditTrainer(_config(tmp_path / "b"), model=model, data=data, progress=False)
    second.fit(resume=True)
    assert second.step == 30
    for name, value in whole.net.state_dict().items():  # the same batches, the same Adam state: the same weights
        torch.testing.assert_close(second.net.state_dict()[name], value, rtol=0, atol=0)
    other = DeltaEditTrainer(_config(tmp_path / "b", seed=5), model=model, data=data, progress=False)
    with pytest.raises(ValueError, match="seed"):
        other.fit(resume=True)


def test_corrupt_and_missing_checkpoints(model, tmp_path):
    with pytest.raises(FileNotFoundError):
        DeltaEditor.from_checkpoint(tmp_path / "nothing.safetensors", model=model)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CorruptCheckpoint):
        DeltaEditor.from_checkpoint(bad, model=model)
    other = save_safetensors({"x": torch.zeros(2)}, tmp_path / "other.safetensors", {"format": "something"})
    with pytest.raises(ValueError, match="not a DeltaEdit checkpoint"):
        DeltaEditor.from_checkpoint(other, model=model)
    net = DeltaMapper(32, model.num_ws, model.w_dim, layers=2)
    wrong = save_safetensors(net.state_dict(), tmp_path / "wrong.safetensors",
                             {"format": deltaedit.DELTA_FORMAT, "net": {**net.config, "layers": 3}})
    with pytest.raises(CorruptCheckpoint, match="do not match"):
        DeltaEditor.from_checkpoint(wrong, model=model)
    trainer = DeltaEditTrainer(_config(tmp_path, steps=2), model=model, data=_codes(model), progress=False)
    trainer.fit()
    data = (tmp_path / "run" / "delta.safetensors").read_bytes()
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF  # one byte of the last tensor: the file still parses, its checksum does not match
    (tmp_path / "run" / "delta.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(CorruptCheckpoint, match="checksum"):
        DeltaEditor.from_checkpoint(tmp_path / "run", model=model)
    (tmp_path / "run" / "checkpoint.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(CorruptCheckpoint, match="cannot resume"):
        DeltaEditTrainer(_config(tmp_path, steps=2), model=model, data=_codes(model), progress=False).fit(resume=True)


def test_beta_zero_is_the_reconstruction(model):
    net = DeltaMapper(32, model.num_ws, model.w_dim, layers=2)
    editor = DeltaEditor(net, model)
    x = _images(3)
    texts = ["a bald person", "a person wearing a hat", "a bald person"]
    before, after = editor.edit_pairs(x, texts, beta=0.0)
    rec = model.reconstruct(x)
    torch.testing.assert_close(before, rec)
    torch.testing.assert_close(after, rec)
    ws, edited = editor.edit_latents(x, texts, beta=0.5)
    f = model.image_features(x)
    torch.testing.assert_close(edited, ws + 0.5 * editor.directions(f, ws, texts))


def test_editor_errors(model):
    editor = DeltaEditor(DeltaMapper(32, model.num_ws, model.w_dim, layers=2), model)
    x = _images(2)
    with pytest.raises(ValueError, match="2 images but 1 texts"):
        editor.edit_pairs(x, ["a bald person"])
    with pytest.raises(ValueError, match="empty"):
        editor.edit_pairs(x, ["a bald person", ""])
    with pytest.raises(ValueError, match="beta"):
        editor.edit_pairs(x, ["a", "b"], beta=math.inf)
    with pytest.raises(ValueError, match="codes"):
        DeltaEditor(DeltaMapper(32, model.num_ws + 1, model.w_dim, layers=2), model)
    with pytest.raises(ValueError, match="batch_size"):
        DeltaEditConfig(batch_size=1)


def test_command_line(model, tmp_path, monkeypatch):
    # the CLI with the tiny model injected: flags reach the config, the command is recorded, --resume works
    seen = {}

    class Recording(DeltaEditTrainer):
        def __init__(self, config, **kw):
            seen["config"] = config
            super().__init__(config, model=model, data=_codes(model), progress=False)

    monkeypatch.setattr(deltaedit, "DeltaEditTrainer", Recording)
    out = tmp_path / "cli"
    args = ["--out", str(out), "--n-images", "64", "--batch-size", "16", "--steps", "6", "--layers", "2",
            "--max-steps", "3", "--seed", "1"]
    assert deltaedit.main(args) == 0
    assert seen["config"].seed == 1 and not (out / "delta.safetensors").exists()
    assert deltaedit.main(["--out", str(out), "--resume"]) == 0
    assert seen["config"].steps == 6 and seen["config"].max_steps is None
    meta = json.loads((out / "delta.json").read_text())
    assert meta["command"] == f"python -m clip2gan.baselines.deltaedit --out {out} --resume" and meta["steps"] == 6
