"""CEM on the environment's own dynamics, scored by a world model's latent energy.

A diagnostic, not a planner to deploy: it separates the two things a latent planner needs.
When ``cem`` fails, either the dynamics model predicts the wrong states or the energy
(distance in the encoder's latent space) does not lead to the goal. Here every candidate is
replayed exactly in a private copy of the environment from the current snapshot, its frames
are encoded, and the cost is the same ``energy`` the latent planner minimises. Its success
rate is therefore what ``cem`` would reach with perfect dynamics: an upper bound set by the
encoder. The gap between the two is what the dynamics model loses.

It needs the true state, so the agent is privileged: ``run_episode`` hands it
``env.get_state()`` before each ``act`` (``observe_state``). TwoRoom replays all K candidates
at once and PushT draws only the frames the cost reads (``replay_frames``); other environments
step them one by one (``K x I x H x frameskip`` env steps per plan), so it is slower than
``cem`` and opt-in.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vjepa2.envs.registry import WorldEnv, replay_frames, replay_frames_and_states
from vjepa2.planning.agents import PlannerAgent, PlanningModel
from vjepa2.planning.cem import CEMConfig, CEMPlanner, scored_steps

NAME = "cem_true_dynamics"
ENCODE_CHUNK = 512  # frames per encoder call while scoring candidates


class TrueDynamicsCEM(CEMPlanner):
    """CEM whose states are environment snapshots [B, S] and whose goals are latents.

    ``encode_frames(frames, true_states)`` gets the true state after each replayed step when
    ``with_states`` (a model whose state carries proprioception), else None."""

    def __init__(
        self,
        sim: WorldEnv,
        encode_frames,
        action_dim: int,
        cfg: CEMConfig | None = None,
        *,
        with_states: bool = False,
        members: int = 1,
        energy_tokens: Tensor | None = None,
    ) -> None:
        super().__init__(self._unused_step, action_dim, cfg, members, energy_tokens)
        env_dim = int(np.prod(sim.action_space.shape))
        if action_dim % env_dim:
            raise ValueError(
                f"a plan action of {action_dim} values is not a whole number of "
                f"{env_dim}-dim environment actions (frameskip)"
            )
        self.sim, self.encode_frames, self.with_states = sim, encode_frames, with_states
        self.env_dim, self.frameskip = env_dim, action_dim // env_dim

    @staticmethod
    def _unused_step(state: Tensor, action: Tensor) -> Tensor:
        raise RuntimeError("true-dynamics CEM rolls out in the environment, not a model")

    def check_problem(self, state: Tensor, goal: Tensor) -> None:
        if state.dim() != 2 or goal.shape[0] != state.shape[0]:
            raise ValueError(
                f"expected snapshots [B, S] and goal latents [B, ...], got "
                f"{tuple(state.shape)} and {tuple(goal.shape)}"
            )

    def rollout_cost(
        self, state: Tensor, goal: Tensor, actions: Tensor, tokens: slice | Tensor | None = None
    ) -> Tensor:
        """state: snapshots [B, S]; goal [B, *Z]; actions [B, K, H, d] -> cost [B, K]
        (``tokens``: as in ``cem.energy``)."""
        z = self.replayed_latents(state, actions)
        return self.score(z, goal, actions.shape, tokens).to(actions.device)

    def replayed_latents(self, state: Tensor, actions: Tensor) -> Tensor:
        """The encoded states [B x K x scored steps, *Z] that the cost of ``actions`` [B, K,
        H, d] reads, replayed from snapshots ``state`` [B, S]."""
        b, k, h, _ = actions.shape
        keep = scored_steps(h, self.cfg.cost)
        # Plan step t ends after env step (t + 1) * frameskip - 1.
        env_keep = [(t + 1) * self.frameskip - 1 for t in keep]
        acts = actions.double().cpu().numpy().reshape(b, k, h * self.frameskip, self.env_dim)
        snaps = state.double().cpu().numpy()
        frames, states = [], []
        for i in range(b):
            if self.with_states:
                f, s = replay_frames_and_states(self.sim, snaps[i], acts[i], env_keep)
                states.extend(s.reshape(-1, s.shape[-1]))
            else:
                f = replay_frames(self.sim, snaps[i], acts[i], env_keep)
            frames.extend(np.asarray(f).reshape(-1, *np.shape(f)[-3:]))
        return torch.cat(
            [
                self.encode_frames(
                    frames[i : i + ENCODE_CHUNK],
                    states[i : i + ENCODE_CHUNK] if self.with_states else None,
                )
                for i in range(0, len(frames), ENCODE_CHUNK)
            ]
        )

    def score(
        self, z: Tensor, goal: Tensor, shape: torch.Size, tokens: slice | Tensor | None = None
    ) -> Tensor:
        """``replayed_latents`` of plans of ``shape`` [B, K, H, d] -> their cost [B, K]."""
        b, k, h, _ = shape
        keep = scored_steps(h, self.cfg.cost)
        g = goal.repeat_interleave(k * len(keep), dim=0)
        e = self.energy_of(z, g.to(z.device), tokens)
        return self.combine(e.view(b * k, len(keep), *e.shape[1:])).view(b, k)


class TrueDynamicsAgent(PlannerAgent):
    """The ``cem`` agent with the environment in place of the dynamics model."""

    def __init__(
        self,
        model: PlanningModel,
        cfg: CEMConfig,
        sim: WorldEnv,
        *,
        execute: int = 1,
        warm_start: bool = True,
        device: str | torch.device = "cpu",
        energy_views: tuple[str, ...] = (),
    ) -> None:
        super().__init__(
            model,
            cfg,
            execute=execute,
            warm_start=warm_start,
            device=device,
            name=NAME,
            energy_views=energy_views,
        )
        self.planner = TrueDynamicsCEM(
            sim,
            self.encode_frames,
            self.planner.action_dim,
            cfg,
            with_states=bool(self.proprio_dims),
            members=self.planner.members,
            energy_tokens=self.planner.energy_tokens,
        )
        self._snapshot: np.ndarray | None = None

    def observe_state(self, snapshot: np.ndarray) -> None:
        self._snapshot = np.asarray(snapshot, np.float64).copy()

    def planning_state(self, frame: np.ndarray) -> Tensor:
        if self._snapshot is None:
            raise RuntimeError(f"{NAME} needs observe_state(env.get_state()) before each act")
        state, self._snapshot = torch.from_numpy(self._snapshot)[None], None  # never reused
        return state
