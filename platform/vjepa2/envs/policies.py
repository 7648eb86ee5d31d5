"""Data-collection policies: seeded, noisy, and shaped so the interesting things happen.

A uniform random walk rarely leaves its room in TwoRoom and rarely touches the block in PushT,
so a world model trained on it never sees a crossing or a push. The scripted policies below go
for the door and for the block, with enough noise that the data still covers the action space.
Each is ``policy.reset(env, rng)`` once per episode, then ``policy(frame, info) -> action``.
``planner`` (``vjepa2.planning.collect_policy``) plans with a world model instead, to collect
what a planner's own moves do.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

POLICY_NAMES = ("random", "door_seeking", "block_pushing", "planner", "default")


class Policy(Protocol):
    def reset(self, env: Any, rng: np.random.Generator) -> None: ...

    def __call__(self, frame: np.ndarray, info: dict[str, Any]) -> np.ndarray: ...


class UniformRandomPolicy:
    """Uniform over the action box, each draw held for ``repeat`` steps (longer excursions)."""

    def __init__(self, repeat: int = 1):
        if repeat < 1:
            raise ValueError("repeat must be >= 1")
        self.repeat = repeat

    def reset(self, env: Any, rng: np.random.Generator) -> None:
        self._low = np.asarray(env.action_space.low, np.float32)
        self._high = np.asarray(env.action_space.high, np.float32)
        self._rng = rng
        self._held, self._left = self._low, 0

    def __call__(self, frame: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        if self._left == 0:
            self._held = self._rng.uniform(self._low, self._high).astype(np.float32)
            self._left = self.repeat
        self._left -= 1
        return self._held.copy()


class DoorSeekingPolicy:
    """TwoRoom: to a random target, through the door when the target is in the other room.

    Waypoints: just before the door, just past it, then the target; Gaussian action noise on
    top. A waypoint not reached in ``patience`` steps (noise pinned the agent to the wall) is
    given up and a new target drawn.

    With probability ``straight_prob`` a target in the other room is headed for in a straight
    line instead, ignoring the door: the agent runs into the wall and slides along it, and
    gives up after ``straight_patience`` steps. Without such episodes a dataset never shows
    the wall stopping a move (the waypoints always lead through the door), and a world model
    trained on it predicts walking through walls, which CEM then exploits.

    With probability ``edge_prob`` a new target is instead a point beside the wall just past
    one of the door's edges (``edge_reach`` px beyond it at most), followed by
    ``edge_explore`` steps of random actions that mostly press into the wall while sliding
    along it. CEM tries every action sequence there, and a model that has only seen
    purposeful moves near the edges lets some of them through the wall a few pixels beside
    the door (docs/results.md, 2026-12-05 fourth).

    At 0 (the defaults) neither option draws a random number, so the default episodes are
    unchanged.
    """

    def __init__(
        self,
        noise: float = 0.3,
        cross_prob: float = 0.8,
        tol: float = 1.5,
        patience: int = 60,
        straight_prob: float = 0.0,
        straight_patience: int = 20,
        edge_prob: float = 0.0,
        edge_reach: float = 8.0,
        edge_explore: int = 12,
    ):
        if not 0.0 <= straight_prob <= 1.0 or straight_patience < 1:
            raise ValueError("door_seeking: straight_prob in [0, 1], straight_patience >= 1")
        if not 0.0 <= edge_prob <= 1.0 or edge_reach <= 0 or edge_explore < 1:
            raise ValueError("door_seeking: edge_prob in [0, 1], edge_reach > 0, edge_explore >= 1")
        self.noise, self.cross_prob, self.tol, self.patience = noise, cross_prob, tol, patience
        self.straight_prob, self.straight_patience = straight_prob, straight_patience
        self.edge_prob, self.edge_reach, self.edge_explore = edge_prob, edge_reach, edge_explore

    def reset(self, env: Any, rng: np.random.Generator) -> None:
        self._cfg = env.config
        self._rng = rng
        self._waypoints: list[np.ndarray] = []
        self._waited = 0
        self._limit = self.patience  # steps allowed for the current waypoint
        self._exploring = False  # at a door edge: random actions for the current waypoint
        self._explore_left = 0

    def __call__(self, frame: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        pos = np.asarray(info["pos"], np.float64)
        door = np.asarray(info["door"], np.float64)
        if self._waypoints and (
            np.linalg.norm(self._waypoints[0] - pos) < self.tol or self._waited >= self._limit
        ):
            if self._waited >= self._limit:
                self._waypoints = []
            else:
                self._waypoints.pop(0)
                if self._exploring:  # reached a door edge
                    self._explore_left = self.edge_explore
            self._waited, self._exploring = 0, False
        if self._explore_left > 0:
            self._explore_left -= 1
            # Mostly pressing into the wall, sliding up and down it: the moves the wall stops
            # beside the door and the door lets through, within a few pixels of each other.
            toward = 1.0 if pos[0] < door[0] else -1.0
            x, y = toward * self._rng.uniform(-0.25, 1.0), self._rng.uniform(-1.0, 1.0)
            return np.array([x, y], np.float32)
        if not self._waypoints and self.edge_prob > 0 and self._rng.random() < self.edge_prob:
            self._waypoints, self._exploring = [self._door_edge(pos, door)], True
            self._limit = self.patience
        if not self._waypoints:
            self._waypoints = self._plan(pos, door)
            self._limit = self.patience
            straight = self.straight_prob > 0 and self._rng.random() < self.straight_prob
            if straight and len(self._waypoints) > 1:
                self._waypoints = self._waypoints[-1:]  # through the wall, if it let us
                self._limit = self.straight_patience
        self._waited += 1
        step = (self._waypoints[0] - pos) / self._cfg.step_size
        a = np.clip(step, -1.0, 1.0) + self.noise * self._rng.standard_normal(2)
        return np.clip(a, -1.0, 1.0).astype(np.float32)

    def _door_edge(self, pos: np.ndarray, door: np.ndarray) -> np.ndarray:
        """A point on the agent's side, beside the wall, just above or below the door."""
        cfg, rng = self._cfg, self._rng
        side = -1.0 if pos[0] < door[0] else 1.0
        x = door[0] + side * (cfg.wall_half_width + 1.0 + rng.uniform(0.0, 3.0))
        beyond = cfg.door_half_height + rng.uniform(0.0, self.edge_reach)
        y = door[1] + (beyond if rng.random() < 0.5 else -beyond)
        return np.array([x, np.clip(y, cfg.margin, cfg.size - cfg.margin)])

    def _plan(self, pos: np.ndarray, door: np.ndarray) -> list[np.ndarray]:
        cfg, rng = self._cfg, self._rng
        door_x, door_y = door
        left = pos[0] < door_x
        cross = rng.random() < self.cross_prob
        target_left = left != cross
        gap = cfg.wall_half_width + 1.0
        lo_x, hi_x = (
            (cfg.margin, door_x - gap) if target_left else (door_x + gap, cfg.size - cfg.margin)
        )
        target = np.array([rng.uniform(lo_x, hi_x), rng.uniform(cfg.margin, cfg.size - cfg.margin)])
        if not cross:
            return [target]
        side = -1.0 if left else 1.0
        before = np.array([door_x + side * (gap + 2.0), door_y])
        after = np.array([door_x - side * (gap + 2.0), door_y])
        return [before, after, target]


class BlockPushingPolicy:
    """PushT: go behind the block as seen from the agent, then push through its centre.

    The push direction is the agent-to-block direction turned by up to ``max_turn`` radians,
    so the approach point lies on the agent's side and the way there rarely crosses the block.

    ``noise_max`` set draws each episode's noise uniformly from [``noise``, ``noise_max``]: one
    dataset then holds clean pushes and the jerky, half-random motion a planner's candidates
    make, which a model trained on clean pushes alone has never seen.
    """

    def __init__(
        self,
        noise: float = 0.25,
        noise_max: float | None = None,
        behind: float = 90.0,
        push_through: float = 60.0,
        push_steps: tuple[int, int] = (6, 15),
        max_turn: float = np.pi / 3,
        tol: float = 20.0,
        patience: int = 25,
    ):
        if noise < 0 or (noise_max is not None and noise_max < noise):
            raise ValueError(
                f"block_pushing: need 0 <= noise <= noise_max, got noise={noise}, "
                f"noise_max={noise_max}"
            )
        self.noise, self.behind, self.push_through = noise, behind, push_through
        self.noise_max = noise_max
        self.push_steps, self.max_turn, self.tol, self.patience = (
            push_steps,
            max_turn,
            tol,
            patience,
        )

    def reset(self, env: Any, rng: np.random.Generator) -> None:
        self._scale = env.config.action_scale
        self._rng = rng
        self._phase, self._left = "plan", 0
        self._dir = np.zeros(2)
        self._target = np.zeros(2)
        # Drawn only when asked for, so datasets collected without a range stay bit-for-bit.
        self._noise = (
            self.noise if self.noise_max is None else rng.uniform(self.noise, self.noise_max)
        )

    def __call__(self, frame: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        agent = np.asarray(info["agent_pos"], np.float64)
        com = np.asarray(info["block_com"], np.float64)
        rng = self._rng
        if self._phase == "plan":
            to_block = com - agent
            angle = np.arctan2(to_block[1], to_block[0]) + rng.uniform(-1, 1) * self.max_turn
            self._dir = np.array([np.cos(angle), np.sin(angle)])
            self._phase, self._left = "approach", self.patience
        if self._phase == "approach":
            waypoint = com - self.behind * self._dir
            self._left -= 1
            if np.linalg.norm(waypoint - agent) < self.tol or self._left <= 0:
                self._phase, self._left = "push", int(rng.integers(*self.push_steps, endpoint=True))
                self._target = com + self.push_through * self._dir
        if self._phase == "push":
            waypoint = self._target
            self._left -= 1
            if self._left <= 0:
                self._phase = "plan"
        # Target the waypoint itself: the PD loop then closes most of the gap without overshoot.
        a = (waypoint - agent) / self._scale + self._noise * rng.standard_normal(2)
        return np.clip(a, -1.0, 1.0).astype(np.float32)


def make_policy(name: str, env: Any, **kwargs: Any) -> Policy:
    """``default`` picks the scripted policy made for ``env``, else uniform random."""
    from vjepa2.envs.pusht import PushT
    from vjepa2.envs.tworoom import TwoRoom

    if name == "default":
        name = (
            "door_seeking"
            if isinstance(env, TwoRoom)
            else "block_pushing"
            if isinstance(env, PushT)
            else "random"
        )
    if name == "random":
        return UniformRandomPolicy(**kwargs)
    if name == "door_seeking":
        if not isinstance(env, TwoRoom):
            raise ValueError("policy 'door_seeking' needs a TwoRoom env")
        return DoorSeekingPolicy(**kwargs)
    if name == "block_pushing":
        if not isinstance(env, PushT):
            raise ValueError("policy 'block_pushing' needs a PushT env")
        return BlockPushingPolicy(**kwargs)
    if name == "planner":  # CEM on a world model (torch): imported only when asked for
        from vjepa2.planning.collect_policy import PlannerPolicy

        return PlannerPolicy(**kwargs)
    raise ValueError(f"unknown policy {name!r}; valid names: {', '.join(POLICY_NAMES)}")
