"""TwoRoom: a point agent in a square arena split by a wall with one door (PLDM / DINO-WM "Wall").

Coordinates are pixels of the 64 px arena, ``x`` to the right (image column) and ``y`` down
(image row). The wall is the slab ``|x - wall_x| <= wall_half_width``; the door is the part of
it with ``|y - door_y| <= door_half_height`` (default 8 px tall, on whole pixels so the rendered
gap matches the geometry). The agent is a point, so it passes whenever its ``y`` lies in that
range, edges included; the wall blocks only its open interior, so the agent may rest on, and
slide along, its faces. Motion is swept against the wall, so no step can tunnel through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from vjepa2.envs.registry import checked_replay

_AGENT_RGB = np.array([230, 60, 60], np.float32)
_WALL_RGB = np.array([200, 200, 200], np.uint8)
_TOUCH_CLEARANCE = 1.0  # random starts and goals keep this far from the wall faces


@dataclass
class TwoRoomConfig:
    size: float = 64.0  # arena side, px
    margin: float = 2.0  # the agent stays in [margin, size - margin] on both axes
    wall_x: float = 32.0
    wall_half_width: float = 1.0
    door_half_height: float = 4.0
    door_y: float = 32.0  # used when random_door is False
    random_door: bool = True  # door centre drawn per reset, whole px in door_y_range
    door_y_range: tuple[float, float] = (16.0, 48.0)
    step_size: float = 2.0  # pos += step_size * clip(a, -1, 1)
    goal_in_other_room: bool = True
    success_radius: float = 4.5
    render_size: int = 64
    agent_radius: float = 2.0  # drawn only; the dynamics treat the agent as a point
    max_episode_steps: int | None = None  # None: never truncate, the collector decides

    def __post_init__(self) -> None:
        lo, hi = self.door_y_range
        if not (0 < self.margin < self.wall_x - self.wall_half_width - _TOUCH_CLEARANCE):
            raise ValueError("tworoom: margin must leave room between the border and the wall")
        if not (self.wall_x + self.wall_half_width + _TOUCH_CLEARANCE < self.size - self.margin):
            raise ValueError("tworoom: the wall must lie inside the arena")
        if self.door_half_height <= 0 or self.step_size <= 0 or self.render_size < 8:
            raise ValueError("tworoom: door_half_height, step_size > 0 and render_size >= 8")
        if not (self.margin <= lo <= hi <= self.size - self.margin):
            raise ValueError("tworoom: door_y_range must lie inside the arena")


class TwoRoom(gym.Env):
    """Gymnasium env: observations are ``uint8 [render_size, render_size, 3]`` frames.

    ``get_state()`` is ``[x, y, goal_x, goal_y, door_y, t]``; ``state_vector(info)`` is
    ``[x, y]``. ``reset(options=...)`` accepts ``pos``, ``goal``, ``door_y`` or a whole
    ``state``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: TwoRoomConfig | None = None, render_mode: str = "rgb_array"):
        if render_mode != "rgb_array":
            raise ValueError("TwoRoom renders only 'rgb_array'")
        self.config = cfg = config or TwoRoomConfig()
        self.render_mode = render_mode
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_dim = 2
        r = cfg.render_size
        self.observation_space = gym.spaces.Box(0, 255, (r, r, 3), np.uint8)
        self._pos = np.full(2, cfg.wall_x - cfg.wall_half_width - _TOUCH_CLEARANCE)
        self._goal = self._pos.copy()
        self._door_y = cfg.door_y
        self._t = 0
        self._background = self._draw_background()
        self._frame = self._draw()

    # --- gymnasium API -------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "state" in options:
            self.set_state(options["state"])
            return self._frame, self._info()
        cfg, rng = self.config, self.np_random
        if "door_y" in options:
            door_y = float(options["door_y"])
        elif cfg.random_door:
            door_y = float(rng.integers(int(cfg.door_y_range[0]), int(cfg.door_y_range[1]) + 1))
        else:
            door_y = cfg.door_y
        if "pos" in options:
            pos = np.asarray(options["pos"], np.float64)
            left = bool(pos[0] < cfg.wall_x)
        else:
            left = bool(rng.integers(2))
            pos = self._sample_in_room(left)
        if "goal" in options:
            goal = options["goal"]
        else:
            goal_left = (not left) if cfg.goal_in_other_room else bool(rng.integers(2))
            goal = self._sample_in_room(goal_left)
        self.set_state(np.array([*np.asarray(pos, float), *np.asarray(goal, float), door_y, 0]))
        return self._frame, self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        a = np.asarray(action, np.float64).reshape(2)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"TwoRoom action must be finite, got {a}")
        cfg = self.config
        self._pos = self._move(self._pos[None], a[None])[0]
        self._t += 1
        self._frame = self._draw()
        info = self._info()
        reward = -float(np.linalg.norm(self._pos - self._goal))
        limit = cfg.max_episode_steps
        return self._frame, reward, False, limit is not None and self._t >= limit, info

    def render(self) -> np.ndarray:
        return self._frame

    # --- platform API --------------------------------------------------------------------

    def get_state(self) -> np.ndarray:
        return np.array([*self._pos, *self._goal, self._door_y, self._t], np.float64)

    def set_state(self, state: np.ndarray) -> None:
        s = np.asarray(state, np.float64)
        if s.shape != (6,):
            raise ValueError(f"TwoRoom state is [x, y, goal_x, goal_y, door_y, t], got {s.shape}")
        low, high = self.config.margin, self.config.size - self.config.margin
        for name, p in (("pos", s[0:2]), ("goal", s[2:4])):
            if not np.all((low <= p) & (p <= high)):
                raise ValueError(f"TwoRoom {name} {p} lies outside the arena [{low}, {high}]")
            if any(bool(np.all((lo < p) & (p < hi))) for lo, hi in self._blocked_boxes(s[4])):
                raise ValueError(f"TwoRoom {name} {p} lies inside the wall")
        if s[4] != self._door_y:
            self._door_y = float(s[4])
            self._background = self._draw_background()
        self._pos, self._goal, self._t = s[0:2].copy(), s[2:4].copy(), int(s[5])
        self._frame = self._draw()

    def replay_frames(self, state: np.ndarray, actions: np.ndarray, keep: list[int]) -> np.ndarray:
        """Frames [K, len(keep), H, W, 3] after steps ``keep`` of each of K action sequences
        [K, T, 2] from the snapshot ``state``, all K advanced at once; ``step`` runs the same
        dynamics one at a time, so the frames are those K sequential replays would give. The
        env is left at ``state``."""
        at = self.replay_positions(state, actions, keep)
        return np.stack([[self._draw(p) for p in at[:, j]] for j in range(len(keep))], axis=1)

    def replay_positions(
        self, state: np.ndarray, actions: np.ndarray, keep: list[int]
    ) -> np.ndarray:
        """``replay_frames``' agent positions, [K, len(keep), 2], without drawing frames."""
        self.set_state(state)
        acts, steps = checked_replay(
            "TwoRoom", actions, keep, self._t, self.config.max_episode_steps
        )
        start = self._pos.copy()
        pos, at = np.repeat(start[None], len(acts), 0), {}
        for i in range(acts.shape[1]):
            if i < steps:
                pos = self._move(pos, acts[:, i])
            if i in keep:
                at[i] = pos.copy()
        self._pos = start
        return np.stack([at[i] for i in keep], axis=1)

    def state_vector(self, info: dict[str, Any]) -> np.ndarray:
        return np.asarray(info["pos"], np.float32).copy()

    def is_success(
        self, current: dict[str, Any] | np.ndarray, goal: dict[str, Any] | np.ndarray
    ) -> bool:
        return self.goal_gap(current, goal)["distance_px"] <= self.config.success_radius

    def goal_gap(
        self, current: dict[str, Any] | np.ndarray, goal: dict[str, Any] | np.ndarray
    ) -> dict[str, float]:
        """The success criterion's term: the agent's distance to the goal."""
        return {"distance_px": float(np.linalg.norm(_position(current) - _position(goal)))}

    # --- geometry ------------------------------------------------------------------------

    def _blocked_boxes(self, door_y: float | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
        cfg = self.config
        door_y = self._door_y if door_y is None else door_y
        x0, x1 = cfg.wall_x - cfg.wall_half_width, cfg.wall_x + cfg.wall_half_width
        d0, d1 = door_y - cfg.door_half_height, door_y + cfg.door_half_height
        # Extended past the arena so the border never opens a gap around the wall's ends.
        return [
            (np.array([x0, -cfg.size]), np.array([x1, d0])),
            (np.array([x0, d1]), np.array([x1, 2 * cfg.size])),
        ]

    def _move(self, pos: np.ndarray, action: np.ndarray) -> np.ndarray:
        """One step of the dynamics for a batch: positions [B, 2], actions [B, 2]."""
        cfg = self.config
        lo, hi = cfg.margin, cfg.size - cfg.margin
        target = np.clip(pos + cfg.step_size * np.clip(action, -1.0, 1.0), lo, hi)
        return np.clip(self._sweep(pos, target - pos), lo, hi)

    def _sweep(self, p: np.ndarray, d: np.ndarray) -> np.ndarray:
        """Move each of ``p`` [B, 2] by ``d`` [B, 2], stopping on the first wall face met and
        sliding along it."""
        p, d = p.astype(np.float64), d.astype(np.float64)
        end = p + d
        # Only a move whose x-range overlaps the wall's slab can meet a face; the rest (most
        # steps) skip the box tests, which cost ~3x a whole step at batch size 1.
        cfg = self.config
        x0, x1 = cfg.wall_x - cfg.wall_half_width, cfg.wall_x + cfg.wall_half_width
        near = (np.minimum(p[:, 0], end[:, 0]) < x1) & (np.maximum(p[:, 0], end[:, 0]) > x0)
        if near.any():
            end[near] = self._sweep_near_wall(p[near], d[near])
        return end

    def _sweep_near_wall(self, p: np.ndarray, d: np.ndarray) -> np.ndarray:
        """``_sweep``'s box tests; works in place on ``p`` and ``d`` (give it copies)."""
        rows = np.arange(len(p))
        moving = np.ones(len(p), bool)
        for _ in range(3):  # the move, then at most one slide per axis
            t, axis, hit = np.full(len(p), np.inf), np.zeros(len(p), int), np.zeros(len(p), bool)
            lo_hit, hi_hit = np.zeros_like(p), np.zeros_like(p)
            for lo, hi in self._blocked_boxes():
                t_box, axis_box, hit_box = _entry(p, d, lo, hi)
                first = hit_box & moving & (~hit | (t_box < t))  # ties: the earlier box
                t, axis = np.where(first, t_box, t), np.where(first, axis_box, axis)
                hit |= first
                lo_hit[first], hi_hit[first] = lo, hi
            free = moving & ~hit
            p[free] += d[free]
            moving &= hit
            if not moving.any():
                break
            # Snap onto the face: rounding in p + t*d must not leave the agent inside the wall,
            # which would let the next step start behind the face.
            t = np.where(moving, t, 0.0)  # rows done already get no (inf) entry time
            q = p + t[:, None] * d
            face = np.where(d[rows, axis] > 0, lo_hit[rows, axis], hi_hit[rows, axis])
            q[rows, axis] = face
            d_next = (1.0 - t)[:, None] * d
            d_next[rows, axis] = 0.0
            p[moving], d[moving] = q[moving], d_next[moving]
        return p

    def _sample_in_room(self, left: bool) -> np.ndarray:
        cfg, rng = self.config, self.np_random
        gap = cfg.wall_half_width + _TOUCH_CLEARANCE
        if left:
            x = rng.uniform(cfg.margin, cfg.wall_x - gap)
        else:
            x = rng.uniform(cfg.wall_x + gap, cfg.size - cfg.margin)
        return np.array([x, rng.uniform(cfg.margin, cfg.size - cfg.margin)])

    def _info(self) -> dict[str, Any]:
        return {
            "pos": self._pos.copy(),
            "goal": self._goal.copy(),
            "door": np.array([self.config.wall_x, self._door_y]),
            "t": self._t,
            "is_success": self.is_success(self._pos, self._goal),
        }

    # --- rendering -----------------------------------------------------------------------

    def _pixel_centres(self) -> np.ndarray:
        cfg = self.config
        return (np.arange(cfg.render_size) + 0.5) * (cfg.size / cfg.render_size)

    def _draw_background(self) -> np.ndarray:
        r = self.config.render_size
        c = self._pixel_centres()
        img = np.zeros((r, r, 3), np.uint8)
        for lo, hi in self._blocked_boxes():
            rows = (lo[1] < c) & (c < hi[1])
            cols = (lo[0] < c) & (c < hi[0])
            img[np.ix_(rows, cols)] = _WALL_RGB
        return img

    def _draw(self, pos: np.ndarray | None = None) -> np.ndarray:
        """Anti-aliased disc at ``pos`` (default: the agent's): sub-pixel positions stay
        visible in the frame."""
        cfg = self.config
        k = cfg.render_size / cfg.size
        cx, cy = (self._pos if pos is None else pos) * k
        rad = cfg.agent_radius * k
        img = self._background.copy()
        r0, r1 = max(int(cy - rad - 1), 0), min(int(cy + rad + 2), cfg.render_size)
        c0, c1 = max(int(cx - rad - 1), 0), min(int(cx + rad + 2), cfg.render_size)
        yy = np.arange(r0, r1)[:, None] + 0.5
        xx = np.arange(c0, c1)[None, :] + 0.5
        alpha = np.clip(rad + 0.5 - np.hypot(xx - cx, yy - cy), 0.0, 1.0)[..., None]
        patch = img[r0:r1, c0:c1].astype(np.float32)
        img[r0:r1, c0:c1] = np.rint(patch * (1 - alpha) + _AGENT_RGB * alpha).astype(np.uint8)
        return img


def _entry(
    p: np.ndarray, d: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each path ``p + t d`` (rows of [B, 2]): the first time in [0, 1) at which it enters
    the open box (lo, hi), the axis of the face it crosses, and whether it enters at all (a
    path that only grazes or misses the box does not)."""
    n = len(p)
    t_in, t_out = np.full(n, -np.inf), np.full(n, np.inf)
    axis, valid = np.full(n, -1), np.ones(n, bool)
    for ax in (0, 1):
        still = d[:, ax] == 0.0
        valid &= ~still | ((lo[ax] < p[:, ax]) & (p[:, ax] < hi[ax]))
        step = np.where(still, 1.0, d[:, ax])
        t1, t2 = (lo[ax] - p[:, ax]) / step, (hi[ax] - p[:, ax]) / step
        t1, t2 = np.minimum(t1, t2), np.maximum(t1, t2)
        later = ~still & (t1 > t_in)  # ties keep the earlier axis
        t_in, axis = np.where(later, t1, t_in), np.where(later, ax, axis)
        t_out = np.where(still, t_out, np.minimum(t_out, t2))
    enters = valid & (axis >= 0) & (t_in < t_out) & (t_in < 1.0) & (t_out > 0.0)
    return np.maximum(t_in, 0.0), np.maximum(axis, 0), enters


def _position(x: dict[str, Any] | np.ndarray) -> np.ndarray:
    if isinstance(x, dict):
        return np.asarray(x["pos"], np.float64)
    return np.asarray(x, np.float64).reshape(-1)[:2]
