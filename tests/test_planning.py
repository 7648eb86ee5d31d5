"""CEM and MPC: known dynamics are solved, rollouts are batched, bounds hold, seeds repeat."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vjepa2.envs import make_env
from vjepa2.planning import (
    CEMConfig,
    CEMPlanner,
    DoNothingAgent,
    OracleAgent,
    PlannerAgent,
    RandomAgent,
    make_episode,
    run_episode,
    shift_plan,
    wilson_interval,
)


class CountingStep:
    """s_{t+1} = s_t + a_t, counting calls and their batch sizes."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        self.calls.append(s.shape[0])
        return s + a


def test_cem_reaches_a_reachable_goal_of_known_dynamics():
    cfg = CEMConfig(num_candidates=200, horizon=3, iterations=15, seed=1)
    planner = CEMPlanner(CountingStep(), 2, cfg)
    start = torch.zeros(1, 2)
    goal = torch.tensor([[1.5, -0.9]])
    result = planner.plan(start, goal)
    assert result.actions.shape == (1, 3, 2)
    assert result.actions.abs().max() <= 1.0
    reached = start + result.actions.sum(dim=1)
    assert torch.allclose(reached, goal, atol=0.05), reached
    costs = [row["best_cost"] for row in result.stats]
    assert costs == sorted(costs, reverse=True)  # keep_mean: never worse than before
    assert costs[-1] < 1e-3


def test_all_candidates_roll_out_in_one_call_per_horizon_step():
    step = CountingStep()
    cfg = CEMConfig(num_candidates=64, horizon=4, iterations=3)
    CEMPlanner(step, 2, cfg).plan(torch.zeros(5, 2), torch.ones(5, 2))
    assert step.calls == [5 * 64] * (4 * 3)


def test_shrinking_population_with_carried_elites_still_solves_known_dynamics():
    """iCEM's two changes: iteration i samples K / decay^i candidates (never fewer than twice
    the elites), and the best carried elites keep each iteration's best cost from rising."""
    step = CountingStep()
    cfg = CEMConfig(num_candidates=200, horizon=3, iterations=15, population_decay=1.25,
                    keep_elites=0.3, keep_mean=False, seed=1)  # fmt: skip
    result = CEMPlanner(step, 2, cfg).plan(torch.zeros(1, 2), torch.tensor([[1.5, -0.9]]))
    expected = [max(40, round(200 / 1.25**i)) for i in range(15)]
    assert step.calls == [k for k in expected for _ in range(3)]
    assert cfg.rollouts_per_plan == sum(expected) < 200 * 15 / 2
    assert [row["sampled"] for row in result.stats] == expected
    found = [row["iteration_best_cost"] for row in result.stats]
    assert found == sorted(found, reverse=True), found  # the carried elites are still there
    reached = result.actions.sum(dim=1)
    assert torch.allclose(reached, torch.tensor([[1.5, -0.9]]), atol=0.05), reached
    # By default the population never shrinks: plain CEM's K every iteration.
    plain = CEMConfig(num_candidates=50, horizon=3, iterations=4, seed=5)
    assert [plain.population(i) for i in range(4)] == [50] * 4
    assert plain.rollouts_per_plan == 200
    for bad in ({"population_decay": 0.9}, {"keep_elites": 1.5}):
        with pytest.raises(ValueError, match="population_decay|keep_elites"):
            CEMConfig(**bad)


def test_held_actions_search_one_raw_action_per_step():
    """hold=3 on a frameskip-3 model whose action is three raw 2-d moves concatenated."""
    seen: list[torch.Tensor] = []

    def step(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        seen.append(a)
        return s + a.view(-1, 3, 2).sum(1)

    cfg = CEMConfig(num_candidates=100, horizon=2, iterations=10, hold=3, seed=2)
    planner = CEMPlanner(step, 6, cfg)
    assert planner.search_dim == 2
    goal = torch.tensor([[4.0, -2.5]])  # 2 steps x 3 raw moves in the [-1, 1] box
    result = planner.plan(torch.zeros(1, 2), goal)
    assert result.actions.shape == result.mean.shape == (1, 2, 6)
    for a in [*seen, result.actions.view(-1, 6), result.mean.view(-1, 6)]:
        torch.testing.assert_close(a, a[:, :2].repeat(1, 3))  # every candidate held
    reached = result.actions.view(2, 3, 2).sum(dim=(0, 1))
    torch.testing.assert_close(reached, goal[0], atol=0.1, rtol=0)
    # A warm start in model actions is taken back to the searched ones.
    planner.plan(torch.zeros(1, 2), goal, init_mean=shift_plan(result.mean))
    with pytest.raises(ValueError, match="hold=4 must divide the model's action width 6"):
        CEMPlanner(step, 6, CEMConfig(hold=4))


def _two_member_step(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """An ensemble of two 1-d models, states [M, 2, 1]: member 0 is right (x += a_0);
    member 1 wrongly believes a_1 moves x too (x += a_0 + 4 a_1^2)."""
    right = s[:, 0] + a[:, :1]
    wrong = s[:, 1] + a[:, :1] + 4 * a[:, 1:] ** 2
    return torch.stack([right, wrong], 1)


def test_ensemble_spread_weight_keeps_cem_off_plans_only_one_member_believes():
    """Goal x = 2, one step of at most 1: member 1's error promises the goal for |a_1| =
    0.5. Without a penalty the members' mean cost (0.5) beats the honest plan's (1.0); with
    spread_weight = 2 the disagreement costs 1.0 more and CEM keeps a_1 near 0."""
    start, goal = torch.zeros(1, 2, 1), torch.full((1, 2, 1), 2.0)

    def plan(spread_weight: float) -> torch.Tensor:
        cfg = CEMConfig(
            num_candidates=200, horizon=1, iterations=10, spread_weight=spread_weight, seed=3
        )
        return CEMPlanner(_two_member_step, 2, cfg, members=2).plan(start, goal).actions[0, 0]

    exploit, honest = plan(0.0), plan(2.0)
    assert exploit[0] > 0.95 and abs(exploit[1].abs() - 0.5) < 0.05
    assert honest[0] > 0.95 and honest[1].abs() < 0.1
    # Per-member energies, then the mean plus spread_weight x the members' std.
    from vjepa2.planning.cem import combine_costs, energy

    per_member = energy(_two_member_step(start, exploit[None]), goal, "l2", members=2)
    torch.testing.assert_close(
        per_member, torch.tensor([[(2 - exploit[0]) ** 2, 0.0]]), atol=0.02, rtol=0
    )
    torch.testing.assert_close(
        combine_costs(per_member[:, None], "sum", 2.0),
        per_member.mean(1) + per_member.std(1, unbiased=False) * 2,
    )
    with pytest.raises(ValueError, match="expected 2 ensemble members"):
        energy(torch.zeros(4, 3, 1), torch.zeros(4, 3, 1), "l2", members=2)
    with pytest.raises(ValueError, match="spread_weight"):
        CEMConfig(spread_weight=-1.0)


def test_token_grid_states_and_l1_summed_energy():
    cfg = CEMConfig(num_candidates=128, horizon=2, iterations=10, energy="l1", cost="sum")
    planner = CEMPlanner(lambda s, a: s + a[:, None, :], 3, cfg)
    goal = torch.full((2, 4, 3), 0.8)
    result = planner.plan(torch.zeros(2, 4, 3), goal)
    # Summed cost favours getting there at once: the first action does most of the work.
    assert (result.actions[:, 0] > 0.6).all()


def _wall_step(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """s + a in the plane, but a move from x < 0 to x >= 0 stops at the wall unless |y| <= 0.5."""
    nxt = s + a
    blocked = (s[:, 0] < 0) & (nxt[:, 0] >= 0) & (nxt[:, 1].abs() > 0.5)
    x = torch.where(blocked, torch.full_like(nxt[:, 0], -0.01), nxt[:, 0])
    return torch.stack([x, nxt[:, 1]], 1)


def test_min_cost_plans_around_a_wall_that_the_summed_cost_pushes_into():
    start, goal = torch.tensor([[-0.2, 1.5]]), torch.tensor([[0.2, 1.5]])  # the wall between

    def closest_approach(actions: torch.Tensor) -> float:
        s, dist = start, []
        for t in range(actions.shape[1]):
            s = _wall_step(s, actions[:, t])
            dist.append(float((s - goal).norm()))
        return min(dist)

    reach = {}
    for cost in ("sum", "min"):
        cfg = CEMConfig(num_candidates=500, horizon=6, iterations=20, cost=cost, seed=0)
        reach[cost] = closest_approach(CEMPlanner(_wall_step, 2, cfg).plan(start, goal).actions)
    # The summed cost stays at the wall (0.21 away): the door (y = 0) is further at first.
    assert reach["sum"] > 0.19, reach
    # The plan's closest approach goes down to the door, through, and back up to the goal.
    assert reach["min"] < 0.1, reach
    with pytest.raises(ValueError, match="cost"):
        CEMConfig(cost="max")  # type: ignore[arg-type]


def test_l2_ball_bound_and_seeded_repeatability():
    cfg = CEMConfig(num_candidates=50, horizon=3, iterations=4, bound="l2", radius=0.5, seed=3)
    planner = CEMPlanner(CountingStep(), 2, cfg)
    a = planner.plan(torch.zeros(2, 2), torch.full((2, 2), 5.0))
    b = planner.plan(torch.zeros(2, 2), torch.full((2, 2), 5.0))
    assert (a.actions.norm(dim=-1) <= 0.5 + 1e-6).all()
    assert torch.equal(a.actions, b.actions)
    other = CEMPlanner(CountingStep(), 2, CEMConfig(**{**cfg.__dict__, "seed": 4}))
    assert not torch.equal(
        a.actions, other.plan(torch.zeros(2, 2), torch.full((2, 2), 5.0)).actions
    )


def test_warm_start_shape_check_and_shift():
    mean = torch.arange(6.0).view(1, 3, 2)
    assert torch.equal(shift_plan(mean), torch.tensor([[[2.0, 3.0], [4.0, 5.0], [0.0, 0.0]]]))
    planner = CEMPlanner(CountingStep(), 2, CEMConfig(horizon=3, iterations=1))
    with pytest.raises(ValueError, match="init_mean"):
        planner.plan(torch.zeros(1, 2), torch.zeros(1, 2), init_mean=torch.zeros(1, 4, 2))
    with pytest.raises(ValueError, match="elite_frac"):
        CEMConfig(elite_frac=0.0)


def test_wilson_interval():
    lo, hi = wilson_interval(50, 50)
    assert hi == 1.0 and 0.92 < lo < 0.94
    lo, hi = wilson_interval(0, 50)
    assert lo == 0.0 and 0.06 < hi < 0.08


class PositionWorldModel(torch.nn.Module):
    """A hand-made 'world model' for TwoRoom: the latent is the agent's (x, y) / 64, found as
    the red pixels' centroid; a step moves it by 2 px per unit action (walls ignored)."""

    class _Cfg:
        img_size = 64

    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Module()
        self.encoder.cfg = self._Cfg()
        self.dynamics = torch.nn.Module()
        self.dynamics.action_dim = 2

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        red = (frames[:, 0] > 1.0) & (frames[:, 1] < 0.0)  # normalised [B, C, H, W]
        ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
        w = red.float()
        n = w.sum(dim=(1, 2)).clamp_min(1)
        x = (w * (xs + 0.5)).sum(dim=(1, 2)) / n
        y = (w * (ys + 0.5)).sum(dim=(1, 2)) / n
        return torch.stack([x, y], dim=-1) / 64

    def step(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        return s + 2.0 * a.clamp(-1, 1) / 64


@pytest.mark.slow
def test_mpc_with_cem_reaches_nearby_goals_and_baselines_behave():
    env = make_env("tworoom")
    episodes = [make_episode(env, 100 + i, goal_offset=6) for i in range(6)]
    agent = PlannerAgent(
        PositionWorldModel(), CEMConfig(num_candidates=100, horizon=4, iterations=4)
    )
    planned = [run_episode(env, agent, ep, budget=20) for ep in episodes]
    assert sum(o.success for o in planned) >= 5
    assert len(agent.plan_seconds) == sum(len(o.plan_seconds) for o in planned)

    oracle = [run_episode(env, OracleAgent(), ep, budget=20) for ep in episodes]
    assert all(o.success and o.steps_to_success <= 6 for o in oracle)
    far = [make_episode(env, 200 + i, goal_offset=25) for i in range(4)]
    idle = [run_episode(env, DoNothingAgent(2), ep, budget=10) for ep in far]
    assert not any(o.success for o in idle) and all(o.steps == 10 for o in idle)
    rand = run_episode(env, RandomAgent(2, seed=0), far[0], budget=10, record_frames=True)
    again = run_episode(env, RandomAgent(2, seed=0), far[0], budget=10, record_frames=True)
    assert len(rand.frames) == 11
    assert all(np.array_equal(a, b) for a, b in zip(rand.frames, again.frames, strict=True))


@pytest.mark.slow
def test_behaviour_cloning_fits_hindsight_goals_and_round_trips(tmp_path):
    from vjepa2.data.collect import CollectConfig
    from vjepa2.data.collect_sink import collect_local
    from vjepa2.data.transforms import normalize_frames
    from vjepa2.planning.bc import BCAgent, BCConfig, load_bc, save_bc, train_bc
    from vjepa2.train.sources import DatasetSource

    data = tmp_path / "data"
    collect_local(
        CollectConfig(out=str(data), env="tworoom", episodes=8, steps_per_episode=20, seed=5),
        progress=False,
    )
    src = DatasetSource(str(data), "train", torch.device("cpu"))

    def one_step_error(policy) -> float:
        x = normalize_frames(src.frames[:, :10])  # goal = the next frame: a_t is determined
        g = normalize_frames(src.frames[:, 1:11])
        with torch.no_grad():
            pred = policy(x.flatten(0, 1), g.flatten(0, 1))
        return float((pred - src.actions[:, :10].flatten(0, 1)).pow(2).mean())

    cfg = BCConfig(steps=1, max_offset=1, batch_size=32)
    untrained = one_step_error(train_bc(src.frames, src.actions, src.lengths, cfg))
    cfg.steps = 300
    policy = train_bc(src.frames, src.actions, src.lengths, cfg)
    assert one_step_error(policy) < 0.5 * untrained
    save_bc(policy, str(tmp_path / "bc.pt"))
    agent = BCAgent(load_bc(str(tmp_path / "bc.pt")))
    episode = make_episode(make_env("tworoom"), 3, goal_offset=5)
    agent.reset(episode)
    action = agent.act(episode.goal_frame)
    assert action.shape == (1, 2) and np.abs(action).max() <= 1.0
    with torch.no_grad():
        x = agent._prep(episode.goal_frame)
        assert torch.equal(policy(x, x), agent.policy(x, x))


def test_agents_frames_are_resized_into_writable_arrays():
    from vjepa2.data.transforms import resize_square

    # Renders and PIL buffers can be read-only; torch.from_numpy must be able to wrap the result.
    for shape in ((96, 96, 3), (64, 64, 3)):
        frame = np.full(shape, 7, np.uint8)
        frame.setflags(write=False)
        out = resize_square(frame, 64)
        assert out.shape == (64, 64, 3) and out.flags.writeable and int(out[0, 0, 0]) == 7
        torch.from_numpy(out)


def test_true_dynamics_cem_scores_each_candidate_by_its_replayed_frames():
    from vjepa2.planning.true_dynamics import TrueDynamicsAgent, TrueDynamicsCEM

    env = make_env("tworoom")
    # Left room, level with the wall but far from the door (door at y=16 +- 4): moving right
    # stops on the wall's face, which the hand-made model's own step would walk through.
    env.reset(options={"pos": [24.0, 50.0], "goal": [40.0, 50.0], "door_y": 16.0})
    snapshot = env.get_state()
    sim = make_env("tworoom")
    agent = PlannerAgent(PositionWorldModel(), CEMConfig())
    goal = agent.encode_frames([env.render()])  # the start itself, so cost = squared distance
    planner = TrueDynamicsCEM(sim, agent.encode_frames, 4, CEMConfig(cost="final"))
    assert planner.frameskip == 2
    right = torch.zeros(1, 2, 3, 4)
    right[0, 0] = torch.tensor([1.0, 0, 1, 0])  # 3 plan steps x 2 env steps at +2 px: 12 px
    right[0, 1] = torch.tensor([0.0, -1, 0, -1])  # straight up: 12 px
    cost = planner.rollout_cost(torch.from_numpy(snapshot)[None], goal, right)
    face = 32.0 - 1.0  # the wall's left face: the agent stops at x = 31, 7 px from the start
    expected = torch.tensor([[(face - 24.0) ** 2, 12.0**2]]) / 64**2 / 2
    torch.testing.assert_close(cost, expected, rtol=0.05, atol=1e-6)
    assert np.array_equal(env.get_state(), snapshot)  # replays never touch the episode's env
    with pytest.raises(ValueError, match="frameskip"):
        TrueDynamicsCEM(sim, agent.encode_frames, 3)

    planning = TrueDynamicsAgent(PositionWorldModel(), CEMConfig(), sim)
    planning.reset(make_episode(env, 5, goal_offset=4))
    with pytest.raises(RuntimeError, match="observe_state"):
        planning.act(env.render())


def test_plan_audit_flags_the_plans_that_walk_through_the_wall():
    """The hand-made model ignores the wall: toward a goal straight across it, its plan
    promises the goal and the replay stops on the wall's face (over-promised); toward a goal
    in the same room the replay keeps the promise. run_episode hands the audits over."""
    from vjepa2.planning.audit import PlanAudit, audit_summary
    from vjepa2.planning.episodes import PlanningEpisode

    env = make_env("tworoom")

    def audit_one(start: list[float], goal: list[float]) -> PlanAudit:
        env.reset(options={"pos": goal, "goal": goal, "door_y": 16.0})
        goal_frame = env.render().copy()
        frame, _ = env.reset(options={"pos": start, "goal": goal, "door_y": 16.0})
        episode = PlanningEpisode(
            0, env.get_state(), env.get_state(), {}, goal_frame, np.zeros((1, 2))
        )
        cfg = CEMConfig(num_candidates=64, horizon=8, iterations=4, cost="final")
        agent = PlannerAgent(PositionWorldModel(), cfg, audit_env=make_env("tworoom"))
        agent.reset(episode)
        agent.act(frame)
        assert agent.audits == []  # no snapshot, no audit
        agent.observe_state(env.get_state())
        agent.act(frame)
        (audit,) = agent.audits
        return audit

    through_wall = audit_one([24.0, 50.0], [40.0, 50.0])  # door at y = 16: blocked at x = 31
    assert through_wall.predicted < 1e-3 and through_wall.over_promised
    assert through_wall.replayed == pytest.approx((40.0 - 31.0) ** 2 / 64**2 / 2, rel=0.15)
    assert through_wall.still == pytest.approx(16.0**2 / 64**2 / 2, rel=0.1)
    same_room = audit_one([8.0, 50.0], [24.0, 50.0])
    assert not same_room.over_promised and same_room.replayed < 1e-3

    summary = audit_summary([[through_wall], [same_room, same_room]], [False, True])
    assert summary["over_promised_share"] == pytest.approx(1 / 3)
    assert summary["failed_episodes"] == 1 and summary["failed_with_over_promise"] == 1
    assert audit_summary([[], []], [True, False]) is None

    agent = PlannerAgent(
        PositionWorldModel(),
        CEMConfig(num_candidates=16, horizon=2, iterations=1),
        audit_env=make_env("tworoom"),
    )
    outcome = run_episode(env, agent, make_episode(env, 7, goal_offset=4), budget=3)
    assert len(outcome.plan_audits) == len(outcome.plan_seconds) >= 1


@pytest.mark.slow
def test_true_dynamics_agent_plans_in_the_mpc_loop():
    """Given the snapshot before every act, it reaches nearby goals like the cem agent."""
    from vjepa2.planning.true_dynamics import TrueDynamicsAgent

    env = make_env("tworoom")
    episodes = [make_episode(env, 300 + i, goal_offset=6) for i in range(4)]
    cfg = CEMConfig(num_candidates=40, horizon=3, iterations=3)
    agent = TrueDynamicsAgent(PositionWorldModel(), cfg, make_env("tworoom"))
    outcomes = [run_episode(env, agent, ep, budget=12) for ep in episodes]
    assert sum(o.success for o in outcomes) >= 3
    assert agent.name == "cem_true_dynamics" and all(o.agent == agent.name for o in outcomes)


def test_the_energy_reads_only_the_state_parts_asked_for():
    from vjepa2.config import get_preset
    from vjepa2.planning.agents import view_tokens
    from vjepa2.train.builders import build_world_model

    model, _ = build_world_model(get_preset("dynamics", "pusht_small"))
    assert view_tokens(model, ()) is None
    assert view_tokens(model, ("proprio", "blur 12 px")).tolist() == list(range(16, 33))
    assert view_tokens(model, ("sharp", "proprio")).tolist() == [*range(16), 32]
    assert view_tokens(model, ("sharp", "blur 12 px", "proprio")) is None  # the whole state
    for bad in (("blur 8 px",), ("sharp", "sharp")):
        with pytest.raises(ValueError, match="one of \\['sharp', 'blur 12 px', 'proprio'\\]"):
            view_tokens(model, bad)
    with pytest.raises(ValueError, match="named parts"):
        view_tokens(torch.nn.Identity(), ("sharp",))

    # A step that moves tokens 0-1 by the action and leaves tokens 2-3 where they are, away
    # from the goal: read whole, the energy cannot reach 0; read on tokens 0-1, it does.
    def step(state, action):
        out = state.clone()
        out[:, :2] += action[:, None, :]
        return out

    cfg = CEMConfig(num_candidates=64, horizon=2, iterations=4, seed=0)
    state, goal = torch.zeros(1, 4, 2), torch.zeros(1, 4, 2)
    goal[:, :2], goal[:, 2:] = 0.5, 3.0
    whole = CEMPlanner(step, 2, cfg).plan(state, goal, generator=torch.Generator().manual_seed(0))
    parts = CEMPlanner(step, 2, cfg, energy_tokens=torch.arange(2))
    part = parts.plan(state, goal, generator=torch.Generator().manual_seed(0))
    assert float(whole.cost[0]) > 4.0 > 0.1 > float(part.cost[0])
    cand = part.actions[:, None]
    assert torch.equal(  # the planner's tokens are rollout_cost's default
        parts.rollout_cost(state, goal, cand),
        CEMPlanner(step, 2, cfg).rollout_cost(state, goal, cand, tokens=torch.arange(2)),
    )


def test_a_planner_agent_plans_and_audits_on_the_named_parts():
    from vjepa2.config import apply_overrides, get_preset
    from vjepa2.planning.cem import energy
    from vjepa2.train.builders import build_world_model

    grids = ["state.pooled=false", "state.sharp_view=true", "state.blur_px=[4.0]"]
    model, _ = build_world_model(apply_overrides(get_preset("dynamics", "tiny"), grids))
    env = make_env("tworoom")
    episode = make_episode(env, 1_000_000, goal_offset=5)
    agent = PlannerAgent(
        model,
        CEMConfig(num_candidates=8, iterations=1, horizon=2),
        audit_env=make_env("tworoom"),
        energy_views=("blur 4 px",),
    )
    assert agent.planner.energy_tokens.tolist() == list(range(16, 32))
    outcome = run_episode(env, agent, episode, budget=1)
    # The audit's "standing still" cost is the start's energy on the blurred grid alone.
    start = agent.encode(make_env("tworoom").reset(options={"state": episode.start_state})[0])
    goal = agent.encode(episode.goal_frame)
    tokens = torch.arange(16, 32)
    (audit,) = outcome.plan_audits
    assert audit.still == pytest.approx(float(energy(start, goal, "l2", tokens)[0]), rel=1e-5)
    assert audit.still != pytest.approx(float(energy(start, goal, "l2")[0]), rel=1e-3)
