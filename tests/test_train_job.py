"""The Ray Train jobs: 2 DDP workers, MLflow, stop/resume, a killed worker, dataset streams."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import torch
from mlflow import MlflowClient

from jobs.train_job import fit, run_paths
from vjepa2.config import apply_overrides, get_preset
from vjepa2.config.base import to_dict
from vjepa2.data.collect import CONFIG_FILE, CollectConfig
from vjepa2.data.collect_sink import collect_local
from vjepa2.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow

STEPS, EVERY = 24, 6


def two_worker_cfg(out, *extra: str):
    return apply_overrides(
        get_preset("pretrain", "tiny"),
        [
            f"train.out_dir={out}",
            f"train.steps={STEPS}",
            f"train.checkpoint_every={EVERY}",
            "train.log_every=2",
            "train.batch_size=4",
            "cluster.num_workers=2",
            "data.synthetic.num_videos=8",
            *extra,
        ],
    )


def model_state(path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path, kind="pretrain")["state"]["model"]


def assert_bitwise_equal(a, b) -> None:
    sa, sb = model_state(a), model_state(b)
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.fixture(scope="module")
def reference(ray_cluster, tmp_path_factory):
    """An uninterrupted 2-worker run: the baseline the other runs must reproduce."""
    out = tmp_path_factory.mktemp("reference")
    return out, fit(two_worker_cfg(out), progress=False)


def test_two_workers_train_track_in_mlflow_and_register_the_model(reference):
    out, result = reference
    steps = [r["step"] for r in result.history]
    assert steps == [*range(0, STEPS, 2), STEPS - 1]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.checkpoint.is_file() and result.model_version == "1"

    client = MlflowClient(f"sqlite:///{out}/mlflow.db")
    run = client.search_runs([client.get_experiment_by_name("vjepa2").experiment_id])[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["encoder.embed_dim"] == "96"
    assert run.data.params["cluster.num_workers"] == "2"
    for key in ("loss", "lr", "momentum", "samples_per_s", "data_wait_frac", "peak_memory_mb"):
        assert key in run.data.metrics, key
    assert run.data.metrics["target_effective_rank"] > 1.0
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == steps
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "checkpoints")}
    assert "checkpoints/final.pt" in artifacts
    assert client.get_model_version("vjepa2-pretrain", "1").run_id == run.info.run_id

    # Rerunning a finished job trains nothing and registers nothing new.
    before = result.checkpoint.stat().st_mtime_ns
    again = fit(two_worker_cfg(out), progress=False)
    assert again.model_version == "1" and result.checkpoint.stat().st_mtime_ns == before


def test_stop_and_resume_is_bitwise_identical_to_an_uninterrupted_run(reference, tmp_path):
    _, uninterrupted = reference
    first = fit(two_worker_cfg(tmp_path), progress=False, stop_at=2 * EVERY)
    assert first.history[-1]["step"] < 2 * EVERY
    resumed = fit(two_worker_cfg(tmp_path), progress=False)
    assert resumed.history[-1]["step"] == STEPS - 1
    assert_bitwise_equal(resumed.checkpoint, uninterrupted.checkpoint)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("vjepa2").experiment_id])
    assert len(runs) == 1, "a resumed job keeps logging to its MLflow run"


def test_a_killed_worker_restarts_from_the_last_checkpoint(reference, tmp_path):
    """SIGKILL rank 1 mid-run: Ray restarts the group from the latest checkpoint and, every
    draw being seeded per step, the run ends where the uninterrupted one did, bit for bit."""
    _, uninterrupted = reference
    cfg = two_worker_cfg(tmp_path, "cluster.max_failures=1", "tracking.enabled=false")
    out = run_paths(cfg)[0]
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(result=fit(cfg, progress=False)))
    thread.start()
    pid_file, metrics = out / "workers" / "rank1.json", out / "metrics.jsonl"
    deadline = time.time() + 240
    victim = None
    while time.time() < deadline and thread.is_alive():
        rows = metrics.read_text().splitlines() if metrics.exists() else []
        if pid_file.exists() and rows and json.loads(rows[-1])["step"] >= EVERY + 2:
            victim = json.loads(pid_file.read_text())["pid"]
            os.kill(victim, signal.SIGKILL)
            break
        time.sleep(0.02)
    thread.join(timeout=300)
    assert victim is not None, "the run finished before the worker could be killed"
    assert "result" in box, "the job did not recover from the killed worker"
    assert json.loads(pid_file.read_text())["pid"] != victim  # a new worker took rank 1
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == sorted(set(steps)), "metrics after the restart continue, no duplicates"
    assert_bitwise_equal(box["result"].checkpoint, uninterrupted.checkpoint)


def test_a_corrupt_checkpoint_fails_the_resume_with_a_clear_error(ray_cluster, tmp_path):
    cfg = two_worker_cfg(tmp_path, "tracking.enabled=false", "cluster.num_workers=1")
    fit(cfg, progress=False, stop_at=EVERY)
    _, storage, name = run_paths(cfg)
    ckpts = sorted(p for p in (tmp_path / "ray" / name).glob("checkpoint_*") if p.is_dir())
    (ckpts[-1] / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(Exception, match="corrupt or truncated"):
        fit(cfg, progress=False)


@pytest.fixture(scope="module")
def tworoom_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tworoom")
    collect_local(
        CollectConfig(
            out=str(root), env="tworoom", episodes=6, steps_per_episode=16, img_size=64, seed=3
        ),
        progress=False,
    )
    return root


def test_both_phases_stream_a_collected_dataset(ray_cluster, tworoom_dataset, tmp_path):
    data = ["data.source=dataset", f"data.dataset.path={tworoom_dataset}", "tracking.enabled=false"]
    common = [f"train.out_dir={tmp_path}", "train.steps=4", "train.batch_size=4", *data]
    common += ["train.checkpoint_every=2", "train.log_every=1"]
    pre = fit(apply_overrides(get_preset("pretrain", "tiny"), common), progress=False)
    assert [r["step"] for r in pre.history] == [0, 1, 2, 3]
    dyn_cfg = apply_overrides(
        get_preset("dynamics", "tiny"), [*common, f"encoder_checkpoint={pre.checkpoint}"]
    )
    dyn = fit(dyn_cfg, progress=False)
    assert len(dyn.history) == 4 and all(r["loss"] > 0 for r in dyn.history)
    assert load_checkpoint(dyn.checkpoint, kind="dynamics")["state"]["step"] == 4


def test_action_dimension_mismatch_is_refused_before_training(ray_cluster, tworoom_dataset):
    from pipelines.train_data import build_train_stream

    cfg = apply_overrides(
        get_preset("dynamics", "tiny"),
        ["data.source=dataset", f"data.dataset.path={tworoom_dataset}", "dynamics.action_dim=7"],
    )
    with pytest.raises(ValueError, match="dynamics.action_dim is 7"):
        build_train_stream(cfg)


def test_a_finished_run_that_lost_its_final_copy_gets_it_back(
    ray_cluster, tworoom_dataset, tmp_path
):
    # A crash after the last checkpoint but before final.pt was copied: nothing is left to
    # train, and a stream for zero remaining steps must not be built (it would hold none).
    data = ["data.source=dataset", f"data.dataset.path={tworoom_dataset}", "tracking.enabled=false"]
    cfg = apply_overrides(
        get_preset("pretrain", "tiny"),
        [f"train.out_dir={tmp_path}", "train.steps=2", "train.batch_size=2", *data],
    )
    first = fit(cfg, progress=False)
    weights = load_checkpoint(first.checkpoint, kind="pretrain")["state"]
    first.checkpoint.unlink()
    again = fit(cfg, progress=False)
    assert again.checkpoint.is_file() and not again.reused
    restored = load_checkpoint(again.checkpoint, kind="pretrain")["state"]
    assert restored["step"] == weights["step"] == 2
    assert all(torch.equal(restored["model"][k], v) for k, v in weights["model"].items())


def test_train_stream_holds_exactly_the_steps_still_to_run(ray_cluster, tworoom_dataset):
    from pipelines.train_data import build_train_stream

    data = ["data.source=dataset", f"data.dataset.path={tworoom_dataset}"]
    for kind in ("pretrain", "dynamics"):
        cfg = apply_overrides(
            get_preset(kind, "tiny"), [*data, "train.steps=9", "train.batch_size=4"]
        )
        whole = build_train_stream(cfg).index
        for start in (0, 1, 5):
            rest = build_train_stream(cfg, start).index
            assert len(rest) == (9 - start) * 4, (kind, start)
            assert rest.rows() == whole.rows()[start * 4 :]


def test_the_stream_built_in_the_controller_prints_no_progress_bars(
    ray_cluster, tworoom_dataset, tmp_path
):
    import ray.data

    from jobs.train_job import _stream_from_latest

    cfg = apply_overrides(
        get_preset("pretrain", "tiny"),
        ["data.source=dataset", f"data.dataset.path={tworoom_dataset}", "train.steps=2"],
    )
    ctx = ray.data.DataContext.get_current()
    before = ctx.enable_progress_bars
    ctx.enable_progress_bars = True  # Ray's default, as in a fresh controller process
    try:
        ds = _stream_from_latest(to_dict(cfg), str(tmp_path / "ray"), "pretrain")
    finally:
        ctx.enable_progress_bars = before
    assert ds.context.enable_progress_bars is False


def _tiny_ablation_argv(dataset, out, *extra: str) -> list[str]:
    """Two-step trainings and a three-step, 16-candidate plan: the runner's plumbing only."""
    return [
        f"--dataset={dataset}",
        f"--out={out}",
        "--episodes=1",
        "--quiet",
        *extra,
        "--set=train.steps=2",
        "--set=train.batch_size=2",
        "--set=tracking.enabled=false",
        "--dynamics-set=dynamics.depth=1",
        "--plan-set=budget=3",
        "--plan-set=cem.num_candidates=16",
        "--plan-set=cem.iterations=2",
    ]


def test_ablation_runner_tabulates_each_row(ray_cluster, tworoom_dataset, tmp_path, capsys):
    from jobs import ablations
    from vjepa2.train.builders import load_world_model

    argv = _tiny_ablation_argv(tworoom_dataset, tmp_path, "--only", "full", "no_phase1")
    rows = ablations.main(argv)
    assert [r["ablation"] for r in rows] == ["full", "no_phase1"]
    # Phase-2-only overrides reach the dynamics models and nothing else.
    _, model_cfg = load_world_model(tmp_path / "full" / "dynamics" / "final.pt")
    assert model_cfg.dynamics.depth == 1
    for name in ("full", "no_phase1"):
        assert len((tmp_path / name / "episodes.jsonl").read_text().splitlines()) == 1
    capsys.readouterr()
    # A rerun reuses the trained rows and reads the planned episodes back from their logs.
    again = ablations.main(argv)
    assert "resuming: 1 of 1" in capsys.readouterr().out
    assert [r["planning"] for r in again] == [r["planning"] for r in rows]
    assert all(0.0 <= r["planning"]["success_rate"] <= 1.0 for r in rows)
    text = (tmp_path / "ablations.md").read_text()
    assert "| full |" in text and "| no_phase1 |" in text
    # The no-Phase-1 row has no encoder checkpoint; the full row trained one.
    assert (tmp_path / "full" / "pretrain" / "final.pt").is_file()
    assert not (tmp_path / "no_phase1" / "pretrain").exists()
    assert (tmp_path / "ablations.png").stat().st_size > 0
    # One summary run per invocation (two here) holds every row's metrics and the files.
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs(
        [client.get_experiment_by_name("vjepa2-eval").experiment_id],
        order_by=["attributes.start_time DESC"],
    )
    assert len(runs) == 2
    run = runs[0]
    assert {"full/success_rate", "no_phase1/error_vs_copy"} <= set(run.data.metrics)
    history = client.get_metric_history(run.info.run_id, "full/rollout_cos")
    assert sorted(m.step for m in history) == [1, 5, 10]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"ablations.md", "ablations.png"} <= artifacts


def test_ablation_runner_trains_each_row_at_each_seed_in_process(
    tworoom_dataset, tmp_path, monkeypatch
):
    import torch

    import jobs.ray_runtime
    from jobs import ablations

    def no_ray(*args, **kwargs):
        raise AssertionError("--local must not use Ray")

    # Ray may already run for other tests; what matters is that this job never asks for it.
    monkeypatch.setattr(ablations, "fit", no_ray)
    monkeypatch.setattr(jobs.ray_runtime, "ensure_ray", no_ray)

    argv = _tiny_ablation_argv(
        tworoom_dataset, tmp_path, "--only", "full", "no_ema", "--train-seeds=2", "--local",
        "--no-mlflow", "--set=train.seed=3",
    )  # fmt: skip
    # A process that takes only the second training of each row leaves the first alone...
    second = ablations.main([*argv, "--only-seeds", "1"])
    assert [(r["ablation"], r["train_seeds"]) for r in second] == [
        ("full", [4]),
        ("no_ema", [4]),
    ]
    assert not (tmp_path / "full").exists() and not (tmp_path / "no_ema").exists()
    second_model = (tmp_path / "full-seed1" / "dynamics" / "final.pt").read_bytes()
    # ...and the run over all of them trains the first and reuses the second as it stands.
    rows = ablations.main(argv)
    assert (tmp_path / "full-seed1" / "dynamics" / "final.pt").read_bytes() == second_model
    assert [(r["ablation"], r["train_seeds"]) for r in rows] == [
        ("full", [3, 4]),
        ("no_ema", [3, 4]),
    ]
    # The first training keeps the one-seed layout; the n-th trains both phases at the
    # user's train.seed plus n.
    for folder, seed in (("full", 3), ("full-seed1", 4), ("no_ema", 3), ("no_ema-seed1", 4)):
        for phase in ("pretrain", "dynamics"):
            ckpt = torch.load(tmp_path / folder / phase / "final.pt", weights_only=True)
            assert ckpt["config"]["train"]["seed"] == seed
        assert len((tmp_path / folder / "episodes.jsonl").read_text().splitlines()) == 1
    a, b = (
        torch.load(tmp_path / f / "dynamics" / "final.pt", weights_only=True)["state"]["model"]
        for f in ("full", "full-seed1")
    )
    assert any(not torch.equal(a[k], b[k]) for k in a)  # two trainings, not one copied
    runs = json.loads((tmp_path / "ablations.json").read_text())["runs"]
    assert [(r["ablation"], r["train_seed"]) for r in runs] == [
        ("full", 3), ("no_ema", 3), ("full", 4), ("no_ema", 4),
    ]  # fmt: skip
    assert all(r["encoder"]["effective_rank"] > 1 for r in runs)
    table = (tmp_path / "ablations.md").read_text()
    assert "| no_ema | 2 |" in table and "higher in" in table and "2 x 1 ep" in table


def test_demo_runs_the_whole_pipeline_and_reuses_it(ray_cluster, tmp_path, capsys):
    from jobs import demo

    argv = [
        f"--out={tmp_path}",
        "--episodes=6",
        "--steps-per-episode=12",
        "--plan-episodes=1",
        "--quiet",
        "--set=pretrain.train.steps=2",
        "--set=dynamics.train.steps=2",
        "--set=plan.cem.iterations=2",
    ]
    summary = demo.main(argv)
    text = capsys.readouterr().out
    assert "| Phase 1 pretrain |" in text and "| oracle |" in text and "MLflow: pretrain" in text
    assert "reused" not in text and not summary["dynamics"]["reused"]
    assert {r["agent"] for r in summary["planning"]} == {"cem", "random", "do_nothing", "oracle"}
    assert summary["planning_config"]["cem"]["iterations"] == 2  # the plan. override
    assert (tmp_path / "summary.json").is_file()
    mtime = (tmp_path / "dynamics" / "final.pt").stat().st_mtime_ns
    again = demo.main(argv)  # a rerun reuses the dataset and both checkpoints
    assert (tmp_path / "dynamics" / "final.pt").stat().st_mtime_ns == mtime
    assert again["pretrain"]["reused"] and again["dynamics"]["reused"]
    assert capsys.readouterr().out.count("| reused |") == 2
    # TwoRoom data shows the wall stopping moves by default (some targets headed for straight).
    collected = json.loads((tmp_path / "data" / "tworoom" / CONFIG_FILE).read_text())
    assert collected["policy_kwargs"] == {"straight_prob": 0.3}
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        demo.main([*argv, "--policy-kwarg=straight_prob"])


def test_demo_rejects_a_bad_override_before_collecting(tmp_path):
    from jobs import demo

    out = tmp_path / "out"
    with pytest.raises(SystemExit, match="config error: .*cem"):
        demo.main([f"--out={out}", "--set=plan.cem.horizon=0"])
    with pytest.raises(SystemExit, match="must start with"):
        demo.main([f"--out={out}", "--set=cem.horizon=8"])
    with pytest.raises(SystemExit, match="config error: .*nope"):
        demo.main([f"--out={out}", "--set=dynamics.nope=1"])
    assert not out.exists()


def test_ablation_runner_rejects_a_bad_override_before_training(tmp_path):
    from jobs import ablations

    out = f"--out={tmp_path / 'out'}"
    # A rollouts-only run passes the planning config's check; the bad key is what stops it.
    with pytest.raises(SystemExit, match="config error: .*nope"):
        ablations.main([f"--dataset={tmp_path}", out, "--episodes=0", "--dynamics-set=nope.x=1"])
    with pytest.raises(SystemExit, match="config error: .*cem"):
        ablations.main([f"--dataset={tmp_path}", out, "--plan-set=cem.num_candidates=0"])
    with pytest.raises(SystemExit):  # argparse's error: a training the run does not have
        ablations.main([f"--dataset={tmp_path}", out, "--train-seeds=2", "--only-seeds", "2"])
    assert not (tmp_path / "out").exists()
