"""generators: Table 6's rows and verdicts on constructed numbers, and a CI-size run end to end in the tiny world
(`tiny_world.py`) with a tiny DCGAN."""

from __future__ import annotations

import warnings

import matplotlib
import pytest
import torch
from tiny_world import RES, tiny_training_world

from clip2gan.clip_encoder import PromptTruncatedWarning
from clip2gan.dcgan import DCGANGenerator
from clip2gan.evaluation import generators
from clip2gan.toy.faces import AttributeClassifier
from clip2gan.train import ToyImages, discriminator_like

matplotlib.use("Agg")


def _method_row(g, method, space, fid, edit_fid, acc=0.8, edit_acc=0.7, se=1.0):
    return {"table": "methods", "generator": g, "method": method, "space": space, "fid": fid, "fid_se": se,
            "lpips_ref": 2.0, "text_acc": acc, "text_pairs": 1000, "edit_fid": edit_fid, "edit_fid_se": se,
            "edit_lpips": 1.5, "edit_acc": edit_acc, "edit_pres": 0.9, "edit_n": 500}


def _record():
    rows = [{"table": "references", "generator": "renders", "fid": 4.0, "fid_se": 1.0, "text_acc": 1.0, "text_pairs": 1000},
            {"table": "references", "generator": "stylegan2", "fid": 11.0, "fid_se": 1.0, "text_acc": 0.4, "text_pairs": 1000},
            {"table": "references", "generator": "dcgan", "fid": 80.0, "fid_se": 2.0, "text_acc": 0.4, "text_pairs": 1000}]
    for g, base in (("stylegan2", 40.0), ("dcgan", 120.0)):
        for method in ("paper", "bridged"):
            rows.append(_method_row(g, method, "wplus", base, base + 5, edit_acc=0.9))
            rows.append(_method_row(g, method, "clip", base, base + 50, edit_acc=0.5))
    return {"size": {"name": "full", "n_captions": 500, "n_edit": 500}, "rows": rows}


def test_table6_rows_on_constructed_numbers():
    rows = generators.table6_rows(_record())
    assert len(rows) == 2 * 2 * 2 + 3  # generator × method × space, then renders and each G's samples
    first = rows[0]
    assert (first["model"], first["method"], first["edit space"], first["FID"], first["edit FID"]) == \
        ("StyleGAN2", "paper", "GAN latent", 40.0, 45.0)
    assert [r["model"] for r in rows[-3:]] == ["renders (floor)", "StyleGAN2 samples (no M)", "DCGAN samples (no M)"]
    assert rows[-1]["edit FID"] is None and rows[-1]["accuracy"] == 0.4
    text = generators.table6_text(_record())
    assert "Table 6 in kind (full size" in text and "120.0 ± 1.0" in text


def test_table6_verdicts_follow_two_standard_errors():
    v = generators.table6_verdicts(_record())
    assert [x["verdict"] for x in v.values()] == ["holds here"] * 4
    rec = _record()
    for r in rec["rows"]:  # CLIP-space edits as good as the GAN's: the edit-FID claim is undecided
        if r.get("space") == "clip":
            r["edit_fid"] = r["edit_fid"] - 45.0
    v = generators.table6_verdicts(rec)
    assert v["editing in the GAN's latent space beats CLIP space (edit FID)"]["verdict"].startswith("inconclusive")
    for r in rec["rows"]:  # the DCGAN's M no better than chance: claim 1 does not hold
        if r["generator"] == "dcgan" and r["table"] == "methods":
            r["text_acc"] = 0.4
    assert v["M maps CLIP into another GAN (text → image accuracy above chance)"]["verdict"] == "holds here"
    v = generators.table6_verdicts(rec)
    assert v["M maps CLIP into another GAN (text → image accuracy above chance)"]["verdict"].startswith("inconclusive")


def test_unconditional_sampler_decodes_z_for_a_dcgan():
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=8, img_resolution=RES, channel_base=128, channel_max=16).eval()
    a = generators.unconditional_sampler(G)(["x", "y", "z"], 1, 5)
    b = generators.unconditional_sampler(G)(["x", "y", "z"], 1, 5)
    assert a.shape == (3, 3, RES, RES) and torch.equal(a, b)


@pytest.fixture(scope="module")
def classifier():
    return AttributeClassifier.from_pretrained()


def test_a_ci_size_run_trains_scores_caches_and_writes(tmp_path, classifier):
    def worlds():
        base = tiny_training_world()
        torch.manual_seed(1)
        G = DCGANGenerator(z_dim=8, img_resolution=RES, channel_base=128, channel_max=16).eval().requires_grad_(False)
        return {"stylegan2": base, "dcgan": {**base, "G": G, "D": discriminator_like(G)}}

    def run(**kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PromptTruncatedWarning)  # the tiny CLIP reads 24 tokens; captions are longer
            return generators.run_generators("ci", out=tmp_path / "out", work=tmp_path / "work", device="cpu",
                                             worlds=worlds(), classifier=classifier, progress=False, log=lambda *_: None,
                                             dataset_factory=lambda c: ToyImages(c.epoch_size, c.seed, RES), **kw)

    nothing = run(write=False, trained_only=True)
    assert nothing["missing"] == ["stylegan2", "dcgan"] and not (tmp_path / "out").exists()
    record = run()
    methods = [r for r in record["rows"] if r["table"] == "methods"]
    assert {(r["generator"], r["method"], r["space"]) for r in methods} == \
        {(g, m, s) for g in generators.GENERATORS for m in generators.METHODS for s in generators.SPACES}
    assert all(0 <= r["edit_acc"] <= 1 and r["edit_n"] == 16 and r["fid"] >= 0 for r in methods)
    for name in ("dcgan.csv", "dcgan.json", "dcgan.png"):
        assert (tmp_path / "out" / name).stat().st_size > 100, name
    again = run(write=False)  # every row from the cache, no retraining
    assert again["rows"] == record["rows"]
    assert len(generators.table6_rows(record)) == 11 and set(generators.table6_verdicts(record))


def test_half_mapping_keeps_config_and_bank_and_rounds_weights(tmp_path):
    from clip2gan.checkpoint import load_safetensors
    from clip2gan.mapping import MappingNetwork
    from clip2gan.model import load_mapping, save_mapping

    torch.manual_seed(0)
    M = MappingNetwork(in_dim=8, num_ws=1, w_dim=4, n_layers=2, hidden_dim=8)  # a few hundred weights
    src = save_mapping(M, tmp_path / "m.safetensors", {"profile": "toyfaces", "clip": "tiny", "generator": "tiny"},
                       feature_bank=torch.randn(5, 8))
    dst = generators.half_mapping(src, tmp_path / "m16.safetensors")
    (s32, c32), (s16, c16) = load_safetensors(src), load_safetensors(dst)
    assert c16["world"] == c32["world"] and c16["feature_bank_size"] == 5 and set(s16) == set(s32)
    assert all(v.dtype == torch.float16 for v in s16.values() if v.is_floating_point())
    M16, _ = load_mapping(dst)
    f = torch.randn(3, 8)
    assert torch.allclose(M16(f), M(f), atol=1e-2) and dst.with_suffix(".json").is_file()
