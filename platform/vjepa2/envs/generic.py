"""Any Gymnasium env id behind the platform's interface: rendered frames as observations.

Discrete actions are exposed as a ``Box(0, 1, (n,))`` score vector whose argmax is the action
taken, so datasets and planners always see float action vectors (a uniform sample of the box
picks each action with equal probability; a one-hot vector picks that action).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

SuccessFn = Callable[[Any, Any], bool]


class GymEnvAdapter:
    """``info["obs"]`` holds the env's own observation; ``state_vector`` flattens it.

    ``get_state``/``set_state`` copy ``env.unwrapped.state`` where the env keeps one (the
    classic-control envs do); the TimeLimit step counter is not part of it.
    """

    def __init__(self, env_id: str, success_fn: SuccessFn | None = None, **make_kwargs: Any):
        self.env_id = env_id
        self.env = gym.make(env_id, render_mode="rgb_array", **make_kwargs)
        self.success_fn = success_fn
        space = self.env.action_space
        if isinstance(space, gym.spaces.Box):
            self._discrete = False
            self.action_space = gym.spaces.Box(
                space.low.reshape(-1), space.high.reshape(-1), dtype=np.float32
            )
        elif isinstance(space, gym.spaces.Discrete):
            self._discrete = True
            self.action_space = gym.spaces.Box(0.0, 1.0, (int(space.n),), np.float32)
        else:
            raise TypeError(f"{env_id}: only Box and Discrete action spaces, got {space}")
        self.action_dim = int(self.action_space.shape[0])
        self._frame: np.ndarray | None = None

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        self._frame = self._render()
        return self._frame, {**info, "obs": obs}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(self._env_action(action))
        self._frame = self._render()
        return self._frame, float(reward), bool(terminated), bool(truncated), {**info, "obs": obs}

    def render(self) -> np.ndarray:
        if self._frame is None:
            raise RuntimeError(f"{self.env_id}: render before reset()")
        return self._frame

    def close(self) -> None:
        self.env.close()

    def get_state(self) -> np.ndarray:
        return np.asarray(self._state_holder().state, np.float64).reshape(-1).copy()

    def set_state(self, state: np.ndarray) -> None:
        holder = self._state_holder()
        holder.state = np.asarray(state, np.float64).reshape(np.shape(holder.state)).copy()
        self._frame = self._render()

    def state_vector(self, info: dict[str, Any]) -> np.ndarray:
        obs = info.get("obs")
        if isinstance(obs, np.ndarray) and np.issubdtype(obs.dtype, np.number):
            return obs.astype(np.float32).reshape(-1)
        return np.zeros(0, np.float32)

    def is_success(self, current: Any, goal: Any) -> bool:
        if self.success_fn is None:
            raise NotImplementedError(f"{self.env_id}: no success_fn was given to GymEnvAdapter")
        return bool(self.success_fn(current, goal))

    def goal_gap(self, current: Any, goal: Any) -> dict[str, float]:
        """Nothing to report: a wrapped environment's success test is a black box."""
        return {}

    def _env_action(self, action: np.ndarray) -> Any:
        a = np.asarray(action, np.float32).reshape(-1)
        if a.shape != (self.action_dim,):
            raise ValueError(f"{self.env_id}: action must have {self.action_dim} entries")
        if self._discrete:
            return int(self.env.action_space.start + np.argmax(a))
        a = np.clip(a, self.action_space.low, self.action_space.high)
        return a.reshape(self.env.action_space.shape)

    def _render(self) -> np.ndarray:
        frame = np.asarray(self.env.render())
        if frame.ndim != 3 or frame.shape[2] != 3:
            raise RuntimeError(f"{self.env_id}: render() gave shape {frame.shape}, not [H, W, 3]")
        return frame.astype(np.uint8, copy=False)

    def _state_holder(self) -> Any:
        holder = self.env.unwrapped
        if getattr(holder, "state", None) is None:
            raise NotImplementedError(f"{self.env_id}: env keeps no `state` to snapshot")
        return holder
