"""EditingApp driven without a browser: redraws, caching, agreement with edit_image, bad input (tiny world)."""

from __future__ import annotations

import datetime
import io

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_editing import tiny_model
from tiny_world import RES

from clip2gan.edit import edit_image
from clip2gan.images import ImageConversionWarning
from clip2gan.viz import to_uint8
from clip2gan.widgets import EditingApp

TEXT = "a person wearing a hat"


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture
def app(model):
    return EditingApp(model, n_toy=3)  # 3 toy faces rendered at 16 px: enough to pick from


def _png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _upload_value(data: bytes, name: str) -> tuple[dict, ...]:
    """What ipywidgets 8's FileUpload holds after a browser upload."""
    return ({"name": name, "type": "image/png", "size": len(data), "content": memoryview(data),
             "last_modified": datetime.datetime.now(datetime.timezone.utc)},)


def _current_image(app):
    return app._images[app.picker.value]


def test_builds_with_toy_faces_and_shows_the_reconstruction(app, model):
    import ipywidgets

    assert isinstance(app.widget, ipywidgets.VBox)
    assert "c2g-edited" in app.edited._dom_classes and "c2g-status" in app.status._dom_classes  # browser handles
    assert len(app.picker.options) == 3 and app.picker.value.startswith("toy face 0")
    assert "prompt" in app.message and app.n_redraws == 1
    x = _current_image(app)[None]
    assert np.array_equal(app.edited_array(), to_uint8(model.reconstruct(x))[0])
    assert app.original_array().shape == (RES, RES, 3)
    shown = _png(app.edited.value)  # upscaled nearest for display
    assert shown.shape[0] == RES * app.upscale and np.array_equal(shown[:: app.upscale, :: app.upscale], app.edited_array())


def test_beta_changes_the_image_and_matches_edit_image(app, model):
    app.set_prompt(TEXT)
    first = app.edited_array()
    for beta in (0.9, 0.2):
        app.set_beta(beta)
        shown = app.edited_array()
        ref = to_uint8(edit_image(model, _current_image(app), TEXT, beta=beta))[0]
        assert np.abs(shown.astype(int) - ref.astype(int)).max() <= 1  # within 1/255
    assert np.abs(app.edited_array().astype(int) - first.astype(int)).max() > 1
    assert app.message == ""


@pytest.mark.parametrize("control, value, kwargs", [("layers", "coarse", dict(layers="coarse")),
                                                    ("space", "clip", dict(space="clip")),
                                                    ("mode", "directional", dict(mode="directional"))])
def test_dropdowns_match_edit_image(app, model, control, value, kwargs):
    app.set_prompt(TEXT)
    app.set_beta(0.8)
    getattr(app, control).value = value
    ref = to_uint8(edit_image(model, _current_image(app), TEXT, beta=0.8, **kwargs))[0]
    assert np.abs(app.edited_array().astype(int) - ref.astype(int)).max() <= 1


def test_beta_changes_reuse_the_cached_encodes_and_redraw_only_on_change(app, model, monkeypatch):
    app.set_prompt(TEXT)
    calls = []
    monkeypatch.setattr(model, "image_features", lambda *a, **k: calls.append("image"))
    monkeypatch.setattr(model, "text_features", lambda *a, **k: calls.append("text"))
    n = app.n_redraws
    for beta in (0.1, 0.3, 0.7):
        app.set_beta(beta)
    app.layers.value = "fine"
    assert calls == [] and app.n_redraws == n + 4
    app.set_beta(0.7)  # unchanged: nothing to draw
    app.update()
    assert app.n_redraws == n + 4


def test_switching_images_and_back_uses_the_cache(app, model, monkeypatch):
    app.set_prompt(TEXT)
    names = list(app.picker.options)
    app.select(names[1])
    second = app.edited_array()
    app.select(names[0])
    monkeypatch.setattr(model, "image_features", lambda *a, **k: pytest.fail("re-encoded a cached image"))
    app.select(names[1])
    assert np.array_equal(app.edited_array(), second)
    with pytest.raises(ValueError, match="no image named"):
        app.select("nope")


def test_extended_beta_range(app):
    assert (app.beta.min, app.beta.max) == (0.0, 1.0)
    app.set_beta(1.5)
    assert app.extend.value and (app.beta.min, app.beta.max) == (-1.0, 2.0) and app.beta.value == 1.5
    app.set_beta(-0.5)
    assert app.beta.value == -0.5
    app.extend.value = False
    assert (app.beta.min, app.beta.max) == (0.0, 1.0) and app.beta.value == 0.0


@pytest.mark.parametrize("beta", [float("nan"), 3.0, -2, "much"])
def test_bad_beta_shows_a_message_and_keeps_beta(app, beta):
    app.set_beta(0.4)
    app.set_beta(beta)
    assert "β must be a number in [-1, 2]" in app.message and app.beta.value == 0.4


def test_empty_prompt_shows_a_message_and_the_reconstruction(app, model):
    app.set_prompt(TEXT)
    app.set_prompt("   ")
    assert "Type an edit prompt" in app.message
    assert np.array_equal(app.edited_array(), to_uint8(model.reconstruct(_current_image(app)[None]))[0])


def test_uploading_a_non_image_shows_a_message_and_the_app_keeps_working(app):
    app.set_prompt(TEXT)
    options = list(app.picker.options)
    app.upload.value = _upload_value(b"%PDF-1.4 not an image", "notes.pdf")
    assert "could not read 'notes.pdf' as an image" in app.message
    assert list(app.picker.options) == options
    before = app.edited_array()
    app.set_beta(0.95)
    assert app.message == "" and not np.array_equal(app.edited_array(), before)


def test_uploading_a_huge_image_is_refused_before_decoding(app):
    buf = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(buf, format="PNG")  # 1-bit: 12 MB in memory, a small file
    assert not app.upload_bytes(buf.getvalue(), "huge.png")
    assert "10000x10000 px" in app.message and "over the limit" in app.message
    assert len(app.picker.options) == 3


def test_uploading_an_image_of_any_mode_and_size_selects_it(app, model):
    app.set_prompt(TEXT)
    buf = io.BytesIO()
    Image.new("RGBA", (40, 30), (255, 0, 0, 128)).save(buf, format="PNG")
    app.upload.value = _upload_value(buf.getvalue(), "me.png")
    assert app.picker.value == "upload 1: me.png" and len(app.picker.options) == 4
    assert "alpha composited on white" in app.message and "resized 40x30" in app.message
    with pytest.warns(ImageConversionWarning):
        ref = to_uint8(edit_image(model, _current_image(app), TEXT, beta=app.beta.value))[0]
    assert np.abs(app.edited_array().astype(int) - ref.astype(int)).max() <= 1


def test_given_images_and_errors_inside_the_model_become_messages(model, monkeypatch):
    images = torch.rand(2, 3, RES, RES, generator=torch.Generator().manual_seed(0)) * 2 - 1
    app = EditingApp(model, images=images, prompt=TEXT, beta=1.5)
    assert list(app.picker.options) == ["image 0", "image 1"] and app.beta.value == 1.5 and app.extend.value
    monkeypatch.setattr(model, "synthesize", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("out of memory")))
    app.set_beta(0.1)
    assert app.message == "could not edit: RuntimeError: out of memory"
    with pytest.raises(ValueError, match="empty"):
        EditingApp(model, images=[])
