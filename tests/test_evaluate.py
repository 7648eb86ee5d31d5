"""The evaluation job end to end on a tiny world model: table, figures, JSON, MLflow."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from mlflow import MlflowClient

from jobs import evaluate


@pytest.mark.slow
def test_evaluate_writes_the_table_figures_and_an_mlflow_run(tiny_world_model, tmp_path):
    out = tmp_path / "eval"
    results = evaluate.main(
        [
            f"--checkpoint={tiny_world_model}",
            "--episodes=3",
            "--local",
            f"--out={out}",
            "--set=budget=6",
            "--set=cem.num_candidates=16",
            "--set=cem.iterations=2",
        ]
    )
    rows = {r["agent"]: r for r in results["planning"]}
    assert set(rows) == {"cem", "random", "do_nothing", "oracle"}
    assert all(r["episodes"] == 3 for r in rows.values())
    assert rows["cem"]["plan_s_per_step"] > 0 and rows["random"]["plan_s_per_step"] >= 0
    assert rows["do_nothing"]["success_rate"] <= rows["oracle"]["success_rate"]
    saved = json.loads((out / "results.json").read_text())
    assert saved["planning"] == results["planning"]
    # The frame size the episodes were drawn at: the model's (64, TwoRoom's default too).
    assert saved["config"]["env_kwargs"] == {"render_size": 64}
    assert "| cem |" in (out / "results.md").read_text()
    assert "plans over-promised" in (out / "results.md").read_text()
    # Where the failed episodes ended against the goal, in TwoRoom's criterion's terms.
    for r in rows.values():
        failed = r["success_rate"] < 1
        assert (r["failures_ended"] is not None) == failed
        assert not failed or r["failures_ended"]["distance_px"] > 4.5  # outside the radius
    # Every cem plan was replayed in the real environment; the baselines make no plans.
    audit = rows["cem"]["audit"]
    assert audit["plans_audited"] >= 3 and 0.0 <= audit["over_promised_share"] <= 1.0
    assert rows["oracle"]["audit"] is None
    assert (out / "plan_audit.png").stat().st_size > 0
    assert (out / "success.png").stat().st_size > 0
    assert len(list(out.glob("plan_cem_*.png"))) == 1

    client = MlflowClient(f"sqlite:///{tiny_world_model.parent.parent}/mlflow.db")
    exp = client.get_experiment_by_name("vjepa2-eval")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.metrics["oracle/success_rate"] == rows["oracle"]["success_rate"]
    assert run.data.metrics["cem/over_promised_share"] == audit["over_promised_share"]
    ended = rows["do_nothing"]["failures_ended"]  # standing still misses goals 25 steps away
    assert run.data.metrics["do_nothing/failures_ended_distance_px"] == pytest.approx(
        ended["distance_px"]
    )
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "results.md",
        "success.png",
        "plan_audit.png",
    }


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--checkpoint=/nonexistent.pt"], "checkpoint not found"),
        (["--set=agents=[cem,magic]"], "unknown agents"),
        (["--set=cem.elite_frac=2"], "elite_frac"),
        (["--set=budgett=3"], "unknown key"),
        (["--set=ensemble_checkpoints=[/nonexistent.pt]"], "ensemble checkpoint not found"),
        (["--set=energy_views=[magic]"], r"energy_views \['magic'\].*one of"),
    ],
)
def test_bad_arguments_exit_with_one_clear_line(tiny_world_model, argv, message):
    full = (
        argv if argv[0].startswith("--checkpoint") else [f"--checkpoint={tiny_world_model}", *argv]
    )
    with pytest.raises(SystemExit, match=message):
        evaluate.main(full)


def test_true_dynamics_agent_runs_beside_cem_on_the_same_episodes(tiny_world_model):
    from vjepa2.eval.planning import PlanningEvalConfig, evaluate_seeds
    from vjepa2.planning import CEMConfig

    cfg = PlanningEvalConfig(
        episodes=2,
        budget=3,
        agents=("cem", "cem_true_dynamics"),
        cem=CEMConfig(num_candidates=8, iterations=1, horizon=2),
    )
    outcomes = evaluate_seeds(cfg, [1_000_000, 1_000_001], str(tiny_world_model))
    assert [o.agent for o in outcomes] == ["cem", "cem_true_dynamics"] * 2
    assert all(o.steps == 3 or o.success for o in outcomes)
    assert all(len(o.plan_seconds) >= 1 for o in outcomes)
    # The energy read through energy_views' token indices: the tiny model's state is one
    # pooled token, so naming it plans exactly as the whole state does, audits included.
    named = evaluate_seeds(
        replace(cfg, energy_views=("pooled",)), [1_000_000, 1_000_001], str(tiny_world_model)
    )
    for a, b in zip(outcomes, named, strict=True):
        assert (a.success, a.steps, a.plan_audits) == (b.success, b.steps, b.plan_audits)


def test_episodes_are_drawn_at_the_size_of_the_models_training_frames(tiny_world_model):
    from dataclasses import replace

    from vjepa2.envs.pusht import PushTConfig
    from vjepa2.eval.planning import (
        PlanningEvalConfig,
        at_model_frame_size,
        build_agent,
        evaluate_seeds,
    )
    from vjepa2.planning import CEMConfig
    from vjepa2.train.builders import checkpoint_img_size

    size = checkpoint_img_size(tiny_world_model)
    assert size != PushTConfig().render_size  # so that the default would have been resized
    cfg = PlanningEvalConfig(
        env="pusht", budget=2, agents=("cem",), cem=CEMConfig(num_candidates=8, iterations=1)
    )
    assert at_model_frame_size(cfg, tiny_world_model).env_kwargs == {"render_size": size}
    (outcome,) = evaluate_seeds(cfg, [1_000_000], str(tiny_world_model), record=1)
    assert all(f.shape == (size, size, 3) for f in outcome.frames)
    # A size given is kept, and one that differs from the model's is flagged when the model
    # is loaded to plan.
    given = replace(cfg, env_kwargs={"render_size": 96})
    assert at_model_frame_size(given, tiny_world_model) is given
    with pytest.warns(UserWarning, match=f"trained on {size} px"):
        build_agent("cem", given, str(tiny_world_model), 2)
    # No checkpoint (baselines only), or an env without a frame-size field: left as it is.
    assert at_model_frame_size(cfg, None) is cfg
    gym = PlanningEvalConfig(env="gym:CartPole-v1")
    assert at_model_frame_size(gym, tiny_world_model) is gym


def test_episode_log_key_ignores_only_settings_that_do_not_change_an_episode(tmp_path):
    from vjepa2.config.base import to_dict
    from vjepa2.eval.episode_log import fingerprint
    from vjepa2.eval.planning import PlanningEvalConfig
    from vjepa2.planning import CEMConfig

    ckpt = tmp_path / "final.pt"
    ckpt.write_bytes(b"weights")
    key = fingerprint(ckpt, to_dict(PlanningEvalConfig(episodes=30)))
    assert fingerprint(ckpt, to_dict(PlanningEvalConfig(episodes=50, audit_plans=False))) == key
    # A log written before audits existed had no audit_plans entry: still the same key.
    before = {
        k: v for k, v in to_dict(PlanningEvalConfig(episodes=30)).items() if k != "audit_plans"
    }
    assert fingerprint(ckpt, before) == key
    # Nor one written before cem.hold, cem.spread_weight or ensembles existed; at other
    # values they plan otherwise.
    old_cem = {k: v for k, v in before["cem"].items() if k not in ("hold", "spread_weight")}
    no_ensemble = {k: v for k, v in before.items() if k != "ensemble_checkpoints"}
    assert fingerprint(ckpt, {**no_ensemble, "cem": old_cem}) == key
    assert fingerprint(ckpt, to_dict(PlanningEvalConfig(cem=CEMConfig(hold=2)))) != key
    spread = PlanningEvalConfig(episodes=30, cem=CEMConfig(spread_weight=1.0))
    assert fingerprint(ckpt, to_dict(spread)) != key
    # An ensemble's key follows its members' files too.
    member = tmp_path / "member.pt"
    member.write_bytes(b"member")
    ensemble = to_dict(PlanningEvalConfig(episodes=30, ensemble_checkpoints=(str(member),)))
    ensemble_key = fingerprint(ckpt, ensemble)
    assert ensemble_key != key
    member.write_bytes(b"retrained member")
    assert fingerprint(ckpt, ensemble) != ensemble_key
    assert fingerprint(ckpt, to_dict(PlanningEvalConfig(cem=CEMConfig(horizon=3)))) != key
    # Logs from before energy_views read as the whole state's energy; a part of it plans
    # otherwise.
    assert fingerprint(ckpt, {k: v for k, v in no_ensemble.items() if k != "energy_views"}) == key
    parts = PlanningEvalConfig(episodes=30, energy_views=("proprio",))
    assert fingerprint(ckpt, to_dict(parts)) != key
    assert fingerprint(ckpt, to_dict(PlanningEvalConfig(budget=40))) != key
    ckpt.write_bytes(b"other weights")
    assert fingerprint(ckpt, to_dict(PlanningEvalConfig(episodes=30))) != key


def test_an_interrupted_evaluation_resumes_from_its_episode_log(tiny_world_model, tmp_path, capsys):
    out = tmp_path / "eval"
    common = [
        f"--checkpoint={tiny_world_model}",
        "--local",
        "--no-mlflow",
        f"--out={out}",
        "--set=agents=[cem,oracle]",
        "--set=budget=4",
        "--set=cem.num_candidates=8",
        "--set=cem.iterations=1",
    ]
    first = evaluate.main([*common, "--episodes=2"])
    log = out / "episodes.jsonl"
    assert len(log.read_text().splitlines()) == 4  # 2 episodes x 2 agents, written as they end
    with log.open("a") as f:
        f.write('{"key": "cut short by a cra')  # a crash mid-write leaves a partial line
    capsys.readouterr()

    more = evaluate.main([*common, "--episodes=3"])
    assert "resuming: 2 of 3 episodes" in capsys.readouterr().out
    assert len(log.read_text().splitlines()) == 4 + 1 + 2  # only the third episode ran
    rows = {r["agent"]: r for r in more["planning"]}
    assert all(r["episodes"] == 3 for r in rows.values())
    fresh = evaluate.main([*common, "--episodes=3", f"--out={tmp_path / 'fresh'}"])
    for a, b in zip(more["planning"], fresh["planning"], strict=True):  # same as one go
        assert a["success_rate"] == b["success_rate"] and a["episodes"] == b["episodes"]
        assert a["audit"] == b["audit"]  # the plan audits come back from the log too
        assert a["failures_ended"] == b["failures_ended"]  # and where failures ended
    assert more["planning"][0]["audit"]["plans_audited"] >= 3
    assert first["planning"][0]["episodes"] == 2

    evaluate.main([*common, "--episodes=2", "--set=cem.horizon=3"])  # other settings: rerun
    assert "resuming" not in capsys.readouterr().out
    evaluate.main([*common, "--episodes=2", "--no-resume"])
    assert "resuming" not in capsys.readouterr().out
    assert len(log.read_text().splitlines()) == 4


def test_ray_episodes_match_the_local_ones_and_log_each_as_it_ends(tiny_world_model, ray_cluster):
    from jobs.evaluate import run_episodes
    from jobs.ray_runtime import compute_cpus
    from vjepa2.eval.planning import PlanningEvalConfig
    from vjepa2.planning import CEMConfig

    assert compute_cpus() == 2  # the fixture's 4 logical CPUs on this machine's 2 cores
    cfg = PlanningEvalConfig(
        budget=3, agents=("cem", "oracle"), cem=CEMConfig(num_candidates=8, iterations=1)
    )
    seeds = [1_000_000 + i for i in range(4)]
    logged: list = []
    remote = run_episodes(cfg, seeds, str(tiny_world_model), False, on_episode=logged.append)
    local = run_episodes(cfg, seeds, str(tiny_world_model), True)
    assert sorted(part[0].seed for part in logged) == seeds  # one call per episode
    assert all([o.agent for o in part] == ["cem", "oracle"] for part in logged)
    key = [(o.seed, o.agent, o.success, o.steps) for o in remote]
    assert key == [(o.seed, o.agent, o.success, o.steps) for o in local]  # seeded, in order
    assert len(remote[0].frames) > 0 and not remote[2].frames  # the first episode is recorded


@pytest.mark.slow
def test_held_out_rollouts_are_scored_first_and_tabulated(
    tiny_world_model, tworoom_val_dataset, tmp_path
):
    data = tworoom_val_dataset
    out = tmp_path / "eval"
    results = evaluate.main(
        [
            f"--checkpoint={tiny_world_model}",
            f"--dataset={data}",
            "--episodes=1",
            "--local",
            "--no-mlflow",
            f"--out={out}",
            "--set=agents=[do_nothing]",
            "--set=budget=2",
        ]
    )
    assert results["held_out_episodes"] == 2
    assert list(results["rollout_cosine"]["model"]) == [1, 5, 10]
    table = (out / "results.md").read_text()
    assert "| 2 held-out episodes | 1 step | 5 steps | 10 steps |" in table
    assert "FLOPs per rollout step: no planning agent" in table
    copy = results["rollout_cosine"]["copy"][5]
    assert f"| cos-sim, copy baseline (s_t) | {results['rollout_cosine']['copy'][1]:.4f}" in table
    assert 0 < copy <= 1 + 1e-6


def test_summary_reports_where_failures_ended():
    from vjepa2.eval.planning import markdown_table, summarize
    from vjepa2.planning import EpisodeOutcome

    def outcome(seed: int, success: bool, gap: dict[str, float]) -> EpisodeOutcome:
        return EpisodeOutcome(seed, "cem", success, 3 if success else None, 5, [0.1], final_gap=gap)

    rows = summarize(
        [
            outcome(0, True, {"agent_px": 1.0, "angle_deg": 2.0}),
            outcome(1, False, {"agent_px": 30.0, "angle_deg": 40.0}),
            outcome(2, False, {"agent_px": 10.0, "angle_deg": 20.0}),
            outcome(3, False, {"agent_px": 20.0, "angle_deg": 25.0}),
        ]
    )
    assert rows[0]["failures_ended"] == {"agent_px": 20.0, "angle_deg": 25.0}  # failures only
    assert "| agent 20 px, angle 25° |" in markdown_table(rows)
    # All successes, or outcomes logged before the gaps existed: nothing to report.
    assert summarize([outcome(0, True, {"agent_px": 1.0})])[0]["failures_ended"] is None
    assert summarize([outcome(1, False, {})])[0]["failures_ended"] is None
    assert markdown_table(summarize([outcome(1, False, {})])).endswith("| - |")
