"""The toy-pets world (clip2gan.toy.pets) and the world abstraction that lets every toy trainer take it.

Renders are 16 px where pixels are compared (four times fewer to draw: the file stays within seconds);
the trainers run two steps at tiny sizes, then the files they write are loaded as the `toypets` world.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch

from clip2gan import hub, toy
from clip2gan.profiles import PROFILES, get_profile
from clip2gan.toy import faces, pets

R = 16  # 16 px renders: the features are still drawn, and rendering is 4x cheaper than 32 px


@pytest.fixture(scope="module")
def samples() -> list[dict]:
    rng = np.random.default_rng(0)
    return [pets.sample_attributes(rng) for _ in range(1500)]


# ---- the world ---------------------------------------------------------------------------------


def test_schema_is_small_and_every_value_is_reachable(samples):
    assert len(pets.ATTRIBUTES) <= 7 and pets.ATTRIBUTE_NAMES == tuple(pets.ATTRIBUTES)
    assert set(pets.ATTRIBUTES["species"]) == {"cat", "dog"}
    for name, values in pets.ATTRIBUTES.items():
        counts = {v: sum(s[name] == v for s in samples) for v in values}
        assert min(counts.values()) >= 0.15 * len(samples), (name, counts)  # rarest value: 25-30 % expected
    for s in samples[:50]:
        pets.check_attributes(s)
    with pytest.raises(ValueError, match="fur"):
        pets.check_attributes({**samples[0], "fur": "green"})
    with pytest.raises(ValueError, match="missing"):
        pets.check_attributes({"species": "cat"})


def test_render_is_deterministic_per_seed_and_in_range(samples):
    a = samples[0]
    x = pets.render(a, R, np.random.default_rng(5))
    assert x.shape == (3, R, R) and x.dtype == torch.float32 and -1 <= float(x.min()) <= float(x.max()) <= 1
    assert torch.equal(x, pets.render(a, R, np.random.default_rng(5)))
    assert not torch.equal(x, pets.render(a, R, np.random.default_rng(6)))  # the nuisance jitter
    assert torch.equal(pets.render(a, R), pets.render(a, R))  # rng None: the canonical pet
    batch = pets.render_batch(samples[:3], np.random.default_rng(2), R)
    rng = np.random.default_rng(2)
    assert torch.equal(batch, torch.stack([pets.render(s, R, rng) for s in samples[:3]]))
    assert pets.render_batch([], None, R).shape == (0, 3, R, R)


def test_every_value_changes_the_pixels():
    base = {name: values[0] for name, values in pets.ATTRIBUTES.items()}
    for name, values in pets.ATTRIBUTES.items():
        images = [pets.render({**base, name: v}, 32, np.random.default_rng(1)) for v in values]
        for i in range(len(values)):
            for j in range(i):
                diff = (images[i] - images[j]).abs().sum(0)
                assert int((diff > 0.3).sum()) >= 4, (name, values[i], values[j])  # a visible change


def test_dataset_is_deterministic_per_seed_and_index():
    data = pets.ToyPets(6, seed=3, resolution=R)
    assert pets.WorldDataset is pets.ToyPets and faces.WorldDataset is faces.ToyFaces
    a, b = data[2], pets.ToyPets(6, seed=3, resolution=R)[2]
    assert torch.equal(a["image"], b["image"]) and a["caption"] == b["caption"] and a["attributes"] == b["attributes"]
    assert torch.equal(data[-1]["image"], data[5]["image"])
    assert not torch.equal(a["image"], pets.ToyPets(6, seed=4, resolution=R)[2]["image"])
    batch = pets.ToyPets.collate([data[i] for i in range(3)])
    assert batch["image"].shape == (3, 3, R, R) and batch["label"].shape == (3, len(pets.ATTRIBUTES))
    with pytest.raises(IndexError):
        data[6]


def test_captions_state_only_true_values_and_every_value_has_a_positive_phrase(samples):
    rng = np.random.default_rng(1)
    stated_values = set()
    for attrs in samples[:600]:
        text, names = pets.caption(attrs, rng, return_mentioned=True)
        assert len(names) >= 2
        assert pets.caption_mentions(text) == {n: attrs[n] for n in names}, text
        stated_values |= {(n, attrs[n]) for n in names}
    assert stated_values == {(a, v) for a, vs in pets.ATTRIBUTES.items() for v in vs}
    prompts = [pets.value_prompt(a, v) for a, vs in pets.ATTRIBUTES.items() for v in vs]
    assert len(set(prompts)) == len(prompts)
    for a, vs in pets.ATTRIBUTES.items():
        for v in vs:
            assert pets.caption_mentions(pets.value_prompt(a, v)) == {a: v}
            assert pets.caption_mentions(pets.value_phrase(a, v)) == {a: v}
            assert not pets.value_phrase(a, v).startswith("no ")  # positive phrasings ("collarless")
    with pytest.raises(ValueError, match="collar"):
        pets.caption_mentions("a cat wearing a red collar and a blue collar")
    with pytest.raises(ValueError, match="no value"):
        pets.value_prompt("ears", "long")


def test_labels_round_trip_and_conditioning_layout(samples):
    for attrs in samples[:200]:
        labels = pets.attributes_to_labels(attrs)
        assert (labels >= 0).all()
        assert pets.labels_to_attributes(labels) == attrs
    c = pets.attributes_to_c(samples[:10])
    assert c.shape == (10, pets.C_DIM) and pets.C_DIM == sum(len(v) for v in pets.ATTRIBUTES.values())
    for sl in pets.C_SLICES.values():
        assert (c[:, sl].sum(1) == 1).all()
    c2, attrs2 = pets.sample_c(4, np.random.default_rng(0))
    assert torch.equal(c2, pets.attributes_to_c(attrs2))
    with pytest.raises(ValueError, match="expected"):
        pets.labels_to_attributes([0, 0])


def test_flips_describe_and_minimal_pair_weights():
    rng = np.random.default_rng(3)
    a = pets.sample_attributes(rng)
    for name in pets.flippable_attributes(a):
        b = pets.flip_attribute(a, name, rng)
        assert b[name] != a[name] and {k for k in a if a[k] != b[k]} == {name}
    assert set(pets.MINIMAL_PAIR_WEIGHTS) == set(pets.ATTRIBUTES) and pets.UNSCORED_WHEN == {}
    assert pets.tied_attributes("fur") == set() and faces.tied_attributes("hair_length") == {"hair_color", "bangs"}
    assert a["species"] in pets.describe(a)


# ---- the world abstraction ---------------------------------------------------------------------


@pytest.mark.parametrize("name", toy.WORLD_API)
def test_both_worlds_have_the_same_public_names_and_signatures(name):
    f, p = getattr(faces, name), getattr(pets, name)
    assert name in faces.__all__ and name in pets.__all__
    if inspect.isfunction(f):
        assert list(inspect.signature(f).parameters) == list(inspect.signature(p).parameters)
    elif inspect.isclass(f):
        assert list(inspect.signature(f).parameters) == list(inspect.signature(p).parameters)
    else:
        assert type(f) is type(p)


def test_world_lookups():
    assert toy.world_module() is faces and toy.world_module("faces") is faces
    for key in ("pets", "toypets", "clip2gan.toy.pets", get_profile("toypets"), pets):
        assert toy.world_module(key) is pets
    assert toy.world_profile("pets").name == "toypets" and toy.world_profile(None).name == "toyfaces"
    assert toy.world_for_attributes(reversed(list(pets.ATTRIBUTES))) is pets
    with pytest.raises(ValueError, match="no toy world"):
        toy.world_module("ffhq")
    with pytest.raises(ValueError, match="unknown toy world"):
        toy.world_module("birds")


def test_toypets_profile_and_hub_entries():
    from clip2gan.identity import identity_net_for
    from clip2gan.modality_gap import vocabulary_prompts

    p = get_profile("toypets")
    assert p.world == "clip2gan.toy.pets" and p.toy_world and p.toy_clip
    assert (p.clip, p.generator, p.classifier) == ("toypets-clip", "toypets-stylegan2", "toypets-classifier")
    assert p.identity is None and identity_net_for("toypets") is None  # no L_id, as the paper for AFHQ
    assert p.neutral_prompt == "a pet" and "toypets-mapping" in p.artifacts
    assert all(name in hub.ARTIFACTS for name in p.artifacts)
    assert vocabulary_prompts("toypets") == [pets.value_prompt(a, v) for a, vs in pets.ATTRIBUTES.items() for v in vs]
    assert PROFILES["toyfaces"].world == "clip2gan.toy.faces"


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """No shipped or cached files and no variables: what a checkout without toypets weights sees."""
    monkeypatch.setattr(hub, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(hub, "MANIFEST_PATH", tmp_path / "data" / "MANIFEST.json")  # no sha256 of the shipped files
    monkeypatch.setenv("CLIP2GAN_HOME", str(tmp_path / "cache"))
    for name in PROFILES["toypets"].artifacts:
        monkeypatch.delenv(hub.ARTIFACTS[name].env_var, raising=False)
    (tmp_path / "data").mkdir()
    return tmp_path / "data"


def test_missing_weights_say_they_are_not_trained_yet(empty_hub):
    from clip2gan.model import CLIP2GAN

    with pytest.raises(hub.WeightsNotFound, match="toypets-stylegan2 is not trained yet: run python -m "
                                                   "clip2gan.toy.stylegan2_training --profile toypets"):
        hub.resolve("toypets-stylegan2")
    with pytest.raises(hub.WeightsNotFound) as err:
        CLIP2GAN.from_pretrained("toypets")
    text = str(err.value)
    assert text.startswith("toypets-mapping is not trained yet: run python -m clip2gan.train --profile toypets")
    assert "It needs toypets-clip, not trained yet either" in text and "It needs toypets-stylegan2" in text
    assert "CLIP2GAN_TOYPETS_MAPPING" in text
    assert "toypets" not in str(hub.status("toyfaces"))  # the faces' files are untouched


# ---- the trainers on toypets, two steps each, then the world loads as a whole --------------------

TINY_CLIP = dict(embed_dim=32, vision_cfg={"image_size": 16, "patch_size": 8, "width": 32, "head_width": 16, "layers": 1},
                 text_cfg={"width": 32, "heads": 2, "layers": 1})
TINY_GAN = ["--resolution", "16", "--channel-base", "64", "--channel-max", "16", "--z-dim", "16", "--w-dim", "16",
            "--batch", "4", "--d-aux-weight", "1.0"]


def test_classifier_trainer_runs_on_pets(tmp_path, capsys):
    from clip2gan.toy import nets

    out = tmp_path / "toypets-classifier.safetensors"
    nets.main(["train-classifier", "--profile", "toypets", "--out", str(out), "--steps", "2", "--batch", "8",
               "--eval-n", "20", "--state", str(tmp_path / "state.safetensors")])
    clf = nets.AttributeClassifier.from_pretrained(str(out))
    assert clf.world is pets and set(clf.heads) == set(pets.ATTRIBUTES)
    assert json.loads(out.with_suffix(".json").read_text())["command"].endswith("--profile toypets")
    preds = clf.predict(pets.render_batch([pets.sample_attributes(np.random.default_rng(0))], None, 32))
    pets.check_attributes(preds[0])
    with pytest.raises(ValueError, match="no identity network"):
        nets.main(["train-identity", "--profile", "toypets", "--out", str(tmp_path / "id.safetensors"), "--steps", "1"])
    nets.main(["eval-classifier", "--weights", str(out), "--n", "10"])
    assert "species" in capsys.readouterr().out


def test_pets_world_trains_and_loads_as_a_whole(empty_hub, tmp_path):
    """CLIP, G and M trainers each run two steps on toypets; with their files in data/ the world loads."""
    from clip2gan import train as m_train
    from clip2gan.checkpoint import load_config
    from clip2gan.model import CLIP2GAN
    from clip2gan.toy import clip as toyclip
    from clip2gan.toy.stylegan2_eval import generator_world
    from clip2gan.toy.stylegan2_training import main as gan_main

    # the small CLIP: two steps on captioned pets, written as the hub's toypets-clip
    cfg = toyclip.model_config(**TINY_CLIP)
    res = toyclip.train(empty_hub / "toypets-clip.safetensors", steps=2, batch_size=8, config=cfg, warmup=1,
                        run_dir=tmp_path / "clip", progress=False, half=False, log=lambda s: None, world="pets")
    assert res["out"] and np.isfinite(res["loss"])
    model, tokenizer = toyclip.load("toypets-clip")
    assert model.meta["world"] == "pets"
    metrics = toyclip.evaluate(model, tokenizer, n=20, group_size=10)  # the world comes from the file
    assert set(metrics["zero_shot"]) == set(pets.ATTRIBUTES)
    _, texts, attrs = toyclip.make_batch(0, 6, seed=1, resolution=R, world="pets")
    assert all(set(a) == set(pets.ATTRIBUTES) for a in attrs) and len(texts) == 6

    # the toy StyleGAN2: two steps, then exported as the hub's toypets-stylegan2
    run = tmp_path / "gan"
    gan_main(["--profile", "toypets", "--out", str(run), "--steps", "2", "--snapshot-kimg", "0", "--grid-every", "0",
              "--no-progress", "--checkpoint-minutes", "100", *TINY_GAN])
    gan_main(["--profile", "toypets", "--out", str(run), "--resume", "--steps", "3", "--snapshot-kimg", "0",
              "--grid-every", "0", "--no-progress"])  # resumes the pets run
    with pytest.raises(ValueError, match="architecture"):  # a pets run cannot become a faces run
        gan_main(["--profile", "toyfaces", "--out", str(run), "--resume", "--steps", "4", "--no-progress"])
    with pytest.raises(SystemExit):  # --profile names the world the run must have
        gan_main(["eval", "--profile", "toyfaces", "--run", str(run), "--n", "4"])
    gan_main(["export", "--profile", "toypets", "--run", str(run),
              "--out", str(empty_hub / "toypets-stylegan2.safetensors")])
    meta = load_config(empty_hub / "toypets-stylegan2.safetensors")
    assert meta["world"] == "pets" and set(meta["c_layout"]) == set(pets.ATTRIBUTES) and meta["step"] == 3
    assert generator_world(meta) is pets and generator_world({}) is faces

    # M: two steps of clip2gan.train on pets renders (no identity net), copied as the hub's toypets-mapping
    out = tmp_path / "mapping"
    m_train.main(["--profile", "toypets", "--out", str(out), "--epochs", "1", "--epoch-size", "8", "--batch-size", "4",
                  "--layers", "2", "--hidden-dim", "32", "--max-steps", "2", "--sample-every", "0", "--bank-size", "8",
                  "--device", "cpu"])
    config = json.loads((out / "config.json").read_text())
    assert config["profile"] == "toypets"
    (empty_hub / "toypets-mapping.safetensors").write_bytes((out / "mapping.safetensors").read_bytes())
    if (out / "mapping.json").is_file():
        (empty_hub / "toypets-mapping.json").write_bytes((out / "mapping.json").read_bytes())

    model = CLIP2GAN.from_pretrained("toypets")
    assert model.profile == "toypets"
    images = model.generate(["a dog with floppy ears"], n_per_prompt=2, seed=0)
    assert images.shape == (2, 3, 16, 16) and torch.isfinite(images).all()


def test_the_evaluation_protocol_draws_its_held_out_data_from_the_pets():
    """eval_data/edit_set take the world: pets captions, attributes and edits that ask for a value the pet lacks."""
    from clip2gan.evaluation.protocol import eval_data
    from clip2gan.evaluation.sweeps import SIZES

    data = eval_data(SIZES["ci"], R, seed=0, world="toypets")  # the profile names its world
    assert data.images.shape == (SIZES["ci"].n_captions, 3, R, R)
    assert all(set(a) == set(pets.ATTRIBUTES) for a in data.attributes + data.edit_attributes)
    assert all(set(m) <= set(pets.ATTRIBUTES) and m for m in data.mentioned)
    for attrs, (attr, value) in zip(data.edit_attributes, data.edit_targets):
        assert attr in pets.ATTRIBUTES and attrs[attr] != value  # a real change
    again = eval_data(SIZES["ci"], R, seed=0, world=pets)
    assert again.captions == data.captions and torch.equal(again.images, data.images)


# ---- the shipped toypets world as a user meets it --------------------------------------------------


def test_the_shipped_pets_world_loads_serves_the_app_and_runs_in_the_pipeline(tmp_path, monkeypatch):
    """`CLIP2GAN.from_pretrained("toypets")`, the editing app's own notebook code in the environment
    `python -m clip2gan.app --profile toypets` sets, and `python -m clip2gan.pipeline --profile toypets` (the notebooks
    written for the pets run, the faces' are skipped with the reason)."""
    import nbformat

    from clip2gan import pipeline
    from clip2gan.app import APP_NOTEBOOK, app_environment
    from clip2gan.model import CLIP2GAN

    model = CLIP2GAN.from_pretrained("toypets")
    assert model.profile == "toypets" and model.method == "bridged"
    images = model.generate(["a dog with floppy ears"], n_per_prompt=2, seed=0)
    assert images.shape == (2, 3, pets.RESOLUTION, pets.RESOLUTION) and torch.isfinite(images).all()

    env = app_environment("toypets", None, prompt="a pet wearing a red collar")
    for key in ("CLIP2GAN_APP_PROFILE", "CLIP2GAN_APP_PROMPT"):
        monkeypatch.setenv(key, env[key])
    namespace: dict = {}
    for cell in nbformat.read(str(APP_NOTEBOOK), as_version=4).cells:
        if cell.cell_type == "code":
            exec(cell.source, namespace)  # what Voilà runs
    app = namespace["app"]
    assert app.model.profile == "toypets" and app.picker.value.startswith("toy pet 0")
    assert app.edited_array().shape == (pets.RESOLUTION, pets.RESOLUTION, 3) and "collar" in app.prompt.value

    lines: list[str] = []
    results = pipeline.run_pipeline("toypets", "ci", out=tmp_path, log=lines.append)
    ran = {r.notebook: r.status for r in results if r.status != "skipped"}
    assert ran == {"12_other_worlds.ipynb": "ok"}
    assert all(r.detail == "teaches toyfaces only" for r in results if r.status == "skipped")
    assert (tmp_path / "toypets" / "12_other_worlds.ipynb").is_file()
