"""The published bridges that change M's input features, each against its paper's formula on a tiny case:
mean shift (Liang et al. 2022), C3's collapse and corrupt (Zhang et al. 2024), LAFITE's pseudo text
features (Zhou et al. 2022), and the training runs that use them (tiny world of `tiny_world.py`)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from tiny_world import RES, tiny_clip, tiny_generator

from clip2gan.losses import LPIPSLoss
from clip2gan.mapping import MappingNetwork
from clip2gan.modality_gap import c3_corrupt, collapse, feature_bank, lafite_perturb, recentre
from clip2gan.model import CLIP2GAN, load_mapping
from clip2gan.train import ToyImages, TrainConfig, Trainer, discriminator_like


def _unit(n, d, seed):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_recentre_is_the_mean_shift_of_mind_the_gap():
    # Liang et al.: move a text embedding by the gap vector Δ = mean(image) − mean(text), back onto the sphere
    f, mi, mt = _unit(5, 8, 0), torch.randn(8), torch.randn(8)
    expected = (f + (mi - mt)) / (f + (mi - mt)).norm(dim=-1, keepdim=True)
    assert torch.allclose(recentre(f, mi, mt), expected, atol=1e-6)


def test_collapse_shifts_without_renormalising():
    f, mi, mt = _unit(4, 6, 1), torch.randn(6), torch.randn(6)
    out = collapse(f, mt, mi)
    assert torch.allclose(out, f - mt + mi)
    assert not torch.allclose(out.norm(dim=-1), torch.ones(4))  # C3 keeps the centred, unnormalised embedding
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        collapse(f[0], mt, mi)


def test_c3_corrupt_adds_gaussian_noise_of_norm_sigma():
    f = _unit(3, 16, 2)
    out = c3_corrupt(f, 0.5, generator=torch.Generator().manual_seed(7))
    eps = torch.randn(3, 16, generator=torch.Generator().manual_seed(7))
    assert torch.allclose(out, f + 0.5 * eps / 4.0, atol=1e-6)  # σ ε / √D with D = 16
    assert torch.equal(c3_corrupt(f, 0.0), f)
    big = c3_corrupt(_unit(2000, 512, 3), 0.5) - _unit(2000, 512, 3)
    assert big.norm(dim=-1).mean().item() == pytest.approx(0.5, rel=0.02)  # σ is the noise vector's norm
    with pytest.raises(ValueError, match="sigma"):
        c3_corrupt(f, -1.0)


def test_lafite_perturb_is_their_gaussian_pseudo_text_feature():
    h = torch.randn(3, 8, generator=torch.Generator().manual_seed(4))  # not unit: the formula scales by ‖h‖
    out = lafite_perturb(h, 0.3, generator=torch.Generator().manual_seed(9))
    eps = torch.randn(3, 8, generator=torch.Generator().manual_seed(9))
    raw = h + 0.3 * eps * h.norm(dim=-1, keepdim=True) / eps.norm(dim=-1, keepdim=True)
    assert torch.allclose(out, raw / raw.norm(dim=-1, keepdim=True), atol=1e-6)
    assert torch.allclose(lafite_perturb(h, 0.0), F.normalize(h, dim=-1), atol=1e-6)
    f = _unit(4000, 512, 5)
    cos = (lafite_perturb(f, 1.0, generator=torch.Generator().manual_seed(1)) * f).sum(-1).mean().item()
    assert cos == pytest.approx(1 / math.sqrt(2), abs=0.01)  # high-dimensional ε is almost orthogonal to h
    with pytest.raises(ValueError, match="xi"):
        lafite_perturb(h, -0.1)


def test_centred_mapping_subtracts_its_input_mean():
    torch.manual_seed(0)
    plain = MappingNetwork(8, 3, 4, n_layers=2, hidden_dim=16)
    centred = MappingNetwork(8, 3, 4, n_layers=2, hidden_dim=16, centre_input=True)
    state = dict(plain.state_dict(), input_mean=torch.randn(8))
    centred.load_state_dict(state)
    f = _unit(5, 8, 6)
    assert torch.allclose(centred(f), plain(f - state["input_mean"]), atol=1e-6)
    with pytest.raises(ValueError, match="centre_input"):
        plain.set_input_mean(torch.zeros(8))
    with pytest.raises(ValueError, match=r"\[8\]"):
        centred.set_input_mean(torch.zeros(7))
    assert "input_mean" not in plain.state_dict()  # mappings saved before C3 existed still load strictly
    old_config = {k: v for k, v in plain.config.items() if k != "centre_input"}
    assert not MappingNetwork(**old_config).centre_input


def _trainer(tmp_path, **kw) -> Trainer:
    clip, G = tiny_clip(), tiny_generator()
    world = {"clip": clip, "G": G, "D": discriminator_like(G), "identity": None,
             "lpips": LPIPSLoss("clip", clip_encoder=clip), "world": {"profile": "toyfaces", "clip": "tiny"}}
    # batch 4, 16 images, 2 steps: enough to train, export and reload in a second
    config = TrainConfig(out=str(tmp_path / "run"), epochs=1, epoch_size=16, batch_size=4, layers=2, hidden_dim=16,
                         identity=False, device="cpu", sample_every=0, ckpt_minutes=1e9, max_steps=2, bank_size=16, **kw)
    return Trainer(config, world=world, dataset=ToyImages(16, 0, RES), progress=False)


def test_c3_run_trains_on_centred_corrupted_features_and_defaults_to_collapse(tmp_path):
    t = _trainer(tmp_path, inputs="c3", c3_sigma=0.4)
    mean = feature_bank(t.clip, t.dataset, 16).mean(0)
    assert torch.allclose(t.M.input_mean, mean, atol=1e-6)  # collapse: the training images' mean feature
    f = _unit(4, t.clip.embed_dim, 8)
    state = t.noise_rng.get_state()
    fed = t.training_inputs(f)
    t.noise_rng.set_state(state)
    assert torch.allclose(fed, c3_corrupt(f, 0.4, generator=t.noise_rng))  # corrupt: σ = 0.4, not renormalised
    assert not t.noise.renormalize  # the diversity noise on top stays additive too
    t.fit()
    M, cfg = load_mapping(tmp_path / "run" / "mapping.safetensors")
    assert M.centre_input and cfg["text_correction"] == "collapse" and cfg["edit_mode"] == "paper"
    assert torch.allclose(torch.tensor(cfg["feature_means"]["image"]), M.input_mean, atol=1e-6)
    model = CLIP2GAN.from_checkpoint(tmp_path / "run", clip=t.clip, generator=t.G)
    assert model.text_correction == "collapse" and model.method == "custom"
    prompt = ["a person with red hair"]
    f_text = t.clip.encode_text(prompt)
    inner = MappingNetwork(**{**M.config, "centre_input": False})
    inner.load_state_dict({k: v for k, v in M.state_dict().items() if k != "input_mean"})
    # at test time M meets f_text − mean(text): C3's collapse of the text modality
    assert torch.allclose(model.encode_text(prompt), inner(f_text - model.text_mean), atol=1e-5)
    images = torch.stack([t.dataset[i]["image"] for i in range(2)])
    assert torch.allclose(model.encode_image(images), inner(t.clip.encode_image(images) - M.input_mean), atol=1e-5)


def test_lafite_run_trains_on_pseudo_text_features_and_defaults_to_the_paper_rule(tmp_path):
    t = _trainer(tmp_path, inputs="lafite", lafite_xi=0.7)
    f = _unit(4, t.clip.embed_dim, 9)
    state = t.noise_rng.get_state()
    fed = t.training_inputs(f)
    t.noise_rng.set_state(state)
    assert torch.allclose(fed, lafite_perturb(f, 0.7, generator=t.noise_rng))
    assert not t.M.centre_input
    t.fit()
    model = CLIP2GAN.from_checkpoint(tmp_path / "run", clip=t.clip, generator=t.G)
    assert model.text_correction is None and model.method == "paper"  # LAFITE feeds text features as they are


def test_image_run_is_unchanged(tmp_path):
    t = _trainer(tmp_path)
    f = _unit(4, t.clip.embed_dim, 10)
    assert torch.equal(t.training_inputs(f), f) and t.noise.renormalize
    with pytest.raises(ValueError):
        TrainConfig(inputs="text")
