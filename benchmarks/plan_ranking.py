"""Does a world model rank CEM's candidates as the environment does? Protocol episodes.

    .venv/bin/python benchmarks/plan_ranking.py --checkpoint runs/exp/big_vicreg/dynamics/final.pt

For each of the first ``--episodes`` protocol episodes (the seeds ``jobs.evaluate`` plans),
``--candidates`` plans are drawn as CEM's first iteration draws them, from the start state
toward the goal frame. Each is scored twice with the checkpoint's energy: on the model's
latent rollout and on the environment's exact rollout (``cem_true_dynamics``'s cost).
The table gives, per checkpoint, the medians over episodes of the two rankings' Spearman
correlation, the share of the model's elites (CEM's elite fraction) that are true elites, and
the regret of the model's pick (0: the true best candidate, 1: no better than the median).
The episode's logged actions, which reach the goal, replace the first candidate where they
fit the horizon; "oracle rank" is the share of the other candidates the model scores below
them (0: the model picks the plan that works). "spread" is the interquartile range of the
model's costs over the candidates against the world's (near 0: the model predicts much the
same future whatever the actions) and "level" its median cost over the world's (under 1: it
promises more than the world gives).
For a model with proprioception a second table scores the same candidates on the frames'
tokens alone (the proprio token left out of both costs): how well the model ranks what the
plans do to the scene, apart from where they take the agent, which it predicts nearly
exactly.
With ``--pick-iterations I`` CEM also plans each episode's first plan to the end (the
benchmark's K and H, I iterations, seeded per episode), and its pick is scored beside the
logged plan on the model and in the world. Each episode gets a verdict: "search" (the model
scores the logged plan below the pick: CEM missed a plan its own model prefers), "model" (the
model prefers the pick, the world the logged plan: the model's error chose) or "energy" (the
world too scores the pick no worse). The table gives the share of each and the median costs.
``--cost`` is CEM's (``final``, ``sum``, ``min``); ``jobs.evaluate``'s PushT runs use ``sum``.
``--checkpoint`` repeats for several models; prints the tables, writes JSON. ``--ensemble``
(repeatable) plans each checkpoint together with those, as ``jobs.evaluate``'s
``ensemble_checkpoints`` does, with ``--spread-weight`` as ``cem.spread_weight``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from vjepa2.eval.plan_ranking import (
    PICK_VERDICTS,
    candidate_costs,
    cem_pick,
    grid_tokens,
    model_rank,
    oracle_plan,
    pick_verdict,
    ranking_stats,
    sample_plans,
)
from vjepa2.eval.planning import (
    PlanningEvalConfig,
    at_model_frame_size,
    load_planning_model,
    planning_env,
)
from vjepa2.planning import CEMConfig, PlannerAgent, make_episode

STATS = ("spearman", "elite_overlap", "regret", "oracle_rank", "spread", "level")
# CEM's pick and the logged plan, each on the model and in the world (--pick-iterations).
PICK_COSTS = ("model_pick", "model_logged", "world_pick", "world_logged")


def rank_checkpoint(checkpoint: str, args: argparse.Namespace) -> dict:
    model = load_planning_model(checkpoint, tuple(args.ensemble))
    cfg = CEMConfig(
        num_candidates=args.candidates,
        horizon=args.horizon,
        iterations=1,
        cost=args.cost,
        spread_weight=args.spread_weight,
    )
    agent = PlannerAgent(model, cfg)
    # The same model and CEM settings, planning to the end (--pick-iterations).
    picker = None
    if args.pick_iterations:
        picker = PlannerAgent(model, replace(cfg, iterations=args.pick_iterations))
    # Frames drawn at the model's training size, as jobs.evaluate draws them.
    env = planning_env(at_model_frame_size(PlanningEvalConfig(env=args.env), checkpoint))
    gen = torch.Generator().manual_seed(args.seed)
    episodes = []
    scorings = [("", None)]
    if grid_tokens(agent) is not None:
        scorings.append(("grid_", grid_tokens(agent)))
    try:
        for i in range(args.episodes):
            episode = make_episode(env, args.episode_seed + i, goal_offset=args.goal_offset)
            plans = sample_plans(agent, gen)
            oracle = oracle_plan(episode, args.horizon, agent.planner.action_dim)
            if oracle is not None:
                plans[0] = oracle
            row = {"seed": episode.seed}
            costs = candidate_costs(agent, env, episode, plans, [t for _, t in scorings])
            for (prefix, _), pair in zip(scorings, costs, strict=True):
                stats = _stats(*pair, cfg.num_elites, oracle is not None)
                row.update({prefix + k: v for k, v in stats.items()})
            if picker is not None and oracle is not None:
                row.update(_pick_row(picker, env, episode, oracle, scorings))
            episodes.append(row)
    finally:
        env.close()
    medians = {}
    for prefix, _ in scorings:
        for k in STATS:
            values = [e[prefix + k] for e in episodes if e[prefix + k] is not None]
            medians[prefix + k] = float(np.median(values)) if values else None
        verdicts = [e[prefix + "verdict"] for e in episodes if prefix + "verdict" in e]
        for v in PICK_VERDICTS:
            medians[f"{prefix}share_{v}"] = verdicts.count(v) / len(verdicts) if verdicts else None
        for k in PICK_COSTS:
            values = [e[prefix + k] for e in episodes if prefix + k in e]
            medians[prefix + k] = float(np.median(values)) if values else None
    name = " + ".join([checkpoint, *args.ensemble])
    if args.ensemble:
        name += f" (spread {args.spread_weight:g})"
    return {"checkpoint": name, **medians, "episodes": episodes}


def _pick_row(picker, env, episode, oracle, scorings) -> dict:
    """CEM's finished first plan beside the logged one: costs and a verdict per scoring."""
    pick = cem_pick(picker, env, episode, torch.Generator().manual_seed(episode.seed))
    plans = torch.stack([pick, oracle])
    costs = candidate_costs(picker, env, episode, plans, [t for _, t in scorings])
    row = {}
    for (prefix, _), (model_cost, true_cost) in zip(scorings, costs, strict=True):
        row[prefix + "verdict"] = pick_verdict(model_cost, true_cost)
        values = (*model_cost.tolist(), *true_cost.tolist())
        row.update({prefix + k: float(v) for k, v in zip(PICK_COSTS, values, strict=True)})
    return row


def _stats(model_cost, true_cost, num_elites: int, with_oracle: bool) -> dict:
    stats = ranking_stats(model_cost, true_cost, num_elites).as_dict()
    # JSON has no NaN: a spread or level the world's costs leave undefined is null.
    stats = {k: v if np.isfinite(v) else None for k, v in stats.items()}
    stats["oracle_rank"] = model_rank(model_cost, 0) if with_oracle else None
    return stats


def _print_picks(rows: list[dict], iterations: int) -> None:
    print(f"\nCEM's pick ({iterations} iterations) against the logged plan; shares of episodes")
    print(
        "| checkpoint | scored on | search | model | energy | model: pick / logged "
        "| world: pick / logged |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        for prefix, title in (("", "whole state"), ("grid_", "frames' tokens")):
            if r.get(prefix + "share_search") is None:
                continue
            shares = [f"{r[f'{prefix}share_{v}']:.0%}" for v in PICK_VERDICTS]
            m = [f"{r[prefix + k]:.2f}" for k in PICK_COSTS]
            print(
                f"| {r['checkpoint']} | {title} | "
                + " | ".join(shares)
                + f" | {m[0]} / {m[1]} | {m[2]} / {m[3]} |"
            )


@torch.no_grad()
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", action="append", required=True, help="dynamics final.pt")
    p.add_argument(
        "--ensemble", action="append", default=[], help="a checkpoint to plan with beside each"
    )
    p.add_argument("--spread-weight", type=float, default=0.0, help="cem.spread_weight")
    p.add_argument("--env", default="tworoom")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--candidates", type=int, default=300)
    p.add_argument("--horizon", type=int, default=5)
    p.add_argument("--cost", choices=("final", "sum", "min"), default="final", help="cem.cost")
    p.add_argument(
        "--pick-iterations",
        type=int,
        default=0,
        help="also plan the first plan with this many CEM iterations and judge its pick",
    )
    p.add_argument("--goal-offset", type=int, default=25)
    p.add_argument("--episode-seed", type=int, default=1_000_000, help="jobs.evaluate's seeds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/bench/plan_ranking.json")
    args = p.parse_args()
    if (
        args.episodes < 1
        or args.candidates < 10
        or args.horizon < 1
        or args.spread_weight < 0
        or args.pick_iterations < 0
    ):
        p.error(
            "--episodes >= 1, --candidates >= 10, --horizon >= 1, --spread-weight >= 0 and "
            "--pick-iterations >= 0 are required"
        )

    rows = [rank_checkpoint(c, args) for c in args.checkpoint]
    print(f"{args.episodes} episodes x {args.candidates} candidates, H={args.horizon}; medians")
    for prefix, title in (("", "the whole state"), ("grid_", "the frames' tokens alone")):
        scored = [r for r in rows if prefix + "spearman" in r]
        if not scored:
            continue
        print(f"\nscored on {title}")
        print("| checkpoint | Spearman | elite overlap | regret | oracle rank | spread | level |")
        print("|---|---|---|---|---|---|---|")
        for r in scored:
            cells = ["-" if r[prefix + k] is None else f"{r[prefix + k]:.2f}" for k in STATS]
            print(f"| {r['checkpoint']} | " + " | ".join(cells) + " |")
    if args.pick_iterations:
        _print_picks(rows, args.pick_iterations)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
