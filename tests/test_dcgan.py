"""clip2gan.dcgan: the DCGAN's shapes and formulas, its StyleGAN2-generator interface (inside CLIP2GAN and
the mapping trainer), its checkpoints and loader, and its trainer (exact resume, kill -9, clear errors).

Sizes: 16 px, channel_base 128 / channel_max 16, z_dim 8 (`_tiny`), a few thousand parameters, so a
training step takes milliseconds; 32 px where the attribute classifier (trained at 32 px) judges samples.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny_world import RES, tiny_clip, write_tiny_world

from clip2gan import stylegan2
from clip2gan.checkpoint import CorruptCheckpoint, load_config, load_safetensors
from clip2gan.dcgan import DCGANDiscriminator, DCGANGenerator, load, recalibrate_batchnorm, save
from clip2gan.dcgan import train as dtrain
from clip2gan.losses import LPIPSLoss
from clip2gan.mapping import MappingNetwork
from clip2gan.model import CLIP2GAN
from clip2gan.stylegan2 import UnsafePickleError, channels_dict, load_generator
from clip2gan.train import ToyImages, TrainConfig, Trainer, discriminator_like

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(img_resolution=RES, channel_base=128, channel_max=16)  # 16 px, ≤ 16 channels: milliseconds per call
TINY_TRAIN = ["--resolution", "16", "--channel-base", "128", "--channel-max", "16", "--z-dim", "8", "--batch", "4"]


def _tiny(seed: int = 0, z_dim: int = 8) -> DCGANGenerator:
    torch.manual_seed(seed)
    return DCGANGenerator(z_dim=z_dim, **TINY).eval()


# ----------------------------------------------------------------------------------------------
# Networks


def test_generator_shapes_range_and_the_stylegan2_interface():
    G = _tiny()
    z = torch.randn(5, 8)
    img = G(z)
    assert img.shape == (5, 3, RES, RES) and img.abs().max() <= 1  # tanh output
    assert (G.num_ws, G.w_dim, G.z_dim, G.c_dim, G.img_resolution, G.img_channels) == (1, 8, 8, 0, RES, 3)
    ws = G.mapping(z, torch.zeros(5, 0), truncation_psi=1, update_emas=False)
    assert ws.shape == (5, 1, 8) and torch.equal(ws[:, 0], z)  # the mapping is the identity, one row
    assert torch.equal(G.synthesis(ws, noise_mode="random"), img) and torch.equal(G(z, None), img)
    assert torch.equal(G.mapping.w_avg, torch.zeros(8))  # the mean of the prior N(0, I)
    # truncation: w_avg + psi (z - w_avg) = psi z
    assert torch.allclose(G.mapping(z, None, truncation_psi=0.5), 0.5 * z[:, None])
    assert torch.equal(G(z, truncation_psi=0), G(torch.zeros_like(z)))
    with pytest.raises(ValueError, match=r"ws: expected shape \[N, 1, 8\]"):
        G.synthesis(torch.zeros(2, 2, 8))
    with pytest.raises(ValueError, match="unconditional"):
        G.mapping(z, torch.ones(5, 3))
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ws, noise_mode="loud")


def test_architecture_follows_dcgan_and_the_channel_table():
    G, D = DCGANGenerator(), DCGANDiscriminator()  # the defaults: 32 px
    ch = channels_dict(32, 1024, 256)
    assert [getattr(G.synthesis, f"b{r}").conv.out_channels for r in (4, 8, 16)] == [ch[4], ch[8], ch[16]]
    assert G.synthesis.b4.conv.in_channels == 100 and G.synthesis.torgb.out_channels == 3
    assert all(isinstance(getattr(G.synthesis, f"b{r}").norm, torch.nn.BatchNorm2d) for r in (4, 8, 16))
    # D: no batch norm on the first layer, batch norm + LeakyReLU(0.2) on the others
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in [D.fromrgb])
    assert D.fromrgb.stride == (2, 2) and D.fromrgb.out_channels == ch[16]
    for r in D.block_resolutions:
        conv, norm, act = getattr(D, f"b{r}")
        assert conv.stride == (2, 2) and isinstance(norm, torch.nn.BatchNorm2d) and act.negative_slope == 0.2
    assert D(torch.zeros(3, 3, 32, 32)).shape == (3, 1)
    # small enough for a CPU: about a million parameters each
    assert sum(p.numel() for p in G.parameters()) < 1.2e6 and sum(p.numel() for p in D.parameters()) < 0.7e6
    # the DCGAN paper's initialisation: N(0, 0.02) weights, N(1, 0.02) batch-norm scales
    w, gamma = G.synthesis.b8.conv.weight.detach(), G.synthesis.b8.norm.weight.detach()
    assert abs(float(w.std()) - 0.02) < 0.001 and abs(float(gamma.mean()) - 1) < 0.01
    with pytest.raises(ValueError, match="power of two"):
        DCGANGenerator(img_resolution=24)


def test_eval_mode_samples_do_not_depend_on_the_batch():
    G = _tiny()
    z = torch.randn(6, 8)
    both = G(z)
    assert torch.allclose(torch.cat([G(z[:3]), G(z[3:])]), both, atol=1e-6)


def test_recalibrate_batchnorm_is_the_mean_over_samples_and_leaves_random_state():
    G = _tiny()
    state = torch.get_rng_state()
    recalibrate_batchnorm(G, n=96, batch=32, seed=3)
    assert torch.equal(torch.get_rng_state(), state) and not G.training
    # b4's running mean = the mean of its conv output over the same 96 z
    z = torch.randn(96, 8, generator=torch.Generator().manual_seed(3))
    pre = G.synthesis.b4.conv(z[:, :, None, None])  # [96, C, 4, 4]
    assert torch.allclose(G.synthesis.b4.norm.running_mean, pre.mean((0, 2, 3)), atol=1e-5)
    again = recalibrate_batchnorm(_tiny(), n=96, batch=32, seed=3)
    assert torch.equal(again.synthesis.b4.norm.running_var, G.synthesis.b4.norm.running_var)
    assert G.synthesis.b4.norm.momentum == 0.1  # restored


# ----------------------------------------------------------------------------------------------
# Files


def test_save_load_and_load_generator_reads_a_dcgan(tmp_path):
    G = _tiny()
    path = save(G, tmp_path / "g.safetensors")
    assert json.loads((tmp_path / "g.json").read_text())["format"] == "clip2gan.dcgan"
    z = torch.randn(3, 8)
    for loaded in (load(path), load_generator(path)):
        assert isinstance(loaded, DCGANGenerator) and not loaded.training
        assert torch.equal(loaded(z), G(z))
    assert not any(p.requires_grad for p in load_generator(path).parameters())
    half = load(save(G, tmp_path / "h.safetensors", half=True))
    assert half.synthesis.torgb.weight.dtype == torch.float32 and torch.allclose(half(z), G(z), atol=2e-3)
    # a discriminator is a DCGAN file but not a generator
    with pytest.raises(ValueError, match="holds a DCGANDiscriminator, not a generator"):
        load_generator(save(DCGANDiscriminator(**TINY), tmp_path / "d.safetensors"))
    # StyleGAN2 files still load through the same entry point; each loader refuses the other's files
    sg = stylegan2.save(stylegan2.Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=RES, img_channels=3,
                                            channel_base=64, channel_max=8, mapping_kwargs={"num_layers": 1}),
                        tmp_path / "sg.safetensors")
    assert isinstance(load_generator(sg), stylegan2.Generator)
    with pytest.raises(ValueError, match="not a clip2gan DCGAN checkpoint"):
        load(sg)
    with pytest.raises(ValueError, match="not a clip2gan StyleGAN2 checkpoint"):
        stylegan2.load(path)


def test_damaged_or_unsafe_generator_files_give_clear_errors(tmp_path):
    path = save(_tiny(), tmp_path / "g.safetensors")
    data = bytearray(path.read_bytes())
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(bytes(data[: len(data) - 100]))  # truncated
    with pytest.raises(CorruptCheckpoint, match="cut.safetensors"):
        load_generator(cut)
    data[-5] ^= 0xFF  # a flipped byte in the last tensor: the file still parses
    flipped = tmp_path / "flipped.safetensors"
    flipped.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpoint, match="checksum"):
        load_generator(flipped)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"G_ema": Evil()}, protocol=4))
    with pytest.raises(UnsafePickleError):
        load_generator(evil)
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"hello world, not a network")
    with pytest.raises(ValueError, match="StyleGAN2 or DCGAN"):
        load_generator(junk)


# ----------------------------------------------------------------------------------------------
# Inside the method: CLIP2GAN and the mapping trainer


def _model(G: DCGANGenerator) -> CLIP2GAN:
    clip = tiny_clip()
    torch.manual_seed(1)
    M = MappingNetwork.for_generator(G, in_dim=clip.embed_dim, n_layers=2, hidden_dim=16)
    return CLIP2GAN(clip, M, G, profile="toyfaces")


def test_dcgan_inside_clip2gan_generate_reconstruct_edit():
    G = _tiny()
    model = _model(G)
    images = torch.rand(2, 3, RES, RES) * 2 - 1
    ws = model.encode_image(images)
    assert ws.shape == (2, 1, 8) and (model.num_ws, model.w_dim, model.resolution) == (1, 8, RES)
    assert torch.allclose(model.reconstruct(images), G.synthesis(ws).clamp(-1, 1))
    assert model.generate(["a smiling person"], n_per_prompt=3, seed=0).shape == (3, 3, RES, RES)
    # truncation toward M's w_avg = G's = 0: psi 0 gives G(0) for every prompt
    avg = model.generate(["a smiling person", "a bald person"], seed=0, truncation=0.0)
    assert torch.allclose(avg, G(torch.zeros(2, 8)), atol=1e-6)
    for space in ("wplus", "clip"):
        assert model.edit(images, "wearing eyeglasses", beta=1.0, space=space).shape == (2, 3, RES, RES)
    # beta 0 in z space is the reconstruction
    assert torch.allclose(model.edit(images, "wearing eyeglasses", beta=0.0), model.reconstruct(images), atol=1e-6)


def test_dcgan_inside_the_mapping_trainer(tmp_path):
    # CI size: 16 px, 32-d CLIP, 4 images a step, 2 steps
    clip, G = tiny_clip(), _tiny()
    D = discriminator_like(G)  # a StyleGAN2 D sized by G's channel table (init_kwargs' channel_base/max)
    assert D.img_resolution == RES
    world = {"clip": clip, "G": G, "D": D, "identity": None, "lpips": LPIPSLoss("clip", clip_encoder=clip),
             "world": {"profile": "toyfaces", "clip": "tiny"}}
    config = TrainConfig(out=str(tmp_path / "run"), epochs=1, epoch_size=8, batch_size=4, layers=2, hidden_dim=16,
                         identity=False, device="cpu", sample_every=0, log_every=1, ckpt_minutes=1e9, seed=3,
                         max_steps=2)
    t = Trainer(config, world=world, dataset=ToyImages(8, 3, RES), progress=False)
    G0 = {k: v.clone() for k, v in G.state_dict().items()}
    M0 = {k: v.clone() for k, v in t.M.state_dict().items()}
    summary = t.fit()
    assert summary["steps"] == 2 and t.M.num_ws == 1 and t.M.w_dim == 8
    assert all(torch.equal(G0[k], v) for k, v in G.state_dict().items())  # frozen, BN statistics included
    assert any(not torch.equal(M0[k], v) for k, v in t.M.state_dict().items() if k != "w_avg")
    model = CLIP2GAN.from_checkpoint(summary["mapping"], clip=clip, generator=G)
    assert model.encode_image(torch.zeros(2, 3, RES, RES)).shape == (2, 1, 8)


def test_mapping_cli_takes_a_dcgan_file_as_generator(tmp_path):
    # the `--generator PATH` route: clip2gan.stylegan2.load_generator recognises the DCGAN file
    files = write_tiny_world(tmp_path / "world")
    gpath = save(_tiny(), tmp_path / "world" / "dcgan.safetensors")
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "clip2gan.train", "--profile", "toyfaces", "--clip", str(files["clip"]),
           "--generator", str(gpath), "--no-id", "--layers", "2", "--hidden-dim", "16", "--epoch-size", "8",
           "--batch-size", "4", "--epochs", "1", "--device", "cpu", "--threads", "1", "--sample-every", "0",
           "--out", str(out)]
    done = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    model = CLIP2GAN.from_checkpoint(out)
    assert isinstance(model.generator, DCGANGenerator) and model.num_ws == 1


# ----------------------------------------------------------------------------------------------
# The trainer


def _cfg(**kw) -> dtrain.DCGANTrainConfig:
    # 16 px, <= 16 channels, batch 4: a step takes a few milliseconds
    base = dict(z_dim=8, resolution=16, channel_base=128, channel_max=16, batch=4, seed=5, ema_kimg=0.01)
    return dtrain.DCGANTrainConfig(**{**base, **kw})


_QUIET = dict(grid_every=0, snapshot_every=0, eval_snapshots=False, progress=False, log_every=1)


def test_train_step_losses_are_the_logistic_formulas(tmp_path):
    t = dtrain.DCGANTrainer(tmp_path / "run", _cfg())
    G0 = {k: v.clone() for k, v in t.G.state_dict().items()}
    D0 = {k: v.clone() for k, v in t.D.state_dict().items()}
    # replay the step's inputs from the same random states
    import copy

    import numpy as np

    from clip2gan.toy.faces import render_labeled_batch

    rng_torch, rng_np = torch.get_rng_state(), copy.deepcopy(t.data_rng)
    G, D = copy.deepcopy(t.G), copy.deepcopy(t.D)
    stats = t.train_step()
    torch.set_rng_state(rng_torch)
    real = render_labeled_batch(4, rng_np, 16)[0]
    fake = G(torch.randn(4, 8))
    lf, lr = D(fake), D(real)
    expected_D = (F.softplus(lf).mean() + F.softplus(-lr).mean()).detach()  # -log(1 - sigmoid(f)) - log(sigmoid(r))
    assert stats["loss_D"] == pytest.approx(float(expected_D), rel=1e-5)
    assert stats["score_real"] == pytest.approx(float(lr.mean().detach()), rel=1e-5)
    assert np.isfinite(stats["loss_G"]) and stats["loss_G"] > 0  # -log sigmoid(D(G(z))) with the updated D
    assert any(not torch.equal(G0[k], v) for k, v in t.G.state_dict().items())
    assert any(not torch.equal(D0[k], v) for k, v in t.D.state_dict().items())
    assert (t.step, t.nimg) == (1, 4)
    assert [g["betas"] for g in t.opt_G.param_groups] == [(0.5, 0.999)] and t.opt_D.param_groups[0]["lr"] == 2e-4


def test_resume_is_bit_exact(tmp_path):
    whole = dtrain.DCGANTrainer(tmp_path / "whole", _cfg())
    whole.run(6, **_QUIET)
    part = dtrain.DCGANTrainer(tmp_path / "part", _cfg())
    part.run(3, **_QUIET)  # stops after 3 steps and checkpoints, as SIGTERM or --max-seconds would
    del part
    resumed = dtrain.DCGANTrainer(tmp_path / "part", resume=True)
    assert resumed.step == 3 and resumed.cfg == _cfg()
    resumed.run(6, **_QUIET)
    a, _ = load_safetensors(tmp_path / "whole" / "checkpoint.safetensors")
    b, cb = load_safetensors(tmp_path / "part" / "checkpoint.safetensors")
    assert a.keys() == b.keys() and any(k.startswith("G_ema.") for k in a) and any(k.startswith("opt_D.") for k in a)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    assert cb["step"] == 6 and cb["nimg"] == 24


def test_kill_minus_9_then_resume_matches_an_uninterrupted_run(tmp_path):
    def cli(out, *extra):
        return [sys.executable, "-m", "clip2gan.dcgan.train", "--out", str(out), *TINY_TRAIN, "--seed", "2",
                "--eval", "no", "--grid-every", "0", "--snapshot-every", "0", "--progress", "no", "--threads", "1",
                *extra]

    # 300 steps (a few seconds): the killed run is still far from the end however late the kill comes on a busy machine
    subprocess.run(cli(tmp_path / "whole", "--steps", "300"), env=_env(), check=True, capture_output=True, timeout=900)
    out = tmp_path / "killed"
    # checkpoint after every step, a long target so that the run is still going when killed
    proc = subprocess.Popen(cli(out, "--steps", "100000", "--checkpoint-every", "1"), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    meta = out / "checkpoint.json"
    deadline = time.time() + 600
    while time.time() < deadline and not (meta.exists() and json.loads(meta.read_text())["step"] >= 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = load_config(out / "checkpoint.safetensors")["step"]  # the rename is atomic: never half-written
    assert 3 <= step < 300
    done = subprocess.run(cli(out, "--steps", "300", "--resume"), env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"resumed at step {step}" in done.stdout
    a, _ = load_safetensors(tmp_path / "whole" / "checkpoint.safetensors")
    b, _ = load_safetensors(out / "checkpoint.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_trainer_refuses_overwrite_arch_change_and_a_damaged_checkpoint(tmp_path):
    run = tmp_path / "run"
    dtrain.DCGANTrainer(run, _cfg()).run(1, **_QUIET)
    with pytest.raises(FileExistsError, match="--resume"):
        dtrain.DCGANTrainer(run, _cfg())
    with pytest.raises(ValueError, match="architecture"):
        dtrain.DCGANTrainer(run, resume=True, overrides={"channel_max": 32})
    t = dtrain.DCGANTrainer(run, resume=True, overrides={"lr_G": 1e-4})  # a setting may change on resume
    assert t.opt_G.param_groups[0]["lr"] == 1e-4 and dtrain.read_log(run)[-1]["changed"] == {"lr_G": [2e-4, 1e-4]}
    ckpt = run / "checkpoint.safetensors"
    ckpt.write_bytes(ckpt.read_bytes()[:200])
    with pytest.raises(CorruptCheckpoint, match="checkpoint.safetensors"):
        dtrain.DCGANTrainer(run, resume=True)
    other = save(_tiny(), tmp_path / "other" / "checkpoint.safetensors")  # a generator file, not a training state
    with pytest.raises(CorruptCheckpoint, match="not a complete clip2gan-dcgan-train/1"):
        dtrain.DCGANTrainer(other.parent, resume=True)


def test_snapshots_grids_export_and_the_bar(tmp_path):
    # 32 px (the attribute classifier's size) with <= 16 channels; 2 steps; the bar on 32 samples
    run = tmp_path / "run"
    t = dtrain.DCGANTrainer(run, _cfg(resolution=32, channel_base=256))
    t.run(2, grid_every=1, snapshot_every=2, eval_snapshots=True, eval_n=32, progress=False)
    assert (run / "grids" / "fakes-00000002.png").exists()
    snap = run / "snapshots" / "G-00000002.safetensors"
    assert load_config(snap)["dtype"] == "float16" and load_config(snap)["step"] == 2
    evals = [r for r in dtrain.read_log(run) if r.get("kind") == "eval"]
    assert len(evals) == 1 and evals[0]["snapshot"] == snap.name and 0 <= evals[0]["confident"] <= 1
    assert "cond_all" not in evals[0] and evals[0]["freq_max_dev"] >= 0  # unconditional: no conditioning figures
    assert "confident" in dtrain.bar_line(evals[0])
    path, info = dtrain.export(run, eval_n=16)
    G = load_generator(path)
    assert isinstance(G, DCGANGenerator) and info["step"] == 2
    assert load_config(path)["dtype"] == ("float16" if info["float16_change_points"] <= 1.0 else "float32")
    # the exported generator is the checkpoint's G_ema with recomputed batch-norm statistics
    tensors, config = dtrain.load_checkpoint(run / "checkpoint.safetensors")
    ref = dtrain.sampling_generator(dtrain.generator_from_checkpoint(tensors, config), seed=config["train_config"]["seed"])
    z = torch.randn(4, 8)
    assert torch.allclose(G(z), ref(z), atol=5e-3)


def test_every_flag_has_help_with_its_default():
    parser = dtrain._parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subs.choices.items():
        for action in sub._actions:
            if action.option_strings and action.help != "==SUPPRESS==" and action.dest != "help":
                assert action.help, (name, action.dest)
    out = subs.choices["train"].format_help()
    assert "--max-seconds" in out and "(default: 0.0002)" in out and "(default: 0.5)" in out


def _env():
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("CLIP2GAN_DOWNLOAD", None)
    return env


def test_choose_snapshot_takes_the_highest_share_and_breaks_ties_within_noise_by_the_gap():
    def rec(step, confident, gap, n=1000):
        return {"kind": "eval", "snapshot": f"G-{step:08d}.safetensors", "step": step, "n": n, "confident": confident,
                "freq_max_dev": gap}

    # n = 1000: 2 combined SE at p ≈ 0.4 is about 4.4 points, so 0.38 ties with 0.40 and 0.30 does not
    records = [rec(1000, 0.30, 1.0), rec(2000, 0.38, 6.0), rec(3000, 0.40, 9.0), {"kind": "train", "step": 3000},
               rec(4000, 0.99, 0.0, n=10)]
    chosen = dtrain.choose_snapshot(records)
    assert chosen["step"] == 2000 and chosen["tied"] == [2000, 3000]
    assert dtrain.choose_snapshot(records[:3] + [rec(5000, 0.385, 6.0)])["step"] == 5000  # equal gaps: the later step
    with pytest.raises(ValueError, match="no snapshot judged"):
        dtrain.choose_snapshot(records, n=500)
