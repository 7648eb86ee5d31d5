"""Proprioception as one more state token (``state.proprio_dims``): config, the token itself,
training windows that carry it, and the planner reading it from the environment's snapshot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vjepa2.config import ConfigError, apply_overrides, get_preset
from vjepa2.config.jobs import StateConfig
from vjepa2.envs import make_env
from vjepa2.planning.agents import PlannerAgent
from vjepa2.planning.cem import CEMConfig
from vjepa2.planning.episodes import make_episode
from vjepa2.planning.mpc import run_episode
from vjepa2.train.builders import build_world_model, load_world_model
from vjepa2.train.local import run_local

PROPRIO = ["state.pooled=false", "state.standardize=true", "state.proprio_dims=[0,1]"]


def _tiny_cfg(out, *extra: str):
    return apply_overrides(
        get_preset("dynamics", "tiny"),
        [f"train.out_dir={out}", "state.standardize_batches=2", *PROPRIO, *extra],
    )


def test_config_refuses_proprio_without_a_standardised_token_grid():
    assert StateConfig(standardize=True, pooled=False, proprio_dims=[0, 1]).proprio_dims == (0, 1)
    with pytest.raises(ConfigError, match="standardize=true and state.pooled=false"):
        StateConfig(standardize=False, pooled=False, proprio_dims=(0,))
    with pytest.raises(ConfigError, match="standardize=true and state.pooled=false"):
        StateConfig(standardize=True, pooled=True, proprio_dims=(0,))
    with pytest.raises(ConfigError, match="repeat"):
        StateConfig(standardize=True, pooled=False, proprio_dims=(1, 1))
    with pytest.raises(ConfigError, match="proprio_weight"):
        StateConfig(standardize=True, pooled=False, proprio_dims=(0,), proprio_weight=0)


def test_the_proprio_token_is_standardised_and_weighed_against_the_grid(tmp_path):
    model, cfg = build_world_model(_tiny_cfg(tmp_path, "state.proprio_weight=0.25"))
    grid = (cfg.encoder.img_size // cfg.encoder.patch_size) ** 2
    assert cfg.dynamics.num_tokens == grid + 1
    gen = torch.Generator().manual_seed(0)
    frames = torch.randn(2, 32, 3, 3, 64, 64, generator=gen)  # fit batches x windows of 3
    proprio = 100 + 20 * torch.randn(2, 32, 3, 2, generator=gen)
    actions = torch.zeros(32, 2, 2)
    model.train()
    for f, p in zip(frames, proprio, strict=True):
        model(f, actions, p)
    assert model.standardizer.fitted and model.proprio_standardizer.fitted

    z = model.encode(frames.flatten(0, 2), proprio.flatten(0, 2))
    assert z.shape == (2 * 32 * 3, grid + 1, cfg.dynamics.state_dim)
    token = z[:, -1]
    assert torch.all(token[:, 2:] == 0)  # zero padding past the proprio entries
    # Over the data it was fitted on, the token carries weight x the grid's variance.
    grid_var = z[:, :-1].double().var(0, unbiased=False).sum()
    token_var = token.double().var(0, unbiased=False).sum()
    assert float(token_var / grid_var) == pytest.approx(0.25, rel=0.02)
    # The same frames with the agent elsewhere differ in the last token only.
    moved = model.encode(frames[0, 0, 0][None], proprio[0, 0, 0][None] + 5)
    same = model.encode(frames[0, 0, 0][None], proprio[0, 0, 0][None])
    assert torch.equal(moved[:, :-1], same[:, :-1]) and not torch.equal(moved, same)

    with pytest.raises(ValueError, match="includes the agent's proprioception"):
        model.encode(frames[0, 0])
    with pytest.raises(ValueError, match="does not match"):
        model.encode(frames[0, 0], torch.zeros(32, 3))
    with pytest.raises(ValueError, match="lack entries"):
        model.proprio_of(np.zeros((4, 1)))
    assert model.proprio_of(np.arange(10.0).reshape(2, 5)).tolist() == [[0, 1], [5, 6]]
    plain, _ = build_world_model(
        apply_overrides(get_preset("dynamics", "tiny"), [f"train.out_dir={tmp_path}"])
    )
    assert plain.proprio_of(np.zeros((1, 2))) is None
    with pytest.raises(ValueError, match="no proprio token"):
        plain.encode(frames[0, 0, :1], torch.zeros(1, 2))


def test_windows_carry_the_states_at_their_frames(tworoom_val_dataset):
    from vjepa2.data.dataset import VideoActionDataset
    from vjepa2.data.splits import split_episodes
    from vjepa2.train.sources import DatasetSource

    root = str(tworoom_val_dataset)
    src = DatasetSource(root, "train", torch.device("cpu"), frameskip=3, proprio_dims=(1,))
    frames, actions, proprio = src.windows(16, 2, torch.Generator().manual_seed(3))
    assert frames.shape[:2] == (16, 3) and actions.shape == (16, 2, 6)
    assert proprio.shape == (16, 3, 1)
    # Each window's proprio is its episode's y position at frames t, t+3, t+6: find t back
    # from the actions, which identify the window.
    episodes = split_episodes(VideoActionDataset.open(root).episodes)["train"]
    for a, p in zip(actions, proprio, strict=True):
        found = [
            (ep, t)
            for ep in episodes
            for t in range(ep.num_frames - 6)
            if np.allclose(ep.actions[t : t + 6].reshape(2, 6), a.numpy())
        ]
        assert found, "window not found in its dataset"
        ep, t = found[0]
        assert np.allclose(p[:, 0].numpy(), ep.states[[t, t + 3, t + 6], 1])
    with pytest.raises(ValueError, match="proprio_dims"):
        DatasetSource(root, "train", torch.device("cpu"), proprio_dims=(2,))


@pytest.mark.slow
def test_a_proprio_model_trains_resumes_and_plans_from_the_snapshot(tmp_path):
    """Synthetic training end to end; the checkpoint rebuilds the token; the planner reads
    the agent's own entries from the snapshot and the goal's from the episode."""
    cfg = _tiny_cfg(
        tmp_path, "train.steps=4", "train.checkpoint_every=2", "train.log_every=1", "loss.horizon=2"
    )
    first = run_local(cfg, progress=False, stop_at=2)
    assert first.checkpoint.name == "step_0000002.pt"
    resumed = run_local(cfg, progress=False)
    assert [r["step"] for r in resumed.history] == [0, 1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in resumed.history)
    # The log splits the loss by part of the state (16 grid tokens, then proprio).
    for row in resumed.history:
        parts = (16 * row["loss_sharp"] + row["loss_proprio"]) / 17
        assert parts == pytest.approx(row["loss"], rel=1e-4)
    model, loaded = load_world_model(resumed.checkpoint)
    assert loaded.state.proprio_dims == (0, 1) and model.proprio_standardizer is not None
    assert float(model.proprio_gain()) > 0

    env = make_env("tworoom")
    episode = make_episode(env, 11, goal_offset=4)
    cem = CEMConfig(num_candidates=8, horizon=2, iterations=1)
    agent = PlannerAgent(model, cem, audit_env=make_env("tworoom"))
    agent.reset(episode)
    expected_goal = model.encode(
        _normalised(episode.goal_frame), model.proprio_of(episode.goal_state[None])
    )
    torch.testing.assert_close(agent._goal, expected_goal)
    with pytest.raises(RuntimeError, match="observe_state"):
        agent.act(env.render())
    outcome = run_episode(env, agent, episode, budget=3)
    assert outcome.steps == 3 and len(outcome.plan_audits) == 3  # audits replay with states
    with pytest.raises(ValueError, match="true state"):
        agent.encode_frames([episode.goal_frame])

    # Plan ranking scores each replayed candidate with the state reached beside its frame.
    from vjepa2.eval.plan_ranking import candidate_costs, grid_tokens
    from vjepa2.planning.cem import energy

    final = PlannerAgent(model, CEMConfig(num_candidates=3, horizon=2, cost="final"))
    final.reset(episode)
    plans = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, -1.0], [0.0, 1.0]], [[0.0] * 2] * 2])
    # The whole state, then the frames' tokens alone (the proprio token left out of both
    # costs), from one replay of the candidates.
    (model_cost, true_cost), (model_grid, true_grid) = candidate_costs(
        final, make_env("tworoom"), episode, plans, [None, grid_tokens(final)]
    )
    env.set_state(episode.start_state)
    start = final.encode(env.render(), episode.start_state).expand(len(plans), -1, -1)
    last = model.rollout(start, plans)[:, -1]  # cost="final": the last predicted state
    goal = final._goal.expand(len(plans), -1, -1)
    torch.testing.assert_close(
        torch.from_numpy(model_grid), energy(last[:, :-1], goal[:, :-1], "l2"), rtol=1e-4, atol=0
    )
    torch.testing.assert_close(
        torch.from_numpy(model_cost), energy(last, goal, "l2"), rtol=1e-4, atol=0
    )
    for plan, cost, cost_grid in zip(plans, true_cost, true_grid, strict=True):
        env.set_state(episode.start_state)
        for a in plan.numpy():
            frame, *_ = env.step(a)
        reached = final.encode(frame, env.get_state())
        want = float(energy(reached, final._goal, final.planner.cfg.energy)[0])
        assert cost == pytest.approx(want, rel=1e-4)
        want_grid = float(energy(reached[:, :-1], final._goal[:, :-1], "l2")[0])
        assert cost_grid == pytest.approx(want_grid, rel=1e-4) and cost_grid != cost


def _normalised(frame: np.ndarray) -> torch.Tensor:
    from vjepa2.data.transforms import normalize_frames

    return normalize_frames(torch.from_numpy(np.ascontiguousarray(frame))[None])


def test_replayed_states_match_sequential_steps():
    from vjepa2.envs.registry import replay_frames, replay_frames_and_states

    for name in ("tworoom", "pusht"):
        env = make_env(name)
        env.reset(seed=4)
        snapshot = env.get_state()
        rng = np.random.default_rng(0)
        actions = rng.uniform(-1, 1, (3, 4, 2))
        frames, states = replay_frames_and_states(make_env(name), snapshot, actions, [1, 3])
        assert np.array_equal(frames, replay_frames(make_env(name), snapshot, actions, [1, 3]))
        for k in range(3):
            env.set_state(snapshot)
            for i, a in enumerate(actions[k]):
                env.step(a)
                if i in (1, 3):
                    want = env.get_state()[: states.shape[-1]]
                    np.testing.assert_allclose(states[k, [1, 3].index(i)], want, rtol=1e-6)


@pytest.mark.slow
def test_the_evaluation_job_runs_a_proprio_model_end_to_end(tworoom_val_dataset, tmp_path):
    """Planning, its audits, true-dynamics CEM, the FLOPs count and the held-out rollouts
    all hand the model its proprioception."""
    from jobs import evaluate

    cfg = _tiny_cfg(tmp_path / "train", "train.steps=2", "train.checkpoint_every=2")
    checkpoint = run_local(cfg, progress=False).checkpoint
    out = tmp_path / "eval"
    results = evaluate.main(
        [
            f"--checkpoint={checkpoint}",
            f"--dataset={tworoom_val_dataset}",
            "--episodes=1",
            "--local",
            "--no-mlflow",
            f"--out={out}",
            "--set=agents=[cem,cem_true_dynamics]",
            "--set=budget=2",
            "--set=cem.num_candidates=8",
            "--set=cem.iterations=1",
        ]
    )
    rows = {r["agent"]: r for r in results["planning"]}
    assert set(rows) == {"cem", "cem_true_dynamics"}
    assert rows["cem"]["audit"]["plans_audited"] == 2
    assert results["flops_per_step"]["cem"] > 0
    assert list(results["rollout_cosine"]["model"]) == [1, 5, 10]


@pytest.mark.slow
def test_the_registered_pyfunc_takes_proprio_as_a_flat_param(tmp_path, monkeypatch):
    """The MLflow model of a proprio checkpoint encodes frames with the agent's readings, as
    the world model does, and says what it needs when they are missing or malformed."""
    import mlflow

    from vjepa2.tracking import Tracker

    cfg = _tiny_cfg(tmp_path / "train", "train.steps=2", "train.checkpoint_every=2")
    checkpoint = run_local(cfg, progress=False).checkpoint
    uri = f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    Tracker.start_or_resume(uri, "proprio", "dyn").register_checkpoint_model(
        checkpoint, "proprio-dynamics", "dynamics"
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    served = mlflow.pyfunc.load_model("models:/proprio-dynamics/1")

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    readings = rng.uniform(0, 64, (3, 2))
    latents = served.predict(frames, params={"proprio": readings.ravel().tolist()})
    model, _ = load_world_model(checkpoint)
    with torch.no_grad():
        expected = model.eval().encode(
            torch.cat([_normalised(f) for f in frames]), torch.from_numpy(readings).float()
        )
    assert latents.shape == tuple(expected.shape)  # the grid's tokens and the proprio token
    np.testing.assert_allclose(latents, expected.numpy(), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="proprioception"):
        served.predict(frames)
    with pytest.raises(ValueError, match="3 frames x 2"):
        served.predict(frames, params={"proprio": [1.0, 2.0]})
