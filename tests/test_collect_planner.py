"""The ``planner`` collection policy: CEM on a world model toward expert-made goals."""

from __future__ import annotations

import numpy as np
import pytest

from vjepa2.config.base import ConfigError
from vjepa2.data.collect import CollectConfig, build_env, check_env, episode_seed, rollout_episode


def planner_config(checkpoint: str, tmp_path, **kwargs) -> CollectConfig:
    policy_kwargs = {"checkpoint": checkpoint, "num_candidates": 16, "iterations": 2}
    policy_kwargs.update({"goal_offset": 4, "noise": 0.1, **kwargs})
    return CollectConfig(
        out=str(tmp_path / "data"), env="tworoom", policy="planner", episodes=2,
        steps_per_episode=20, seed=3, policy_kwargs=policy_kwargs,
    )  # fmt: skip


def test_planner_episodes_are_seeded_and_one_unbroken_trajectory(tiny_world_model, tmp_path):
    cfg = planner_config(str(tiny_world_model), tmp_path)
    frames, actions, states = rollout_episode(cfg, 0)
    assert frames.shape == (21, 64, 64, 3) and actions.shape == (20, 2)
    assert np.all(np.abs(actions) <= 1.0)
    again = rollout_episode(cfg, 0)
    np.testing.assert_array_equal(again[1], actions)
    assert not np.array_equal(rollout_episode(cfg, 1)[1], actions)

    # Each goal is made by running the expert ahead and putting the env back: replaying the
    # logged actions from the episode's reset must give the logged states, goal changes
    # (every 8 steps here) included.
    env_ss, _ = episode_seed(cfg.seed, 0).spawn(2)
    env = build_env(cfg)
    try:
        _, info = env.reset(seed=int(env_ss.generate_state(1)[0]))
        replayed = [env.state_vector(info)]
        for a in actions:
            _, _, _, _, info = env.step(a)
            replayed.append(env.state_vector(info))
    finally:
        env.close()
    np.testing.assert_allclose(np.stack(replayed), states, atol=1e-5)


def test_planner_actions_come_from_the_plan_not_the_expert(tiny_world_model, tmp_path):
    """Without noise the executed actions are CEM's: other CEM settings plan other moves."""
    few = rollout_episode(planner_config(str(tiny_world_model), tmp_path, noise=0.0), 0)[1]
    more = rollout_episode(
        planner_config(str(tiny_world_model), tmp_path, noise=0.0, num_candidates=32), 0
    )[1]
    assert not np.array_equal(few, more)


def test_planner_policy_rejects_bad_settings_before_collecting(tiny_world_model, tmp_path):
    with pytest.raises(ConfigError, match="checkpoint not found"):
        check_env(planner_config(str(tmp_path / "missing.pt"), tmp_path))
    with pytest.raises(ConfigError, match="goal_offset"):
        check_env(planner_config(str(tiny_world_model), tmp_path, goal_offset=0))
    with pytest.raises(ConfigError, match="scripted"):
        check_env(planner_config(str(tiny_world_model), tmp_path, expert="planner"))


def test_planner_refuses_an_env_that_cannot_go_back_to_a_snapshot(tiny_world_model):
    from vjepa2.envs.tworoom import TwoRoom
    from vjepa2.planning.collect_policy import PlannerPolicy

    class Forgetful(TwoRoom):  # ignores reset(options={"state": ...}), as many Gymnasium envs do
        def reset(self, *, seed=None, options=None):
            return super().reset(seed=seed)

    env = Forgetful()
    frame, info = env.reset(seed=0)
    policy = PlannerPolicy(str(tiny_world_model), goal_offset=3, num_candidates=8, iterations=1)
    policy.reset(env, np.random.default_rng(0))
    with pytest.raises(ValueError, match="does not return to a snapshot"):
        policy(frame, info)
