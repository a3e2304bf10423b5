"""train: steps, exact resume, kill -9 safety, robust image folders, torchrun DDP (gloo, 2 processes).

All runs use the tiny random world of `tiny_world.py` (16 px, 32-d CLIP): a step takes milliseconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_world import RES, tiny_clip, tiny_generator, write_tiny_world

from clip2gan.checkpoint import load_state
from clip2gan.losses import LPIPSLoss
from clip2gan.model import CLIP2GAN, load_mapping
from clip2gan.train import ImageFolderDataset, ToyImages, TrainConfig, Trainer, discriminator_like

ROOT = Path(__file__).resolve().parent.parent


def _world():
    clip, G = tiny_clip(), tiny_generator()
    return {"clip": clip, "G": G, "D": discriminator_like(G), "identity": None,
            "lpips": LPIPSLoss("clip", clip_encoder=clip), "world": {"profile": "toyfaces", "clip": "tiny"}}


def _config(tmp_path, **kw) -> TrainConfig:
    # batch 4, 32 images: 8 steps per epoch — enough to cross an epoch boundary in a test
    base = dict(out=str(tmp_path / "run"), epochs=2, epoch_size=32, batch_size=4, layers=4, hidden_dim=32,
                identity=False, device="cpu", sample_every=0, log_every=1, ckpt_minutes=1e9, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _trainer(tmp_path, **kw) -> Trainer:
    config = _config(tmp_path, **kw)
    return Trainer(config, world=_world(), dataset=ToyImages(config.epoch_size, config.seed, RES), progress=False)


def test_steps_train_M_and_D_only(tmp_path):
    t = _trainer(tmp_path, max_steps=3, sample_every=2)
    G0 = {k: v.clone() for k, v in t.G.state_dict().items()}
    clip0 = {k: v.clone() for k, v in t.clip.state_dict().items()}
    M0 = {k: v.clone() for k, v in t.M.state_dict().items()}
    summary = t.fit()
    assert summary["steps"] == 3
    assert all(torch.equal(G0[k], v) for k, v in t.G.state_dict().items())
    assert all(torch.equal(clip0[k], v) for k, v in t.clip.state_dict().items())
    assert any(not torch.equal(M0[k], v) for k, v in t.M.state_dict().items() if k != "w_avg")
    assert all(p.grad is None for p in t.G.parameters()) and all(p.grad is None for p in t.clip.parameters())
    rows = [line for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(k in rows[-1] for k in ('"rec"', '"lpips"', '"adv"', '"div"', '"loss_D"'))
    assert (tmp_path / "run" / "samples" / "step-000002.png").exists()
    M, cfg = load_mapping(summary["mapping"])
    assert torch.equal(M.state_dict()["fc0.weight"], t.M.state_dict()["fc0.weight"])
    assert len(cfg["feature_means"]["image"]) == 32
    # the feature bank: the CLIP image features of the run's training images, stored with M
    from clip2gan.modality_gap import load_feature_bank

    bank = load_feature_bank(summary["mapping"])
    with torch.no_grad():
        expected = t.clip.encode_image(torch.stack([t.dataset[i]["image"] for i in range(32)])).float()
    assert bank.shape == (32, 32) and torch.allclose(bank, expected, atol=2e-3)  # stored as float16
    assert cfg["text_correction"] == "nearest" and cfg["edit_mode"] == "neighbours"


def test_lr_schedule_is_linear_after_half():
    from clip2gan.train import _lr_factor

    assert [_lr_factor(s, 10) for s in (0, 4, 5, 6, 9, 10)] == pytest.approx([1, 1, 1, 0.8, 0.2, 0.0])


def test_resume_is_exact(tmp_path):
    # 11 steps straight vs 5 steps, a fresh Trainer, resume, 6 more (crossing the epoch boundary at 8)
    straight = _trainer(tmp_path / "a", max_steps=11)
    straight.fit()
    first = _trainer(tmp_path / "b", max_steps=5)
    first.fit()
    assert load_state(tmp_path / "b" / "run" / "checkpoint.safetensors")["step"] == 5
    second = _trainer(tmp_path / "b", max_steps=11)
    second.fit(resume=True)
    assert second.step == 11
    for key, value in straight.M.state_dict().items():
        assert torch.allclose(value, second.M.state_dict()[key], atol=1e-6, rtol=0), key
    for key, value in straight.D.state_dict().items():
        assert torch.allclose(value, second.D.state_dict()[key], atol=1e-6, rtol=0), key


def test_existing_run_needs_resume_and_same_settings(tmp_path):
    _trainer(tmp_path, max_steps=1).fit()
    with pytest.raises(FileExistsError, match="--resume"):
        _trainer(tmp_path, max_steps=2).fit()
    with pytest.raises(ValueError, match="layers"):
        _trainer(tmp_path, max_steps=2, layers=5).fit(resume=True)


def test_image_folder_converts_and_skips(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (RES, RES, 3), dtype=np.uint8)).save(folder / "a_rgb.png")
    Image.fromarray(rng.integers(0, 255, (RES, RES), dtype=np.uint8), "L").save(folder / "b_gray.png")
    Image.fromarray(rng.integers(0, 255, (40, 30, 4), dtype=np.uint8), "RGBA").save(folder / "c_rgba_big.png")
    Image.fromarray(rng.integers(0, 65535, (RES, RES), dtype=np.uint16)).save(folder / "d_16bit.png")
    (folder / "e_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    ds = ImageFolderDataset(folder, RES)
    items = [ds[i] for i in range(len(ds))]
    assert [it["status"].split(":")[0] for it in items] == ["ok", "converted", "converted", "converted", "skipped"]
    for it in items[:4]:
        assert it["image"].shape == (3, RES, RES) and -1 <= it["image"].min() and it["image"].max() <= 1
    assert items[3]["image"].std() > 0.1  # 16-bit scaled into range, not clipped to white
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolderDataset(tmp_path / "empty", RES)


def test_training_on_a_folder_counts_bad_files(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(7):
        Image.fromarray(rng.integers(0, 255, (RES, RES, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (folder / "z.png").write_bytes(b"garbage")
    config = _config(tmp_path, epochs=1, batch_size=4)  # 8 files, 2 batches: the bad one is in one of them
    t = Trainer(config, world=_world(), dataset=ImageFolderDataset(folder, RES), progress=False)
    with pytest.warns(UserWarning, match="skipped: z.png"):
        t.fit()
    assert t.data_counts["skipped"] == 1 and t.data_counts["ok"] == 7 and t.step == 2


def _cli(world_files, out, *extra):
    return [sys.executable, "-m", "clip2gan.train", "--profile", "toyfaces", "--clip", str(world_files["clip"]),
            "--generator", str(world_files["generator"]), "--no-id", "--layers", "4", "--hidden-dim", "32",
            "--epoch-size", "32", "--batch-size", "4", "--device", "cpu", "--threads", "1", "--sample-every", "0",
            "--out", str(out), *extra]


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("CLIP2GAN_DOWNLOAD", None)
    return env


def test_kill_minus_9_then_resume(tmp_path):
    files = write_tiny_world(tmp_path / "world")
    out = tmp_path / "run"
    # checkpoint after every step (ckpt-minutes 0), many epochs so the run is still going when killed
    proc = subprocess.Popen(_cli(files, out, "--epochs", "400", "--ckpt-minutes", "0"), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = out / "checkpoint.safetensors"
    deadline = time.time() + 120
    while time.time() < deadline and not (ckpt.exists() and load_state(ckpt)["step"] >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = load_state(ckpt)["step"]  # never half-written: the rename is atomic
    assert step >= 3
    done = subprocess.run(_cli(files, out, "--resume", "--max-steps", str(step + 2)), env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resumed {ckpt} at step {step}" in done.stdout
    assert load_state(ckpt)["step"] == step + 2


def test_torchrun_ddp_two_processes(tmp_path):
    files = write_tiny_world(tmp_path / "world")
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29561",
           *_cli(files, out, "--epochs", "1")[1:]]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = load_state(out / "checkpoint.safetensors")
    assert state["step"] == 4  # 32 images / 2 processes / batch 4 = 4 steps per epoch
    model = CLIP2GAN.from_checkpoint(out)
    assert model.encode_image(torch.zeros(2, 3, RES, RES)).shape == (2, model.num_ws, model.w_dim)


def test_mapping_records_its_world_and_warns_on_other_weights(tmp_path):
    from clip2gan import stylegan2
    from clip2gan.model import WorldMismatchWarning

    files = write_tiny_world(tmp_path / "world")
    t = Trainer(_config(tmp_path, max_steps=1), world={**_world(), "world": {
        "profile": "toyfaces", "clip": str(files["clip"]), "generator": str(files["generator"])}},
        dataset=ToyImages(32, 3, RES), progress=False)
    path = t.fit()["mapping"]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", WorldMismatchWarning)
        CLIP2GAN.from_checkpoint(path)  # the same weights: no warning
    stylegan2.save(tiny_generator(seed=5), files["generator"])  # the generator file is replaced
    with pytest.warns(WorldMismatchWarning, match="another generator"):
        CLIP2GAN.from_checkpoint(path)


def test_training_benchmark_times_every_piece(capsys):
    # toy size, batch 4, --quick (3 steps per variant, one timed call per piece): a few seconds
    from clip2gan import bench

    out = bench.main(["training", "--device", "cpu", "--quick", "--batch", "4"])["training"]
    pieces = out["pieces_seconds"]
    assert set(pieces) >= {"CLIP image encoder (forward)", "G synthesis (forward + backward to w+)",
                           "D step with penalty (eq. 7)"}
    assert all(s > 0 for s in pieces.values())
    assert [r["variant"] for r in out["rows"]] == ["reconstruction only (rec + LPIPS)", "full eq. 10 + D step"]
    assert "piece: D step with penalty" in capsys.readouterr().out


def test_add_feature_bank_to_an_old_mapping_file(tmp_path):
    from clip2gan.modality_gap import load_feature_bank
    from clip2gan.model import save_mapping
    from clip2gan.train import add_feature_bank, main

    files = write_tiny_world(tmp_path / "world")
    world = {"profile": "toyfaces", "clip": str(files["clip"]), "generator": str(files["generator"])}
    config = _config(tmp_path, bank_size=20)
    import dataclasses

    from clip2gan.mapping import MappingNetwork

    M = MappingNetwork.for_generator(tiny_generator(), in_dim=32, n_layers=2, hidden_dim=32)
    path = save_mapping(M, tmp_path / "old.safetensors", world, {"train": dataclasses.asdict(config), "steps": 7})
    assert load_feature_bank(path) is None and CLIP2GAN.from_checkpoint(path).text_correction is None
    assert main(["--add-feature-bank", str(path), "--bank-size", "20"]) == 0
    model = CLIP2GAN.from_checkpoint(path)
    assert model.feature_bank.shape == (20, 32) and model.text_correction == "nearest"
    assert model.edit_mode == "neighbours"
    M2, cfg = load_mapping(path)
    assert all(torch.equal(v, M2.state_dict()[k]) for k, v in M.state_dict().items()) and cfg["steps"] == 7
    faces = ToyImages(20, config.seed, RES)
    with torch.no_grad():
        expected = model.clip.encode_image(torch.stack([faces[i]["image"] for i in range(20)])).float()
    assert torch.allclose(model.feature_bank, expected, atol=2e-3)
    with pytest.raises(ValueError, match="no training config"):
        add_feature_bank(save_mapping(M, tmp_path / "bare.safetensors", world))
