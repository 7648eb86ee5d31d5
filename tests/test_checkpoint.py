from __future__ import annotations

import pytest
import torch
from torch import nn

from vjepa2.train.checkpoint import (
    CheckpointError,
    copy_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    load_state_strict,
    save_checkpoint,
)


def _save(path, model, kind="pretrain"):
    return save_checkpoint(path, kind=kind, config={"a": 1}, state={"model": model.state_dict()})


def test_round_trip_restores_parameters_and_config(tmp_path):
    torch.manual_seed(0)
    src, dst = nn.Linear(4, 3), nn.Linear(4, 3)
    _save(tmp_path / "c.pt", src)
    payload = load_checkpoint(tmp_path / "c.pt", kind="pretrain")
    load_state_strict(dst, payload["state"]["model"])
    assert payload["config"] == {"a": 1}
    for a, b in zip(src.parameters(), dst.parameters(), strict=True):
        assert torch.equal(a, b)


def test_save_leaves_no_temp_files_and_replaces_atomically(tmp_path):
    model = nn.Linear(2, 2)
    _save(tmp_path / "c.pt", model)
    _save(tmp_path / "c.pt", model)
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_failed_save_keeps_the_previous_file(tmp_path):
    model = nn.Linear(2, 2)
    path = _save(tmp_path / "c.pt", model)
    before = path.read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - any pickling failure
        save_checkpoint(path, kind="pretrain", config={}, state={"bad": lambda: 0})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_file_gives_a_clear_error(tmp_path, damage):
    path = _save(tmp_path / "c.pt", nn.Linear(64, 64))
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint" * 100)
    else:
        path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_checkpoint(path)


def test_missing_file_and_wrong_kind(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    path = _save(tmp_path / "c.pt", nn.Linear(2, 2), kind="pretrain")
    with pytest.raises(CheckpointError, match="expected 'dynamics'"):
        load_checkpoint(path, kind="dynamics")


def test_foreign_file_is_rejected(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a vjepa2 checkpoint"):
        load_checkpoint(path)


def test_weights_only_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "obj": nn.Linear(2, 2)}, path)  # a pickled module, not weights
    with pytest.raises(CheckpointError, match="corrupt or truncated|not loaded"):
        load_checkpoint(path)


def test_mismatched_model_is_not_half_loaded(tmp_path):
    torch.manual_seed(0)
    src = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 8))
    dst = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 3))
    before = [p.clone() for p in dst.parameters()]
    payload = load_checkpoint(_save(tmp_path / "c.pt", src))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_state_strict(dst, payload["state"]["model"])
    assert all(torch.equal(a, b) for a, b in zip(before, dst.parameters(), strict=True))
    with pytest.raises(CheckpointError, match="missing keys"):
        load_state_strict(
            nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)),
            payload["state"]["model"],
        )


def test_latest_checkpoint_picks_highest_step(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    for step in (5, 100, 20):
        _save(tmp_path / f"step_{step:07d}.pt", nn.Linear(1, 1))
    assert latest_checkpoint(tmp_path).name == "step_0000100.pt"


def test_copy_checkpoint_replaces_whole_and_leaves_no_temp_file(tmp_path):
    src = save_checkpoint(tmp_path / "a.pt", kind="pretrain", config={}, state={"w": {}})
    dest = tmp_path / "out" / "final.pt"
    dest.parent.mkdir()
    dest.write_bytes(b"old")
    assert copy_checkpoint(src, dest) == dest
    assert dest.read_bytes() == src.read_bytes()
    assert load_checkpoint(dest, kind="pretrain")["kind"] == "pretrain"
    assert [p.name for p in dest.parent.iterdir()] == ["final.pt"]
    with pytest.raises(FileNotFoundError):
        copy_checkpoint(tmp_path / "missing.pt", dest)
    assert dest.read_bytes() == src.read_bytes()  # a failed copy keeps the old file
