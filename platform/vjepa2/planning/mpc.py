"""Receding-horizon control: act, observe, act again, until success or the step budget."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from vjepa2.envs.registry import WorldEnv
from vjepa2.planning.agents import Agent
from vjepa2.planning.audit import PlanAudit
from vjepa2.planning.episodes import PlanningEpisode


@dataclass
class EpisodeOutcome:
    seed: int
    agent: str
    success: bool  # the environment's criterion held at some step within the budget
    steps_to_success: int | None
    steps: int
    plan_seconds: list[float] = field(default_factory=list)  # per act() call
    frames: list[np.ndarray] = field(default_factory=list)  # when recorded
    goal_frame: np.ndarray | None = None  # when recorded
    plan_audits: list[PlanAudit] = field(default_factory=list)  # agents that audit their plans
    # Where the episode ended against the goal, in the criterion's terms (``env.goal_gap``):
    # how near a failure came, and on which term it missed.
    final_gap: dict[str, float] = field(default_factory=dict)


def run_episode(
    env: WorldEnv,
    agent: Agent,
    episode: PlanningEpisode,
    *,
    budget: int = 50,
    record_frames: bool = False,
) -> EpisodeOutcome:
    """Start from ``episode.start_state``; success is checked after every executed action."""
    action_dim = episode.oracle_actions.shape[1]
    frame, info = env.reset(options={"state": episode.start_state})
    agent.reset(episode)
    frames = [frame] if record_frames else []
    goal = episode.goal_frame if record_frames else None
    seconds: list[float] = []
    steps, succeeded_at = 0, None
    while steps < budget and succeeded_at is None:
        # The true state, for the agents that plan with it (true-dynamics CEM) or audit their
        # plans against it (the planners, when asked to).
        if hasattr(agent, "observe_state"):
            agent.observe_state(env.get_state())
        t0 = time.perf_counter()
        actions = np.asarray(agent.act(frame), np.float32).reshape(-1, action_dim)
        seconds.append(time.perf_counter() - t0)
        for action in actions[: budget - steps]:
            frame, _, terminated, truncated, info = env.step(action)
            steps += 1
            if record_frames:
                frames.append(frame)
            if env.is_success(info, episode.goal_info):
                succeeded_at = steps
                break
            if terminated or truncated:
                budget = steps  # the episode is over
                break
    return EpisodeOutcome(
        seed=episode.seed,
        agent=agent.name,
        success=succeeded_at is not None,
        steps_to_success=succeeded_at,
        steps=steps,
        plan_seconds=seconds,
        frames=frames,
        goal_frame=goal,
        plan_audits=list(getattr(agent, "audits", [])),
        final_gap=env.goal_gap(info, episode.goal_info),
    )
