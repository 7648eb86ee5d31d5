"""Training runs' metrics logs: reading them back, the curves figure and the comparison CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from jobs import training_curves
from vjepa2.eval.plots import smooth_curve
from vjepa2.train.metrics_log import (
    MetricsError,
    curve_keys,
    find_metrics,
    read_metrics,
    tail_median,
    truncate_metrics,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _write_log(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(folder, scale, parts=True, steps=100):
    """A dynamics run's log whose losses fall as scale / (1 + step)."""
    rows = []
    for s in range(0, steps, 10):
        row = {"step": s, "loss": scale / (1 + s), "lr": 1e-3}
        if parts:
            row |= {"loss_sharp": 2 * scale / (1 + s), "loss_proprio": 0.5 * scale / (1 + s)}
        rows.append(row)
    return _write_log(folder / "dynamics" / "metrics.jsonl", rows)


def test_reading_drops_a_cut_short_last_line_and_rejects_a_broken_one_before_it(tmp_path):
    path = tmp_path / "metrics.jsonl"
    assert read_metrics(path) == []  # nothing logged yet
    path.write_text('{"step": 0, "loss": 2.0}\n{"step": 10, "loss": 1.0}\n{"step": 20, "lo')
    assert [r["step"] for r in read_metrics(path)] == [0, 10]
    path.write_text('{"step": 0, "loss": 2.0}\n{"step": 10, "lo\n{"step": 20, "loss": 1.0}\n')
    with pytest.raises(MetricsError, match=r"metrics.jsonl:2: not a JSON row"):
        read_metrics(path)
    path.write_text('{"loss": 2.0}\n')
    with pytest.raises(MetricsError, match=r":1: a row needs an integer 'step'"):
        read_metrics(path)


def test_truncating_keeps_the_steps_before_the_resume_point(tmp_path):
    path = _write_log(tmp_path / "metrics.jsonl", [{"step": s, "loss": 1.0} for s in range(6)])
    kept = truncate_metrics(path, 3)
    assert [r["step"] for r in kept] == [0, 1, 2]
    assert [r["step"] for r in read_metrics(path)] == [0, 1, 2]
    path.write_text('{"step": 0}\nnot json\n{"step": 1}\n')
    with pytest.raises(MetricsError):
        truncate_metrics(path, 1)  # a resume must not silently lose a broken log's rows
    assert truncate_metrics(path, 0) == [] and path.read_text() == ""  # a fresh start


def test_a_run_folder_a_phase_folder_or_the_file_names_the_log(tmp_path):
    log = _run(tmp_path / "a", 1.0)
    assert find_metrics(log) == log
    assert find_metrics(log.parent) == log
    assert find_metrics(tmp_path / "a") == log
    _write_log(tmp_path / "a" / "pretrain" / "metrics.jsonl", [{"step": 0, "loss": 1.0}])
    with pytest.raises(MetricsError, match="several phases; name one"):
        find_metrics(tmp_path / "a")
    with pytest.raises(MetricsError, match="no metrics.jsonl"):
        find_metrics(tmp_path / "empty")


def test_curve_keys_put_the_whole_loss_first_and_skip_other_metrics():
    rows = [{"step": 0, "lr": 1.0, "loss_sharp": 2.0, "loss": 3.0, "grad_norm": 1.0},
            {"step": 1, "loss": 2.0, "loss_proprio": 1.0}]  # fmt: skip
    assert curve_keys(rows) == ["loss", "loss_sharp", "loss_proprio"]


def test_tail_median_covers_the_last_share_of_the_steps():
    rows = [{"step": s, "loss": float(s)} for s in range(100)]
    assert tail_median(rows, "loss", 0.1) == pytest.approx(94.5)  # steps from 89.1: 90..99
    assert tail_median(rows, "loss", 1.0) == pytest.approx(49.5)
    assert tail_median(rows[:1], "loss") == 0.0
    assert math.isnan(tail_median(rows, "loss_sharp"))
    assert math.isnan(tail_median([], "loss"))
    with pytest.raises(ValueError, match="fraction"):
        tail_median(rows, "loss", 0.0)


def test_smoothing_keeps_a_constant_and_weight_zero_is_the_identity():
    values = np.array([3.0, 1.0, 4.0, 1.0, 5.0])
    assert np.array_equal(smooth_curve(values, 0.0), values)
    assert np.allclose(smooth_curve(np.full(20, 7.0), 0.9), 7.0)  # no pull towards zero
    smoothed = smooth_curve(values, 0.5)
    assert smoothed[0] == 3.0 and np.ptp(smoothed) < np.ptp(values)
    with pytest.raises(ValueError, match="smoothing weight"):
        smooth_curve(values, 1.0)


def test_comparing_two_runs_prints_ratios_and_writes_the_figure(tmp_path, capsys):
    _run(tmp_path / "wide", 1.0)
    _run(tmp_path / "base", 2.0, parts=False)
    out = tmp_path / "bench" / "wide_vs_base.png"
    table = training_curves.main(
        [str(tmp_path / "wide"), str(tmp_path / "base"), "--out", str(out), "--tail", "0.2"]
    )
    text = capsys.readouterr().out
    # steps 90 and 80 are the last fifth of 0-90: loss = 1/91 and 1/81
    wide = table["median"]["loss"]["wide"]
    assert wide == pytest.approx(0.5 * (1 / 91 + 1 / 81))
    assert table["median"]["loss"]["base"] == pytest.approx(2 * wide)
    assert table["median"]["loss_sharp"]["base"] is None  # base logged no parts
    assert "| loss | " in text and "(2.00x)" in text and "| loss_sharp | " in text
    assert table["last_step"] == {"wide": 90, "base": 90}
    assert out.read_bytes()[:8] == PNG_MAGIC
    assert json.loads(out.with_suffix(".json").read_text())["median"]["loss_sharp"]["base"] is None


def test_one_run_draws_its_curves_beside_its_log(tmp_path):
    log = _run(tmp_path / "run", 1.0)
    training_curves.main([str(tmp_path / "run"), "--keys", "loss_sharp", "--smooth", "0"])
    assert (log.parent / "curves.png").read_bytes()[:8] == PNG_MAGIC
    saved = json.loads((log.parent / "curves.json").read_text())
    assert list(saved["median"]) == ["loss_sharp"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--labels", "only_one"], "one name per run"),
        ([], "--out is needed"),
        (["--out", "OUT", "--keys", "loss_blur"], "no run logged loss_blur"),
        (["--out", "OUT", "--smooth", "1"], "--smooth must be in"),
        (["--out", "OUT", "--labels", "same", "same"], "distinct labels"),
    ],
)
def test_bad_arguments_exit_with_a_clear_message(tmp_path, capsys, extra, message):
    runs = [str(_run(tmp_path / "a", 1.0)), str(_run(tmp_path / "b", 1.0))]
    extra = [str(tmp_path / "x.png") if x == "OUT" else x for x in extra]
    with pytest.raises(SystemExit, match=message if "no run" in message else None):
        training_curves.main([*runs, *extra])
    if "no run" not in message:
        assert message in capsys.readouterr().err


def test_a_run_with_nothing_logged_yet_is_an_error(tmp_path):
    (tmp_path / "new" / "dynamics").mkdir(parents=True)
    (tmp_path / "new" / "dynamics" / "metrics.jsonl").write_text("")
    with pytest.raises(SystemExit, match="no rows logged yet"):
        training_curves.main([str(tmp_path / "new")])
