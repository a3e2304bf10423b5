"""Every command recorded beside the shipped weights still parses against today's command lines.

The "command" fields of `data/MANIFEST.json` and of the `.json` files beside the weights say how each
file was made. A recorded command is one or more `python -m MODULE [SUBCOMMAND] FLAGS` joined by
` && `, and may carry notes written into the string:

* `[...]`, e.g. `[resumed with --resume: step 1088 --r1-gamma 0.1; step 1694 --use-noise false]`: the
  flags a run was resumed with, one `;`-separated segment per resume;
* `(...)`, e.g. `(defaults: ... --steps 2000 --lr 1e-3; trained as run runs/G with --run-dir runs/G)`:
  prose that names flags (`;`-separated segments again) or none at all.

Each part is split in two: the command with its notes cut out, parsed as written, and each note
segment's flags (`--flag VALUE`; a flag written `--flag:` or followed by another flag takes no value),
parsed against the same module and subcommand. Parsing only: the module's `main` runs with
`argparse.ArgumentParser.parse_args` stopped right after a successful parse, so nothing trains.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shlex
from pathlib import Path
from typing import Any, Iterator

import pytest

from clip2gan.hub import DATA_DIR

_NOTE = re.compile(r"\s*(\[[^\[\]]*\]|\((?![^()]*')[^()]*\))")  # [...] or (...) not inside a quoted value


def _recorded_commands() -> Iterator[tuple[str, str]]:
    """(where, command) for every "command" string in data/MANIFEST.json and data/*.json."""

    def walk(obj: Any, where: str) -> Iterator[tuple[str, str]]:
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key == "command" and isinstance(value, str):
                    yield where, value
                else:
                    yield from walk(value, f"{where}/{key}")
        elif isinstance(obj, list):
            for i, value in enumerate(obj):
                yield from walk(value, f"{where}/{i}")

    for path in sorted(Path(DATA_DIR).glob("*.json")):
        yield from walk(json.loads(path.read_text()), path.name)


def _note_flags(note: str) -> list[list[str]]:
    """The flags each `;`-separated segment of a note names, as argv lists (segments naming none are dropped)."""
    out = []
    for segment in note.strip("[]()").split(";"):
        words = segment.split()
        argv: list[str] = []
        i = 0
        while i < len(words):
            word = words[i]
            i += 1
            if not word.startswith("--"):
                continue
            argv.append(word.rstrip(":,"))
            if word.endswith((":", ",")) or i >= len(words) or words[i].startswith("--"):
                continue
            argv.append(words[i].rstrip(",:"))
            i += 1
        if argv:
            out.append(argv)
    return out


def _parts(command: str) -> Iterator[tuple[str, list[str], list[list[str]]]]:
    """(module, argv, [argv of each note segment]) for each ` && `-joined part of a recorded command."""
    for part in command.split(" && "):
        notes = [m.group(1) for m in _NOTE.finditer(part)]
        words = shlex.split(_NOTE.sub("", part))
        assert words[:3] == ["python", "-m", words[2]], f"not a `python -m MODULE ...` command: {part!r}"
        yield words[2], words[3:], [flags for note in notes for flags in _note_flags(note)]


CASES = [(f"{where} #{i}", module, argv, notes)
         for where, command in _recorded_commands()
         for i, (module, argv, notes) in enumerate(_parts(command))]


class _Parsed(Exception):
    """Raised instead of running the command, once its flags have parsed."""


@pytest.fixture
def parse_only(monkeypatch: pytest.MonkeyPatch):
    original = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args)


def _parses(module: str, argv: list[str]) -> argparse.Namespace:
    main = importlib.import_module(module).main
    try:
        main(list(argv))
    except _Parsed as parsed:
        return parsed.args[0]
    except SystemExit as err:  # argparse refused the flags (its message is in the captured stderr)
        raise AssertionError(f"python -m {module} {shlex.join(argv)}: the parser exits with {err.code}") from None
    raise AssertionError(f"python -m {module} {shlex.join(argv)}: main returned without parsing any flags")


def test_the_manifest_records_commands():
    modules = {module for _, module, _, _ in CASES}
    assert {"clip2gan.toy.nets", "clip2gan.toy.clip", "clip2gan.toy.stylegan2_training", "clip2gan.train"} <= modules
    # the notes of the toy CLIP and the toy StyleGAN2 commands are read, not skipped
    assert sum(len(notes) for _, module, _, notes in CASES if module == "clip2gan.toy.stylegan2_training") >= 6
    assert any(notes for _, module, _, notes in CASES if module == "clip2gan.toy.clip")


def test_note_splitting():
    note = "[resumed with --resume: step 1088 --r1-gamma 0.1; step 1694 --use-noise false; --snapshot-kimg 16]"
    assert _note_flags(note) == [["--resume", "--r1-gamma", "0.1"], ["--use-noise", "false"], ["--snapshot-kimg", "16"]]
    module, argv, notes = next(_parts("python -m m train --out x (defaults: --lr 1e-3; run with --out y/z.st, then)"))
    assert (module, argv, notes) == ("m", ["train", "--out", "x"], [["--lr", "1e-3"], ["--out", "y/z.st"]])


@pytest.mark.parametrize("where, module, argv, notes", CASES, ids=[c[0] for c in CASES])
def test_recorded_command_parses(where, module, argv, notes, parse_only):
    _parses(module, argv)
    # a note's flags go to the same subcommand as the command's own (the first word when it is not a flag)
    sub = argv[:1] if argv and not argv[0].startswith("-") else []
    for flags in notes:
        _parses(module, sub + flags)


def test_a_refused_flag_fails(parse_only):
    # the check is not vacuous: a flag the parser does not know fails it
    with pytest.raises(AssertionError, match="exits with 2"):
        _parses("clip2gan.toy.nets", ["train-classifier", "--no-such-flag", "1"])
    with pytest.raises(AssertionError, match="exits with 2"):
        _parses("clip2gan.toy.stylegan2_training", ["--resume", "--use-noise", "sometimes"])
