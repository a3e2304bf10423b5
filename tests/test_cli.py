"""One command-line mechanism: flags built from config dataclasses (clip2gan.cli)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from clip2gan.cli import add_config_args, config_from_args, given_fields, option


@dataclass
class Config:
    epochs: int = option(12, "passes over the data")
    lr: float = option(2e-3, "learning rate")
    name: str = option("run", "a name", choices=("run", "other"))
    amp: bool = option(True, "mixed precision")
    noise: bool = option(False, "per-pixel noise")
    limit: int | None = option(None, "stop early")
    identity: bool = option(True, "the identity term", flag="--id")


def _parse(argv, **kw):
    parser = add_config_args(argparse.ArgumentParser(), Config, **kw)
    return parser, parser.parse_args(argv)


def test_defaults_and_types():
    _, ns = _parse([])
    assert config_from_args(Config, ns) == Config()
    _, ns = _parse(["--epochs", "3", "--lr", "0.5", "--name", "other", "--limit", "7"])
    cfg = config_from_args(Config, ns)
    assert (cfg.epochs, cfg.lr, cfg.name, cfg.limit) == (3, 0.5, "other", 7)
    assert config_from_args(Config, _parse(["--limit", "none"])[1]).limit is None


@pytest.mark.parametrize("argv, amp, noise", [
    ([], True, False), (["--no-amp"], False, False), (["--amp", "false"], False, False), (["--amp", "no"], False, False),
    (["--noise"], True, True), (["--noise", "true"], True, True), (["--noise", "1", "--amp", "yes"], True, True)])
def test_every_boolean_form_of_recorded_commands(argv, amp, noise):
    cfg = config_from_args(Config, _parse(argv)[1])
    assert (cfg.amp, cfg.noise) == (amp, noise)


def test_flag_names_and_help():
    parser, ns = _parse(["--no-id"])
    assert config_from_args(Config, ns).identity is False
    text = parser.format_help()
    assert "--epochs" in text and "passes over the data (default: 12)" in text and "--id" in text
    assert "(default: None)" not in text  # None defaults are not shown as a value


@pytest.mark.parametrize("argv", [["--amp", "maybe"], ["--epochs", "x"], ["--name", "nope"]])
def test_bad_values_are_refused(argv, capsys):
    parser = add_config_args(argparse.ArgumentParser(), Config)
    with pytest.raises(SystemExit):
        parser.parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_only_given_leaves_the_rest_to_a_base():
    _, ns = _parse(["--epochs", "30"], only_given=True)
    assert given_fields(Config, ns) == {"epochs": 30}
    base = Config(lr=0.1, amp=False)
    assert config_from_args(Config, ns, base) == Config(epochs=30, lr=0.1, amp=False)


def test_exclude_and_unsupported_types():
    parser = add_config_args(argparse.ArgumentParser(), Config, exclude=("lr",))
    assert "--lr" not in parser.format_help()

    @dataclass
    class Bad:
        weights: dict = option(default_factory=dict, help="no flag for a dict")

    with pytest.raises(TypeError, match="exclude"):
        add_config_args(argparse.ArgumentParser(), Bad)
