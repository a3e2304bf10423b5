"""The editing app's command line: its settings reach the app notebook, the method switch included."""

from __future__ import annotations

import json

import pytest

from clip2gan.app import APP_NOTEBOOK, AppConfig, app_environment, main


def test_settings_reach_the_notebook_environment():
    env = app_environment("toyfaces", None, prompt="a person wearing a hat", method="paper")
    assert env["CLIP2GAN_APP_PROFILE"] == "toyfaces" and env["CLIP2GAN_APP_METHOD"] == "paper"
    assert env["CLIP2GAN_APP_PROMPT"] == "a person wearing a hat" and "CLIP2GAN_APP_MODEL" not in env
    assert "CLIP2GAN_APP_METHOD" not in app_environment("toyfaces", None)  # default: the checkpoint's method


def test_the_app_notebook_builds_its_model_with_the_method():
    source = "".join("".join(c["source"]) for c in json.loads(APP_NOTEBOOK.read_text())["cells"])
    assert 'os.environ.get("CLIP2GAN_APP_METHOD")' in source
    assert "from_pretrained(profile, method=method)" in source and "from_checkpoint(checkpoint, method=method)" in source


def test_bad_method_is_refused(capsys):
    assert AppConfig().method is None
    with pytest.raises(SystemExit):
        main(["--method", "nearest"])
    assert "invalid choice" in capsys.readouterr().err
