"""The Ray Train runner that ``jobs.pretrain`` and ``jobs.train_dynamics`` share.

The driver resolves where the run lives, opens (or reopens) its MLflow run and starts a
``TorchTrainer``; each worker builds the library's ``TrainTask``, restores the latest
checkpoint Ray hands it, and runs the library's loop with DDP over gloo (CPU) or NCCL (GPU).
Rank 0 writes ``metrics.jsonl``, logs metrics to MLflow and saves checkpoints, which every
rank reports together through ``ray.train.report``.

Resuming is Ray Train V2's: the same ``RunConfig(name, storage_path)`` hands the workers the
latest checkpoint. The dataset is built per worker-group start from that checkpoint's step,
so a resumed run or a restarted worker group continues at its data position.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import ray
import ray.train
import ray.train.torch
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from jobs.ray_runtime import ensure_ray
from pipelines.train_data import StreamBatches, build_train_stream
from vjepa2.config.base import from_dict, save_yaml, to_dict
from vjepa2.config.jobs import DynamicsTrainConfig, PretrainConfig
from vjepa2.tracking import Tracker, flatten_params, resolve_tracking_uri
from vjepa2.train.checkpoint import copy_checkpoint, load_checkpoint
from vjepa2.train.loop import InMemoryBatches, JobConfig, LoopSettings, build_task, job_kind
from vjepa2.train.loop import run_loop as run_train_loop
from vjepa2.train.metrics_log import (
    METRICS_FILE,
    append_metrics,
    read_metrics,
    truncate_metrics,
)

CKPT_FILE = "checkpoint.pt"
PROGRESS_FILE = "progress.json"
CONFIG_TYPES = {"pretrain": PretrainConfig, "dynamics": DynamicsTrainConfig}


@dataclass
class FitResult:
    kind: str
    checkpoint: Path  # local copy of the final checkpoint, <out_dir>/<kind>/final.pt
    history: list[dict[str, float]]  # rank 0's metric rows
    seconds: float
    run_url: str | None = None  # MLflow
    model_version: str | None = None  # MLflow model registry
    reused: bool = False  # a finished run found in place: nothing trained in this call


def run_paths(cfg: JobConfig) -> tuple[Path, str, str]:
    """(local run folder, Ray storage path, Ray run name) of a job config."""
    kind = job_kind(cfg)
    out = Path(cfg.train.out_dir).resolve() / kind
    storage = cfg.cluster.storage_path or str(out.parent / "ray")
    return out, storage, kind


def latest_checkpoint(storage: str, name: str) -> ray.train.Checkpoint | None:
    """The newest checkpoint Ray holds for this run (None: none yet)."""
    try:
        return ray.train.Result.from_path(f"{storage.rstrip('/')}/{name}").checkpoint
    except RuntimeError:  # no run folder / no checkpoint snapshot yet
        return None


def latest_step(storage: str, name: str) -> int:
    """Steps done by the newest checkpoint Ray holds for this run (0: none yet)."""
    return checkpoint_step(latest_checkpoint(storage, name))


def checkpoint_step(ckpt: ray.train.Checkpoint | None) -> int:
    """Steps done by one of this runner's checkpoints (0 for None)."""
    if ckpt is None:
        return 0
    with ckpt.filesystem.open_input_stream(f"{ckpt.path}/{PROGRESS_FILE}") as f:
        return int(json.loads(f.read())["step"])


def fit(
    cfg: JobConfig, *, resume: bool = True, progress: bool = True, stop_at: int | None = None
) -> FitResult:
    """Train one phase under Ray Train; returns the final checkpoint and the metric rows.

    ``stop_at`` ends this call after that many steps (checkpointing there) without changing
    the schedules, which ``train.steps`` defines: the next call resumes where it stopped.
    """
    t0 = time.perf_counter()
    kind = job_kind(cfg)
    out, storage, name = run_paths(cfg)
    workers = cfg.cluster.num_workers
    if cfg.train.batch_size % workers:
        raise ValueError(
            f"train.batch_size {cfg.train.batch_size} must divide by cluster.num_workers {workers}"
        )
    if not resume:
        _discard(out, storage, name)
    out.mkdir(parents=True, exist_ok=True)
    save_yaml(cfg, out / "config.yaml")
    ensure_ray()

    tracker = None
    if cfg.tracking.enabled:
        uri = resolve_tracking_uri(cfg.tracking.uri, out.parent)
        tracker = Tracker.start_or_resume(
            uri,
            cfg.tracking.experiment,
            run_key=_run_key(out, storage, name),
            run_name=_run_name(out),
        )
        tracker.log_params(flatten_params(to_dict(cfg)))

    final = out / "final.pt"
    registered = out / "registered.json"
    try:
        end = cfg.train.steps if stop_at is None else min(stop_at, cfg.train.steps)
        latest = latest_checkpoint(storage, name)
        done = checkpoint_step(latest)
        trained = done < end or not final.exists()
        if trained and done >= end:
            # Every step is checkpointed and only the copy to final.pt was lost (a crash in
            # between): training zero steps would need a stream of zero samples.
            _copy_final(latest, final)
        elif trained:
            _train(cfg, out, storage, name, tracker, progress, final, end)
        version = json.loads(registered.read_text())["version"] if registered.exists() else None
        complete = end == cfg.train.steps
        if tracker is not None and complete and (trained or version is None):
            for path in (out / "config.yaml", out / METRICS_FILE):
                tracker.log_artifact(path)
            tracker.log_artifact(final, "checkpoints")
            if cfg.tracking.register_model:
                model_name = cfg.tracking.model_name or f"vjepa2-{kind}"
                version = tracker.register_checkpoint_model(final, model_name, kind)
                registered.write_text(json.dumps({"name": model_name, "version": version}))
        if tracker is not None:
            tracker.finish("FINISHED" if complete else "KILLED")  # KILLED: stopped, resumable
    except BaseException:
        if tracker is not None:
            tracker.finish("FAILED")
        raise
    return FitResult(
        kind,
        final,
        read_metrics(out / METRICS_FILE),
        time.perf_counter() - t0,
        run_url=tracker.run_url() if tracker else None,
        model_version=version,
        reused=not trained,
    )


def _train(
    cfg: JobConfig,
    out: Path,
    storage: str,
    name: str,
    tracker: Tracker | None,
    progress: bool,
    final: Path,
    end: int,
) -> None:
    c = cfg.cluster
    datasets = {}
    # One progress bar (the trainer's) rather than Ray Data's per-operator bars beside it;
    # the trainer captures this context and hands it to the dataset's executor.
    ray.data.DataContext.get_current().enable_progress_bars = False
    if cfg.data.source == "dataset":
        # Called by Ray at every worker-group start, so a restart resumes its data position.
        datasets["train"] = functools.partial(_stream_from_latest, to_dict(cfg), storage, name)
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={
            "kind": job_kind(cfg),
            "cfg": to_dict(cfg),
            "out": str(out),
            "tracking": None if tracker is None else {"uri": tracker.uri, "run_id": tracker.run_id},
            "progress": progress,
            "end": end,
        },
        scaling_config=ScalingConfig(
            num_workers=c.num_workers,
            use_gpu=c.use_gpu,
            resources_per_worker={"CPU": c.cpus_per_worker, **({"GPU": 1} if c.use_gpu else {})},
        ),
        torch_config=TorchConfig(backend="nccl" if c.use_gpu else "gloo"),
        run_config=RunConfig(
            name=name,
            storage_path=storage,
            failure_config=FailureConfig(max_failures=c.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=c.keep_checkpoints),
        ),
        datasets=datasets,
    )
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    if result.checkpoint is None:
        raise RuntimeError(f"training {name} reported no checkpoint")
    _copy_final(result.checkpoint, final)


def _copy_final(checkpoint: ray.train.Checkpoint, final: Path) -> None:
    with checkpoint.as_directory() as d:
        copy_checkpoint(Path(d) / CKPT_FILE, final)


def _stream_from_latest(cfg_dict: dict[str, Any], storage: str, name: str) -> Any:
    # Runs in Ray Train's controller, whose DataContext is Ray's default, not the driver's:
    # a dataset copies the context it is built in, and its split coordinator would print
    # per-operator progress bars into the job's log beside the trainer's own bar.
    ray.data.DataContext.get_current().enable_progress_bars = False
    kind = "dynamics" if "dynamics" in cfg_dict else "pretrain"
    cfg = from_dict(CONFIG_TYPES[kind], cfg_dict)
    return build_train_stream(cfg, latest_step(storage, name)).dataset


def _worker_loop(config: dict[str, Any]) -> None:
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # a line per report is noise
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    kind = config["kind"]
    cfg = from_dict(CONFIG_TYPES[kind], config["cfg"])
    out = Path(config["out"])
    device = ray.train.torch.get_device()
    task = build_task(cfg, device, wrap=ray.train.torch.prepare_model if world > 1 else None)
    _record_worker(out, rank)

    start = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            payload = load_checkpoint(Path(d) / CKPT_FILE, kind=kind, map_location=device)
            start = task.restore(payload)

    per_worker = cfg.train.batch_size // world
    if cfg.data.source == "dataset":
        shard = ray.train.get_dataset_shard("train")
        ds = cfg.data.dataset
        source: Any = StreamBatches(
            shard, kind, per_worker, ds.shuffle_buffer, cfg.train.seed + rank
        )
    else:
        source = InMemoryBatches(task, per_worker, rank)

    metrics = out / METRICS_FILE
    tracker = None
    if rank == 0:
        truncate_metrics(metrics, start)
        if config["tracking"]:
            tracker = Tracker.attach(config["tracking"]["uri"], config["tracking"]["run_id"])

    def log(row: dict[str, float]) -> None:
        if rank != 0:
            return
        append_metrics(metrics, row)
        if tracker is not None:
            tracker.log_metrics({k: v for k, v in row.items() if k != "step"}, int(row["step"]))

    def save(done: int, row: dict[str, float]) -> None:
        report = {**row, "steps_done": done}
        if rank != 0:
            ray.train.report(report)
            return
        with tempfile.TemporaryDirectory() as tmp:
            task.save(Path(tmp) / CKPT_FILE, done, meta={"workers": world})
            (Path(tmp) / PROGRESS_FILE).write_text(json.dumps({"step": done}))
            ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(tmp))

    settings = LoopSettings(
        total_steps=cfg.train.steps,
        log_every=cfg.train.log_every,
        checkpoint_every=cfg.train.checkpoint_every,
        seed=cfg.train.seed,
        samples_per_step=cfg.train.batch_size,
        rank=rank,
        world_size=world,
    )
    run_train_loop(
        task,
        source,
        start,
        config["end"],
        settings,
        on_log=log,
        on_checkpoint=save,
        progress=config["progress"],
    )


def _record_worker(out: Path, rank: int) -> None:
    """Who runs rank ``rank`` now: for operators (and the worker-kill test)."""
    folder = out / "workers"
    folder.mkdir(parents=True, exist_ok=True)
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "node_id": ray.get_runtime_context().get_node_id(),
        "started": time.time(),
    }
    (folder / f"rank{rank}.json").write_text(json.dumps(info))


def _run_name(out: Path) -> str:
    return f"{out.name}-{out.parent.name}"


def _run_key(out: Path, storage: str, name: str) -> str:
    """The MLflow run this Ray run logs to: kept across resumes, new after ``--no-resume``."""
    path = out / "mlflow_run_key"
    if not path.exists():
        path.write_text(f"{storage}/{name}@{time.time_ns()}")
    return path.read_text().strip()


def _discard(out: Path, storage: str, name: str) -> None:
    """``--no-resume``: the previous run's checkpoints and metrics go; its MLflow run stays."""
    if "://" in storage:
        fs, root = pafs.FileSystem.from_uri(storage)
    else:
        fs, root = pafs.LocalFileSystem(), storage
    info = fs.get_file_info(f"{root.rstrip('/')}/{name}")
    if info.type != pafs.FileType.NotFound:
        fs.delete_dir(info.path)
    for p in ("final.pt", METRICS_FILE, "mlflow_run_key", "registered.json"):
        (out / p).unlink(missing_ok=True)
