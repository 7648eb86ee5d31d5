"""Planning in latent space: batched CEM, receding-horizon MPC, baselines, episodes."""

from vjepa2.planning.agents import (
    DoNothingAgent,
    OracleAgent,
    PlannerAgent,
    RandomAgent,
)
from vjepa2.planning.cem import CEMConfig, CEMPlanner, PlanResult, shift_plan
from vjepa2.planning.episodes import PlanningEpisode, make_episode, wilson_interval
from vjepa2.planning.mpc import EpisodeOutcome, run_episode

__all__ = [
    "CEMConfig",
    "CEMPlanner",
    "DoNothingAgent",
    "EpisodeOutcome",
    "OracleAgent",
    "PlanResult",
    "PlannerAgent",
    "PlanningEpisode",
    "RandomAgent",
    "make_episode",
    "run_episode",
    "shift_plan",
    "wilson_interval",
]
