"""The ablation table and figure, with and without planning rows (no training here)."""

from __future__ import annotations

from jobs.ablations import markdown
from vjepa2.eval.plots import ablation_curves


def _row(name: str, err: float, planning: dict | None) -> dict:
    hs = (1, 5, 8)
    return {
        "ablation": name,
        "rollout_cosine": {
            "model": {k: 0.99 for k in hs},
            "copy": {k: 0.98 for k in hs},
            "error_vs_copy": {k: err * k for k in hs},
        },
        "planning": planning,
    }


PLAN = {"success_rate": 0.3, "ci95_low": 0.1, "ci95_high": 0.6, "episodes": 10}


def test_table_reports_rollouts_and_marks_rows_that_were_not_planned(tmp_path):
    rows = [_row("full", 0.1, PLAN), _row("larger_predictor", 0.2, None)]
    lines = markdown(rows).splitlines()
    assert lines[0].startswith("| ablation | cos@1 | cos@5 | cos@8 | error/copy @1/5/8 |")
    assert lines[2] == (
        "| full | 0.9900 | 0.9900 | 0.9900 | 0.10 / 0.50 / 0.80 | 30% (10%-60%, 10 ep) |"
    )
    assert lines[3].endswith("| 0.20 / 1.00 / 1.60 | not run |")
    for i, planned in enumerate((rows, [r | {"planning": None} for r in rows])):
        assert ablation_curves(planned, tmp_path / f"ablations{i}.png").stat().st_size > 0
