"""The ablation table: one line per row of the seed's table 9.4, pooled over training seeds.

Each trained run (a row at one training seed) gives held-out rollout figures, its encoder's
spread and, when planned, which protocol episodes it solved. A row trained at several seeds
is reported as the mean and standard deviation of its runs' rollout figures and the pooled
success over all its runs' episodes. Against the ``full`` row, runs pair by training seed:
the rollout column counts the seeds in which the row's longest-horizon error is the higher,
and the planning column counts episodes solved by one and not the other, with McNemar's exact
p over every (seed, episode) pair. One training per row cannot tell a row's effect from
run-to-run spread (docs/results.md, 2026-12-05 later); this table can say which it is.
"""

from __future__ import annotations

import statistics
from typing import Any

from vjepa2.eval.compare import mcnemar_exact
from vjepa2.planning.episodes import wilson_interval


def _by_k(d: dict, k: int) -> float:
    return d[k] if k in d else d[str(k)]  # JSON turns the horizons into strings


def _horizons(run: dict) -> list[int]:
    return sorted(int(k) for k in run["rollout_cosine"]["model"])


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _pooled_planning(runs: list[dict]) -> dict[str, Any] | None:
    planned = [r for r in runs if r["planning"]]
    if not planned:
        return None
    outcomes = [ok for r in planned for ok in r["episode_success"].values()]
    wins, n = sum(outcomes), len(outcomes)
    lo, hi = wilson_interval(wins, n)
    return {
        "success_rate": wins / n,
        "ci95_low": lo,
        "ci95_high": hi,
        "episodes": n,
        "runs": len(planned),
        "per_seed": {r["train_seed"]: r["planning"]["success_rate"] for r in planned},
    }


def _against(runs: list[dict], full: list[dict], k: int) -> dict[str, Any]:
    """The row's runs against full's runs of the same training seeds."""
    mine = {r["train_seed"]: r for r in runs}
    base = {r["train_seed"]: r for r in full}
    seeds = sorted(set(mine) & set(base))
    higher = sum(
        _by_k(mine[s]["rollout_cosine"]["error_vs_copy"], k)
        > _by_k(base[s]["rollout_cosine"]["error_vs_copy"], k)
        for s in seeds
    )
    only_row = only_full = pairs = 0
    for s in seeds:
        a, b = mine[s]["episode_success"], base[s]["episode_success"]
        for ep in set(a) & set(b):
            pairs += 1
            only_row += bool(a[ep] and not b[ep])
            only_full += bool(b[ep] and not a[ep])
    return {
        "seeds": len(seeds),
        "horizon": k,
        "error_higher_seeds": higher,
        "episode_pairs": pairs,
        "only_row": only_row,
        "only_full": only_full,
        "mcnemar_p": mcnemar_exact(only_row, only_full) if pairs else None,
    }


def aggregate(runs: list[dict]) -> list[dict]:
    """Per-run results -> one summary per row, in the order rows first appear.

    A run is ``{"ablation", "train_seed", "rollout_cosine", "encoder", "planning",
    "episode_success"}`` (``planning`` None when not planned). The summary keeps
    ``rollout_cosine`` (means) and ``planning`` (pooled) in the shape a single run has, so the
    figure and MLflow read either."""
    names = list(dict.fromkeys(r["ablation"] for r in runs))
    full = [r for r in runs if r["ablation"] == "full"]
    rows = []
    for name in names:
        mine = [r for r in runs if r["ablation"] == name]
        hs = _horizons(mine[0])
        mean, sd = {}, {}
        for key in ("model", "copy", "error_vs_copy"):
            values = {k: [_by_k(r["rollout_cosine"][key], k) for r in mine] for k in hs}
            mean[key] = {k: statistics.fmean(v) for k, v in values.items()}
            sd[key] = {k: _sd(v) for k, v in values.items()}
        ranks = [r["encoder"]["effective_rank"] for r in mine]
        rows.append(
            {
                "ablation": name,
                "train_seeds": [r["train_seed"] for r in mine],
                "rollout_cosine": mean,
                "rollout_sd": sd,
                "encoder_effective_rank": statistics.fmean(ranks),
                "planning": _pooled_planning(mine),
                "against_full": _against(mine, full, hs[-1]) if full and name != "full" else None,
            }
        )
    return rows


def _against_cell(a: dict | None) -> str:
    if a is None or not a["seeds"]:
        return "-"
    cell = f"error/copy@{a['horizon']} higher in {a['error_higher_seeds']}/{a['seeds']} seeds"
    if a["episode_pairs"]:
        cell += (
            f"; episodes +{a['only_row']} / -{a['only_full']} (McNemar p = {a['mcnemar_p']:.2f})"
        )
    return cell


def _planning_cell(s: dict | None) -> str:
    if not s:
        return "not run"
    runs = s["runs"]
    eps = f"{s['episodes']} ep" if runs == 1 else f"{runs} x {s['episodes'] // runs} ep"
    cell = f"{s['success_rate']:.0%} ({s['ci95_low']:.0%}-{s['ci95_high']:.0%}, {eps})"
    if runs > 1:
        cell += "; per seed " + " / ".join(f"{v:.0%}" for v in s["per_seed"].values())
    return cell


def _figure(row: dict, key: str, k: int, digits: int) -> str:
    """A rollout figure: the mean, and ``± sd`` over the row's training seeds if several."""
    value = f"{_by_k(row['rollout_cosine'][key], k):.{digits}f}"
    if len(row["train_seeds"]) == 1:
        return value
    return f"{value} ± {_by_k(row['rollout_sd'][key], k):.{digits}f}"


def markdown(rows: list[dict]) -> str:
    """The table of ``aggregate``'s rows; a row of one run prints its figures alone."""
    # The horizons the episodes allowed at the preset's frameskip (1/5/10, or 1/5/8 at k=5).
    hs = sorted(int(k) for k in rows[0]["rollout_cosine"]["model"]) if rows else [1, 5, 10]
    cols = "".join(f" cos@{k} |" for k in hs)
    lines = [
        f"| ablation | seeds |{cols} error/copy @{'/'.join(map(str, hs))} | encoder eff. rank "
        "| planning success (95% CI) | against full |",
        "|---|---|" + "---|" * len(hs) + "---|---|---|---|",
    ]
    for r in rows:
        n = len(r["train_seeds"])
        cos = " | ".join(_figure(r, "model", k, 4) for k in hs)
        err = " / ".join(_figure(r, "error_vs_copy", k, 2) for k in hs)
        lines.append(
            f"| {r['ablation']} | {n} | {cos} | {err} | {r['encoder_effective_rank']:.1f} | "
            f"{_planning_cell(r['planning'])} | {_against_cell(r['against_full'])} |"
        )
    return "\n".join(lines)
