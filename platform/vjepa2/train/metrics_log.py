"""The run folder's ``metrics.jsonl``: read it, cut it back on resume, find it, sum it up.

Each line is one logged step's row (``step``, ``loss``, ``lr``, ..., and for a world model
with several state parts ``loss_sharp``, ``loss_blur_12_px``, ``loss_proprio``). Local and
Ray Train runs append the same rows; a run killed while writing can leave its last line cut
short, which reading drops instead of failing the resume.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
PHASES = ("pretrain", "dynamics")


class MetricsError(ValueError):
    """A metrics log that is missing or unreadable, with the path and line in the message."""


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """The rows of ``path``; [] when it does not exist. A cut-short last line (the process
    died mid-write) is dropped; a bad line before it raises ``MetricsError``."""
    path = Path(path)
    if not path.exists():
        return []
    lines = [(n, line) for n, line in enumerate(path.read_text().splitlines(), 1) if line.strip()]
    rows = []
    for i, (n, line) in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines) - 1:
                break
            raise MetricsError(f"{path}:{n}: not a JSON row ({exc.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            raise MetricsError(f"{path}:{n}: a row needs an integer 'step'")
        rows.append(row)
    return rows


def truncate_metrics(path: str | Path, start: int) -> list[dict[str, float]]:
    """Keep only the rows logged before step ``start`` (a resume from there logs the rest
    again) and return them. From step 0 the old log is not read: a fresh start (``--no-resume``)
    must not fail on a log it throws away."""
    path = Path(path)
    rows = [r for r in read_metrics(path) if r["step"] < start] if start > 0 else []
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def append_metrics(path: str | Path, row: dict[str, float]) -> None:
    """Add one logged step's row at the end of the log."""
    with Path(path).open("a") as f:
        f.write(json.dumps(row) + "\n")


def find_metrics(path: str | Path) -> Path:
    """The metrics log a user means by ``path``: the file itself, a phase folder
    (``<out>/dynamics``) or a run folder holding exactly one phase."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / METRICS_FILE).is_file():
        return path / METRICS_FILE
    found = [path / p / METRICS_FILE for p in PHASES if (path / p / METRICS_FILE).is_file()]
    if len(found) == 1:
        return found[0]
    if found:
        raise MetricsError(
            f"{path} holds several phases; name one: " + ", ".join(str(f.parent) for f in found)
        )
    raise MetricsError(f"no {METRICS_FILE} in {path} or its {' / '.join(PHASES)} folder")


def curve_keys(rows: list[dict[str, float]]) -> list[str]:
    """The losses worth plotting: ``loss`` first, then each per-part ``loss_*`` in the order
    they were logged."""
    keys = dict.fromkeys(k for r in rows for k in r if k == "loss" or k.startswith("loss_"))
    return sorted(keys, key=lambda k: k != "loss")


def tail_median(rows: list[dict[str, float]], key: str, fraction: float = 0.1) -> float:
    """The median of ``key`` over the last ``fraction`` of the logged steps (at least one
    row): the figure one quotes for where a run ended, steadier than its last noisy row.
    NaN when no row there has the key."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if not rows:
        return math.nan
    last = rows[-1]["step"]
    cut = last - fraction * (last - rows[0]["step"])
    values = [r[key] for r in rows if r["step"] >= cut and key in r]
    return statistics.median(values) if values else math.nan
