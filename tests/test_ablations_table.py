"""The ablation table and figure: one run a row or several pooled, with and without planning
rows (no training here)."""

from __future__ import annotations

import pytest

from vjepa2.eval.ablation_table import aggregate, markdown
from vjepa2.eval.plots import ablation_curves


def _run(name: str, err: float, planning: dict | None, seed: int = 0, solved=None) -> dict:
    hs = (1, 5, 8)
    return {
        "ablation": name,
        "train_seed": seed,
        "rollout_cosine": {
            "model": {k: 0.99 for k in hs},
            "copy": {k: 0.98 for k in hs},
            "error_vs_copy": {k: err * k for k in hs},
        },
        "encoder": {"effective_rank": 20.0 + seed},
        "planning": planning,
        "episode_success": solved or {},
    }


PLAN = {"success_rate": 0.3, "ci95_low": 0.1, "ci95_high": 0.6, "episodes": 10}


def _plan(solved: dict[int, bool]) -> dict:
    return {"success_rate": sum(solved.values()) / len(solved)}


def test_table_reports_rollouts_and_marks_rows_that_were_not_planned(tmp_path):
    solved = {i: i < 3 for i in range(10)}  # 30%, the interval Wilson's
    rows = aggregate([_run("full", 0.1, PLAN, solved=solved), _run("larger_predictor", 0.2, None)])
    lines = markdown(rows).splitlines()
    assert lines[0].startswith("| ablation | seeds | cos@1 | cos@5 | cos@8 | error/copy @1/5/8 |")
    assert lines[2] == (
        "| full | 1 | 0.9900 | 0.9900 | 0.9900 | 0.10 / 0.50 / 0.80 | 20.0 "
        "| 30% (11%-60%, 10 ep) | - |"
    )
    # Against full: its rollout error is the higher at the longest horizon; no episode pairs.
    assert lines[3].endswith(
        "| 0.20 / 1.00 / 1.60 | 20.0 | not run | error/copy@8 higher in 1/1 seeds |"
    )
    for i, planned in enumerate((rows, [r | {"planning": None} for r in rows])):
        assert ablation_curves(planned, tmp_path / f"ablations{i}.png").stat().st_size > 0


def test_rows_trained_at_several_seeds_pool_and_pair_with_full_by_seed(tmp_path):
    full = [{0: True, 1: True, 2: False}, {0: True, 1: False, 2: False}]
    row = [{0: True, 1: False, 2: False}, {0: False, 1: False, 2: True}]
    runs = [_run("full", 0.1 + 0.1 * s, _plan(full[s]), s, full[s]) for s in (0, 1)]
    runs += [_run("no_ema", 0.3 - 0.2 * s, _plan(row[s]), s, row[s]) for s in (0, 1)]
    by_name = {r["ablation"]: r for r in aggregate(runs)}
    full_row, ablated = by_name["full"], by_name["no_ema"]
    assert full_row["train_seeds"] == [0, 1] and full_row["against_full"] is None
    # Mean and sample standard deviation of the runs' figures, per horizon.
    assert full_row["rollout_cosine"]["error_vs_copy"][8] == pytest.approx(0.15 * 8)
    assert full_row["rollout_sd"]["error_vs_copy"][1] == pytest.approx(0.1 * 2**-0.5)
    assert full_row["encoder_effective_rank"] == pytest.approx(20.5)
    # Planning pools the six episodes of the two runs: 3 of 6 and 2 of 6.
    assert full_row["planning"]["success_rate"] == pytest.approx(0.5)
    assert full_row["planning"]["episodes"] == 6 and full_row["planning"]["runs"] == 2
    assert ablated["planning"]["per_seed"] == pytest.approx({0: 1 / 3, 1: 1 / 3})
    # Paired by seed: seed 0 (0.3 against 0.1) higher, seed 1 (0.1 against 0.2) not; seed
    # 0 loses episode 1, seed 1 loses 0 and gains 2.
    against = ablated["against_full"]
    assert (against["error_higher_seeds"], against["seeds"]) == (1, 2)
    assert (against["only_row"], against["only_full"], against["episode_pairs"]) == (1, 2, 6)
    assert against["mcnemar_p"] == pytest.approx(1.0)
    line = markdown(list(by_name.values())).splitlines()[3]
    assert "| no_ema | 2 | 0.9900 ± 0.0000 |" in line
    assert "33% (10%-70%, 2 x 3 ep); per seed 33% / 33%" in line
    assert line.endswith("higher in 1/2 seeds; episodes +1 / -2 (McNemar p = 1.00) |")
    # The figure draws the spread over seeds as error bars.
    assert ablation_curves(list(by_name.values()), tmp_path / "seeds.png").stat().st_size > 0


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
