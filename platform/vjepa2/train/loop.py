"""The training loop both runners share: the local one (files) and Ray Train's (``report``).

A ``TrainTask`` owns the moving parts of one job (model, optimizer, step function) and its
checkpoint state; a batch source hands out the batch for a given step; ``run_loop`` steps,
measures and calls back at the log and checkpoint cadences. Nothing here knows about Ray.

Every random draw of a step (which synthetic clips, which masks, any dropout) is seeded from
``(seed, rank, step)``, so a run resumed at step n, or a worker group restarted after a
failure, draws exactly what the uninterrupted run drew: checkpoints need no RNG state.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from vjepa2.config.base import to_dict
from vjepa2.config.jobs import DynamicsTrainConfig, PretrainConfig
from vjepa2.diagnostics import collapse_stats
from vjepa2.optim import build_optimizer
from vjepa2.train.builders import build_vjepa, build_world_model
from vjepa2.train.checkpoint import load_checkpoint, load_state_strict, save_checkpoint
from vjepa2.train.sources import DatasetSource, SyntheticSource
from vjepa2.train.steps import StepResult, dynamics_step, pretrain_step, unwrap
from vjepa2.world_model import WorldModel

JobConfig = PretrainConfig | DynamicsTrainConfig


def job_kind(cfg: JobConfig) -> str:
    return "pretrain" if isinstance(cfg, PretrainConfig) else "dynamics"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_dtype_for(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def step_seed(seed: int, rank: int, step: int) -> int:
    """One seed per (run seed, worker rank, step): resumes and restarts redraw the same."""
    return (seed * 1_000_003 + rank * 10_007 + step) % (2**63 - 1)


class BatchSource(Protocol):
    def batch(self, step: int) -> tuple[Tensor, ...]: ...


@dataclass
class TrainTask:
    kind: str  # "pretrain" | "dynamics": also the checkpoint kind
    cfg: JobConfig  # resolved: what checkpoints record
    model: nn.Module  # DDP-wrapped under several workers
    optimizer: torch.optim.Optimizer
    step_fn: Callable[[tuple[Tensor, ...], int, torch.Generator], StepResult]
    device: torch.device

    @property
    def horizon(self) -> int:
        return self.cfg.loss.horizon if isinstance(self.cfg, DynamicsTrainConfig) else 0

    def save(self, path: str | Path, step: int, meta: dict[str, Any] | None = None) -> Path:
        return save_checkpoint(
            path,
            kind=self.kind,
            config=to_dict(self.cfg),
            state={
                "model": unwrap(self.model).state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "step": step,
            },
            meta=meta,
        )

    def restore(self, payload: dict[str, Any]) -> int:
        """Load model and optimizer from a checkpoint payload; returns its step."""
        load_state_strict(unwrap(self.model), payload["state"]["model"], f"{self.kind} model")
        self.optimizer.load_state_dict(payload["state"]["optimizer"])
        return int(payload["state"]["step"])


def build_task(
    cfg: JobConfig,
    device: torch.device,
    *,
    wrap: Callable[[nn.Module], nn.Module] | None = None,
) -> TrainTask:
    """Model on ``device`` (``wrap`` adds DDP), AdamW over the trainable part, the step."""
    torch.manual_seed(cfg.train.seed)  # identical initial weights on every worker
    amp = amp_dtype_for(cfg.train.precision, device)
    if isinstance(cfg, PretrainConfig):
        model: nn.Module = build_vjepa(cfg).to(device)
        optimizer = build_optimizer(model, cfg.optim)
        resolved: JobConfig = cfg

        def step(batch: tuple[Tensor, ...], i: int, gen: torch.Generator) -> StepResult:
            return pretrain_step(
                task.model,
                optimizer,
                batch[0],
                step=i,
                total_steps=cfg.train.steps,
                optim_cfg=cfg.optim,
                generator=gen,
                amp_dtype=amp,
            )
    else:
        world, resolved = build_world_model(cfg)
        model = world.to(device)
        optimizer = build_optimizer(
            world.dynamics, cfg.optim, extra=world.encoder_param_groups(cfg.optim)
        )

        def step(batch: tuple[Tensor, ...], i: int, gen: torch.Generator) -> StepResult:
            return dynamics_step(
                task.model,
                optimizer,
                *batch,
                step=i,
                total_steps=cfg.train.steps,
                optim_cfg=cfg.optim,
                amp_dtype=amp,
            )

    kind = job_kind(cfg)
    if cfg.train.init_checkpoint:
        init = cfg.train.init_checkpoint
        payload = load_checkpoint(init, kind=kind, map_location=device)
        load_state_strict(model, payload["state"]["model"], f"train.init_checkpoint {init}")
    task = TrainTask(kind, resolved, model, optimizer, step, device)
    if wrap is not None:
        task.model = wrap(model)
    return task


class InMemoryBatches:
    """One worker's batches from data held in memory (synthetic, or a decoded dataset),
    drawn from a per-step seed."""

    def __init__(self, task: TrainTask, batch_size: int, rank: int = 0) -> None:
        cfg = task.cfg
        self.kind, self.horizon, self.batch_size = task.kind, task.horizon, batch_size
        self.num_frames = cfg.encoder.num_frames
        proprio_dims = cfg.state.proprio_dims if task.kind == "dynamics" else ()
        if cfg.data.source == "dataset":
            d = cfg.data.dataset
            self.source: SyntheticSource | DatasetSource = DatasetSource(
                d.paths,
                d.split,
                task.device,
                frame_stride=d.frame_stride,
                frameskip=d.frameskip,
                img_size=cfg.encoder.img_size,
                proprio_dims=proprio_dims,
            )
        else:
            frames = self.num_frames if task.kind == "pretrain" else max(task.horizon + 1, 8)
            self.source = SyntheticSource(
                cfg.data, cfg.encoder, frames, task.device, proprio_dims=proprio_dims
            )
        self.seed, self.rank = cfg.train.seed + 1, rank

    def batch(self, step: int) -> tuple[Tensor, ...]:
        gen = torch.Generator().manual_seed(step_seed(self.seed, self.rank, step))
        if self.kind == "dynamics":
            return self.source.windows(self.batch_size, self.horizon, gen)
        if isinstance(self.source, DatasetSource):
            return self.source.clips(self.batch_size, self.num_frames, gen)
        return self.source.clips(self.batch_size, gen)


@dataclass
class LoopSettings:
    total_steps: int
    log_every: int
    checkpoint_every: int
    seed: int
    samples_per_step: int  # global: per-worker batch x workers
    rank: int = 0
    world_size: int = 1


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


def run_loop(
    task: TrainTask,
    source: BatchSource,
    start: int,
    end: int,
    settings: LoopSettings,
    *,
    on_log: Callable[[dict[str, float]], None],
    on_checkpoint: Callable[[int, dict[str, float]], None],
    progress: bool = True,
) -> None:
    """Steps ``start`` .. ``end``-1; every rank must call this (DDP steps are collective).

    ``on_log(row)`` gets a metrics row every ``log_every`` steps and at the last step;
    ``on_checkpoint(steps_done, last_row)`` fires every ``checkpoint_every`` steps and at
    ``end``. Rows hold loss, lr, grad norm, EMA momentum, global samples/s, the share of step
    time spent waiting for data, peak memory, target-collapse diagnostics and, for a world
    model whose state has several parts, the loss on each (``WorldModel.view_losses``).
    """
    mask_gen = torch.Generator(device=task.device)
    task.model.train()
    bar = tqdm(
        range(start, end),
        initial=start,
        total=settings.total_steps,
        desc=task.kind,
        disable=not progress or settings.rank != 0,
        dynamic_ncols=True,
    )
    window_t0, window_steps, window_wait = time.perf_counter(), 0, 0.0
    last: dict[str, float] = {}
    for step in bar:
        t0 = time.perf_counter()
        batch = source.batch(step)
        window_wait += time.perf_counter() - t0
        seed = step_seed(settings.seed + 2, settings.rank, step)
        torch.manual_seed(seed)
        mask_gen.manual_seed(seed)
        result = task.step_fn(batch, step, mask_gen)
        window_steps += 1
        if step % settings.log_every == 0 or step == settings.total_steps - 1:
            elapsed = max(time.perf_counter() - window_t0, 1e-9)
            last = {
                "step": step,
                "loss": result.loss,
                "lr": result.lr,
                "grad_norm": result.grad_norm,
                "samples_per_s": window_steps * settings.samples_per_step / elapsed,
                "data_wait_frac": window_wait / elapsed,
                "peak_memory_mb": peak_memory_mb(task.device),
            }
            if result.momentum is not None:
                last["momentum"] = result.momentum
            if "targets" in result.aux:
                stats = collapse_stats(result.aux["targets"])
                last.update({f"target_{k}": v for k, v in stats.items()})
                if isinstance(world := unwrap(task.model), WorldModel):
                    last.update(world.view_losses(result.aux["predictions"], result.aux["targets"]))
            for key in ("variance_loss", "covariance_loss"):  # loss.variance_weight etc.
                if key in result.aux:
                    last[key] = float(result.aux[key])
            on_log(last)
            bar.set_postfix(loss=f"{result.loss:.4f}")
            window_t0, window_steps, window_wait = time.perf_counter(), 0, 0.0
        done = step + 1
        if done % settings.checkpoint_every == 0 or done == end:
            on_checkpoint(done, last)
    bar.close()
