"""The trainer's options against the distortion-perception-editability trade-off (05_training.ipynb).

e4e's latent discriminator and delta regulariser (Tov et al., SIGGRAPH 2021), fewer free rows of w+,
the latent loss on synthetic data and truncation at test time: each formula on a tiny case worked by
hand, the defaults unchanged, a run with every option on resuming exactly, clear errors. Runs use the
tiny random world of `tiny_world.py` (16 px, 6 w+ rows of 16, 32-d CLIP): a step takes milliseconds.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_world import RES, tiny_clip, tiny_generator

from clip2gan.checkpoint import load_state
from clip2gan.generate import generate
from clip2gan.losses import (
    LatentDiscriminator,
    LPIPSLoss,
    delta_regularizer,
    latent_d_loss,
    latent_g_loss,
    latent_loss,
    latent_r1,
)
from clip2gan.mapping import MappingNetwork, row_groups
from clip2gan.model import CLIP2GAN, load_mapping, save_mapping
from clip2gan.train import (
    SyntheticImages,
    ToyImages,
    TrainConfig,
    Trainer,
    _parser,
    conditioning_for,
    config_from_args,
    discriminator_like,
)

# -------------------------------------------------------------------------------------------------
# the formulas


def test_delta_regularizer_by_hand():
    # two codes of 3 rows of 2: row offsets from row 0 of lengths (5, 1) and (0, 2)
    ws = torch.tensor([[[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]],
                       [[1.0, 1.0], [1.0, 1.0], [1.0, 3.0]]])
    # Σ_{i≥1} mean_batch ‖w_i − w_0‖₂ = (5 + 0)/2 + (1 + 2)/2 = 4
    assert delta_regularizer(ws).item() == pytest.approx(4.0)
    assert delta_regularizer(ws, rows=2).item() == pytest.approx(2.5)  # only row 1 unlocked
    assert delta_regularizer(ws, rows=1).item() == 0.0
    # StyleGAN's own w (equal rows): zero, with a zero (not NaN) gradient
    w = torch.randn(2, 1, 2, requires_grad=True)
    loss = delta_regularizer(w.expand(2, 3, 2))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(w.grad, torch.zeros_like(w))
    with pytest.raises(ValueError, match="rows"):
        delta_regularizer(ws, rows=4)


def _linear_d(a: list[float], b: float = 0.0) -> LatentDiscriminator:
    """A one-layer D_w: logit = a · w + b, so every term has a closed form."""
    D = LatentDiscriminator(len(a), layers=1)
    with torch.no_grad():
        D.net[0].weight.copy_(torch.tensor([a]))
        D.net[0].bias.fill_(b)
    return D


def test_latent_discriminator_losses_by_hand():
    D = _linear_d([1.0, 2.0])
    real = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # logits 1, 0
    fake = torch.tensor([[0.0, -1.0], [1.0, 1.0]])  # logits -2, 3
    loss, parts = latent_d_loss(D, real, fake)
    sp = lambda t: math.log1p(math.exp(t))  # noqa: E731 — softplus
    expected = (sp(-1) + sp(0)) / 2 + (sp(-2) + sp(3)) / 2  # E[softplus(−D(real))] + E[softplus(D(fake))]
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    # the same as −E[log σ(D(real))] − E[log(1 − σ(D(fake)))]
    sig = lambda t: 1 / (1 + math.exp(-t))  # noqa: E731
    assert loss.item() == pytest.approx(-(math.log(sig(1)) + math.log(sig(0))) / 2
                                        - (math.log(1 - sig(-2)) + math.log(1 - sig(3))) / 2, rel=1e-6)
    assert parts["real"].item() == pytest.approx(0.5) and parts["fake"].item() == pytest.approx(0.5)
    # M's term: the non-saturating loss averaged over the first n rows of its codes
    ws = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [5.0, 5.0]]])  # row logits 1, 0, 15
    assert latent_g_loss(D, ws).item() == pytest.approx((sp(-1) + sp(0) + sp(-15)) / 3, rel=1e-6)
    assert latent_g_loss(D, ws, rows=2).item() == pytest.approx((sp(-1) + sp(0)) / 2, rel=1e-6)
    # R1 = E‖∇_w D(w)‖²: for a linear D the gradient is a everywhere, ‖(1, 2)‖² = 5
    assert latent_r1(D, real).item() == pytest.approx(5.0)


def test_latent_r1_of_an_mlp_is_the_mean_squared_gradient_and_trains_d():
    torch.manual_seed(0)
    D = LatentDiscriminator(16)  # e4e's shape: 4 layers, hidden = w_dim
    assert [type(m).__name__ for m in D.net] == ["Linear", "LeakyReLU"] * 3 + ["Linear"]
    assert D.net[1].negative_slope == 0.2 and D(torch.randn(5, 16)).shape == (5,)
    real = torch.randn(6, 16)
    norms = []
    for w in real:  # per sample, by hand
        w = w[None].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(D(w).sum(), w)
        norms.append(g.square().sum())
    r1 = latent_r1(D, real)
    assert r1.item() == pytest.approx(torch.stack(norms).mean().item(), rel=1e-5)
    r1.backward()  # create_graph: the penalty reaches D_w's weights (∇_w of a LeakyReLU MLP ignores its biases)
    weights = [p for name, p in D.named_parameters() if name.endswith("weight")]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in weights)
    with pytest.raises(ValueError, match=r"\[N, 16\]"):
        D(torch.randn(2, 8))


def test_latent_loss_by_hand():
    ws = torch.tensor([[[1.0, 2.0], [3.0, 2.0]], [[0.0, 0.0], [0.0, 1.0]]])  # [2, 2 rows, 2]
    w = torch.tensor([[1.0, 1.0], [0.0, -1.0]])  # one w per image, broadcast to both rows
    # squared errors: (0, 1, 4, 1) and (0, 1, 0, 4): 11 over 8 entries
    assert latent_loss(ws, w).item() == pytest.approx(11 / 8)
    assert latent_loss(ws, w[:, None].expand(2, 2, 2)).item() == pytest.approx(11 / 8)
    with pytest.raises(ValueError, match="w must be"):
        latent_loss(ws, torch.zeros(3, 2))


def test_row_groups_are_contiguous_and_even():
    assert row_groups(8, 3) == [0, 0, 0, 1, 1, 1, 2, 2]
    assert row_groups(6, 1) == [0] * 6 and row_groups(6, 6) == list(range(6))
    for n in range(1, 19):
        for k in range(1, n + 1):
            g = row_groups(n, k)
            assert g[0] == 0 and g[-1] == k - 1
            assert all(b - a in (0, 1) for a, b in zip(g, g[1:]))  # contiguous, in order, none skipped
            sizes = [g.count(i) for i in range(k)]
            assert max(sizes) - min(sizes) <= 1
    with pytest.raises(ValueError):
        row_groups(6, 7)


def _features(n: int = 5, d: int = 32) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(1)), dim=-1)


def test_free_rows_layout():
    G = tiny_generator()  # 6 rows of 16
    f = _features()
    torch.manual_seed(0)
    one = MappingNetwork.for_generator(G, in_dim=32, n_layers=2, hidden_dim=32, free_rows=1)
    ws = one(f)
    assert ws.shape == (5, 6, 16) and torch.equal(ws, ws[:, :1].expand(-1, 6, -1))  # a single w
    assert one.fc1.weight.shape == (16, 32)  # the last layer emits one row
    torch.manual_seed(0)
    full = MappingNetwork.for_generator(G, in_dim=32, n_layers=2, hidden_dim=32)
    torch.manual_seed(0)
    same = MappingNetwork.for_generator(G, in_dim=32, n_layers=2, hidden_dim=32, free_rows=6)
    assert full.state_dict().keys() == same.state_dict().keys()
    assert all(torch.equal(v, same.state_dict()[k]) for k, v in full.state_dict().items())
    assert torch.equal(full(f), same(f))  # k = num_ws is the paper's layout
    three = MappingNetwork.for_generator(G, in_dim=32, n_layers=2, hidden_dim=32, free_rows=3, last_init_scale=1.0)
    ws = three(f)
    for a, b in ((0, 1), (2, 3), (4, 5)):  # groups of 2 rows: [0, 0, 1, 1, 2, 2]
        assert torch.equal(ws[:, a], ws[:, b])
    assert not torch.allclose(ws[:, 1], ws[:, 2]) and not torch.allclose(ws[:, 3], ws[:, 4])
    emitted = three.fc1(three.fc0(F.normalize(f, dim=-1) * math.sqrt(32))).view(5, 3, 16)  # by hand
    assert torch.allclose(ws - three.w_avg, emitted[:, [0, 0, 1, 1, 2, 2]], atol=1e-5)
    for bad in (0, 7, 2.5):
        with pytest.raises(ValueError, match="free_rows must be an integer from 1 to num_ws = 6"):
            MappingNetwork.for_generator(G, in_dim=32, n_layers=2, hidden_dim=32, free_rows=bad)


def test_unlocked_rows_copy_row_0():
    G = tiny_generator()
    M = MappingNetwork.for_generator(G, in_dim=32, n_layers=2, hidden_dim=32, last_init_scale=1.0)
    f = _features()
    free = M(f)
    M.set_unlocked_rows(2)
    ws = M(f)
    assert torch.equal(ws[:, :2], free[:, :2]) and torch.equal(ws[:, 2:], free[:, :1].expand(-1, 4, -1))
    assert M.config["unlocked_rows"] == 2
    M.set_unlocked_rows(6)  # every row: the same as none
    assert M.unlocked_rows is None and "unlocked_rows" not in M.config and torch.equal(M(f), free)
    with pytest.raises(ValueError, match="unlocked_rows"):
        M.set_unlocked_rows(0)


def test_row_options_round_trip_and_old_checkpoints_load(tmp_path):
    G = tiny_generator()
    world = {"profile": "toyfaces"}
    M = MappingNetwork.for_generator(G, in_dim=32, n_layers=2, hidden_dim=32, free_rows=2, unlocked_rows=4)
    M2, cfg = load_mapping(save_mapping(M, tmp_path / "m.safetensors", world))
    assert cfg["mapping"]["free_rows"] == 2 and cfg["mapping"]["unlocked_rows"] == 4
    assert torch.equal(M2(_features()), M(_features()))
    # a default M records neither key: files written before the options existed are the same files
    plain = MappingNetwork.for_generator(G, in_dim=32, n_layers=2, hidden_dim=32)
    assert "free_rows" not in plain.config and "unlocked_rows" not in plain.config
    assert set(plain.state_dict()) == {"w_avg", "fc0.weight", "fc0.bias", "fc1.weight", "fc1.bias"}
    M3, _ = load_mapping(save_mapping(plain, tmp_path / "old.safetensors", world))
    assert M3.free_rows is None and torch.equal(M3(_features()), plain(_features()))


# -------------------------------------------------------------------------------------------------
# the trainer


def _world(c_dim: int = 0):
    clip, G = tiny_clip(), tiny_generator(c_dim=c_dim)
    return {"clip": clip, "G": G, "D": discriminator_like(G), "identity": None,
            "lpips": LPIPSLoss("clip", clip_encoder=clip), "world": {"profile": "toyfaces", "clip": "tiny"}}


def _config(tmp_path, **kw) -> TrainConfig:
    # batch 4, 32 images: 8 steps per epoch, 16 in all — as tests/test_train.py
    base = dict(out=str(tmp_path / "run"), epochs=2, epoch_size=32, batch_size=4, layers=4, hidden_dim=32,
                identity=False, device="cpu", sample_every=0, log_every=1, ckpt_minutes=1e9, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def _trainer(tmp_path, c_dim: int = 0, **kw) -> Trainer:
    config = _config(tmp_path, **kw)
    world = _world(c_dim)
    if config.synthetic_data:
        dataset = SyntheticImages(world["G"], config.epoch_size, config.seed, config.profile)
    else:
        dataset = ToyImages(config.epoch_size, config.seed, RES)
    return Trainer(config, world=world, dataset=dataset, progress=False)


def _logs(tmp_path) -> list[dict]:
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    for r in rows:
        r.pop("seconds")
    return rows


OFF = dict(latent_d=0.0, delta_reg=0.0, latent_loss=0.0, free_rows=None, delta_progressive=False)

# loss_M, loss_D of the first 4 steps of these tiny runs, logged by the trainer before the options
# existed (on this project's CPU they are reproduced to the last bit; the tolerance is for other CPUs' kernels)
BEFORE = {
    "toy": [(3.869127035140991, 2.2765419483184814), (3.9440040588378906, 2.208725690841675),
            (4.309054374694824, 2.135700225830078), (4.868517875671387, 2.0279715061187744)],
    "synthetic": [(3.1256179809570312, 2.0797014236450195), (3.336517810821533, 2.018007755279541),
                  (3.414334535598755, 2.038848400115967), (3.1995017528533936, 2.0002737045288086)],
}


@pytest.mark.parametrize("data", ["toy", "synthetic"])
def test_defaults_change_nothing(tmp_path, data):
    synthetic = data == "synthetic"
    default = _trainer(tmp_path / "a", max_steps=4, synthetic_data=synthetic)
    default.fit()
    explicit = _trainer(tmp_path / "b", max_steps=4, synthetic_data=synthetic, **OFF)
    explicit.fit()
    assert _logs(tmp_path / "a") == _logs(tmp_path / "b")
    assert all(torch.equal(v, explicit.M.state_dict()[k]) for k, v in default.M.state_dict().items())
    assert all(torch.equal(v, explicit.D.state_dict()[k]) for k, v in default.D.state_dict().items())
    logs = _logs(tmp_path / "a")
    assert [(r["loss_M"], r["loss_D"]) for r in logs] == [pytest.approx(v, rel=1e-5) for v in BEFORE[data]]
    assert not {"latent_adv", "delta_reg", "latent", "rows", "D_w_loss"} & set(logs[-1])
    # nothing new is built or stored: no D_w, M's weights and checkpoint keys as before
    assert default.D_w is None and default.M.free_rows is None and default.M.unlocked_rows is None
    state = load_state(tmp_path / "a" / "run" / "checkpoint.safetensors")
    assert "D_w" not in state and "opt_D_w" not in state
    _, cfg = load_mapping(tmp_path / "a" / "run" / "mapping.safetensors")
    assert "free_rows" not in cfg["mapping"] and "unlocked_rows" not in cfg["mapping"]


def test_synthetic_items_carry_the_code_that_made_them():
    G = tiny_generator(c_dim=28)  # conditional, like the toy G: c drawn by toy.faces.sample_c
    ds = SyntheticImages(G, 4, seed=0, profile="toyfaces")
    item = ds[2]
    assert {"image", "ok", "status", "w"} <= set(item) and item["w"].shape == (16,)
    with torch.no_grad():
        img = G.synthesis(item["w"].expand(1, G.num_ws, -1), noise_mode="const")[0].clamp(-1, 1)
    assert torch.equal(img, item["image"])


def test_real_codes_are_the_generators_own(tmp_path):
    t = _trainer(tmp_path, c_dim=28, latent_d=0.1, max_steps=1)
    w = t.real_ws(4, step=5)
    assert w.shape == (4, 16) and torch.equal(w, t.real_ws(4, step=5))  # a function of (seed, step, rank)
    assert not torch.equal(w, t.real_ws(4, step=6))
    g = torch.Generator().manual_seed((3 * 1_000_003 + 5) * 64)
    z = torch.randn([4, 16], generator=g)
    c = conditioning_for(t.G, 4, np.random.default_rng([3, 5, 0, 41]), "toyfaces")
    assert c.shape == (4, 28) and c.sum(1).min() >= 9  # toy labels, one-hot per attribute
    assert torch.equal(w, t.G.mapping(z, c, update_emas=False)[:, 0])


def test_progressive_schedule(tmp_path):
    t = _trainer(tmp_path, delta_progressive=True, max_steps=1)  # 16 steps, 6 rows: K = 16 // 12 = 1
    assert t.progressive_every == 1 and [t.unlocked_rows(s) for s in range(7)] == [1, 2, 3, 4, 5, 6, 6]
    t = _trainer(tmp_path, delta_progressive=True, delta_progressive_every=3, max_steps=1)
    assert [t.unlocked_rows(s) for s in (0, 2, 3, 6, 14, 15)] == [1, 1, 2, 3, 5, 6]
    assert t.M.unlocked_rows == 1  # before the first step: one w
    with pytest.warns(UserWarning, match="after the run's 16 steps"):
        _trainer(tmp_path, delta_progressive=True, delta_progressive_every=4, max_steps=1)


ALL_ON = dict(synthetic_data=True, latent_d=0.1, latent_d_reg_every=2, delta_reg=0.01, delta_progressive=True,
              delta_progressive_every=3, free_rows=4, latent_loss=1.0)


def test_every_option_on_trains_checkpoints_and_resumes_exactly(tmp_path):
    # 11 steps straight vs 5, a fresh Trainer, resume, 6 more (crossing the epoch boundary at 8)
    straight = _trainer(tmp_path / "a", max_steps=11, **ALL_ON)
    summary = straight.fit()
    logs = _logs(tmp_path / "a")
    assert {"latent_adv", "delta_reg", "latent", "D_w_loss", "D_w_real", "D_w_fake", "rows"} <= set(logs[-1])
    assert [r["rows"] for r in logs] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4]
    assert "D_w_r1" in logs[0] and "D_w_r1" not in logs[1]  # lazy R1 at steps 0, 2, 4, ...
    assert logs[0]["delta_reg"] == 0.0 and logs[-1]["delta_reg"] > 0  # one w at first
    assert all(math.isfinite(v) for r in logs for v in r.values())

    first = _trainer(tmp_path / "b", max_steps=5, **ALL_ON)
    first.fit()
    state = load_state(tmp_path / "b" / "run" / "checkpoint.safetensors")
    assert state["step"] == 5 and "D_w" in state and "opt_D_w" in state
    second = _trainer(tmp_path / "b", max_steps=11, **ALL_ON)
    second.fit(resume=True)
    assert second.step == 11 and _logs(tmp_path / "b") == logs
    for a, b in ((straight.M, second.M), (straight.D, second.D), (straight.D_w, second.D_w)):
        for key, value in a.state_dict().items():
            assert torch.allclose(value, b.state_dict()[key], atol=1e-6, rtol=0), key
    opt_a, opt_b = straight.opt_D_w.state_dict()["state"], second.opt_D_w.state_dict()["state"]
    assert opt_a.keys() == opt_b.keys()
    for i in opt_a:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.allclose(opt_a[i][name], opt_b[i][name], atol=1e-6, rtol=0), (i, name)

    # the saved M decodes as it was trained: 4 emitted rows, rows from 4 on still copies of row 0 at step 10
    M, cfg = load_mapping(summary["mapping"])
    assert cfg["mapping"]["free_rows"] == 4 and cfg["mapping"]["unlocked_rows"] == 4
    f = _features()
    ws = M(f)
    assert torch.equal(ws, straight.M.eval()(f)) and torch.equal(ws[:, 4:], ws[:, :1].expand(-1, 2, -1))
    assert cfg["train"]["latent_d"] == 0.1 and cfg["train"]["free_rows"] == 4


def test_resume_checks_the_options(tmp_path):
    _trainer(tmp_path, max_steps=1).fit()
    with pytest.raises(ValueError, match="no latent discriminator"):
        _trainer(tmp_path, max_steps=2, latent_d=0.1).fit(resume=True)
    with pytest.raises(ValueError, match="free_rows"):
        _trainer(tmp_path, max_steps=2, free_rows=2).fit(resume=True)


# -------------------------------------------------------------------------------------------------
# clear errors, the command line


@pytest.mark.parametrize("bad, match", [
    (dict(latent_d=-0.1), "--latent-d must be a finite number >= 0"),
    (dict(delta_reg=-1.0), "--delta-reg must be"),
    (dict(latent_loss=-1.0, synthetic_data=True), "--latent-loss must be"),
    (dict(latent_d_r1=float("nan")), "--latent-d-r1 must be"),
    (dict(latent_d_lr=float("inf")), "--latent-d-lr must be"),
    (dict(latent_d_reg_every=0), "--latent-d-reg-every must be an integer >= 1"),
    (dict(free_rows=0), "--free-rows must be an integer >= 1"),
    (dict(delta_progressive=True, delta_progressive_every=0), "--delta-progressive-every must be"),
    (dict(delta_progressive_every=10), "pass both"),
    (dict(latent_loss=1.0), "--latent-loss needs --synthetic-data"),
])
def test_bad_values_fail_clearly(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**bad)


def test_bad_values_found_at_build_time(tmp_path):
    with pytest.raises(ValueError, match="--free-rows must be from 1 to the generator's num_ws = 6, got 7"):
        _trainer(tmp_path, free_rows=7)
    config = _config(tmp_path, synthetic_data=True, latent_loss=1.0)
    with pytest.raises(ValueError, match="'w'"):  # a dataset whose items carry no code
        Trainer(config, world=_world(), dataset=ToyImages(32, 3, RES), progress=False)


def test_flags_in_help_and_parsed():
    text = " ".join(_parser().format_help().split())
    for flag in ("--latent-d ", "--latent-d-lr", "--latent-d-r1", "--latent-d-reg-every", "--delta-reg",
                 "--delta-progressive ", "--delta-progressive-every", "--free-rows", "--latent-loss"):
        assert flag in text, flag
    args = _parser().parse_args(["--latent-d", "0.1", "--delta-reg", "2e-4", "--delta-progressive", "--free-rows",
                                 "3", "--synthetic-data", "--latent-loss", "1"])
    config = config_from_args(args)
    assert (config.latent_d, config.delta_reg, config.delta_progressive, config.free_rows, config.latent_loss) == \
        (0.1, 2e-4, True, 3, 1.0)
    defaults = config_from_args(_parser().parse_args([]))
    assert {k: getattr(defaults, k) for k in OFF} == OFF == {k: getattr(TrainConfig(), k) for k in OFF}
    assert dataclasses.asdict(defaults) == dataclasses.asdict(TrainConfig())


# -------------------------------------------------------------------------------------------------
# truncation at test time


def _model_with_gs_average() -> CLIP2GAN:
    """The tiny model with a non-zero G.mapping.w_avg, which M copies (for_generator), as a trained M does."""
    G = tiny_generator()
    G.mapping.w_avg.copy_(torch.randn(16, generator=torch.Generator().manual_seed(1)))
    M = MappingNetwork.for_generator(G, in_dim=32, n_layers=2, hidden_dim=32, last_init_scale=1.0)
    assert torch.equal(M.w_avg, G.mapping.w_avg)
    return CLIP2GAN(tiny_clip(), M, G).eval()


def test_truncation_psi_1_changes_nothing_and_psi_0_is_gs_average_image():
    model = _model_with_gs_average()
    prompts = ["a person with red hair", "a smiling person wearing a hat"]
    plain = generate(model, prompts, n_per_prompt=2, seed=0)
    assert torch.equal(generate(model, prompts, n_per_prompt=2, seed=0, truncation=1.0), plain)
    assert torch.equal(model.generate(prompts, n_per_prompt=2, seed=0, truncation=1.0), plain)
    with torch.no_grad():
        avg = model.generator.synthesis(model.generator.mapping.w_avg.expand(1, 6, -1), noise_mode="const").clamp(-1, 1)
    for out in (generate(model, prompts, n_per_prompt=2, seed=0, truncation=0.0),
                model.generate(prompts, n_per_prompt=2, seed=0, truncation=0.0)):
        assert torch.allclose(out, avg.expand(4, -1, -1, -1), atol=1e-5)
    half = model.generate(prompts, n_per_prompt=2, seed=0, truncation=0.5)
    assert not torch.allclose(half, plain, atol=1e-3) and not torch.allclose(half, avg.expand(4, -1, -1, -1), atol=1e-3)
