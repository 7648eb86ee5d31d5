"""Held-out rollout quality of several world models side by side, without planning.

    .venv/bin/python benchmarks/rollouts.py --checkpoint runs/exp/pusht_d6_12k/dynamics/final.pt \
        --checkpoint runs/exp/pusht_b12_d6/dynamics/final.pt

For each checkpoint: the cos-sim of its rollouts at 1/5/10 steps on the first 64 episodes of
its dataset's validation split (``--dataset`` overrides the one it was trained on), at its own
frameskip, and its squared error over the two baselines' (copying the current state;
predicting the average future state). These are the figures ``jobs.evaluate --dataset``
prints, for models compared before spending an evaluation's planning time on them. A
second table splits the cos-sim and the error over copying's by part of the state (the
plain grid, each blurred grid, the proprio token), to show which part the model misses. A
third rolls each episode out from its own start with another episode's actions: its error
over the true actions' (near 1, the model guesses the future without reading the actions,
as a policy that acts predictably from the state allows, and a planner asking what other
actions do learns nothing from it). Frames' tokens only, as the first table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from bench_output import print_table, write_json

from vjepa2.eval.rollout import held_out_rollout_cosine
from vjepa2.train.builders import load_world_model


def _triple(values: dict) -> str:
    return " / ".join(f"{v:.2f}" for v in values.values())


@torch.no_grad()
def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", action="append", required=True, help="dynamics final.pt")
    p.add_argument("--dataset", help="video-action dataset (default: each model's own)")
    p.add_argument("--split", default="val")
    p.add_argument("--out", default="runs/bench/rollouts.json")
    args = p.parse_args(argv)
    for c in args.checkpoint:
        if not Path(c).is_file():
            p.error(f"checkpoint not found: {c}")

    rows = []
    for c in args.checkpoint:
        model, cfg = load_world_model(c)
        root = args.dataset or cfg.data.dataset.path
        if not root:
            p.error(f"{c} was not trained on a dataset: pass --dataset")
        k = cfg.data.dataset.frameskip
        cos, n = held_out_rollout_cosine(
            model, root, frameskip=k, split=args.split, by_view=True, other_actions=True
        )
        rows.append({"checkpoint": c, "dataset": root, "episodes": n, "frameskip": k, **cos})
    header = ["checkpoint", "episodes", "steps", "cos-sim", "copy's cos-sim"]
    header += ["error / copy's", "error / average's"]
    print_table(
        header,
        [
            [
                r["checkpoint"],
                str(r["episodes"]),
                " / ".join(map(str, r["model"])),
                _triple(r["model"]),
                _triple(r["copy"]),
                _triple(r["error_vs_copy"]),
                _triple(r["error_vs_mean"]),
            ]
            for r in rows
        ],
    )
    print("\nBy part of the state (which part the model misses):")
    print_table(
        ["checkpoint", "part", "cos-sim", "error / copy's"],
        [
            [r["checkpoint"], view, _triple(v["model"]), _triple(v["error_vs_copy"])]
            for r in rows
            for view, v in r["by_view"].items()
        ],
    )
    print("\nWith another episode's actions (does the model read the actions?):")
    print_table(
        ["checkpoint", "cos-sim", "error / copy's", "error / true actions' error"],
        [
            [
                r["checkpoint"],
                _triple(r["other_actions"]["model"]),
                _triple(r["other_actions"]["error_vs_copy"]),
                _triple(r["other_actions"]["error_vs_true_actions"]),
            ]
            for r in rows
        ],
    )
    print(f"wrote {write_json(args.out, {'args': vars(args), 'rows': rows})}")
    return rows


if __name__ == "__main__":
    main()
