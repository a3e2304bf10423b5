"""Table 3's backbone axis (`sweeps.run_backbone`, `--clip`, `tables.backbone_*`): the command line, the work
folders, the reuse check that knows the CLIP file, scoring with M's own CLIP, and the table and verdicts on
constructed numbers.

Trainings run in the tiny random world of `tiny_world.py` (16 px, 32-d CLIP; the "other" CLIP is the same
architecture with other random weights, saved as a file as a real second CLIP would be): numbers are meaningless,
the plumbing is what is tested.
"""

from __future__ import annotations

import json
import warnings

import pytest
from test_sweeps import PAPER_ONLY, _world
from tiny_world import RES, tiny_clip, tiny_clip_config

from clip2gan.clip_encoder import PromptTruncatedWarning
from clip2gan.evaluation import sweeps, tables
from clip2gan.toy import clip as toyclip
from clip2gan.toy.faces import AttributeClassifier
from clip2gan.train import ToyImages


@pytest.fixture(scope="module")
def classifier():
    return AttributeClassifier.from_pretrained()


def _clip_file(folder, seed):
    """A tiny CLIP saved as a checkpoint (+ .json), as `--clip PATH` finds a second CLIP."""
    folder.mkdir(parents=True, exist_ok=True)
    return toyclip.save(tiny_clip(seed).model, folder / f"other-clip-{seed}.safetensors", tiny_clip_config(), half=False)


def _sweep(tmp_path, classifier, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PromptTruncatedWarning)  # the tiny CLIP reads 24 tokens; captions are longer
        return sweeps.run_sweep(PAPER_ONLY, out=tmp_path / "out", work=tmp_path / "work", device="cpu", world=_world(),
                                classifier=classifier, progress=False, log=lambda *_: None, variants=["base"],
                                dataset_factory=lambda c: ToyImages(c.epoch_size, c.seed, RES), **kw)


def test_command_line_takes_the_backbone_options():
    args = sweeps.parse_args(["--backbone", "--size", "full", "--clip", "runs/c.safetensors", "--clip-name", "patch4",
                              "--train-seed", "2", "--no-train"])
    assert (args.backbone, args.clip, args.clip_name, args.train_seed, args.no_train) == (
        True, "runs/c.safetensors", "patch4", 2, True)
    plain = sweeps.parse_args([])
    assert (plain.backbone, plain.clip, plain.clip_name, plain.train_seed) == (False, None, None, None)


def test_backbone_needs_a_second_clip(capsys):
    with pytest.raises(SystemExit):
        sweeps.main(["--backbone", "--size", "ci"])
    assert "--clip" in capsys.readouterr().err


def test_work_folders_never_mix_clips_or_seeds():
    assert str(sweeps.default_work("full")) == "runs/sweeps-full"  # the committed sweep's folder, unchanged
    assert str(sweeps.default_work("full", sweeps.SHIPPED_CLIP)) == "runs/sweeps-full"
    assert str(sweeps.default_work("full", "patch4")) == "runs/sweeps-full-patch4"
    assert str(sweeps.default_work("full", "patch4", 2)) == "runs/sweeps-full-patch4-seed2"
    assert str(sweeps.default_work("full", None, 1)) == "runs/sweeps-full-seed1"
    assert "clip" in sweeps.SAME_RUN_KEYS and "seed" in sweeps.SAME_RUN_KEYS


def test_a_run_on_one_clip_is_never_reused_for_another(tmp_path, classifier):
    rows = _sweep(tmp_path, classifier)  # the world's own CLIP
    assert rows[0]["clip"] == sweeps.SHIPPED_CLIP and rows[0]["train_seed"] == 0
    other = _clip_file(tmp_path / "clips", seed=5)
    with pytest.raises(FileExistsError, match="clip"):
        _sweep(tmp_path, classifier, clip=other, clip_name="other")


def test_a_changed_clip_file_at_the_same_path_is_refused(tmp_path, classifier):
    path = _clip_file(tmp_path / "clips", seed=5)
    rows = _sweep(tmp_path, classifier, clip=path, clip_name="other")
    assert rows[0]["clip"] == "other"
    again = _sweep(tmp_path, classifier, clip=path, clip_name="other")  # same file: reused, not retrained
    assert again[0]["steps"] == rows[0]["steps"]
    toyclip.save(tiny_clip(6).model, path, tiny_clip_config(), half=False)  # other weights, same path
    with pytest.raises(FileExistsError, match="sha256"):
        _sweep(tmp_path, classifier, clip=path, clip_name="other")


def test_run_backbone_scores_each_m_with_its_own_clip_and_caches(tmp_path, classifier, monkeypatch):
    path = _clip_file(tmp_path / "clips", seed=5)
    seen = []
    evaluate = sweeps.evaluate

    def spy(model, *args, **kwargs):
        seen.append(model.clip.name)
        return evaluate(model, *args, **kwargs)

    monkeypatch.setattr(sweeps, "evaluate", spy)
    work = {(name, s): tmp_path / f"work-{name}-{s}" for name in (sweeps.SHIPPED_CLIP, "other") for s in (0, 1)}
    kwargs = dict(size=PAPER_ONLY, clip=path, clip_name="other", out=tmp_path / "out", work=work, device="cpu",
                  grid={"base": (0, 1)}, settings=("paper",), world=_world(), classifier=classifier, progress=False,
                  log=lambda *_: None, dataset_factory=lambda c: ToyImages(c.epoch_size, c.seed, RES))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PromptTruncatedWarning)
        rows = sweeps.run_backbone(**kwargs)
        # 2 CLIPs × 2 training seeds (one method: keeps the test short); the other CLIP's rows were scored by it
        assert [(r["clip"], r["train_seed"], r["setting"]) for r in rows] == [
            (c, s, "paper") for c in (sweeps.SHIPPED_CLIP, "other") for s in (0, 1)]
        assert seen == ["tiny-clip"] * 2 + [str(path)] * 2
        meta = json.loads((tmp_path / "out" / "backbone.json").read_text())
        assert meta["rows_from_cache"] == 0 and meta["clips"]["other"]["path"] == str(path)
        back = tables.read_csv(tmp_path / "out" / "backbone.csv")
        assert [r["clip"] for r in back] == [r["clip"] for r in rows] and (tmp_path / "out" / "backbone.png").is_file()
        seen.clear()
        again = sweeps.run_backbone(**kwargs)  # every score read back from the run folders
    assert seen == [] and json.loads((tmp_path / "out" / "backbone.json").read_text())["rows_from_cache"] == 4
    assert [r["text_acc"] for r in again] == [r["text_acc"] for r in rows]


def test_run_backbone_without_training_names_what_is_missing(tmp_path, classifier):
    path = _clip_file(tmp_path / "clips", seed=5)
    work = {(name, 0): tmp_path / f"work-{name}" for name in (sweeps.SHIPPED_CLIP, "other")}
    rows = sweeps.run_backbone(PAPER_ONLY, clip=path, clip_name="other", out=tmp_path / "out", work=work, device="cpu",
                               grid={"base": (0,)}, world=_world(), classifier=classifier, train=False, log=lambda *_: None)
    assert rows == []
    assert len(json.loads((tmp_path / "out" / "backbone.json").read_text())["not_trained_yet"]) == 2
    with pytest.raises(ValueError, match="shipped CLIP"):
        sweeps.run_backbone(PAPER_ONLY, clip=path, clip_name=sweeps.SHIPPED_CLIP, world=_world(), classifier=classifier)


def _grid(fid=None, acc=None):
    """Constructed Table 3 rows: both CLIPs, 4/8/12 layers, 12 with seeds 0-2, both methods.
    fid / acc: {(clip, layers): [values per seed]} overriding the defaults (FID 20, acc 0.8)."""
    rows = []
    for clip in ("patch8", "patch4"):
        for variant, layers in (("layers4", 4), ("layers8", 8), ("base", 12)):
            for i, seed in enumerate((0, 1, 2) if layers == 12 else (0,)):
                f = (fid or {}).get((clip, layers), [20.0, 21.0, 19.0])[i]
                a = (acc or {}).get((clip, layers), [0.80, 0.81, 0.79])[i]
                for setting in ("paper", "nearest"):
                    rows.append({"size": "full", "variant": variant, "setting": setting, "layers": layers, "clip": clip,
                                 "train_seed": seed, "steps": 512, "fid": f, "fid_se": 1.0, "lpips_ref": 2.0,
                                 "text_acc": a, "text_pairs": 3000, "lpips_div": 1.5})
    return rows


def test_backbone_cells_average_over_seeds():
    cells = tables.backbone_cells(_grid(), "paper")
    assert set(cells) == {(c, k) for c in ("patch8", "patch4") for k in (4, 8, 12)}
    deep = cells[("patch4", 12)]
    assert deep["n"] == 3 and deep["seeds"] == [0, 1, 2]
    assert deep["fid"] == pytest.approx(20.0) and deep["fid_sd"] == pytest.approx(1.0)
    assert cells[("patch4", 4)]["fid_sd"] is None  # one seed: no spread of its own
    # a sweep CSV written before the columns existed counts as the shipped CLIP, seed 0
    old = [{k: v for k, v in r.items() if k not in ("clip", "train_seed")} for r in _grid() if r["clip"] == "patch8"]
    assert set(tables.backbone_cells(old, "paper")) == {("patch8", k) for k in (4, 8, 12)}


def test_backbone_table_shows_spread_and_missing_cells():
    rows = [r for r in _grid() if not (r["clip"] == "patch4" and r["layers"] == 8)]
    text = tables.backbone_table(rows, "bridged")
    assert "method='bridged'" in text and "size 'full'" in text
    assert "20.0 ± 1.0" in text and "not trained yet" in text and "like ViT-B/16" in text
    assert len(text.splitlines()) == 3 + 6  # title, header, rule; 3 depths × 2 CLIPs


def test_backbone_verdicts_read_the_numbers():
    good = _grid(fid={("patch8", 4): [40.0], ("patch8", 8): [30.0], ("patch4", 4): [35.0], ("patch4", 8): [28.0],
                      ("patch4", 12): [10.0, 11.0, 9.0]},
                 acc={("patch8", 4): [0.6], ("patch8", 8): [0.7], ("patch4", 4): [0.65], ("patch4", 8): [0.75],
                      ("patch4", 12): [0.9, 0.91, 0.89]})
    # LPIPS is equal everywhere, so a claim that the other metrics back "partly holds"
    words = {claim: word for claim, word, _ in tables.backbone_verdicts(good)}
    assert words["Table 3, patch4 CLIP, method='paper': 12 layers beat 4 and 8"].startswith("partly holds")
    assert words["Table 3, method='bridged': the finer CLIP (patch4) beats the shipped one (patch8) at 12 layers"].startswith(
        "partly holds")
    # the finer CLIP worse than the shipped one, beyond the seeds' spread
    bad = _grid(fid={("patch4", 12): [40.0, 41.0, 39.0]}, acc={("patch4", 12): [0.5, 0.51, 0.49]})
    words = {claim: word for claim, word, _ in tables.backbone_verdicts(bad)}
    assert words["Table 3, method='paper': the finer CLIP (patch4) beats the shipped one (patch8) at 12 layers"] == \
        "does not hold here"
    # within the spread: undecided
    noisy = _grid(fid={("patch4", 12): [15.0, 25.0, 20.5]}, acc={("patch4", 12): [0.7, 0.9, 0.8]})
    words = {claim: word for claim, word, _ in tables.backbone_verdicts(noisy)}
    assert words["Table 3, method='paper': the finer CLIP (patch4) beats the shipped one (patch8) at 12 layers"].startswith(
        "inconclusive")
    # one seed of the finer CLIP: its depth comparisons borrow the shipped 12-layer cell's spread, not the
    # evaluation noise alone (which would call a seed's luck a difference)
    one_seed = [r for r in good if not (r["clip"] == "patch4" and r["train_seed"])]
    numbers = {c: n for c, _, n in tables.backbone_verdicts(one_seed)}[
        "Table 3, patch4 CLIP, method='paper': 12 layers beat 4 and 8"]
    assert "fid 10.0 vs 35.0 (±2.8)" in numbers  # 2 √(1² + 1²): the shipped cell's sd of 1.0 on both sides
    # cells not trained yet: judged on the rest, and said so
    missing = [r for r in good if not (r["clip"] == "patch4" and r["layers"] in (4, 8))]
    found = {claim: (word, numbers) for claim, word, numbers in tables.backbone_verdicts(missing)}
    word, numbers = found["Table 3, patch4 CLIP, method='paper': 12 layers beat 4 and 8"]
    assert word == "not measured" and "patch4 4 layers" in numbers
    word, numbers = found["Table 3, method='paper': the finer CLIP (patch4) beats the shipped one (patch8) at 12 layers"]
    assert word.startswith("partly holds") and "not trained" not in numbers
    missing = [r for r in good if not (r["clip"] == "patch4" and r["layers"] == 8)]
    word, numbers = {c: (w, n) for c, w, n in tables.backbone_verdicts(missing)}[
        "Table 3, method='paper': the finer CLIP (patch4) beats the shipped one (patch8) at 4 and 8 layers"]
    assert word.endswith("(partly measured)") and numbers.endswith("not trained yet: patch4 8 layers")


def test_plot_backbone_draws_both_methods():
    import matplotlib

    matplotlib.use("Agg")
    fig = tables.plot_backbone(_grid())
    assert len(fig.axes) == 6 and "size 'full'" in fig._suptitle.get_text()
    assert all("method=" in ax.get_title() for ax in fig.axes)
