"""Planning success under the protocol: the CEM agent beside random, do-nothing and oracle.

``evaluate_seeds`` runs every agent on the same episodes (one environment, one world model
per call, so a Ray task can take a chunk of seeds); ``summarize`` turns outcomes into rows
with a 95% Wilson interval and planning seconds per executed step. "pixel_wm" is the same
CEM on a pixel-space next-frame model (the seed's latent-vs-pixel comparison), and
``rollout_step_flops`` what one candidate's step costs each planner. "cem_true_dynamics"
plans with the same energy on the environment's own rollouts: the gap between it and "cem"
is what the dynamics model loses, and its own distance from 100% is the encoder's.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vjepa2.envs import make_env
from vjepa2.envs.registry import WorldEnv
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
from vjepa2.planning.agents import Agent, planning_dims
from vjepa2.planning.audit import audit_summary

AGENTS = ("cem", "cem_true_dynamics", "bc", "pixel_wm", "random", "do_nothing", "oracle")
PLANNERS = ("cem", "pixel_wm")  # the agents that plan with CEM on a model
# pixel_wm is opt-in (--set "agents=[cem,pixel_wm]"): its step costs ~100x the tiny latent
# step (91 vs 0.92 MFLOPs), ~90 s per K=300/I=5/H=5 plan on one CPU core, so by default it
# would turn the 12-minute CPU evaluation into days. cem_true_dynamics (the world model's
# energy on the environment's exact rollouts: what cem would reach with perfect dynamics) is
# opt-in too: its K x I x H env steps per plan run one at a time in Python.
DEFAULT_AGENTS = ("cem", "bc", "random", "do_nothing", "oracle")


# The environments whose frame size is a config field: the evaluation draws them at the size
# the model's training frames were drawn at (``at_model_frame_size``), as collection does.
RENDER_SIZED_ENVS = ("tworoom", "pusht")


@dataclass
class PlanningEvalConfig:
    env: str = "tworoom"
    # make_env's keywords (the env config's fields). For tworoom and pusht, render_size is
    # filled in with the model's frame size unless given (``at_model_frame_size``).
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    episodes: int = 50
    seed: int = 1_000_000  # episode i uses seed + i: far from the collection's seeds
    goal_offset: int = 25  # the goal is the state 25 policy steps after the start
    budget: int = 50
    execute: int = 1  # actions executed per plan
    agents: tuple[str, ...] = DEFAULT_AGENTS
    bc_checkpoint: str = ""  # a goal-conditioned BC policy (jobs.evaluate trains one)
    pixel_wm_checkpoint: str = ""  # a pixel-space world model (jobs.evaluate trains one)
    # More dynamics checkpoints that cem (and cem_true_dynamics) plan with beside the main
    # one, as an ensemble (planning/ensemble.py): each candidate's cost is the members' mean
    # plus cem.spread_weight x their spread. Same frame size, action width and state shape.
    ensemble_checkpoints: tuple[str, ...] = ()
    # The cost summed over the horizon and 10 iterations, not the seed's final-state cost at 5:
    # on TwoRoom's protocol episodes with exact dynamics that took the true-distance energy
    # from 80-88% to 94% (benchmarks/cem_ceiling.py) and the 16 px-blurred grid's from 60% to
    # 80% (docs/results.md, 2026-12-05). A final-state cost lets a plan wander and come back,
    # so its first action says little about where to go (20% at H=10). ``cost="min"`` reaches
    # 100% there at H=8; on learned TwoRoom models 90-92% against the sum's 88-90%, not
    # separated (2026-12-05 later and third), at 1.5-2x the planning time. The 98% TwoRoom
    # model plans with it at H=10 (2026-12-05 fourth): 2.8 s per step on 2 CPU cores.
    # K=300 is the setting; K=96-100 planned PushT and TwoRoom as well at a third of
    # the time (2026-12-07 third), which is worth it where evaluation time is short.
    cem: CEMConfig = field(
        default_factory=lambda: CEMConfig(num_candidates=300, iterations=10, cost="sum")
    )
    # Replay each plan of the model-based planners in the real environment and report the
    # plans whose real cost was far above the model's promise (vjepa2.planning.audit): ~1% of
    # the planning time, and it tells a model error that CEM exploits from a planner failure.
    audit_plans: bool = True
    # The parts of the model's state the planning energy reads (WorldModel.state_views
    # names: "sharp", "blur 12 px", "proprio", ...), for cem and cem_true_dynamics; empty:
    # all of it. benchmarks/rollouts.py shows which parts a model predicts well.
    energy_views: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = set(self.agents) - set(AGENTS)
        if unknown:
            raise ValueError(f"unknown agents {sorted(unknown)}; valid: {AGENTS}")
        if self.episodes < 1 or self.budget < 1 or self.goal_offset < 1 or self.execute < 1:
            raise ValueError("episodes, budget, goal_offset and execute must be >= 1")


def build_agent(name: str, cfg: PlanningEvalConfig, checkpoint: str | None, action_dim: int):
    if name in ("cem", "cem_true_dynamics"):
        if not checkpoint:
            raise ValueError(f"the {name} agent needs a dynamics checkpoint")
        model = load_planning_model(checkpoint, cfg.ensemble_checkpoints)
        _warn_if_resized(cfg, planning_dims(model)[0])
        if name == "cem":
            return PlannerAgent(
                model,
                cfg.cem,
                execute=cfg.execute,
                audit_env=_audit_env(cfg),
                energy_views=cfg.energy_views,
            )
        from vjepa2.planning.true_dynamics import TrueDynamicsAgent

        return TrueDynamicsAgent(
            model, cfg.cem, planning_env(cfg), execute=cfg.execute, energy_views=cfg.energy_views
        )
    if name == "bc":
        from vjepa2.planning.bc import BCAgent, load_bc

        if not cfg.bc_checkpoint:
            raise ValueError("the bc agent needs bc_checkpoint (or --dataset to train one)")
        return BCAgent(load_bc(cfg.bc_checkpoint))
    if name == "pixel_wm":
        from vjepa2.planning.pixel_wm import load_pixel_wm

        if not cfg.pixel_wm_checkpoint:
            raise ValueError(
                "the pixel_wm agent needs pixel_wm_checkpoint (or --dataset to train one)"
            )
        # The same CEM settings as "cem": only the model it plans on differs.
        model = load_pixel_wm(cfg.pixel_wm_checkpoint)
        return PlannerAgent(
            model, cfg.cem, execute=cfg.execute, name="pixel_wm", audit_env=_audit_env(cfg)
        )
    if name == "random":
        return RandomAgent(action_dim, cfg.cem.low, cfg.cem.high, seed=cfg.seed)
    if name == "do_nothing":
        return DoNothingAgent(action_dim)
    return OracleAgent()


def load_planning_model(checkpoint: str | Path, ensemble: tuple[str, ...] = ()):
    """The world model at ``checkpoint``, or with ``ensemble`` checkpoints, all of them as
    one ``WorldModelEnsemble`` (the main checkpoint is member 0)."""
    from vjepa2.train.builders import load_world_model

    if not ensemble:
        return load_world_model(checkpoint)[0]
    from vjepa2.planning.ensemble import WorldModelEnsemble

    return WorldModelEnsemble([load_world_model(p)[0] for p in (checkpoint, *ensemble)])


def check_energy_views(cfg: PlanningEvalConfig, checkpoint: str | Path) -> None:
    """Raise ValueError before any episode runs when ``energy_views`` names a part that
    the model's state lacks (each episode would otherwise fail on it)."""
    if cfg.energy_views:
        from vjepa2.planning.agents import view_tokens

        model = load_planning_model(checkpoint, cfg.ensemble_checkpoints)
        view_tokens(model, cfg.energy_views)


def _audit_env(cfg: PlanningEvalConfig):
    return planning_env(cfg) if cfg.audit_plans else None


def planning_env(cfg: PlanningEvalConfig) -> WorldEnv:
    """The environment the episodes are played, replayed and audited in."""
    return make_env(cfg.env, **cfg.env_kwargs)


def at_model_frame_size(
    cfg: PlanningEvalConfig, checkpoint: str | Path | None
) -> PlanningEvalConfig:
    """``cfg`` with tworoom's or pusht's frames drawn at the size the checkpoint's encoder
    takes, which is the size collection drew its training frames at.

    A frame drawn larger and resized down is not the frame the model learned from: PushT
    drawn at its default 96 px and resized to 64 moved the 12 px-blurred, standardised grid of
    the 2026-12-05 models by 80 times what one model step changes it
    (``benchmarks/frame_gap.py``; docs/results.md, 2026-12-06). A render_size given in
    ``env_kwargs`` is kept without reading the checkpoint (``build_agent`` warns when it
    differs from the model's); without a checkpoint (baselines only) ``cfg`` is returned as
    it is.
    """
    if not checkpoint or cfg.env not in RENDER_SIZED_ENVS or "render_size" in cfg.env_kwargs:
        return cfg
    from vjepa2.train.builders import checkpoint_img_size

    render_size = checkpoint_img_size(checkpoint)
    return replace(cfg, env_kwargs={**cfg.env_kwargs, "render_size": render_size})


def _warn_if_resized(cfg: PlanningEvalConfig, img_size: int) -> None:
    given = cfg.env_kwargs.get("render_size")
    if cfg.env in RENDER_SIZED_ENVS and given is not None and int(given) != img_size:
        warnings.warn(
            f"env_kwargs.render_size={given} but the model was trained on {img_size} px "
            "frames: every frame is resized, and the model sees frames unlike its data",
            stacklevel=3,
        )


def train_missing_baselines(
    cfg: PlanningEvalConfig, dataset: str | None, out: Path
) -> PlanningEvalConfig:
    """Each requested baseline without a checkpoint ("bc", "pixel_wm"): trained on
    ``dataset``'s train split into ``out/<name>.pt`` (reused if there), or, with no dataset,
    dropped from the agents with a printed note."""
    from vjepa2.planning.bc import train_bc_on_dataset
    from vjepa2.planning.pixel_wm import train_pixel_wm_on_dataset

    trainers = {
        "bc": ("bc_checkpoint", train_bc_on_dataset),
        "pixel_wm": ("pixel_wm_checkpoint", train_pixel_wm_on_dataset),
    }
    for name, (key, train) in trainers.items():
        if name not in cfg.agents or getattr(cfg, key):
            continue
        if dataset:
            cfg = replace(cfg, **{key: str(train(dataset, Path(out) / f"{name}.pt"))})
        else:
            print(f"{name}: no --dataset to train it on and no {key}; skipped")
            cfg = replace(cfg, agents=tuple(a for a in cfg.agents if a != name))
    return cfg


def evaluate_seeds(
    cfg: PlanningEvalConfig,
    seeds: list[int],
    checkpoint: str | None,
    record: int = 0,
    progress: Callable[[int], object] | None = None,
) -> list[EpisodeOutcome]:
    """Every agent on the episodes of ``seeds``; frames kept for the first ``record``;
    ``progress(1)`` after each episode (all agents) when given."""
    torch.set_num_threads(1)  # one episode chunk per core
    cfg = at_model_frame_size(cfg, checkpoint)
    env = planning_env(cfg)
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
            if progress is not None:
                progress(1)
        return outcomes
    finally:
        env.close()


def rollout_step_flops(cfg: PlanningEvalConfig, checkpoint: str | None) -> dict[str, int]:
    """FLOPs of one candidate's rollout step, for each planning agent in ``cfg.agents``, from
    the state of the first episode's start frame."""
    cfg = at_model_frame_size(cfg, checkpoint)
    env = planning_env(cfg)
    try:
        frame, _ = env.reset(seed=cfg.seed)
        snapshot = env.get_state()
        action_dim = int(np.prod(env.action_space.shape))
    finally:
        env.close()
    flops = {}
    for name in (a for a in cfg.agents if a in PLANNERS):
        agent = build_agent(name, cfg, checkpoint, action_dim)
        flops[name] = agent.step_flops(frame, snapshot)
    return flops


def summarize(outcomes: list[EpisodeOutcome]) -> list[dict]:
    rows = []
    for name in dict.fromkeys(o.agent for o in outcomes):
        mine = [o for o in outcomes if o.agent == name]
        wins = sum(o.success for o in mine)
        lo, hi = wilson_interval(wins, len(mine))
        steps = [o.steps_to_success for o in mine if o.success]
        plans = [s for o in mine for s in o.plan_seconds]
        executed = sum(o.steps for o in mine)
        audit = audit_summary([o.plan_audits for o in mine], [o.success for o in mine])
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
                "audit": audit,
                "failures_ended": _median_gap([o.final_gap for o in mine if not o.success]),
            }
        )
    return rows


def _median_gap(gaps: list[dict[str, float]]) -> dict[str, float] | None:
    """Each criterion term's median over the failed episodes' ends; None without failures
    (or where the log predates the gaps)."""
    gaps = [g for g in gaps if g]
    if not gaps:
        return None
    return {k: float(np.median([g[k] for g in gaps])) for k in gaps[0]}


def _gap_cell(gap: dict[str, float] | None) -> str:
    if not gap:
        return "-"
    return ", ".join(
        f"{k.rsplit('_', 1)[0]} {v:.0f}{'°' if k.endswith('_deg') else ' px'}"
        for k, v in gap.items()
    )


def markdown_table(rows: list[dict]) -> str:
    lines = [
        "| agent | success | 95% CI | steps to success | planning s / step "
        "| plans over-promised (failures with one) | failures ended (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        steps = "-" if r["mean_steps_to_success"] is None else f"{r['mean_steps_to_success']:.1f}"
        audit = r.get("audit")
        promised = (
            "-"
            if not audit
            else f"{audit['over_promised_share']:.0%} of {audit['plans_audited']} "
            f"({audit['failed_with_over_promise']}/{audit['failed_episodes']})"
        )
        lines.append(
            f"| {r['agent']} | {r['success_rate']:.0%} ({r['episodes']} ep) | "
            f"{r['ci95_low']:.0%}-{r['ci95_high']:.0%} | {steps} | {r['plan_s_per_step']:.4f} "
            f"| {promised} | {_gap_cell(r.get('failures_ended'))} |"
        )
    return "\n".join(lines)
