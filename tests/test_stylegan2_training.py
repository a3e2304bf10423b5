"""The toy StyleGAN2 training recipe: losses, R1, EMA, exact resume, damaged checkpoints, export.

Every test trains a tiny network: 8 px (two synthesis blocks: enough to exercise upsampling, the
resnet D block and the epilogue), channel_max 16 and z/w 16 (a step takes milliseconds), batch 4
(one minibatch-std group of 4). The whole file runs in a few seconds on one core.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from clip2gan import stylegan2
from clip2gan.checkpoint import CorruptCheckpoint, load_config
from clip2gan.toy.faces import ATTRIBUTES, C_DIM, attributes_to_c, sample_attributes
from clip2gan.toy.stylegan2_eval import (
    _frequencies,
    confident_mask,
    device_history,
    evaluate,
    export_generator,
    setting_changes,
)
from clip2gan.toy.stylegan2_recipe import (
    GANTrainConfig,
    attribute_ce,
    build_networks,
    ema_beta,
    r1_penalty,
    update_ema,
)
from clip2gan.toy.stylegan2_training import (
    GANTrainer,
    _RunLock,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    main,
    train,
)


def tiny_cfg(**kw) -> GANTrainConfig:
    # 8 px / 16 channels / z,w 16 / batch 4: milliseconds per step. Both regularisers every 2 steps and
    # PL switched on, so a 4-step run crosses every code path (R1, PL, style mixing, EMA ramp-up).
    base = dict(resolution=8, channel_base=64, channel_max=16, z_dim=16, w_dim=16, batch=4,
                D_reg_interval=2, pl_weight=2.0, G_reg_interval=2, style_mixing_prob=0.9, seed=3)
    base.update(kw)
    return GANTrainConfig(**base)


RUN = dict(progress=False, keep_history=True, log_every=1, grid_every=0, snapshot_kimg=None, threads=None)


def test_few_steps_losses_finite(tmp_path):
    t = train(tmp_path / "run", steps=3, cfg=tiny_cfg(), **RUN)
    assert [h["step"] for h in t.history] == [1, 2, 3]
    for h in t.history:
        assert all(np.isfinite(v) for v in h.values()), h
    assert "r1_penalty" in t.history[0] and "pl_penalty" in t.history[0]  # step 0 runs both regularisers
    assert (tmp_path / "run" / "grids" / "reals.png").is_file()
    assert list_checkpoints(tmp_path / "run")[0][0] == 3  # a checkpoint at the end


def test_noise_off_stays_zero_and_on_learns(tmp_path):
    off = train(tmp_path / "off", steps=2, cfg=tiny_cfg(), **RUN)  # use_noise=False: the toy default
    on = train(tmp_path / "on", steps=2, cfg=tiny_cfg(use_noise=True), **RUN)
    for t, moved in ((off, False), (on, True)):
        strengths = [p for n, p in t.G.named_parameters() if n.endswith("noise_strength")]
        assert strengths and any(bool(p.abs().sum() > 0) for p in strengths) == moved
    assert all(float(p) == 0 for n, p in off.G_ema.named_parameters() if n.endswith("noise_strength"))


def test_r1_matches_direct_autograd():
    # float32: the networks compute their epilogue in float32 whatever the input dtype
    torch.manual_seed(0)
    _, D = build_networks(tiny_cfg())
    real = torch.randn(4, 3, 8, 8)
    c = attributes_to_c([sample_attributes(np.random.default_rng(i)) for i in range(4)])
    penalty, logits = r1_penalty(D, real, c)
    # direct: the Jacobian of the summed logits w.r.t. the whole batch (minibatch-std couples samples)
    jac = torch.autograd.functional.jacobian(lambda x: D(x, c).sum(), real)
    assert torch.allclose(penalty, jac.square().sum(dim=[1, 2, 3]), rtol=1e-5, atol=1e-9)
    # and independently of autograd: a central difference along a random direction (float64 sums;
    # float32 round-off and leaky-ReLU kinks limit its accuracy to about 1 %, hence rel=3e-2)
    v = torch.randn_like(real)
    eps = 1e-3
    with torch.no_grad():
        fd = (D(real + eps * v, c).double().sum() - D(real - eps * v, c).double().sum()) / (2 * eps)
    assert float(fd) == pytest.approx(float((jac.double() * v.double()).sum()), rel=3e-2)
    # the penalty is differentiable w.r.t. D's weights (needed for the lazy R1 step)
    penalty.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters())


def test_ema_formula():
    assert ema_beta(0, 16, 5.0, 0.05) == 0.0  # ramp-up: G_ema starts as a copy of G
    assert ema_beta(10**7, 16, 5.0, 0.05) == pytest.approx(0.5 ** (16 / 5000))  # the half-life of 5 kimg
    assert ema_beta(1000, 16, 5.0, 0.05) == pytest.approx(0.5 ** (16 / 50))  # min(5000, 1000 * 0.05)
    assert ema_beta(1000, 16, 5.0, None) == pytest.approx(0.5 ** (16 / 5000))
    a, b = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        a.weight.copy_(torch.tensor([1.0, 2.0, 3.0]))
        b.weight.copy_(torch.tensor([3.0, 2.0, 1.0]))
        b.running_mean.fill_(7.0)
    update_ema(a, b, 0.25)  # a = b + 0.25 (a - b)
    assert torch.allclose(a.weight, torch.tensor([2.5, 2.0, 1.5]))
    assert torch.equal(a.running_mean, b.running_mean)  # buffers copied, not averaged


def test_resume_reproduces_uninterrupted_run(tmp_path):
    straight = train(tmp_path / "a", steps=4, cfg=tiny_cfg(), **RUN)
    train(tmp_path / "b", steps=2, cfg=tiny_cfg(), **RUN)
    resumed = train(tmp_path / "b", steps=4, cfg=tiny_cfg(), resume=True, **RUN)
    assert [h["step"] for h in resumed.history] == [3, 4]
    assert resumed.history == straight.history[2:]  # the same losses, bit for bit
    for name in ("G", "D", "G_ema"):
        sa, sb = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name


def test_damaged_checkpoint_detected_and_previous_used(tmp_path):
    run = tmp_path / "run"
    train(run, steps=2, cfg=tiny_cfg(), checkpoint_every=1, **RUN)
    (step2, newest), (step1, older) = list_checkpoints(run)[:2]
    assert (step2, step1) == (2, 1)
    good = newest.read_bytes()
    newest.write_bytes(good[: len(good) // 2])  # truncated, as by a full disk or a copy cut short
    with pytest.raises(CorruptCheckpoint, match="not a readable safetensors"):
        load_checkpoint(newest)
    with pytest.warns(UserWarning, match="previous good checkpoint"):
        path, _, config = latest_checkpoint(run)
    assert path == older and config["step"] == 1
    # a flipped byte in the tensor data (the file still parses): caught by the checksum
    bad = bytearray(good)
    bad[-5] ^= 0xFF
    newest.write_bytes(bytes(bad))
    with pytest.raises(CorruptCheckpoint, match="checksum"):
        load_checkpoint(newest)
    with pytest.warns(UserWarning):
        t = GANTrainer(run, resume=True)
    assert t.step == 1
    assert any(json.loads(line).get("event") == "damaged_checkpoint" for line in (run / "log.jsonl").read_text().splitlines())
    older.write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptCheckpoint, match="every checkpoint"):
        latest_checkpoint(run)


def test_second_trainer_on_a_busy_run_is_refused(tmp_path):
    train(tmp_path / "run", steps=1, cfg=tiny_cfg(), **RUN)
    (tmp_path / "run" / "checkpoints" / ".ckpt-00000009.safetensors.abc.tmp").write_bytes(b"partial")
    lock = _RunLock(tmp_path / "run").acquire()  # as if another process were training it
    try:
        with pytest.raises(RuntimeError, match="being trained by another process"):
            GANTrainer(tmp_path / "run", resume=True)
    finally:
        lock.release()
    GANTrainer(tmp_path / "run", resume=True)  # free again; the partial write of a killed process is cleaned up
    assert not list((tmp_path / "run" / "checkpoints").glob(".*.tmp"))


def test_export_load_round_trip(tmp_path):
    t = train(tmp_path / "run", steps=2, cfg=tiny_cfg(), **RUN)
    path = export_generator(t.G_ema, tmp_path / "g.safetensors")
    assert json.loads(path.with_suffix(".json").read_text())["init_kwargs"]["z_dim"] == 16
    G = stylegan2.load(path)
    ref = build_networks(t.cfg)[0].eval()  # G_ema with its weights rounded to fp16, as stored
    ref.load_state_dict({k: v.half().float() if v.is_floating_point() else v for k, v in t.G_ema.state_dict().items()})
    z = torch.randn(4, 16, generator=torch.Generator().manual_seed(0))
    c = attributes_to_c([sample_attributes(np.random.default_rng(i)) for i in range(4)])
    with torch.no_grad():
        assert torch.equal(G(z, c, noise_mode="const"), ref(z, c, noise_mode="const"))
        assert torch.equal(stylegan2.load(path)(z, c, noise_mode="const"), G(z, c, noise_mode="const"))
        # the shipped file is a plain clip2gan.stylegan2 checkpoint (read by the package's own loader),
        # with its tensors' checksum in the config
        assert torch.equal(stylegan2.load(path)(z, c, noise_mode="const"), G(z, c, noise_mode="const"))
    assert len(load_config(path)["tensor_sha256"]) == 64


def test_cli_train_resume_export(tmp_path):
    run, out = tmp_path / "run", tmp_path / "export.safetensors"
    arch = ["--resolution", "8", "--channel-base", "64", "--channel-max", "16", "--z-dim", "16", "--w-dim", "16",
            "--batch", "4"]
    common = ["--out", str(run), "--no-progress", "--no-eval", "--threads", "1", "--grid-every", "0"]
    assert main(common + arch + ["--steps", "1"]) == 0
    assert main(common + ["--resume", "--steps", "2", "--r1-gamma", "0.05"]) == 0  # loss settings may change
    cfg = load_checkpoint(list_checkpoints(run)[0][1])[1]
    assert cfg["step"] == 2 and cfg["train_config"]["r1_gamma"] == 0.05
    with pytest.raises(ValueError, match="architecture"):
        main(common + ["--resume", "--steps", "3", "--channel-max", "32"])
    assert main(["export", "--run", str(run), "--out", str(out)]) == 0
    assert stylegan2.load(out).z_dim == 16
    # a snapshot the run evaluated can be exported exactly as it was evaluated
    assert main(common + ["--resume", "--steps", "4", "--snapshot-kimg", "0.008"]) == 0
    snaps = sorted((run / "snapshots").glob("G_ema-*.safetensors"))
    assert snaps, "no snapshot written"
    snap_step = int(snaps[0].stem.split("-")[1])
    assert main(["export", "--run", str(run), "--out", str(out), "--snapshot", str(snap_step)]) == 0
    G, meta = stylegan2.load(out), load_config(out)
    assert meta["from_snapshot"] == snaps[0].name and meta["step"] == snap_step
    ref = stylegan2.load(snaps[0])
    assert all(torch.equal(a, b) for a, b in zip(G.state_dict().values(), ref.state_dict().values()))
    with pytest.raises(SystemExit):
        main(["export", "--run", str(run), "--out", str(out), "--snapshot", "999"])
    # the log says which device trained which stretch (what export --manifest records)
    history = device_history(run)
    assert len(history) == 1 and history[0]["from_kimg"] == 0.0
    assert history[0]["device"].startswith("CPU, 1 thread(s), torch ")


def test_device_history_splits_by_device_and_fills_old_logs(tmp_path):
    rows = [{"kind": "event", "event": "start", "kimg": 0.0, "device": "CPU, 1 thread(s), torch 2"},
            {"kind": "event", "event": "resume", "step": 5, "kimg": 1.0, "device": "CPU, 1 thread(s), torch 2"},
            {"kind": "event", "event": "resume", "step": 9, "kimg": 2.5, "device": "NVIDIA H200, torch 2",
             "changed": {"batch": [16, 64]}},
            {"kind": "event", "event": "resume", "step": 20},  # written before devices were logged
            {"kind": "train", "step": 21, "kimg": 7.25, "loss_G": 1.0}]  # a training row, as the log writes it
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert device_history(tmp_path) == [{"from_kimg": 0.0, "device": "CPU, 1 thread(s), torch 2"},
                                        {"from_kimg": 2.5, "device": "NVIDIA H200, torch 2"},
                                        {"from_kimg": 7.2, "device": "not recorded"}]
    # the bar curve marks where settings changed on resume
    assert setting_changes(tmp_path) == [(2.5, "batch 16→64")]


class _FakeClassifier:
    """Reads attributes back perfectly from images that encode their labels (see the test)."""

    def __init__(self, proba):
        self.proba = proba

    def predict_proba(self, images):
        return {a: p[: len(images)] for a, p in self.proba.items()}

    def features(self, images):
        return images.flatten(1)[:, :8]


def test_bar_rules_bald_and_frequencies():
    proba = {a: torch.zeros(2, len(v)) for a, v in ATTRIBUTES.items()}
    for a in ATTRIBUTES:
        proba[a][:, 0] = 1.0
    proba["hair_length"][0] = torch.tensor([1.0, 0.0, 0.0])  # face 0 read as bald ...
    proba["hair_length"][1] = torch.tensor([0.0, 1.0, 0.0])  # ... face 1 has short hair
    proba["hair_color"][:] = torch.tensor([0.5, 0.5, 0.0, 0.0, 0.0])  # unsure hair colour on both
    conf = confident_mask(proba)
    assert conf.tolist() == [True, False]  # hair colour not counted where read bald
    freq = _frequencies(proba)
    assert freq["hair_length"] == [0.5, 0.5, 0.0]
    assert sum(freq["hair_color"]) == pytest.approx(1.0)  # over the one non-bald face only


def test_evaluate_plumbing():
    # a random tiny G and a stand-in classifier: checks the report's fields, not the numbers
    torch.manual_seed(0)
    G = build_networks(tiny_cfg(resolution=32, channel_base=128, channel_max=8))[0].eval()
    n = 40
    proba = {a: torch.softmax(torch.randn(n, len(v)), 1) for a, v in ATTRIBUTES.items()}
    res = evaluate(G, n=n, seed=0, classifier=_FakeClassifier(proba), n_fid=n)
    assert 0 <= res["confident"] <= 1 and 0 <= res["cond_all"] <= 1
    assert set(res["cond_accuracy"]) == set(ATTRIBUTES)
    assert res["freq_max_dev"] >= 0 and np.isfinite(res["fid"])
    no_fid = evaluate(G, n=n, seed=0, classifier=_FakeClassifier(proba), n_fid=0)  # data frequencies still measured
    assert all(sum(v) == pytest.approx(1.0) for v in no_fid["freq_data"].values())


def test_attribute_ce_scores_blocks_and_skips_bald_hair_colour():
    rng = np.random.default_rng(1)
    attrs = [sample_attributes(rng) for _ in range(6)]
    attrs[0].update(hair_length="bald", hair_color=None, bangs="no")
    c = attributes_to_c(attrs)
    sure = attribute_ce(c * 50.0, c)  # the right value of every block far ahead
    assert float(sure) < 1e-6
    uniform = attribute_ce(torch.zeros_like(c), c)  # every block uniform: mean of log(k) over attributes
    assert float(uniform) == pytest.approx(np.mean([np.log(len(v)) for v in ATTRIBUTES.values()]), rel=1e-6)
    wrong = c.clone()
    wrong[0, :5] = torch.tensor([9.0, 0, 0, 0, 0])  # scores in a bald row's hair-colour block are not scored
    assert float(attribute_ce(wrong * 50.0, c)) == pytest.approx(float(sure), abs=1e-6)


def test_auxiliary_head_trains_and_resumes_exactly(tmp_path):
    # d_aux_weight > 0: both losses logged and finite, the head moves, and a stop/resume reproduces
    # the straight run bit for bit (the head and its optimiser are in the checkpoint)
    straight = train(tmp_path / "a", steps=4, cfg=tiny_cfg(d_aux_weight=1.0), **RUN)
    assert all(np.isfinite(h["aux_G"]) and np.isfinite(h["aux_D"]) for h in straight.history)
    fresh = GANTrainer(tmp_path / "fresh", cfg=tiny_cfg(d_aux_weight=1.0), resume=False)
    assert not torch.equal(fresh.aux.weight, straight.aux.weight)
    train(tmp_path / "b", steps=2, cfg=tiny_cfg(d_aux_weight=1.0), **RUN)
    resumed = train(tmp_path / "b", steps=4, cfg=tiny_cfg(d_aux_weight=1.0), resume=True, **RUN)
    assert resumed.history == straight.history[2:]
    assert torch.equal(resumed.aux.weight, straight.aux.weight)
    off = train(tmp_path / "off", steps=2, cfg=tiny_cfg(), **RUN)  # weight 0: the head is never touched
    assert "aux_G" not in off.history[0] and torch.equal(off.aux.weight, fresh.aux.weight)


def test_auxiliary_head_on_finer_features(tmp_path):
    # 16 px run: the head can read b16's 8 px output instead of the epilogue; unknown taps are refused
    t = train(tmp_path / "a", steps=2, cfg=tiny_cfg(resolution=16, d_aux_weight=1.0, d_aux_tap=8), **RUN)
    assert t.aux.weight.shape == (C_DIM, t.D.b16.conv1.weight.shape[0] * 8 * 8)
    assert all(np.isfinite(h["aux_D"]) for h in t.history)
    with pytest.raises(ValueError, match="d_aux_tap"):
        GANTrainer(tmp_path / "b", cfg=tiny_cfg(d_aux_tap=16), resume=False)
    # changing the tap on resume starts a fresh head of the new size instead of failing
    resumed = GANTrainer(tmp_path / "a", resume=True, overrides={"d_aux_tap": 4})
    assert resumed.step == 2 and resumed.cfg.d_aux_tap == 4
    assert resumed.aux.weight.shape == (C_DIM, resumed.D.b4.in_channels)


def test_shipped_generator_against_its_manifest():
    """The shipped toy G on 300 samples of a fresh seed (not the manifest's seed 0): the confident
    fraction and each attribute's conditioning accuracy reproduce the recorded figures within 4
    binomial standard errors, and the recorded `bar_met` agrees with the recorded figures."""
    import math

    from clip2gan.hub import WeightsNotFound, read_manifest, resolve

    try:
        path = resolve("toyfaces-stylegan2")
    except WeightsNotFound:
        pytest.skip("data/toyfaces-stylegan2.safetensors is absent: train it with the command in data/MANIFEST.json")
    # 300 samples, no FID (n_fid=0): about 5 s on one core
    res = evaluate(stylegan2.load(path), n=300, seed=20_240_602, n_fid=0)
    recorded = read_manifest()["files"]["toyfaces-stylegan2.safetensors"]["metrics"]

    def close(measured, p):
        return abs(measured - p) <= 4 * math.sqrt(max(p * (1 - p), 0.01) / 300)

    assert close(res["confident"], recorded["confident"]), (res["confident"], recorded["confident"])
    for attr, p in recorded["cond_accuracy"].items():
        assert close(res["cond_accuracy"][attr], p), (attr, res["cond_accuracy"][attr], p)
    assert recorded["bar_met"] == (recorded["confident"] >= 0.85 and recorded["freq_max_dev"] <= 5.0)
