"""Environments: TwoRoom geometry and replay, the generic adapter, the registry (PushT:
test_pusht.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from vjepa2.envs import (
    GymEnvAdapter,
    PushT,
    TwoRoom,
    TwoRoomConfig,
    WorldEnv,
    make_env,
    make_policy,
    replay_frames,
)


def _tworoom(**kwargs) -> TwoRoom:
    env = TwoRoom(TwoRoomConfig(**kwargs))
    env.reset(seed=0)
    return env


def _place(env: TwoRoom, pos, door_y: float = 32.0) -> None:
    env.reset(seed=0, options={"pos": pos, "goal": [50.0, 50.0], "door_y": door_y})


def _inside_wall(pos, door_y: float, cfg: TwoRoomConfig) -> bool:
    in_slab = abs(pos[0] - cfg.wall_x) < cfg.wall_half_width
    return in_slab and abs(pos[1] - door_y) > cfg.door_half_height


# --- TwoRoom -----------------------------------------------------------------------------


def test_tworoom_wall_blocks_away_from_the_door():
    env = _tworoom()
    _place(env, [20.0, 10.0])
    for _ in range(20):
        _, _, _, _, info = env.step([1.0, 0.0])
    assert info["pos"].tolist() == [31.0, 10.0]  # resting on the left face
    _place(env, [45.0, 55.0])
    for _ in range(20):
        _, _, _, _, info = env.step([-1.0, 0.3])
    assert info["pos"][0] == 33.0 and info["pos"][1] > 55.0  # slid along the right face


def test_tworoom_door_passes_when_aligned_edges_included():
    env = _tworoom()
    for y in (32.0, 28.0, 36.0):  # centre and both door edges (door_half_height 4)
        _place(env, [20.0, y])
        for _ in range(10):
            _, _, _, _, info = env.step([1.0, 0.0])
        assert info["pos"][0] > 33.0, y
    _place(env, [20.0, 36.01])  # just outside the opening
    for _ in range(10):
        _, _, _, _, info = env.step([1.0, 0.0])
    assert info["pos"][0] == 31.0


def test_tworoom_stays_in_the_arena_and_out_of_the_wall():
    env = _tworoom()
    cfg = env.config
    rng = np.random.default_rng(0)
    for episode in range(5):
        _, info = env.reset(seed=episode)
        for _ in range(300):
            a = rng.choice([-1.0, 1.0], 2) * rng.uniform(0.5, 3.0, 2)  # often beyond the box
            _, _, _, _, info = env.step(a)
            assert np.all(info["pos"] >= cfg.margin) and np.all(info["pos"] <= 64 - cfg.margin)
            assert not _inside_wall(info["pos"], info["door"][1], cfg)


def test_tworoom_big_steps_cannot_tunnel():
    env = _tworoom(step_size=25.0)  # a step far longer than the 2 px wall is thick
    _place(env, [25.0, 10.0])
    _, _, _, _, info = env.step([1.0, 0.0])
    assert info["pos"].tolist() == [31.0, 10.0]
    _place(env, [25.0, 20.0])  # straight line would cross x = 32 at y = 26, under the door
    _, _, _, _, info = env.step([1.0, 1.0])
    assert info["pos"][0] == 31.0
    # Door at the bottom: from the top half no single step can reach the opening, so any
    # random step from the left room must stay there.
    rng = np.random.default_rng(1)
    for _ in range(300):
        _place(env, [rng.uniform(2.0, 30.0), rng.uniform(2.0, 20.0)], door_y=56.0)
        _, _, _, _, info = env.step(rng.uniform(-1.0, 1.0, 2))
        assert info["pos"][0] <= 31.0


def test_tworoom_is_deterministic_by_seed_and_restores_exactly():
    actions = np.random.default_rng(0).uniform(-1, 1, (40, 2))
    runs = []
    for _ in range(2):
        env = TwoRoom()
        frame, info = env.reset(seed=7)
        frames = [frame] + [env.step(a)[0] for a in actions]
        runs.append((np.stack(frames), env.get_state()))
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])
    other = TwoRoom()
    assert not np.array_equal(other.reset(seed=8)[1]["pos"], TwoRoom().reset(seed=7)[1]["pos"])

    env = TwoRoom()
    env.reset(seed=3)
    for a in actions[:10]:
        env.step(a)
    snap, frame = env.get_state(), env.render()
    tail = [env.step(a)[0] for a in actions[10:]]
    env2 = TwoRoom()
    env2.reset(seed=99)
    env2.set_state(snap)
    assert np.array_equal(env2.render(), frame)
    assert all(np.array_equal(f, env2.step(a)[0]) for f, a in zip(tail, actions[10:], strict=True))


@pytest.mark.parametrize("limit", [None, 8])
def test_tworoom_batched_replay_matches_sequential_steps_bit_for_bit(limit):
    """All candidates advance at once (the true-dynamics planner's replays); the frames must be
    those of stepping each one through the env, wall slides and truncation included."""
    env = _tworoom(max_episode_steps=limit)
    _place(env, [28.0, 20.0], door_y=30.0)  # beside the wall, below the door
    for a in ([1.0, 0.0], [1.0, 1.0]):
        env.step(a)
    snap = env.get_state()
    rng = np.random.default_rng(2)
    actions = rng.uniform(-1.5, 1.5, (40, 12, 2))
    actions[:10, :, 1] = 0.0  # straight into the wall face
    actions[10:20] = [1.0, 1.0]  # diagonal slides along it
    keep = [0, 4, 11]
    expected, expected_pos = [], []
    for seq in actions:
        env.set_state(snap)
        steps = [env.step(a) if i < 6 or limit is None else None for i, a in enumerate(seq)]
        if limit is not None:  # truncated after step 6 of 8 (t was 2): it keeps its last frame
            steps[6:] = [steps[5]] * 6
        expected.append([steps[i][0] for i in keep])
        expected_pos.append([steps[i][4]["pos"] for i in keep])
    got = replay_frames(env, snap, actions, keep)
    assert np.array_equal(env.replay_positions(snap, actions, keep), np.asarray(expected_pos))
    assert got.shape == (40, 3, 64, 64, 3) and got.dtype == np.uint8
    assert np.array_equal(got, np.asarray(expected))
    assert np.array_equal(env.get_state(), snap)  # the env is left at the snapshot
    assert not np.array_equal(got[:, 0], got[:, 2])  # the candidates did move
    with pytest.raises(ValueError, match="finite actions"):
        env.replay_frames(snap, actions[0], keep)
    with pytest.raises(ValueError, match="must index"):
        env.replay_frames(snap, actions, [12])


def test_replay_frames_loops_over_envs_without_a_batched_replay():
    env = make_env("gym:MountainCarContinuous-v0")
    env.reset(seed=0)
    snap = env.get_state()
    actions = np.random.default_rng(3).uniform(-1, 1, (2, 4, 1))
    got = replay_frames(env, snap, actions, [1, 3])
    for seq, frames in zip(actions, got, strict=True):
        env.set_state(snap)
        steps = [env.step(a)[0] for a in seq]
        assert np.array_equal(frames, np.stack([steps[1], steps[3]]))
    assert not np.array_equal(got[0], got[1])  # the two candidates went different ways


def test_tworoom_render_shape_dtype_and_content():
    env = TwoRoom()
    frame, info = env.reset(seed=0)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert env.render() is frame
    frame2 = env.step([1.0, 1.0])[0]
    assert env.render() is frame2 and not np.array_equal(frame, frame2)
    assert np.any(frame[:, 31:33] > 0)
    big = TwoRoom(TwoRoomConfig(render_size=96)).reset(seed=0)[0]
    assert big.shape == (96, 96, 3) and big.dtype == np.uint8
    # The agent is red, the wall grey: both present, in different pixels.
    red = (frame2[..., 0] > 100) & (frame2[..., 1] < 150)
    grey = (frame2[..., 0] == frame2[..., 1]) & (frame2[..., 0] > 100)
    assert red.any() and grey.any() and not (red & grey).any()


def test_tworoom_success_radius_and_inputs():
    env = TwoRoom()
    env.reset(seed=0)
    goal = np.array([10.0, 10.0])
    assert env.is_success(np.array([10.0, 14.4]), goal)
    assert not env.is_success(np.array([10.0, 14.6]), goal)
    _, info = env.reset(seed=0, options={"pos": [40.0, 40.0], "goal": [43.0, 43.0]})
    assert env.is_success(info, env.get_state()[2:4]) and info["is_success"]
    assert env.is_success(env.get_state(), {"pos": [42.0, 42.0]})
    assert env.state_vector(info).tolist() == [40.0, 40.0]
    assert env.goal_gap(np.array([13.0, 14.0]), goal) == {"distance_px": 5.0}


# --- PushT -------------------------------------------------------------------------------


def test_door_seeking_policy_crosses_rooms():
    env = TwoRoom()

    def crossing_rate(name: str) -> float:
        policy, crossed = make_policy(name, env), 0
        for episode in range(20):
            frame, info = env.reset(seed=episode)
            policy.reset(env, np.random.default_rng(episode))
            start_left = info["pos"][0] < 32
            seen = False
            for _ in range(50):
                frame, _, _, _, info = env.step(policy(frame, info))
                seen |= (info["pos"][0] < 32) != start_left
            crossed += seen
        return crossed / 20

    # Measured on 50 episodes: 0.98 door seeking, 0.02 uniform random.
    assert crossing_rate("door_seeking") >= 0.8 and crossing_rate("random") < 0.3


def test_straight_door_seeking_runs_into_the_wall_and_default_episodes_are_unchanged():
    """With straight_prob the agent meets the wall head on (the data then shows moves the wall
    stops); at the default 0 the episodes are those of the plain policy, draw for draw."""
    env = TwoRoom()

    def rollout(**kwargs) -> tuple[np.ndarray, int]:
        policy = make_policy("door_seeking", env, **kwargs)
        frame, info = env.reset(seed=5)
        policy.reset(env, np.random.default_rng(5))
        path, stopped = [info["pos"]], 0
        for _ in range(200):
            action = policy(frame, info)
            before = info["pos"]
            frame, _, _, _, info = env.step(action)
            path.append(info["pos"])
            wanted = before[0] + env.config.step_size * np.clip(action[0], -1, 1)
            crosses = min(before[0], wanted) < 33 and max(before[0], wanted) > 31
            stopped += bool(crosses and abs(info["pos"][0] - wanted) > 0.5)
        return np.array(path), stopped

    plain, plain_stops = rollout()
    default, _ = rollout(straight_prob=0.0, edge_prob=0.0)
    assert np.array_equal(plain, default)
    _, straight_stops = rollout(straight_prob=1.0)
    assert plain_stops == 0 and straight_stops >= 10
    with pytest.raises(ValueError, match="straight_prob"):
        make_policy("door_seeking", env, straight_prob=1.5)


def test_door_edge_exploration_presses_on_the_wall_beside_the_door():
    """With edge_prob the agent goes to the wall just past a door edge and pushes on it there,
    sliding along it: many more steps the wall stops within 8 px of an edge, and some
    crossings at the edge itself."""
    env = TwoRoom()

    def counts(**kwargs) -> tuple[int, int]:
        policy = make_policy("door_seeking", env, **kwargs)
        stopped_near_edge = crossed_at_edge = 0
        for episode in range(30):
            frame, info = env.reset(seed=episode)
            policy.reset(env, np.random.default_rng(episode))
            for _ in range(100):
                action, before = policy(frame, info), info["pos"]
                frame, _, _, _, info = env.step(action)
                beyond_edge = abs(before[1] - info["door"][1]) - env.config.door_half_height
                wanted = before + env.config.step_size * np.clip(action, -1, 1)
                stopped = np.linalg.norm(wanted - info["pos"]) > 0.5 and abs(before[0] - 32) < 4
                stopped_near_edge += bool(stopped and 0 <= beyond_edge < 8)
                crossed = (before[0] < 32) != (info["pos"][0] < 32)
                crossed_at_edge += bool(crossed and beyond_edge > -1.5)
        return stopped_near_edge, crossed_at_edge

    plain_stops, plain_edge_crossings = counts()
    edge_stops, edge_crossings = counts(edge_prob=1.0)
    # Measured: 0 -> 513 stops near an edge, 0 -> 81 crossings at an edge (30 episodes).
    assert edge_stops >= 5 * max(plain_stops, 10)
    assert edge_crossings > plain_edge_crossings
    for bad in ({"edge_prob": -0.1}, {"edge_reach": 0.0}, {"edge_explore": 0}):
        with pytest.raises(ValueError, match="edge_"):
            make_policy("door_seeking", env, **bad)


# --- generic adapter, registry -------------------------------------------------------------


def test_gym_adapter_on_cartpole_and_pendulum():
    env = make_env("gym:CartPole-v1")
    frame, info = env.reset(seed=0)
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert env.action_dim == 2 and env.action_space.shape == (2,)
    frame2, reward, terminated, truncated, info = env.step(np.array([0.0, 1.0]))  # push right
    assert frame2.shape == frame.shape and reward == 1.0 and info["obs"].shape == (4,)
    assert env.state_vector(info).shape == (4,)
    snap = env.get_state()
    after = env.step(np.array([1.0, 0.0]))[4]["obs"]
    env.set_state(snap)
    assert np.array_equal(env.step(np.array([1.0, 0.0]))[4]["obs"], after)
    with pytest.raises(NotImplementedError):
        env.is_success(info, info)

    # MountainCar draws with primitives only: Pendulum loads a PNG asset through pygame's
    # libpng, which fails once another library in the process has loaded a different zlib.
    car = GymEnvAdapter(
        "MountainCarContinuous-v0", success_fn=lambda cur, goal: cur["obs"][0] > goal
    )
    _, info = car.reset(seed=0)
    assert car.action_dim == 1
    _, _, _, _, info = car.step(np.array([5.0]))  # clipped to the box [-1, 1]
    assert car.is_success(info, -2.0) and not car.is_success(info, 0.6)


def test_registry_and_policy_errors():
    pusht = PushT()
    with pytest.raises(ValueError, match="tworoom, pusht, gym:<env_id>"):
        make_env("wall")
    with pytest.raises(ValueError, match="valid names"):
        make_env("gym:")
    assert make_env("tworoom", render_size=32).reset(seed=0)[0].shape == (32, 32, 3)
    with pytest.raises(ValueError, match="valid names"):
        make_policy("greedy", TwoRoom())
    with pytest.raises(ValueError, match="TwoRoom"):
        make_policy("door_seeking", pusht)
    for env in (TwoRoom(), pusht, make_env("gym:MountainCarContinuous-v0")):
        assert isinstance(env, WorldEnv)


def test_importing_envs_loads_no_simulator():
    simulators = "{'pygame', 'gym_pusht', 'pymunk'}"
    code = f"import sys, vjepa2.envs; print(sorted({simulators} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
