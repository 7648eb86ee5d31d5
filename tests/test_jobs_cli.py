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
    final = tmp_path / "dynamics" / "final.pt"
    assert f"checkpoint {final}" in out  # the path the next command takes, as with Ray
    last = tmp_path / "dynamics" / "checkpoints" / "step_0000003.pt"
    assert final.read_bytes() == last.read_bytes()
    for phase in ("pretrain", "dynamics"):  # the losses drawn where the run's log is
        curves = tmp_path / phase / "curves.png"
        assert curves.read_bytes()[:4] == b"\x89PNG" and f"training curves {curves}" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--set", "optim.lrr=1"], "unknown key"),
        (["--preset", "huge"], "valid presets"),
        (["--config", "/nonexistent.yaml"], "not found"),
        (["--set", "train.init_checkpoint=/nonexistent.pt"], "train.init_checkpoint not found"),
    ],
)
def test_bad_config_exits_with_one_clear_line(argv, message):
    with pytest.raises(SystemExit, match=message):
        pretrain.main(argv)


def test_local_runs_train_both_phases_on_a_dataset_in_memory(tmp_path, capsys):
    from vjepa2.data.collect import CollectConfig
    from vjepa2.data.collect_sink import collect_local
    from vjepa2.train.checkpoint import load_checkpoint

    data = tmp_path / "data"
    collect_local(
        CollectConfig(out=str(data), env="tworoom", episodes=3, steps_per_episode=12, seed=1),
        progress=False,
    )
    common = [
        "--local",
        "--quiet",
        f"--set=train.out_dir={tmp_path}",
        "--set=train.steps=2",
        "--set=train.batch_size=2",
        "--set=data.source=dataset",
        f"--set=data.dataset.path={data}",
    ]
    pretrain.main(common)
    ckpt = tmp_path / "pretrain" / "checkpoints" / "step_0000002.pt"
    train_dynamics.main([*common, f"--set=encoder_checkpoint={ckpt}", "--set=loss.horizon=3"])
    payload = load_checkpoint(tmp_path / "dynamics" / "checkpoints" / "step_0000002.pt")
    assert payload["config"]["data"]["dataset"]["path"] == str(data)
    assert "dynamics: final loss" in capsys.readouterr().out
