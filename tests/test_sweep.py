"""Both Tune sweeps on the embedded cluster with a tiny budget: trials, MLflow, best config."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from jobs.sweep import VALIDATION_SEED, main, parse
from jobs.sweep_trials import mask_group, with_cem
from vjepa2.config import PretrainConfig, load_yaml
from vjepa2.eval.planning import PlanningEvalConfig


def test_trial_parameters_become_valid_configs():
    group = mask_group(
        {"num_blocks_max": 8, "spatial_low": 0.1, "spatial_high": 0.5, "temporal_low": 0.5,
         "aspect_max": 2.0}
    )  # fmt: skip
    assert group.num_blocks == (4, 8) and group.aspect_ratio == (0.5, 2.0)
    assert group.temporal_scale == (0.5, 1.0)
    params = {"num_candidates": 64, "iterations": 3, "horizon": 8, "elite_frac": 0.2,
              "init_std": 0.5, "momentum": 0.1}  # fmt: skip
    cem = with_cem(PlanningEvalConfig(), params).cem
    assert (cem.num_candidates, cem.iterations, cem.horizon, cem.momentum) == (64, 3, 8, 0.1)


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        parse(["cem"])  # no checkpoint
    with pytest.raises(SystemExit):
        parse(["masking", "--steps", "1", "--reports", "2"])
    with pytest.raises(SystemExit, match="checkpoint not found"):
        main(["cem", "--checkpoint", "/no/such/final.pt", "--no-mlflow"])


def _children(uri: str, parent_run_id: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("vjepa2-sweeps")
    runs = client.search_runs([exp.experiment_id])
    return [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent_run_id]


@pytest.mark.slow
def test_masking_sweep_scores_trials_and_exports_the_best_pretrain_config(ray_cluster, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "masking"
    summary = main(
        ["masking", "--trials", "3", "--steps", "4", "--reports", "2", f"--out={out}",
         f"--tracking-uri={uri}", "--set=train.batch_size=4", "--set=data.synthetic.num_videos=8",
         "--set=train.steps=1000", "--probe-set=train_per_class=4", "--probe-set=test_per_class=2",
         "--probe-set=epochs=2", "--search=optuna"]
    )  # fmt: skip
    trials = summary["trials"]
    assert len(trials) == 3 and all(0.0 <= t["score"] <= 1.0 for t in trials)
    assert all(1 <= t["reports"] <= 2 for t in trials)
    best = load_yaml(PretrainConfig, out / "best.yaml")
    params = summary["best"]["params"]
    assert best.mask.groups == [mask_group(params)]
    # The exported config is the full run's (1000 steps), not a trial's 4.
    assert best.train.steps == 1000
    assert (out / "results.md").read_text().count("\n") == 2 + 3

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("vjepa2-sweeps")
    (parent,) = [
        r for r in client.search_runs([exp.experiment_id]) if r.info.run_name == "sweep-masking"
    ]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_probe_top1"] == pytest.approx(summary["best"]["score"])
    children = _children(uri, parent.info.run_id)
    assert len(children) == 3 and all(c.info.status == "FINISHED" for c in children)
    assert all(
        "probe_top1" in c.data.metrics and "num_blocks_max" in c.data.params for c in children
    )
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"best.yaml", "trials.json", "results.md"} <= artifacts


@pytest.mark.slow
def test_cem_sweep_plans_validation_episodes_and_exports_an_eval_config(
    ray_cluster, tiny_world_model, tmp_path
):
    out = tmp_path / "cem"
    summary = main(
        ["cem", f"--checkpoint={tiny_world_model}", "--trials", "2", "--episodes", "2",
         "--reports", "2", "--search=random", f"--out={out}", "--set=budget=3", "--no-mlflow"]
    )  # fmt: skip
    trials = summary["trials"]
    assert len(trials) == 2 and all(t["score"] in (0.0, 0.5, 1.0) for t in trials)
    exported = load_yaml(PlanningEvalConfig, out / "best.yaml")
    params = summary["best"]["params"]
    assert exported.cem.num_candidates == params["num_candidates"]
    assert exported.cem.elite_frac == pytest.approx(params["elite_frac"])
    # Tuned on validation episodes, exported for the protocol's.
    assert exported.seed == PlanningEvalConfig().seed != VALIDATION_SEED
    assert exported.episodes == 50 and exported.budget == 3
    # ... which jobs.evaluate takes as it is.
    from jobs.evaluate import main as evaluate

    results = evaluate(
        [f"--checkpoint={tiny_world_model}", f"--config={out / 'best.yaml'}", "--episodes=1",
         "--set=agents=[cem]", "--local", "--no-mlflow", f"--out={tmp_path / 'eval'}"]
    )  # fmt: skip
    assert results["config"]["cem"]["num_candidates"] == params["num_candidates"]
    assert [r["agent"] for r in results["planning"]] == ["cem"]
