"""Small file helpers shared by the loaders of `clip2gan.stylegan2` (introduced in 02_stylegan2_wplus.ipynb):
`resolve_file` finds a file by path or `clip2gan.hub` artefact name, `plain` turns what a pickle held
into JSON-friendly values, and `PathLike` is the path type the loaders accept.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Union

from clip2gan import hub

PathLike = Union[str, "os.PathLike[str]"]


def resolve_file(path_or_name: PathLike) -> Path:
    """`path_or_name` as an existing file, else the `clip2gan.hub` artefact of that name (nothing is
    looked up before this is called)."""
    path = Path(os.fspath(path_or_name)).expanduser()
    if path.is_file():
        return path
    return Path(hub.resolve(path_or_name))


def plain(value: Any) -> Any:
    """EasyDicts / OrderedDicts / tuples from a pickle -> plain dicts and lists (JSON-friendly)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
