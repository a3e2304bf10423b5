"""Where weights come from: shipped files, environment variables, a cache, and opt-in downloads.

Introduced in 00_setup.ipynb. Every external artefact has a name in `ARTIFACTS`; `resolve(name)`
finds its file in this order:

1. an explicit path (`resolve("/path/to/ffhq.pkl")`);
2. the artefact's environment variable (e.g. `CLIP2GAN_STYLEGAN2_FFHQ_1024=/data/ffhq.pkl`);
3. the repository's `data/` folder (the toy world's shipped weights, listed in `data/MANIFEST.json`);
4. the cache, `$CLIP2GAN_HOME` (default `~/.cache/clip2gan`);
5. a download from the recorded URL, **only** when the caller asks (`download=True`) or the user
   has set `CLIP2GAN_DOWNLOAD=1`. `pooch` checks the file against its sha256 and only then moves it
   into place, so the cache never holds a partial or unverified file; the transfer streams into
   `$CLIP2GAN_HOME/.partial/` and is resumed with an HTTP range request when re-run (see `fetch`).

When none of these finds the file, one `WeightsNotFound` names the file, the URL and the variable to
set. A file whose sha256 does not match the recorded one raises `ChecksumMismatch`. Nothing here
touches the network at import time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pooch
from tqdm.auto import tqdm

from clip2gan.checkpoint import atomic_write_text
from clip2gan.profiles import get_profile

__all__ = [
    "Artifact",
    "ARTIFACTS",
    "DATA_DIR",
    "MANIFEST_PATH",
    "WeightsNotFound",
    "ChecksumMismatch",
    "cache_dir",
    "register",
    "resolve",
    "fetch",
    "copy_into_cache",
    "sha256_file",
    "status",
    "read_manifest",
    "write_manifest_entry",
]

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
MANIFEST_PATH = DATA_DIR / "MANIFEST.json"


class WeightsNotFound(FileNotFoundError):
    """An artefact is neither given, configured, shipped, cached nor allowed to download."""


class ChecksumMismatch(RuntimeError):
    """A file's sha256 differs from the one recorded for it (corrupt, truncated or wrong file)."""


@dataclass(frozen=True)
class Artifact:
    """One external file the project can use.

    name: registry key (`resolve(name)`); filename: the file's name in `data/` or the cache;
    url: where `download` fetches it (None: cannot be downloaded automatically, `how` says how to
    get it); sha256: the expected digest (None: not recorded, not checked); size: bytes, if known.
    train: for a file this project trains and has not shipped yet, the command that trains it (a
    missing file then says "not trained yet: run ..."); needs: the artefacts that command needs.
    """

    name: str
    filename: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    licence: str = ""
    description: str = ""
    how: str = ""
    shipped: bool = False
    train: str = ""
    needs: tuple[str, ...] = ()

    @property
    def env_var(self) -> str:
        return "CLIP2GAN_" + self.name.upper().replace("-", "_").replace(".", "_")


ARTIFACTS: dict[str, Artifact] = {}


def register(artifact: Artifact) -> Artifact:
    """Add (or replace) an artefact in the registry; returns it."""
    ARTIFACTS[artifact.name] = artifact
    return artifact


def cache_dir() -> Path:
    """`$CLIP2GAN_HOME`, default `~/.cache/clip2gan` (not created until something is written)."""
    return Path(os.environ.get("CLIP2GAN_HOME", Path.home() / ".cache" / "clip2gan")).expanduser()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest() -> dict[str, Any]:
    """`data/MANIFEST.json` as a dict (`{"files": {filename: entry}}`), empty if absent."""
    if not MANIFEST_PATH.is_file():
        return {"files": {}}
    return json.loads(MANIFEST_PATH.read_text())


def write_manifest_entry(path: str | os.PathLike, command: str, **info: Any) -> dict[str, Any]:
    """Record a shipped file in `data/MANIFEST.json`: sha256, size, the command that reproduces it,
    and any measured figures passed as keyword arguments (train_seconds=..., metrics={...})."""
    import fcntl

    path = Path(path)
    entry = {"sha256": sha256_file(path), "size": path.stat().st_size, "command": command, **info}
    MANIFEST_PATH.parent.mkdir(parents=True, exist_ok=True)
    # read-modify-write under an exclusive lock: two trainings finishing at once keep both entries
    with open(MANIFEST_PATH.parent / ".MANIFEST.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        manifest = read_manifest()
        manifest.setdefault("files", {})[path.name] = entry
        atomic_write_text(MANIFEST_PATH, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return entry


def _expected_sha256(artifact: Artifact) -> str | None:
    if artifact.sha256:
        return artifact.sha256
    if artifact.shipped:
        return read_manifest().get("files", {}).get(artifact.filename, {}).get("sha256")
    return None


_VERIFIED: dict[tuple[str, int, float], str] = {}


def _verify(path: Path, expected: str | None, artifact: Artifact | None) -> Path:
    if expected is None:
        return path
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime)
    digest = _VERIFIED.get(key) or sha256_file(path)
    if digest != expected:
        name = artifact.name if artifact else path.name
        raise ChecksumMismatch(
            f"{path} does not match the sha256 recorded for '{name}' "
            f"(expected {expected[:16]}…, got {digest[:16]}…). The file is corrupt, truncated or "
            "a different file: delete it and provide it again"
            + (f" (URL: {artifact.url})" if artifact and artifact.url else "")
            + "."
        )
    _VERIFIED[key] = digest
    return path


def _missing(name: str) -> bool:
    try:
        resolve(name, download=False)
        return False
    except (WeightsNotFound, ChecksumMismatch):
        return True


def _not_trained(artifact: Artifact, looked: list[Path]) -> WeightsNotFound:
    """'X is not trained yet: run ...', with the same for every artefact it needs that is missing too."""
    lines = [f"{artifact.name} is not trained yet: run {artifact.train}"]
    if artifact.description:
        lines.append(f"  What it is: {artifact.description}")
    for need in artifact.needs:
        other = ARTIFACTS.get(need)
        if other is not None and _missing(need):
            lines.append(f"  It needs {need}, not trained yet either: run {other.train or other.how}")
    lines.append("  Looked in: " + ", ".join(str(p) for p in looked))
    lines.append(f"  A file trained elsewhere (e.g. under runs/): point {artifact.env_var}=/path/to/{artifact.filename} "
                 "at it, or place it in data/.")
    return WeightsNotFound("\n".join(lines))


def _not_found(artifact: Artifact, looked: list[Path]) -> WeightsNotFound:
    if artifact.train and not artifact.url:
        return _not_trained(artifact, looked)
    lines = [f"'{artifact.name}' ({artifact.filename}) is not available offline."]
    if artifact.description:
        lines.append(f"  What it is: {artifact.description}")
    lines.append("  Looked in: " + ", ".join(str(p) for p in looked))
    if artifact.url:
        lines.append(f"  Download it from {artifact.url}")
        lines.append(
            f"  or let clip2gan fetch it: clip2gan.hub.resolve('{artifact.name}', download=True) "
            "(or set CLIP2GAN_DOWNLOAD=1)."
        )
    if artifact.how:
        lines.append(f"  How to get it: {artifact.how}")
    lines.append(
        f"  Then point {artifact.env_var}=/path/to/{artifact.filename} at it, or place it in "
        f"{cache_dir()} (CLIP2GAN_HOME)."
    )
    return WeightsNotFound("\n".join(lines))


def resolve(name_or_path: str | os.PathLike, download: bool | None = None, progress: bool = True) -> Path:
    """Return the local path of an artefact (see the module docstring for the search order).

    download: None follows `CLIP2GAN_DOWNLOAD` (default off); True allows a download; False never.
    """
    text = os.fspath(name_or_path)
    if text not in ARTIFACTS:
        path = Path(text).expanduser()
        if path.is_file():
            return path
        if path.suffix or os.sep in text:
            raise WeightsNotFound(f"{path} does not exist (not a file, and not a known artefact name).")
        known = ", ".join(sorted(ARTIFACTS)) or "(none registered)"
        raise WeightsNotFound(f"unknown artefact '{text}'. Known names: {known}.")
    artifact = ARTIFACTS[text]
    expected = _expected_sha256(artifact)
    looked: list[Path] = []

    env = os.environ.get(artifact.env_var)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise WeightsNotFound(
                f"{artifact.env_var} is set to {path}, which is not a file. Fix the variable or unset it."
            )
        return _verify(path, artifact.sha256, artifact)  # a user's own file: only a recorded URL hash binds

    for folder in (DATA_DIR, cache_dir()):
        path = folder / artifact.filename
        looked.append(path)
        if path.is_file():
            return _verify(path, expected, artifact)

    if downloads_allowed(download) and artifact.url:
        return fetch(artifact, progress=progress)
    raise _not_found(artifact, looked)


def downloads_allowed(download: bool | None = None) -> bool:
    """Whether a download may happen: `download` if given, else the `CLIP2GAN_DOWNLOAD` variable (default off)."""
    if download is None:
        return os.environ.get("CLIP2GAN_DOWNLOAD", "").strip().lower() in {"1", "true", "yes"}
    return bool(download)


def reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    """One TCP connection attempt to `host:port` within `timeout` seconds: is the network there at all?

    Asked once before a download that a library would otherwise retry for a minute or more when
    there is no network (huggingface_hub does), so that offline a missing file fails in seconds.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def fetch(
    artifact: Artifact | str, dest: str | os.PathLike | None = None, progress: bool = True, timeout: float = 60.0
) -> Path:
    """Download an artefact into the cache (or `dest`), resuming a partial transfer, checking sha256.

    `pooch.retrieve` does the bookkeeping: it hands the downloader a temporary file next to `dest`,
    checks the sha256 (when one is recorded) and only then moves the file into place; on a mismatch
    it deletes the file (`ChecksumMismatch` here). The transfer itself is `_ResumableTransfer`, not
    pooch's `HTTPDownloader`: measured with pooch 1.9.0 on a transfer cut off after 34,133 of
    102,400 bytes, pooch kept nothing and its next call downloaded from byte 0 again (no Range
    request), while a StyleGAN2 pickle is 300-400 MB. So the bytes go to
    `<dest folder>/.partial/<filename>.part`, which survives an interruption and is continued with an
    HTTP Range request on the next call.
    """
    if isinstance(artifact, str):
        artifact = ARTIFACTS[artifact]
    if not artifact.url:
        raise _not_found(artifact, [])
    dest = Path(dest) if dest else cache_dir() / artifact.filename
    transfer = _ResumableTransfer(artifact, dest.parent / ".partial" / (artifact.filename + ".part"), progress, timeout)
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)  # its INFO lines advise on pooch.retrieve's arguments; the progress bar is ours
    try:
        path = pooch.retrieve(artifact.url, known_hash=f"sha256:{artifact.sha256}" if artifact.sha256 else None,
                              fname=dest.name, path=dest.parent, downloader=transfer, progressbar=False)
    except ValueError as err:  # pooch's hash check
        if not artifact.sha256 or "hash" not in str(err):
            raise
        raise ChecksumMismatch(
            f"downloaded '{artifact.name}' from {artifact.url} but its sha256 is not the recorded "
            f"{artifact.sha256[:16]}… ({err}); the downloaded file was deleted."
        ) from None
    finally:
        logger.setLevel(level)
    return Path(path)


class _ResumableTransfer:
    """A pooch downloader that streams into a `.part` file kept across calls and resumes it (HTTP Range).

    pooch calls it with a temporary file; the complete `.part` file is renamed onto that file, which
    pooch then verifies and moves into place. A broken or short transfer raises `WeightsNotFound`
    and leaves the `.part` file for the next call.
    """

    def __init__(self, artifact: Artifact, part: Path, progress: bool, timeout: float):
        self.artifact, self.part, self.progress, self.timeout = artifact, part, progress, timeout

    def __call__(self, url: str, output_file: str, pooch_instance: Any = None, check_only: bool = False) -> None:
        artifact, part = self.artifact, self.part
        part.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"User-Agent": "clip2gan"})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            response = urllib.request.urlopen(request, timeout=self.timeout)
        except (urllib.error.URLError, OSError) as err:
            raise WeightsNotFound(
                f"could not download '{artifact.name}' from {url}: {err}. "
                f"Download it by hand and set {artifact.env_var}=/path/to/{artifact.filename}."
            ) from None
        with response:
            resumed = have and response.status == 206
            total = response.headers.get("Content-Length")
            total = int(total) + (have if resumed else 0) if total else artifact.size
            bar = None
            if self.progress:
                bar = tqdm(total=total, initial=have if resumed else 0, unit="B", unit_scale=True,
                           desc=artifact.filename, file=sys.stderr)
            try:
                with open(part, "ab" if resumed else "wb") as f:
                    while block := response.read(1 << 16):
                        f.write(block)
                        if bar:
                            bar.update(len(block))
            except (OSError, urllib.error.URLError) as err:
                raise WeightsNotFound(
                    f"the download of '{artifact.name}' broke off ({err}); run the same call again to resume."
                ) from None
            finally:
                if bar:
                    bar.close()
        got = part.stat().st_size
        if total and got < total:
            raise WeightsNotFound(
                f"the download of '{artifact.name}' ended early ({got} of {total} bytes); run again to resume."
            )
        os.replace(part, output_file)


def status(profile: str | None = None) -> list[dict[str, Any]]:
    """One row per artefact (of `profile`, or all): name, whether it resolves offline, and where."""
    names = list(get_profile(profile).artifacts) if profile else sorted(ARTIFACTS)
    rows = []
    for name in names:
        artifact = ARTIFACTS.get(name)
        if artifact is None:
            rows.append({"name": name, "present": False, "where": "not registered", "env_var": ""})
            continue
        try:
            where, ok = str(resolve(name, download=False)), True
        except (WeightsNotFound, ChecksumMismatch) as err:
            where, ok = str(err).splitlines()[0], False
        rows.append({"name": name, "present": ok, "where": where, "env_var": artifact.env_var})
    return rows


def copy_into_cache(name: str, path: str | os.PathLike) -> Path:
    """Place a file the user obtained by hand into the cache under the artefact's file name."""
    artifact = ARTIFACTS[name]
    dest = cache_dir() / artifact.filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, dest)
    return _verify(dest, artifact.sha256, artifact)


# ---------------------------------------------------------------------------------------------
# The registry. Toy-world files are shipped in data/ (sha256 in data/MANIFEST.json); the paper's
# files are downloaded on request. CLIP weights for the paper profiles come through open_clip and
# the Hugging Face cache (HF_HUB_OFFLINE=1 honoured), not through this registry.

_TOY = "trained by this project on procedural toy faces; reproduce with the command in data/MANIFEST.json"
for _name, _what in [
    ("toyfaces-clip", "the small CLIP of the toy world"),
    ("toyfaces-stylegan2", "the StyleGAN2 generator (G_ema) of the toy world"),
    ("toyfaces-classifier", "the attribute classifier used to score the toy world (evaluation only)"),
    ("toyfaces-identity", "the toy identity network used by the identity loss"),
    ("toyfaces-mapping", "the CLIP2GAN mapping network trained on the toy world"),
    ("toyfaces-dcgan", "a DCGAN generator of the toy world (another GAN under M; notebook 11)"),
    ("toyfaces-dcgan-mapping", "the CLIP2GAN mapping network trained on the toy DCGAN (notebook 11)"),
]:
    register(Artifact(_name, f"{_name}.safetensors", description=f"{_what} ({_TOY})", licence="MIT",
                      shipped=True, how="it ships in data/; if it is missing, re-run the manifest's command"))

# The second toy world (profile toypets): trained by this project like the faces' files and shipped in data/; while a
# file is missing, its error names the command that trains it.
_PETS = "trained by this project on procedural toy pets, clip2gan.toy.pets"
_PETS_GAN_RUN = "runs/toypets-stylegan2"
for _name, _what, _train, _needs in [
    ("toypets-classifier", "the attribute classifier that scores the toy-pets world (evaluation only)",
     "python -m clip2gan.toy.nets train-classifier --profile toypets", ()),
    ("toypets-clip", "the small CLIP of the toy-pets world", "python -m clip2gan.toy.clip train --profile toypets", ()),
    ("toypets-stylegan2", "the StyleGAN2 generator (G_ema) of the toy-pets world",
     f"python -m clip2gan.toy.stylegan2_training --profile toypets --out {_PETS_GAN_RUN} --resume, then "
     f"python -m clip2gan.toy.stylegan2_training export --profile toypets --run {_PETS_GAN_RUN}",
     ("toypets-classifier",)),
    ("toypets-mapping", "the CLIP2GAN mapping network trained on the toy-pets world",
     "python -m clip2gan.train --profile toypets --out runs/toypets-mapping, then copy "
     "runs/toypets-mapping/mapping.safetensors (and its .json) to data/toypets-mapping.safetensors",
     ("toypets-clip", "toypets-stylegan2")),
]:
    register(Artifact(_name, f"{_name}.safetensors", description=f"{_what} ({_PETS})", licence="MIT", shipped=True,
                      how=f"train it: {_train}", train=_train, needs=_needs))

register(Artifact(
    "arcface-ir-se50", "model_ir_se50.pth",
    description="ArcFace IR-SE50 face-recognition weights for the identity loss (ffhq profile)",
    licence="MIT (TreB1eN/InsightFace_Pytorch)",
    how="download model_ir_se50.pth from the links in the pixel2style2pixel README (Google Drive; "
        "no stable direct URL)",
))
register(Artifact(
    "inception-fid", "pt_inception-2015-12-05-6726825d.pth",
    url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
    description="Inception-v3 weights ported from TF 2015-12-05 for the standard FID features",
    licence="Apache-2.0",
))

# StyleGAN2 generators (clip2gan.stylegan2.load_nvidia_pkl / load_generator read them without running
# pickle code). NVIDIA publishes no checksums for these files: sha256 is not recorded.
_NV_LICENCE = "NVIDIA Source Code License-NC (non-commercial)"
register(Artifact(
    "stylegan2-ffhq-1024", "stylegan2-ffhq-1024x1024.pkl",
    url="https://api.ngc.nvidia.com/v2/models/nvidia/research/stylegan2/versions/1/files/stylegan2-ffhq-1024x1024.pkl",
    licence=_NV_LICENCE,
    description="NVIDIA StyleGAN2 config-f, FFHQ 1024x1024 (18 x 512 w+), stylegan3-repository pickle (ffhq profile)",
))
register(Artifact(
    "stylegan2-ffhq-256", "ffhq-res256-mirror-paper256-noaug.pkl",
    url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/transfer-learning-source-nets/"
        "ffhq-res256-mirror-paper256-noaug.pkl",
    licence=_NV_LICENCE,
    description="NVIDIA StyleGAN2 paper256 config (channel_base 16384), FFHQ 256x256 (14 x 512 w+), stylegan2-ada-pytorch pickle",
))
register(Artifact(
    "stylegan2-afhqcat", "afhqcat.pkl",
    url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/afhqcat.pkl",
    licence=_NV_LICENCE,
    description="NVIDIA StyleGAN2-ADA, AFHQ Cat 512x512 (16 x 512 w+), stylegan2-ada-pytorch pickle (afhqcat profile)",
))
register(Artifact(
    "stylegan2-afhqdog", "afhqdog.pkl",
    url="https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/afhqdog.pkl",
    licence=_NV_LICENCE,
    description="NVIDIA StyleGAN2-ADA, AFHQ Dog 512x512 (16 x 512 w+), stylegan2-ada-pytorch pickle (afhqdog profile)",
))
register(Artifact(
    "stylegan2-lsunchurch", "stylegan2-church-config-f.pkl",
    url="https://nvlabs-fi-cdn.nvidia.com/stylegan2/networks/stylegan2-church-config-f.pkl",
    licence=_NV_LICENCE,
    description="NVIDIA StyleGAN2 config-f, LSUN Church 256x256 (14 x 512 w+), original TensorFlow-era pickle "
                "(lsunchurch profile)",
))
