"""Planning success under the protocol: the CEM agent beside random, do-nothing and oracle.

``evaluate_seeds`` runs every agent on the same episodes (one environment, one world model
per call, so a Ray task can take a chunk of seeds); ``summarize`` turns outcomes into rows
with a 95% Wilson interval and planning seconds per executed step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from vjepa2.envs import make_env
from vjepa2.planning import (
    CEMConfig,
    DoNothingAgent,
    EpisodeOutcome,
    OracleAgent,
    PlannerAgent,
    RandomAgent,
    make_episode,
    run_episode,
    wilson_interval,
)
from vjepa2.planning.agents import Agent

AGENTS = ("cem", "bc", "random", "do_nothing", "oracle")


@dataclass
class PlanningEvalConfig:
    env: str = "tworoom"
    episodes: int = 50
    seed: int = 1_000_000  # episode i uses seed + i: far from the collection's seeds
    goal_offset: int = 25  # the goal is the state 25 policy steps after the start
    budget: int = 50
    execute: int = 1  # actions executed per plan
    agents: tuple[str, ...] = AGENTS
    bc_checkpoint: str = ""  # a goal-conditioned BC policy (jobs.evaluate trains one)
    cem: CEMConfig = field(default_factory=lambda: CEMConfig(num_candidates=300, iterations=5))

    def __post_init__(self) -> None:
        unknown = set(self.agents) - set(AGENTS)
        if unknown:
            raise ValueError(f"unknown agents {sorted(unknown)}; valid: {AGENTS}")
        if self.episodes < 1 or self.budget < 1 or self.goal_offset < 1 or self.execute < 1:
            raise ValueError("episodes, budget, goal_offset and execute must be >= 1")


def build_agent(name: str, cfg: PlanningEvalConfig, checkpoint: str | None, action_dim: int):
    if name == "cem":
        if not checkpoint:
            raise ValueError("the cem agent needs a dynamics checkpoint")
        from vjepa2.train.builders import load_world_model

        model, _ = load_world_model(checkpoint)
        return PlannerAgent(model, cfg.cem, execute=cfg.execute)
    if name == "bc":
        from vjepa2.planning.bc import BCAgent, load_bc

        if not cfg.bc_checkpoint:
            raise ValueError("the bc agent needs bc_checkpoint (or --dataset to train one)")
        return BCAgent(load_bc(cfg.bc_checkpoint))
    if name == "random":
        return RandomAgent(action_dim, cfg.cem.low, cfg.cem.high, seed=cfg.seed)
    if name == "do_nothing":
        return DoNothingAgent(action_dim)
    return OracleAgent()


def evaluate_seeds(
    cfg: PlanningEvalConfig, seeds: list[int], checkpoint: str | None, record: int = 0
) -> list[EpisodeOutcome]:
    """Every agent on the episodes of ``seeds``; frames kept for the first ``record``."""
    torch.set_num_threads(1)  # one episode chunk per core
    env = make_env(cfg.env)
    try:
        action_dim = int(np.prod(env.action_space.shape))
        agents: list[Agent] = [build_agent(n, cfg, checkpoint, action_dim) for n in cfg.agents]
        outcomes = []
        for i, seed in enumerate(seeds):
            episode = make_episode(env, seed, goal_offset=cfg.goal_offset)
            for agent in agents:
                outcomes.append(
                    run_episode(env, agent, episode, budget=cfg.budget, record_frames=i < record)
                )
        return outcomes
    finally:
        env.close()


def summarize(outcomes: list[EpisodeOutcome]) -> list[dict]:
    rows = []
    for name in dict.fromkeys(o.agent for o in outcomes):
        mine = [o for o in outcomes if o.agent == name]
        wins = sum(o.success for o in mine)
        lo, hi = wilson_interval(wins, len(mine))
        steps = [o.steps_to_success for o in mine if o.success]
        plans = [s for o in mine for s in o.plan_seconds]
        executed = sum(o.steps for o in mine)
        rows.append(
            {
                "agent": name,
                "episodes": len(mine),
                "success_rate": wins / len(mine),
                "ci95_low": lo,
                "ci95_high": hi,
                "mean_steps_to_success": float(np.mean(steps)) if steps else None,
                "plan_s_per_step": sum(plans) / executed if executed else 0.0,
                "plan_s_median": float(np.median(plans)) if plans else 0.0,
            }
        )
    return rows


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| agent | success | 95% CI | steps to success | planning s / step |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        steps = "-" if r["mean_steps_to_success"] is None else f"{r['mean_steps_to_success']:.1f}"
        lines.append(
            f"| {r['agent']} | {r['success_rate']:.0%} ({r['episodes']} ep) | "
            f"{r['ci95_low']:.0%}-{r['ci95_high']:.0%} | {steps} | {r['plan_s_per_step']:.4f} |"
        )
    return "\n".join(lines)
