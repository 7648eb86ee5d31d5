"""Finished evaluation episodes on disk, so an interrupted ``jobs.evaluate`` resumes.

A 50-episode evaluation can run for hours on CPU. Every finished episode is appended to
``<out>/episodes.jsonl`` (one line per agent) as it ends; a rerun
with the same checkpoint and settings plans only the seeds that are missing. Lines carry a
fingerprint of what decides an outcome (the checkpoint file, the evaluation config without
the settings in ``NOT_IN_KEY``), so lines from another model or other settings are never
mixed in.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from vjepa2.planning import EpisodeOutcome
from vjepa2.planning.audit import PlanAudit

# Settings that do not change what any episode does: asking for more episodes reuses the
# ones already run, and audits replay each plan after it is chosen (lines logged before
# audits existed, or with them off, carry none and are reused as they are).
NOT_IN_KEY = ("episodes", "audit_plans")
# Settings added after logs were first written, at the value that plans exactly as before
# they existed: left out of the key at that value, so the older logs stay readable. A key is
# the setting's path in the config: a top-level field, or a section and its field.
NEUTRAL_WHEN_ADDED: dict[tuple[str, ...], Any] = {
    ("cem", "hold"): 1,
    ("cem", "spread_weight"): 0.0,
    ("ensemble_checkpoints",): [],
    ("energy_views",): [],
}


def _file_id(path: str | Path) -> list:
    """A checkpoint file as the key sees it: its resolved path, size and mtime."""
    st = Path(path).stat()
    return [str(Path(path).resolve()), st.st_size, st.st_mtime_ns]


def without_neutral(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` (as ``to_dict`` or a logged JSON line gives it: lists, not tuples) without
    the ``NEUTRAL_WHEN_ADDED`` settings at their neutral value."""
    config = dict(config)
    for path, neutral in NEUTRAL_WHEN_ADDED.items():
        if len(path) == 1:
            if path[0] in config and config[path[0]] == neutral:
                del config[path[0]]
            continue
        section, name = path
        fields = config.get(section)
        if isinstance(fields, dict) and name in fields and fields[name] == neutral:
            config[section] = {k: v for k, v in fields.items() if k != name}
    return config


def fingerprint(checkpoint: str | Path, config: dict[str, Any]) -> str:
    """Short hash of the checkpoint (path, size, mtime), any ensemble checkpoints likewise,
    and the config without ``NOT_IN_KEY`` (and ``NEUTRAL_WHEN_ADDED`` settings at their
    neutral value)."""
    config = without_neutral({k: v for k, v in config.items() if k not in NOT_IN_KEY})
    key: dict[str, Any] = {"checkpoint": _file_id(checkpoint), "config": config}
    if config.get("ensemble_checkpoints"):
        key["ensemble"] = [_file_id(p) for p in config["ensemble_checkpoints"]]
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


class EpisodeLog:
    """Append-only JSON lines of ``EpisodeOutcome`` (without recorded frames)."""

    def __init__(self, path: str | Path, key: str) -> None:
        self.path, self.key = Path(path), key

    def load(self, agents: tuple[str, ...]) -> dict[int, list[EpisodeOutcome]]:
        """Seed -> its outcomes in ``agents`` order, for seeds every agent has finished."""
        found: dict[int, dict[str, EpisodeOutcome]] = {}
        for key, outcome in read_episode_log(self.path):
            if key == self.key and outcome.agent in agents:
                found.setdefault(outcome.seed, {})[outcome.agent] = outcome
        return {
            seed: [by_agent[a] for a in agents]
            for seed, by_agent in found.items()
            if all(a in by_agent for a in agents)
        }

    def append(self, outcomes: list[EpisodeOutcome]) -> None:
        rows = [
            {
                "key": self.key,
                "seed": o.seed,
                "agent": o.agent,
                "success": o.success,
                "steps_to_success": o.steps_to_success,
                "steps": o.steps,
                "plan_seconds": o.plan_seconds,
                "plan_audits": [a.as_list() for a in o.plan_audits],
                "final_gap": o.final_gap,
            }
            for o in outcomes
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(r) + "\n" for r in rows)
        if self.path.exists() and self.path.stat().st_size:
            with self.path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a line cut short by a crash: never glue onto it
                    text = "\n" + text
        with self.path.open("a") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


def read_episode_log(path: str | Path) -> list[tuple[str, EpisodeOutcome]]:
    """Every whole line of an episode log as (its key, its outcome), in file order; a line
    cut short by a crash mid-write is skipped. A missing file reads as no lines."""
    path = Path(path)
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        outcome = EpisodeOutcome(
            seed=int(row["seed"]),
            agent=row["agent"],
            success=bool(row["success"]),
            steps_to_success=row["steps_to_success"],
            steps=int(row["steps"]),
            plan_seconds=[float(s) for s in row["plan_seconds"]],
            plan_audits=[PlanAudit(*map(float, a)) for a in row.get("plan_audits", [])],
            final_gap={k: float(v) for k, v in row.get("final_gap", {}).items()},
        )
        lines.append((row["key"], outcome))
    return lines
