"""Cross-entropy method over action sequences, scored by latent rollouts (seed 4.7).

All ``B x K`` candidates of an iteration roll out together: one batched call of the dynamics
``step`` per horizon step, never a Python loop over candidates. ``B`` independent problems
(several MPC episodes, or a serving batch) share those calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

StepFn = Callable[[Tensor, Tensor], Tensor]  # (states [M, *S], actions [M, d_a]) -> [M, *S]


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass
class CEMConfig:
    """K candidates x horizon H x I iterations; a Gaussian per action dimension and step."""

    num_candidates: int = 300  # K
    horizon: int = 5  # H
    iterations: int = 10  # I
    elite_frac: float = 0.1
    init_std: float = 1.0
    min_std: float = 0.05  # keeps the search alive once the elites agree
    momentum: float = 0.0  # new = momentum * old + (1 - momentum) * elite statistic
    bound: Literal["box", "l2"] = "box"
    low: float = -1.0  # box bounds, every action dimension
    high: float = 1.0
    radius: float = 1.0  # l2-ball bound on each action
    energy: Literal["l2", "l1"] = "l2"  # distance of predicted latents to the goal latent
    # The final predicted state's energy, the sum over the horizon, or its minimum: the plan's
    # closest approach, which matches success at any step and lets a plan leave the goal's
    # side of a wall to get around it (benchmarks/cem_ceiling.py).
    cost: Literal["final", "sum", "min"] = "final"
    keep_mean: bool = True  # the current mean is always one candidate: the cost never rises
    # Each sampled action is held for ``hold`` consecutive parts of a model step's action (a
    # frameskip-k model's action is k raw ones concatenated; hold=k plans one raw action per
    # step). CEM then searches action_dim / hold numbers per step, and its candidates move
    # the way scripted data moves (one direction per step) rather than jittering within one.
    hold: int = 1
    # With an ensemble of dynamics models (planning/ensemble.py), a candidate's cost is the
    # members' mean plus spread_weight x their standard deviation: a plan that only one
    # member believes in (a model error CEM found) costs more. Ignored with one model.
    spread_weight: float = 0.0
    # Sample-efficient CEM (iCEM, Pinneri et al. 2020): iteration i draws K / decay^i
    # candidates (never fewer than twice the elites, so selection still selects), and the
    # best ``keep_elites`` fraction of an iteration's elites joins the next one's pool with
    # the cost it already has. Later iterations search a narrowed Gaussian, so fewer samples
    # cover it; the carried elites keep what was found. decay=1, keep_elites=0 is plain CEM,
    # draw for draw.
    population_decay: float = 1.0
    keep_elites: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.num_candidates >= 2, "cem num_candidates must be >= 2")
        _check(self.horizon >= 1 and self.iterations >= 1, "cem horizon, iterations must be >= 1")
        _check(0.0 < self.elite_frac <= 1.0, "cem elite_frac must be in (0, 1]")
        _check(self.init_std > 0 and self.min_std >= 0, "cem init_std > 0 and min_std >= 0")
        _check(0.0 <= self.momentum < 1.0, "cem momentum must be in [0, 1)")
        _check(self.low < self.high, "cem low must be < high")
        _check(self.radius > 0, "cem radius must be > 0")
        _check(self.cost in ("final", "sum", "min"), "cem cost must be final, sum or min")
        _check(self.hold >= 1, "cem hold must be >= 1")
        _check(self.spread_weight >= 0, "cem spread_weight must be >= 0")
        _check(self.population_decay >= 1.0, "cem population_decay must be >= 1")
        _check(0.0 <= self.keep_elites <= 1.0, "cem keep_elites must be in [0, 1]")

    @property
    def num_elites(self) -> int:
        return max(1, math.ceil(self.elite_frac * self.num_candidates))

    def population(self, iteration: int) -> int:
        """Candidates sampled at ``iteration``: K, shrinking by ``population_decay`` each
        iteration, never below twice the number of elites (or K, if that is fewer): a pool
        no larger than the elites would pass every sample through and stop the search."""
        k = round(self.num_candidates / self.population_decay**iteration)
        return max(min(2 * self.num_elites, self.num_candidates), k)

    @property
    def rollouts_per_plan(self) -> int:
        """Candidate rollouts one ``plan`` scores (each H model steps): K x I for plain CEM."""
        return sum(self.population(i) for i in range(self.iterations))


@dataclass
class PlanResult:
    actions: Tensor  # [B, H, d_a]: the lowest-cost sequence seen
    cost: Tensor  # [B]
    mean: Tensor  # [B, H, d_a]: the final sampling mean (warm-starts the next plan)
    stats: list[dict[str, float]] = field(default_factory=list)  # one row per iteration


def energy(
    pred: Tensor,
    goal: Tensor,
    kind: str,
    tokens: slice | Tensor | None = None,
    members: int = 1,
) -> Tensor:
    """Mean L2 (squared) or L1 distance per row over every latent element: [M]. ``tokens``
    keeps some of a token grid's tokens (the dim after the rows): a slice, e.g.
    ``slice(0, -1)`` all but a proprio token, or indices (a planner's ``energy_tokens``).
    With ``members`` > 1, pred and goal are an ensemble's states [M, E, *S] and each
    member's energy comes back: [M, E]."""
    if members > 1:
        if pred.shape[1] != members:
            raise ValueError(f"expected {members} ensemble members on dim 1, got {pred.shape}")
        flat = energy(pred.flatten(0, 1), goal.flatten(0, 1), kind, tokens)
        return flat.view(-1, members)
    if tokens is not None:
        pred, goal = pred[:, tokens], goal[:, tokens]
    diff = (pred.float() - goal.float()).flatten(1)
    return diff.pow(2).mean(-1) if kind == "l2" else diff.abs().mean(-1)


def scored_steps(horizon: int, cost: str) -> list[int]:
    """The rollout steps whose energy a plan's cost uses: the last, or all of them."""
    return [horizon - 1] if cost == "final" else list(range(horizon))


def combine_costs(per_step: Tensor, cost: str, spread_weight: float = 0.0) -> Tensor:
    """[M, T] energies of the scored steps -> [M]: summed, or their minimum for ``min``.
    An ensemble's [M, T, E] are combined per member, then the members' mean plus
    ``spread_weight`` x their standard deviation."""
    per_plan = per_step.amin(1) if cost == "min" else per_step.sum(1)
    if per_plan.dim() == 1:
        return per_plan
    return per_plan.mean(-1) + spread_weight * per_plan.std(-1, unbiased=False)


class CEMPlanner:
    """``members`` > 1: ``step`` is an ensemble's, its states are [M, E, *S] (one per member),
    and a candidate's cost combines the members' (``combine_costs``)."""

    def __init__(
        self,
        step: StepFn,
        action_dim: int,
        cfg: CEMConfig | None = None,
        members: int = 1,
        energy_tokens: Tensor | None = None,
    ) -> None:
        self.step, self.action_dim, self.cfg = step, action_dim, cfg or CEMConfig()
        # The state tokens the energy reads (``energy``'s ``tokens``); None: all of them.
        self.energy_tokens = energy_tokens
        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        self.members = members
        if action_dim % self.cfg.hold:
            raise ValueError(
                f"cem hold={self.cfg.hold} must divide the model's action width {action_dim} "
                "(a frameskip-k model's action is k raw actions concatenated)"
            )
        self.search_dim = action_dim // self.cfg.hold  # the numbers CEM samples per step

    def expand(self, actions: Tensor) -> Tensor:
        """Searched actions [..., search_dim] -> model actions [..., action_dim], each held
        ``hold`` times."""
        return actions.repeat(*([1] * (actions.dim() - 1)), self.cfg.hold)

    def reduce(self, actions: Tensor) -> Tensor:
        """Model actions [..., action_dim] -> the searched ones (the first part of each)."""
        return actions[..., : self.search_dim]

    def project(self, actions: Tensor) -> Tensor:
        """Actions into the feasible set: the box, or the L2 ball of ``radius``."""
        c = self.cfg
        if c.bound == "box":
            return actions.clamp(c.low, c.high)
        norm = actions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return actions * (c.radius / norm).clamp(max=1.0)

    def sample(
        self, mean: Tensor, std: Tensor, generator: torch.Generator, k: int | None = None
    ) -> Tensor:
        """One iteration's ``k`` (default K) candidates around mean / std [B, H, search_dim]
        -> model actions [B, k, H, d_a]."""
        shape = (mean.shape[0], k or self.cfg.num_candidates, *mean.shape[1:])
        noise = torch.randn(shape, generator=generator, device=mean.device)
        return self.project(self.expand(mean[:, None] + std[:, None] * noise))

    def check_problem(self, state: Tensor, goal: Tensor) -> None:
        """A latent rollout compares like with like: state and goal are the same shape."""
        if state.shape != goal.shape:
            raise ValueError(f"state {tuple(state.shape)} and goal {tuple(goal.shape)} differ")

    def rollout_cost(
        self, state: Tensor, goal: Tensor, actions: Tensor, tokens: slice | Tensor | None = None
    ) -> Tensor:
        """state [B, *S], goal [B, *S], actions [B, K, H, d_a] -> cost [B, K] (``tokens``: as
        in ``energy``; by default the planner's ``energy_tokens``)."""
        b, k, h, d = actions.shape
        s = state.repeat_interleave(k, dim=0)
        g = goal.repeat_interleave(k, dim=0)
        flat = actions.reshape(b * k, h, d)
        scored, per_step = scored_steps(h, self.cfg.cost), []
        for t in range(h):
            s = self.step(s, flat[:, t])
            if t in scored:
                per_step.append(self.energy_of(s, g, tokens))
        return self.combine(torch.stack(per_step, 1)).view(b, k)

    def energy_of(self, pred: Tensor, goal: Tensor, tokens: slice | Tensor | None = None) -> Tensor:
        """``energy`` with this planner's kind and members, on ``tokens`` or, by default, its
        ``energy_tokens``."""
        tokens = self.energy_tokens if tokens is None else tokens
        return energy(pred, goal, self.cfg.energy, tokens, self.members)

    def combine(self, per_step: Tensor) -> Tensor:
        """Energies of the scored steps [M, T] (an ensemble's [M, T, E]) -> costs [M]."""
        return combine_costs(per_step, self.cfg.cost, self.cfg.spread_weight)

    @torch.no_grad()
    def plan(
        self,
        state: Tensor,
        goal: Tensor,
        *,
        init_mean: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> PlanResult:
        """Plan for a batch of problems: state, goal [B, *S] -> ``PlanResult``."""
        c = self.cfg
        self.check_problem(state, goal)
        b, device = state.shape[0], state.device
        shape = (b, c.horizon, self.action_dim)
        if init_mean is not None and tuple(init_mean.shape) != shape:
            raise ValueError(f"init_mean must be {shape}, got {tuple(init_mean.shape)}")
        # The search runs over [B, H, search_dim]; candidates are expanded to model actions.
        mean = torch.zeros(shape, device=device) if init_mean is None else init_mean.to(device)
        mean = self.reduce(self.project(mean))
        std = torch.full_like(mean, c.init_std)
        gen = generator or torch.Generator(device=device).manual_seed(c.seed)
        best_cost = torch.full((b,), math.inf, device=device)
        best = self.project(self.expand(mean))
        rows = torch.arange(b, device=device)
        stats = []
        kept: tuple[Tensor, Tensor] | None = None  # carried elites and their costs
        n_keep = math.ceil(c.keep_elites * c.num_elites)
        for it in range(c.iterations):
            sampled = c.population(it)
            cand = self.sample(mean, std, gen, sampled)
            if c.keep_mean:
                cand[:, 0] = self.project(self.expand(mean))
            cost = self.rollout_cost(state, goal, cand)  # [B, K_it]
            if kept is not None:
                cand, cost = torch.cat([kept[0], cand], 1), torch.cat([kept[1], cost], 1)
            elite_cost, elite_idx = cost.topk(c.num_elites, dim=1, largest=False)
            elites = cand[rows[:, None], elite_idx]  # [B, E, H, d]
            better = elite_cost[:, 0] < best_cost
            best_cost = torch.where(better, elite_cost[:, 0], best_cost)
            best[better] = elites[better, 0]
            if n_keep:
                kept = (elites[:, :n_keep], elite_cost[:, :n_keep])
            elites = self.reduce(elites)
            new_std = elites.std(dim=1, unbiased=False) if c.num_elites > 1 else std
            mean = c.momentum * mean + (1 - c.momentum) * elites.mean(dim=1)
            std = (c.momentum * std + (1 - c.momentum) * new_std).clamp_min(c.min_std)
            stats.append(
                {
                    "iteration": it,
                    "best_cost": float(best_cost.mean()),
                    "elite_cost": float(elite_cost.mean()),
                    "iteration_best_cost": float(elite_cost[:, 0].mean()),
                    "std": float(std.mean()),
                    "sampled": sampled,
                }
            )
        return PlanResult(best, best_cost, self.project(self.expand(mean)), stats)


def shift_plan(mean: Tensor, steps: int = 1) -> Tensor:
    """Warm start after executing ``steps`` actions: drop them, pad the tail with zeros."""
    if steps >= mean.shape[1]:
        return torch.zeros_like(mean)
    return torch.cat([mean[:, steps:], torch.zeros_like(mean[:, :steps])], dim=1)
