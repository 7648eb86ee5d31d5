"""World-model ensembles: members' states side by side, one plan for all of them."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from vjepa2.envs import make_env
from vjepa2.planning import CEMConfig, PlannerAgent, make_episode
from vjepa2.planning.ensemble import WorldModelEnsemble
from vjepa2.train.builders import load_world_model


def test_an_ensemble_of_one_model_twice_plans_as_that_model(tiny_world_model):
    """Identical members agree everywhere: the same states per member, no spread, and the
    same plan (actions and cost) as the model alone, whatever spread_weight is."""
    single, _ = load_world_model(tiny_world_model)
    ensemble = WorldModelEnsemble([single, load_world_model(tiny_world_model)[0]])
    assert ensemble.members == 2 and ensemble.action_dim == single.dynamics.action_dim

    env = make_env("tworoom")
    episode = make_episode(env, 3, goal_offset=5)
    frame, _ = env.reset(options={"state": episode.start_state})
    cfg = CEMConfig(num_candidates=16, horizon=2, iterations=2, cost="sum", spread_weight=1.0)
    agents = [
        PlannerAgent(model, cfg, audit_env=make_env("tworoom")) for model in (single, ensemble)
    ]
    plans = []
    for agent in agents:
        agent.reset(episode)
        agent.observe_state(env.get_state())
        plans.append(agent.act(frame))
    torch.testing.assert_close(torch.from_numpy(plans[1]), torch.from_numpy(plans[0]))
    (alone,), (both,) = agents[0].audits, agents[1].audits
    assert both.predicted == pytest.approx(alone.predicted, rel=1e-5)
    assert both.replayed == pytest.approx(alone.replayed, rel=1e-5)
    assert both.still == pytest.approx(alone.still, rel=1e-5)

    state = agents[1].encode(frame)
    assert state.shape == (1, 2, *agents[0].encode(frame).shape[1:])
    torch.testing.assert_close(state[:, 0], state[:, 1])
    with pytest.raises(ValueError, match="expected 2 member states"):
        ensemble.step(state[:, 0], torch.zeros(1, ensemble.action_dim))


def test_members_must_agree_on_what_they_plan_over(tiny_world_model):
    from vjepa2.models.dynamics import DynamicsModel
    from vjepa2.world_model import WorldModel

    model, cfg = load_world_model(tiny_world_model)
    wider = WorldModel(
        model.encoder,
        DynamicsModel(replace(cfg.dynamics, action_dim=cfg.dynamics.action_dim + 1)),
        cfg.state,
        cfg.loss,
    )
    with pytest.raises(ValueError, match="member 1 differs from member 0 in .*action_dim"):
        WorldModelEnsemble([model, wider])
    with pytest.raises(ValueError, match="at least 2"):
        WorldModelEnsemble([model])


def test_evaluation_plans_with_the_ensemble_checkpoints(tiny_world_model):
    from vjepa2.eval.planning import PlanningEvalConfig, build_agent, evaluate_seeds

    cfg = PlanningEvalConfig(
        budget=2,
        agents=("cem", "cem_true_dynamics"),
        ensemble_checkpoints=(str(tiny_world_model),),
        cem=CEMConfig(num_candidates=8, iterations=1, horizon=2, spread_weight=0.5),
    )
    agent = build_agent("cem", cfg, str(tiny_world_model), 2)
    assert isinstance(agent.model, WorldModelEnsemble) and agent.planner.members == 2
    outcomes = evaluate_seeds(cfg, [1_000_000], str(tiny_world_model))
    assert [o.agent for o in outcomes] == ["cem", "cem_true_dynamics"]
    assert all(len(o.plan_seconds) >= 1 for o in outcomes)
    assert len(outcomes[0].plan_audits) == len(outcomes[0].plan_seconds)
