"""worlds: Table 7's rows and verdicts on constructed numbers, the samplers of another world, and a CI-size run on the
shipped worlds end to end."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest

from clip2gan import hub
from clip2gan.evaluation import worlds
from clip2gan.evaluation.comparisons import renders_sampler, stated_attributes
from clip2gan.toy import pets

matplotlib.use("Agg")


def _row(world, method, fid, acc, edit_acc=0.9, floor=0.1, ratio=None):
    return {"world": world, "method": method, "fid": fid, "fid_se": 1.0, "fid_ratio": ratio, "text_acc": acc,
            "text_pairs": 1000, "lpips_div": 0.5, "rec_match": 0.95, "edit_acc": edit_acc, "edit_acc_beta0": floor,
            "edit_pres": 0.95, "edit_n": 500}


def _record(pets_acc=0.9, pets_ratio=1.5):
    rows = []
    for world, g_fid in (("toyfaces", 11.0), ("toypets", 20.0)):
        rows.append({"world": world, "method": "renders", "fid": 5.0, "fid_se": 0.5, "text_acc": 1.0, "text_pairs": 1000})
        rows.append({"world": world, "method": "g_samples", "fid": g_fid, "fid_se": 1.0, "text_acc": 0.4,
                     "text_pairs": 1000})
        for method in ("paper", "bridged"):
            acc, ratio = (pets_acc, pets_ratio) if world == "toypets" else (0.95, 1.4)
            rows.append(_row(world, method, g_fid * ratio, acc, ratio=ratio))
    return {"size": {"name": "full", "n_captions": 500, "n_edit": 500}, "worlds": ["toyfaces", "toypets"], "rows": rows}


def test_table7_rows_and_text_on_constructed_numbers():
    rows = worlds.table7_rows(_record())
    assert len(rows) == 2 * 4  # per world: paper, bridged, renders, G's samples
    assert [r["method"] for r in rows[:4]] == ["paper", "bridged", "renders (floor)", "G's own samples (no text)"]
    assert rows[4]["world"] == "toy pets" and rows[4]["FID"] == pytest.approx(30.0)
    assert rows[2]["edit accuracy"] is None and rows[3]["accuracy"] == 0.4
    text = worlds.table7_text(_record())
    assert "Table 7 in kind (full size" in text and "30.0 ± 1.0" in text and "0.900 (0.100)" in text


def test_table7_verdicts_can_fail():
    v = worlds.table7_verdicts(_record())
    assert [x["verdict"] for x in v.values()] == ["holds here"] * 3
    v = worlds.table7_verdicts(_record(pets_acc=0.4, pets_ratio=3.0))  # pets at chance, FID 3 × G's
    claim = v["M turns text into images in every world (accuracy above chance)"]
    assert claim["verdict"].startswith("partly holds") and list(claim["checks"].values()) == [True, True, None, None]
    v3 = worlds.table7_verdicts(_record(pets_acc=0.3))  # pets below chance: against the claim
    assert v3["M turns text into images in every world (accuracy above chance)"]["verdict"] == "mixed"
    clean = v["images as clean as the world's G allows (FID ≤ 2 × G's own)"]["checks"]
    assert list(clean.values()) == [True, True, False, False]
    rec = _record()
    for r in rec["rows"]:
        if r["method"] in ("paper", "bridged"):
            r["edit_acc"] = 0.05  # edits below their β = 0 floor
    assert worlds.table7_verdicts(rec)["text edits work in every world (edit accuracy above β = 0)"]["verdict"] == \
        "does not hold here"


def test_a_stated_pet_keeps_its_stated_values_and_renders_as_a_pet():
    rng = np.random.default_rng(0)
    attrs = stated_attributes({"species": "dog", "collar": "red"}, rng, "toypets")
    pets.check_attributes(attrs)
    assert attrs["species"] == "dog" and attrs["collar"] == "red"
    sample = renders_sampler(32, ["a dog"], [{"species": "dog"}], world="pets")
    images = sample(["a dog"], n_per_prompt=2, seed=0)
    assert images.shape == (2, 3, 32, 32) and float(images.min()) >= -1 and float(images.max()) <= 1


def test_unknown_world_and_bad_size_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown world 'birds'"):
        worlds.run_worlds("ci", out=tmp_path, worlds=("birds",), device="cpu")
    with pytest.raises(SystemExit):
        worlds.main(["--size", "huge"])
    assert "invalid choice" in capsys.readouterr().err


def _shipped(profile: str) -> bool:
    try:
        hub.resolve(f"{profile}-mapping")
    except hub.WeightsNotFound:
        return False
    return True


def test_a_ci_size_run_on_the_shipped_worlds(tmp_path):
    """Every shipped world end to end at CI size (16 captions and edits: the code paths, not the numbers), then again
    from the score cache."""
    shipped = tuple(p for p in worlds.WORLDS if _shipped(p))
    assert "toyfaces" in shipped
    record = worlds.run_worlds("ci", out=tmp_path, work=tmp_path / "work", worlds=shipped, device="cpu", log=lambda s: None)
    assert {r["world"] for r in record["rows"]} == set(shipped)
    assert len(record["rows"]) == 4 * len(shipped)
    for r in record["rows"]:
        if r["method"] in worlds.METHODS:
            g = next(x for x in record["rows"] if x["world"] == r["world"] and x["method"] == "g_samples")
            assert r["fid_ratio"] == pytest.approx(r["fid"] / g["fid"], rel=1e-2)
            assert 0 <= r["text_acc"] <= 1 and 0 <= r["edit_acc"] <= 1 and r["edit_n"] == 16
    saved = json.loads((tmp_path / "worlds.json").read_text())
    assert saved["mappings"]["toyfaces"] == "data/toyfaces-mapping.safetensors"
    assert (tmp_path / "worlds.csv").read_text().startswith("world,method,fid,")
    assert (tmp_path / "worlds.png").stat().st_size > 10_000
    again = worlds.run_worlds("ci", out=tmp_path / "again", work=tmp_path / "work", worlds=shipped, device="cpu",
                              log=lambda s: None, write=False)
    assert [r["fid"] for r in again["rows"]] == [r["fid"] for r in record["rows"]]  # read back from the cache


def test_shipping_refuses_a_missing_run_and_an_m_of_another_world(tmp_path):
    with pytest.raises(FileNotFoundError, match="train it first"):
        worlds.ship_world("toypets", tmp_path / "nothing", "ci", out=tmp_path)
    run = tmp_path / "faces-run"
    run.mkdir()
    (run / "mapping.safetensors").write_bytes(hub.resolve("toyfaces-mapping").read_bytes())
    (run / "mapping.json").write_bytes(hub.resolve("toyfaces-mapping").with_suffix(".json").read_bytes())
    with pytest.raises(ValueError, match="trained for profile 'toyfaces', not 'toypets'"):
        worlds.ship_world("toypets", run, "ci", out=tmp_path)
    assert worlds.main(["--ship", "toypets"]) == 1  # --ship without --run: an error, nothing shipped
