"""What acts in an MPC episode: the CEM planner on a world model, and the baselines.

Every agent sees the current frame and returns the next actions to execute ([n, d_a]);
``reset(episode)`` gives it the goal (and, to the oracle, the logged actions). The planner
works with any model that encodes frames and steps states (``PlanningModel``): the latent
``WorldModel`` ("cem") and the pixel-space baseline ("pixel_wm") share it.
"""

from __future__ import annotations

import time
from typing import Protocol

import numpy as np
import torch

from vjepa2.data.transforms import normalize_frames, resize_square
from vjepa2.envs.registry import WorldEnv
from vjepa2.planning.audit import PlanAudit, PlanAuditor
from vjepa2.planning.cem import CEMConfig, CEMPlanner, shift_plan
from vjepa2.planning.episodes import PlanningEpisode
from vjepa2.planning.flops import flops_per_step


class Agent(Protocol):
    name: str

    def reset(self, episode: PlanningEpisode) -> None: ...

    def act(self, frame: np.ndarray) -> np.ndarray: ...


class PlanningModel(Protocol):
    """What CEM plans with: normalised frames [B, C, H, W] -> states, and a batched step."""

    def encode(self, frames: torch.Tensor) -> torch.Tensor: ...

    def step(self, state: torch.Tensor, action: torch.Tensor) -> torch.Tensor: ...


def model_proprio_dims(model: PlanningModel) -> tuple[int, ...]:
    """Entries of the true state a model's states carry as proprioception (a ``WorldModel``
    with ``state.proprio_dims``); () for frames-only models."""
    return tuple(getattr(model, "proprio_dims", ()))


def model_members(model: PlanningModel) -> int:
    """How many dynamics models a model's states carry side by side (an ensemble's members,
    planning/ensemble.py); 1 for a single model."""
    return int(getattr(model, "members", 1))


def planning_dims(model: PlanningModel) -> tuple[int, int]:
    """(img_size, action_dim): declared by the model (the pixel world model), or read off a
    ``WorldModel``'s encoder and dynamics, which own them there."""
    if hasattr(model, "img_size") and hasattr(model, "action_dim"):
        return int(model.img_size), int(model.action_dim)
    return int(model.encoder.cfg.img_size), int(model.dynamics.action_dim)


def view_tokens(model: PlanningModel, views: tuple[str, ...]) -> torch.Tensor | None:
    """The indices of the state tokens in ``views`` (names from the model's
    ``state_views()``: "sharp", "blur 12 px", "proprio", ...), for an energy that reads only
    those parts of the state; None (every token) without views or with all of them."""
    if not views:
        return None
    parts = dict(model.state_views()) if hasattr(model, "state_views") else {}
    if not parts:
        raise ValueError("energy_views need a latent world model whose state has named parts")
    unknown = [v for v in views if v not in parts]
    if unknown or len(set(views)) < len(views):
        raise ValueError(
            f"energy_views {list(views)}: each must be a distinct part of this model's "
            f"state, one of {list(parts)}"
        )
    tokens = torch.cat([torch.arange(parts[v].start, parts[v].stop) for v in views]).sort().values
    # All of it is the default energy; a pooled state (one view) has no token dim to index.
    every = max(s.stop for s in parts.values())
    return None if tokens.tolist() == list(range(every)) else tokens


class PlannerAgent:
    """Encode frame and goal, plan H steps with CEM, execute the first ``execute`` actions.

    With ``audit_env`` (a private copy of the episode's environment), each plan is also
    replayed from the true snapshot that ``run_episode`` hands over (``observe_state``) and
    scored as the planner scored it: ``audits`` then holds one ``PlanAudit`` per plan of the
    current episode. The plan itself never sees the snapshot, only the frame, except for a
    model whose state carries proprioception: it reads those entries (the agent's own
    sensors) from the snapshot, and the goal's from the episode's goal state.
    """

    def __init__(
        self,
        model: PlanningModel,
        cfg: CEMConfig,
        *,
        execute: int = 1,
        warm_start: bool = True,
        device: str | torch.device = "cpu",
        name: str = "cem",
        audit_env: WorldEnv | None = None,
        energy_views: tuple[str, ...] = (),
    ) -> None:
        self.name = name
        self.model = model.eval().to(device)
        self.device = torch.device(device)
        self.img_size, action_dim = planning_dims(model)
        self.proprio_dims = model_proprio_dims(model)
        tokens = view_tokens(model, energy_views)
        tokens = None if tokens is None else tokens.to(self.device)
        self.planner = CEMPlanner(model.step, action_dim, cfg, model_members(model), tokens)
        self.execute, self.warm_start = execute, warm_start
        self.plan_seconds: list[float] = []
        self.auditor = (
            None
            if audit_env is None
            else PlanAuditor(
                audit_env,
                self.encode_frames,
                action_dim,
                cfg,
                with_states=bool(self.proprio_dims),
                members=self.planner.members,
                energy_tokens=tokens,
            )
        )
        self.audits: list[PlanAudit] = []
        self._snapshot: np.ndarray | None = None
        self._goal: torch.Tensor | None = None
        self._mean: torch.Tensor | None = None
        self._gen = torch.Generator(device=self.device)

    def encode(self, frame: np.ndarray, true_state: np.ndarray | None = None) -> torch.Tensor:
        return self.encode_frames([frame], None if true_state is None else [true_state])

    @torch.no_grad()
    def encode_frames(
        self, frames: list[np.ndarray], true_states: list[np.ndarray] | None = None
    ) -> torch.Tensor:
        """RGB frames of any size -> states [len(frames), *S]. A model with proprioception
        also needs each frame's true state vector or snapshot (``true_states`` [n, S])."""
        x = np.stack([resize_square(f, self.img_size) for f in frames])
        x = normalize_frames(torch.from_numpy(x).to(self.device))
        if not self.proprio_dims:
            return self.model.encode(x)
        if true_states is None:
            raise ValueError(
                f"{self.name}: the model's state includes proprioception (true-state entries "
                f"{self.proprio_dims}); pass each frame's true state"
            )
        proprio = self.model.proprio_of(np.asarray(true_states, np.float64))
        return self.model.encode(x, proprio.to(self.device))

    def planning_state(self, frame: np.ndarray) -> torch.Tensor:
        """What the planner starts from: the encoded frame (and proprioception, from the
        snapshot ``observe_state`` handed over)."""
        if not self.proprio_dims:
            return self.encode(frame)
        if self._snapshot is None:
            raise RuntimeError(
                f"{self.name}: a model with proprioception needs observe_state(env.get_state()) "
                "before each act"
            )
        return self.encode(frame, self._snapshot)

    @torch.no_grad()
    def step_flops(self, frame: np.ndarray, true_state: np.ndarray | None = None) -> int:
        """FLOPs of one rollout step of one candidate from this frame's state (and its true
        state, which a model with proprioception needs)."""
        action = torch.zeros(1, self.planner.action_dim, device=self.device)
        state = self.encode(frame, true_state if self.proprio_dims else None)
        return flops_per_step(self.model.step, state, action)

    def reset(self, episode: PlanningEpisode) -> None:
        goal_state = episode.goal_state if self.proprio_dims else None
        self._goal = self.encode(episode.goal_frame, goal_state)
        self._mean = None
        self._gen.manual_seed(self.planner.cfg.seed * 1_000_003 + episode.seed)
        self.audits = []

    def observe_state(self, snapshot: np.ndarray) -> None:
        """The true snapshot before the next ``act``: it audits that plan, and a model with
        proprioception reads its own entries from it."""
        if self.auditor is not None or self.proprio_dims:
            self._snapshot = np.asarray(snapshot, np.float64).copy()

    @torch.no_grad()
    def act(self, frame: np.ndarray) -> np.ndarray:
        assert self._goal is not None, "reset(episode) first"
        t0 = time.perf_counter()
        state = self.planning_state(frame)
        init = self._mean if self.warm_start else None
        result = self.planner.plan(state, self._goal, init_mean=init, generator=self._gen)
        self._mean = shift_plan(result.mean, self.execute)
        self.plan_seconds.append(time.perf_counter() - t0)
        # Each plan reads only the snapshot taken just before it.
        snapshot, self._snapshot = self._snapshot, None
        if self.auditor is not None and snapshot is not None:
            self.audits.append(
                self.auditor.audit(
                    snapshot, state, self._goal, result.actions[0], float(result.cost[0])
                )
            )
        return result.actions[0, : self.execute].cpu().numpy()


class RandomAgent:
    name = "random"

    def __init__(self, action_dim: int, low: float = -1.0, high: float = 1.0, seed: int = 0):
        self.action_dim, self.low, self.high, self.seed = action_dim, low, high, seed
        self.rng = np.random.default_rng(seed)

    def reset(self, episode: PlanningEpisode) -> None:
        self.rng = np.random.default_rng([self.seed, episode.seed])

    def act(self, frame: np.ndarray) -> np.ndarray:
        return self.rng.uniform(self.low, self.high, (1, self.action_dim)).astype(np.float32)


class DoNothingAgent:
    name = "do_nothing"

    def __init__(self, action_dim: int) -> None:
        self.action_dim = action_dim

    def reset(self, episode: PlanningEpisode) -> None:
        pass

    def act(self, frame: np.ndarray) -> np.ndarray:
        return np.zeros((1, self.action_dim), np.float32)


class OracleAgent:
    """Replays the logged actions that reached the goal, then stays put: the protocol's
    upper bound (it fails only where the success test is stricter than the replay)."""

    name = "oracle"

    def __init__(self) -> None:
        self._actions = np.zeros((0, 1), np.float32)
        self._t = 0

    def reset(self, episode: PlanningEpisode) -> None:
        self._actions, self._t = episode.oracle_actions, 0

    def act(self, frame: np.ndarray) -> np.ndarray:
        if self._t < len(self._actions):
            self._t += 1
            return self._actions[self._t - 1 : self._t]
        return np.zeros((1, self._actions.shape[1]), np.float32)
