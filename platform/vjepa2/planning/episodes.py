"""Planning episodes with known-feasible goals (DESIGN "Planning protocol").

An episode resets the environment from a seed, then runs the data-collection policy for
``goal_offset`` steps: the state it reaches is the goal, its frame the goal image, and the
actions it took are the oracle's replay. The agent then starts again from the reset state.
Seeds disjoint from the training collection's make the episodes held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vjepa2.envs.registry import WorldEnv


@dataclass
class PlanningEpisode:
    seed: int
    start_state: np.ndarray  # env.get_state() after reset
    goal_state: np.ndarray
    goal_info: dict[str, Any]  # what env.is_success compares against
    goal_frame: np.ndarray  # uint8 [H, W, 3]
    oracle_actions: np.ndarray  # float32 [goal_offset, d_a]: a sequence that reaches the goal


def make_episode(
    env: WorldEnv, seed: int, *, goal_offset: int = 25, policy: str = "default"
) -> PlanningEpisode:
    _, info = env.reset(seed=seed)
    rng = np.random.default_rng(seed + 7_919)
    return episode_from_here(env, seed, info, goal_offset=goal_offset, policy=policy, rng=rng)


def episode_from_here(
    env: WorldEnv,
    seed: int,
    info: dict[str, Any],
    *,
    goal_offset: int,
    policy: str,
    rng: np.random.Generator,
) -> PlanningEpisode:
    """An episode that starts at the env's current state (``info``: its info there) and
    whose goal is where ``policy``, drawing from ``rng``, gets in ``goal_offset`` steps. The
    env is left at the goal."""
    from vjepa2.envs import make_policy

    start = env.get_state().copy()
    pol = make_policy(policy, env)
    pol.reset(env, rng)
    frame = env.render()
    actions = []
    for _ in range(goal_offset):
        action = np.asarray(pol(frame, info), np.float32)
        frame, _, terminated, truncated, info = env.step(action)
        actions.append(action)
        if terminated or truncated:
            break
    return PlanningEpisode(
        seed=seed,
        start_state=start,
        goal_state=env.get_state().copy(),
        goal_info=dict(info),
        goal_frame=np.asarray(frame, np.uint8).copy(),
        oracle_actions=np.stack(actions).astype(np.float32),
    )


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a success rate (sound at 0% and 100%, unlike +-2se)."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))
