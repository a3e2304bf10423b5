"""checkpoint: safetensors + JSON round trips, atomic writes, clear errors on damaged files."""

from __future__ import annotations

import json

import pytest
import torch

from clip2gan.checkpoint import (
    CorruptCheckpoint,
    atomic_path,
    load_safetensors,
    load_state,
    save_safetensors,
    save_state,
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
