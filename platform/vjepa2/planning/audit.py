"""Plan audits: every plan a model-based agent makes, replayed in the real environment.

CEM searches for the action sequence the model scores best, so wherever the model is wrong in
the planner's favour (an agent that walks through a wall a few pixels beside the door), CEM
finds it and the plan fails in the world. Counting failed episodes shows that something went
wrong; the audit shows where. After each plan, the chosen actions are replayed from the
environment's exact snapshot in a private copy, the frames the plan's cost looks at are
encoded, and the cost is computed again with the same energy. A plan whose replayed cost is
far above the model's promise was exploiting a model error.

The replay is one action sequence (H x frameskip environment steps and a few encodes), next
to CEM's K x I x H model steps: about 1% of the planning time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vjepa2.envs.registry import WorldEnv
from vjepa2.planning.cem import CEMConfig, scored_steps

# A plan over-promised when its replayed cost exceeds twice the model's, plus this share of
# the cost of standing still (so that near the goal, where both costs are tiny, noise in the
# encoder alone does not count).
PROMISE_FACTOR = 2.0
STILL_SHARE = 0.05


def over_promise_threshold(predicted, still):
    """The replayed cost above which a plan over-promised (floats or arrays)."""
    return PROMISE_FACTOR * predicted + STILL_SHARE * still


@dataclass(frozen=True)
class PlanAudit:
    predicted: float  # the plan's cost under the model
    replayed: float  # the same actions' cost on the environment's exact rollout
    still: float  # the cost of the current state held over the horizon (doing nothing)

    @property
    def over_promised(self) -> bool:
        return self.replayed > over_promise_threshold(self.predicted, self.still)

    def as_list(self) -> list[float]:
        return [self.predicted, self.replayed, self.still]


class PlanAuditor:
    """Scores a plan's actions on a private environment copy, as the planner scored them."""

    def __init__(
        self,
        sim: WorldEnv,
        encode_frames,
        action_dim: int,
        cfg: CEMConfig,
        *,
        with_states: bool = False,
        members: int = 1,
        energy_tokens: Tensor | None = None,
    ) -> None:
        from vjepa2.planning.true_dynamics import TrueDynamicsCEM

        self._replay = TrueDynamicsCEM(
            sim,
            encode_frames,
            action_dim,
            cfg,
            with_states=with_states,
            members=members,
            energy_tokens=energy_tokens,
        )

    @torch.no_grad()
    def audit(
        self, snapshot: np.ndarray, state: Tensor, goal: Tensor, actions: Tensor, predicted: float
    ) -> PlanAudit:
        """snapshot: ``env.get_state()`` where the plan starts; state, goal [1, *S] as the
        planner saw them; actions [H, d] (or [1, H, d]) the plan."""
        plan = actions.reshape(1, 1, -1, actions.shape[-1])
        snap = torch.from_numpy(np.asarray(snapshot, np.float64))[None]
        replayed = float(self._replay.rollout_cost(snap, goal, plan)[0, 0])
        replay = self._replay
        n = len(scored_steps(plan.shape[2], replay.cfg.cost))
        here = replay.energy_of(state, goal)  # [1] or [1, E]
        still = float(replay.combine(here[:, None].expand(1, n, *here.shape[1:]))[0])
        return PlanAudit(float(predicted), replayed, still)


def audit_summary(audits: list[list[PlanAudit]], successes: list[bool]) -> dict | None:
    """Per agent: the share of plans that over-promised, and how many failed episodes had
    one. ``audits`` holds one list per episode; None when no plan was audited."""
    plans = [a for episode in audits for a in episode]
    if not plans:
        return None
    failed = [ep for ep, ok in zip(audits, successes, strict=True) if not ok]
    return {
        "plans_audited": len(plans),
        "over_promised_share": sum(a.over_promised for a in plans) / len(plans),
        "failed_episodes": len(failed),
        "failed_with_over_promise": sum(any(a.over_promised for a in ep) for ep in failed),
        "median_replayed_over_predicted": float(
            np.median([a.replayed / max(a.predicted, 1e-12) for a in plans])
        ),
    }
