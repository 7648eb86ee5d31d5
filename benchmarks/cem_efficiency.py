"""How good a plan each CEM setting finds for its cost, on a world model's real planning problems.

    .venv/bin/python benchmarks/cem_efficiency.py --env pusht \
        --checkpoint runs/exp/pusht_w192_2data/dynamics/final.pt --episodes 10 \
        --setting 300,10 --setting 300,10,1.25,0.3 --setting 140,10

Each problem is a protocol episode's first plan (the seeds ``jobs.evaluate`` plans, from a cold
start as the MPC loop's first plan is). Every ``--setting`` ``K,I[,decay[,keep]]`` (candidates,
iterations, ``cem.population_decay``, ``cem.keep_elites``; the rest is the evaluation's CEM)
plans it with the same seed, and its pick is scored twice with the checkpoint's energy: on the
model (what CEM optimised) and on the environment's exact replay of the plan (what it is worth).
The first setting is the reference: the table gives, per setting, the candidate rollouts one
plan scores, the median seconds per plan, and the medians over problems of its model and world
costs over the reference's (under 1: better), with the share of problems where its world cost
is no worse than the reference's. Paired by problem, so few problems separate settings whose
success rates over whole episodes would not. Prints the table, writes JSON.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch
from bench_output import print_table, write_json

from vjepa2.eval.plan_ranking import candidate_costs, start_and_goal
from vjepa2.eval.planning import (
    PlanningEvalConfig,
    at_model_frame_size,
    load_planning_model,
    planning_env,
)
from vjepa2.planning import CEMConfig, PlannerAgent, make_episode


def parse_setting(text: str, base: CEMConfig) -> CEMConfig:
    """``K,I[,decay[,keep]]`` -> ``base`` with those four fields."""
    try:
        parts = text.split(",")
        if not 2 <= len(parts) <= 4:
            raise ValueError("two to four numbers")
        k, i = int(parts[0]), int(parts[1])
        decay = float(parts[2]) if len(parts) > 2 else 1.0
        keep = float(parts[3]) if len(parts) > 3 else 0.0
        return replace(
            base, num_candidates=k, iterations=i, population_decay=decay, keep_elites=keep
        )
    except ValueError as exc:
        raise SystemExit(f"--setting {text!r}: expected K,I[,decay[,keep]] ({exc})") from None


@torch.no_grad()
def plan_problem(
    agent: PlannerAgent, env, episode, start: torch.Tensor, goal: torch.Tensor, seed: int
) -> dict[str, float]:
    """One cold-start plan of the episode's first step: seconds, model and world costs."""
    t0 = time.perf_counter()
    result = agent.planner.plan(start, goal, generator=torch.Generator().manual_seed(seed))
    seconds = time.perf_counter() - t0
    [(model_cost, world_cost)] = candidate_costs(agent, env, episode, result.actions.cpu())
    return {"seconds": seconds, "model": float(model_cost[0]), "world": float(world_cost[0])}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="dynamics final.pt")
    p.add_argument("--env", choices=["tworoom", "pusht"], default="tworoom")
    p.add_argument(
        "--setting", action="append", help="K,I[,decay[,keep]] (repeatable; the first is the "
        "reference)"
    )  # fmt: skip
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--episode-seed", type=int, default=1_000_000, help="jobs.evaluate's seeds")
    p.add_argument("--out", default="runs/bench/cem_efficiency.json")
    args = p.parse_args(argv)
    if args.episodes < 1:
        p.error("--episodes must be >= 1")
    protocol = at_model_frame_size(PlanningEvalConfig(env=args.env), args.checkpoint)
    texts = args.setting or ["300,10", "300,10,1.25,0.3", "140,10"]
    settings = [(t, parse_setting(t, protocol.cem)) for t in texts]
    model = load_planning_model(args.checkpoint)
    env = planning_env(protocol)
    views = tuple(protocol.energy_views)
    agents = {text: PlannerAgent(model, cfg, energy_views=views) for text, cfg in settings}
    results: dict[str, list[dict[str, float]]] = {t: [] for t in texts}
    try:
        for i in range(args.episodes):
            episode = make_episode(env, args.episode_seed + i, goal_offset=protocol.goal_offset)
            # One model, so every setting plans from the same encoded start and goal.
            start, goal = start_and_goal(agents[texts[0]], env, episode)
            for text, agent in agents.items():
                row = plan_problem(agent, env, episode, start, goal, episode.seed)
                results[text].append(row)
            ref = results[texts[0]][-1]
            print(
                f"episode {i}: "
                + ", ".join(
                    f"{t} world {results[t][-1]['world'] / ref['world']:.2f}x" for t in texts[1:]
                ),
                flush=True,
            )
    finally:
        env.close()
    ref = results[texts[0]]
    rows = []
    for text, cfg in settings:
        got = results[text]
        model_ratio = [g["model"] / r["model"] for g, r in zip(got, ref, strict=True)]
        world_ratio = [g["world"] / r["world"] for g, r in zip(got, ref, strict=True)]
        rows.append(
            {"setting": text, "rollouts_per_plan": cfg.rollouts_per_plan,
             "seconds_per_plan": float(np.median([g["seconds"] for g in got])),
             "model_cost_ratio": float(np.median(model_ratio)),
             "world_cost_ratio": float(np.median(world_ratio)),
             "world_no_worse": float(np.mean([w <= 1.0 for w in world_ratio])),
             "problems": [{"seed": args.episode_seed + i, **g} for i, g in enumerate(got)]}
        )  # fmt: skip
    print(f"{args.checkpoint}: {args.episodes} protocol problems ({args.env}), against {texts[0]}")
    print_table(
        ["K, I, decay, keep", "rollouts / plan", "s / plan", "model cost", "world cost",
         "world no worse"],
        [[r["setting"], str(r["rollouts_per_plan"]), f"{r['seconds_per_plan']:.1f}",
          f"{r['model_cost_ratio']:.2f}x", f"{r['world_cost_ratio']:.2f}x",
          f"{r['world_no_worse']:.0%}"] for r in rows],
    )  # fmt: skip
    write_json(args.out, rows)
    return rows


if __name__ == "__main__":
    main()
