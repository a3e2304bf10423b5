"""Serve the β-editing app in a browser page with Voilà (07_editing.ipynb).

    python -m clip2gan.app [--profile toyfaces] [--model runs/NAME] [--port 8866]

Renders `clip2gan/apps/editing_app.ipynb` (a `clip2gan.widgets.EditingApp`) with Voilà on
127.0.0.1 only, printing the URL. Voilà shows no code and no tracebacks; the app reports bad input
(an empty prompt, an upload that is not an image or is too large) in its own message line.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from clip2gan.cli import add_config_args, config_from_args, option
from clip2gan.profiles import PROFILES

__all__ = ["APP_NOTEBOOK", "voila_command", "free_port", "main"]

APP_NOTEBOOK = Path(__file__).resolve().parent / "apps" / "editing_app.ipynb"


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def voila_command(port: int, notebook: Path = APP_NOTEBOOK) -> list[str]:
    """The Voilà command line: loopback only, no browser, no tracebacks in the page."""
    voila = shutil.which("voila", path=str(Path(sys.executable).parent)) or shutil.which("voila")
    if voila is None:
        raise RuntimeError("voila is not installed in this environment: run `make setup` (or pip install voila)")
    return [voila, str(notebook), f"--port={port}", "--no-browser", "--Voila.ip=127.0.0.1",
            "--VoilaConfiguration.show_tracebacks=False", "--ServerApp.port_retries=0"]


def app_environment(profile: str, model: str | None, prompt: str | None = None,
                    method: str | None = None) -> dict[str, str]:
    """The environment the app notebook reads its settings from (profile, model, prompt, method)."""
    env = dict(os.environ, CLIP2GAN_APP_PROFILE=profile)
    if method:
        env["CLIP2GAN_APP_METHOD"] = method
    if model:
        env["CLIP2GAN_APP_MODEL"] = str(Path(model).resolve())
    if prompt:
        env["CLIP2GAN_APP_PROMPT"] = prompt
    return env


@dataclass
class AppConfig:
    """The flags of `python -m clip2gan.app`."""

    profile: str = option("toyfaces", "the world whose model the app loads", choices=tuple(PROFILES))
    model: str | None = option(None, "a mapping checkpoint or training run folder (default: the profile's shipped M)")
    port: int = option(8866, "port of the Voila server on 127.0.0.1")
    method: str | None = option(None, "'paper' (the paper's rules) or 'bridged'; default: the checkpoint's",
                                choices=("paper", "bridged"))


def main(argv: list[str] | None = None) -> int:
    """`python -m clip2gan.app`: serve the editing app (Voila) on 127.0.0.1."""
    parser = argparse.ArgumentParser(prog="python -m clip2gan.app", description=__doc__.split("\n\n")[0])
    args = config_from_args(AppConfig, add_config_args(parser, AppConfig).parse_args(argv))
    if not APP_NOTEBOOK.is_file():
        print(f"error: the app notebook {APP_NOTEBOOK} is missing", file=sys.stderr)
        return 1
    print(f"clip2gan editing app: http://127.0.0.1:{args.port}/  (profile {args.profile}; Ctrl-C stops it)", flush=True)
    try:
        return subprocess.call(voila_command(args.port), env=app_environment(args.profile, args.model, method=args.method))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
