"""A single-process training loop for both phases: the laptop path and the test path.

It checkpoints every ``train.checkpoint_every`` steps (model, optimizer and step; every
random draw is seeded per step, see ``loop.py``) into ``<out>/<kind>/checkpoints/``, copies the
last one to ``<out>/<kind>/final.pt`` when the run completes, resumes bit-for-bit from the
latest checkpoint, writes the resolved config and a metrics log next to the run, and shows a
progress bar. The Ray Train jobs run the same loop and write the same checkpoint format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vjepa2.config.base import save_yaml
from vjepa2.config.jobs import DynamicsTrainConfig, PretrainConfig
from vjepa2.train.checkpoint import copy_checkpoint, latest_checkpoint, load_checkpoint
from vjepa2.train.loop import (
    InMemoryBatches,
    JobConfig,
    LoopSettings,
    TrainTask,
    build_task,
    resolve_device,
    run_loop,
)
from vjepa2.train.metrics_log import METRICS_FILE, append_metrics, truncate_metrics


@dataclass
class RunResult:
    out_dir: Path
    checkpoint: Path
    history: list[dict[str, float]]
    config: Any


def run_local(
    cfg: JobConfig,
    *,
    resume: bool = True,
    progress: bool = True,
    stop_at: int | None = None,
    on_checkpoint: Callable[[int, TrainTask, dict[str, float]], None] | None = None,
) -> RunResult:
    """Train either phase in this process, on synthetic data or a dataset decoded into memory.

    ``stop_at`` ends this call early (checkpointing there) without changing the schedules,
    which stay defined by ``train.steps``: a later call resumes where this one stopped.
    ``on_checkpoint(steps_done, task, last_row)`` runs after each checkpoint is written (a
    sweep scores the model there).
    """
    task = build_task(cfg, resolve_device(cfg.train.device))
    train = cfg.train
    out = Path(train.out_dir) / task.kind
    ckpt_dir = out / "checkpoints"
    out.mkdir(parents=True, exist_ok=True)
    save_yaml(task.cfg, out / "config.yaml")

    start = 0
    history: list[dict[str, float]] = []
    metrics_path = out / METRICS_FILE
    last = latest_checkpoint(ckpt_dir) if resume else None
    if last is not None:
        start = task.restore(load_checkpoint(last, kind=task.kind))
    history = truncate_metrics(metrics_path, start)

    def log(row: dict[str, float]) -> None:
        history.append(dict(row))
        append_metrics(metrics_path, row)

    checkpoint = last

    def save(done: int, row: dict[str, float]) -> None:
        nonlocal checkpoint
        checkpoint = task.save(ckpt_dir / f"step_{done:07d}.pt", done)
        if on_checkpoint is not None:
            on_checkpoint(done, task, row)

    end = train.steps if stop_at is None else min(stop_at, train.steps)
    settings = LoopSettings(
        total_steps=train.steps,
        log_every=train.log_every,
        checkpoint_every=train.checkpoint_every,
        seed=train.seed,
        samples_per_step=train.batch_size,
    )
    source = InMemoryBatches(task, train.batch_size)
    run_loop(task, source, start, end, settings, on_log=log, on_checkpoint=save, progress=progress)
    if checkpoint is None:
        raise RuntimeError(f"no checkpoint written in {ckpt_dir}")
    final = out / "final.pt"
    if end == train.steps:
        # The same <out>/<kind>/final.pt as a Ray Train run, so the next phase's command does
        # not depend on how this one ran; a finished rerun leaves it untouched.
        if start < end or not final.exists():
            copy_checkpoint(checkpoint, final)
        checkpoint = final
    return RunResult(out, checkpoint, history, task.cfg)


def run_pretraining(cfg: PretrainConfig, **kwargs: Any) -> RunResult:
    """Phase 1 in this process; see ``run_local``."""
    return run_local(cfg, **kwargs)


def run_dynamics_training(cfg: DynamicsTrainConfig, **kwargs: Any) -> RunResult:
    """Phase 2 on a frozen encoder; the saved config is the resolved one."""
    return run_local(cfg, **kwargs)


def train_tiny_world_model(out: str | Path, steps: int = 2) -> tuple[RunResult, RunResult]:
    """Both phases of the tiny preset for ``steps`` steps under ``out``: a real checkpoint pair
    for smoke tests and for benchmarks that measure a model's size, not its quality."""
    from vjepa2.config import apply_overrides, get_preset

    common = [f"train.out_dir={out}", f"train.steps={steps}", f"train.checkpoint_every={steps}"]
    pre = run_local(apply_overrides(get_preset("pretrain", "tiny"), common), progress=False)
    dyn_cfg = apply_overrides(
        get_preset("dynamics", "tiny"), [*common, f"encoder_checkpoint={pre.checkpoint}"]
    )
    return pre, run_local(dyn_cfg, progress=False)
