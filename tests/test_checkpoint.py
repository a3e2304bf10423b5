"""checkpoint: safetensors + JSON round trips, atomic writes, clear errors on damaged files."""

from __future__ import annotations

import json

import pytest
import torch

from clip2gan.checkpoint import (
    CorruptCheckpoint,
    atomic_path,
    load_config,
    load_optimizer_tensors,
    load_safetensors,
    load_state,
    optimizer_tensors,
    save_safetensors,
    save_state,
    tensor_digest,
)


def test_round_trip_with_config_and_half(tmp_path):
    sd = {"w": torch.randn(3, 4), "step": torch.tensor(7)}
    path = save_safetensors(sd, tmp_path / "m.safetensors", {"width": 4}, half=True)
    state, config = load_safetensors(path)
    assert config == {"width": 4} and json.loads((tmp_path / "m.json").read_text()) == {"width": 4}
    assert state["w"].dtype == torch.float16 and torch.allclose(state["w"].float(), sd["w"], atol=1e-2)
    assert state["step"].item() == 7


def test_nested_state_with_optimizer(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.0, 0.99))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {"model": model.state_dict(), "opt": opt.state_dict(), "rng": torch.get_rng_state(), "step": 5,
             "note": None}
    save_state(tmp_path / "s.safetensors", state)
    back = load_state(tmp_path / "s.safetensors")
    opt2 = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=1.0)
    opt2.load_state_dict(back["opt"])
    assert opt2.param_groups[0]["betas"] == (0.0, 0.99) and opt2.param_groups[0]["lr"] == 1e-3
    assert torch.equal(back["opt"]["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert torch.equal(back["rng"], state["rng"]) and back["step"] == 5 and back["note"] is None


def test_damaged_files_are_clear(tmp_path):
    path = save_safetensors({"w": torch.randn(100)}, tmp_path / "m.safetensors", {})
    path.write_bytes(path.read_bytes()[:50])  # truncated, as a killed copy would leave it
    with pytest.raises(CorruptCheckpoint, match="not a readable safetensors"):
        load_safetensors(path)
    with pytest.raises(FileNotFoundError):
        load_safetensors(tmp_path / "missing.safetensors")
    with pytest.raises(TypeError, match="cannot store"):
        save_state(tmp_path / "x.safetensors", {"f": object()})


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half-written")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_checksum_catches_a_flipped_byte_and_config_reads_alone(tmp_path):
    sd = {"w": torch.randn(3, 4), "b": torch.zeros(2)}
    path = save_safetensors(sd, tmp_path / "c.safetensors", {"step": 3}, half=True, checksum=True)
    state, config = load_safetensors(path)
    assert config["tensor_sha256"] == tensor_digest(state) and config["step"] == 3
    assert load_config(path) == config  # the metadata alone, tensors unread
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # the file still parses; only the checksum sees it
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpoint, match="checksum"):
        load_safetensors(path)
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "missing.safetensors")


def test_optimizer_tensors_resume_adam_exactly():
    def run(model, opt, steps):
        for i in range(steps):
            torch.manual_seed(i)
            opt.zero_grad()
            model(torch.randn(4, 3)).square().sum().backward()
            opt.step()

    torch.manual_seed(0)
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = torch.optim.Adam(a.parameters(), lr=0.1), torch.optim.Adam(b.parameters(), lr=0.1)
    run(a, opt_a, 2)
    run(b, opt_b, 2)
    tensors = optimizer_tensors(opt_b, "opt")
    assert set(tensors) == {f"opt.{i}.{k}" for i in (0, 1) for k in ("step", "exp_avg", "exp_avg_sq")}
    resumed = torch.optim.Adam(b.parameters(), lr=0.1)  # a fresh optimiser, as after a restart
    load_optimizer_tensors(resumed, {**tensors, "model.w": torch.zeros(1)}, "opt")
    for i in range(2, 4):  # two more steps each: bit-for-bit the same weights
        torch.manual_seed(i)
        opt_a.zero_grad()
        a(torch.randn(4, 3)).square().sum().backward()
        opt_a.step()
        torch.manual_seed(i)
        resumed.zero_grad()
        b(torch.randn(4, 3)).square().sum().backward()
        resumed.step()
    assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias)
