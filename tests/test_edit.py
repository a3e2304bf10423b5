"""edit: eq. 11-14, layer ranges, CLIP-space edits, β strips, image conversion, errors (tiny world)."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from tiny_editing import tiny_model
from tiny_world import RES

from clip2gan.edit import (
    BetaStrip,
    default_neutral,
    edit_image,
    edit_latent,
    edited_latents,
    encode_for_edit,
    layer_groups,
    layer_mask,
    text_direction,
)
from clip2gan.images import ImageConversionWarning

TEXT = "a person wearing a hat"


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def image():
    return torch.rand(2, 3, RES, RES, generator=torch.Generator().manual_seed(0)) * 2 - 1


# ------------------------------------------------------------------------------------------------
# layer ranges and eq. 11


@pytest.mark.parametrize("num_ws, expected", [
    (18, (range(0, 4), range(4, 8), range(8, 18))),   # FFHQ 1024: the StyleGAN split 4 / 4 / 10
    (14, (range(0, 4), range(4, 8), range(8, 14))),   # FFHQ 256 (paper256)
    (10, (range(0, 4), range(4, 8), range(8, 10))),   # 64 px: still the resolution split
    (8, (range(0, 2), range(2, 6), range(6, 8))),     # the 32 px toy: 4² level / between / 32² level
    (6, (range(0, 2), range(2, 4), range(4, 6))),     # the 16 px test world
])
def test_layer_groups(num_ws, expected):
    groups = layer_groups(num_ws)
    assert (groups["coarse"], groups["middle"], groups["fine"]) == expected
    assert sorted(i for r in groups.values() for i in r) == list(range(num_ws))  # a partition


@pytest.mark.parametrize("layers, rows", [(None, range(6)), ("all", range(6)), ("coarse", [0, 1]), ("middle", [2, 3]),
                                          ("fine", [4, 5]), (slice(1, 3), [1, 2]), ([0, -1], [0, 5]), (range(3, 5), [3, 4])])
def test_edit_latent_touches_only_the_chosen_rows(layers, rows):
    g = torch.Generator().manual_seed(0)
    ws, n = torch.randn(3, 6, 16, generator=g), torch.randn(1, 6, 16, generator=g)
    out = edit_latent(ws, n, 0.7, layers)
    chosen = torch.zeros(6, dtype=torch.bool)
    chosen[list(rows)] = True
    assert torch.equal(out[:, ~chosen], ws[:, ~chosen])
    assert torch.allclose(out[:, chosen], ws[:, chosen] + 0.7 * n[:, chosen])
    assert torch.equal(layer_mask(6, layers), chosen)


def test_edit_latent_direction_shapes_and_beta_zero():
    ws = torch.randn(2, 6, 16)
    for n in (torch.randn(6, 16), torch.randn(1, 6, 16), torch.randn(2, 6, 16)):
        assert edit_latent(ws, n, 1.0).shape == ws.shape
    same = edit_latent(ws, torch.randn(6, 16), 0.0)
    assert torch.equal(same, ws) and same is not ws
    with pytest.raises(ValueError, match="direction"):
        edit_latent(ws, torch.randn(3, 6, 16), 1.0)
    with pytest.raises(ValueError, match="direction"):
        edit_latent(ws, torch.randn(6, 8), 1.0)


@pytest.mark.parametrize("beta", [float("nan"), float("inf"), -float("inf"), "strong", None, True, torch.ones(2)])
def test_bad_beta_is_a_clear_error(model, image, beta):
    with pytest.raises(ValueError, match="beta"):
        edit_latent(torch.zeros(1, 6, 16), torch.zeros(6, 16), beta)
    with pytest.raises(ValueError, match="beta"):
        edit_image(model, image, TEXT, beta=beta)


@pytest.mark.parametrize("layers, match", [("medium", "layers must be"), ([7], "out of range"), (slice(6, 9), "selects none"),
                                           (1.5, "layers must be")])
def test_bad_layers_are_clear(layers, match):
    with pytest.raises(ValueError, match=match):
        layer_mask(6, layers)


def test_a_group_too_small_for_the_generator_is_clear():
    with pytest.raises(ValueError, match="no 'middle' rows"):
        layer_mask(4, "middle")  # an 8 px generator: one coarse and one fine level only


# ------------------------------------------------------------------------------------------------
# eq. 13: directions


def test_text_direction_paper_and_directional(model):
    n = text_direction(model, TEXT)
    assert n.shape == (1, model.num_ws, model.w_dim)
    assert torch.allclose(n, model.encode_text([TEXT]), atol=1e-6)
    d = text_direction(model, TEXT, mode="directional", neutral="a person")
    assert torch.allclose(d, model.encode_text([TEXT]) - model.encode_text(["a person"]), atol=1e-5)
    c = text_direction(model, TEXT, space="clip")
    assert c.shape == (1, model.clip.embed_dim) and torch.allclose(c, model.text_features([TEXT]), atol=1e-6)
    assert torch.allclose(text_direction(model, TEXT, mode="directional", neutral=TEXT), torch.zeros_like(n))


def test_default_neutral_prompts(model):
    assert default_neutral("toyfaces") == "a person"
    assert default_neutral("ffhq") == "a face" and default_neutral(model) == "a face"  # model.profile is 'custom'


@pytest.mark.parametrize("text", ["", "   ", None, 3])
def test_empty_or_non_string_text_is_clear(model, image, text):
    with pytest.raises(ValueError, match="text"):
        edit_image(model, image, text)
    with pytest.raises(ValueError, match="text"):
        text_direction(model, text)


def test_bad_space_and_mode_are_clear(model, image):
    with pytest.raises(ValueError, match="space"):
        edit_image(model, image, TEXT, space="w")
    with pytest.raises(ValueError, match="mode"):
        edit_image(model, image, TEXT, mode="relative")


# ------------------------------------------------------------------------------------------------
# eq. 11-14 end to end


def test_beta_zero_is_the_reconstruction_exactly(model, image):
    assert torch.equal(edit_image(model, image, TEXT, beta=0.0), model.reconstruct(image))


def test_wplus_edit_matches_the_formula_and_changes_the_image(model, image):
    z = model.encode_image(image)
    expected = model.synthesize(z + 0.8 * model.encode_text([TEXT])).clamp(-1, 1)
    out = edit_image(model, image, TEXT, beta=0.8)
    assert torch.allclose(out, expected, atol=1e-5)
    assert (out - model.reconstruct(image)).abs().max() > 1e-2


def test_clip_space_edit_matches_the_formula(model, image):
    f = model.image_features(image)
    t = model.text_features([TEXT])
    expected = model.synthesize(model.map(torch.nn.functional.normalize(f + 0.5 * t, dim=-1))).clamp(-1, 1)
    assert torch.allclose(edit_image(model, image, TEXT, beta=0.5, space="clip"), expected, atol=1e-5)
    assert torch.allclose(edit_image(model, image, TEXT, beta=0.0, space="clip"), model.reconstruct(image), atol=1e-5)


def test_clip_space_layers_keep_the_other_rows_of_z(model, image):
    enc = encode_for_edit(model, image)
    n = text_direction(model, TEXT, space="clip")
    ws = edited_latents(model, enc, n, 1.0, space="clip", layers="coarse")
    assert torch.equal(ws[:, 2:], enc.ws[:, 2:]) and not torch.allclose(ws[:, :2], enc.ws[:, :2])
    with pytest.raises(ValueError, match="CLIP-space edit needs"):
        edited_latents(model, enc, text_direction(model, TEXT), 1.0, space="clip")
    with pytest.raises(ValueError, match="w\\+ edit needs"):
        edited_latents(model, enc, n, 1.0, space="wplus")


def test_directional_edit_with_the_neutral_text_is_the_reconstruction(model, image):
    out = edit_image(model, image, "a face", beta=1.0, mode="directional")  # default neutral of a 'custom' model
    assert torch.allclose(out, model.reconstruct(image), atol=1e-5)


def test_layer_range_edit_only_moves_those_rows(model, image):
    enc = encode_for_edit(model, image)
    ws = BetaStrip(model, image, TEXT, layers="fine").latents(1.0)
    assert torch.equal(ws[:, :4], enc.ws[:, :4]) and not torch.equal(ws[:, 4:], enc.ws[:, 4:])


def test_model_edit_delegates(model, image):
    assert torch.equal(model.edit(image, TEXT, beta=0.3, layers="coarse"), edit_image(model, image, TEXT, 0.3, layers="coarse"))


def test_beta_strip_encodes_once_and_matches_edit_image(model, image, monkeypatch):
    calls = {"image": 0, "text": 0}
    real_image, real_text = model.image_features, model.text_features

    def count_image(*a, **k):
        calls["image"] += 1
        return real_image(*a, **k)

    def count_text(*a, **k):
        calls["text"] += 1
        return real_text(*a, **k)

    monkeypatch.setattr(model, "image_features", count_image)
    monkeypatch.setattr(model, "text_features", count_text)
    strip = BetaStrip(model, image, TEXT, mode="directional")
    grid = strip.images([0.0, 0.5, 1.0, 2.0])
    assert grid.shape == (2, 4, 3, RES, RES)
    assert calls == {"image": 1, "text": 1}  # one encode of the images, one of [text, neutral]
    monkeypatch.undo()
    assert torch.equal(grid[:, 0], model.reconstruct(image))
    assert torch.allclose(grid[:, 2], edit_image(model, image, TEXT, beta=1.0, mode="directional"), atol=1e-6)
    with pytest.raises(ValueError, match="empty"):
        strip.images([])


def test_edit_image_accepts_a_pil_image_of_any_size(model):
    im = Image.new("RGBA", (40, 24), (200, 40, 40, 255))
    with pytest.warns(ImageConversionWarning, match="resized 40x24"):
        out = edit_image(model, im, TEXT, beta=0.5)
    assert out.shape == (1, 3, RES, RES)


# ------------------------------------------------------------------------------------------------
# 'neighbours' edits (feature bank)


@pytest.fixture(scope="module")
def banked():
    from clip2gan.modality_gap import feature_bank
    from clip2gan.toy.faces import ToyFaces

    m = tiny_model()
    m.feature_bank = feature_bank(m.clip, ToyFaces(64, seed=3, resolution=RES), n=64)
    m.edit_mode = "neighbours"
    return m


def test_neighbour_direction_matches_its_formula(banked, image):
    from clip2gan.edit import encode_for_edit, neighbour_direction

    enc = encode_for_edit(banked, image, warn=False)
    n = neighbour_direction(banked, enc.features, "a person wearing a hat", k=5, image_weight=0.5)
    assert n.shape == (2, banked.num_ws, banked.w_dim)
    bank = banked.feature_bank
    def z(s):
        return (s - s.mean(-1, keepdim=True)) / s.std(-1, keepdim=True)
    with torch.no_grad():
        t = banked.clip.encode_text(["a person wearing a hat"]).float()
        codes = banked.map(bank)
    for i in range(2):
        si = z(enc.features[i] @ bank.T)
        pos = (z((t @ bank.T)[0]) + 0.5 * si).topk(5).indices
        neg = si.topk(5).indices
        assert torch.allclose(n[i], codes[pos].mean(0) - codes[neg].mean(0), atol=1e-5)
    clip_n = neighbour_direction(banked, enc.features, "a person wearing a hat", space="clip", k=5)
    assert clip_n.shape == (2, bank.shape[1])


def test_neighbours_is_the_default_mode_of_a_banked_model(banked, image):
    from clip2gan.edit import default_mode

    assert default_mode(banked) == "neighbours" and default_mode(tiny_model()) == "paper"
    assert torch.equal(edit_image(banked, image, "a person wearing a hat", beta=0.0), banked.reconstruct(image))
    by_default = edit_image(banked, image, "a person wearing a hat", beta=1.0)
    assert torch.equal(by_default, edit_image(banked, image, "a person wearing a hat", beta=1.0, mode="neighbours"))
    assert not torch.equal(by_default, banked.reconstruct(image))


def test_neighbours_without_a_bank_or_features_is_clear(model, banked, image):
    with pytest.raises(ValueError, match="feature bank"):
        edit_image(model, image, "wearing a hat", mode="neighbours")
    with pytest.raises(ValueError, match="CLIP features"):
        text_direction(banked, "wearing a hat", mode="neighbours")
