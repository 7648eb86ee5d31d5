"""Stop and resume: the resumed run is bit-for-bit the uninterrupted one (CPU)."""

from __future__ import annotations

import json

import pytest
import torch

from vjepa2.config import apply_overrides, get_preset
from vjepa2.train.checkpoint import CheckpointError, load_checkpoint
from vjepa2.train.local import run_dynamics_training, run_pretraining
from vjepa2.train.loop import build_task


def _params(path):
    return load_checkpoint(path)["state"]["model"]


def _cfg(tmp_path, steps):
    return apply_overrides(
        get_preset("pretrain", "tiny"),
        [
            f"train.out_dir={tmp_path}",
            f"train.steps={steps}",
            "train.checkpoint_every=6",
            "train.batch_size=4",
            "data.synthetic.num_videos=8",
            "train.log_every=1",
        ],
    )


def test_pretraining_resume_is_bitwise_identical(tmp_path):
    straight = run_pretraining(_cfg(tmp_path / "a", 12), progress=False)
    # Stopped at step 5 (checkpointed there), then resumed to 12.
    run_pretraining(_cfg(tmp_path / "b", 12), progress=False, stop_at=5)
    resumed = run_pretraining(_cfg(tmp_path / "b", 12), progress=False)
    a, b = _params(straight.checkpoint), _params(resumed.checkpoint)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["loss"] for r in straight.history] == [r["loss"] for r in resumed.history]
    assert [r["step"] for r in resumed.history] == list(range(12))


def test_finished_run_is_reused_not_retrained(tmp_path):
    first = run_pretraining(_cfg(tmp_path, 6), progress=False)
    mtime = first.checkpoint.stat().st_mtime_ns
    again = run_pretraining(_cfg(tmp_path, 6), progress=False)
    assert again.checkpoint == first.checkpoint
    assert again.checkpoint.stat().st_mtime_ns == mtime
    assert len(again.history) == len(first.history)


def test_no_resume_starts_over(tmp_path):
    run_pretraining(_cfg(tmp_path, 6), progress=False)
    fresh = run_pretraining(_cfg(tmp_path, 6), resume=False, progress=False)
    assert [r["step"] for r in fresh.history] == list(range(6))


def _dynamics_cfg(out, steps, *extra):
    return apply_overrides(
        get_preset("dynamics", "tiny"),
        [
            f"train.out_dir={out}",
            f"train.steps={steps}",
            "train.checkpoint_every=5",
            "train.batch_size=4",
            "data.synthetic.num_videos=8",
            *extra,
        ],
    )


def test_dynamics_resume_is_bitwise_identical(tmp_path):
    def cfg(out, steps):
        return _dynamics_cfg(out, steps, "loss.horizon=2")

    straight = run_dynamics_training(cfg(tmp_path / "a", 10), progress=False)
    run_dynamics_training(cfg(tmp_path / "b", 10), progress=False, stop_at=3)
    resumed = run_dynamics_training(cfg(tmp_path / "b", 10), progress=False)
    a, b = _params(straight.checkpoint), _params(resumed.checkpoint)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_init_checkpoint_starts_a_fresh_run_from_trained_weights(tmp_path):
    """Fine-tuning: the trained model's weights (standardiser included), a new optimizer and
    schedule from step 0; a checkpoint that does not fit is refused before anything trains."""

    def cfg(out, steps, *extra):
        return _dynamics_cfg(out, steps, "state.standardize=true", "train.log_every=1", *extra)

    trained = run_dynamics_training(cfg(tmp_path / "a", 6), progress=False).checkpoint
    weights = _params(trained)
    assert int(weights["standardizer.batches"]) > 0
    init = f"train.init_checkpoint={trained}"
    task = build_task(cfg(tmp_path / "b", 3, init), torch.device("cpu"))
    start = task.model.state_dict()
    assert all(torch.equal(start[k], weights[k]) for k in weights)
    assert not task.optimizer.state  # a fresh optimizer: no moments carried over

    tuned = run_dynamics_training(cfg(tmp_path / "b", 3, init), progress=False)
    assert [r["step"] for r in tuned.history] == [0, 1, 2]
    after = _params(tuned.checkpoint)
    assert any(not torch.equal(after[k], weights[k]) for k in weights)

    with pytest.raises(CheckpointError, match="init_checkpoint.*does not match"):
        build_task(cfg(tmp_path / "c", 3, init, "dynamics.depth=3"), torch.device("cpu"))
    pre = apply_overrides(get_preset("pretrain", "tiny"), [init])
    with pytest.raises(CheckpointError, match="expected 'pretrain'"):
        build_task(pre, torch.device("cpu"))


def test_resume_survives_a_metrics_line_cut_short(tmp_path):
    """A run killed while appending its metrics leaves half a line; the resume drops it and
    logs every step once, instead of failing on the broken JSON."""
    run_pretraining(_cfg(tmp_path, 12), progress=False, stop_at=5)
    metrics = tmp_path / "pretrain" / "metrics.jsonl"
    with metrics.open("a") as f:
        f.write('{"step": 5, "loss": 0.12')
    resumed = run_pretraining(_cfg(tmp_path, 12), progress=False)
    assert [r["step"] for r in resumed.history] == list(range(12))
    logged = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in logged] == list(range(12))
