"""What the platform expects of an environment, and how to build one by name.

Every environment hands out RGB frames as observations and Box actions as float vectors, so the
collectors, datasets and planners never branch on which simulator they drive.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

ENV_NAMES = ("tworoom", "pusht", "gym:<env_id>")


@runtime_checkable
class WorldEnv(Protocol):
    """The surface the rest of the platform uses.

    ``get_state()`` is an exact snapshot (1-D float64 array): ``set_state`` of it followed by the
    same actions reproduces the same frames and states bit for bit. ``state_vector(info)`` is
    the small true state stored beside the videos as ``states``; a snapshot's leading entries
    are that vector, so ``is_success`` takes either, or an ``info`` dict.
    """

    action_space: gym.spaces.Box
    action_dim: int

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]: ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]: ...

    def render(self) -> np.ndarray: ...

    def get_state(self) -> np.ndarray: ...

    def set_state(self, state: np.ndarray) -> None: ...

    def state_vector(self, info: dict[str, Any]) -> np.ndarray: ...

    def is_success(
        self, current: dict[str, Any] | np.ndarray, goal: dict[str, Any] | np.ndarray
    ) -> bool: ...

    # How far ``current`` is from ``goal`` in the success criterion's own terms (px, degrees).
    def goal_gap(
        self, current: dict[str, Any] | np.ndarray, goal: dict[str, Any] | np.ndarray
    ) -> dict[str, float]: ...

    def close(self) -> None: ...


def checked_replay(
    name: str, actions: np.ndarray, keep: list[int], t: int, limit: int | None
) -> tuple[np.ndarray, int]:
    """An env's own replay input, checked: actions [K, T, 2] as float64, and how many of their
    steps run from step ``t`` under the episode limit (a truncated replay stays where it
    stopped, as ``step`` would; the first step always runs)."""
    acts = np.asarray(actions, np.float64)
    if acts.ndim != 3 or acts.shape[2] != 2 or not np.all(np.isfinite(acts)):
        raise ValueError(f"{name} replay takes finite actions [K, T, 2], got {acts.shape}")
    if not all(0 <= i < acts.shape[1] for i in keep):
        raise ValueError(f"keep {keep} must index the {acts.shape[1]} steps")
    steps = acts.shape[1] if limit is None else min(acts.shape[1], max(1, limit - t))
    return acts, steps


def replay_frames(env: WorldEnv, state: np.ndarray, actions: np.ndarray, keep: list[int]):
    """Frames [K, len(keep), H, W, 3]: each of K action sequences [K, T, d] replayed from the
    snapshot ``state``, the frame after each step in ``keep`` kept (a terminated or truncated
    replay stays on its last frame). An env with its own batched ``replay_frames`` (TwoRoom)
    runs all K at once; any other replays them one by one. ``env`` ends somewhere unspecified:
    give it a private copy."""
    if hasattr(env, "replay_frames"):
        return env.replay_frames(state, actions, keep)
    return np.asarray(_replay_each(env, state, actions, keep, lambda frame: frame))


def replay_frames_and_states(
    env: WorldEnv, state: np.ndarray, actions: np.ndarray, keep: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """``replay_frames`` and the true state after each kept step, [K, len(keep), S]: the
    state vector, which leads every snapshot (PushT's own batched replay), or the whole
    snapshot (any other env, one sequence at a time)."""
    if hasattr(env, "replay_frames_and_poses"):
        return env.replay_frames_and_poses(state, actions, keep)
    both = _replay_each(env, state, actions, keep, lambda frame: (frame, env.get_state().copy()))
    frames = np.asarray([[f for f, _ in seq] for seq in both])
    return frames, np.asarray([[s for _, s in seq] for seq in both])


def _replay_each(env: WorldEnv, state: np.ndarray, actions: np.ndarray, keep: list[int], read):
    """Per action sequence, ``read(frame)`` after each kept step (a terminated or truncated
    replay stays where it stopped)."""
    out = []
    for seq in np.asarray(actions):
        env.set_state(state)
        frame, kept, over = env.render(), {}, False
        for i, a in enumerate(seq):
            if not over:
                frame, _, terminated, truncated, _ = env.step(a)
                over = terminated or truncated
            if i in keep:
                kept[i] = read(frame)
        out.append([kept[i] for i in keep])
    return out


def make_env(name: str, **kwargs: Any) -> WorldEnv:
    """``"tworoom"`` and ``"pusht"`` take their config's fields as keywords; ``"gym:<env_id>"``
    takes ``success_fn`` and ``gym.make`` keywords."""
    if name == "tworoom":
        from vjepa2.envs.tworoom import TwoRoom, TwoRoomConfig

        return TwoRoom(TwoRoomConfig(**kwargs))
    if name == "pusht":
        from vjepa2.envs.pusht import PushT, PushTConfig

        return PushT(PushTConfig(**kwargs))
    if name.startswith("gym:") and len(name) > len("gym:"):
        from vjepa2.envs.generic import GymEnvAdapter

        return GymEnvAdapter(name[len("gym:") :], **kwargs)
    raise ValueError(f"unknown environment {name!r}; valid names: {', '.join(ENV_NAMES)}")
