"""PushT: shapes, relative actions, exact snapshots and replays, the success criterion and its
terms, the pose distance, the block-pushing policy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vjepa2.envs import PushT, PushTConfig, make_policy, replay_frames
from vjepa2.envs.pusht import pose_error


@pytest.fixture(scope="module")
def pusht() -> PushT:
    return PushT()


def test_pusht_replay_frames_match_stepping(pusht):
    """PushT draws only the kept frames; they must be the frames stepping draws."""
    pusht.reset(seed=0)
    snap = pusht.get_state()
    actions = np.random.default_rng(3).uniform(-1, 1, (3, 4, 2))
    got = replay_frames(pusht, snap, actions, [1, 3])
    assert got.shape == (3, 2, 96, 96, 3) and got.dtype == np.uint8
    assert np.array_equal(pusht.get_state(), snap)  # left where it was
    for seq, frames in zip(actions, got, strict=True):
        pusht.set_state(snap)
        steps = [pusht.step(a)[0] for a in seq]
        assert np.array_equal(frames, np.stack([steps[1], steps[3]]))
    both_frames, both_poses = pusht.replay_frames_and_poses(snap, actions, [1, 3])
    assert np.array_equal(both_frames, got)
    assert np.array_equal(both_poses, pusht.replay_poses(snap, actions, [1, 3]))


def test_pusht_reset_step_render_shapes(pusht):
    frame, info = pusht.reset(seed=0)
    assert frame.shape == (96, 96, 3) and frame.dtype == np.uint8
    assert set(info) >= {"agent_pos", "block_pos", "block_angle", "block_com"}
    frame2, reward, terminated, truncated, info = pusht.step(np.zeros(2))
    assert frame2.shape == (96, 96, 3) and pusht.render() is frame2
    assert isinstance(reward, float) and not terminated and not truncated
    assert pusht.state_vector(info).shape == (5,)
    small = PushT(PushTConfig(render_size=64))
    assert small.reset(seed=0)[0].shape == (64, 64, 3)


def test_pusht_relative_actions(pusht):
    # Agent far from the block, at rest: a zero action keeps it exactly where it is.
    _, info = pusht.reset(seed=0, options={"pose": [100.0, 100.0, 350.0, 350.0, 0.0]})
    _, _, _, _, info = pusht.step(np.zeros(2))
    assert info["agent_pos"].tolist() == [100.0, 100.0]
    xs = [info["agent_pos"][0]]
    for _ in range(8):
        _, _, _, _, info = pusht.step(np.array([1.0, 0.0]))
        xs.append(info["agent_pos"][0])
    dx = np.diff(xs)
    scale = pusht.config.action_scale
    assert np.all(dx > 0) and 0.3 * scale < dx[-1] < 0.5 * scale  # settles near 0.41 * scale
    assert abs(info["agent_pos"][1] - 100.0) < 1e-6
    # Targets are clipped to the workspace: pushing right ends at its edge.
    for _ in range(40):
        _, _, _, _, info = pusht.step(np.array([1.0, 0.0]))
    assert abs(info["agent_pos"][0] - pusht.config.workspace[1]) < 1.0


def test_pusht_snapshot_restore_replays_bit_for_bit(pusht):
    policy = make_policy("block_pushing", pusht)
    policy.reset(pusht, np.random.default_rng(0))
    frame, info = pusht.reset(seed=1)
    replay = PushT()
    contacts, checks = 0, 0
    for t in range(36):
        frame, _, _, _, info = pusht.step(policy(frame, info))
        if t % 6 != 5:
            continue
        snap, snap_frame = pusht.get_state(), pusht.render()
        actions = [policy(frame, info)]
        states, frames = [], []
        for _ in range(6):
            frame, _, _, _, info = pusht.step(actions[-1])
            contacts += info["n_contacts"] > 0
            states.append(pusht.get_state())
            frames.append(frame)
            actions.append(policy(frame, info))
        replay.reset(seed=100 + t)  # a different history before the restore
        replay.set_state(snap)
        assert np.array_equal(replay.render(), snap_frame)
        for a, s, f in zip(actions, states, frames, strict=False):
            rf, _, _, _, _ = replay.step(a)
            assert np.array_equal(replay.get_state(), s) and np.array_equal(rf, f)
            checks += 1
    assert checks == 36 and contacts >= 6  # the replays covered real pushing


@pytest.mark.parametrize("limit", [None, 14])
def test_pusht_replay_poses_match_stepping_bit_for_bit(limit):
    """The planner's ceiling replays thousands of candidates without drawing: the poses must be
    those ``step`` reaches, pushes and truncation included, and the env is left as it was."""
    env = PushT(PushTConfig(render_size=32, max_episode_steps=limit))
    policy = make_policy("block_pushing", env)
    policy.reset(env, np.random.default_rng(0))
    frame, info = env.reset(seed=3)
    for _ in range(10):
        frame, _, _, _, info = env.step(policy(frame, info))
    snap = env.get_state()
    rng = np.random.default_rng(1)
    actions, expected, contacts = [], [], 0
    for k in range(4):
        env.set_state(snap)
        frame, info, over, seq, poses = env.render(), env._info(), False, [], []
        for _ in range(8):
            a = policy(frame, info) if k < 2 else rng.uniform(-1, 1, 2)  # pushes, then random
            if not over:
                frame, _, _, over, info = env.step(a)
                contacts += info["n_contacts"] > 0
            seq.append(a)
            poses.append(env.get_state()[:5])
        actions.append(seq)
        expected.append(poses)
    keep = [0, 3, 7]
    got = env.replay_poses(snap, np.asarray(actions), keep)
    assert np.array_equal(got, np.asarray(expected)[:, keep])
    assert np.array_equal(env.get_state(), snap)
    assert contacts > 0 and np.ptp(got[:, -1, 2:4], axis=0).max() > 5.0  # the block was pushed
    with pytest.raises(ValueError, match="finite actions"):
        env.replay_poses(snap, np.asarray(actions)[0], keep)
    with pytest.raises(ValueError, match="must index"):
        env.replay_poses(snap, np.asarray(actions), [8])


def test_pusht_success_criterion_with_angle_wrap(pusht):
    goal = np.array([100.0, 100.0, 200.0, 200.0, 0.1])
    near = np.array([100.0, 100.0, 200.0, 200.0, 2 * math.pi - 0.1])  # 0.2 rad away, wrapped
    assert pusht.is_success(near, goal)
    assert not pusht.is_success(near + [0, 0, 0, 0, -0.3], goal)  # 0.5 rad > pi/9
    assert pusht.is_success(goal + [13.0, 0, 0, 13.0, 0], goal)  # joint norm 18.4 < 20
    assert not pusht.is_success(goal + [15.0, 0, 0, 15.0, 0], goal)  # joint norm 21.2
    per_body = PushTConfig(joint_position_norm=False)
    env = PushT(per_body)
    assert env.is_success(goal + [15.0, 0, 0, 15.0, 0], goal)  # each 15 < 20
    assert not env.is_success(goal + [21.0, 0, 0, 0, 0], goal)
    _, info = pusht.reset(seed=0)
    assert pusht.is_success(info, pusht.get_state()) and pusht.is_success(pusht.get_state(), info)

    # The criterion's terms, as the evaluation reports where failures ended.
    gap = pusht.goal_gap(goal + [12.0, 16.0, -9.0, 12.0, 0], near)
    assert gap == pytest.approx(
        {"agent_px": 20.0, "block_px": 15.0, "position_px": 25.0, "angle_deg": 11.459}, abs=1e-3
    )
    assert env.goal_gap(goal + [12.0, 16.0, -9.0, 12.0, 0], goal)["position_px"] == 20.0


def test_pusht_pose_error_weighs_the_angle_at_the_success_exchange_rate():
    cfg = PushTConfig()
    goal = np.array([100.0, 100.0, 200.0, 200.0, 0.1])
    assert pose_error(goal, goal, cfg) == 0.0
    # 20 degrees of turn costs what 20 px of block travel does, across the 0 / 2 pi seam too.
    turned = goal + [0, 0, 0, 0, -math.pi / 9]  # below 0: wraps to 2 pi - 0.249
    turned[4] %= 2 * math.pi
    moved = goal + [0, 0, 20.0, 0, 0]
    assert math.isclose(pose_error(turned, goal, cfg), pose_error(moved, goal, cfg))
    both = np.stack([goal + [3.0, 4.0, 0, 0, 0], moved])
    assert np.allclose(pose_error(both, goal, cfg), [25.0, 400.0])


def test_block_pushing_policy_moves_the_block(pusht):
    def moved(name: str) -> int:
        policy, count = make_policy(name, pusht), 0
        for episode in range(4):
            frame, info = pusht.reset(seed=episode)
            policy.reset(pusht, np.random.default_rng(episode))
            start, angle = info["block_pos"], info["block_angle"]
            for _ in range(20):
                frame, _, _, _, info = pusht.step(policy(frame, info))
            turn = abs((info["block_angle"] - angle + math.pi) % (2 * math.pi) - math.pi)
            count += np.linalg.norm(info["block_pos"] - start) > 5.0 or turn > 0.05
        return count

    pushed, random = moved("block_pushing"), moved("random")
    # Measured: 4/4 episodes moved with pushing, 0/4 to 1/4 with uniform random actions.
    assert pushed >= 3 and pushed > random


def test_block_pushing_noise_range_draws_one_level_per_episode(pusht):
    """``noise_max`` gives each episode its own noise in [noise, noise_max]: some episodes
    push cleanly, others jitter; without it the stream is the fixed-noise policy's."""

    def actions(policy, episode: int) -> np.ndarray:
        frame, info = pusht.reset(seed=episode)
        policy.reset(pusht, np.random.default_rng(episode))
        out = []
        for _ in range(30):
            out.append(policy(frame, info))
            frame, _, _, _, info = pusht.step(out[-1])
        return np.stack(out)

    def jitter(policy, episode: int) -> float:
        """Mean change between consecutive actions: a clean push turns its action slowly."""
        return float(np.abs(np.diff(actions(policy, episode), axis=0)).mean())

    ranged = make_policy("block_pushing", pusht, noise=0.0, noise_max=2.0)
    levels = [jitter(ranged, e) for e in range(8)]
    assert max(levels) > 2 * min(levels)  # the draws differ per episode (0.27 to 0.84)
    assert max(levels) > 3 * jitter(make_policy("block_pushing", pusht, noise=0.0), 0)  # 0.18

    def draws_at_reset(policy) -> bool:
        rng = np.random.default_rng(5)
        pusht.reset(seed=0)
        policy.reset(pusht, rng)
        return rng.random() != np.random.default_rng(5).random()

    # Without a range nothing is drawn at reset: collections made before it are unchanged.
    assert not draws_at_reset(make_policy("block_pushing", pusht))
    assert draws_at_reset(make_policy("block_pushing", pusht, noise_max=1.0))
    with pytest.raises(ValueError, match="noise <= noise_max"):
        make_policy("block_pushing", pusht, noise=1.0, noise_max=0.5)
