"""Command lines built from config dataclasses: one flag per field, one way for every command.

Every command of the package (`python -m clip2gan.train`, the toy world's trainers, the sweeps, the
benchmarks) keeps its knobs in a dataclass and builds its command line from it here, so a flag, its
type, its default and its help text are written once, beside the field::

    @dataclass
    class Config:
        epochs: int = option(12, "passes over the training set")
        amp: bool = option(True, "mixed precision on CUDA")

    parser = argparse.ArgumentParser(prog="python -m clip2gan.train")
    add_config_args(parser, Config)
    cfg = config_from_args(Config, parser.parse_args())

Flags are the field names with dashes (`epoch_size` → `--epoch-size`). A boolean field takes
`--amp` (true), `--no-amp` (false) or an explicit value (`--amp false`, `--amp yes`), so recorded
commands of any of these forms keep working. `X | None` fields accept `none`. The help text of each
flag ends with its default (unless the text states it).
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Iterable, TypeVar

__all__ = ["option", "add_config_args", "config_from_args", "given_fields", "parse_bool"]

T = TypeVar("T")
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f"}


def option(default: Any = dataclasses.MISSING, help: str = "", *, default_factory: Any = dataclasses.MISSING,
           choices: Iterable[Any] | None = None, flag: str | None = None) -> Any:
    """A dataclass field that carries its command-line help (and optionally its choices and flag name)."""
    metadata = {"help": help}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    if flag is not None:
        metadata["flag"] = flag
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def parse_bool(text: str) -> bool:
    """'true'/'yes'/'1'/'on' → True, 'false'/'no'/'0'/'off' → False; anything else is an error."""
    value = str(text).strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a yes/no value (true/false, yes/no, 1/0), got {text!r}")


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """The scalar type of a field and whether it is optional (`int | None` → (int, True))."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else str), len(args) < len(typing.get_args(annotation))
    return annotation, False


def _optional(convert: Any) -> Any:
    def parse(text: str) -> Any:
        return None if str(text).strip().lower() in ("none", "null", "") else convert(text)
    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def _flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or "--" + f.name.replace("_", "-")


def add_config_args(parser: argparse.ArgumentParser, cls: type, *, exclude: Iterable[str] = (),
                    only_given: bool = False, title: str | None = None) -> argparse.ArgumentParser:
    """Add one flag per field of the dataclass `cls` to `parser`.

    `exclude` names fields that get no flag (the command sets them another way). With `only_given`
    a flag the user did not pass leaves no attribute on the namespace (for resuming a run, where only
    the flags that were given change its stored config; see `given_fields`).
    """
    hints = typing.get_type_hints(cls)
    defaults = cls()
    group = parser.add_argument_group(title) if title else parser
    for f in dataclasses.fields(cls):
        if f.name in set(exclude) or not f.init:
            continue
        kind, optional = _base_type(hints[f.name])
        default = getattr(defaults, f.name)
        help_text = f.metadata.get("help", "")
        if default is not None and "default" not in help_text:  # a help text may state its own default
            help_text = f"{help_text} (default: {default})".strip()
        dest_default = argparse.SUPPRESS if only_given else default
        if kind is bool:
            group.add_argument(_flag(f), dest=f.name, nargs="?", const=True, type=parse_bool,
                               default=dest_default, metavar="yes|no", help=help_text)
            group.add_argument("--no-" + _flag(f)[2:], dest=f.name, action="store_false",
                               default=dest_default, help=argparse.SUPPRESS)
            continue
        if kind not in (int, float, str):
            raise TypeError(f"{cls.__name__}.{f.name}: a field of type {hints[f.name]} needs its own flag "
                            "(pass it in `exclude`)")
        convert = _optional(kind) if optional else kind
        group.add_argument(_flag(f), dest=f.name, type=convert, default=dest_default,
                           choices=f.metadata.get("choices"), help=help_text)
    return parser


def given_fields(cls: type, namespace: argparse.Namespace) -> dict[str, Any]:
    """The fields of `cls` that the namespace holds (with `only_given`: those the user passed)."""
    return {f.name: getattr(namespace, f.name) for f in dataclasses.fields(cls) if hasattr(namespace, f.name)}


def config_from_args(cls: type[T], namespace: argparse.Namespace, base: T | None = None, **overrides: Any) -> T:
    """A `cls` from the parsed flags: `base` (default: `cls()`) with every given field replaced."""
    values = given_fields(cls, namespace)
    values.update(overrides)
    return dataclasses.replace(base if base is not None else cls(), **values)
