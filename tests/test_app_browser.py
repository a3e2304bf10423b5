"""The editing app in a real browser: Voilà on 127.0.0.1, driven by Playwright in Debian's Chromium.

The app serves a tiny random world (16 px, from `tiny_world.py`) so the test needs no shipped
weights and runs in seconds per redraw. It types a prompt, moves the β slider with the keyboard,
waits for the redraw, reads the displayed edited image's pixels from the page and checks them
against `clip2gan.edit.edit_image` for the same image, prompt and β (within 1/255). A screenshot
is kept in `outputs/app-test.png`. Bad input (an upload that is no image, a 10,000 px image) must
show a message in the page.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from playwright import sync_api as playwright
from tiny_world import RES, write_tiny_world

from clip2gan.app import app_environment, free_port, voila_command
from clip2gan.mapping import MappingNetwork
from clip2gan.model import CLIP2GAN, save_mapping

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# Flags for a closed network: no background connections, no GPU, root-safe sandboxing.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]

if CHROMIUM is None:
    if os.environ.get("CI"):
        pytest.fail("Chromium is missing in CI: `make setup-browser` installs Debian's chromium", pytrace=False)
    pytest.skip("no Chromium on this machine (make setup-browser installs it)", allow_module_level=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny world's mapping checkpoint and a Voilà server rendering the app for it."""
    folder = tmp_path_factory.mktemp("app_world")
    files = write_tiny_world(folder)
    from clip2gan.model import build_clip, load_generator_for_profile

    world = {"profile": "toyfaces", "clip": str(files["clip"]), "generator": str(files["generator"])}
    G = load_generator_for_profile("toyfaces", generator=world["generator"])
    torch.manual_seed(1)
    M = MappingNetwork.for_generator(G, in_dim=build_clip(world).embed_dim, n_layers=2, hidden_dim=32,
                                     last_init_scale=1.0)  # full-scale random M: edits visibly change the image
    ckpt = save_mapping(M, folder / "mapping.safetensors", world)
    port = free_port()
    env = app_environment("toyfaces", str(ckpt))
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    log = open(folder / "voila.log", "w")
    proc = subprocess.Popen(voila_command(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"Voilà did not answer within 120 s; log: {(folder / 'voila.log').read_text()[-2000:]}")
    if proc.poll() is not None:
        pytest.fail(f"Voilà exited: {(folder / 'voila.log').read_text()[-2000:]}")
    yield {"url": url, "model": CLIP2GAN.from_checkpoint(ckpt), "folder": folder}
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


_READ_PIXELS = """(img) => {
  const c = document.createElement('canvas');
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  return {w: c.width, h: c.height, data: Array.from(ctx.getImageData(0, 0, c.width, c.height).data)};
}"""


def _edited_pixels(page) -> np.ndarray:
    got = page.locator("img.c2g-edited").evaluate(_READ_PIXELS)
    rgba = np.array(got["data"], dtype=np.uint8).reshape(got["h"], got["w"], 4)
    up = got["w"] // RES
    return rgba[::up, ::up, :3]  # the widget upscales by whole pixels (nearest): undo it


def _wait_redraw(page, before: str, timeout: float = 60_000) -> None:
    page.wait_for_function(
        "(before) => { const i = document.querySelector('img.c2g-edited'); return i && i.src !== before && i.complete; }",
        arg=before, timeout=timeout)
    page.wait_for_timeout(300)  # let a burst of slider events settle on the last one


def _src(page) -> str:
    return page.locator("img.c2g-edited").get_attribute("src") or ""


def _expected(model, text: str, beta: float) -> np.ndarray:
    from clip2gan.edit import edit_image
    from clip2gan.toy.faces import render_labeled_batch
    from clip2gan.viz import to_uint8

    image = render_labeled_batch(8, np.random.default_rng(0), RES)[0][0]  # the app's first toy face
    return to_uint8(edit_image(model, image, text, beta=beta))[0]


def test_prompt_and_beta_redraw_match_edit_image(served):
    out = ROOT / "outputs"
    out.mkdir(exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.goto(served["url"], timeout=120_000)
        prompt = page.locator(".c2g-prompt input")
        prompt.wait_for(timeout=120_000)
        before = _src(page)
        prompt.fill("a person wearing a hat")
        prompt.press("Enter")
        _wait_redraw(page, before)
        beta_text = page.locator(".c2g-beta .widget-readout").inner_text()
        first = _edited_pixels(page)

        before = _src(page)
        handle = page.locator(".c2g-beta .noUi-handle")
        handle.focus()
        for _ in range(6):  # six steps of 0.05: β 0.50 → 0.80
            handle.press("ArrowRight")
        _wait_redraw(page, before)
        beta_after = float(page.locator(".c2g-beta .widget-readout").inner_text())
        second = _edited_pixels(page)
        page.screenshot(path=str(out / "app-test.png"), full_page=True)
        browser.close()

    assert float(beta_text) == pytest.approx(0.5) and beta_after == pytest.approx(0.8)
    assert np.abs(first.astype(int) - second.astype(int)).max() > 8, "moving β did not change the edited image"
    for shown, beta in ((first, 0.5), (second, 0.8)):
        want = _expected(served["model"], "a person wearing a hat", beta)
        assert np.abs(shown.astype(int) - want.astype(int)).max() <= 1, f"page differs from edit_image at β={beta}"


def test_bad_uploads_show_a_message(served, tmp_path):
    from PIL import Image

    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not a picture")
    huge = tmp_path / "huge.png"
    Image.new("RGB", (10_000, 10_000), (200, 30, 30)).save(huge)  # one colour: a small file, 100 Mpx
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page()
        page.goto(served["url"], timeout=120_000)
        page.locator(".c2g-prompt input").wait_for(timeout=120_000)
        status = page.locator(".c2g-status")
        for path, words in ((not_image, "could not read"), (huge, "over the limit")):
            with page.expect_file_chooser() as chooser:  # ipywidgets' file input is not in the DOM: use the dialog
                page.locator(".c2g-upload").click()
            chooser.value.set_files(str(path))
            page.wait_for_function(
                "(w) => document.querySelector('.c2g-status').innerText.toLowerCase().includes(w)", arg=words,
                timeout=60_000)
            assert "Traceback" not in page.content()
        prompt = page.locator(".c2g-prompt input")
        prompt.fill("")
        prompt.press("Enter")
        page.wait_for_timeout(1000)
        assert "Traceback" not in page.content() and status.is_visible()
        browser.close()
