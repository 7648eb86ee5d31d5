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


def test_larger_predictor_row_is_four_times_as_wide_as_the_row_it_ablates():
    from jobs.ablations import larger_predictor_overrides
    from vjepa2.config import apply_overrides, get_preset

    def larger(preset: str, *overrides: str):
        cfg = apply_overrides(get_preset("dynamics", preset), list(overrides))
        return apply_overrides(cfg, larger_predictor_overrides(cfg)).dynamics

    tiny = larger("tiny")  # the predictor runs at the state's width, the encoder's 96
    assert (tiny.embed_dim, tiny.num_heads, tiny.depth) == (384, 8, 2)
    wide = larger("pusht_small")  # a predictor of its own width keeps its depth
    assert (wide.embed_dim, wide.num_heads, wide.depth) == (768, 8, 6)
    # Relative to what the user trains every row with, not to the preset's default.
    assert larger("tiny", "dynamics.embed_dim=64", "dynamics.num_heads=2").embed_dim == 256
    assert larger("vit_h").embed_dim == 4 * 1280  # never narrower than the row it ablates
