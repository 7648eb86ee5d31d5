"""Does the world model rank candidate plans the way the environment does?

CEM keeps the candidates its model scores best. Where the model's ranking differs from the
one their exact rollouts get under the same energy, CEM refines the wrong plans however good
the energy is. ``cem`` against ``cem_true_dynamics`` measures that loss as success rates over
whole episodes; this measures it at one plan: the same K candidates from one start state,
scored once on the model's latent rollouts and once on the environment's (``TrueDynamicsCEM``),
and the two rankings compared. The logged actions that reached the goal (the oracle's) make
one more candidate: the environment always ranks it first, and where the model ranks it says
whether the model knows a plan that works when it sees one. ``cem_pick`` and ``pick_verdict``
ask the same of CEM's finished plan: beside the logged one, is it the search, the model or the
energy that chose it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from vjepa2.envs.registry import WorldEnv
from vjepa2.planning.agents import PlannerAgent
from vjepa2.planning.episodes import PlanningEpisode
from vjepa2.planning.true_dynamics import TrueDynamicsCEM


@dataclass
class RankingStats:
    spearman: float  # rank correlation of model and true costs over the candidates
    elite_overlap: float  # share of the model's elites that are also the true elites
    regret: float  # true cost of the model's pick: 0 = the true best, 1 = the median candidate
    # How far the model's costs spread over the candidates against the world's (interquartile
    # ranges): near 0, the model predicts much the same future whatever the actions.
    spread: float
    # The model's median cost over the world's: under 1, it promises more than the world gives.
    level: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _ranks(x: np.ndarray) -> np.ndarray:
    # Average ranks for ties: a model that moves nothing scores every candidate the same.
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation, ties averaged; 0 when either side is constant."""
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    return float(np.corrcoef(ra, rb)[0, 1]) if ra.std() > 0 and rb.std() > 0 else 0.0


def ranking_stats(model_cost: np.ndarray, true_cost: np.ndarray, num_elites: int) -> RankingStats:
    """Compare two scorings [K] of the same candidates (lower is better)."""
    model_cost, true_cost = np.asarray(model_cost, float), np.asarray(true_cost, float)
    if model_cost.shape != true_cost.shape or model_cost.ndim != 1 or len(model_cost) < 2:
        raise ValueError(
            f"expected two cost vectors of the same length >= 2, got "
            f"{model_cost.shape} and {true_cost.shape}"
        )
    if not 1 <= num_elites <= len(model_cost):
        raise ValueError(f"num_elites must be in [1, {len(model_cost)}], got {num_elites}")
    rho = spearman(model_cost, true_cost)
    model_elites = set(np.argsort(model_cost, kind="stable")[:num_elites].tolist())
    true_elites = set(np.argsort(true_cost, kind="stable")[:num_elites].tolist())
    best, median = float(true_cost.min()), float(np.median(true_cost))
    picked = float(true_cost[int(np.argmin(model_cost))])
    regret = (picked - best) / (median - best) if median > best else 0.0
    true_iqr = _iqr(true_cost)
    spread = _iqr(model_cost) / true_iqr if true_iqr > 0 else float("nan")
    level = float(np.median(model_cost)) / median if median > 0 else float("nan")
    return RankingStats(rho, len(model_elites & true_elites) / num_elites, regret, spread, level)


def _iqr(x: np.ndarray) -> float:
    q1, q3 = np.percentile(x, [25, 75])
    return float(q3 - q1)


@torch.no_grad()
def candidate_costs(
    agent: PlannerAgent,
    sim: WorldEnv,
    episode: PlanningEpisode,
    actions: torch.Tensor,
    token_sets: Sequence[slice | None] = (None,),
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Plans [K, H, d_a] from the episode's start, toward its goal frame -> (model, true) costs,
    one pair per entry of ``token_sets``: None scores every token of the state, a slice some
    of them (``grid_tokens`` leaves out a proprio token). The candidates are replayed once.

    ``sim`` renders the start frame and replays the candidates; the model is ``agent``'s, with
    its CEM settings (energy, final or summed cost).
    """
    if actions.dim() != 3 or actions.shape[-1] != agent.planner.action_dim:
        raise ValueError(
            f"expected plans [K, H, {agent.planner.action_dim}], got {tuple(actions.shape)}"
        )
    start, goal = start_and_goal(agent, sim, episode)
    proprio = bool(agent.proprio_dims)
    plans = actions[None]
    exact = TrueDynamicsCEM(
        sim,
        agent.encode_frames,
        agent.planner.action_dim,
        agent.planner.cfg,
        with_states=proprio,
        members=agent.planner.members,
    )
    snapshot = torch.from_numpy(np.asarray(episode.start_state, np.float64))[None]
    replayed = exact.replayed_latents(snapshot, plans)
    out = []
    for tokens in token_sets:
        model_cost = agent.planner.rollout_cost(start, goal, plans.to(start.device), tokens)
        true_cost = exact.score(replayed, goal, plans.shape, tokens)
        out.append((model_cost[0].cpu().numpy(), true_cost[0].cpu().numpy()))
    return out


def start_and_goal(
    agent: PlannerAgent, sim: WorldEnv, episode: PlanningEpisode
) -> tuple[torch.Tensor, torch.Tensor]:
    """The agent's states [1, *S] of the episode's start (rendered by ``sim``) and goal."""
    sim.set_state(episode.start_state)
    proprio = bool(agent.proprio_dims)
    start = agent.encode(sim.render(), episode.start_state if proprio else None)
    return start, agent.encode(episode.goal_frame, episode.goal_state if proprio else None)


@torch.no_grad()
def cem_pick(
    agent: PlannerAgent, sim: WorldEnv, episode: PlanningEpisode, generator: torch.Generator
) -> torch.Tensor:
    """The plan [H, d_a] the agent's CEM picks from the episode's start toward its goal after
    all its iterations, from a cold start: the MPC loop's first plan."""
    start, goal = start_and_goal(agent, sim, episode)
    return agent.planner.plan(start, goal, generator=generator).actions[0].cpu()


# Why CEM's pick is what it is, against the logged plan that reaches the goal (see pick_verdict).
PICK_VERDICTS = ("search", "model", "energy")


def pick_verdict(model_cost: np.ndarray, true_cost: np.ndarray) -> str:
    """Costs [2] of (CEM's pick, the logged plan) on the model and in the world -> a verdict.

    - "search": the model scores the logged plan below its pick, so CEM missed a plan its own
      model prefers; more candidates or iterations would find better plans in this model.
    - "model": the model prefers its pick while the world prefers the logged plan; the
      model's error chose, and only a better model helps.
    - "energy": the world too scores the pick no worse than the logged plan; the energy (or
      the summed cost) prefers it, whatever the model.
    """
    model_cost, true_cost = np.asarray(model_cost, float), np.asarray(true_cost, float)
    if model_cost.shape != (2,) or true_cost.shape != (2,):
        raise ValueError(
            f"expected the costs of (pick, logged plan), got {model_cost.shape} and "
            f"{true_cost.shape}"
        )
    if model_cost[1] < model_cost[0]:
        return "search"
    return "model" if true_cost[1] < true_cost[0] else "energy"


def grid_tokens(agent: PlannerAgent) -> slice | None:
    """The frames' tokens of the agent's state: all but the last where it is a proprio token
    (what a plan does to the scene, not where it takes the agent); None: every token."""
    return slice(0, -1) if agent.proprio_dims else None


def sample_plans(agent: PlannerAgent, generator: torch.Generator) -> torch.Tensor:
    """The agent's CEM candidates as its first iteration draws them (zero mean, ``init_std``):
    [K, H, d_a]."""
    c, planner = agent.planner.cfg, agent.planner
    mean = torch.zeros(1, c.horizon, planner.search_dim)
    return planner.sample(mean, torch.full_like(mean, c.init_std), generator)[0]


def oracle_plan(episode: PlanningEpisode, horizon: int, action_dim: int) -> torch.Tensor | None:
    """The episode's logged actions as one plan [H, d_a] (frameskip sub-steps concatenated),
    padded with zeros (stay at the goal, as the oracle agent does); None when they need more
    than ``horizon`` plan steps or do not split into ``action_dim``-wide steps."""
    actions = np.asarray(episode.oracle_actions, np.float32)
    env_dim = actions.shape[1]
    if action_dim % env_dim:
        return None
    steps = horizon * (action_dim // env_dim)
    if len(actions) > steps:
        return None
    padded = np.zeros((steps, env_dim), np.float32)
    padded[: len(actions)] = actions
    return torch.from_numpy(padded.reshape(horizon, action_dim))


def model_rank(model_cost: np.ndarray, index: int) -> float:
    """Share of the other candidates the model scores below candidate ``index`` (0: its best)."""
    others = np.delete(np.asarray(model_cost, float), index)
    return float((others < model_cost[index]).mean())
