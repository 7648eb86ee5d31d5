"""A single-process training loop for both phases: the laptop path and the test path.

It checkpoints every ``train.checkpoint_every`` steps (model, optimizer, step and every RNG
state), resumes bit-for-bit from the latest checkpoint, writes the resolved config and a
metrics log next to the run, and shows a progress bar. Ray Train jobs reuse the same step
functions and checkpoint format.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from vjepa2.config.base import save_yaml, to_dict
from vjepa2.config.jobs import DynamicsTrainConfig, PretrainConfig, TrainConfig
from vjepa2.diagnostics import collapse_stats
from vjepa2.optim import build_optimizer
from vjepa2.train.builders import build_vjepa, build_world_model
from vjepa2.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    load_state_strict,
    save_checkpoint,
)
from vjepa2.train.sources import SyntheticSource
from vjepa2.train.steps import StepResult, dynamics_step, pretrain_step


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_dtype_for(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


@dataclass
class RunResult:
    out_dir: Path
    checkpoint: Path
    history: list[dict[str, float]]
    config: Any


@dataclass
class _Job:
    kind: str
    cfg: PretrainConfig | DynamicsTrainConfig
    model: nn.Module
    optimizer: torch.optim.Optimizer
    batch: Callable[[torch.Generator], tuple[Tensor, ...]]
    step: Callable[[tuple[Tensor, ...], int, torch.Generator], StepResult]
    samples_per_step: int


def _rng_state(gens: dict[str, torch.Generator]) -> dict[str, Tensor]:
    return {"torch": torch.get_rng_state(), **{k: g.get_state() for k, g in gens.items()}}


def _set_rng_state(state: dict[str, Tensor], gens: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    for k, g in gens.items():
        g.set_state(state[k])


def _run(
    job: _Job, train: TrainConfig, resume: bool, progress: bool, stop_at: int | None
) -> RunResult:
    out = Path(train.out_dir) / job.kind
    ckpt_dir = out / "checkpoints"
    out.mkdir(parents=True, exist_ok=True)
    save_yaml(job.cfg, out / "config.yaml")
    gens = {"data": torch.Generator().manual_seed(train.seed + 1)}
    gens["mask"] = torch.Generator(device=_device_of(job.model)).manual_seed(train.seed + 2)

    start = 0
    history: list[dict[str, float]] = []
    metrics_path = out / "metrics.jsonl"
    last = latest_checkpoint(ckpt_dir) if resume else None
    if last is not None:
        payload = load_checkpoint(last, kind=job.kind)
        load_state_strict(job.model, payload["state"]["model"], f"{job.kind} model")
        job.optimizer.load_state_dict(payload["state"]["optimizer"])
        _set_rng_state(payload["state"]["rng"], gens)
        start = int(payload["state"]["step"])
        if metrics_path.exists():
            for line in metrics_path.read_text().splitlines():
                row = json.loads(line)
                if row["step"] < start:
                    history.append(row)
    metrics_path.write_text("".join(json.dumps(r) + "\n" for r in history))

    job.model.train()
    end = train.steps if stop_at is None else min(stop_at, train.steps)
    bar = tqdm(
        range(start, end),
        initial=start,
        total=train.steps,
        desc=job.kind,
        disable=not progress,
        dynamic_ncols=True,
    )
    window_t0, window_steps = time.perf_counter(), 0
    checkpoint = last
    for step in bar:
        batch = job.batch(gens["data"])
        result = job.step(batch, step, gens["mask"])
        window_steps += 1
        if step % train.log_every == 0 or step == train.steps - 1:
            elapsed = time.perf_counter() - window_t0
            row = {
                "step": step,
                "loss": result.loss,
                "lr": result.lr,
                "grad_norm": result.grad_norm,
                "samples_per_s": window_steps * job.samples_per_step / max(elapsed, 1e-9),
            }
            if result.momentum is not None:
                row["momentum"] = result.momentum
            if "targets" in result.aux:
                row.update(
                    {f"target_{k}": v for k, v in collapse_stats(result.aux["targets"]).items()}
                )
            history.append(row)
            with metrics_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            bar.set_postfix(loss=f"{result.loss:.4f}")
            window_t0, window_steps = time.perf_counter(), 0
        done = step + 1
        if done % train.checkpoint_every == 0 or done in (train.steps, end):
            checkpoint = save_checkpoint(
                ckpt_dir / f"step_{done:07d}.pt",
                kind=job.kind,
                config=to_dict(job.cfg),
                state={
                    "model": job.model.state_dict(),
                    "optimizer": job.optimizer.state_dict(),
                    "step": done,
                    "rng": _rng_state(gens),
                },
            )
    bar.close()
    if checkpoint is None:
        raise RuntimeError(f"no checkpoint written in {ckpt_dir}")
    return RunResult(out, checkpoint, history, job.cfg)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def run_pretraining(
    cfg: PretrainConfig,
    *,
    resume: bool = True,
    progress: bool = True,
    stop_at: int | None = None,
) -> RunResult:
    """Phase 1 on the configured data; returns the final checkpoint and the metric history.

    ``stop_at`` ends this call early (checkpointing there) without changing the schedules,
    which stay defined by ``train.steps``: a later call resumes where this one stopped.
    """
    device = resolve_device(cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    model = build_vjepa(cfg).to(device)
    optimizer = build_optimizer(model, cfg.optim)
    source = SyntheticSource(cfg.data, cfg.encoder, cfg.encoder.num_frames, device)
    amp = amp_dtype_for(cfg.train.precision, device)

    def step(batch: tuple[Tensor, ...], i: int, gen: torch.Generator) -> StepResult:
        return pretrain_step(
            model,
            optimizer,
            batch[0],
            step=i,
            total_steps=cfg.train.steps,
            optim_cfg=cfg.optim,
            generator=gen,
            amp_dtype=amp,
        )

    job = _Job(
        "pretrain",
        cfg,
        model,
        optimizer,
        lambda g: source.clips(cfg.train.batch_size, g),
        step,
        cfg.train.batch_size,
    )
    return _run(job, cfg.train, resume, progress, stop_at)


def run_dynamics_training(
    cfg: DynamicsTrainConfig,
    *,
    resume: bool = True,
    progress: bool = True,
    stop_at: int | None = None,
) -> RunResult:
    """Phase 2 on a frozen encoder; the saved config is the resolved one."""
    device = resolve_device(cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    model, resolved = build_world_model(cfg)
    model = model.to(device)
    optimizer = build_optimizer(model.dynamics, cfg.optim)
    horizon = resolved.loss.horizon
    source = SyntheticSource(resolved.data, resolved.encoder, max(horizon + 1, 8), device)
    amp = amp_dtype_for(cfg.train.precision, device)

    def step(batch: tuple[Tensor, ...], i: int, gen: torch.Generator) -> StepResult:
        return dynamics_step(
            model,
            optimizer,
            *batch,
            step=i,
            total_steps=cfg.train.steps,
            optim_cfg=cfg.optim,
            amp_dtype=amp,
        )

    job = _Job(
        "dynamics",
        resolved,
        model,
        optimizer,
        lambda g: source.windows(cfg.train.batch_size, horizon, g),
        step,
        cfg.train.batch_size,
    )
    return _run(job, cfg.train, resume, progress, stop_at)
