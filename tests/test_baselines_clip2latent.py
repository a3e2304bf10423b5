"""The clip2latent baseline (clip2gan.baselines.clip2latent): its formulas on tiny cases, training,
resuming, checkpoints and sampling."""

from __future__ import annotations

import json
import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from clip2gan.baselines import clip2latent as c2l
from clip2gan.baselines.clip2latent import (
    Clip2Latent,
    Clip2LatentConfig,
    Clip2LatentTrainer,
    Denoiser,
    augment_embedding,
    denormalise_w,
    diffusion_loss,
    forward_noise,
    generate_pairs,
    guided,
    normalise_w,
    sampling_scheduler,
    train_scheduler,
    w_statistics,
)
from clip2gan.baselines.rerank import rerank
from clip2gan.checkpoint import CorruptCheckpoint, save_safetensors
from clip2gan.clip_encoder import check_prompts
from clip2gan.toy.faces import C_DIM

# -------------------------------------------------------------------------------------------------
# a tiny world: a linear "StyleGAN2" and a linear "CLIP" (8 px images, 8-d w, 6-d embeddings), so
# that pair generation, training and sampling take milliseconds


class TinyG(nn.Module):
    z_dim, w_dim, num_ws, img_resolution, img_channels = 8, 8, 3, 8, 3

    def __init__(self, c_dim: int = 0):
        super().__init__()
        torch.manual_seed(1)
        self.c_dim = c_dim
        self.map = nn.Linear(self.z_dim + c_dim, self.w_dim)
        self.syn = nn.Linear(self.w_dim, 3 * 8 * 8)
        self.requires_grad_(False)

    def mapping(self, z, c):
        w = self.map(torch.cat([z, c], dim=1))
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)

    def synthesis(self, ws, noise_mode="const"):
        assert ws.shape[1:] == (self.num_ws, self.w_dim)
        return torch.tanh(self.syn(ws.mean(1))).view(-1, 3, 8, 8)


class TinyClip(nn.Module):
    embed_dim = 6

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.img = nn.Linear(3 * 8 * 8, self.embed_dim)
        self.requires_grad_(False)

    def encode_image(self, x):
        return F.normalize(self.img(x.flatten(1)), dim=-1)

    def encode_text(self, prompts):
        prompts = check_prompts(prompts)
        seeds = [sum(ord(ch) * (i + 1) for i, ch in enumerate(p)) for p in prompts]
        return F.normalize(torch.stack([torch.randn(self.embed_dim, generator=torch.Generator().manual_seed(s))
                                        for s in seeds]), dim=-1)


def tiny_config(out, **changes) -> Clip2LatentConfig:
    # 256 pairs, 16 steps of 32, a 32-wide 2-block denoiser, 4 sampling steps: a run takes well under a second
    base = dict(out=str(out), pairs=256, pair_batch_size=64, steps=16, batch_size=32, hidden_dim=32, blocks=2,
                warmup_steps=2, log_every=4, sample_steps=4, ckpt_minutes=60.0)
    base.update(changes)
    return Clip2LatentConfig(**base)


def train(out, **changes) -> Clip2LatentTrainer:
    trainer = Clip2LatentTrainer(tiny_config(out, **changes), clip=TinyClip(), generator=TinyG(), progress=False)
    trainer.fit(resume=changes.pop("_resume", False))
    return trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny finished run shared by the sampling and checkpoint tests."""
    out = tmp_path_factory.mktemp("clip2latent") / "run"
    trainer = train(out)
    return out, trainer


# -------------------------------------------------------------------------------------------------
# the formulas


def cosine_alphas_cumprod(T: int, s: float = 0.008) -> torch.Tensor:
    """ᾱ_t of the cosine schedule (Nichol & Dhariwal 2021), β clipped at 0.999, written from the formula."""
    f = [math.cos((i / T + s) / (1 + s) * math.pi / 2) ** 2 for i in range(T + 1)]
    betas = torch.tensor([min(1 - f[i + 1] / f[i], 0.999) for i in range(T)], dtype=torch.float64)
    return torch.cumprod(1 - betas, dim=0)


def test_forward_noising_is_the_ddpm_formula_on_the_cosine_schedule():
    scheduler = train_scheduler(1000, "squaredcos_cap_v2")
    alpha_bar = cosine_alphas_cumprod(1000)
    assert torch.allclose(scheduler.alphas_cumprod.double(), alpha_bar, atol=1e-6)
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    t = torch.tensor([0, 1, 250, 700, 999])
    a = alpha_bar[t].float()[:, None]
    assert torch.allclose(forward_noise(scheduler, x0, eps, t), a.sqrt() * x0 + (1 - a).sqrt() * eps, atol=1e-5)


@pytest.mark.parametrize("prediction", ["sample", "epsilon"])
def test_training_loss_noises_with_the_formula_and_drops_the_condition(prediction):
    # the loss a step minimises, rebuilt by hand from the same draws
    torch.manual_seed(0)
    scheduler = train_scheduler(1000, "squaredcos_cap_v2", prediction)
    net = Denoiser(w_dim=4, embed_dim=3, hidden_dim=16, blocks=1)
    x0, e = torch.randn(64, 4), F.normalize(torch.randn(64, 3), dim=-1)
    loss = diffusion_loss(net, scheduler, x0, e, cond_drop=0.5, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, 1000, (64,), generator=g)
    eps = torch.randn(64, 4, generator=g)
    drop = torch.rand(64, generator=g) < 0.5
    a = scheduler.alphas_cumprod[t][:, None]
    x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
    e_used = torch.where(drop[:, None], net.null_embedding.expand_as(e), e)
    pred = net(x_t, t, e_used)
    target = x0 if prediction == "sample" else eps
    assert 0 < drop.sum() < 64
    assert torch.allclose(loss, ((pred - target) ** 2).mean(), atol=1e-6)


def test_classifier_free_guidance_combination():
    uncond, cond = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.0])
    assert torch.equal(guided(uncond, cond, 1.0), cond)
    assert torch.equal(guided(uncond, cond, 0.0), uncond)
    assert torch.allclose(guided(uncond, cond, 2.5), uncond + 2.5 * (cond - uncond))
    # guiding x0 is guiding ε: ε = (x_t − sqrt(ᾱ) x0) / sqrt(1 − ᾱ) is affine in x0
    a, x_t, s = torch.tensor(0.3), torch.randn(4), 3.0
    x_u, x_c = torch.randn(4), torch.randn(4)
    eps = lambda x0: (x_t - a.sqrt() * x0) / (1 - a).sqrt()  # noqa: E731
    assert torch.allclose(eps(guided(x_u, x_c, s)), guided(eps(x_u), eps(x_c), s), atol=1e-5)


def test_the_sampler_guides_with_the_null_embedding(trained):
    _, trainer = trained
    model = trainer.model()
    x, e = torch.randn(3, 8), F.normalize(torch.randn(3, 6), dim=-1)
    t = torch.tensor(500)
    with torch.no_grad():
        cond = model.denoiser(x, t.expand(3), e)
        uncond = model.denoiser(x, t.expand(3), e, torch.ones(3, dtype=torch.bool))
        assert torch.allclose(model._predict(x, t, e, 2.0), guided(uncond, cond, 2.0), atol=1e-5)
        assert torch.allclose(model._predict(x, t, e, 1.0), cond)


def test_noise_augmentation_keeps_unit_norm_and_sigma_zero_is_identity():
    f = F.normalize(torch.randn(2000, 512, generator=torch.Generator().manual_seed(0)), dim=-1)
    assert torch.allclose(augment_embedding(f, 0.0), f, atol=1e-7)  # σ = 0: unchanged (up to renormalising)
    for sigma in (0.5, 1.0, 2.0):
        out = augment_embedding(f, sigma, generator=torch.Generator().manual_seed(1))
        assert torch.allclose(out.norm(dim=-1), torch.ones(2000), atol=1e-5)
        # u is a unit direction nearly orthogonal to f: cos(ẽ, e) ≈ 1 / sqrt(1 + σ²)
        assert abs(float((out * f).sum(-1).mean()) - 1 / math.sqrt(1 + sigma ** 2)) < 0.01
    same = augment_embedding(f[:4], 1.0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(same, augment_embedding(f[:4], 1.0, generator=torch.Generator().manual_seed(7)))
    assert torch.allclose(augment_embedding(3 * f[:4], 0.0), f[:4], atol=1e-6)  # embeddings are normalised first
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        augment_embedding(f[0], 1.0)


def test_w_normalisation_round_trip():
    w = 3 + 2 * torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    mean, std = w_statistics(w)
    w_hat = normalise_w(w, mean, std)
    assert torch.allclose(w_hat.mean(0), torch.zeros(8), atol=1e-5)
    assert torch.allclose(w_hat.std(0), torch.ones(8), atol=1e-5)
    assert torch.allclose(denormalise_w(w_hat, mean, std), w, atol=1e-5)
    with pytest.raises(ValueError):
        w_statistics(w[:1])


# -------------------------------------------------------------------------------------------------
# pairs and training


def test_pairs_come_from_g_with_sampled_labels_and_are_deterministic():
    G, clip = TinyG(c_dim=C_DIM), TinyClip()
    w, f = generate_pairs(G, clip, 100, seed=3, batch_size=32, progress=False)
    assert w.shape == (100, 8) and f.shape == (100, 6)
    assert torch.allclose(f.norm(dim=-1), torch.ones(100), atol=1e-5)
    w2, f2 = generate_pairs(G, clip, 100, seed=3, batch_size=32, progress=False)
    assert torch.equal(w, w2) and torch.equal(f, f2)
    assert not torch.equal(w, generate_pairs(G, clip, 100, seed=4, batch_size=32, progress=False)[0])
    # e is C_img of G.synthesis(w repeated on every row)
    x = G.synthesis(w[:5].unsqueeze(1).repeat(1, G.num_ws, 1)).clamp(-1, 1)
    assert torch.allclose(f[:5], clip.encode_image(x), atol=1e-6)
    with pytest.raises(ValueError, match="labels"):
        generate_pairs(TinyG(c_dim=5), clip, 10, progress=False)


def test_training_lowers_the_loss(tmp_path):
    # 60 steps is enough for the tiny denoiser to beat its initial loss by a wide margin
    train(tmp_path / "run", steps=60, log_every=10, lr=3e-3)
    records = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert records[0]["event"] == "pairs"
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0]
    assert (tmp_path / "run" / "prior.safetensors").is_file() and (tmp_path / "run" / "prior.json").is_file()


def test_a_killed_run_resumes_to_the_uninterrupted_result(tmp_path):
    whole = train(tmp_path / "whole")
    part = train(tmp_path / "part", max_steps=7)  # stops at step 7 with its checkpoint, as a killed run would
    assert part.step == 7 and not (tmp_path / "part" / "prior.safetensors").exists()
    with open(tmp_path / "part" / "log.jsonl", "a") as f:  # a record the killed run wrote after its checkpoint
        f.write(json.dumps({"step": 8, "loss": 123.0}) + "\n")
    resumed = Clip2LatentTrainer(tiny_config(tmp_path / "part"), clip=TinyClip(), generator=TinyG(), progress=False)
    resumed.fit(resume=True)
    assert resumed.step == whole.step == 16
    for a, b in ((whole.denoiser, resumed.denoiser), (whole.ema, resumed.ema)):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
            assert torch.equal(x, y), name
    log = lambda run: [r for r in map(json.loads, (tmp_path / run / "log.jsonl").read_text().splitlines()) if "loss" in r]  # noqa: E731
    assert [r["loss"] for r in log("whole")] == [r["loss"] for r in log("part")]


def test_a_run_is_not_overwritten_and_resumes_only_with_its_settings(trained, tmp_path):
    out, _ = trained
    with pytest.raises(FileExistsError, match="--resume"):
        Clip2LatentTrainer(tiny_config(out), clip=TinyClip(), generator=TinyG(), progress=False).fit()
    with pytest.raises(ValueError, match="hidden_dim"):
        Clip2LatentTrainer(tiny_config(out, hidden_dim=16), clip=TinyClip(), generator=TinyG(), progress=False).fit(resume=True)


def test_a_corrupt_training_checkpoint_is_reported(tmp_path):
    train(tmp_path / "run", max_steps=3)
    (tmp_path / "run" / "checkpoint.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CorruptCheckpoint, match="cannot resume"):
        Clip2LatentTrainer(tiny_config(tmp_path / "run"), clip=TinyClip(), generator=TinyG(), progress=False).fit(resume=True)


def test_config_checks_its_values():
    assert Clip2LatentConfig(seed=2).out == "runs/clip2latent-s2"
    for bad in (dict(cond_drop=1.0), dict(embed_noise=-1.0), dict(steps=0), dict(prediction="v"), dict(sampler="euler")):
        with pytest.raises(ValueError):
            Clip2LatentConfig(**bad)


# -------------------------------------------------------------------------------------------------
# the prior file and sampling


def test_checkpoint_round_trip(trained):
    out, trainer = trained
    model = Clip2Latent.from_checkpoint(out, clip=TinyClip(), generator=TinyG())
    live = trainer.model()
    for (name, x), (_, y) in zip(model.denoiser.state_dict().items(), live.denoiser.state_dict().items()):
        assert torch.equal(x, y), name
    assert torch.equal(model.w_mean, trainer.w_mean) and torch.equal(model.w_std, trainer.w_std)
    assert (model.guidance, model.sampler, model.steps) == (1.0, "ddim", 4)
    f = F.normalize(torch.randn(5, 6), dim=-1)
    assert torch.equal(model.sample_w(f, seed=1), live.sample_w(f, seed=1))
    meta = json.loads((out / "prior.json").read_text())
    assert meta["format"] == c2l.PRIOR_FORMAT and meta["train"]["pairs"] == 256 and meta["steps"] == 16


def test_missing_damaged_or_foreign_prior_files_are_reported(trained, tmp_path):
    out, _ = trained
    with pytest.raises(FileNotFoundError, match="prior not found"):
        Clip2Latent.from_checkpoint(tmp_path / "nowhere", clip=TinyClip(), generator=TinyG())
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(CorruptCheckpoint):
        Clip2Latent.from_checkpoint(bad, clip=TinyClip(), generator=TinyG())
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes((out / "prior.safetensors").read_bytes()[:-100])
    with pytest.raises(CorruptCheckpoint):
        Clip2Latent.from_checkpoint(truncated, clip=TinyClip(), generator=TinyG())
    flipped = bytearray((out / "prior.safetensors").read_bytes())
    flipped[-5] ^= 0xFF  # still parses, but the tensor checksum no longer matches
    (tmp_path / "flipped.safetensors").write_bytes(bytes(flipped))
    with pytest.raises(CorruptCheckpoint, match="checksum"):
        Clip2Latent.from_checkpoint(tmp_path / "flipped.safetensors", clip=TinyClip(), generator=TinyG())
    other = save_safetensors({"x": torch.zeros(2)}, tmp_path / "other.safetensors", {"format": "something else"})
    with pytest.raises(ValueError, match="not a clip2latent prior"):
        Clip2Latent.from_checkpoint(other, clip=TinyClip(), generator=TinyG())


@pytest.mark.parametrize("sampler", ["ddim", "dpm"])
def test_generation_is_deterministic_per_seed_with_the_right_shapes(trained, sampler):
    out, _ = trained
    model = Clip2Latent.from_checkpoint(out, clip=TinyClip(), generator=TinyG())
    captions = ["a face", "another face"]
    images = model.generate(captions, n_per_prompt=3, seed=0, sampler=sampler, guidance=2.0)
    assert images.shape == (6, 3, 8, 8) and images.min() >= -1 and images.max() <= 1
    assert torch.equal(images, model.generate(captions, n_per_prompt=3, seed=0, sampler=sampler, guidance=2.0))
    assert not torch.equal(images, model.generate(captions, n_per_prompt=3, seed=1, sampler=sampler, guidance=2.0))
    # prompt-major: rows 0-2 are sampled from caption 0's embedding, rows 3-5 from caption 1's
    e = model.text_features(captions).repeat_interleave(3, dim=0)
    w = model.sample_w(e, seed=0, sampler=sampler, guidance=2.0)
    assert w.shape == (6, 8)
    assert torch.allclose(images, model.synthesize(w), atol=1e-6)


def test_generate_with_rerank_keeps_the_best_of_its_candidates(trained):
    out, _ = trained
    model = Clip2Latent.from_checkpoint(out, clip=TinyClip(), generator=TinyG())
    kept = model.generate(["a face", "a hat"], n_per_prompt=2, seed=3, rerank=4)
    assert kept.shape == (4, 3, 8, 8)
    assert torch.equal(kept, rerank(partial(model.generate), model.clip, ["a face", "a hat"], 4, seed=3, n_per_prompt=2))


def test_sampling_errors_are_clear(trained):
    out, _ = trained
    model = Clip2Latent.from_checkpoint(out, clip=TinyClip(), generator=TinyG())
    with pytest.raises(ValueError, match="empty"):
        model.generate([])
    with pytest.raises(ValueError, match="n_per_prompt"):
        model.generate(["a face"], n_per_prompt=0)
    with pytest.raises(ValueError, match=r"features must be \[N, 6\]"):
        model.sample_w(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="empty"):
        model.sample_w(torch.zeros(0, 6))
    with pytest.raises(ValueError, match=r"w must be \[N, 8\]"):
        model.synthesize(torch.zeros(2, 3, 8))
    with pytest.raises(ValueError, match="sampler"):
        model.generate(["a face"], sampler="euler")
    with pytest.raises(ValueError, match="steps"):
        sampling_scheduler(model.scheduler_config, "ddim", 0)
    with pytest.raises(ValueError, match="embeddings"):
        Clip2Latent(model.denoiser, model.w_mean, model.w_std, model.scheduler_config, SimpleClip(5), TinyG())


class SimpleClip(TinyClip):
    def __init__(self, dim: int):
        super().__init__()
        self.embed_dim = dim


# -------------------------------------------------------------------------------------------------
# the command line, on the toy world's real CLIP and G


def test_command_line_trains_resumes_and_loads_on_the_toy_world(tmp_path, capsys):
    # 64 pairs, 3 steps of a 16-wide 1-block denoiser, 2 sampling steps: seconds on one thread
    out = tmp_path / "run"
    flags = ["--out", str(out), "--seed", "1", "--pairs", "64", "--pair-batch-size", "32", "--steps", "3",
             "--batch-size", "16", "--hidden-dim", "16", "--blocks", "1", "--sample-steps", "2", "--no-progress"]
    assert c2l.main(flags + ["--max-steps", "2"]) == 0
    assert not (out / "prior.safetensors").exists()
    with pytest.raises(SystemExit, match="--pairs"):
        c2l.main(flags[:5] + ["128"] + flags[6:] + ["--resume"])
    assert c2l.main(flags + ["--resume"]) == 0
    meta = json.loads((out / "prior.json").read_text())
    assert meta["command"] == "python -m clip2gan.baselines.clip2latent " + " ".join(flags + ["--max-steps", "2"])
    assert meta["steps"] == 3 and meta["world"]["profile"] == "toyfaces" and meta["world_sha256"]
    model = Clip2Latent.from_checkpoint(out)
    images = model.generate(["This person has red hair and is smiling.", "A bald man."], seed=0)
    assert images.shape == (2, 3, 32, 32)
    help_text = c2l._parser().format_help()
    for field in c2l.dataclasses.fields(Clip2LatentConfig):
        assert "--" + field.name.replace("_", "-") in help_text
