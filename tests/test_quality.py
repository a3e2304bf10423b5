"""quality: the options' configs, the ship rule and the tables on constructed numbers, and a CI-size run end to
end in the tiny world (`tiny_world.py`)."""

from __future__ import annotations

import dataclasses
import warnings

import matplotlib
import pytest
from tiny_world import RES, tiny_training_world

from clip2gan.clip_encoder import PromptTruncatedWarning
from clip2gan.evaluation import quality, sweeps
from clip2gan.toy.faces import AttributeClassifier
from clip2gan.train import ToyImages

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def classifier():
    return AttributeClassifier.from_pretrained()


def test_option_configs_are_the_paper_recipe_plus_the_option():
    size = quality.SIZES["full"]
    base = quality.option_config(size, "base", 1, "w")
    assert (base.epochs, base.epoch_size, base.batch_size, base.seed) == (8, 2048, 32, 1)
    assert (base.latent_d, base.delta_reg, base.free_rows, base.latent_loss, base.synthetic_data) == (0.0, 0.0, None, 0.0, False)
    assert quality.option_config(size, "w", 0, "w").free_rows == 1
    e4e = quality.option_config(size, "e4e_delta", 0, "w")
    assert e4e.delta_reg == 2e-4 and e4e.delta_progressive and e4e.out.endswith("e4e_delta-s0")
    assert quality.option_config(size, "latent_loss", 0, "w").synthetic_data
    assert set(quality.OPTIONS) == set(quality.OPTION_NOTES)
    with pytest.raises(ValueError, match="unknown option"):
        quality.option_config(size, "stylegan3", 0, "w")


def _m(mean, sd=0.0, n=3):
    return {"mean": mean, "sd": sd, "n": n}


def _summary(**options):
    base = {"fid": _m(40.0, 2.0), "fid_se": _m(1.0), "text_acc": _m(0.95, 0.005), "edit_pres": _m(0.94, 0.005)}
    table = {"base/bridged": base}
    for name, (fid, acc, keep) in options.items():
        table[f"{name}/bridged"] = {"fid": _m(fid, 2.0), "fid_se": _m(1.0), "text_acc": _m(acc, 0.005),
                                    "edit_pres": _m(keep, 0.005)}
        table[f"{name}/paper"] = {"fid": _m(1.0), "text_acc": _m(0.99), "edit_pres": _m(0.99)}  # another method: ignored
    return {"methods": table}


def test_ship_choice_wants_a_lower_fid_beyond_noise_without_losing_a_point():
    got = quality.ship_choice(_summary(a=(30.0, 0.945, 0.935), b=(20.0, 0.90, 0.94), c=(38.0, 0.96, 0.95),
                                       d=(25.0, 0.95, 0.92)))
    assert got["option"] == "a"  # b is lower still but loses accuracy, d loses edit keep, c is within noise
    assert got["reasons"] == {"a": "eligible", "b": "loses more than a point of text_acc",
                              "c": "FID not lower beyond 2 SE", "d": "loses more than a point of edit_pres"}
    assert quality.ship_choice(_summary(e=(60.0, 0.95, 0.94)))["option"] is None
    assert quality.ship_choice(_summary(e=(60.0, 0.95, 0.94)))["reasons"]["e"] == "FID higher"
    with pytest.raises(ValueError, match="base/bridged"):
        quality.ship_choice({"methods": {}})


def test_summarise_groups_rows_by_table_and_name():
    rows = [{"table": "methods", "option": "w", "method": "paper", "seed": s, "fid": f, "text_acc": 0.5}
            for s, f in ((0, 10.0), (1, 20.0))]
    rows += [{"table": "truncation", "option": "base", "method": "bridged", "seed": 0, "psi": 0.5, "fid": 3.0},
             {"table": "reconstruction", "option": "w", "seed": 0, "rec_fid": 7.0},
             {"table": "references", "option": "renders", "fid": 1.0}]
    s = quality.summarise(rows)
    assert s["methods"]["w/paper"]["fid"] == {"mean": 15.0, "sd": pytest.approx(7.0711, abs=1e-4), "n": 2}
    assert s["truncation"]["bridged/psi=0.5"]["fid"]["mean"] == 3.0
    assert s["reconstruction"]["w"]["rec_fid"]["n"] == 1 and s["references"]["renders"]["fid"]["mean"] == 1.0


def test_a_ci_size_quality_run_trains_scores_resumes_and_writes(tmp_path, classifier):
    world = tiny_training_world  # conditional tiny G, as the toy G: G's samples and the ceiling need labels

    def run(**kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PromptTruncatedWarning)  # the tiny CLIP reads 24 tokens; captions are longer
            return quality.run_quality("ci", out=tmp_path / "out", work=tmp_path / "work", device="cpu", world=world(),
                                       classifier=classifier, progress=False, log=lambda *_: None,
                                       dataset_factory=lambda c: ToyImages(c.epoch_size, c.seed, RES), **kw)

    nothing = run(options=["w"], write=False, trained_only=True)  # nothing trained yet: every seed is missing
    assert nothing["missing"] == ["w-s0", "w-s1"] and "methods" not in nothing["summary"]
    part = run(options=["w"], write=False)
    assert not (tmp_path / "out").exists() and set(part["summary"]["methods"]) == {"w/paper", "w/bridged"}
    with pytest.raises(ValueError, match="unknown option"):
        run(options=["latent_loss"])  # not an option of the CI size
    record = run()
    size = quality.SIZES["ci"]
    s = record["summary"]
    assert set(s["methods"]) == {f"{o}/{m}" for o in size.options for m in ("paper", "bridged")}
    assert s["methods"]["w/paper"]["fid"] == part["summary"]["methods"]["w/paper"]["fid"]  # the cached rows
    assert all(e["fid"]["n"] == len(size.seeds) and "edit_pres" in e and "fid_clip" in e for e in s["methods"].values())
    assert set(s["reconstruction"]) == set(size.options) and "rec_fid_clip" in s["reconstruction"]["w"]
    assert set(s["truncation"]) == {f"{m}/psi={p:g}" for m in ("paper", "bridged") for p in size.truncation}
    assert s["references"]["renders"]["text_acc"]["mean"] > 0.9 and "text_acc" not in s["references"]["g_samples"]
    assert set(record["ship"]["reasons"]) == {"w", "latent_d"}
    for name in ("quality.csv", "quality.json", "quality.png"):
        assert (tmp_path / "out" / name).stat().st_size > 100, name
    tables = quality.quality_tables(record)
    assert "g_samples" in tables["options"] and "ψ" in tables["truncation"]
    # the option's setting is part of what makes a finished run the same run
    config = quality.option_config(size, "w", 0, tmp_path / "work", "cpu")
    with pytest.raises(FileExistsError, match="free_rows"):
        sweeps.train_variant(dataclasses.replace(config, free_rows=2), world())

