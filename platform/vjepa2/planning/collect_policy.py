"""A data-collection policy that plans with a world model: data on what the planner asks about.

A world model trained on a scripted policy's episodes learns the futures that policy makes. A
planner then asks it about other action sequences, and on PushT the models rank what those do
to the scene barely better than chance (docs/results.md, 2026-12-08), however well they
predict the policy's own futures. Episodes collected by the planner itself, with the model
trained so far, hold exactly the moves it proposes and what they really did: the
data-aggregation loop of model-based RL (collect with the model, train on the union, repeat).

Each goal is made as the planning protocol makes one (``make_episode``): the scripted expert
runs ``goal_offset`` steps from the current state in the episode's own environment, which is
then put back, and its last frame is the goal. The planner chases it with receding-horizon CEM
(the ``cem`` agent of ``jobs.evaluate``) for ``2 x goal_offset`` steps, the protocol's budget,
then a new goal is drawn from wherever the agent got to. ``noise`` adds Gaussian noise to each
executed action (in units of the action box's half-width) for wider coverage. Deterministic by
the collection seed: the expert's draws and CEM's generator come from the policy's ``rng``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vjepa2.planning.cem import CEMConfig
from vjepa2.planning.episodes import episode_from_here

# One loaded model per checkpoint and process: the collector builds its policy per episode.
_MODELS: dict[str, Any] = {}


def _model(checkpoint: str) -> Any:
    if checkpoint not in _MODELS:
        from vjepa2.eval.planning import load_planning_model

        _MODELS[checkpoint] = load_planning_model(checkpoint)
    return _MODELS[checkpoint]


class PlannerPolicy:
    """Receding-horizon CEM on ``checkpoint``'s world model toward expert-made goals."""

    def __init__(
        self,
        checkpoint: str,
        goal_offset: int = 25,
        noise: float = 0.0,
        num_candidates: int = 96,
        iterations: int = 10,
        horizon: int = 5,
        cost: str = "sum",
        expert: str = "default",
    ) -> None:
        if not Path(checkpoint).is_file():
            raise ValueError(f"planner: checkpoint not found: {checkpoint}")
        if goal_offset < 1 or noise < 0:
            raise ValueError(
                f"planner: need goal_offset >= 1 and noise >= 0, got {goal_offset}, {noise}"
            )
        if expert == "planner":
            raise ValueError("planner: the expert that makes the goals must be a scripted policy")
        from vjepa2.planning.agents import PlannerAgent

        self.cfg = CEMConfig(
            num_candidates=num_candidates, iterations=iterations, horizon=horizon, cost=cost
        )
        self.agent = PlannerAgent(_model(checkpoint), self.cfg, name="planner")
        self.goal_offset, self.noise, self.expert = goal_offset, noise, expert

    def reset(self, env: Any, rng: np.random.Generator) -> None:
        if not hasattr(env, "get_state"):
            raise ValueError(
                f"planner: the env must hand out snapshots (get_state) and take them back "
                f"(reset(options={{'state': ...}})) to make goals; {type(env).__name__} cannot"
            )
        self._env, self._rng = env, rng
        self._low = np.asarray(env.action_space.low, np.float32)
        self._high = np.asarray(env.action_space.high, np.float32)
        self._noise_scale = self.noise * (self._high - self._low) / 2  # half-widths of the box
        self._queue: list[np.ndarray] = []
        self._left = 0  # steps before the next goal

    def _new_goal(self) -> None:
        env = self._env
        start = env.get_state().copy()
        _, info = env.reset(options={"state": start})  # the expert reads the info
        seed = int(self._rng.integers(2**31))  # seeds CEM's generator for this goal
        episode = episode_from_here(
            env, seed, info, goal_offset=self.goal_offset, policy=self.expert, rng=self._rng
        )
        env.reset(options={"state": start})  # back where the collector left it
        if not np.array_equal(env.get_state(), start):
            raise ValueError(
                f"planner: {type(env).__name__} does not return to a snapshot through "
                "reset(options={'state': ...}), so the goal look-ahead would move the episode"
            )
        self.agent.reset(episode)
        self._queue, self._left = [], 2 * self.goal_offset

    def __call__(self, frame: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if self._left <= 0:
            self._new_goal()
        if not self._queue:
            self.agent.observe_state(self._env.get_state())
            plan = self.agent.act(frame)
            self._queue = list(np.asarray(plan, np.float32).reshape(-1, self._low.size))
        self._left -= 1
        action = self._queue.pop(0)
        if self.noise:
            action = action + self._noise_scale * self._rng.standard_normal(action.shape)
        return np.clip(action, self._low, self._high).astype(np.float32)
