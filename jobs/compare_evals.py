"""Pool an evaluation's shards and compare it with another, episode by episode.

python -m jobs.compare_evals runs/exp/eval_b_0 runs/exp/eval_b_1
python -m jobs.compare_evals runs/exp/eval_b_0 runs/exp/eval_b_1 \
    --against runs/exp/eval_a_0 runs/exp/eval_a_1 --labels new old --out runs/bench/b_vs_a.json

Each path is a ``jobs.evaluate`` output folder (or its ``episodes.jsonl``); the folders of
one evaluation are its shards over disjoint seeds, pooled into one table (success with a
95% interval, plan audits, where failures ended). With ``--against``, the two evaluations
are paired on the seeds both planned: the table lists the episodes only one of them solved
and McNemar's exact p-value for "they solve as often". No Ray, no model: it reads logs.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vjepa2.eval.compare import (
    Evaluation,
    load_evaluation,
    paired_comparison,
    paired_markdown,
)
from vjepa2.eval.planning import markdown_table, summarize


def _section(ev: Evaluation) -> str:
    shards = "\n".join(f"- {s}" for s in ev.shards)
    return f"**{ev.label}** ({len(ev.shards)} shard(s)):\n{shards}\n\n" + markdown_table(
        summarize(ev.outcomes)
    )


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("evaluation", nargs="+", help="output folders (shards) of one evaluation")
    p.add_argument("--against", nargs="+", help="another evaluation's folders, paired by seed")
    p.add_argument("--labels", nargs=2, metavar=("A", "B"), help="names for the two evaluations")
    p.add_argument("--out", help="also write the comparison here (.json, and .md beside it)")
    args = p.parse_args(argv)
    label_a, label_b = args.labels or ("A", "B")
    if label_a == label_b:
        p.error("--labels must differ: they name the two evaluations in the tables and JSON")
    try:
        a = load_evaluation(args.evaluation, label_a)
        b = load_evaluation(args.against, label_b) if args.against else None
        paired = paired_comparison(a, b) if b else None
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None

    parts = [_section(a)]
    result: dict = {label_a: {"shards": a.shards, "planning": summarize(a.outcomes)}}
    if b is not None and paired is not None:
        parts.append(_section(b))
        result[label_b] = {"shards": b.shards, "planning": summarize(b.outcomes)}
        base = min(o.seed for o in a.outcomes + b.outcomes)
        parts.append(
            f"Paired on shared seeds (seeds listed as offsets from {base}):\n\n"
            + paired_markdown(paired, label_a, label_b, base)
        )
        result["paired"] = paired
    text = "\n\n".join(parts)
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        out.with_suffix(".md").write_text(text + "\n")
        print(f"\nwrote {out} and {out.with_suffix('.md')}")
    return result


if __name__ == "__main__":
    main()
