"""hub: resolve order, clear offline errors, and downloads from a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import is_allowed_address

from clip2gan import hub
from clip2gan.profiles import PROFILES

PAYLOAD = bytes(range(256)) * 400  # 100 KiB: several read blocks, still instant
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    """Serves PAYLOAD with Range support; `mode` on the server can break the transfer."""

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        server = self.server
        server.requests.append(dict(self.headers))
        start = 0
        if "Range" in self.headers and server.ranges:
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = PAYLOAD[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.mode == "truncate":
            self.wfile.write(body[: len(body) // 3])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.mode, srv.ranges, srv.requests = "ok", True, []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def artefact(server):
    url = f"http://127.0.0.1:{server.server_address[1]}/weights.bin"
    art = hub.register(hub.Artifact("test-weights", "test-weights.bin", url=url, sha256=PAYLOAD_SHA))
    yield art
    hub.ARTIFACTS.pop("test-weights", None)


def test_network_guard_allows_only_loopback():
    assert is_allowed_address(socket.AF_INET, ("127.0.0.1", 80))
    assert is_allowed_address(socket.AF_INET6, ("::1", 80, 0, 0))
    assert is_allowed_address(socket.AF_INET, ("localhost", 80))
    assert not is_allowed_address(socket.AF_INET, ("10.0.0.1", 80))
    assert not is_allowed_address(socket.AF_INET, ("example.org", 443))
    assert socket.socket.connect.__name__ == "_guarded_connect"


def test_offline_error_names_file_url_and_variable(artefact):
    with pytest.raises(hub.WeightsNotFound) as err:
        hub.resolve("test-weights")
    text = str(err.value)
    assert "test-weights.bin" in text and artefact.url in text and "CLIP2GAN_TEST_WEIGHTS" in text


def test_unknown_name_and_missing_path_are_clear():
    with pytest.raises(hub.WeightsNotFound, match="unknown artefact 'no-such-thing'"):
        hub.resolve("no-such-thing")
    with pytest.raises(hub.WeightsNotFound, match="does not exist"):
        hub.resolve("/nonexistent/model.pkl")


def test_explicit_path_and_environment_variable(tmp_path, monkeypatch, artefact):
    own = tmp_path / "mine.bin"
    own.write_bytes(PAYLOAD)
    assert hub.resolve(str(own)) == own
    monkeypatch.setenv(artefact.env_var, str(own))
    assert hub.resolve("test-weights") == own
    monkeypatch.setenv(artefact.env_var, str(tmp_path / "missing.bin"))
    with pytest.raises(hub.WeightsNotFound, match=artefact.env_var):
        hub.resolve("test-weights")


def test_download_verifies_and_caches(server, artefact):
    path = hub.resolve("test-weights", download=True, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert path.parent == hub.cache_dir()
    n = len(server.requests)
    assert hub.resolve("test-weights") == path  # second call: cache, no request
    assert len(server.requests) == n


def test_checksum_mismatch_leaves_nothing(server):
    url = f"http://127.0.0.1:{server.server_address[1]}/weights.bin"
    bad = hub.register(hub.Artifact("test-bad", "test-bad.bin", url=url, sha256="0" * 64))
    try:
        with pytest.raises(hub.ChecksumMismatch):
            hub.resolve(bad.name, download=True, progress=False)
        assert not (hub.cache_dir() / "test-bad.bin").exists()
        assert not (hub.cache_dir() / ".partial" / "test-bad.bin.part").exists()
    finally:
        hub.ARTIFACTS.pop("test-bad")


def test_interrupted_transfer_leaves_no_file_and_resumes(server, artefact):
    server.mode = "truncate"
    with pytest.raises(hub.WeightsNotFound, match="again"):
        hub.resolve("test-weights", download=True, progress=False)
    assert not (hub.cache_dir() / "test-weights.bin").exists()
    part = hub.cache_dir() / ".partial" / "test-weights.bin.part"
    assert 0 < part.stat().st_size < len(PAYLOAD)
    server.mode = "ok"
    path = hub.resolve("test-weights", download=True, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.requests[-1].get("Range", "").startswith("bytes=")


def test_server_without_range_support_restarts_the_transfer(server, artefact):
    server.mode, server.ranges = "truncate", False
    with pytest.raises(hub.WeightsNotFound, match="again"):
        hub.resolve("test-weights", download=True, progress=False)
    server.mode = "ok"
    path = hub.resolve("test-weights", download=True, progress=False)  # asks for a range, gets 200: starts over
    assert server.requests[-1].get("Range", "").startswith("bytes=")
    assert path.read_bytes() == PAYLOAD
    assert not (hub.cache_dir() / ".partial" / "test-weights.bin.part").exists()


def test_corrupt_shipped_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "DATA_DIR", tmp_path)
    monkeypatch.setattr(hub, "MANIFEST_PATH", tmp_path / "MANIFEST.json")
    art = hub.register(hub.Artifact("test-shipped", "test-shipped.bin", shipped=True))
    try:
        f = tmp_path / "test-shipped.bin"
        f.write_bytes(PAYLOAD)
        entry = hub.write_manifest_entry(f, command="python make_it.py", train_seconds=1.0)
        assert entry["sha256"] == PAYLOAD_SHA and entry["size"] == len(PAYLOAD)
        assert hub.resolve("test-shipped") == f
        f.write_bytes(PAYLOAD[:-10])  # truncated on disk
        with pytest.raises(hub.ChecksumMismatch, match="test-shipped"):
            hub.resolve(art.name)
    finally:
        hub.ARTIFACTS.pop("test-shipped")


def test_status_reports_every_profile_artifact():
    for profile in PROFILES:
        rows = hub.status(profile)
        assert [r["name"] for r in rows] == list(PROFILES[profile].artifacts)
        assert all(isinstance(r["present"], bool) for r in rows)


def test_concurrent_manifest_writes_keep_every_entry(tmp_path, monkeypatch):
    import multiprocessing

    monkeypatch.setattr(hub, "MANIFEST_PATH", tmp_path / "MANIFEST.json")
    files = []
    for i in range(6):
        f = tmp_path / f"w{i}.bin"
        f.write_bytes(bytes([i]) * 1000)
        files.append(f)
    ctx = multiprocessing.get_context("fork")  # children inherit the monkeypatched path
    procs = [ctx.Process(target=hub.write_manifest_entry, args=(f, f"make {f.name}")) for f in files]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert sorted(hub.read_manifest()["files"]) == [f.name for f in files]
