"""Shared test set-up: no test may reach the network (loopback only), tiny configs, seeds."""

from __future__ import annotations

import ipaddress
import socket

import pytest
import torch

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NetworkBlocked(RuntimeError):
    """A test tried to open a connection to a non-loopback address."""


def is_allowed_address(family: int, address) -> bool:
    """Loopback TCP/UDP and local (AF_UNIX) sockets are allowed; everything else is refused."""
    if family == getattr(socket, "AF_UNIX", None):
        return True
    host = address[0] if isinstance(address, tuple) else address
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost would need DNS and the network


def _guarded_connect(self, address):
    if not is_allowed_address(self.family, address):
        raise NetworkBlocked(f"tests run offline: connection to {address!r} refused (loopback only)")
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if not is_allowed_address(self.family, address):
        raise NetworkBlocked(f"tests run offline: connection to {address!r} refused (loopback only)")
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def block_network():
    """Every test runs with sockets limited to loopback, so none can silently use the network."""
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex


@pytest.fixture(autouse=True)
def torch_threads():
    """One thread per test: the CI machine has 2 cores and results must not depend on threading."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Point CLIP2GAN_HOME at an empty folder and switch downloads off: tests see only data/."""
    monkeypatch.setenv("CLIP2GAN_HOME", str(tmp_path_factory.mktemp("clip2gan_home")))
    monkeypatch.delenv("CLIP2GAN_DOWNLOAD", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
