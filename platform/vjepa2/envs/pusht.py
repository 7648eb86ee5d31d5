"""PushT (``gym_pusht/PushT-v0``) with relative actions and an exact, restorable physics state.

Actions are offsets: the PD target is ``agent_pos + action_scale * clip(a, -1, 1)``, clipped to
the workspace. Held at full scale the agent settles at about ``0.41 * action_scale`` px per step
(the PD loop runs 10 sub-steps per step), i.e. ~20 px a step for the default scale of 50.

Why exactness takes more than gym-pusht's ``reset_to_state``: a Chipmunk space also carries the
bodies' centre-of-gravity positions (``position`` is the body origin, one rounding away), the
bias velocities the last contact solve left behind (they move the block at the start of the next
sub-step), the warm-start impulse cache and the broad-phase tree, whose pair order sets the
contact solver's order. ``get_state`` reads the integrator fields straight from Chipmunk's
``cpBody`` (layout checked once per process, fails loudly otherwise). With ``canonical_physics``
every ``step`` first rebuilds the space from that snapshot, so a step is a pure function of
(snapshot, action) and a restored state replays the original continuation bit for bit. The cost
is ~0.1 ms a step and no impulse warm start across control steps (it still runs across the 10
sub-steps inside one), which changes contacts by rounding-level amounts.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import gymnasium as gym
import numpy as np

from vjepa2.envs.registry import checked_replay

# Doubles inside Chipmunk 7's ``struct cpBody`` (two function pointers, m, m_inv, i, i_inv,
# cog[2], p[2], v[2], f[2], a, w, t, transform[6], userData, v_bias[2], w_bias, ...): the fields
# the integrator reads, p v f a w t v_bias w_bias.
_BODY_DOUBLES = 27
_RAW = np.array([8, 9, 10, 11, 12, 13, 14, 15, 16, 24, 25, 26])
_RAW_A = 6  # index of the angle inside a raw record
_HEAD = 10  # agent xy, block xy, block angle mod 2pi, agent v, block v, block w
STATE_DIM = _HEAD + 2 * len(_RAW) + 1  # ... then the agent's and block's raw records, then t
_layout_checked = False
T = TypeVar("T")


@dataclass
class PushTConfig:
    render_size: int = 96  # gym-pusht draws at 512 px and resizes; any size works
    action_scale: float = 50.0  # px of PD-target offset per unit action
    # The agent disc (radius 15) stays inside the walls (inner faces at 7 and 504 px).
    workspace: tuple[float, float] = (22.0, 489.0)
    success_pos_px: float = 20.0
    success_angle: float = math.pi / 9
    # DINO-WM: ||[agent, block] - goal|| < 20 over the joint 4-vector; False: each body < 20.
    joint_position_norm: bool = True
    canonical_physics: bool = True
    max_episode_steps: int | None = None  # None: never truncate, the collector decides

    def __post_init__(self) -> None:
        lo, hi = self.workspace
        if self.render_size < 8 or self.action_scale <= 0 or not 0 <= lo < hi <= 512:
            raise ValueError("pusht: render_size >= 8, action_scale > 0, 0 <= workspace <= 512")


class PushT(gym.Env):
    """Gymnasium env over gym-pusht: observations are ``uint8 [render_size, render_size, 3]``.

    ``state_vector(info)`` is DINO-WM's ``[agent_x, agent_y, block_x, block_y, block_angle]``
    (block position is the body origin, as gym-pusht reports it). ``get_state()`` is a float64
    vector of ``STATE_DIM`` entries starting with that vector. ``terminated`` is always False:
    goals here are states, not gym-pusht's fixed target (its coverage stays in ``info``).
    ``reset(options=...)`` takes ``state`` (a snapshot) or ``pose`` (the 5-vector, at rest).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, config: PushTConfig | None = None, render_mode: str = "rgb_array"):
        if render_mode != "rgb_array":
            raise ValueError("PushT renders only 'rgb_array'")
        self.config = cfg = config or PushTConfig()
        self.render_mode = render_mode
        # gym-pusht imports pygame; without a display it must not try to open one.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import gym_pusht  # noqa: F401  (registers gym_pusht/PushT-v0)

        _check_cpbody_layout()
        r = cfg.render_size
        # State observations: this class draws the frames itself (see _render).
        self._env = gym.make(
            "gym_pusht/PushT-v0",
            obs_type="state",
            render_mode="rgb_array",
            disable_env_checker=True,
        ).unwrapped
        self.action_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.action_dim = 2
        self.observation_space = gym.spaces.Box(0, 255, (r, r, 3), np.uint8)
        self._frame: np.ndarray | None = None
        self._t = 0
        self._last: dict[str, Any] = {}

    # --- gymnasium API -------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        # gym-pusht draws its random start from its own generator, seeded here.
        self._env.reset(seed=seed)
        self._t = 0
        if "state" in options:
            self.set_state(options["state"])
        elif "pose" in options:
            self._place(np.asarray(options["pose"], np.float64))
        else:
            self._frame = self._render()
        self._last = {"coverage": self._env._get_coverage(), "n_contacts": 0}
        return self._frame, self._info()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._frame is None:
            raise RuntimeError("PushT.step before reset()")
        a = np.asarray(action, np.float64).reshape(2)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"PushT action must be finite, got {a}")
        cfg = self.config
        _, reward, _, _, raw_info = self._env.step(self._pd_target(a))
        self._frame = self._render()
        self._t += 1
        self._last = {"coverage": raw_info["coverage"], "n_contacts": raw_info["n_contacts"]}
        limit = cfg.max_episode_steps
        return (
            self._frame,
            float(reward),
            False,
            limit is not None and self._t >= limit,
            self._info(),
        )

    def render(self) -> np.ndarray:
        if self._frame is None:
            raise RuntimeError("PushT.render before reset()")
        return self._frame

    def close(self) -> None:
        self._env.close()

    # --- platform API --------------------------------------------------------------------

    def get_state(self) -> np.ndarray:
        state = np.empty(STATE_DIM, np.float64)
        state[:-1] = _snapshot(self._env)
        state[-1] = self._t
        return state

    def set_state(self, state: np.ndarray) -> None:
        s = np.asarray(state, np.float64)
        if s.shape != (STATE_DIM,):
            raise ValueError(f"PushT state has {STATE_DIM} entries (see get_state), got {s.shape}")
        _restore(self._env, s[:-1])
        self._t = int(s[-1])
        self._frame = self._render()

    def replay_poses(self, state: np.ndarray, actions: np.ndarray, keep: list[int]) -> np.ndarray:
        """Poses ``[K, len(keep), 5]`` (as ``state_vector``): each of K action sequences
        ``[K, T, 2]`` replayed from the snapshot ``state``, the pose after each step in ``keep``
        kept. The same physics as ``step`` without drawing or measuring coverage (about a fifth
        of a step's time); the env is left at ``state``."""
        return np.asarray(self._replay(state, actions, keep, self._pose_now))

    def replay_frames(self, state: np.ndarray, actions: np.ndarray, keep: list[int]) -> np.ndarray:
        """``vjepa2.envs.replay_frames`` for PushT: frames ``[K, len(keep), H, W, 3]``, drawn
        only at the kept steps (drawing is most of a step's time)."""
        return np.asarray(self._replay(state, actions, keep, self._render), np.uint8)

    def replay_frames_and_poses(
        self, state: np.ndarray, actions: np.ndarray, keep: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """``replay_frames`` and ``replay_poses`` from one pass of the physics."""
        both = self._replay(state, actions, keep, lambda: (self._render(), self._pose_now()))
        frames = np.asarray([[f for f, _ in seq] for seq in both], np.uint8)
        return frames, np.asarray([[q for _, q in seq] for seq in both])

    def _pose_now(self) -> np.ndarray:
        return _snapshot(self._env)[:5]

    def _replay(
        self,
        state: np.ndarray,
        actions: np.ndarray,
        keep: list[int],
        record: Callable[[], T],
    ) -> list[list[T]]:
        from pymunk import Vec2d

        self.set_state(state)
        acts, steps = checked_replay("PushT", actions, keep, self._t, self.config.max_episode_steps)
        start = self.get_state()
        env, out = self._env, []
        substeps, still = int(1 / (env.dt * env.control_hz)), Vec2d(0, 0)
        for seq in acts:
            _restore(env, start[:-1])
            kept = []
            for i, a in enumerate(seq):
                if i < steps:
                    target = self._pd_target(a)
                    # gym-pusht's step without its coverage and observation: its PD loop,
                    # written as it writes it so the floating point agrees bit for bit.
                    for _ in range(substeps):
                        accel = env.k_p * (target - env.agent.position) + env.k_v * (
                            still - env.agent.velocity
                        )
                        env.agent.velocity += accel * env.dt
                        env.space.step(env.dt)
                if i in keep:
                    kept.append(record())
            out.append(kept)
        self.set_state(start)
        return out

    def state_vector(self, info: dict[str, Any]) -> np.ndarray:
        return _pose(info).astype(np.float32)

    def is_success(
        self, current: dict[str, Any] | np.ndarray, goal: dict[str, Any] | np.ndarray
    ) -> bool:
        gap = self.goal_gap(current, goal)
        return bool(
            gap["position_px"] < self.config.success_pos_px
            and gap["angle_deg"] < math.degrees(self.config.success_angle)
        )

    def goal_gap(
        self, current: dict[str, Any] | np.ndarray, goal: dict[str, Any] | np.ndarray
    ) -> dict[str, float]:
        """The success criterion's terms: each body's distance, the position error it tests
        (joint, or the larger of the two) and the block's turn away from the goal's."""
        cur, tgt = _pose(current), _pose(goal)
        agent = math.hypot(*(cur[0:2] - tgt[0:2]))
        block = math.hypot(*(cur[2:4] - tgt[2:4]))
        joint = math.hypot(agent, block) if self.config.joint_position_norm else max(agent, block)
        turn = (cur[4] - tgt[4] + math.pi) % (2 * math.pi) - math.pi
        return {
            "agent_px": agent,
            "block_px": block,
            "position_px": joint,
            "angle_deg": abs(math.degrees(turn)),
        }

    # --- helpers -------------------------------------------------------------------------

    def _pd_target(self, a: np.ndarray) -> np.ndarray:
        """The PD target for action ``a``; with ``canonical_physics`` the space is rebuilt from
        its own snapshot first, so what follows is a pure function of (snapshot, action)."""
        cfg = self.config
        target = np.array(self._env.agent.position) + cfg.action_scale * np.clip(a, -1.0, 1.0)
        if cfg.canonical_physics:
            _restore(self._env, _snapshot(self._env))
        return np.clip(target, *cfg.workspace)

    def _place(self, pose: np.ndarray) -> None:
        """Bodies at rest at ``[agent_x, agent_y, block_x, block_y, block_angle]``, no physics
        step (gym-pusht's reset_to_state sets the angle after the position and then steps)."""
        if pose.shape != (5,):
            raise ValueError(
                f"PushT pose is [agent_x, agent_y, block_x, block_y, angle], got {pose}"
            )
        env = self._env
        env._setup()
        env.agent.position = (pose[0], pose[1])
        env.block.angle = pose[4]  # angle first: it turns the body about its centre of gravity
        env.block.position = (pose[2], pose[3])
        for body in (env.agent, env.block):
            for shape in body.shapes:
                shape.cache_bb()
        self._frame = self._render()

    def _render(self) -> np.ndarray:
        """gym-pusht's drawing minus its debug contact markers, so a frame depends only on the
        bodies' poses (a restored state then looks exactly like the moment it was taken)."""
        import pygame
        import pymunk.pygame_util
        from gym_pusht.envs.pymunk_override import DrawOptions

        env = self._env
        screen = pygame.Surface((512, 512))
        screen.fill((255, 255, 255))
        options = DrawOptions(screen)
        options.flags = DrawOptions.DRAW_SHAPES
        goal = env.get_goal_pose_body(env.goal_pose)
        for shape in env.block.shapes:
            points = [goal.local_to_world(v) for v in shape.get_vertices()]
            points = [pymunk.pygame_util.to_pygame(v, screen) for v in points]
            pygame.draw.polygon(screen, pygame.Color("LightGreen"), [*points, points[0]])
        env.space.debug_draw(options)
        r = self.config.render_size
        return env._get_img(screen, width=r, height=r)

    def _info(self) -> dict[str, Any]:
        env = self._env
        block = env.block
        return {
            "agent_pos": np.array(env.agent.position),
            "agent_vel": np.array(env.agent.velocity),
            "block_pos": np.array(block.position),
            "block_angle": float(block.angle % (2 * math.pi)),
            "block_com": np.array(block.local_to_world(block.center_of_gravity)),
            "goal_pose": np.array(env.goal_pose, np.float64),
            "t": self._t,
            **self._last,
        }


def pose_error(poses: np.ndarray, goal: np.ndarray, config: PushTConfig) -> np.ndarray:
    """Squared distance [...] of poses [..., 5] to a goal pose [5] in px: both bodies' position
    errors plus the block's angle error at the success criterion's exchange rate (by default
    20 px for 20 degrees), so its level sets are shaped like the success region."""
    d = np.asarray(poses, np.float64) - np.asarray(goal, np.float64)
    turn = (d[..., 4] + math.pi) % (2 * math.pi) - math.pi
    px_per_radian = config.success_pos_px / config.success_angle
    return (d[..., :4] ** 2).sum(-1) + (px_per_radian * turn) ** 2


def _pose(x: dict[str, Any] | np.ndarray) -> np.ndarray:
    if isinstance(x, dict):
        return np.array([*x["agent_pos"], *x["block_pos"], x["block_angle"]], np.float64)
    return np.asarray(x, np.float64).reshape(-1)[:5]


def _raw(body: Any) -> np.ndarray:
    """Writable float64 view of a pymunk body's ``cpBody`` struct."""
    from pymunk._chipmunk_cffi import ffi

    return np.frombuffer(ffi.buffer(ffi.cast("char *", body._body), 8 * _BODY_DOUBLES), np.float64)


def _snapshot(env: Any) -> np.ndarray:
    agent, block = env.agent, env.block
    head = [
        *agent.position,
        *block.position,
        block.angle % (2 * math.pi),
        *agent.velocity,
        *block.velocity,
        block.angular_velocity,
    ]
    return np.concatenate([head, _raw(agent)[_RAW], _raw(block)[_RAW]])


def _restore(env: Any, snap: np.ndarray) -> None:
    """A fresh space (empty contact cache, canonical broad phase) holding the snapshot's bodies."""
    env._setup()
    n = len(_RAW)
    for body, record in ((env.agent, snap[_HEAD : _HEAD + n]), (env.block, snap[_HEAD + n :])):
        _raw(body)[_RAW] = record
        body.angle = record[_RAW_A]  # recomputes the transform from p and a
        for shape in body.shapes:
            shape.cache_bb()  # drawing reads the shapes' cached world vertices


def _check_cpbody_layout() -> None:
    """Fail loudly if this pymunk's ``cpBody`` differs from the offsets above."""
    global _layout_checked
    if _layout_checked:
        return
    import pymunk

    space = pymunk.Space()
    body = pymunk.Body(2.0, 4.0)
    body.center_of_gravity = (0.25, -0.5)
    body.angle, body.position = 0.3, (100.0, 3.0)
    body.velocity, body.angular_velocity = (4.0, 5.0), 6.0
    body.force, body.torque = (7.0, 8.0), 9.0
    raw = _raw(body)
    c, s = math.cos(0.3), math.sin(0.3)
    expected = {2: 2.0, 3: 0.5, 4: 4.0, 5: 0.25, 6: 0.25, 7: -0.5, 10: 4.0, 11: 5.0, 12: 7.0,
                13: 8.0, 14: 0.3, 15: 6.0, 16: 9.0, 17: c, 18: s, 19: -s, 20: c}  # fmt: skip
    ok = all(math.isclose(raw[i], v, abs_tol=1e-12) for i, v in expected.items())
    ok = ok and math.isclose(raw[21], body.position.x) and math.isclose(raw[22], body.position.y)
    # Bias velocities: a box sunk into the floor gets them from one solve, and the next position
    # update must consume them.
    body.force, body.torque, body.angular_velocity = (0.0, 0.0), 0.0, 0.0
    space.add(body, pymunk.Poly.create_box(body, (10, 10)))
    space.add(pymunk.Segment(space.static_body, (0, 0), (200, 0), 1.0))
    space.step(0.01)
    p, v, vb = raw[8:10].copy(), raw[10:12].copy(), raw[24:26].copy()
    pymunk.Body.update_position(body, 0.01)
    ok = (
        ok
        and bool(np.any(vb != 0))
        and np.allclose(raw[8:10], p + (v + vb) * 0.01, rtol=0, atol=1e-9)
    )
    ok = ok and raw[24] == 0.0 and raw[25] == 0.0
    if not ok:
        raise RuntimeError(
            f"pymunk {pymunk.version}: cpBody layout differs from the one PushT snapshots rely "
            "on; use pymunk 6.x or update _RAW in vjepa2/envs/pusht.py"
        )
    _layout_checked = True
