"""Model-vs-environment ranking of CEM candidates: the statistics, and a known model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.test_planning import PositionWorldModel
from vjepa2.envs import make_env
from vjepa2.eval.plan_ranking import (
    candidate_costs,
    cem_pick,
    model_rank,
    oracle_plan,
    pick_verdict,
    ranking_stats,
    sample_plans,
    spearman,
)
from vjepa2.planning import CEMConfig, PlannerAgent, make_episode
from vjepa2.planning.episodes import PlanningEpisode


def test_ranking_stats_on_known_orderings():
    true = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    same = ranking_stats(true * 3 + 1, true, num_elites=2)
    assert same.spearman == pytest.approx(1.0) and same.elite_overlap == 1.0
    assert same.regret == 0.0
    reversed_ = ranking_stats(-true, true, num_elites=2)
    assert reversed_.spearman == pytest.approx(-1.0) and reversed_.elite_overlap == 0.0
    assert reversed_.regret == pytest.approx(9.0 / 4.5)  # the worst candidate, 2x the median's
    assert same.spread == pytest.approx(3.0)  # the model's costs spread 3x the world's
    assert same.level == pytest.approx((3 * np.median(true) + 1) / np.median(true))
    flat = ranking_stats(np.ones(10), true, num_elites=3)  # a model that moves nothing
    assert flat.spearman == 0.0 and flat.spread == 0.0
    swapped = ranking_stats(np.array([1.0, 0.0, *true[2:]]), true, num_elites=1)
    assert swapped.elite_overlap == 0.0 and swapped.regret == pytest.approx(1.0 / 4.5)
    with pytest.raises(ValueError, match="same length"):
        ranking_stats(np.ones(3), np.ones(4), 1)
    with pytest.raises(ValueError, match="num_elites"):
        ranking_stats(true, true, 11)


def test_oracle_plan_concatenates_frameskip_steps_and_pads_with_stays():
    env = make_env("tworoom")
    episode = make_episode(env, 3, goal_offset=7)
    env.close()
    logged = episode.oracle_actions  # [7, 2]
    plan = oracle_plan(episode, horizon=4, action_dim=4)  # frameskip 2: 8 env steps, 1 padded
    assert plan.shape == (4, 4)
    flat = plan.reshape(8, 2).numpy()
    np.testing.assert_array_equal(flat[:7], logged)
    assert not flat[7].any()
    assert oracle_plan(episode, horizon=3, action_dim=4) is None  # 6 env steps < 7 logged
    assert oracle_plan(episode, horizon=4, action_dim=3) is None  # not whole env actions
    assert model_rank(np.array([0.5, 0.1, 0.9, 0.2]), 0) == pytest.approx(2 / 3)
    assert model_rank(np.array([0.5, 0.6, 0.9]), 0) == 0.0


def test_spearman_averages_ties_and_is_zero_for_a_constant():
    assert spearman(np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0])) == pytest.approx(1.0)
    # [1, 1, 2] ranks as [0.5, 0.5, 2]: against [0, 1, 2], rho = sqrt(3) / 2
    tied = spearman(np.array([1.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0]))
    assert tied == pytest.approx(np.sqrt(3) / 2)
    assert spearman(np.ones(4), np.arange(4.0)) == 0.0


def test_pick_verdict_names_what_chose_the_plan():
    logged_reaches = np.array([0.9, 0.0])  # world: the logged plan reaches the goal
    assert pick_verdict(np.array([0.5, 0.3]), logged_reaches) == "search"
    assert pick_verdict(np.array([0.2, 0.3]), logged_reaches) == "model"
    assert pick_verdict(np.array([0.2, 0.3]), np.array([0.4, 0.4])) == "energy"
    with pytest.raises(ValueError, match="pick, logged plan"):
        pick_verdict(np.ones(3), np.ones(2))


@pytest.mark.slow
def test_an_exact_model_ranks_open_space_plans_as_the_environment_does():
    """The hand-made model is the environment's own motion away from walls: its costs and the
    replayed ones agree; a wall-blind step on plans that hit the wall does not."""
    env = make_env("tworoom")
    agent = PlannerAgent(PositionWorldModel(), CEMConfig(num_candidates=60, horizon=3))
    gen = torch.Generator().manual_seed(0)
    plans = sample_plans(agent, gen)
    assert plans.shape == (60, 3, 2) and plans.abs().max() <= 1.0
    again = sample_plans(agent, torch.Generator().manual_seed(0))
    assert torch.equal(plans, again)

    def placed(pos: list[float]) -> tuple[np.ndarray, np.ndarray]:
        env.reset(options={"pos": pos, "goal": [40.0, 50.0], "door_y": 16.0})
        return env.get_state().copy(), env.render()

    start, _ = placed([14.0, 40.0])
    goal_state, goal_frame = placed([18.0, 44.0])
    open_space = PlanningEpisode(0, start, goal_state, {}, goal_frame, np.zeros((1, 2), np.float32))
    ((model_cost, true_cost),) = candidate_costs(agent, env, open_space, plans)
    stats = ranking_stats(model_cost, true_cost, num_elites=6)
    assert stats.spearman > 0.95 and stats.elite_overlap >= 0.5 and stats.regret < 0.1

    # CEM's finished plan beats every first-iteration draw on the model, is reproducible by
    # seed, and, the model being exact here, the world agrees it beats standing still.
    pick = cem_pick(agent, env, open_space, torch.Generator().manual_seed(1))
    assert pick.shape == (3, 2)
    assert torch.equal(pick, cem_pick(agent, env, open_space, torch.Generator().manual_seed(1)))
    stay = torch.zeros(3, 2)
    ((pick_model, pick_true),) = candidate_costs(agent, env, open_space, torch.stack([pick, stay]))
    assert pick_model[0] <= model_cost.min() and pick_true[0] < pick_true[1]
    assert pick_verdict(pick_model, pick_true) == "energy"

    # At the wall's left face, far from the door, pushing right goes nowhere in the
    # environment but 6 px on in the model: the plans that push right rank differently.
    open_space.start_state, _ = placed([29.0, 50.0])
    open_space.goal_state, open_space.goal_frame = placed([29.0, 45.0])  # up: clear of the wall
    pushing = plans.clone()
    pushing[..., 0] = pushing[..., 0].abs()  # every plan pushes right, into the wall
    at_wall = ranking_stats(*candidate_costs(agent, env, open_space, pushing)[0], num_elites=6)
    assert at_wall.spearman < 0.97 and at_wall.elite_overlap < stats.elite_overlap
    with pytest.raises(ValueError, match="plans"):
        candidate_costs(agent, env, open_space, plans[0])
