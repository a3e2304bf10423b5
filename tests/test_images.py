"""User images in: every mode, dtype and layout becomes [N, 3, R, R] in [-1, 1], or a clear error."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_world import RES

from clip2gan.images import ImageConversionWarning, ImageTooLarge, prepare_images


@pytest.fixture(scope="module")
def image():
    return torch.rand(2, 3, RES, RES, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _convert(x, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = prepare_images(x, RES, **kw)
    notes = [str(w.message) for w in caught if issubclass(w.category, ImageConversionWarning)]
    return out, notes


def test_tensor_at_resolution_passes_unchanged_without_warning(image):
    out, notes = _convert(image)
    assert torch.equal(out, image) and notes == []
    out, notes = _convert(image[0])  # [3, H, W] → a batch of one
    assert out.shape == (1, 3, RES, RES) and notes == []


def test_pil_rgb_and_numpy_uint8_agree():
    arr = np.random.default_rng(0).integers(0, 256, (RES, RES, 3), dtype=np.uint8)
    a, notes_a = _convert(Image.fromarray(arr))
    b, notes_b = _convert(arr)
    assert notes_a == notes_b == []
    assert torch.allclose(a, torch.from_numpy(arr).permute(2, 0, 1)[None].float() / 127.5 - 1, atol=1e-6)
    assert torch.equal(a, b)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16", "I", "F", "1"])
def test_every_pil_mode_becomes_rgb_with_a_warning(mode):
    base = Image.fromarray(np.random.default_rng(1).integers(0, 256, (RES, RES, 3), dtype=np.uint8))
    if mode == "I;16":
        im = Image.fromarray((np.random.default_rng(2).integers(0, 65536, (RES, RES))).astype(np.uint16))
    elif mode == "F":
        im = Image.fromarray(np.random.default_rng(2).random((RES, RES)).astype(np.float32))
    else:
        im = base.convert(mode)
    out, notes = _convert(im)
    assert out.shape == (1, 3, RES, RES) and out.min() >= -1 and out.max() <= 1
    assert len(notes) == 1 and "RGB" in notes[0]


def test_transparent_pixels_become_white():
    rgba = np.zeros((RES, RES, 4), np.uint8)  # black, fully transparent
    rgba[:, : RES // 2, 3] = 255  # left half opaque black
    for item in (Image.fromarray(rgba, "RGBA"), rgba):
        out, notes = _convert(item)
        assert torch.allclose(out[0, :, :, RES // 2:], torch.ones(1)) and torch.allclose(out[0, :, :, : RES // 2], -torch.ones(1))
        assert "alpha composited on white" in notes[0]


def test_sixteen_bit_full_scale_is_white():
    im = Image.fromarray(np.full((RES, RES), 65535, np.uint16))
    out, _ = _convert(im)
    assert torch.allclose(out, torch.ones(1))
    out, notes = _convert(np.full((RES, RES, 3), 65535, np.uint16))
    assert torch.allclose(out, torch.ones(1)) and "uint16" in notes[0]


def test_numpy_layouts_and_ranges():
    rng = np.random.default_rng(3)
    grey, _ = _convert(rng.random((RES, RES)).astype(np.float32))  # HW float in [0, 1]
    assert grey.shape == (1, 3, RES, RES) and torch.equal(grey[:, 0], grey[:, 1])
    batch, _ = _convert(rng.integers(0, 256, (4, RES, RES, 3), dtype=np.uint8))  # NHWC
    assert batch.shape == (4, 3, RES, RES)
    f255, notes = _convert(rng.random((RES, RES, 3)) * 255)  # float 0-255
    assert "0-255" in notes[0] and f255.max() <= 1
    with pytest.raises(ValueError, match="transpose"):
        prepare_images(rng.random((3, 20, 20)).astype(np.float32), RES)
    with pytest.raises(ValueError, match="read as \\[0, 1\\]"):
        prepare_images(rng.random((RES, RES, 3)) * 2 - 1, RES)


def test_any_size_is_resized_and_centre_cropped_with_a_warning():
    wide = np.zeros((RES, 3 * RES, 3), np.uint8)
    wide[:, RES:2 * RES, 1] = 255  # left third black, middle third green, right third black
    out, notes = _convert(wide)
    assert out.shape == (1, 3, RES, RES) and "centre crop" in notes[0]
    assert torch.allclose(out[0, 1], torch.ones(1)) and torch.allclose(out[0, 0], -torch.ones(1))
    big, notes = _convert(torch.rand(1, 3, 5 * RES, 4 * RES) * 2 - 1)
    assert big.shape == (1, 3, RES, RES) and f"{4 * RES}x{5 * RES} → {RES}x{RES}" in notes[0]
    small, notes = _convert(Image.new("RGB", (5, 7), (255, 0, 0)))  # enlarged too
    assert small.shape == (1, 3, RES, RES) and torch.allclose(small[0, 0], torch.ones(1), atol=1e-5)


def test_lists_of_mixed_inputs_are_stacked():
    items = [Image.new("RGB", (RES, RES)), np.zeros((RES, RES, 3), np.uint8), torch.zeros(3, RES, RES)]
    out, _ = _convert(items)
    assert out.shape == (3, 3, RES, RES)


def test_grey_tensor_becomes_rgb():
    out, notes = _convert(torch.zeros(1, RES, RES))
    assert out.shape == (1, 3, RES, RES) and "grey" in notes[0]


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(3, RES, RES, dtype=torch.uint8), "floating point"),
    (torch.full((3, RES, RES), 3.0), "\\[-1, 1\\]"),
    (torch.full((3, RES, RES), float("nan")), "NaN"),
    (torch.zeros(2, 5, RES, RES), "\\[N, 3, H, W\\]"),
    ("face.png", "PIL image, a NumPy array or a torch tensor"),
    ([], "no images"),
])
def test_unreadable_inputs_are_clear(bad, match):
    with pytest.raises(ValueError, match=match):
        prepare_images(bad, RES)


def test_too_many_pixels_is_refused_before_work():
    for item in (Image.new("RGB", (30, 20)), np.zeros((20, 30, 3), np.uint8), torch.zeros(3, 20, 30)):
        with pytest.raises(ImageTooLarge, match="600 pixels"):
            prepare_images(item, RES, max_pixels=500)
