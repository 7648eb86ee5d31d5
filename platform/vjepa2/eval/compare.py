"""Compare planning evaluations: pool the shards of one, and pair two on their seeds.

A 50-episode evaluation on CPU is often run as several processes over disjoint seed ranges
(``jobs.evaluate --episodes 25 --set seed=...``), each with its own ``episodes.jsonl``.
``load_evaluation`` pools such shards back into one evaluation, refusing shards that
planned with different settings or checkpoints, or that ran a seed twice.

Two models' success rates at 50 episodes have 95% intervals some 25 points wide, so their
difference is better judged on the episodes they share: ``paired_comparison`` lines both
evaluations up seed by seed (the seed fixes the start and the goal) and tests the episodes
that only one of them solved with McNemar's exact test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from math import comb
from pathlib import Path
from typing import Any

from vjepa2.eval.episode_log import read_episode_log, without_neutral
from vjepa2.planning import EpisodeOutcome

LOG_NAME = "episodes.jsonl"
RESULTS_NAME = "results.json"
# Settings that differ between shards of one evaluation by design.
SHARD_SETTINGS = ("seed", "episodes")
# Settings that decide what an episode asks, not how it is planned: two evaluations are
# paired by seed only where these agree.
PROBLEM_SETTINGS = ("env", "env_kwargs", "goal_offset", "budget")


@dataclass
class Evaluation:
    """One evaluation's episodes, pooled over its shards."""

    label: str
    outcomes: list[EpisodeOutcome]
    # The planning config (from results.json) without SHARD_SETTINGS; None where no shard
    # recorded one (an evaluation interrupted before its table).
    settings: dict[str, Any] | None = None
    checkpoint: str | None = None
    shards: list[str] = field(default_factory=list)

    def by_seed(self, agent: str) -> dict[int, bool]:
        return {o.seed: o.success for o in self.outcomes if o.agent == agent}

    @property
    def agents(self) -> list[str]:
        return list(dict.fromkeys(o.agent for o in self.outcomes))


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: under "no difference", each episode that exactly one
    of the two solved is equally likely to be either's, so the smaller count is binomial
    (n = both counts, p = 1/2)."""
    if only_a < 0 or only_b < 0:
        raise ValueError("counts must be >= 0")
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _log_path(path: Path) -> Path:
    return path / LOG_NAME if path.is_dir() else path


def _shard_record(log: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The settings and checkpoint a shard's results.json recorded beside its log."""
    results = log.parent / RESULTS_NAME
    if not results.is_file():
        return None, None
    stored = json.loads(results.read_text())
    config = stored.get("config")
    settings = None
    if isinstance(config, dict):
        # Settings added after older logs were written read as their neutral value there.
        settings = without_neutral({k: v for k, v in config.items() if k not in SHARD_SETTINGS})
    return settings, stored.get("checkpoint")


def _differing(a: dict[str, Any], b: dict[str, Any], names=None) -> list[str]:
    """The settings that differ, a section's fields named as ``section.field``."""
    out = []
    for k in names if names is not None else sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out += [f"{k}.{f}" for f in _differing(x, y)]
        elif x != y:
            out.append(k)
    return out


def load_evaluation(paths: list[str | Path], label: str = "") -> Evaluation:
    """Pool one evaluation's shards: each path an output folder of ``jobs.evaluate`` or its
    ``episodes.jsonl``. Each log must hold the episodes of one model and config (one key),
    no seed may appear twice for an agent, and shards whose results.json recorded their
    settings or checkpoint must agree on them."""
    if not paths:
        raise ValueError("no evaluation given")
    ev = Evaluation(label=label or str(paths[0]), outcomes=[])
    seen: dict[tuple[int, str], str] = {}
    for raw in paths:
        log = _log_path(Path(raw))
        if not log.is_file():
            raise ValueError(f"{raw}: no {LOG_NAME} there (is it a jobs.evaluate output?)")
        lines = read_episode_log(log)
        keys = {k for k, _ in lines}
        if not lines:
            raise ValueError(f"{log}: no finished episode")
        if len(keys) > 1:
            counts = ", ".join(f"{k}: {sum(x == k for x, _ in lines)}" for k in sorted(keys))
            raise ValueError(
                f"{log} mixes episodes of {len(keys)} models or configs ({counts}); "
                "rerun that evaluation with --no-resume or into a fresh --out"
            )
        for _, o in lines:
            if (o.seed, o.agent) in seen:
                raise ValueError(
                    f"seed {o.seed} ({o.agent}) is in both {seen[(o.seed, o.agent)]} and {log}: "
                    "shards of one evaluation must cover disjoint seeds"
                )
            seen[(o.seed, o.agent)] = str(log)
            ev.outcomes.append(o)
        settings, checkpoint = _shard_record(log)
        if settings is not None:
            if ev.settings is not None and ev.settings != settings:
                differ = ", ".join(_differing(ev.settings, settings))
                raise ValueError(f"{log} planned with other settings than {ev.shards[0]}: {differ}")
            ev.settings = settings
        if checkpoint is not None:
            if ev.checkpoint is not None and ev.checkpoint != checkpoint:
                raise ValueError(
                    f"{log} evaluated {checkpoint}, {ev.shards[0]} evaluated {ev.checkpoint}"
                )
            ev.checkpoint = checkpoint
        ev.shards.append(str(log))
    ev.outcomes.sort(key=lambda o: o.seed)
    return ev


def paired_comparison(a: Evaluation, b: Evaluation) -> list[dict[str, Any]]:
    """Per agent both evaluations ran: the seeds both planned, each one's successes on them,
    the seeds only one solved, and McNemar's exact p-value. Refuses evaluations whose
    recorded PROBLEM_SETTINGS differ: the same seed would then be another episode."""
    if a.settings is not None and b.settings is not None:
        differ = _differing(a.settings, b.settings, PROBLEM_SETTINGS)
        if differ:
            raise ValueError(
                f"{a.label} and {b.label} pose different episodes ({', '.join(differ)} differ), "
                "so their seeds cannot be paired"
            )
    rows = []
    for agent in (x for x in a.agents if x in b.agents):
        sa, sb = a.by_seed(agent), b.by_seed(agent)
        seeds = sorted(set(sa) & set(sb))
        if not seeds:
            continue
        only_a = [s for s in seeds if sa[s] and not sb[s]]
        only_b = [s for s in seeds if sb[s] and not sa[s]]
        rows.append(
            {
                "agent": agent,
                "seeds": len(seeds),
                "successes_a": sum(sa[s] for s in seeds),
                "successes_b": sum(sb[s] for s in seeds),
                "only_a": only_a,
                "only_b": only_b,
                "p_value": mcnemar_exact(len(only_a), len(only_b)),
            }
        )
    if not rows:
        raise ValueError(f"{a.label} and {b.label} share no (agent, seed) episode")
    return rows


def _seed_list(seeds: list[int], base: int) -> str:
    if not seeds:
        return "-"
    return ", ".join(str(s - base) for s in seeds)


def paired_markdown(rows: list[dict[str, Any]], label_a: str, label_b: str, base: int) -> str:
    """The paired rows as a markdown table; seeds are written as offsets from ``base``."""
    lines = [
        f"| agent | shared seeds | {label_a} | {label_b} | only {label_a} "
        f"| only {label_b} | McNemar p |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['agent']} | {r['seeds']} | {r['successes_a']} | {r['successes_b']} | "
            f"{_seed_list(r['only_a'], base)} | {_seed_list(r['only_b'], base)} | "
            f"{r['p_value']:.2f} |"
        )
    return "\n".join(lines)
