"""comparisons: the reference samplers, the scores, seed aggregation, the paired comparison, the level choice,
the tables and verdicts on constructed numbers, and a CI-size run end to end in the tiny world."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny_world import RES, tiny_generator, tiny_training_world

from clip2gan.evaluation import comparison_report as report
from clip2gan.evaluation import comparisons as cmp
from clip2gan.evaluation import sweeps
from clip2gan.toy.faces import ATTRIBUTES, AttributeClassifier, attributes_to_c, check_attributes


@pytest.fixture(scope="module")
def classifier():
    return AttributeClassifier.from_pretrained()


def test_stated_attributes_keep_what_a_caption_states_and_stay_consistent():
    rng = np.random.default_rng(0)
    for mentioned in ({"hair_color": "red"}, {"hair_length": "bald", "hat": "yes"}, {"bangs": "yes"},
                      {"eyeglasses": "yes", "skin": "dark"}, {}):
        for _ in range(50):
            attrs = cmp.stated_attributes(mentioned, rng)
            check_attributes(attrs)  # complete and consistent (a bald head has no colour, no bangs)
            assert all(attrs[a] == v for a, v in mentioned.items())


def test_ceiling_conditions_g_on_the_stated_attributes():
    G = tiny_generator(c_dim=attributes_to_c([{a: v[0] for a, v in ATTRIBUTES.items()} | {"hair_color": "black"}]).shape[1])
    captions, mentioned = ["a", "b"], [{"hat": "yes"}, {"hair_length": "bald"}]
    sample = cmp.ceiling_sampler(G, captions, mentioned)
    out = sample(["b", "a", "a"], 2, seed=3)
    assert out.shape == (6, 3, RES, RES) and torch.equal(out, sample(["b", "a", "a"], 2, seed=3))
    with pytest.raises(ValueError, match="its own captions"):
        sample(["c"], 1)


def test_select_level_takes_the_best_and_the_smallest_on_a_tie():
    assert cmp.select_level({0.5: 0.7, 1.0: 0.9, 1.5: 0.8}) == 1.0
    assert cmp.select_level({0.5: 0.9, 1.0: 0.9}) == 0.5
    with pytest.raises(ValueError):
        cmp.select_level({})


def test_aggregate_is_mean_and_sample_sd_over_seeds():
    agg = cmp.aggregate([{"fid": 10.0, "x": None}, {"fid": 14.0}, {"fid": float("nan")}], ["fid", "x"])
    assert agg == {"fid": {"mean": 12.0, "sd": pytest.approx(math.sqrt(8)), "n": 2}}
    assert cmp.aggregate([{"fid": 3.0}], ["fid"])["fid"]["sd"] == 0.0


def test_paired_preference_counts_wins_and_half_ties():
    ours = {"accuracy": torch.tensor([1.0, 0.5, 0.5, float("nan")]), "lowest_top": torch.tensor([0.9, 0.2, 0.5, 0.1])}
    theirs = {"accuracy": torch.tensor([0.5, 0.5, 1.0, 1.0]), "lowest_top": torch.tensor([0.1, 0.2, 0.9, 0.9])}
    p = cmp.paired_preference(ours, theirs)
    assert p["acc"] == pytest.approx((1 + 0.5 + 0) / 3) and p["n"] == 3
    assert p["real"] == pytest.approx((1 + 0.5 + 0 + 0) / 4)


def _entry(mean, sd=0.0, n=3, se=None, kind="method", **extra):
    e = {"kind": kind, "fid": {"mean": mean, "sd": sd, "n": n}, **extra}
    if se is not None:
        e["fid_se"] = {"mean": se, "sd": 0.0, "n": n}
    return e


def test_better_needs_two_standard_errors():
    assert report.better(_entry(10.0, se=1.0), _entry(20.0, se=1.0), "fid", higher=False) is True
    assert report.better(_entry(20.0, se=1.0), _entry(10.0, se=1.0), "fid", higher=False) is False
    assert report.better(_entry(10.0, sd=5.0), _entry(12.0, sd=5.0), "fid", higher=False) is None  # within the seeds' spread
    assert report.better(_entry(10.0), None, "fid") is None
    acc = {"text_acc": {"mean": 0.9, "sd": 0.0, "n": 1}, "text_pairs": {"mean": 1000, "sd": 0.0, "n": 1}}
    acc2 = {"text_acc": {"mean": 0.88, "sd": 0.0, "n": 1}, "text_pairs": {"mean": 1000, "sd": 0.0, "n": 1}}
    assert report.better(acc, acc2, "text_acc", pairs_key="text_pairs") is None  # 2 points on 1,000 pairs: within noise
    acc2["text_acc"]["mean"] = 0.8
    assert report.better(acc, acc2, "text_acc", pairs_key="text_pairs") is True


def _record():
    def gen(fid, lp, acc, kind="method", n=3):
        m = lambda v: {"mean": v, "sd": 0.01 * v, "n": n}  # noqa: E731
        return {"kind": kind, "fid": m(fid), "fid_se": m(1.0), "lpips_ref": m(lp), "text_acc": m(acc),
                "text_pairs": m(1000.0), "fid_clip": m(0.1), "lpips_div": m(1.0), "clip_score": m(0.3), "realism": m(0.9),
                "sec_per_image": m(0.001)}

    def edit(fid, acc):
        m = lambda v: {"mean": v, "sd": 0.0, "n": 1}  # noqa: E731
        return {"kind": "method", "edit_fid": m(fid), "edit_fid_se": m(1.0), "edit_acc": m(acc), "edit_realism": m(0.9),
                "edit_pres": m(0.9), "identity": m(0.9), "edit_n": m(500.0), "sec_per_edit": m(0.01)}

    return {"size": {"name": "full", "n_captions": 500, "n_validation": 200, "seeds": [0, 1, 2]},
            "selection": {"lafite": {"0.5": 0.6, "1": 0.8}}, "chosen": {"lafite": 1.0},
            "summary": {"generation": {"ceiling": gen(12, 0.3, 0.95, "reference"), "paper": gen(400, 0.6, 0.6),
                                       "bridged": gen(40, 0.4, 0.94), "styleclip": gen(100, 0.5, 0.8, n=1),
                                       "c3": gen(41, 0.4, 0.93)},
                        "editing": {"paper": edit(90, 0.4), "bridged": edit(30, 0.93), "styleclip": edit(60, 0.7)},
                        "editing_zoomed": {"paper": edit(95, 0.4), "bridged": edit(35, 0.9), "styleclip": edit(70, 0.6)}},
            "paired": {"paper": {"styleclip": {"acc": 0.3, "real": 0.2, "acc_sd": 0.02, "real_sd": 0.02, "n": 500, "seeds": 3}},
                       "bridged": {"styleclip": {"acc": 0.8, "real": 0.7, "acc_sd": 0.02, "real_sd": 0.02, "n": 500,
                                                 "seeds": 3}}}}


def test_tables_and_verdicts_on_constructed_numbers():
    record = _record()
    tables = report.comparison_tables(record)
    assert set(tables) == {"table1", "table2", "table5", "selection"}
    assert "ceiling (reference)" in tables["table1"] and "40.0 ± 0.4" in tables["table1"]
    assert "CLIP2GAN (bridged) vs styleclip" in tables["table2"] and "chosen" in tables["selection"]
    v = report.comparison_verdicts(record)
    assert v["table1 (bridged): CLIP2GAN beats StyleCLIP on FID and LPIPS"] == "holds here"
    assert v["table1 (paper): CLIP2GAN beats StyleCLIP on FID and LPIPS"] == "does not hold here"
    assert v["table2 (bridged): CLIP2GAN preferred over StyleCLIP on accuracy and realism"] == "holds here"
    assert v["table2 (paper): CLIP2GAN preferred over StyleCLIP on accuracy and realism"] == "does not hold here"
    t5 = "CLIP2GAN edits beat StyleCLIP on FID, accuracy and realism, in and out of distribution"
    assert v[f"table5 (paper): {t5}"] == "does not hold here"  # worse FID and accuracy, equal realism
    assert v[f"table5 (bridged): {t5}"].startswith("partly holds")  # better FID and accuracy, equal realism
    standing = v["where the bridged default stands (vs each text → image method)"]
    assert "paper: accuracy better, FID better" in standing and "c3: accuracy level, FID level" in standing


def test_generation_scores_on_a_fake_sampler(classifier):
    from clip2gan.evaluation.protocol import eval_data
    from clip2gan.losses import LPIPSLoss
    from clip2gan.model import build_clip

    size = cmp.SIZES["ci"]
    data = eval_data(size, 32)
    clip = build_clip({"profile": "toyfaces"})
    renders = cmp.renders_sampler(32, data.captions, data.mentioned)
    metrics, readings = cmp.generation_scores(renders, data, classifier, LPIPSLoss("clip", clip_encoder=clip), clip, size)
    # the renderer draws exactly what each caption states: the classifier reads almost all of it
    assert metrics["text_acc"] > 0.9 and metrics["realism"] > 0.8
    assert metrics["fid"] >= 0 and metrics["fid_clip"] >= 0 and -1 <= metrics["clip_score"] <= 1
    assert readings["accuracy"].shape == (size.n_captions,)
    noise = lambda caps, n=1, seed=0: torch.rand(len(caps) * n, 3, 32, 32) * 2 - 1  # noqa: E731
    bad, _ = cmp.generation_scores(noise, data, classifier, LPIPSLoss("clip", clip_encoder=clip), clip, size, text_free=True)
    assert "text_acc" not in bad and bad["fid"] > metrics["fid"]
    with pytest.raises(ValueError, match="renders"):
        cmp.generation_scores(lambda caps, n=1, seed=0: torch.zeros(1, 3, 32, 32), data, classifier,
                              LPIPSLoss("clip", clip_encoder=clip), clip, size)


def test_a_ci_size_comparison_runs_end_to_end_and_resumes(tmp_path, classifier):
    import warnings

    from clip2gan.clip_encoder import PromptTruncatedWarning
    from clip2gan.train import ToyImages

    world = tiny_training_world  # conditional tiny G, as the toy G: G's samples and the ceiling need labels

    def run(**kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PromptTruncatedWarning)  # the tiny CLIP reads 24 tokens; captions are longer
            return cmp.run_comparisons("ci", out=tmp_path / "out", work=tmp_path / "work", device="cpu", world=world(),
                                       classifier=classifier, progress=False, log=lambda *_: None,
                                       dataset_factory=lambda c: ToyImages(c.epoch_size, c.seed, RES), **kw)

    # a subset fills the score cache only (here: the paper's rule and the renders), and trains only what it needs
    part = run(methods=["paper", "renders"])
    assert {(r["method"], r["seed"]) for r in part["rows"]} == {("renders", None), ("paper", 0), ("paper", 1),
                                                                 ("paper+rerank", 0), ("paper+rerank", 1)} | {
        ("paper", 0), ("paper", 1)}
    assert not (tmp_path / "out").exists() and not (tmp_path / "work" / "c3-s0").exists()
    cache = sorted((tmp_path / "work" / "scores").glob("*.json"))
    assert cache and all(p.name.startswith("ci-eval0-") for p in cache)
    with pytest.raises(ValueError, match="unknown method"):
        run(methods=["dalle"])

    record = run()
    paper_rows = [r for r in part["rows"] if r["method"] == "paper" and r["table"] == "generation"]
    assert record["summary"]["generation"]["paper"]["fid"]["mean"] == pytest.approx(
        float(np.mean([r["fid"] for r in paper_rows])))  # the cached rows are the ones the full run reports
    size = cmp.SIZES["ci"]
    gen, ed = record["summary"]["generation"], record["summary"]["editing"]
    assert set(gen) == {"renders", "ceiling", "g_samples", *cmp.GENERATION, *(f"{m}+rerank" for m in cmp.RERANKED)}
    assert set(ed) == set(cmp.EDITING) == set(record["summary"]["editing_zoomed"])
    assert gen["paper"]["text_acc"]["n"] == len(size.seeds) and gen["styleclip"]["fid"]["n"] == 1
    assert "text_acc" not in gen["g_samples"] and gen["renders"]["text_acc"]["mean"] > 0.9
    assert set(record["selection"]) == {"lafite", "c3"} and record["chosen"]["lafite"] in size.levels["lafite"]
    assert set(record["paired"]["bridged"]) >= {"paper", "styleclip", "clip2latent"}
    for name in ("comparisons.csv", "comparisons.json", "comparisons.png", "comparisons_samples.png", "comparisons_edits.png"):
        assert (tmp_path / "out" / name).stat().st_size > 100, name
    trained = sorted(p.name for p in (tmp_path / "work").iterdir())
    assert {"clip2gan-s0", "c3-s1", "lafite-s0", "clip2latent-s1", "deltaedit-s0", "select"} <= set(trained)
    assert report.comparison_tables(record)["table1"] and report.comparison_verdicts(record)
    # a finished M is reused when the settings are the same, and never overwritten when they differ
    config = cmp._mapping_config(size, tmp_path / "work" / "c3-s1", 1, "cpu", inputs="c3", c3_sigma=record["chosen"]["c3"])
    before = (tmp_path / "work" / "c3-s1" / "mapping.safetensors").stat().st_mtime_ns
    assert sweeps.train_variant(config, world())["mapping"].stat().st_mtime_ns == before
    with pytest.raises(FileExistsError, match="c3_sigma"):
        sweeps.train_variant(cmp._mapping_config(size, tmp_path / "work" / "c3-s1", 1, "cpu", inputs="c3", c3_sigma=9.0), world())
