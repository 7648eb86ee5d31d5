"""The training entrypoints as a user runs them: presets, overrides, resume, clear errors."""

from __future__ import annotations

import pytest

from jobs import pretrain, train_dynamics


def test_pretrain_then_dynamics_from_the_command_line(tmp_path, capsys):
    """In-process (``--local``); the Ray path is test_job_submit.py and test_train_job.py."""
    common = [
        "--local",
        f"--set=train.out_dir={tmp_path}",
        "--set=train.steps=3",
        "--quiet",
        "--set=data.synthetic.num_videos=4",
        "--set=train.batch_size=2",
    ]
    pretrain.main(common)
    ckpt = tmp_path / "pretrain" / "checkpoints" / "step_0000003.pt"
    assert ckpt.is_file() and (tmp_path / "pretrain" / "config.yaml").is_file()
    train_dynamics.main([*common, f"--set=encoder_checkpoint={ckpt}"])
    out = capsys.readouterr().out
    assert "pretrain: final loss" in out and "dynamics: final loss" in out
    assert (tmp_path / "dynamics" / "checkpoints" / "step_0000003.pt").is_file()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "optim.lrr=1"], "unknown key"),
        (["--preset", "huge"], "valid presets"),
        (["--config", "/nonexistent.yaml"], "not found"),
    ],
)
def test_bad_config_exits_with_one_clear_line(argv, message):
    with pytest.raises(SystemExit, match=message):
        pretrain.main(argv)
