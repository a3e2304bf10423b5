"""sweeps, protocol, tables: a tiny sweep end to end (train, resume/skip, evaluate, CSV, figure), the
paper-table layout and the verdicts on constructed numbers, the command line's listing and recorded commands.

The sweep runs in the tiny random world of `tiny_world.py` (16 px, 32-d CLIP) scored by the shipped
toy classifier: the numbers are meaningless, the plumbing is what is tested.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import pytest
import torch
from tiny_world import RES, tiny_clip, tiny_generator

from clip2gan.clip_encoder import PromptTruncatedWarning
from clip2gan.evaluation import protocol, sweeps, tables
from clip2gan.losses import LPIPSLoss
from clip2gan.toy.faces import AttributeClassifier
from clip2gan.train import ToyImages, discriminator_like

# 2 steps of 4 images, 8 captions, 2 × 2 diversity samples, 8 edits, M 32 wide: the sweep takes seconds
TINY = sweeps.SweepSize("tiny", ("base", "layers4"), dict(epochs=1, epoch_size=16, batch_size=4, max_steps=2,
                                                            hidden_dim=32, identity=False),
                        n_captions=8, n_div_prompts=2, n_per_prompt=2, n_edit=8)
PAPER_ONLY = dataclasses.replace(TINY, settings=("paper",))  # the resume tests need no extra settings


def _world():
    clip, G = tiny_clip(), tiny_generator()
    return {"clip": clip, "G": G, "D": discriminator_like(G), "identity": None,
            "lpips": LPIPSLoss("clip", clip_encoder=clip), "world": {"profile": "toyfaces", "clip": "tiny"}}


@pytest.fixture(scope="module")
def classifier():
    return AttributeClassifier.from_pretrained()


def _run(tmp_path, classifier, size=TINY, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PromptTruncatedWarning)  # the tiny CLIP reads 24 tokens; captions are longer
        return sweeps.run_sweep(size, out=tmp_path / "out", work=tmp_path / "work", device="cpu", world=_world(),
                                classifier=classifier, progress=False, log=lambda *_: None,
                                dataset_factory=lambda c: ToyImages(c.epoch_size, c.seed, RES), **kw)


def test_tiny_sweep_writes_rows_csv_and_figure(tmp_path, classifier):
    rows = _run(tmp_path, classifier)
    # base: every setting; layers4: the paper's rule and the shipped defaults ('nearest') only
    assert [(r["variant"], r["setting"]) for r in rows] == ([("base", s) for s in protocol.SETTINGS]
                                                            + [("layers4", "paper"), ("layers4", "nearest")])
    near = [r for r in rows if r["setting"] == "nearest"]
    assert all(r["edit_mode"] == "neighbours" and r["correction"] == "nearest" and 0 <= r["text_acc"] <= 1 for r in near)
    paper = [r for r in rows if r["setting"] == "paper"]
    for r in paper:
        assert r["steps"] == 2
        assert 0 <= r["text_acc"] <= 1 and 0 <= r["rec_match"] <= 1
        assert 0 <= r["edit_acc"] <= 1 and 0 <= r["edit_acc_beta0"] <= 1 and 0 <= r["edit_pres"] <= 1
        assert r["fid"] >= 0 and r["edit_fid"] >= 0 and r["lpips_div"] >= 0 and r["lpips_ref"] >= 0
        assert r["edit_n"] == TINY.n_edit and r["text_pairs"] > 0
    assert [r["layers"] for r in paper] == [12, 4]
    # every edit asks for a value the face does not have
    data = protocol.eval_data(TINY, RES)
    assert all(a[t] != v for a, (t, v) in zip(data.edit_attributes, data.edit_targets))
    # settings that change only editing leave the generation columns empty
    clip_space = next(r for r in rows if r["setting"] == "clip_space")
    assert clip_space.get("fid") is None and clip_space["edit_space"] == "clip"
    back = tables.read_csv(tmp_path / "out" / "sweeps.csv")
    assert len(back) == len(rows) and list(back[0]) == tables.COLUMNS
    assert back[0]["variant"] == "base" and back[0]["adv"] is True and back[0]["fid"] == pytest.approx(rows[0]["fid"], abs=1e-4)
    assert (tmp_path / "out" / "sweeps.png").stat().st_size > 1000
    assert (tmp_path / "out" / "sweeps.json").is_file()


def test_a_finished_variant_is_not_retrained(tmp_path, classifier):
    _run(tmp_path, classifier, PAPER_ONLY, variants=["base"])
    mapping = tmp_path / "work" / "base" / "mapping.safetensors"
    stamp = mapping.stat().st_mtime_ns
    rows = _run(tmp_path, classifier, PAPER_ONLY, variants=["base"])
    assert mapping.stat().st_mtime_ns == stamp and rows[0]["steps"] == 2


def test_a_finished_run_with_other_settings_is_refused(tmp_path, classifier):
    _run(tmp_path, classifier, PAPER_ONLY, variants=["base"])
    other = sweeps.SweepSize("tiny", ("base",), {**TINY.train, "max_steps": 3}, n_captions=8, n_div_prompts=2,
                             n_per_prompt=2, n_edit=8)
    with pytest.raises(FileExistsError, match="other settings"):
        sweeps.run_sweep(other, out=tmp_path / "out", work=tmp_path / "work", device="cpu", world=_world(),
                         classifier=classifier, progress=False, log=lambda *_: None)


def test_unknown_variant_is_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown variant"):
        sweeps.run_sweep(TINY, out=tmp_path, variants=["layers5"], world=_world(), classifier=object())


def test_every_size_names_known_variants_and_settings():
    for size in sweeps.SIZES.values():
        assert set(size.variants) <= set(sweeps.VARIANTS) and "base" in size.variants
        assert set(size.settings) <= set(protocol.SETTINGS)
    # the full size trains every variant with the shipped M's recipe (its manifest command)
    from clip2gan import hub

    command = hub.read_manifest()["files"]["toyfaces-mapping.safetensors"]["command"]
    full = sweeps.SIZES["full"].train
    assert f"--epochs {full['epochs']} " in command and f"--epoch-size {full['epoch_size']} " in command
    assert f"--batch-size {full['batch_size']} " in command
    assert len(sweeps.SIZES["ci"].variants) == 2


def test_zoom_keeps_shape_and_enlarges_the_centre():
    x = torch.zeros(1, 3, 32, 32)
    x[..., 12:20, 12:20] = 1.0
    z = protocol.zoom(x)
    assert z.shape == x.shape
    assert (z > 0.5).sum() > (x > 0.5).sum()


def _rows(over=None):
    """Constructed sweep rows: base better than every ablation, w+ better than CLIP space."""
    def row(variant, setting="paper", **kw):
        r = {"variant": variant, "setting": setting, "layers": sweeps.VARIANTS[variant]["layers"],
             "adv": sweeps.VARIANTS[variant]["adv"], "div": sweeps.VARIANTS[variant]["div"], "fid": 10.0,
             "lpips_ref": 1.0, "lpips_div": 0.3, "text_acc": 0.9, "text_pairs": 1000, "rec_match": 0.95,
             "edit_acc": 0.85, "edit_acc_beta0": 0.05, "edit_pres": 0.95, "edit_fid": 12.0, "edit_lpips": 0.5,
             "edit_n": 500}
        r.update(kw)
        return r

    rows = [row("base"), row("base", "clip_space", edit_acc=0.5, edit_fid=30.0), row("base", "zoomed", edit_acc=0.83),
            row("base", "recentre"), row("base", "directional"),
            row("layers4", fid=20.0, text_acc=0.6), row("layers8", fid=11.0, text_acc=0.9),
            row("no_adv", fid=15.0, text_acc=0.7), row("no_div", fid=12.0, text_acc=0.88, lpips_div=0.1),
            row("no_adv_div", fid=30.0, text_acc=0.5, lpips_div=0.05)]
    for (variant, setting), changes in (over or {}).items():
        next(r for r in rows if r["variant"] == variant and r["setting"] == setting).update(changes)
    return rows


def test_verdicts_read_the_numbers():
    v = {claim: verdict for claim, verdict, _ in tables.verdicts(_rows())}
    assert v["Table 3: 12 layers beat 4"] == "holds here"
    # 0.9 vs 0.9 accuracy: undecided; the FID agrees, so the claim only partly holds
    assert v["Table 3: 12 layers beat 8"].startswith("partly holds")
    assert v["Table 4: removing L_adv hurts"] == "holds here"
    assert v["Table 6: editing in w+ beats editing in CLIP space"] == "holds here"
    assert v["Table 5: editing works on images outside the training set as on those inside"] == "holds here"
    assert v["§4.4: β-editing changes the asked attribute and keeps the others"] == "holds here"
    worse = _rows({("layers4", "paper"): {"fid": 5.0, "text_acc": 0.99}, ("base", "paper"): {"edit_pres": 0.5}})
    v = {claim: verdict for claim, verdict, _ in tables.verdicts(worse)}
    assert v["Table 3: 12 layers beat 4"] == "does not hold here"
    assert v["§4.4: β-editing changes the asked attribute and keeps the others"] == "mixed"
    assert tables.verdicts([]) == [("every claim", "not measured", "no 'base' row")]
    # with error bars, a FID difference inside two standard errors decides nothing
    noisy = _rows({("base", "paper"): {"fid_se": 5.0}, ("layers8", "paper"): {"fid_se": 5.0}})
    v = {claim: verdict for claim, verdict, _ in tables.verdicts(noisy)}
    assert v["Table 3: 12 layers beat 8"].startswith("inconclusive")


def test_fid_with_se():
    x = torch.rand(40, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    y = x + 0.5
    extract = lambda b: b.flatten(1)[:, :6]  # noqa: E731 — 6-d features: a full-rank covariance from 40 images
    same, se = protocol.fid_with_se(x, x, extract, n_boot=8)
    assert same == pytest.approx(0.0, abs=1e-6) and se > 0
    shifted, _ = protocol.fid_with_se(x, y, extract, n_boot=8)
    assert shifted == pytest.approx(6 * 0.25, rel=1e-6)  # the means differ by 0.5 in each of 6 dimensions


def test_paper_tables_keep_the_papers_layout():
    laid_out = tables.paper_tables(_rows())
    assert set(laid_out) == {"1", "3", "4", "5", "6", "ambiguities"}
    t3 = laid_out["3"].splitlines()
    assert t3[1].split()[0] == "Layers" and [line.split()[0] for line in t3[3:]] == ["4", "8", "12"]
    t4 = laid_out["4"].splitlines()[3:]
    assert [line.split()[:2] for line in t4] == [["×", "×"], ["×", "✓"], ["✓", "×"], ["✓", "✓"]]  # the paper's order
    assert "DCGAN" in laid_out["6"] and "30.000" in laid_out["6"]
    with_se = tables.paper_tables(_rows({("base", "paper"): {"fid_se": 1.25}}))
    assert "10.0 ± 1.2" in with_se["1"]  # a FID with its bootstrap error bar
    assert "0.830" in laid_out["5"]


def test_format_table_shows_missing_values_as_dashes():
    text = tables.format_table(["a", "b"], [["x", None], ["y", float("nan")], ["z", 1.23456]])
    assert text.count("–") == 2 and "1.235" in text


def test_command_line_lists_without_running(capsys):
    assert sweeps.main(["--size", "full", "--list"]) == 0
    out = capsys.readouterr().out
    assert all(f"variant {v}" in out for v in sweeps.VARIANTS) and "'epochs': 8" in out


def test_edit_pairs_equal_edit_image_pair_by_pair():
    from tiny_editing import tiny_model

    from clip2gan.edit import edit_image

    model = tiny_model()
    images, attrs, texts, targets = protocol.edit_set(5, RES)
    assert len(targets) == 5 and all(a[t] != v for a, (t, v) in zip(attrs, targets))  # a real change each
    texts = texts[:4] + [texts[0]]  # a repeated text shares one direction
    for space, mode, layers in (("wplus", "paper", None), ("clip", "directional", "coarse")):
        before, after = protocol.edit_pairs(model, images, texts, space=space, mode=mode, beta=0.7, layers=layers)
        for i in range(len(images)):
            ref = edit_image(model, images[i], texts[i], beta=0.7, space=space, mode=mode, layers=layers)
            assert torch.allclose(after[i], ref[0], atol=1e-5), (space, i)
        assert torch.allclose(before, model.reconstruct(images), atol=1e-5)
    with pytest.raises(ValueError, match="texts"):
        protocol.edit_pairs(model, images, texts[:2])


def test_weights_changed_names_the_retrained_files(monkeypatch):
    # a stored sweep.json against the weights resolved now: equal records → nothing; one changed → that one
    now = {"toyfaces-clip": "aaaa", "toyfaces-stylegan2": "bbbb"}
    monkeypatch.setattr(sweeps, "weights_record", lambda profile: dict(now))
    assert sweeps.weights_changed({"weights": dict(now)}) == {}
    stale = {"weights": {"toyfaces-clip": "aaaa", "toyfaces-stylegan2": "old0"}}
    assert sweeps.weights_changed(stale) == {"toyfaces-stylegan2": ("old0", "bbbb")}
    assert sweeps.weights_changed({}) == {k: ("not recorded", v) for k, v in now.items()}


def test_ship_mapping_evaluates_copies_and_records(tmp_path, monkeypatch):
    # the shipped M evaluated at CI size (32 captions, 32 edits: seconds) and "shipped" into a temporary data/
    from clip2gan import hub

    run = tmp_path / "run"
    run.mkdir()
    shipped = hub.resolve("toyfaces-mapping")
    for suffix in (".safetensors", ".json"):
        (run / f"mapping{suffix}").write_bytes(Path(shipped).with_suffix(suffix).read_bytes())
    (run / "log.jsonl").write_text(json.dumps({"step": 512, "seconds": 437.0}) + "\n")
    monkeypatch.setattr(hub, "MANIFEST_PATH", tmp_path / "data" / "MANIFEST.json")
    (tmp_path / "data").mkdir()
    entry = sweeps.ship_mapping(run, "python -m clip2gan.train --out run", "CPU, test", size="ci")
    manifest = json.loads((tmp_path / "data" / "MANIFEST.json").read_text())["files"]["toyfaces-mapping.safetensors"]
    assert manifest == entry and entry["train_seconds"] == 437.0 and entry["steps"] == 512
    assert entry["sha256"] == hub.sha256_file(shipped)
    assert (tmp_path / "data" / "toyfaces-mapping.json").read_bytes() == Path(shipped).with_suffix(".json").read_bytes()
    m = entry["metrics"]
    assert 0.0 <= m["text_acc"] <= 1.0 and m["edit_n"] == 32 and m["text_pairs"] > 0
    assert entry["bars"]["text_acc>=0.75 (core)"] == (m["text_acc"] >= 0.75)
    # the shipped M has a feature bank: evaluated under its default ('nearest'), with the paper's rule beside it.
    # Manifest at full size: text 0.944, edits 0.928; CI size has ~190 text pairs and 32 edits, so these floors sit
    # 5-8 standard errors below the full-size figures: they fail only if the default stops working.
    assert m["setting"] == "nearest" and m["text_acc"] >= 0.8 and m["edit_acc"] >= 0.7
    assert set(m["paper_rule"]) >= {"text_acc", "edit_acc", "edit_pres", "fid"}
    with pytest.raises(FileNotFoundError, match="train the run"):
        sweeps.ship_mapping(tmp_path / "nothing", "cmd", "CPU")


def test_command_line_ship_needs_a_command():
    with pytest.raises(SystemExit):
        sweeps.main(["--evaluate", "runs/x", "--ship"])


def _recorded_sweep_commands() -> list[tuple[str, str]]:
    """(where, arguments) of every `python -m clip2gan.evaluation.sweeps ...` recorded in the repository's
    manifest, results README and results JSON files."""
    import re
    import shlex

    root = Path(__file__).resolve().parents[1]
    files = [root / "data" / "MANIFEST.json", root / "results" / "README.md", *sorted((root / "results").rglob("*.json"))]
    found = []
    for path in files:
        text = path.read_text()
        if path.suffix == ".json":  # commands sit in JSON strings: read them back as text
            text = "\n".join(v for v in _json_strings(json.loads(text)))
        # the arguments end at the end of a line, a closing quote or backtick, or an opening parenthesis
        for match in re.finditer(r"python -m clip2gan\.evaluation\.sweeps((?: +[^\s`\"(&|;]+)*)", text):
            found.append((path.name, shlex.split(match.group(1))))
    return found


def _json_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _json_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _json_strings(v)


def test_recorded_commands_still_parse():
    recorded = _recorded_sweep_commands()
    where = {name for name, _ in recorded}
    assert {"MANIFEST.json", "README.md", "sweeps.json"} <= where  # the manifest's evaluation, the README's and JSON's commands
    for name, argv in recorded:
        command = sweeps.parse_args(argv)
        assert command.size in sweeps.SIZES, (name, argv)
    evaluation = next(argv for name, argv in recorded if "--evaluate" in argv)
    assert sweeps.parse_args(evaluation).evaluate.startswith("runs/")


def test_command_line_flags_come_from_the_config_dataclass():
    assert sweeps.parse_args([]) == sweeps.SweepCommand()
    for argv, ship in ((["--ship"], True), (["--ship", "false"], False), (["--no-ship"], False), (["--ship", "yes"], True)):
        assert sweeps.parse_args(argv).ship is ship, argv
    args = sweeps.parse_args(["--list", "--size", "demo", "--threads", "2", "--work", "none", "--device-note", "GPU x"])
    assert args.list_only and args.size == "demo" and args.threads == 2 and args.work is None and args.device_note == "GPU x"
    help_text = sweeps._parser().format_help()
    flags = [f.metadata.get("flag") or "--" + f.name.replace("_", "-") for f in dataclasses.fields(sweeps.SweepCommand)]
    assert all(flag in help_text for flag in flags)
    assert all(f.metadata.get("help") for f in dataclasses.fields(sweeps.SweepCommand))  # every flag has a help text
    with pytest.raises(SystemExit):
        sweeps.parse_args(["--size", "huge"])


def test_evaluate_mapping_scores_the_paper_rule_under_method_paper(monkeypatch):
    """The 'paper_rule' block is the same M under method='paper' (bare text features, the paper's noise,
    eq. 11-14), not a half-switched model that keeps the bridged edit mode and the training noise."""
    from clip2gan import hub

    seen = []

    def record(model, data, classifier, lpips, size, setting="paper", **kwargs):
        seen.append((setting, model.method, model.text_correction, model.edit_mode))
        return {"text_acc": 0.5, "edit_acc": 0.5, "edit_pres": 0.5, "fid": 1.0, "rec_match": 0.9, "lpips_div": 0.1}

    monkeypatch.setattr(sweeps, "evaluate", record)
    out = sweeps.evaluate_mapping(hub.resolve("toyfaces-mapping"), size="ci")
    assert seen == [("nearest", "bridged", "nearest", "neighbours"), ("paper", "paper", None, "paper")]
    assert out["setting"] == "nearest" and "paper_rule" in out
