"""Plot training runs' losses side by side and print where each ended.

python -m jobs.training_curves runs/exp/wide
python -m jobs.training_curves runs/exp/wide runs/exp/base --labels wide base \
    --out runs/bench/wide_vs_base.png

Each path is a run folder (``train.out_dir``, when it holds one phase), a phase folder
(``<out>/dynamics``) or a ``metrics.jsonl``. The figure has one panel per logged loss: the
whole loss, then each part of the state (``loss_sharp``, ``loss_blur_12_px``,
``loss_proprio``) for world models that log them. The table gives each loss's median over
the last tenth of the logged steps (``--tail``) and its ratio to the first run's. A JSON of
the table is written beside the figure. No model and no Ray: it reads the logs.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from vjepa2.eval.plots import training_curves
from vjepa2.train.metrics_log import (
    PHASES,
    MetricsError,
    curve_keys,
    find_metrics,
    read_metrics,
    tail_median,
)


def _cell(value: float | None, first: float | None) -> str:
    if value is None:
        return "-"
    if not first:
        return f"{value:.4g}"
    return f"{value:.4g} ({value / first:.2f}x)"


def summary_table(runs: dict[str, list[dict]], keys: list[str], tail: float) -> dict:
    """Per loss and run: the median over the last ``tail`` of the steps (None: not logged
    there), and the last step each run reached."""

    def median(rows: list[dict], key: str) -> float | None:
        value = tail_median(rows, key, tail)
        return None if math.isnan(value) else value

    return {
        "tail_fraction": tail,
        "last_step": {label: rows[-1]["step"] for label, rows in runs.items()},
        "median": {k: {label: median(rows, k) for label, rows in runs.items()} for k in keys},
    }


def markdown(table: dict) -> str:
    labels = list(table["last_step"])
    head = "| loss | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels) + "\n"
    steps = "| last step | " + " | ".join(str(s) for s in table["last_step"].values()) + " |\n"
    body = ""
    for key, per_run in table["median"].items():
        first = per_run[labels[0]]
        body += f"| {key} | " + " | ".join(_cell(per_run[x], first) for x in labels) + " |\n"
    return head + steps + body


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run folders, phase folders or metrics.jsonl files")
    p.add_argument("--labels", nargs="+", help="one name per run (default: the folder names)")
    p.add_argument("--keys", nargs="+", help="losses to show (default: loss and every loss_*)")
    p.add_argument("--out", help="the figure (.png); one run: curves.png beside its log")
    p.add_argument("--smooth", type=float, default=0.9, help="moving-average weight, [0, 1)")
    p.add_argument("--tail", type=float, default=0.1, help="share of steps the medians cover")
    args = p.parse_args(argv)
    if args.labels and len(args.labels) != len(args.runs):
        p.error(f"--labels needs one name per run ({len(args.runs)}), got {len(args.labels)}")
    if not 0 <= args.smooth < 1:
        p.error(f"--smooth must be in [0, 1), got {args.smooth}")
    if not 0 < args.tail <= 1:
        p.error(f"--tail must be in (0, 1], got {args.tail}")
    try:
        paths = [find_metrics(r) for r in args.runs]
        logs = [read_metrics(path) for path in paths]
    except MetricsError as exc:
        raise SystemExit(f"error: {exc}") from None
    empty = [str(path) for path, rows in zip(paths, logs, strict=True) if not rows]
    if empty:
        raise SystemExit(f"error: no rows logged yet in {', '.join(empty)}")
    labels = args.labels or [_default_label(path) for path in paths]
    if len(set(labels)) != len(labels):
        p.error(f"the runs need distinct labels (got {labels}); give --labels")
    runs = dict(zip(labels, logs, strict=True))

    keys = args.keys or list(dict.fromkeys(k for rows in logs for k in curve_keys(rows)))
    unknown = [k for k in keys if not any(k in r for rows in logs for r in rows)]
    if unknown:
        raise SystemExit(f"error: no run logged {', '.join(unknown)}")
    if args.out:
        out = Path(args.out)
    elif len(paths) == 1:
        out = paths[0].parent / "curves.png"
    else:
        p.error("--out is needed to compare several runs (where should the figure go?)")
    out.parent.mkdir(parents=True, exist_ok=True)

    table = summary_table(runs, keys, args.tail)
    print(markdown(table))
    training_curves(runs, keys, out, smooth=args.smooth)
    out.with_suffix(".json").write_text(json.dumps(table, indent=2))
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return table


def _default_label(path: Path) -> str:
    """``runs/exp/wide/dynamics/metrics.jsonl`` -> ``wide``: the run, not the phase."""
    folder = path.parent
    return folder.parent.name if folder.name in PHASES else folder.name


if __name__ == "__main__":
    main()
